//! The IO shell of one read transfer: a blocking UDP socket of its own (the transfer's TID),
//! connected to the client, driving a [`ReadTransfer`]. Runs on the transfer's own thread.
//!
//! Per lock-step block this costs one `send` and one `recv`: the receive timeout is set once to
//! the retransmission timeout and changed only after a packet the machine ignored (then to
//! what is left until its deadline). The DATA packet buffer is allocated once per transfer and
//! the file is read a chunk at a time ([`FileData`]).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::handler::{FileData, OpenedRead, Refusal};
use super::options::{TftpOptions, negotiate};
use super::packet::{
    DATA_HEADER_LEN, ErrorCode, RequestedOptions, encode_error, encode_oack, parse_client_packet,
    put_data_header,
};
use super::transfer::{Failure, Output, ReadTransfer};

/// Largest client packet read on a transfer socket (an ACK is 4 bytes; an ERROR's message
/// beyond this is cut, which does not change its meaning).
const CLIENT_PACKET_MAX: usize = 516;

/// How a transfer ended early.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error(transparent)]
    Protocol(#[from] Failure),
    #[error("reading the file: {0}")]
    File(#[source] io::Error),
    #[error("socket: {0}")]
    Socket(#[source] io::Error),
}

/// Sends the ERROR packet of a refusal.
pub(super) fn send_refusal(socket: &UdpSocket, peer: SocketAddr, refusal: Refusal) {
    send_error(socket, peer, refusal.code, refusal.message);
}

fn send_error(socket: &UdpSocket, peer: SocketAddr, code: ErrorCode, message: &str) {
    let mut packet = Vec::with_capacity(64);
    encode_error(&mut packet, code, message);
    // Errors are never retransmitted (RFC 1350); a failed send changes nothing.
    if let Err(e) = socket.send_to(&packet, peer) {
        tracing::debug!(%peer, error = %e, "TFTP ERROR packet not sent");
    }
}

/// Serves `opened` to `peer` over `socket` (bound and connected to `peer`), with the options
/// the client asked for, and reports the outcome.
pub(super) fn run_read(
    socket: &UdpSocket,
    peer: SocketAddr,
    opened: OpenedRead,
    asked: &RequestedOptions,
    limits: &TftpOptions,
) {
    let OpenedRead {
        mut data,
        len,
        report,
    } = opened;
    let params = negotiate(asked, limits, len);
    let (mut transfer, first) =
        ReadTransfer::start(&params, len, limits.max_retries, Instant::now());
    let mut oack = Vec::new();
    encode_oack(&mut oack, &params.oack);
    let mut packet = vec![0u8; DATA_HEADER_LEN + usize::from(params.block_size)];
    let result = drive(socket, &mut transfer, first, &oack, &mut packet, &mut data);
    match result {
        Ok(()) => report.finish(len, true),
        Err(ended) => {
            tracing::info!(%peer, reason = %ended, "TFTP transfer ended early");
            match &ended {
                Ended::Protocol(Failure::TimedOut { .. }) => {
                    send_error(socket, peer, ErrorCode::NotDefined, "Timed out")
                }
                Ended::File(_) => send_error(socket, peer, ErrorCode::NotDefined, "Read error"),
                Ended::Protocol(Failure::ClientError { .. }) | Ended::Socket(_) => {}
            }
            report.finish(transfer.acked_bytes(), false);
        }
    }
}

fn drive(
    socket: &UdpSocket,
    transfer: &mut ReadTransfer,
    mut out: Output,
    oack: &[u8],
    packet: &mut [u8],
    data: &mut FileData,
) -> Result<(), Ended> {
    let mut reply = [0u8; CLIENT_PACKET_MAX];
    let mut recv_timeout: Option<Duration> = None;
    loop {
        let sent = match out {
            Output::SendOAck => {
                socket.send(oack).map_err(Ended::Socket)?;
                true
            }
            Output::SendBlocks(blocks) => {
                for block in blocks {
                    let (offset, n) = transfer.block_span(block);
                    let packet = &mut packet[..DATA_HEADER_LEN + n];
                    put_data_header(packet, ReadTransfer::wire_block(block));
                    data.read_at(offset, &mut packet[DATA_HEADER_LEN..])
                        .map_err(Ended::File)?;
                    socket.send(packet).map_err(Ended::Socket)?;
                }
                true
            }
            Output::Wait => false,
            Output::Done => return Ok(()),
            Output::Failed(failure) => return Err(failure.into()),
        };
        // Just sent: the deadline is a full timeout away (it was set before the send, so the
        // receive times out just after it). Otherwise wait for what is left.
        let wait = if sent {
            transfer.timeout()
        } else {
            transfer
                .deadline()
                .saturating_duration_since(Instant::now())
        };
        if wait.is_zero() {
            out = transfer.on_timeout(Instant::now());
            continue;
        }
        if recv_timeout != Some(wait) {
            socket.set_read_timeout(Some(wait)).map_err(Ended::Socket)?;
            recv_timeout = Some(wait);
        }
        out = match socket.recv(&mut reply) {
            Ok(n) => transfer.on_packet(parse_client_packet(&reply[..n]), Instant::now()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                transfer.on_timeout(Instant::now())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Output::Wait,
            // ECONNREFUSED: the client's port is gone (ICMP port unreachable).
            Err(e) => return Err(Ended::Socket(e)),
        };
    }
}
