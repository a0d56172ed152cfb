//! Small system services for the agent's IO shell: the clock, random values, sleeping.
//!
//! Does IO (system calls). The clock is `CLOCK_BOOTTIME`, the kernel's uptime, so console
//! timestamps match the kernel's own log and the LM sees uptimes it can compare across boots.

use std::time::Duration;

/// Time since the kernel started (`CLOCK_BOOTTIME`): monotonic, the agent's `now`.
pub fn now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on every Linux >= 2.6.39.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// Wall-clock time, ms since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A random value for transaction ids and jitter (not for keys: those come from rustls/ring).
///
/// Uses `getrandom(GRND_INSECURE)`, which never blocks even before the kernel's pool is seeded
/// (early in a diskless boot it may not be); falls back to the clock if the call fails.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: the pointer and length describe `buf`, which lives across the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_INSECURE) };
    if n == 8 {
        return u64::from_ne_bytes(buf);
    }
    // Older kernels lack GRND_INSECURE (EINVAL); jitter from the clock is good enough there.
    let t = now().as_nanos();
    (t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(std::process::id())
}

/// Sleeps for `d` (restarting after signals, as `std::thread::sleep` does).
pub fn sleep(d: Duration) {
    if !d.is_zero() {
        std::thread::sleep(d);
    }
}

/// A TCP connection to `addr` through network device `device` only (SO_BINDTODEVICE before
/// connect), within `timeout`: when the device is gone or down there is no other path.
pub fn tcp_connect_on_device(
    addr: std::net::SocketAddr,
    device: &str,
    timeout: Duration,
) -> std::io::Result<std::net::TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.bind_device(Some(device.as_bytes()))?;
    sock.connect_timeout(&SockAddr::from(addr), timeout)?;
    Ok(sock.into())
}
