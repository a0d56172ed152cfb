//! Unit tests of the [`ReadOnlyHandler`] policy on a temporary root.

use super::*;
use crate::gate::RecordingSink;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

struct Fixture {
    _dir: tempfile::TempDir,
    sink: Arc<RecordingSink>,
    handler: ReadOnlyHandler,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(root.join("ipxe.efi"), vec![9u8; 3000]).unwrap();
    let sink = Arc::new(RecordingSink::default());
    let lookup: ClientMac =
        Arc::new(|ip: Ipv4Addr| (ip == Ipv4Addr::new(10, 77, 0, 50)).then_some(MAC));
    let handler = ReadOnlyHandler::new(root, sink.clone(), lookup);
    Fixture {
        _dir: dir,
        sink,
        handler,
    }
}

fn known() -> SocketAddr {
    "10.77.0.50:1234".parse().unwrap()
}

#[test]
fn opens_a_file_and_its_report_records_the_fetch() {
    let f = fixture();
    let mut opened = f
        .handler
        .open_read(&known(), Path::new("/ipxe.efi"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(opened.len, 3000);
    let mut block = [0u8; 1000];
    opened.data.read_at(2000, &mut block).unwrap();
    assert_eq!(block, [9u8; 1000]);
    // Past the end is an error, not a short read.
    assert!(opened.data.read_at(2500, &mut block).is_err());
    assert!(opened.data.read_at(u64::MAX, &mut block[..1]).is_err());
    assert!(f.sink.events().is_empty());
    opened.report.finish(3000, true);
    let kind = EventKind::TftpFetch {
        file: "ipxe.efi".into(),
        bytes: 3000,
        ok: true,
    };
    assert_eq!(f.sink.events(), vec![BootEvent { mac: MAC, kind }]);
}

#[test]
fn reads_at_offsets_across_chunks_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let bytes: Vec<u8> = (0..CHUNK * 2 + 100).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    // Served as measured: the last 50 bytes are not part of it.
    let len = bytes.len() as u64 - 50;
    let mut data = FileData::new(File::open(&path).unwrap(), len);
    let mut out = [0u8; 1000];
    for offset in [0, CHUNK - 10, CHUNK + 5, 3, CHUNK * 2 + 50 - 1000] {
        data.read_at(offset as u64, &mut out).unwrap();
        assert_eq!(&out[..], &bytes[offset..offset + 1000], "{offset}");
    }
    assert!(data.read_at(len - 999, &mut out).is_err());
    assert!(data.read_at(u64::MAX, &mut out[..1]).is_err());
    data.read_at(len, &mut []).unwrap();
    // A file that shrank after the open is an error.
    std::fs::write(&path, b"short").unwrap();
    assert!(data.read_at(10_000, &mut out).is_err());
}

#[test]
fn v4_mapped_v6_clients_are_attributed() {
    let f = fixture();
    let v6: SocketAddr = "[::ffff:10.77.0.50]:1234".parse().unwrap();
    assert_eq!(f.handler.mac_of(&v6), Some(MAC));
    let other: SocketAddr = "[fd99::5]:1234".parse().unwrap();
    assert_eq!(f.handler.mac_of(&other), None);
}

#[test]
fn refusals_get_access_violation_and_a_failed_event() {
    let f = fixture();
    for name in [
        "../../etc/passwd",
        "..\\..\\etc\\passwd",
        "C:\\boot.ini",
        "",
    ] {
        let err = f.handler.open_read(&known(), Path::new(name)).err();
        assert_eq!(err, Some(ACCESS), "{name:?}");
    }
    let events = f.sink.events();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| matches!(
        &e.kind,
        EventKind::TftpFetch {
            bytes: 0,
            ok: false,
            ..
        }
    )));
}

#[test]
fn missing_files_are_not_found_and_unknown_clients_not_reported() {
    let f = fixture();
    let stranger: SocketAddr = "10.77.0.99:1".parse().unwrap();
    let err = f
        .handler
        .open_read(&stranger, Path::new("/etc/passwd"))
        .err();
    assert_eq!(err, Some(NOT_FOUND));
    assert!(f.sink.events().is_empty());
}

#[test]
fn writes_are_refused() {
    let f = fixture();
    let r = f.handler.refuse_write(&known(), Path::new("x"));
    assert_eq!(r.code, ErrorCode::AccessViolation);
}
