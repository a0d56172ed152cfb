//! Unit tests of the [`ReadTransfer`] state machine: a fake clock, hand-made ACKs, and a
//! simulated lossy client.

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn params(block_size: u16, window_size: u16, oack: bool) -> Negotiated {
    Negotiated {
        block_size,
        window_size,
        timeout: SEC,
        oack: if oack {
            vec![("blksize", u64::from(block_size))]
        } else {
            Vec::new()
        },
    }
}

fn ack(n: u16) -> ClientPacket<'static> {
    ClientPacket::Ack(n)
}

#[test]
fn lock_step_without_options() {
    let t0 = Instant::now();
    let (mut t, out) = ReadTransfer::start(&params(512, 1, false), 1100, 3, t0);
    assert_eq!(out, Output::SendBlocks(1..2));
    assert_eq!(t.block_count(), 3);
    assert_eq!(t.block_span(1), (0, 512));
    assert_eq!(t.block_span(3), (1024, 76));
    assert_eq!(t.on_packet(ack(1), t0), Output::SendBlocks(2..3));
    assert_eq!(t.acked_bytes(), 512);
    assert_eq!(t.on_packet(ack(2), t0), Output::SendBlocks(3..4));
    assert_eq!(t.on_packet(ack(3), t0), Output::Done);
    assert_eq!(t.acked_bytes(), 1100);
    // Once done, always done.
    assert_eq!(t.on_packet(ack(3), t0), Output::Done);
    assert_eq!(t.on_timeout(t0 + 10 * SEC), Output::Done);
}

#[test]
fn oack_is_block_zero() {
    let t0 = Instant::now();
    let (mut t, out) = ReadTransfer::start(&params(1468, 4, true), 5000, 3, t0);
    assert_eq!(out, Output::SendOAck);
    assert_eq!(t.first_unacked(), 0);
    // ACKs other than 0 do not count for the OACK.
    assert_eq!(t.on_packet(ack(1), t0), Output::Wait);
    assert_eq!(t.on_packet(ack(65535), t0), Output::Wait);
    // The OACK is retransmitted on timeout.
    assert_eq!(t.on_timeout(t0 + SEC), Output::SendOAck);
    assert_eq!(t.on_packet(ack(0), t0), Output::SendBlocks(1..5));
    assert_eq!(t.on_packet(ack(4), t0), Output::Done);
}

#[test]
fn multiple_of_block_size_ends_with_an_empty_block() {
    let t0 = Instant::now();
    let (mut t, out) = ReadTransfer::start(&params(512, 1, false), 1024, 3, t0);
    assert_eq!(out, Output::SendBlocks(1..2));
    assert_eq!(t.block_count(), 3);
    assert_eq!(t.block_span(3), (1024, 0));
    t.on_packet(ack(1), t0);
    assert_eq!(t.on_packet(ack(2), t0), Output::SendBlocks(3..4));
    assert_eq!(t.on_packet(ack(3), t0), Output::Done);
    // An empty file is one empty block.
    let (mut t, out) = ReadTransfer::start(&params(512, 8, false), 0, 3, t0);
    assert_eq!(out, Output::SendBlocks(1..2));
    assert_eq!(t.block_span(1), (0, 0));
    assert_eq!(t.on_packet(ack(1), t0), Output::Done);
    assert_eq!(t.acked_bytes(), 0);
}

#[test]
fn duplicate_stale_and_future_acks_are_ignored() {
    let t0 = Instant::now();
    let (mut t, _) = ReadTransfer::start(&params(8, 4, false), 800, 3, t0);
    assert_eq!(t.on_packet(ack(4), t0), Output::SendBlocks(5..9));
    // Duplicate of the last ACK: no retransmission (Sorcerer's Apprentice).
    assert_eq!(t.on_packet(ack(4), t0), Output::Wait);
    // Older ACKs, and ACKs for blocks not sent yet.
    for n in [0, 1, 3, 9, 10, 1000, 65535] {
        assert_eq!(t.on_packet(ack(n), t0), Output::Wait, "ACK {n}");
    }
    // Other packets.
    assert_eq!(t.on_packet(ClientPacket::Other, t0), Output::Wait);
    assert_eq!(t.first_unacked(), 5);
}

#[test]
fn partial_ack_resends_from_the_gap() {
    let t0 = Instant::now();
    let (mut t, out) = ReadTransfer::start(&params(8, 4, false), 800, 3, t0);
    assert_eq!(out, Output::SendBlocks(1..5));
    // The client got 1 and 2, lost 3.
    assert_eq!(t.on_packet(ack(2), t0), Output::SendBlocks(3..7));
}

#[test]
fn timeouts_retransmit_then_fail() {
    let t0 = Instant::now();
    let (mut t, _) = ReadTransfer::start(&params(512, 2, false), 5000, 2, t0);
    // Early wake-ups do nothing.
    assert_eq!(t.on_timeout(t0 + SEC / 2), Output::Wait);
    assert_eq!(t.deadline(), t0 + SEC);
    assert_eq!(t.on_timeout(t0 + SEC), Output::SendBlocks(1..3));
    assert_eq!(t.deadline(), t0 + 2 * SEC);
    assert_eq!(t.on_timeout(t0 + 2 * SEC), Output::SendBlocks(1..3));
    let failed = Output::Failed(Failure::TimedOut {
        block: 1,
        retries: 2,
    });
    assert_eq!(t.on_timeout(t0 + 3 * SEC), failed);
    assert_eq!(t.on_packet(ack(2), t0 + 3 * SEC), failed);
}

#[test]
fn progress_resets_the_retry_budget() {
    let t0 = Instant::now();
    let (mut t, _) = ReadTransfer::start(&params(8, 1, false), 80, 1, t0);
    assert_eq!(t.on_timeout(t0 + SEC), Output::SendBlocks(1..2));
    assert_eq!(t.on_packet(ack(1), t0 + SEC), Output::SendBlocks(2..3));
    assert_eq!(t.deadline(), t0 + 2 * SEC);
    assert_eq!(t.on_timeout(t0 + 2 * SEC), Output::SendBlocks(2..3));
}

#[test]
fn client_error_ends_the_transfer() {
    let t0 = Instant::now();
    let (mut t, _) = ReadTransfer::start(&params(512, 1, false), 5000, 3, t0);
    let e = ClientPacket::Error {
        code: 0,
        message: b"",
    };
    let failed = Output::Failed(Failure::ClientError { code: 0 });
    assert_eq!(t.on_packet(e, t0), failed);
    assert_eq!(t.on_timeout(t0 + SEC), failed);
}

#[test]
fn block_numbers_roll_over() {
    let t0 = Instant::now();
    // 70,000 blocks of 8 bytes: the wire number passes 65535 -> 0.
    let len = 8 * 70_000 + 3;
    let (mut t, _) = ReadTransfer::start(&params(8, 16, true), len, 3, t0);
    let mut out = t.on_packet(ack(0), t0);
    let mut sent = 0u64;
    loop {
        match out {
            Output::SendBlocks(r) => {
                sent += r.end - r.start;
                out = t.on_packet(ack(ReadTransfer::wire_block(r.end - 1)), t0);
            }
            Output::Done => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sent, 70_001);
    assert_eq!(t.acked_bytes(), len);
    assert_eq!(ReadTransfer::wire_block(65_536), 0);
    assert_eq!(ReadTransfer::wire_block(65_537), 1);
}

#[test]
fn lossy_client_still_gets_every_block_in_order() {
    // A client that drops every 7th DATA packet and every 5th ACK, acknowledging the last
    // in-order block at the end of each window or on a gap (RFC 7440).
    let mut now = Instant::now();
    let len = 8 * 1000 + 5;
    let (mut t, mut out) = ReadTransfer::start(&params(8, 4, false), len, 50, now);
    let (mut received, mut packets, mut acks) = (0u64, 0u64, 0u64);
    for _ in 0..100_000 {
        let mut reply = None;
        match out {
            Output::SendBlocks(r) => {
                for b in r {
                    packets += 1;
                    if packets % 7 == 0 {
                        continue;
                    }
                    if b == received + 1 {
                        received = b;
                    }
                }
                acks += 1;
                if acks % 5 != 0 {
                    reply = Some(ReadTransfer::wire_block(received));
                }
            }
            Output::Wait => {}
            Output::Done => break,
            other => panic!("{other:?}"),
        }
        out = match reply {
            Some(n) => t.on_packet(ack(n), now),
            None => {
                now = t.deadline();
                t.on_timeout(now)
            }
        };
    }
    assert_eq!(out, Output::Done);
    assert_eq!(received, t.block_count());
    assert_eq!(t.acked_bytes(), len);
}
