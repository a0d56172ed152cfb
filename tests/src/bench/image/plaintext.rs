//! The benchmark's plaintext, generated on the fly so a 1 GiB image is never in memory. Pure.

use std::io::{self, Read};

/// Deterministic plaintext made with memcpy only: a 64 KiB block, each copy stamped with its
/// number (so no two 64 KiB blocks are alike).
pub struct Gen {
    pos: u64,
    len: u64,
    block: Vec<u8>,
}

impl Gen {
    pub fn new(len: u64) -> Self {
        let block = (0..65536u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        Self { pos: 0, len, block }
    }
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.len - self.pos) as usize);
        let mut done = 0;
        while done < n {
            let p = self.pos + done as u64;
            let off = (p % 65536) as usize;
            let take = (65536 - off).min(n - done);
            buf[done..done + take].copy_from_slice(&self.block[off..off + take]);
            // The block number over the block's first 8 bytes, where they fall in this piece.
            let stamp = (p / 65536).to_le_bytes();
            for k in off..(off + take).min(8) {
                buf[done + k - off] = stamp[k];
            }
            done += take;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_stamped() {
        let mut a = vec![0u8; 200_000];
        let mut b = vec![0u8; 200_000];
        Gen::new(200_000).read_exact(&mut a).unwrap();
        let mut g = Gen::new(200_000);
        for piece in b.chunks_mut(7777) {
            g.read_exact(piece).unwrap();
        }
        assert_eq!(&a[65536..65544], &1u64.to_le_bytes());
        assert_eq!(a, b, "the same bytes whatever the read sizes");
        assert_eq!(Gen::new(5).read(&mut [0u8; 10]).unwrap(), 5);
    }
}
