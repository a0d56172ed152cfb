//! NAT detection data (RFC 7296 2.23): SHA-1(SPIi | SPIr | IP address | port).

use std::net::SocketAddr;

use ring::digest;

pub fn nat_detection_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    match addr {
        SocketAddr::V4(a) => ctx.update(&a.ip().octets()),
        SocketAddr::V6(a) => ctx.update(&a.ip().octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    ctx.finish().as_ref().to_vec()
}
