//! The receiver's anti-replay window (RFC 4303 3.4.3 and appendix A): a 1024-packet sliding
//! bitmap right-aligned on the highest sequence number authenticated so far. Pure.
//!
//! The inbound SA calls [`ReplayWindow::check`] before the integrity check (a replayed or
//! too-old packet costs no decryption) and [`ReplayWindow::accept`] only after it passed, so a
//! forged packet never moves the window.
//!
//! ```text
//!   age:      1023 ................ 1 0
//!   seq:  highest-1023 ...... highest-1 highest   | right of the window: new
//!         bit (age % 64) of word (age / 64) is set when that sequence number was accepted
//! ```

/// How many sequence numbers the window covers (the highest one included).
pub const WINDOW: u32 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// What [`ReplayWindow::check`] found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCheck {
    /// Sequence number 0 is never sent.
    Zero,
    /// Already accepted.
    Duplicate,
    /// Left of the window: too old to tell.
    TooOld { highest: u32 },
}

/// The bitmap and the highest accepted sequence number (0: none yet).
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: u32,
    bits: [u64; WORDS],
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest)
            .field(
                "accepted_in_window",
                &self.bits.iter().map(|w| w.count_ones()).sum::<u32>(),
            )
            .finish()
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: every sequence number from 1 on is new.
    pub fn new() -> Self {
        Self {
            highest: 0,
            bits: [0; WORDS],
        }
    }

    /// The highest sequence number accepted so far (0: none).
    pub fn highest(&self) -> u32 {
        self.highest
    }

    /// Whether `seq` may be new. Does not change the window.
    pub fn check(&self, seq: u32) -> Result<(), ReplayCheck> {
        if seq == 0 {
            return Err(ReplayCheck::Zero);
        }
        if seq > self.highest {
            return Ok(());
        }
        let age = self.highest - seq;
        if age >= WINDOW {
            return Err(ReplayCheck::TooOld {
                highest: self.highest,
            });
        }
        if self.bit(age) {
            return Err(ReplayCheck::Duplicate);
        }
        Ok(())
    }

    /// Records `seq` as accepted (call after its integrity check passed). A number right of the
    /// window slides it; one that [`check`](Self::check) refuses leaves it unchanged.
    pub fn accept(&mut self, seq: u32) {
        if self.check(seq).is_err() {
            return;
        }
        if seq > self.highest {
            self.slide(seq - self.highest);
            self.highest = seq;
            self.bits[0] |= 1;
        } else {
            let age = self.highest - seq;
            self.bits[(age / 64) as usize] |= 1u64 << (age % 64);
        }
    }

    fn bit(&self, age: u32) -> bool {
        self.bits[(age / 64) as usize] & (1u64 << (age % 64)) != 0
    }

    /// Ages every recorded number by `n`.
    fn slide(&mut self, n: u32) {
        if n >= WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let words = (n / 64) as usize;
        let shift = n % 64;
        for i in (0..WORDS).rev() {
            let word = if i >= words {
                let src = i - words;
                let mut w = self.bits[src] << shift;
                if shift > 0 && src > 0 {
                    w |= self.bits[src - 1] >> (64 - shift);
                }
                w
            } else {
                0
            };
            self.bits[i] = word;
        }
    }
}
