//! [`ReadTransfer`]: the sending side of one read request as a state machine. Pure: it is fed
//! the packets the client sent and the current time, and answers with what to send next
//! ([`Output`]); the caller owns the socket, the clock and the file bytes.
//!
//! Blocks are numbered 1.. without bound here ([`ReadTransfer::wire_block`] gives the 16-bit
//! number on the wire, which rolls over from 65535 to 0); index 0 stands for the OACK, which is
//! acknowledged with ACK 0. A file of `n` bytes takes `n / blksize + 1` blocks, the last one
//! shorter than `blksize` (empty when `n` is a multiple).
//!
//! Sending is window by window (RFC 7440; a window of 1 is RFC 1350 lock-step): the window's
//! blocks go out, then the machine waits. An ACK of any block in the outstanding window slides
//! the window to the block after it and sends the next window from there (a partial ACK means
//! the client lost the blocks after it). ACKs of blocks already acknowledged, of blocks not yet
//! sent and anything else are ignored: only a timeout retransmits, so a duplicated ACK never
//! doubles the traffic (no Sorcerer's Apprentice). A window is retransmitted at most
//! `max_retries` times; then the transfer fails. An ERROR from the client ends it at once.

use std::ops::Range;
use std::time::{Duration, Instant};

use super::options::Negotiated;
use super::packet::ClientPacket;

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send the OACK, then wait until [`ReadTransfer::deadline`].
    SendOAck,
    /// Send these blocks, in order, then wait until [`ReadTransfer::deadline`].
    SendBlocks(Range<u64>),
    /// Nothing to send; keep waiting until [`ReadTransfer::deadline`].
    Wait,
    /// The client acknowledged the last block.
    Done,
    /// The transfer is over without the last block acknowledged.
    Failed(Failure),
}

/// Why a transfer ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// `retries` retransmissions of the window starting at `block` went unanswered.
    #[error("no ACK for block {block} after {retries} retransmissions")]
    TimedOut {
        /// The first unacknowledged block (0: the OACK).
        block: u64,
        /// Retransmissions made.
        retries: u32,
    },
    /// The client sent an ERROR packet.
    #[error("the client sent ERROR {code}")]
    ClientError {
        /// Its error code.
        code: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Sending,
    Done,
    Failed(Failure),
}

/// One read transfer (see the module doc).
#[derive(Debug, Clone)]
pub struct ReadTransfer {
    block_size: u64,
    window: u64,
    timeout: Duration,
    max_retries: u32,
    file_len: u64,
    last_block: u64,
    /// First unacknowledged block (0: the OACK).
    base: u64,
    /// One past the last block sent.
    next: u64,
    deadline: Instant,
    retries: u32,
    state: State,
}

impl ReadTransfer {
    /// Starts a transfer of `file_len` bytes with the negotiated parameters; the first output
    /// is the OACK when options were granted, else the first window.
    pub fn start(
        params: &Negotiated,
        file_len: u64,
        max_retries: u32,
        now: Instant,
    ) -> (Self, Output) {
        let block_size = u64::from(params.block_size.max(1));
        let mut t = Self {
            block_size,
            window: u64::from(params.window_size.max(1)),
            timeout: params.timeout,
            max_retries,
            file_len,
            last_block: file_len / block_size + 1,
            base: 0,
            next: 1,
            deadline: now + params.timeout,
            retries: 0,
            state: State::Sending,
        };
        if params.oack.is_empty() {
            let out = t.advance_to(1, now);
            (t, out)
        } else {
            (t, Output::SendOAck)
        }
    }

    /// Handles a packet from the client.
    pub fn on_packet(&mut self, packet: ClientPacket<'_>, now: Instant) -> Output {
        if let Some(out) = self.terminal() {
            return out;
        }
        match packet {
            ClientPacket::Ack(n) => {
                let last_acked = (self.base as u16).wrapping_sub(1);
                let acked = u64::from(n.wrapping_sub(last_acked));
                if acked == 0 || acked > self.next - self.base {
                    // A duplicate, an old ACK, or one for a block not sent yet.
                    return Output::Wait;
                }
                self.advance_to(self.base + acked, now)
            }
            ClientPacket::Error { code, .. } => {
                self.state = State::Failed(Failure::ClientError { code });
                Output::Failed(Failure::ClientError { code })
            }
            ClientPacket::Other => Output::Wait,
        }
    }

    /// Handles the passing of time: retransmits once the deadline has passed.
    pub fn on_timeout(&mut self, now: Instant) -> Output {
        if let Some(out) = self.terminal() {
            return out;
        }
        if now < self.deadline {
            return Output::Wait;
        }
        if self.retries >= self.max_retries {
            let failure = Failure::TimedOut {
                block: self.base,
                retries: self.retries,
            };
            self.state = State::Failed(failure);
            return Output::Failed(failure);
        }
        self.retries += 1;
        self.deadline = now + self.timeout;
        if self.base == 0 {
            Output::SendOAck
        } else {
            Output::SendBlocks(self.base..self.next)
        }
    }

    fn advance_to(&mut self, base: u64, now: Instant) -> Output {
        self.base = base;
        if base > self.last_block {
            self.state = State::Done;
            return Output::Done;
        }
        self.next = (base + self.window).min(self.last_block + 1);
        self.retries = 0;
        self.deadline = now + self.timeout;
        Output::SendBlocks(base..self.next)
    }

    fn terminal(&self) -> Option<Output> {
        match self.state {
            State::Sending => None,
            State::Done => Some(Output::Done),
            State::Failed(f) => Some(Output::Failed(f)),
        }
    }

    /// When to call [`on_timeout`](Self::on_timeout) if no packet arrives.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The retransmission timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The number block `index` carries on the wire (rolls over to 0 after 65535).
    pub fn wire_block(index: u64) -> u16 {
        index as u16
    }

    /// Byte offset and length of block `index` (1-based) in the file.
    pub fn block_span(&self, index: u64) -> (u64, usize) {
        let offset = index.saturating_sub(1).saturating_mul(self.block_size);
        let len = self.file_len.saturating_sub(offset).min(self.block_size);
        (offset, len as usize)
    }

    /// Bytes the client has acknowledged.
    pub fn acked_bytes(&self) -> u64 {
        self.base
            .saturating_sub(1)
            .saturating_mul(self.block_size)
            .min(self.file_len)
    }

    /// The first unacknowledged block (0: the OACK; past the last block when done).
    pub fn first_unacked(&self) -> u64 {
        self.base
    }

    /// The number of blocks of the file.
    pub fn block_count(&self) -> u64 {
        self.last_block
    }
}

#[cfg(test)]
#[path = "transfer_machine_tests.rs"]
mod tests;
