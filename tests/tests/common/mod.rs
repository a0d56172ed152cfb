//! Helpers shared by the lab's integration tests.

/// True when `pid` no longer runs (gone, or a zombie waiting to be reaped).
pub fn pid_gone(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    matches!(
        stat.rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next()),
        None | Some("Z")
    )
}
