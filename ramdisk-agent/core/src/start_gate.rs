//! The start gate: the only way from a stored tenant image to a started one.
//!
//! Pure: the order of the checks and what a refusal says. The checks themselves (reading the
//! key table, unwrapping with the host root, reading the slot, authenticating every chunk,
//! asking the Lease Manager) are done by the shell through [`GateChecks`]; [`run`] calls them
//! in this fixed order and stops at the first failure:
//!
//! 1. `key-entry`      the lease has an entry in the key table
//! 2. `key-unwraps`    its start-up key unwraps with this host's root
//! 3. `image-slot`     the image slot exists with manifest, chunks and wrapped image key
//! 4. `image-verifies` every chunk and the manifest verify
//! 5. `lease-valid`    the lease is still valid (the LM says so, and its end is ahead)
//! 6. `start`          only now may the image start
//!
//! A started image needs the value step 4 returns, which only exists after steps 1-4 passed
//! with the start-up key; step 5 comes before the caller may use it.

use crate::startup_table::TableEntry;

/// A step of the gate, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GateStep {
    KeyEntry,
    KeyUnwraps,
    ImageSlot,
    ImageVerifies,
    LeaseValid,
    Start,
}

impl GateStep {
    pub const ALL: [GateStep; 6] = [
        Self::KeyEntry,
        Self::KeyUnwraps,
        Self::ImageSlot,
        Self::ImageVerifies,
        Self::LeaseValid,
        Self::Start,
    ];

    /// The word on the console and in reports (`AGENT-GATE key-unwraps refused ...`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyEntry => "key-entry",
            Self::KeyUnwraps => "key-unwraps",
            Self::ImageSlot => "image-slot",
            Self::ImageVerifies => "image-verifies",
            Self::LeaseValid => "lease-valid",
            Self::Start => "start",
        }
    }

    /// What the step checks, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::KeyEntry => "key entry exists",
            Self::KeyUnwraps => "key unwraps on this host",
            Self::ImageSlot => "image slot exists",
            Self::ImageVerifies => "every chunk and the manifest verify",
            Self::LeaseValid => "the lease is still valid",
            Self::Start => "start",
        }
    }
}

/// The gate stopped at `step`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub step: GateStep,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "start gate refused at {} ({}): {}",
            self.step.as_str(),
            self.step.describe(),
            self.reason
        )
    }
}

impl std::error::Error for Refusal {}

/// The shell's side of each step. Errors are the reason, in words naming what failed.
pub trait GateChecks {
    /// The unwrapped start-up key (zeroized by its own drop).
    type Key;
    /// The slot's files, found.
    type Slot;
    /// The verified image, ready to start.
    type Image;

    fn key_entry(&mut self) -> Result<TableEntry, String>;
    fn unwrap_key(&mut self, entry: &TableEntry) -> Result<Self::Key, String>;
    fn image_slot(&mut self, entry: &TableEntry) -> Result<Self::Slot, String>;
    fn verify(
        &mut self,
        entry: &TableEntry,
        key: &Self::Key,
        slot: Self::Slot,
    ) -> Result<Self::Image, String>;
    fn lease_valid(&mut self, entry: &TableEntry) -> Result<(), String>;
}

/// Runs the steps in order; `passed` sees each step that passed (for the console). The start
/// key is dropped before the lease check: what passes on is only the verified image.
pub fn run<C: GateChecks>(
    c: &mut C,
    passed: &mut dyn FnMut(GateStep),
) -> Result<C::Image, Refusal> {
    let refuse = |step: GateStep| move |reason: String| Refusal { step, reason };
    let entry = c.key_entry().map_err(refuse(GateStep::KeyEntry))?;
    passed(GateStep::KeyEntry);
    let key = c.unwrap_key(&entry).map_err(refuse(GateStep::KeyUnwraps))?;
    passed(GateStep::KeyUnwraps);
    let slot = c.image_slot(&entry).map_err(refuse(GateStep::ImageSlot))?;
    passed(GateStep::ImageSlot);
    let image = c
        .verify(&entry, &key, slot)
        .map_err(refuse(GateStep::ImageVerifies))?;
    drop(key);
    passed(GateStep::ImageVerifies);
    c.lease_valid(&entry)
        .map_err(refuse(GateStep::LeaseValid))?;
    passed(GateStep::LeaseValid);
    Ok(image)
}

/// What the Lease Manager said about the lease when asked at the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseWord {
    /// The lease goes on until `ends_ms`.
    Continue { ends_ms: u64 },
    /// The lease was released or expired.
    Release,
    /// No answer (the reason): the gate fails closed.
    Unreachable(String),
}

/// Step 5 as a pure decision: the LM must confirm the lease, and both the LM's end and the
/// entry's own end (the certificate's not-after) must be ahead of `now_ms`.
pub fn lease_valid(entry: &TableEntry, word: &LeaseWord, now_ms: u64) -> Result<(), String> {
    match word {
        LeaseWord::Release => Err(format!(
            "the Lease Manager says lease {} is released or over",
            entry.lease
        )),
        LeaseWord::Unreachable(why) => Err(format!(
            "cannot confirm lease {} with the Lease Manager ({why}); the gate fails closed",
            entry.lease
        )),
        LeaseWord::Continue { ends_ms } => {
            let end = (*ends_ms).min(entry.not_after_ms);
            if now_ms >= end {
                Err(format!(
                    "lease {} ended at {end} ms (now {now_ms} ms)",
                    entry.lease
                ))
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[path = "start_gate_tests.rs"]
mod tests;
