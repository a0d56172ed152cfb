//! The IKEv2 encoder (RFC 7296 section 3): header, payload chain, payload bodies. Pure.
//!
//! ```text
//!  IKE header (28)                         generic payload header (4)
//!  +---------------+---------------+       +--------+--------+----------------+
//!  | SPIi (8)      | SPIr (8)      |       | next   |C| rsvd | payload length |
//!  | next|ver|exch|flags| msg id | length | +--------+--------+----------------+
//!  +---------------------------------------+ | body ...
//! ```

use crate::consts::{
    GENERIC_HEADER_LEN, HEADER_LEN, MAX_MESSAGE_LEN, payload as pt, transform as tf,
};
use crate::error::EncodeError;
use crate::payload::{Config, Payload, Proposal, TrafficSelector};

/// The fixed IKE header fields a sender chooses (next payload and length follow from the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    pub exchange: u8,
    pub flags: u8,
    pub msg_id: u32,
}

/// IKE version 2.0 in the header's version octet.
pub const VERSION_2_0: u8 = 0x20;

/// Builds an unprotected message (IKE_SA_INIT) from its payloads, in order.
pub fn encode_message(header: &Header, payloads: &[Payload]) -> Result<Vec<u8>, EncodeError> {
    let first = payloads.first().map_or(pt::NONE, Payload::kind);
    let mut out = Vec::with_capacity(512);
    write_header(&mut out, header, first);
    write_chain(&mut out, payloads)?;
    finish_length(&mut out)?;
    Ok(out)
}

/// Writes the 28-byte header with a zero length (set by [`finish_length`]).
pub(crate) fn write_header(out: &mut Vec<u8>, h: &Header, next: u8) {
    out.extend_from_slice(&h.spi_i.to_be_bytes());
    out.extend_from_slice(&h.spi_r.to_be_bytes());
    out.extend_from_slice(&[next, VERSION_2_0, h.exchange, h.flags]);
    out.extend_from_slice(&h.msg_id.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// Sets the header's length field to the message's size.
pub(crate) fn finish_length(out: &mut [u8]) -> Result<(), EncodeError> {
    if out.len() > MAX_MESSAGE_LEN {
        return Err(EncodeError::MessageTooLong(out.len()));
    }
    let len = u32::try_from(out.len()).map_err(|_| EncodeError::MessageTooLong(out.len()))?;
    out[24..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Writes payloads with generic headers chained by next-payload; the last names NONE.
pub(crate) fn write_chain(out: &mut Vec<u8>, payloads: &[Payload]) -> Result<(), EncodeError> {
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads.get(i + 1).map_or(pt::NONE, Payload::kind);
        let body = encode_body(p)?;
        let len = GENERIC_HEADER_LEN + body.len();
        let len16 = u16::try_from(len).map_err(|_| EncodeError::PayloadTooLong {
            kind: p.kind(),
            len,
        })?;
        out.extend_from_slice(&[next, 0]);
        out.extend_from_slice(&len16.to_be_bytes());
        out.extend_from_slice(&body);
    }
    Ok(())
}

/// The body of one payload (everything after its generic header).
pub fn encode_body(p: &Payload) -> Result<Vec<u8>, EncodeError> {
    let mut b = Vec::new();
    match p {
        Payload::Sa(proposals) => encode_sa(&mut b, proposals)?,
        Payload::Ke { group, data } => {
            b.extend_from_slice(&group.to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(data);
        }
        Payload::Nonce(n) | Payload::VendorId(n) | Payload::Unknown { body: n, .. } => {
            b.extend_from_slice(n)
        }
        Payload::Notify(n) => {
            b.push(n.protocol);
            b.push(count_u8("notify SPI", n.spi.len())?);
            b.extend_from_slice(&n.kind.to_be_bytes());
            b.extend_from_slice(&n.spi);
            b.extend_from_slice(&n.data);
        }
        Payload::IdI(id) | Payload::IdR(id) => {
            b.extend_from_slice(&[id.id_type, 0, 0, 0]);
            b.extend_from_slice(&id.data);
        }
        Payload::Cert { encoding, data } | Payload::CertReq { encoding, data } => {
            b.push(*encoding);
            b.extend_from_slice(data);
        }
        Payload::Auth { method, data } => {
            b.extend_from_slice(&[*method, 0, 0, 0]);
            b.extend_from_slice(data);
        }
        Payload::TsI(ts) | Payload::TsR(ts) => encode_ts(&mut b, ts)?,
        Payload::Cp(c) => encode_cp(&mut b, c)?,
    }
    Ok(b)
}

fn count_u8(what: &'static str, len: usize) -> Result<u8, EncodeError> {
    u8::try_from(len).map_err(|_| EncodeError::FieldTooLong {
        what,
        len,
        max: 255,
    })
}

fn len_u16(what: &'static str, len: usize) -> Result<u16, EncodeError> {
    u16::try_from(len).map_err(|_| EncodeError::FieldTooLong {
        what,
        len,
        max: 65535,
    })
}

fn encode_sa(b: &mut Vec<u8>, proposals: &[Proposal]) -> Result<(), EncodeError> {
    for (pi, prop) in proposals.iter().enumerate() {
        let start = b.len();
        let last = if pi + 1 == proposals.len() { 0 } else { 2 };
        b.extend_from_slice(&[last, 0, 0, 0, prop.num, prop.protocol]);
        b.push(count_u8("proposal SPI", prop.spi.len())?);
        b.push(count_u8("transforms", prop.transforms.len())?);
        b.extend_from_slice(&prop.spi);
        for (ti, t) in prop.transforms.iter().enumerate() {
            let last = if ti + 1 == prop.transforms.len() {
                0
            } else {
                3
            };
            let len: u16 = if t.key_bits.is_some() { 12 } else { 8 };
            b.extend_from_slice(&[last, 0]);
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(&[t.kind, 0]);
            b.extend_from_slice(&t.id.to_be_bytes());
            if let Some(bits) = t.key_bits {
                b.extend_from_slice(&(0x8000 | tf::ATTR_KEY_LENGTH).to_be_bytes());
                b.extend_from_slice(&bits.to_be_bytes());
            }
        }
        let plen = len_u16("proposal", b.len() - start)?;
        b[start + 2..start + 4].copy_from_slice(&plen.to_be_bytes());
    }
    Ok(())
}

fn encode_ts(b: &mut Vec<u8>, ts: &[TrafficSelector]) -> Result<(), EncodeError> {
    b.push(count_u8("traffic selectors", ts.len())?);
    b.extend_from_slice(&[0, 0, 0]);
    for t in ts {
        let len = len_u16("traffic selector", 8 + t.start.len() + t.end.len())?;
        b.extend_from_slice(&[t.ts_type, t.ip_protocol]);
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&t.start_port.to_be_bytes());
        b.extend_from_slice(&t.end_port.to_be_bytes());
        b.extend_from_slice(&t.start);
        b.extend_from_slice(&t.end);
    }
    Ok(())
}

fn encode_cp(b: &mut Vec<u8>, c: &Config) -> Result<(), EncodeError> {
    b.extend_from_slice(&[c.cfg_type, 0, 0, 0]);
    for a in &c.attributes {
        if a.kind > crate::consts::cfg::ATTRIBUTE_TYPE_MASK {
            return Err(EncodeError::FieldTooLong {
                what: "configuration attribute type",
                len: usize::from(a.kind),
                max: usize::from(crate::consts::cfg::ATTRIBUTE_TYPE_MASK),
            });
        }
        b.extend_from_slice(&a.kind.to_be_bytes());
        b.extend_from_slice(&len_u16("configuration attribute", a.value.len())?.to_be_bytes());
        b.extend_from_slice(&a.value);
    }
    Ok(())
}
