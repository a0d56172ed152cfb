//! Real transfers over 127.0.0.1: the [`TftpService`] as the server, the blocking
//! [`test_client`](super::test_client) as the client.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lm_api::{BootEvent, EventKind, MacAddr};

use super::test_client::{self, Outcome};
use super::{TftpOptions, TftpService};
use crate::gate::RecordingSink;
use crate::tftp::ClientMac;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

struct Lab {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    sink: Arc<RecordingSink>,
    kernel: Vec<u8>,
}

/// Deterministic, non-repeating-looking bytes (so a misplaced block shows up).
fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

async fn lab(options: TftpOptions) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tftp");
    std::fs::create_dir(&root).unwrap();
    let kernel = pattern(200_000);
    std::fs::write(root.join("vmlinuz"), &kernel).unwrap();
    std::fs::write(root.join("exact.bin"), pattern(1024)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd-link")).unwrap();
    let sink = Arc::new(RecordingSink::default());
    let lookup: ClientMac = Arc::new(|ip: Ipv4Addr| ip.is_loopback().then_some(MAC));
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let service = TftpService::bind(addr, &root, options, sink.clone(), lookup)
        .await
        .unwrap();
    let addr = service.local_addr();
    // The thread outlives the test (it blocks on its socket); the process ends it.
    service.serve_on_thread().unwrap();
    Lab {
        _dir: dir,
        addr,
        sink,
        kernel,
    }
}

async fn read(lab: &Lab, file: &str, opts: &[(&str, &str)]) -> Outcome {
    let (addr, file) = (lab.addr, file.to_owned());
    let opts: Vec<(String, String)> = opts
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        test_client::read(addr, &file, &opts)
    })
    .await
    .unwrap()
    .unwrap()
}

async fn wait_events(sink: &RecordingSink, n: usize) -> Vec<BootEvent> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = sink.events();
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn kv(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipxe_style_transfer_with_options() {
    let lab = lab(TftpOptions::default()).await;
    let got = read(
        &lab,
        "/vmlinuz",
        &[("blksize", "1432"), ("tsize", "0"), ("windowsize", "8")],
    )
    .await;
    let Outcome::Data { bytes, oack } = got else {
        panic!("{got:?}")
    };
    assert_eq!(
        oack,
        kv(&[
            ("blksize", "1432"),
            ("tsize", "200000"),
            ("windowsize", "8")
        ])
    );
    assert!(
        bytes == lab.kernel,
        "transferred bytes differ from the file"
    );
    let events = wait_events(&lab.sink, 1).await;
    let kind = EventKind::TftpFetch {
        file: "vmlinuz".into(),
        bytes: 200_000,
        ok: true,
    };
    assert_eq!(events, vec![BootEvent { mac: MAC, kind }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_cap_what_clients_ask_for() {
    let lab = lab(TftpOptions::default()).await;
    let got = read(
        &lab,
        "vmlinuz",
        &[("blksize", "65464"), ("windowsize", "64")],
    )
    .await;
    let Outcome::Data { bytes, oack } = got else {
        panic!("{got:?}")
    };
    assert_eq!(oack, kv(&[("blksize", "1468"), ("windowsize", "16")]));
    assert!(bytes == lab.kernel);

    let small = TftpOptions {
        block_size_limit: 512,
        window_size_limit: 1,
        ..TftpOptions::default()
    };
    let lab = self::lab(small).await;
    let got = read(&lab, "vmlinuz", &[("blksize", "1432"), ("windowsize", "4")]).await;
    let Outcome::Data { bytes, oack } = got else {
        panic!("{got:?}")
    };
    assert_eq!(oack, kv(&[("blksize", "512"), ("windowsize", "1")]));
    assert!(bytes == lab.kernel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rfc1350_read_of_a_block_multiple() {
    let lab = lab(TftpOptions::default()).await;
    let got = read(&lab, "exact.bin", &[]).await;
    assert_eq!(
        got,
        Outcome::Data {
            bytes: pattern(1024),
            oack: None
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_escapes_get_error_packets() {
    let lab = lab(TftpOptions::default()).await;
    for name in [
        "../../etc/passwd",
        "..\\..\\etc\\passwd",
        "/../etc/passwd",
        "passwd-link",
    ] {
        match read(&lab, name, &[("tsize", "0")]).await {
            Outcome::Error { code: 2, .. } => {}
            other => panic!("{name:?}: {other:?}"),
        }
    }
    // Inside the root, and absent there: never the host's /etc/passwd.
    match read(&lab, "/etc/passwd", &[]).await {
        Outcome::Error { code: 1, .. } => {}
        other => panic!("{other:?}"),
    }
    let events = wait_events(&lab.sink, 5).await;
    assert_eq!(events.len(), 5);
    assert!(
        events
            .iter()
            .all(|e| matches!(e.kind, EventKind::TftpFetch { ok: false, .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_requests_are_refused() {
    let lab = lab(TftpOptions::default()).await;
    let addr = lab.addr;
    let got = tokio::task::spawn_blocking(move || test_client::write(addr, "vmlinuz"))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(got, Outcome::Error { code: 2, .. }), "{got:?}");
    // The file is untouched.
    let again = read(&lab, "vmlinuz", &[]).await;
    assert!(matches!(again, Outcome::Data { ref bytes, .. } if *bytes == lab.kernel));
}

#[tokio::test]
async fn bad_options_and_roots_are_refused() {
    let sink = Arc::new(RecordingSink::default());
    let lookup: ClientMac = Arc::new(|_| None);
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        TftpOptions {
            block_size_limit: 7,
            ..TftpOptions::default()
        },
        TftpOptions {
            window_size_limit: 0,
            ..TftpOptions::default()
        },
        TftpOptions {
            timeout: Duration::ZERO,
            ..TftpOptions::default()
        },
    ] {
        let r = TftpService::bind(addr, dir.path(), bad, sink.clone(), lookup.clone()).await;
        assert!(matches!(r, Err(super::TftpError::Options { .. })), "{r:?}");
    }
    let missing = dir.path().join("nope");
    let r = TftpService::bind(
        addr,
        &missing,
        TftpOptions::default(),
        sink.clone(),
        lookup.clone(),
    )
    .await;
    assert!(matches!(r, Err(super::TftpError::Root { .. })), "{r:?}");
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let r = TftpService::bind(addr, &file, TftpOptions::default(), sink, lookup).await;
    assert!(
        matches!(r, Err(super::TftpError::RootNotDir { .. })),
        "{r:?}"
    );
}
