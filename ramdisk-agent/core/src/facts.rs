//! Parsers of the /proc and /sys text that the agent's hardware facts come from.
//!
//! Pure: the `/init` shell reads the files and passes their text; a missing file is `None`.
//! Sources (Linux 6.1):
//! - `/proc/cpuinfo`: `model name\t: ...` of the first processor, count of `processor` lines;
//! - `/proc/meminfo`: `MemTotal:  24683656 kB`;
//! - `/sys/class/net/<if>/{address,speed}` and the basename of the `device/driver` link target
//!   (`../../../../bus/virtio/drivers/virtio_net`); `speed` is `-1` or EINVAL without a link;
//! - `/sys/class/dmi/id/{product_uuid,product_serial,sys_vendor,product_name}`;
//! - `/sys/block/<dev>/size` (512-byte sectors), `device/model`, and the serial from
//!   `device/serial` (SCSI/ATA/NVMe) or `serial` (virtio-blk).
//!
//! Every string is trimmed, stripped of control characters and cut to [`MAX_TEXT`] characters,
//! and empty strings become `None`: firmware fills these fields with anything.

use lm_api::{Cpu, Disk, MacAddr, Nic, Smbios};

/// Longest string kept from one sysfs/proc field.
pub const MAX_TEXT: usize = 128;

/// Cleans one sysfs/proc value: trims, drops control characters, caps the length; `None` if empty.
pub fn text(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_string())
}

/// Processor model (first `model name`) and logical processor count from `/proc/cpuinfo`.
pub fn cpu_from_cpuinfo(cpuinfo: &str) -> Cpu {
    let mut model = None;
    let mut logical: u32 = 0;
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => logical = logical.saturating_add(1),
            "model name" if model.is_none() => model = text(value),
            _ => {}
        }
    }
    Cpu {
        model: model.unwrap_or_default(),
        logical,
    }
}

/// `MemTotal` in bytes from `/proc/meminfo` (the kernel writes kB, meaning KiB).
pub fn memory_bytes_from_meminfo(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line.trim_start_matches("MemTotal:").split_whitespace();
    let kib: u64 = parts.next()?.parse().ok()?;
    if parts.next() != Some("kB") || parts.next().is_some() {
        return None;
    }
    kib.checked_mul(1024)
}

/// SMBIOS type 1 fields from the four `/sys/class/dmi/id` files (each `None` when unreadable).
pub fn smbios(
    uuid: Option<&str>,
    serial: Option<&str>,
    vendor: Option<&str>,
    product: Option<&str>,
) -> Smbios {
    Smbios {
        uuid: uuid.and_then(text).map(|u| u.to_ascii_lowercase()),
        serial: serial.and_then(text),
        vendor: vendor.and_then(text),
        product: product.and_then(text),
    }
}

/// A NIC from its sysfs files; `None` for loopback, interfaces without a (non-zero) MAC
/// (tunnels, WireGuard) and unreadable addresses.
pub fn nic(
    name: &str,
    address: &str,
    driver_link: Option<&str>,
    speed: Option<&str>,
) -> Option<Nic> {
    let name = text(name)?;
    if name == "lo" {
        return None;
    }
    let mac: MacAddr = address.trim().parse().ok()?;
    if mac == MacAddr::default() {
        return None;
    }
    let driver = driver_link
        .and_then(|l| l.trim().rsplit('/').next())
        .and_then(text);
    let speed_mbps = speed
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|&s| s > 0)
        .and_then(|s| u32::try_from(s).ok());
    Some(Nic {
        name,
        mac,
        driver,
        speed_mbps,
    })
}

/// Whether a `/sys/block` entry is a disk worth reporting (not loop, ram, zram or device-mapper).
pub fn is_reported_block(name: &str) -> bool {
    !["loop", "ram", "zram", "dm-"]
        .iter()
        .any(|p| name.starts_with(p))
        && !name.is_empty()
}

/// A disk from its sysfs files; `None` for excluded names, unreadable sizes and empty drives
/// (size 0: a CD drive without media, an unconfigured loop device).
pub fn disk(name: &str, size: &str, model: Option<&str>, serial: Option<&str>) -> Option<Disk> {
    if !is_reported_block(name) {
        return None;
    }
    let sectors: u64 = size.trim().parse().ok()?;
    let size_bytes = sectors.checked_mul(512).filter(|&b| b > 0)?;
    Some(Disk {
        name: text(name)?,
        size_bytes,
        model: model.and_then(text),
        serial: serial.and_then(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// From this project's build host (2 vCPUs), trimmed.
    const CPUINFO_EPYC: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\n\
        model\t\t: 1\nmodel name\t: AMD EPYC\nstepping\t: 2\nflags\t\t: fpu vme de pse\n\n\
        processor\t: 1\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n\n";
    /// QEMU TCG with `-cpu max`, one vCPU.
    const CPUINFO_TCG: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 15\n\
        model\t\t: 107\nmodel name\t: QEMU TCG CPU version 2.5+\nstepping\t: 1\n";
    const MEMINFO: &str = "MemTotal:       24683656 kB\nMemFree:        23007516 kB\n";

    #[test]
    fn cpuinfo() {
        assert_eq!(
            cpu_from_cpuinfo(CPUINFO_EPYC),
            Cpu {
                model: "AMD EPYC".into(),
                logical: 2
            }
        );
        assert_eq!(
            cpu_from_cpuinfo(CPUINFO_TCG),
            Cpu {
                model: "QEMU TCG CPU version 2.5+".into(),
                logical: 1
            }
        );
        assert_eq!(cpu_from_cpuinfo(""), Cpu::default());
        assert_eq!(cpu_from_cpuinfo("model name: \u{7}\n"), Cpu::default());
    }

    #[test]
    fn meminfo() {
        assert_eq!(memory_bytes_from_meminfo(MEMINFO), Some(24_683_656 * 1024));
        assert_eq!(memory_bytes_from_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(memory_bytes_from_meminfo("MemTotal: x kB\n"), None);
        assert_eq!(memory_bytes_from_meminfo("MemTotal: 1 MB\n"), None);
        assert_eq!(
            memory_bytes_from_meminfo("MemTotal: 18446744073709551615 kB\n"),
            None
        );
    }

    #[test]
    fn nics_from_sysfs_samples() {
        let eth0 = nic(
            "eth0",
            "02:fc:00:00:00:01\n",
            Some("../../../../bus/virtio/drivers/virtio_net"),
            Some("-1\n"),
        )
        .unwrap();
        assert_eq!(eth0.mac.to_string(), "02:fc:00:00:00:01");
        assert_eq!(eth0.driver.as_deref(), Some("virtio_net"));
        assert_eq!(eth0.speed_mbps, None);
        let e1000 = nic(
            "ens3",
            "52:54:00:12:34:56",
            Some("../../bus/pci/drivers/e1000"),
            Some("1000"),
        );
        assert_eq!(e1000.unwrap().speed_mbps, Some(1000));
        assert_eq!(nic("lo", "00:00:00:00:00:00", None, None), None);
        assert_eq!(nic("tunl0", "00:00:00:00:00:00", None, None), None);
        assert_eq!(nic("wg0", "", None, None), None);
        assert_eq!(nic("x", "zz", None, None), None);
        assert_eq!(
            nic("x", "52:54:00:12:34:56", None, Some("99999999999"))
                .unwrap()
                .speed_mbps,
            None
        );
    }

    #[test]
    fn disks_from_sysfs_samples() {
        // virtio-blk on this build host: serial in /sys/block/vda/serial, no device/model.
        let vda = disk("vda", "536870912\n", None, Some("1566632066716031\n")).unwrap();
        assert_eq!(vda.size_bytes, 536_870_912 * 512);
        assert_eq!(vda.serial.as_deref(), Some("1566632066716031"));
        assert_eq!(vda.model, None);
        let sda = disk("sda", "1000", Some("QEMU HARDDISK   \n"), Some("")).unwrap();
        assert_eq!(
            (sda.model.as_deref(), sda.serial),
            (Some("QEMU HARDDISK"), None)
        );
        for skip in ["loop0", "ram0", "zram0", "dm-0", ""] {
            assert_eq!(disk(skip, "100", None, None), None, "{skip}");
        }
        assert_eq!(disk("sr0", "0", None, None), None);
        assert_eq!(disk("sdb", "-1", None, None), None);
        assert_eq!(disk("sdb", &u64::MAX.to_string(), None, None), None);
    }

    #[test]
    fn smbios_fields_are_cleaned() {
        let s = smbios(
            Some("8E1C1F4A-0000-4E55-9D1E-ABCDEF012345\n"),
            Some("  \n"),
            Some("QEMU\n"),
            None,
        );
        assert_eq!(
            s.uuid.as_deref(),
            Some("8e1c1f4a-0000-4e55-9d1e-abcdef012345")
        );
        assert_eq!(
            (s.serial, s.vendor.as_deref(), s.product),
            (None, Some("QEMU"), None)
        );
        assert_eq!(text(&"x".repeat(1000)).map(|t| t.len()), Some(MAX_TEXT));
        assert_eq!(text("a\u{1b}[31mb\0"), Some("a[31mb".into()));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}", t in "[ -~\n\t]{0,300}") {
            let _ = cpu_from_cpuinfo(&s);
            let _ = cpu_from_cpuinfo(&t);
            let _ = memory_bytes_from_meminfo(&t);
            let _ = nic(&s, &t, Some(&s), Some(&t));
            let _ = disk(&s, &t, Some(&s), Some(&t));
            if let Some(x) = text(&s) {
                prop_assert!(x.chars().count() <= MAX_TEXT && !x.chars().any(char::is_control));
            }
        }
    }
}
