//! TCP segmentation and coalescing for a TUN device opened with `IFF_VNET_HDR`: every packet
//! carries a 10-byte `virtio_net_hdr`. With `TUN_F_CSUM | TUN_F_TSO4` the kernel hands over
//! IPv4 TCP "super-packets" of up to 64 KiB ([`split`] cuts them into MSS-sized packets with
//! their own headers and checksums, as a NIC would) and packets whose checksum is left for the
//! device to finish; in the other direction [`Coalescer`] merges consecutive in-order segments
//! of one TCP flow into one super-packet for the kernel (what GRO does for a NIC), so the
//! receiving stack handles one packet per burst instead of one per segment.
//!
//! Pure: bytes in, bytes out; every length is checked (fuzz target `wg_packet`).

/// Size of `struct virtio_net_hdr` (no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;
const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const TCP: u8 = 6;
/// TCP flags.
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const CWR: u8 = 0x80;
/// Largest IPv4 packet.
const MAX_IP: usize = 65_535;

/// `struct virtio_net_hdr` (little-endian, as TUN uses it on x86 and arm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b = b.get(..VNET_HDR_LEN)?;
        let u = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    pub fn bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }
}

/// Why a packet from the TUN device could not be prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("TUN packet shorter than its virtio_net_hdr")]
    Short,
    #[error("checksum offsets beyond the packet")]
    Checksum,
    #[error("TCP super-packet with bad headers or segment size")]
    Segment,
    #[error("unsupported GSO type {0}")]
    GsoType(u8),
}

/// Ones'-complement sum of `data` (big-endian 16-bit words, odd byte padded) added to `sum`.
fn add(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // fold each 64-bit word as four 16-bit words via two 32-bit halves
        sum += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The IPv4 pseudo-header sum of a TCP/UDP segment of `len` bytes.
fn pseudo_v4(ip: &[u8], proto: u8, len: usize) -> u64 {
    add(0, ip.get(12..20).unwrap_or_default()) + u64::from(proto) + len as u64
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(d) = b.get_mut(at..at + 2) {
        d.copy_from_slice(&v.to_be_bytes());
    }
}

fn get16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |d| u16::from_be_bytes([d[0], d[1]]))
}

fn get32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
}

fn ipv4_checksum(ip: &mut [u8], ihl: usize) {
    put16(ip, 10, 0);
    let c = !fold(add(0, ip.get(..ihl).unwrap_or_default()));
    put16(ip, 10, c);
}

/// Finishes a checksum the kernel left to the device: the ones' complement of the sum from
/// `csum_start` to the end goes to `csum_start + csum_offset` (which holds the pseudo-header
/// sum already).
fn finish_checksum(hdr: &VnetHdr, pkt: &mut [u8]) -> Result<(), OffloadError> {
    let start = usize::from(hdr.csum_start);
    let at = start + usize::from(hdr.csum_offset);
    if at + 2 > pkt.len() {
        return Err(OffloadError::Checksum);
    }
    let c = !fold(add(0, &pkt[start..]));
    put16(pkt, at, c);
    Ok(())
}

/// Calls `each` with every IP packet in one read from the TUN device (`read` = header + packet):
/// one packet, its checksum finished if needed, or the segments of a TCP super-packet.
/// `scratch` must hold one segment (the device's MTU).
pub fn split(
    read: &mut [u8],
    scratch: &mut [u8],
    mut each: impl FnMut(&[u8]),
) -> Result<(), OffloadError> {
    let hdr = VnetHdr::parse(read).ok_or(OffloadError::Short)?;
    let pkt = read.get_mut(VNET_HDR_LEN..).ok_or(OffloadError::Short)?;
    match hdr.gso_type {
        GSO_NONE => {
            if hdr.flags & F_NEEDS_CSUM != 0 {
                finish_checksum(&hdr, pkt)?;
            }
            each(pkt);
            Ok(())
        }
        GSO_TCPV4 => segment_tcp4(pkt, usize::from(hdr.gso_size), scratch, each),
        other => Err(OffloadError::GsoType(other)),
    }
}

fn segment_tcp4(
    pkt: &[u8],
    mss: usize,
    scratch: &mut [u8],
    mut each: impl FnMut(&[u8]),
) -> Result<(), OffloadError> {
    let first = *pkt.first().ok_or(OffloadError::Segment)?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || pkt.get(9) != Some(&TCP) {
        return Err(OffloadError::Segment);
    }
    let thl = pkt
        .get(ihl + 12)
        .map(|b| usize::from(b >> 4) * 4)
        .ok_or(OffloadError::Segment)?;
    let hdrs = ihl + thl;
    if thl < 20 || hdrs > pkt.len() || mss == 0 || hdrs + mss > scratch.len() {
        return Err(OffloadError::Segment);
    }
    let payload = &pkt[hdrs..];
    let seq0 = get32(pkt, ihl + 4);
    let id0 = get16(pkt, 4);
    let flags = pkt[ihl + 13];
    let n = payload.len().div_ceil(mss).max(1);
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let len = hdrs + chunk.len();
        let seg = &mut scratch[..len];
        seg[..hdrs].copy_from_slice(&pkt[..hdrs]);
        seg[hdrs..].copy_from_slice(chunk);
        put16(seg, 2, len as u16);
        put16(seg, 4, id0.wrapping_add(i as u16));
        ipv4_checksum(seg, ihl);
        let seq = seq0.wrapping_add((i * mss) as u32);
        seg[ihl + 4..ihl + 8].copy_from_slice(&seq.to_be_bytes());
        let mut f = flags;
        if i + 1 < n {
            f &= !(FIN | PSH);
        }
        if i > 0 {
            f &= !CWR;
        }
        seg[ihl + 13] = f;
        put16(seg, ihl + 16, 0);
        let sum = add(pseudo_v4(seg, TCP, len - ihl), &seg[ihl..]);
        put16(seg, ihl + 16, !fold(sum));
        each(seg);
    }
    Ok(())
}

/// The flow being coalesced: what later segments must match.
#[derive(Debug, Clone, Copy)]
struct Flow {
    /// IPv4 source and destination, TCP ports.
    addrs: [u8; 8],
    ports: [u8; 4],
    tos: u8,
    ttl: u8,
    thl: usize,
    ack: u32,
    next_seq: u32,
    mss: usize,
    count: usize,
    /// A shorter or PSH segment was added: nothing may follow it.
    closed: bool,
}

/// Merges consecutive segments of one TCP flow, in order, into one super-packet for the TUN
/// device; anything else passes through alone. `push` and `flush` hand out the bytes to write
/// (virtio header included).
#[derive(Debug)]
pub struct Coalescer {
    buf: Vec<u8>,
    flow: Option<Flow>,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self {
            buf: Vec::with_capacity(VNET_HDR_LEN + MAX_IP),
            flow: None,
        }
    }
}

/// What a segment looks like, if it may be coalesced: IPv4 without options or fragments,
/// TCP with ACK (and maybe PSH) only, some payload.
fn mergeable(pkt: &[u8]) -> Option<(usize, usize)> {
    let ihl = usize::from(*pkt.first()? & 0x0f) * 4;
    if pkt[0] >> 4 != 4 || ihl != 20 || pkt.get(9) != Some(&TCP) || pkt.len() < 40 {
        return None;
    }
    if usize::from(get16(pkt, 2)) != pkt.len() || get16(pkt, 6) & 0x3fff != 0 {
        return None; // padded, or a fragment
    }
    let thl = usize::from(pkt[32] >> 4) * 4;
    let flags = pkt[33];
    if thl < 20 || 20 + thl >= pkt.len() || flags & !(ACK | PSH) != 0 || flags & ACK == 0 {
        return None;
    }
    Some((ihl, thl))
}

impl Coalescer {
    /// Takes the next packet for the TUN device; calls `write` with whatever must be written
    /// before it can be held (or with it, when it cannot be coalesced).
    pub fn push(&mut self, pkt: &[u8], mut write: impl FnMut(&[u8])) {
        let Some((ihl, thl)) = mergeable(pkt) else {
            self.flush(&mut write);
            self.buf.clear();
            self.buf.extend_from_slice(&VnetHdr::default().bytes());
            self.buf.extend_from_slice(pkt);
            write(&self.buf);
            self.buf.clear();
            return;
        };
        let hdrs = ihl + thl;
        let payload = pkt.len() - hdrs;
        let seq = get32(pkt, ihl + 4);
        let psh = pkt[ihl + 13] & PSH != 0;
        if let Some(f) = &mut self.flow {
            let same = !f.closed
                && f.addrs == pkt[12..20]
                && f.ports == pkt[20..24]
                && f.tos == pkt[1]
                && f.ttl == pkt[8]
                && f.thl == thl
                && f.ack == get32(pkt, ihl + 8)
                && f.next_seq == seq
                && payload <= f.mss
                && self.buf.len() - VNET_HDR_LEN + payload <= MAX_IP
                // TCP options (timestamps) must be identical
                && self.buf.get(VNET_HDR_LEN + 40..VNET_HDR_LEN + hdrs) == pkt.get(40..hdrs);
            if same {
                self.buf.extend_from_slice(&pkt[hdrs..]);
                f.next_seq = seq.wrapping_add(payload as u32);
                f.count += 1;
                if payload < f.mss || psh {
                    f.closed = true;
                    if psh {
                        let at = VNET_HDR_LEN + ihl + 13;
                        if let Some(b) = self.buf.get_mut(at) {
                            *b |= PSH;
                        }
                    }
                }
                return;
            }
        }
        self.flush(&mut write);
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; VNET_HDR_LEN]);
        self.buf.extend_from_slice(pkt);
        let mut addrs = [0u8; 8];
        addrs.copy_from_slice(&pkt[12..20]);
        let mut ports = [0u8; 4];
        ports.copy_from_slice(&pkt[20..24]);
        self.flow = Some(Flow {
            addrs,
            ports,
            tos: pkt[1],
            ttl: pkt[8],
            thl,
            ack: get32(pkt, ihl + 8),
            next_seq: seq.wrapping_add(payload as u32),
            mss: payload,
            count: 1,
            closed: psh,
        });
    }

    /// Writes the held super-packet, if any.
    pub fn flush(&mut self, mut write: impl FnMut(&[u8])) {
        let Some(f) = self.flow.take() else {
            return;
        };
        if f.count > 1 {
            let hdrs = 20 + f.thl;
            let pkt = &mut self.buf[VNET_HDR_LEN..];
            let len = pkt.len();
            put16(pkt, 2, len as u16);
            ipv4_checksum(pkt, 20);
            // partial checksum: the pseudo-header sum, for the kernel to finish or trust
            let pseudo = fold(pseudo_v4(pkt, TCP, len - 20));
            put16(pkt, 36, pseudo);
            let hdr = VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GSO_TCPV4,
                hdr_len: hdrs as u16,
                gso_size: f.mss as u16,
                csum_start: 20,
                csum_offset: 16,
            };
            self.buf[..VNET_HDR_LEN].copy_from_slice(&hdr.bytes());
        }
        write(&self.buf);
        self.buf.clear();
    }
}
