//! Randomness as an argument: SPIs and nonces come from an [`Entropy`] the caller passes, so
//! tests use a seeded one. (DH private keys cannot, see [`crate::dh`].)

/// A source of random bytes.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]);
}

/// The operating system's randomness through ring.
#[derive(Debug)]
pub struct SystemEntropy(ring::rand::SystemRandom);

impl Default for SystemEntropy {
    fn default() -> Self {
        SystemEntropy(ring::rand::SystemRandom::new())
    }
}

impl Entropy for SystemEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        use ring::rand::SecureRandom;
        // getrandom(2) does not fail once the kernel's pool is initialised; if it ever did,
        // the zeros left behind make SPI 0, which `SaInitiator::new` refuses.
        if self.0.fill(buf).is_err() {
            buf.fill(0);
        }
    }
}

/// A deterministic generator for tests and fuzzing (xorshift64*; not for production).
#[derive(Debug, Clone)]
pub struct SeededEntropy(u64);

impl SeededEntropy {
    pub fn new(seed: u64) -> SeededEntropy {
        SeededEntropy(seed | 1)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *b = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
    }
}
