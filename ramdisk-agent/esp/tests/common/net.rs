//! Namespace helpers of the ESP and IPsec namespace tests (agent-ipsec includes this file): run code in a namespace, capture every frame on one
//! interface (AF_PACKET), ICMP echo over a raw socket (no ping binary needed), and the
//! interface list of a namespace.
#![allow(dead_code)]

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs `f` on a thread that entered network namespace `ns`.
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(format!("/run/netns/{ns}")).expect("open netns");
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid fd; only this thread changes namespace.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

/// The interface names of the calling thread's namespace.
pub fn interfaces() -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns a list terminated by a zero entry, freed below.
    unsafe {
        let list = libc::if_nameindex();
        assert!(!list.is_null(), "if_nameindex");
        let mut p = list;
        while (*p).if_index != 0 {
            out.push(
                std::ffi::CStr::from_ptr((*p).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            p = p.add(1);
        }
        libc::if_freenameindex(list);
    }
    out
}

fn set_timeout(fd: &OwnedFd, usec: libc::suseconds_t) {
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: usec,
    };
    // SAFETY: sets SO_RCVTIMEO from a live timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as u32,
        )
    };
}

/// Every frame on one interface of a namespace (both directions) until finished.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Vec<u8>>>>,
}

impl Capture {
    pub fn start(ns: &str, dev: &str) -> Capture {
        let fd = in_ns(ns, || {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2).
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
            assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
            // SAFETY: a fresh descriptor owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let name = std::ffi::CString::new(dev).expect("name");
            // SAFETY: the name is NUL-terminated.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert!(index > 0, "no interface {dev} in {ns}");
            // SAFETY: sockaddr_ll is plain data.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = index as i32;
            // SAFETY: binds to a live sockaddr_ll of the right size.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const sll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert_eq!(r, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
            let size: libc::c_int = 16 << 20;
            // SAFETY: sets SO_RCVBUF from a live int (a burst of a few MiB must not be lost).
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const size).cast(),
                    size_of::<libc::c_int>() as u32,
                )
            };
            set_timeout(&fd, 100_000);
            fd
        });
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut frames = Vec::new();
            let mut buf = vec![0u8; 65_536];
            while !flag.load(Ordering::Relaxed) {
                // SAFETY: reads into a live buffer of its length.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 {
                    frames.push(buf[..n as usize].to_vec());
                }
            }
            frames
        });
        Capture {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().expect("once").join().expect("capture")
    }
}

/// (source, destination, UDP source port, UDP destination port, UDP payload) of an IPv4/UDP
/// Ethernet frame; `None` for anything else.
pub fn udp_of(frame: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, &[u8])> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] || frame[14 + 9] != 17 {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let udp = ip.get(ihl..)?;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    Some((
        src,
        dst,
        u16::from_be_bytes([*udp.first()?, *udp.get(1)?]),
        u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]),
        udp.get(8..)?,
    ))
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// ICMP echo from the calling thread's namespace to `to` with `payload`; the round-trip time
/// of the first matching reply within 5 s.
pub fn ping(to: Ipv4Addr, seq: u16, payload: &[u8]) -> Option<Duration> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    assert!(fd >= 0, "raw ICMP: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = vec![8, 0, 0, 0, 0x49, 0x50];
    req.extend_from_slice(&seq.to_be_bytes());
    req.extend_from_slice(payload);
    let c = checksum(&req);
    req[2..4].copy_from_slice(&c.to_be_bytes());
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(to).to_be(),
        },
        sin_zero: [0; 8],
    };
    set_timeout(&fd, 200_000);
    let until = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        let sent = Instant::now();
        // SAFETY: sends a live buffer to a live sockaddr_in.
        unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&raw const sin).cast(),
                size_of::<libc::sockaddr_in>() as u32,
            )
        };
        while sent.elapsed() < Duration::from_millis(500) {
            // SAFETY: reads into a live buffer of its length.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                continue;
            }
            let pkt = &buf[..n as usize];
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            let icmp = &pkt[ihl..];
            if icmp.len() == req.len() && icmp[0] == 0 && icmp[4..] == req[4..] {
                return Some(sent.elapsed());
            }
        }
    }
    None
}
