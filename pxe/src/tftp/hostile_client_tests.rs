//! Real sockets, misbehaving clients: silence, stray and future ACKs, client errors, malformed
//! requests, a full server. Short server timeouts keep these fast.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lm_api::{BootEvent, EventKind, MacAddr};

use super::{TftpOptions, TftpService};
use crate::gate::RecordingSink;
use crate::tftp::ClientMac;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
/// 512-byte blocks: 3 blocks (512, 512, 100).
const FILE_LEN: usize = 1124;

struct Server {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    sink: Arc<RecordingSink>,
}

fn server(options: TftpOptions) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![7u8; FILE_LEN]).unwrap();
    let sink = Arc::new(RecordingSink::default());
    let lookup: ClientMac = Arc::new(|ip: Ipv4Addr| ip.is_loopback().then_some(MAC));
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let service = rt
        .block_on(TftpService::bind(
            addr,
            dir.path(),
            options,
            sink.clone(),
            lookup,
        ))
        .unwrap();
    let addr = service.local_addr();
    service.serve_on_thread().unwrap();
    Server {
        _dir: dir,
        addr,
        sink,
    }
}

fn fast() -> TftpOptions {
    TftpOptions {
        timeout: Duration::from_millis(300),
        max_retries: 1,
        ..TftpOptions::default()
    }
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn rrq(file: &str, mode: &str) -> Vec<u8> {
    let mut p = vec![0, 1];
    for s in [file, mode] {
        p.extend_from_slice(s.as_bytes());
        p.push(0);
    }
    p
}

fn ack(n: u16) -> [u8; 4] {
    let [a, b] = n.to_be_bytes();
    [0, 4, a, b]
}

/// The next packet: (opcode, block or error code, sender).
fn recv(s: &UdpSocket) -> (u16, u16, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("a packet from the server");
    assert!(n >= 4, "{:?}", &buf[..n]);
    let op = u16::from_be_bytes([buf[0], buf[1]]);
    (op, u16::from_be_bytes([buf[2], buf[3]]), from)
}

fn nothing_within(s: &UdpSocket, wait: Duration) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 2048];
    if let Ok((n, from)) = s.recv_from(&mut buf) {
        panic!("unexpected packet from {from}: {:?}", &buf[..n.min(8)]);
    }
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
}

fn wait_events(sink: &RecordingSink, n: usize) -> Vec<BootEvent> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.events().len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    sink.events()
}

fn fetch(bytes: u64, ok: bool) -> BootEvent {
    BootEvent {
        mac: MAC,
        kind: EventKind::TftpFetch {
            file: "f".into(),
            bytes,
            ok,
        },
    }
}

#[test]
fn stray_duplicate_and_future_acks_send_nothing() {
    let srv = server(TftpOptions {
        timeout: Duration::from_secs(2),
        ..fast()
    });
    let c = client();
    c.send_to(&rrq("f", "octet"), srv.addr).unwrap();
    let (op, block, tid) = recv(&c);
    assert_eq!((op, block), (3, 1));
    for stray in [
        &ack(5)[..],
        &ack(0),
        &ack(65535),
        b"",
        b"\x00",
        b"\x00\x04\x00",
        b"\x00\x04\x00\x01\x00",
        b"\x00\x03\x00\x01data",
        b"\x00\x09garbage",
    ] {
        c.send_to(stray, tid).unwrap();
    }
    nothing_within(&c, Duration::from_millis(200));
    c.send_to(&ack(1), tid).unwrap();
    assert_eq!(recv(&c), (3, 2, tid));
    // A duplicate of ACK 1 (Sorcerer's Apprentice) does not resend block 2.
    c.send_to(&ack(1), tid).unwrap();
    nothing_within(&c, Duration::from_millis(200));
    c.send_to(&ack(2), tid).unwrap();
    assert_eq!(recv(&c), (3, 3, tid));
    c.send_to(&ack(3), tid).unwrap();
    assert_eq!(
        wait_events(&srv.sink, 1),
        vec![fetch(FILE_LEN as u64, true)]
    );
}

#[test]
fn a_silent_client_gets_retransmissions_then_an_error() {
    let srv = server(fast());
    let c = client();
    c.send_to(&rrq("f", "octet"), srv.addr).unwrap();
    let (_, _, tid) = recv(&c);
    c.send_to(&ack(1), tid).unwrap();
    assert_eq!(recv(&c), (3, 2, tid));
    // Silence: one retransmission (max_retries 1), then ERROR 0.
    assert_eq!(recv(&c), (3, 2, tid));
    assert_eq!(recv(&c), (5, 0, tid));
    assert_eq!(wait_events(&srv.sink, 1), vec![fetch(512, false)]);
}

#[test]
fn a_client_error_ends_the_transfer_quietly() {
    let srv = server(fast());
    let c = client();
    c.send_to(&rrq("f", "netascii"), srv.addr).unwrap();
    let (_, _, tid) = recv(&c);
    c.send_to(b"\x00\x05\x00\x00disk full\x00", tid).unwrap();
    assert_eq!(wait_events(&srv.sink, 1), vec![fetch(0, false)]);
    nothing_within(&c, Duration::from_millis(500));
}

#[test]
fn malformed_requests_get_no_answer_and_mail_reads_are_illegal() {
    let srv = server(fast());
    let c = client();
    for junk in [
        &b""[..],
        b"\x00",
        b"\x00\x01",
        b"\x00\x01f",
        b"\x00\x01f\x00binary\x00",
        b"\x00\x01f\x00octet\x00blksize\x00",
        b"\x00\x04\x00\x01",
        b"\x00\x03\x00\x01data",
    ] {
        c.send_to(junk, srv.addr).unwrap();
    }
    nothing_within(&c, Duration::from_millis(200));
    c.send_to(&rrq("f", "MAIL"), srv.addr).unwrap();
    let (op, code, _) = recv(&c);
    assert_eq!((op, code), (5, 4));
    assert!(srv.sink.events().is_empty());
}

#[test]
fn a_full_server_says_busy_and_a_repeated_request_is_ignored() {
    let srv = server(TftpOptions {
        max_transfers: 1,
        timeout: Duration::from_secs(2),
        ..fast()
    });
    let a = client();
    a.send_to(&rrq("f", "octet"), srv.addr).unwrap();
    let (_, _, tid) = recv(&a);
    // The same request again (a retransmission) starts nothing new.
    a.send_to(&rrq("f", "octet"), srv.addr).unwrap();
    nothing_within(&a, Duration::from_millis(200));
    let b = client();
    b.send_to(&rrq("f", "octet"), srv.addr).unwrap();
    let (op, code, _) = recv(&b);
    assert_eq!((op, code), (5, 0));
    // Once the first transfer ends, there is room again.
    for n in 1..=3 {
        a.send_to(&ack(n), tid).unwrap();
        if n < 3 {
            assert_eq!(recv(&a), (3, n + 1, tid));
        }
    }
    assert_eq!(wait_events(&srv.sink, 1).len(), 1);
    b.send_to(&rrq("f", "octet"), srv.addr).unwrap();
    assert_eq!(recv(&b).0, 3);
}
