//! Tests of [`BootHttp`]: routes, gate, Range, HEAD, events and refusals, against temp files.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use lm_api::{BootEvent, BootId, EventKind, MacAddr};

use super::*;
use crate::gate::{Gate, HostBoot, RecordingSink, StaticDirectory};

const OPEN: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const CLOSED: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x00, 0x02]);
const BAD_NAME: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x00, 0x03]);
const STRANGER: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x00, 0x09]);

struct Fixture {
    _dir: tempfile::TempDir,
    kernel: PathBuf,
    sink: Arc<RecordingSink>,
    boot: BootHttp,
}

fn host(name: &str) -> HostBoot {
    HostBoot {
        name: name.into(),
        reserved_ip: None,
        boot_id: BootId::from_random(0xff),
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinuz");
    let initrd = dir.path().join("initrd.cpio.gz");
    std::fs::write(
        &kernel,
        (0..1000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(&initrd, vec![7u8; 300]).unwrap();
    let mut hosts = HashMap::new();
    hosts.insert(OPEN, Gate::Open(host("vm1")));
    hosts.insert(BAD_NAME, Gate::Open(host("vm 1")));
    hosts.insert(
        CLOSED,
        Gate::Closed {
            name: "vm2".into(),
            reason: "idle".into(),
        },
    );
    let directory = Arc::new(StaticDirectory {
        hosts,
        default: None,
    });
    let sink = Arc::new(RecordingSink::default());
    let config = BootHttpConfig {
        kernel: kernel.clone(),
        initrd,
        http_host: "10.77.0.1:8080".into(),
        api_url: "https://10.77.0.1:8443".into(),
        cmdline_base: DEFAULT_CMDLINE_BASE.into(),
    };
    let boot = BootHttp::new(config, directory, sink.clone()).unwrap();
    Fixture {
        _dir: dir,
        kernel,
        sink,
        boot,
    }
}

fn fetch(mac: MacAddr, path: &str, bytes: u64, status: u16) -> BootEvent {
    BootEvent {
        mac,
        kind: EventKind::HttpFetch {
            path: path.into(),
            bytes,
            status,
        },
    }
}

fn body_text(r: &BootReply) -> String {
    match &r.body {
        BootBody::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("not an in-memory body: {other:?}"),
    }
}

/// Streams a file body the way a caller would.
fn stream(r: &BootReply) -> Vec<u8> {
    let BootBody::File { path, offset, len } = &r.body else {
        panic!("{r:?}")
    };
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(*offset)).unwrap();
    let mut out = Vec::new();
    f.take(*len).read_to_end(&mut out).unwrap();
    out
}

const SCRIPT: &str = "#!ipxe\n\
    echo Lease Manager: booting vm1 (boot 00000000000000ff)\n\
    kernel http://10.77.0.1:8080/boot/52-54-00-12-34-56/vmlinuz initrd=initrd \
    console=ttyS0,115200 panic=-1 quiet lm.url=https://10.77.0.1:8443 \
    lm.boot=00000000000000ff lm.mac=52:54:00:12:34:56\n\
    initrd --name initrd http://10.77.0.1:8080/boot/52-54-00-12-34-56/initrd\n\
    boot\n";

#[test]
fn open_host_gets_its_script() {
    let f = fixture();
    let r = f.boot.respond("GET", "/boot/52-54-00-12-34-56.ipxe", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, reply::TEXT);
    assert_eq!(body_text(&r), SCRIPT);
    assert_eq!(
        r.header("content-length"),
        Some(SCRIPT.len().to_string().as_str())
    );
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.pending, None);
    // The colon spelling is the same route; events use the dashed spelling.
    let r2 = f
        .boot
        .respond("GET", "/boot/52:54:00:12:34:56.ipxe", Some("bytes=0-1"));
    assert_eq!(body_text(&r2), SCRIPT);
    let ev = fetch(
        OPEN,
        "/boot/52-54-00-12-34-56.ipxe",
        SCRIPT.len() as u64,
        200,
    );
    assert_eq!(f.sink.events(), vec![ev.clone(), ev]);
}

#[test]
fn head_has_get_headers_and_no_body() {
    let f = fixture();
    let r = f.boot.respond("HEAD", "/boot/52-54-00-12-34-56.ipxe", None);
    assert_eq!(
        (r.status, r.body.clone()),
        (200, BootBody::Bytes(Vec::new()))
    );
    assert_eq!(
        r.header("Content-Length"),
        Some(SCRIPT.len().to_string().as_str())
    );
    // Range is ignored on HEAD.
    let r = f
        .boot
        .respond("HEAD", "/boot/52-54-00-12-34-56/vmlinuz", Some("bytes=0-9"));
    assert_eq!((r.status, &r.body), (200, &BootBody::Bytes(Vec::new())));
    assert!(r.pending.is_none());
    assert_eq!(r.header("Content-Length"), Some("1000"));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(r.header("Content-Range"), None);
    assert_eq!(
        f.sink.events(),
        vec![
            fetch(OPEN, "/boot/52-54-00-12-34-56.ipxe", 0, 200),
            fetch(OPEN, "/boot/52-54-00-12-34-56/vmlinuz", 0, 200),
        ]
    );
}

#[test]
fn whole_file_then_record_done() {
    let f = fixture();
    let mut r = f
        .boot
        .respond("GET", "/boot/52-54-00-12-34-56/vmlinuz", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, reply::BINARY);
    assert_eq!(
        r.body,
        BootBody::File {
            path: f.kernel.clone(),
            offset: 0,
            len: 1000
        }
    );
    assert_eq!(r.header("Content-Length"), Some("1000"));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(stream(&r), std::fs::read(&f.kernel).unwrap());
    assert!(
        f.sink.events().is_empty(),
        "file events wait for record_done"
    );
    let pending = r.pending.take().unwrap();
    assert_eq!((pending.mac(), pending.planned_bytes()), (OPEN, 1000));
    // The client went away after 300 bytes: the event says so.
    f.boot.record_done(pending, 300);
    drop(r);
    assert_eq!(
        f.sink.events(),
        vec![fetch(OPEN, "/boot/52-54-00-12-34-56/vmlinuz", 300, 200)]
    );
}

#[test]
fn dropped_pending_fetch_records_the_planned_length() {
    let f = fixture();
    let r = f
        .boot
        .respond("GET", "/boot/52-54-00-12-34-56/initrd", Some("bytes=100-"));
    assert_eq!(r.status, 206);
    assert!(f.sink.events().is_empty());
    drop(r);
    assert_eq!(
        f.sink.events(),
        vec![fetch(OPEN, "/boot/52-54-00-12-34-56/initrd", 200, 206)]
    );
}

#[test]
fn ranges_give_206_and_416() {
    let f = fixture();
    let whole = std::fs::read(&f.kernel).unwrap();
    let get = |range: &str| {
        f.boot
            .respond("GET", "/boot/52-54-00-12-34-56/vmlinuz", Some(range))
    };

    let mut r = get("bytes=100-199");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 100-199/1000"));
    assert_eq!(r.header("Content-Length"), Some("100"));
    assert_eq!(stream(&r), whole[100..200].to_vec());
    f.boot.record_done(r.pending.take().unwrap(), 100);
    assert_eq!(
        f.sink.events(),
        vec![fetch(OPEN, "/boot/52-54-00-12-34-56/vmlinuz", 100, 206)]
    );

    let r = f
        .boot
        .respond("GET", "/boot/52-54-00-12-34-56/initrd", Some("bytes=-10"));
    assert_eq!(
        (r.status, r.header("Content-Range")),
        (206, Some("bytes 290-299/300"))
    );
    assert_eq!(stream(&r), vec![7u8; 10]);

    let r = get("bytes=990-5000");
    assert_eq!(
        (r.status, r.header("Content-Range")),
        (206, Some("bytes 990-999/1000"))
    );
    assert_eq!(stream(&r), whole[990..].to_vec());

    let r = get("bytes=1000-");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */1000"));
    assert!(r.pending.is_none());
    let last = f.sink.events().pop().unwrap();
    assert!(
        matches!(last.kind, EventKind::HttpFetch { status: 416, .. }),
        "{last:?}"
    );

    for garbage in ["bytes=5-1", "lines=1-2", "bytes=0-1,5-6", "bytes=x"] {
        let r = get(garbage);
        assert_eq!(
            (r.status, r.header("Content-Range")),
            (200, None),
            "{garbage:?}"
        );
        assert_eq!(r.header("Content-Length"), Some("1000"));
        assert_eq!(stream(&r), whole);
    }
}

#[test]
fn closed_and_unknown_macs_get_404() {
    let f = fixture();
    for path in [
        "/boot/52-54-00-00-00-02.ipxe",
        "/boot/52-54-00-00-00-02/vmlinuz",
    ] {
        let r = f.boot.respond("GET", path, None);
        assert_eq!((r.status, r.pending.is_none()), (404, true), "{path}");
        assert!(body_text(&r).contains("no boot"));
    }
    let unknown = format!("/boot/{}.ipxe", STRANGER.dashed());
    assert_eq!(f.boot.respond("GET", &unknown, None).status, 404);
    let unknown = format!("/boot/{}/initrd", STRANGER.dashed());
    assert_eq!(
        f.boot.respond("GET", &unknown, Some("bytes=0-1")).status,
        404
    );
    // Closed hosts are in the inventory: their attempts go to the timeline. Strangers do not.
    let events = f.sink.events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.mac == CLOSED));
    assert!(
        events
            .iter()
            .all(|e| matches!(e.kind, EventKind::HttpFetch { status: 404, .. }))
    );
}

#[test]
fn bad_paths_methods_and_macs() {
    let f = fixture();
    let cases = [
        ("GET", "/boot/not-a-mac.ipxe", 400),
        ("GET", "/boot/52-54-00-12-34/vmlinuz", 400),
        ("HEAD", "/boot/zz/initrd", 400),
        ("GET", "/boot/vmlinuz", 404),
        ("GET", "/boot/52-54-00-12-34-56/../../etc/passwd", 404),
        ("GET", "/boot/52-54-00-12-34-56/secret", 404),
        ("GET", "/etc/passwd", 404),
        ("GET", "", 404),
        ("POST", "/boot/52-54-00-12-34-56.ipxe", 405),
        ("get", "/boot/52-54-00-12-34-56.ipxe", 405),
    ];
    for (method, path, status) in cases {
        let r = f.boot.respond(method, path, None);
        assert_eq!(r.status, status, "{method} {path}");
        assert_eq!(r.pending, None);
        if method == "HEAD" {
            assert_eq!(r.body, BootBody::Bytes(Vec::new()));
        }
    }
    let r = f
        .boot
        .respond("PUT", "/boot/52-54-00-12-34-56/vmlinuz", None);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    assert!(f.sink.events().is_empty());
}

#[test]
fn unsafe_name_and_missing_artifact_are_500() {
    let f = fixture();
    let r = f
        .boot
        .respond("GET", &format!("/boot/{}.ipxe", BAD_NAME.dashed()), None);
    assert_eq!(r.status, 500);
    assert!(!body_text(&r).contains("#!ipxe"));
    std::fs::remove_file(&f.kernel).unwrap();
    let r = f
        .boot
        .respond("GET", "/boot/52-54-00-12-34-56/vmlinuz", None);
    assert_eq!((r.status, r.pending.is_none()), (500, true));
    assert!(matches!(
        f.boot.check_artifacts(),
        Err(BootHttpError::Artifact { .. })
    ));
    let events = f.sink.events();
    assert!(matches!(
        events[1].kind,
        EventKind::HttpFetch { status: 500, .. }
    ));
}

#[test]
fn config_is_validated_and_artifacts_checked() {
    let f = fixture();
    assert_eq!(f.boot.check_artifacts().unwrap(), (1000, 300));
    let dir = tempfile::tempdir().unwrap();
    let good = BootHttpConfig {
        kernel: dir.path().to_path_buf(),
        initrd: dir.path().join("missing"),
        http_host: "10.77.0.1:8080".into(),
        api_url: "https://10.77.0.1:8443".into(),
        cmdline_base: String::new(),
    };
    let dirs = Arc::new(StaticDirectory::default());
    let sink = Arc::new(RecordingSink::default());
    let boot = BootHttp::new(good.clone(), dirs.clone(), sink.clone()).unwrap();
    let err = boot.check_artifacts().unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    for bad in [
        BootHttpConfig {
            api_url: "ftp://x".into(),
            ..good.clone()
        },
        BootHttpConfig {
            http_host: "h/x".into(),
            ..good.clone()
        },
        BootHttpConfig {
            cmdline_base: "lm.mac=00:00:00:00:00:00".into(),
            ..good.clone()
        },
        BootHttpConfig {
            cmdline_base: "a\nkernel x".into(),
            ..good.clone()
        },
    ] {
        let r = BootHttp::new(bad, dirs.clone(), sink.clone());
        assert!(matches!(r, Err(BootHttpError::Script(_))), "{r:?}");
    }
}
