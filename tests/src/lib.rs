//! The QEMU lab of the provisioning appliance (ARCHITECTURE.md section 5): network namespaces
//! with a bridge and one tap per VM, an IPv6 router-advertisement responder (iPXE waits ~16 s
//! for IPv6 autoconfiguration without one), a Wake-on-LAN listener that starts the VM whose MAC
//! is in a magic packet, a QEMU runner with console capture, and [`Lab`], which composes them
//! and tears everything down on drop.
//!
//! Pure parts ([`ra`] packet building/parsing, [`wol`] magic-packet finding,
//! [`VmSpec::qemu_args`], [`log_capture`] line cleaning) are separate from the IO parts.
//! Everything that touches the network runs inside namespaces the lab creates; it needs root.

pub mod bench;
pub mod bmc;
pub mod demo;
pub mod demo_lease;
pub mod lab;
pub mod lab_vm;
pub mod lm;
pub mod log_capture;
pub mod netns;
pub mod process;
pub mod qemu;
pub mod ra;
pub mod ra_responder;
pub mod swtpm;
mod sys;
pub mod tenant;
pub mod tpm_probe;
pub mod wol;
pub mod wol_listener;

pub use lab::{Lab, LabSpec};
pub use lab_vm::{PowerOn, VmHandle, WakeEvent, WakeOutcome};
pub use lm::{Artifacts, LabLm, LmOptions};
pub use lm_api::MacAddr;
pub use log_capture::{LogLine, Stream, WaitError};
pub use netns::Netns;
pub use process::Process;
pub use qemu::{BootFrom, Firmware, NicRom, Vm, VmSpec};
pub use ra_responder::{RaConfig, RaResponder, SolicitedAdvert, solicit_router};
pub use wol::WakeVia;
pub use wol_listener::WolListener;
