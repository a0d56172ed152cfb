//! QEMU virtual machines for the lab: [`VmSpec`] (what a lease server looks like), the pure
//! command-line builder [`VmSpec::qemu_args`], and the [`Vm`] guard that runs
//! `qemu-system-x86_64` (TCG, q35, serial console on stdout) through [`crate::Process`] so the
//! console is captured with timestamps and markers can be awaited; killed on drop.
//!
//! Under SeaBIOS the firmware and iPXE print only to VGA; the lab turns on SeaBIOS's serial
//! console (fw_cfg `etc/sercon-port` = 0x3f8) so their banners reach the captured console.
//! OVMF prints to the serial port by itself.
//!
//! With [`VmSpec::tpm`] each boot also gets a software TPM 2.0 ([`crate::swtpm`]) on a
//! `tpm-tis` device, its state kept in that folder across boots.
//!
//! Does IO ([`Vm::start`]); argument building is pure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lm_api::MacAddr;

use crate::log_capture::{LogLine, WaitError};
use crate::process::Process;
use crate::swtpm;

/// The QEMU binary.
pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";
/// Read-only OVMF code for UEFI VMs.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// OVMF variable store template, copied once per VM.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Which firmware the VM boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS (legacy PXE via the NIC's iPXE ROM).
    Bios,
    /// OVMF (UEFI network boot via the NIC's iPXE EFI driver).
    Uefi,
}

/// What the VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootFrom {
    /// The network: `-boot n`, NIC with bootindex=1 (PXE through the NIC's iPXE ROM).
    Network,
    /// Direct kernel boot (`-kernel/-initrd/-append`), for quick agent tests.
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        append: String,
    },
}

/// The NIC's option ROM: QEMU's iPXE (like a NIC flashed with iPXE), or none, so the
/// firmware's own PXE client boots (OVMF has one; like most UEFI servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicRom {
    /// QEMU's iPXE ROM: the first DHCP request already comes from iPXE.
    Ipxe,
    /// No ROM: OVMF's VirtioNet + PXE (arch 7) boots, and must chain-load iPXE over TFTP.
    FirmwareOnly,
}

/// A lease server as QEMU will run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// Name used for logs and files: letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// MAC of the virtio NIC.
    pub mac: MacAddr,
    /// SeaBIOS or OVMF.
    pub firmware: Firmware,
    /// Network (PXE) or direct kernel boot.
    pub boot: BootFrom,
    /// SMBIOS type 1 UUID.
    pub smbios_uuid: String,
    /// SMBIOS type 1 serial number.
    pub smbios_serial: String,
    /// Guest memory.
    pub memory_mb: u32,
    /// Tap interface the NIC uses (the lab assigns one at registration); None: no NIC.
    pub tap: Option<String>,
    /// Extra disks (virtio), format from the extension: `.qcow2` is qcow2, anything else raw.
    pub disks: Vec<PathBuf>,
    /// Which network boot code the NIC brings.
    pub nic_rom: NicRom,
    /// More QEMU arguments, appended last (for example a swtpm chardev/tpmdev/device).
    pub extra_args: Vec<String>,
    /// Where console logs and the UEFI variable store go (the lab fills in its log folder).
    pub log_dir: Option<PathBuf>,
    /// A software TPM 2.0 (swtpm) with its state in this folder (created if missing), started
    /// for every boot; the folder keeps the TPM's NV (seeds, persistent objects) across boots,
    /// so a different folder is a different TPM. None: no TPM.
    pub tpm: Option<PathBuf>,
}

impl VmSpec {
    /// A BIOS network-booting VM with 1 GiB, SMBIOS UUID and serial derived from `mac`/`name`.
    pub fn new(name: &str, mac: MacAddr) -> Self {
        VmSpec {
            name: name.to_owned(),
            mac,
            firmware: Firmware::Bios,
            boot: BootFrom::Network,
            smbios_uuid: Self::uuid_for_mac(mac),
            smbios_serial: format!("LAB-{}", name.to_uppercase()),
            memory_mb: 1024,
            tap: None,
            disks: Vec::new(),
            nic_rom: NicRom::Ipxe,
            extra_args: Vec::new(),
            log_dir: None,
            tpm: None,
        }
    }

    /// A stable, valid (version 4 layout) UUID for a MAC: `4c414230-0000-4000-8000-<mac>`.
    pub fn uuid_for_mac(mac: MacAddr) -> String {
        let m = mac.0;
        format!(
            "4c414230-0000-4000-8000-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }

    /// The console log of boot number `boot` (1-based).
    pub fn log_file(&self, boot: u32) -> PathBuf {
        self.dir().join(format!("{}.boot{boot}.log", self.name))
    }

    /// The VM's own copy of the OVMF variable store (kept across boots, like NVRAM).
    pub fn uefi_vars_file(&self) -> PathBuf {
        self.dir().join(format!("{}.OVMF_VARS.fd", self.name))
    }

    /// The control socket of the VM's swtpm (`<log folder>/<name>.swtpm.sock`), when it has a
    /// TPM.
    pub fn tpm_socket(&self) -> Option<PathBuf> {
        self.tpm
            .as_ref()
            .map(|_| self.dir().join(format!("{}.swtpm.sock", self.name)))
    }

    /// The swtpm output of boot number `boot` (1-based).
    pub fn tpm_log_file(&self, boot: u32) -> PathBuf {
        self.dir()
            .join(format!("{}.boot{boot}.swtpm.log", self.name))
    }

    fn sercon_file(&self) -> PathBuf {
        self.dir().join("seabios-sercon-port.bin")
    }

    fn dir(&self) -> PathBuf {
        self.log_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("lab-vms-{}", std::process::id())))
    }

    /// Checks the fields that end up in file names and QEMU options.
    pub fn validate(&self) -> Result<()> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.name.is_empty() || self.name.starts_with('.') || !self.name.chars().all(ok) {
            bail!(
                "VM name {:?}: use letters, digits, '.', '_', '-'",
                self.name
            );
        }
        if self.nic_rom == NicRom::FirmwareOnly && self.firmware == Firmware::Bios {
            bail!(
                "VM {}: SeaBIOS has no network stack of its own; use NicRom::Ipxe or UEFI",
                self.name
            );
        }
        if self.mac.is_multicast() {
            bail!("VM {}: MAC {} is a group address", self.name, self.mac);
        }
        if !(64..=65536).contains(&self.memory_mb) {
            bail!(
                "VM {}: memory_mb {} out of 64..=65536",
                self.name,
                self.memory_mb
            );
        }
        if self.tap.is_none() && self.boot == BootFrom::Network {
            bail!("VM {}: network boot needs a tap", self.name);
        }
        if let (Some(state), Some(sock)) = (&self.tpm, self.tpm_socket()) {
            swtpm::check_paths(&self.name, state, &sock)?;
        }
        Ok(())
    }

    /// The QEMU arguments (without the binary). Pure; paths are not checked here.
    pub fn qemu_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        push(&["-name", &format!("guest={}", esc(&self.name))]);
        push(&["-accel", "tcg", "-cpu", "max", "-machine", "q35"]);
        push(&["-m", &self.memory_mb.to_string()]);
        push(&[
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
        ]);
        match self.firmware {
            Firmware::Bios => {
                let f = format!(
                    "name=etc/sercon-port,file={}",
                    esc_path(&self.sercon_file())
                );
                push(&["-fw_cfg", &f]);
            }
            Firmware::Uefi => {
                let code = format!("if=pflash,format=raw,readonly=on,file={}", esc(OVMF_CODE));
                let vars = format!(
                    "if=pflash,format=raw,file={}",
                    esc_path(&self.uefi_vars_file())
                );
                push(&["-drive", &code, "-drive", &vars]);
            }
        }
        match &self.tap {
            Some(tap) => {
                let netdev = format!("tap,id=n0,ifname={},script=no,downscript=no", esc(tap));
                let mut dev = format!("virtio-net-pci,netdev=n0,mac={}", self.mac);
                if self.boot == BootFrom::Network {
                    dev.push_str(",bootindex=1");
                }
                if self.nic_rom == NicRom::FirmwareOnly {
                    dev.push_str(",romfile=");
                }
                push(&["-netdev", &netdev, "-device", &dev]);
            }
            None => push(&["-nic", "none"]),
        }
        let smbios = format!(
            "type=1,uuid={},serial={}",
            esc(&self.smbios_uuid),
            esc(&self.smbios_serial)
        );
        push(&["-smbios", &smbios]);
        for (i, d) in self.disks.iter().enumerate() {
            let format = if d.extension().is_some_and(|e| e == "qcow2") {
                "qcow2"
            } else {
                "raw"
            };
            let drive = format!("file={},format={format},if=virtio,index={i}", esc_path(d));
            push(&["-drive", &drive]);
        }
        match &self.boot {
            BootFrom::Network => push(&["-boot", "n"]),
            BootFrom::Kernel {
                kernel,
                initrd,
                append,
            } => {
                push(&["-kernel", &kernel.to_string_lossy()]);
                if let Some(i) = initrd {
                    push(&["-initrd", &i.to_string_lossy()]);
                }
                push(&["-append", append]);
            }
        }
        if let Some(sock) = self.tpm_socket() {
            let chardev = format!("socket,id=chrtpm,path={}", esc_path(&sock));
            push(&[
                "-chardev",
                &chardev,
                "-tpmdev",
                "emulator,id=tpm0,chardev=chrtpm",
                "-device",
                "tpm-tis,tpmdev=tpm0",
            ]);
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// QEMU option values end at ','; a literal comma is written ",,".
fn esc(s: &str) -> String {
    s.replace(',', ",,")
}

fn esc_path(p: &Path) -> String {
    esc(&p.to_string_lossy())
}

/// One run of a VM's QEMU (and its swtpm, if it has a TPM); killed (SIGTERM, then SIGKILL) on
/// drop, QEMU first.
#[derive(Debug)]
pub struct Vm {
    spec: VmSpec,
    boot: u32,
    process: Process,
    tpm: Option<Process>,
}

impl Vm {
    /// Starts QEMU for `spec` inside namespace `netns` (where its tap is), logging the console
    /// to [`VmSpec::log_file`]`(boot)`. Prepares the UEFI variable store or the SeaBIOS serial
    /// console switch first, and with [`VmSpec::tpm`] starts swtpm (output in
    /// [`VmSpec::tpm_log_file`]`(boot)`) and waits until it listens. The previous boot's swtpm
    /// must be gone (it holds the state folder's lock): [`Vm::power_off`] it first.
    pub fn start(spec: &VmSpec, netns: Option<&str>, boot: u32) -> Result<Vm> {
        spec.validate()?;
        let dir = spec.dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        match spec.firmware {
            Firmware::Bios => {
                // SeaBIOS reads the fw_cfg file as a little-endian integer: the port 0x3f8.
                std::fs::write(spec.sercon_file(), 0x3f8u64.to_le_bytes())?;
            }
            Firmware::Uefi => {
                let vars = spec.uefi_vars_file();
                if !vars.exists() {
                    std::fs::copy(OVMF_VARS, &vars).with_context(|| {
                        format!("cannot copy {OVMF_VARS} to {}", vars.display())
                    })?;
                }
            }
        }
        for f in spec.disks.iter().chain(match &spec.boot {
            BootFrom::Kernel { kernel, .. } => Some(kernel),
            BootFrom::Network => None,
        }) {
            if !f.exists() {
                bail!("VM {}: {} does not exist", spec.name, f.display());
            }
        }
        let name = format!("{}#{boot}", spec.name);
        // Dropped (killed) again if QEMU does not start.
        let tpm = match (&spec.tpm, spec.tpm_socket()) {
            (Some(state), Some(sock)) => Some(swtpm::start(
                &format!("{name}.swtpm"),
                state,
                &sock,
                &spec.tpm_log_file(boot),
            )?),
            _ => None,
        };
        let mut cmd = Command::new(QEMU);
        cmd.args(spec.qemu_args());
        let process = Process::spawn(&name, &cmd, netns, Some(&spec.log_file(boot)))?;
        Ok(Vm {
            spec: spec.clone(),
            boot,
            process,
            tpm,
        })
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The spec it was started from.
    pub fn spec(&self) -> &VmSpec {
        &self.spec
    }

    /// Which boot of this VM this is (1-based).
    pub fn boot(&self) -> u32 {
        self.boot
    }

    /// The QEMU process: serial console on stdout, QEMU's own messages on stderr.
    pub fn console(&self) -> &Process {
        &self.process
    }

    /// Waits for a console (or QEMU) line containing `marker`.
    pub fn wait_for(&self, marker: &str, timeout: Duration) -> Result<LogLine, WaitError> {
        self.process.wait_for(marker, timeout)
    }

    /// True while QEMU runs (a guest power-off or reboot ends it: `-no-reboot`).
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// The swtpm of this boot, if the VM has a TPM (it ends by itself when QEMU exits).
    pub fn tpm(&self) -> Option<&Process> {
        self.tpm.as_ref()
    }

    /// Pulls the plug: SIGTERM to QEMU, SIGKILL after a grace period; waits for the exit; then
    /// the same for its swtpm. Harmless when they have exited.
    pub fn power_off(&self) {
        self.process.terminate();
        if let Some(tpm) = &self.tpm {
            tpm.terminate();
        }
    }
}

#[cfg(test)]
#[path = "qemu_tests.rs"]
mod tests;
