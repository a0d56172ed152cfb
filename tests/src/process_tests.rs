//! Tests of `process` with real child processes (sh, sleep): capture, exit, group kill.

use super::*;

#[test]
fn captures_both_streams_and_exit() {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "echo out-$LAB_T; echo err >&2; printf 'no newline'; exit 7",
    ])
    .env("LAB_T", "x1");
    let p = Process::spawn("sh", &cmd, None, None).unwrap();
    let hit = p.wait_for("out-x1", Duration::from_secs(10)).unwrap();
    assert_eq!(hit.stream, Stream::Stdout);
    assert_eq!(
        p.wait_for("err", Duration::from_secs(10)).unwrap().stream,
        Stream::Stderr
    );
    p.wait_for("no newline", Duration::from_secs(10)).unwrap();
    assert_eq!(
        p.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()),
        Some(7)
    );
    assert!(matches!(
        p.wait_for("absent", Duration::from_secs(10)),
        Err(WaitError::Exited { .. })
    ));
    assert!(p.dump(10).contains("exited"));
}

#[test]
fn drop_kills_the_whole_group_even_if_sigterm_is_ignored() {
    let dir = std::env::temp_dir().join(format!("lab-proc-{}", std::process::id()));
    let log = dir.join("stubborn.log");
    let mut cmd = Command::new("sh");
    // the grandchild `sleep` is in the same process group and must die too
    cmd.args([
        "-c",
        "trap '' TERM; sleep 300 & echo child=$!; echo ready; wait",
    ]);
    let p = Process::spawn("stubborn", &cmd, None, Some(&log)).unwrap();
    let line = p.wait_for("child=", Duration::from_secs(10)).unwrap();
    p.wait_for("ready", Duration::from_secs(10)).unwrap();
    let grandchild: i32 = line.text.trim_start_matches("child=").parse().unwrap();
    let t = Instant::now();
    drop(p);
    assert!(
        t.elapsed() >= GRACE,
        "SIGTERM was trapped, so SIGKILL must have been needed"
    );
    // gone, or a zombie waiting for init to reap it; SIGKILL to the group was sent before the
    // leader was reaped, but the grandchild may need a moment to be scheduled and die
    let state_of = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        state.map(str::to_owned)
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while !matches!(state_of(grandchild).as_deref(), None | Some("Z")) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let state = state_of(grandchild);
    assert!(
        matches!(state.as_deref(), None | Some("Z")),
        "grandchild {grandchild} survived: {state:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("| ready"), "log file: {text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
