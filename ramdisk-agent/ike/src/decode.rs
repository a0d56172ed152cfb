//! The IKEv2 decoder: `ipsec-parser` reads the header, the generic payload headers and most
//! payload bodies; this module walks the next-payload chain itself, checks every length, and
//! turns the result into the typed [`Payload`] view. Pure; never panics on input.
//!
//! ipsec-parser 0.7 mis-sizes the Notify (data loses its last 4 bytes), AUTH (keeps the 3
//! reserved bytes), Vendor ID and Delete bodies, so those are read here from the generic
//! payload's bytes; the others go through its content parsers and are re-checked.

use ipsec_parser as ip;

use crate::consts::{
    GENERIC_HEADER_LEN, HEADER_LEN, MAX_MESSAGE_LEN, payload as pt, transform as tf,
};
use crate::encode::Header;
use crate::error::{DecodeError, MAX_PAYLOADS};
use crate::payload::{
    Config, ConfigAttribute, Identity, Notify, Payload, Proposal, TrafficSelector, Transform,
};

/// A decoded message: header, the payloads before any SK payload, and where SK sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
    pub sk: Option<SkLocation>,
}

/// Where the SK payload sits in the datagram (RFC 7296 3.14); opened by [`crate::sk::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkLocation {
    /// Offset of the SK payload's generic header.
    pub offset: usize,
    /// The type of the first payload inside.
    pub first_inner: u8,
}

impl Message {
    pub fn is_response(&self) -> bool {
        self.header.flags & crate::consts::flags::RESPONSE != 0
    }
    /// The notifies, in order.
    pub fn notifies(&self) -> impl Iterator<Item = &Notify> {
        self.payloads.iter().filter_map(|p| match p {
            Payload::Notify(n) => Some(n),
            _ => None,
        })
    }
}

/// Decodes one UDP datagram as an IKEv2 message (no non-ESP marker: port 500 framing).
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::TooShort { got: bytes.len() });
    }
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLong(bytes.len()));
    }
    let (_, h) =
        ip::parse_ikev2_header(bytes).map_err(|_| DecodeError::TooShort { got: bytes.len() })?;
    if h.maj_ver != 2 {
        return Err(DecodeError::BadVersion {
            major: h.maj_ver,
            minor: h.min_ver,
        });
    }
    if usize::try_from(h.length).ok() != Some(bytes.len()) {
        return Err(DecodeError::LengthMismatch {
            declared: h.length,
            got: bytes.len(),
        });
    }
    let header = Header {
        spi_i: h.init_spi,
        spi_r: h.resp_spi,
        exchange: h.exch_type.0,
        flags: h.flags,
        msg_id: h.msg_id,
    };
    let (payloads, sk) = decode_chain(bytes, HEADER_LEN, h.next_payload.0, true)?;
    Ok(Message {
        header,
        payloads,
        sk,
    })
}

/// Walks a payload chain in `buf[start..]` beginning with type `first`. An SK payload is
/// allowed only when `allow_sk` (at the top level) and must be the last one.
pub(crate) fn decode_chain(
    buf: &[u8],
    start: usize,
    first: u8,
    allow_sk: bool,
) -> Result<(Vec<Payload>, Option<SkLocation>), DecodeError> {
    let mut out = Vec::new();
    let mut next = first;
    let mut pos = start;
    while next != pt::NONE {
        let index = out.len();
        if index >= MAX_PAYLOADS {
            return Err(DecodeError::TooManyPayloads);
        }
        let rest = buf.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            return Err(DecodeError::ChainTooShort { kind: next });
        }
        if rest.len() < GENERIC_HEADER_LEN {
            return Err(DecodeError::TruncatedPayload {
                index,
                kind: next,
                declared: 0,
                left: rest.len(),
            });
        }
        let declared = u16::from_be_bytes([rest[2], rest[3]]);
        if usize::from(declared) < GENERIC_HEADER_LEN {
            let min = GENERIC_HEADER_LEN;
            return Err(DecodeError::PayloadTooSmall {
                index,
                kind: next,
                declared,
                min,
            });
        }
        if usize::from(declared) > rest.len() {
            return Err(DecodeError::TruncatedPayload {
                index,
                kind: next,
                declared,
                left: rest.len(),
            });
        }
        let (_, g) = ip::parse_ikev2_payload_generic(rest).map_err(|_| DecodeError::Malformed {
            index,
            kind: next,
            what: "generic payload header",
        })?;
        if next == pt::SK && allow_sk {
            let end = pos + usize::from(declared);
            if end != buf.len() {
                return Err(DecodeError::SkNotLast {
                    left: buf.len() - end,
                });
            }
            let first_inner = g.hdr.next_payload_type.0;
            return Ok((
                out,
                Some(SkLocation {
                    offset: pos,
                    first_inner,
                }),
            ));
        }
        out.push(decode_body(index, next, g.hdr.critical, g.payload)?);
        next = g.hdr.next_payload_type.0;
        pos += usize::from(declared);
    }
    if pos != buf.len() {
        return Err(DecodeError::TrailingBytes {
            left: buf.len().saturating_sub(pos),
        });
    }
    Ok((out, None))
}

fn decode_body(
    index: usize,
    kind: u8,
    critical: bool,
    body: &[u8],
) -> Result<Payload, DecodeError> {
    let bad = |what| DecodeError::Malformed { index, kind, what };
    let small = |min| DecodeError::PayloadTooSmall {
        index,
        kind,
        declared: u16::try_from(body.len() + GENERIC_HEADER_LEN).unwrap_or(u16::MAX),
        min: min + GENERIC_HEADER_LEN,
    };
    let len = u16::try_from(body.len()).map_err(|_| bad("body over 65535 bytes"))?;
    let p = match kind {
        pt::SA => Payload::Sa(decode_sa(body).map_err(bad)?),
        pt::KE => match ip::parse_ikev2_payload_kex(body, len) {
            Ok((&[], ip::IkeV2PayloadContent::KE(k))) => Payload::Ke {
                group: k.dh_group.0,
                data: k.kex_data.to_vec(),
            },
            _ => return Err(small(4)),
        },
        pt::NONCE => Payload::Nonce(body.to_vec()),
        pt::NOTIFY => Payload::Notify(decode_notify(body).ok_or_else(|| small(4))?),
        pt::IDI | pt::IDR => {
            let parsed = ip::parse_ikev2_payload_ident_init(body, len);
            let Ok((rest, ip::IkeV2PayloadContent::IDi(i))) = parsed else {
                return Err(small(4));
            };
            if !rest.is_empty() {
                return Err(bad("identification body longer than its data"));
            }
            let id = Identity {
                id_type: i.id_type.0,
                data: i.ident_data.to_vec(),
            };
            if kind == pt::IDI {
                Payload::IdI(id)
            } else {
                Payload::IdR(id)
            }
        }
        pt::CERT => match ip::parse_ikev2_payload_certificate(body, len) {
            Ok((_, ip::IkeV2PayloadContent::Certificate(c))) => Payload::Cert {
                encoding: c.cert_encoding.0,
                data: c.cert_data.to_vec(),
            },
            _ => return Err(small(1)),
        },
        pt::CERTREQ => match ip::parse_ikev2_payload_certificate_request(body, len) {
            Ok((_, ip::IkeV2PayloadContent::CertificateRequest(c))) => Payload::CertReq {
                encoding: c.cert_encoding.0,
                data: c.ca_data.to_vec(),
            },
            _ => return Err(small(1)),
        },
        pt::AUTH => {
            let (&[method, _, _, _], data) =
                body.split_first_chunk::<4>().ok_or_else(|| small(4))?;
            Payload::Auth {
                method,
                data: data.to_vec(),
            }
        }
        pt::TSI | pt::TSR => {
            let ts = decode_ts(body, len).map_err(bad)?;
            if kind == pt::TSI {
                Payload::TsI(ts)
            } else {
                Payload::TsR(ts)
            }
        }
        pt::VENDOR_ID => Payload::VendorId(body.to_vec()),
        pt::CP => Payload::Cp(decode_cp(body).map_err(bad)?),
        _ if critical => return Err(DecodeError::UnsupportedCritical { kind }),
        _ => Payload::Unknown {
            kind,
            body: body.to_vec(),
        },
    };
    Ok(p)
}

fn decode_notify(body: &[u8]) -> Option<Notify> {
    let (&[protocol, spi_size, t0, t1], rest) = body.split_first_chunk::<4>()?;
    let spi = rest.get(..usize::from(spi_size))?;
    let data = rest.get(usize::from(spi_size)..)?;
    Some(Notify {
        protocol,
        spi: spi.to_vec(),
        kind: u16::from_be_bytes([t0, t1]),
        data: data.to_vec(),
    })
}

/// Reads a Configuration payload (RFC 7296 3.15): type, 3 reserved bytes, then attributes
/// of 2-byte type (top bit reserved, ignored) | 2-byte length | value, filling the body exactly.
/// ipsec-parser 0.7 has no CP parser, so this is ours.
fn decode_cp(body: &[u8]) -> Result<Config, &'static str> {
    let (&[cfg_type, _, _, _], mut rest) = body
        .split_first_chunk::<4>()
        .ok_or("configuration payload shorter than its 4-byte header")?;
    let mut attributes = Vec::new();
    while !rest.is_empty() {
        let (&[t0, t1, l0, l1], after) = rest
            .split_first_chunk::<4>()
            .ok_or("configuration attribute header truncated")?;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let (value, next) = after
            .split_at_checked(len)
            .ok_or("configuration attribute longer than the payload")?;
        attributes.push(ConfigAttribute {
            kind: u16::from_be_bytes([t0, t1]) & crate::consts::cfg::ATTRIBUTE_TYPE_MASK,
            value: value.to_vec(),
        });
        rest = next;
    }
    Ok(Config {
        cfg_type,
        attributes,
    })
}

fn decode_sa(body: &[u8]) -> Result<Vec<Proposal>, &'static str> {
    let (rest, content) = ip::parse_ikev2_payload_sa(body, 0).map_err(|_| "SA proposals")?;
    if !rest.is_empty() {
        return Err("bytes after the last proposal");
    }
    let ip::IkeV2PayloadContent::SA(props) = content else {
        return Err("SA proposals");
    };
    let n = props.len();
    let mut out = Vec::with_capacity(n);
    for (i, p) in props.into_iter().enumerate() {
        if p.last != if i + 1 == n { 0 } else { 2 } {
            return Err("proposal 'last' field disagrees with the proposal count");
        }
        let spi = p.spi.unwrap_or_default();
        let mut used = 8 + spi.len();
        let mut transforms = Vec::with_capacity(p.transforms.len());
        let tn = p.transforms.len();
        for (ti, t) in p.transforms.into_iter().enumerate() {
            if t.transform_length < 8 {
                return Err("transform shorter than 8 bytes");
            }
            if t.last != if ti + 1 == tn { 0 } else { 3 } {
                return Err("transform 'last' field disagrees with the transform count");
            }
            used += usize::from(t.transform_length);
            let key_bits = decode_attributes(t.attributes.unwrap_or_default())?;
            transforms.push(Transform {
                kind: t.transform_type.0,
                id: t.transform_id,
                key_bits,
            });
        }
        if used != usize::from(p.proposal_length) {
            return Err("proposal length disagrees with its transforms");
        }
        out.push(Proposal {
            num: p.proposal_num,
            protocol: p.protocol_id.0,
            spi: spi.to_vec(),
            transforms,
        });
    }
    Ok(out)
}

/// Reads transform attributes (RFC 7296 3.3.5); returns the key length, refusing TLV junk.
fn decode_attributes(mut a: &[u8]) -> Result<Option<u16>, &'static str> {
    let mut key_bits = None;
    while !a.is_empty() {
        let (&[t0, t1, v0, v1], rest) = a.split_first_chunk::<4>().ok_or("truncated attribute")?;
        let atype = u16::from_be_bytes([t0, t1]);
        if atype & 0x8000 != 0 {
            if atype & 0x7fff == tf::ATTR_KEY_LENGTH {
                key_bits = Some(u16::from_be_bytes([v0, v1]));
            }
            a = rest;
        } else {
            let len = usize::from(u16::from_be_bytes([v0, v1]));
            a = rest.get(len..).ok_or("truncated TLV attribute")?;
        }
    }
    Ok(key_bits)
}

fn decode_ts(body: &[u8], len: u16) -> Result<Vec<TrafficSelector>, &'static str> {
    let (rest, p) = ip::parse_ikev2_payload_ts(body, len).map_err(|_| "traffic selectors")?;
    if !rest.is_empty() {
        return Err("bytes after the traffic selectors");
    }
    if usize::from(p.num_ts) != p.ts.len() {
        return Err("traffic selector count disagrees with the selectors");
    }
    let total: usize = p.ts.iter().map(|t| usize::from(t.sel_length)).sum();
    if total + 4 != body.len() {
        return Err("bytes after the traffic selectors");
    }
    let mut out = Vec::with_capacity(p.ts.len());
    for t in p.ts {
        if usize::from(t.sel_length) != 8 + t.start_addr.len() + t.end_addr.len() {
            return Err("selector length disagrees with its type");
        }
        out.push(TrafficSelector {
            ts_type: t.ts_type.0,
            ip_protocol: t.ip_proto_id,
            start_port: t.start_port,
            end_port: t.end_port,
            start: t.start_addr.to_vec(),
            end: t.end_addr.to_vec(),
        });
    }
    Ok(out)
}
