//! A tiny blocking TFTP client for the transfer tests: RRQ with options (RFC 2347/2348/2349/7440),
//! and a bare WRQ to see the refusal. Test-only; does socket IO.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// What the server answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file, and the options the server acknowledged (OACK), if any.
    Data {
        bytes: Vec<u8>,
        oack: Option<Vec<(String, String)>>,
    },
    /// An ERROR packet.
    Error { code: u16, msg: String },
}

fn request(opcode: u16, file: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut p = opcode.to_be_bytes().to_vec();
    for s in [file, "octet"]
        .into_iter()
        .chain(opts.iter().flat_map(|(k, v)| [*k, *v]))
    {
        p.extend_from_slice(s.as_bytes());
        p.push(0);
    }
    p
}

fn ack(sock: &UdpSocket, peer: SocketAddr, block: u16) -> Result<(), String> {
    let mut p = 4u16.to_be_bytes().to_vec();
    p.extend_from_slice(&block.to_be_bytes());
    sock.send_to(&p, peer).map(drop).map_err(|e| e.to_string())
}

fn strings(body: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = body
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    v.pop(); // after the last NUL
    v
}

fn socket() -> Result<UdpSocket, String> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    Ok(sock)
}

/// Reads `file`, asking for `opts`; acknowledges per window as RFC 7440 describes.
pub fn read(server: SocketAddr, file: &str, opts: &[(&str, &str)]) -> Result<Outcome, String> {
    let sock = socket()?;
    sock.send_to(&request(1, file, opts), server)
        .map_err(|e| e.to_string())?;
    let (mut blksize, mut window) = (512usize, 1usize);
    let (mut bytes, mut oack, mut peer) = (Vec::new(), None, None);
    let (mut expected, mut in_window) = (1u16, 0usize);
    let mut buf = vec![0u8; 70_000];
    loop {
        let (n, from) = sock.recv_from(&mut buf).map_err(|e| format!("recv: {e}"))?;
        if *peer.get_or_insert(from) != from {
            continue;
        }
        let pkt = buf.get(..n).ok_or("short")?;
        let (op, body) = (u16::from_be_bytes([pkt[0], pkt[1]]), &pkt[2..]);
        match op {
            6 => {
                let kv: Vec<(String, String)> = strings(body)
                    .chunks(2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect();
                for (k, v) in &kv {
                    match k.as_str() {
                        "blksize" => blksize = v.parse().map_err(|_| "bad blksize")?,
                        "windowsize" => window = v.parse().map_err(|_| "bad windowsize")?,
                        _ => {}
                    }
                }
                oack = Some(kv);
                ack(&sock, from, 0)?;
            }
            5 => {
                let code = u16::from_be_bytes([body[0], body[1]]);
                let msg = strings(&body[2..]).join("");
                return Ok(Outcome::Error { code, msg });
            }
            3 => {
                let block = u16::from_be_bytes([body[0], body[1]]);
                let data = &body[2..];
                if block != expected {
                    ack(&sock, from, expected.wrapping_sub(1))?;
                    in_window = 0;
                    continue;
                }
                bytes.extend_from_slice(data);
                expected = expected.wrapping_add(1);
                in_window += 1;
                if data.len() < blksize {
                    ack(&sock, from, block)?;
                    return Ok(Outcome::Data { bytes, oack });
                }
                if in_window == window {
                    ack(&sock, from, block)?;
                    in_window = 0;
                }
            }
            other => return Err(format!("unexpected opcode {other}")),
        }
    }
}

/// Sends a WRQ and returns the server's first answer.
pub fn write(server: SocketAddr, file: &str) -> Result<Outcome, String> {
    let sock = socket()?;
    sock.send_to(&request(2, file, &[]), server)
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1024];
    let (n, _) = sock.recv_from(&mut buf).map_err(|e| format!("recv: {e}"))?;
    let pkt = buf.get(..n).ok_or("short")?;
    match u16::from_be_bytes([pkt[0], pkt[1]]) {
        5 => Ok(Outcome::Error {
            code: u16::from_be_bytes([pkt[2], pkt[3]]),
            msg: strings(&pkt[4..]).join(""),
        }),
        op => Err(format!("WRQ answered with opcode {op}")),
    }
}
