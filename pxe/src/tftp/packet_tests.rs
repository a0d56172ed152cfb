//! Unit tests of the packet codec, hostile input included.

use super::*;

fn req(op: u16, strings: &[&[u8]]) -> Vec<u8> {
    let mut p = op.to_be_bytes().to_vec();
    for s in strings {
        p.extend_from_slice(s);
        p.push(0);
    }
    p
}

#[test]
fn parses_an_ipxe_style_read_request() {
    let p = req(
        OP_RRQ,
        &[
            b"undionly.kpxe",
            b"octet",
            b"tsize",
            b"0",
            b"BLKSIZE",
            b"1432",
            b"windowsize",
            b"8",
            b"timeout",
            b"5",
        ],
    );
    let r = parse_request(&p).unwrap();
    assert_eq!(r.direction, Direction::Read);
    assert_eq!(r.file, b"undionly.kpxe");
    assert_eq!(r.mode, Mode::Octet);
    let want = RequestedOptions {
        blksize: Some(1432),
        tsize: Some(0),
        timeout: Some(5),
        windowsize: Some(8),
    };
    assert_eq!(r.options, want);
}

#[test]
fn modes_and_write_requests() {
    let p = req(OP_WRQ, &[b"f", b"NetAscii"]);
    let r = parse_request(&p).unwrap();
    assert_eq!((r.direction, r.mode), (Direction::Write, Mode::Netascii));
    let p = req(OP_RRQ, &[b"f", b"mail"]);
    assert_eq!(parse_request(&p).unwrap().mode, Mode::Mail);
    assert_eq!(
        parse_request(&req(OP_RRQ, &[b"f", b"binary"])),
        Err(MalformedRequest::UnknownMode)
    );
}

#[test]
fn malformed_requests_are_refused() {
    assert_eq!(parse_request(b""), Err(MalformedRequest::Short));
    assert_eq!(parse_request(b"\x00"), Err(MalformedRequest::Short));
    assert_eq!(
        parse_request(b"\x00\x01"),
        Err(MalformedRequest::Unterminated)
    );
    assert_eq!(
        parse_request(b"\x00\x01file"),
        Err(MalformedRequest::Unterminated)
    );
    assert_eq!(
        parse_request(b"\x00\x01file\0octet"),
        Err(MalformedRequest::Unterminated)
    );
    // An option without a value, and one whose value is not terminated.
    assert_eq!(
        parse_request(b"\x00\x01f\0octet\0blksize\0"),
        Err(MalformedRequest::Unterminated)
    );
    assert_eq!(
        parse_request(b"\x00\x01f\0octet\0blksize\x001432"),
        Err(MalformedRequest::Unterminated)
    );
    for op in [0u16, OP_DATA, OP_ACK, OP_ERROR, OP_OACK, 7, 0xffff] {
        let p = req(op, &[b"f", b"octet"]);
        assert_eq!(parse_request(&p), Err(MalformedRequest::NotARequest(op)));
    }
}

#[test]
fn empty_and_odd_names_are_passed_to_the_path_mapper() {
    let r = parse_request(b"\x00\x01\0octet\0").unwrap();
    assert_eq!(r.file, b"");
    let r = parse_request(b"\x00\x01\xff\xfe../x\0octet\0").unwrap();
    assert_eq!(r.file, b"\xff\xfe../x");
}

#[test]
fn bad_option_values_are_ignored() {
    let bad: &[(&[u8], &[u8])] = &[
        (b"blksize", b"7"),
        (b"blksize", b"65465"),
        (b"blksize", b"0"),
        (b"blksize", b"+512"),
        (b"blksize", b"-512"),
        (b"blksize", b" 512"),
        (b"blksize", b"512 "),
        (b"blksize", b""),
        (b"blksize", b"0x200"),
        (b"blksize", b"99999999999999999999999"),
        (b"windowsize", b"0"),
        (b"windowsize", b"65536"),
        (b"timeout", b"0"),
        (b"timeout", b"256"),
        (b"tsize", b"18446744073709551616"),
        (b"tsize", b"abc"),
    ];
    for (name, value) in bad {
        let p = req(OP_RRQ, &[b"f", b"octet", name, value]);
        let r = parse_request(&p).unwrap();
        assert_eq!(
            r.options,
            RequestedOptions::default(),
            "{:?}={:?}",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn options_edges_first_wins_and_unknown_skipped() {
    let p = req(
        OP_RRQ,
        &[
            b"f",
            b"octet",
            b"multicast",
            b"",
            b"blksize",
            b"8",
            b"blksize",
            b"1468",
            b"windowsize",
            b"65535",
            b"timeout",
            b"255",
            b"tsize",
            b"18446744073709551615",
        ],
    );
    let o = parse_request(&p).unwrap().options;
    assert_eq!(o.blksize, Some(8));
    assert_eq!(o.windowsize, Some(65535));
    assert_eq!(o.timeout, Some(255));
    assert_eq!(o.tsize, Some(u64::MAX));
    // A bad first value does not block a later good one.
    let p = req(
        OP_RRQ,
        &[b"f", b"octet", b"blksize", b"x", b"blksize", b"600"],
    );
    assert_eq!(parse_request(&p).unwrap().options.blksize, Some(600));
}

#[test]
fn client_packets() {
    assert_eq!(
        parse_client_packet(b"\x00\x04\x12\x34"),
        ClientPacket::Ack(0x1234)
    );
    assert_eq!(
        parse_client_packet(b"\x00\x04\xff\xff"),
        ClientPacket::Ack(0xffff)
    );
    // Trailing bytes, short ACKs and other opcodes are not ACKs.
    for p in [
        &b""[..],
        b"\x00",
        b"\x00\x04",
        b"\x00\x04\x01",
        b"\x00\x04\x00\x01\x00",
        b"\x00\x03\x00\x01data",
        b"\x00\x01f\0octet\0",
        b"\x00\x06blksize\x00512\x00",
        b"\x00\x05\x00",
    ] {
        assert_eq!(parse_client_packet(p), ClientPacket::Other, "{p:?}");
    }
    assert_eq!(
        parse_client_packet(b"\x00\x05\x00\x08refused\0"),
        ClientPacket::Error {
            code: 8,
            message: b"refused"
        }
    );
    // An unterminated message is still an error from the client.
    assert_eq!(
        parse_client_packet(b"\x00\x05\x00\x00bye"),
        ClientPacket::Error {
            code: 0,
            message: b"bye"
        }
    );
}

#[test]
fn encoders() {
    let mut out = vec![9; 10];
    encode_error(&mut out, ErrorCode::AccessViolation, "no\0pe");
    assert_eq!(out, b"\x00\x05\x00\x02nope\0");
    encode_oack(&mut out, &[("blksize", 1468), ("tsize", 30_000_000)]);
    assert_eq!(out, b"\x00\x06blksize\x001468\x00tsize\x0030000000\x00");
    let mut head = [0u8; 6];
    put_data_header(&mut head, 0xfffe);
    assert_eq!(head, [0, 3, 0xff, 0xfe, 0, 0]);
}
