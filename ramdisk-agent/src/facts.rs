//! Collects the hardware facts from /proc and /sys and hands the text to the pure parsers of
//! [`agent_core::facts`].
//!
//! Does IO (reads files, lists directories). Unreadable files become `None` or are skipped: facts
//! are best effort and never fail the phase.

use std::path::Path;

use agent_core::facts;
use lm_api::HardwareFacts;

/// Largest file read for a fact (sysfs attributes are one page).
const MAX_READ: u64 = 256 * 1024;

fn read(path: impl AsRef<Path>) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    let mut s = String::new();
    f.take(MAX_READ).read_to_string(&mut s).ok()?;
    Some(s)
}

fn entries(dir: &str) -> Vec<(String, std::path::PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<_> = rd
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    out
}

/// Everything the agent can learn about the machine.
pub fn collect() -> HardwareFacts {
    let nics = entries("/sys/class/net")
        .into_iter()
        .filter_map(|(name, p)| {
            let address = read(p.join("address"))?;
            let driver = std::fs::read_link(p.join("device/driver")).ok();
            let driver = driver.as_ref().map(|d| d.to_string_lossy().into_owned());
            facts::nic(
                &name,
                &address,
                driver.as_deref(),
                read(p.join("speed")).as_deref(),
            )
        })
        .collect();
    let dmi = |f: &str| read(Path::new("/sys/class/dmi/id").join(f));
    let smbios = facts::smbios(
        dmi("product_uuid").as_deref(),
        dmi("product_serial").as_deref(),
        dmi("sys_vendor").as_deref(),
        dmi("product_name").as_deref(),
    );
    let cpu = facts::cpu_from_cpuinfo(&read("/proc/cpuinfo").unwrap_or_default());
    let memory_bytes = read("/proc/meminfo")
        .and_then(|m| facts::memory_bytes_from_meminfo(&m))
        .unwrap_or(0);
    let disks = entries("/sys/block")
        .into_iter()
        .filter(|(name, _)| facts::is_reported_block(name))
        .filter_map(|(name, p)| {
            let size = read(p.join("size"))?;
            let serial = read(p.join("device/serial")).or_else(|| read(p.join("serial")));
            facts::disk(
                &name,
                &size,
                read(p.join("device/model")).as_deref(),
                serial.as_deref(),
            )
        })
        .collect();
    let tpm_version = read("/sys/class/tpm/tpm0/tpm_version_major")
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| crate::host_root::tpm_device().map(|_| 2));
    HardwareFacts {
        nics,
        smbios,
        cpu,
        memory_bytes,
        disks,
        tpm_version,
    }
}

/// One-line summary for the phase marker.
pub fn describe(f: &HardwareFacts) -> String {
    format!(
        "nics={} disks={} cpus={} memory_mib={} uuid={} host_root={}",
        f.nics.len(),
        f.disks.len(),
        f.cpu.logical,
        f.memory_bytes / (1024 * 1024),
        f.smbios.uuid.as_deref().unwrap_or("none"),
        match f.tpm_version {
            Some(v) => format!("tpm{v}"),
            None => "weak".into(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the build host: /proc is there, so CPU and memory are found.
    #[test]
    fn collects_this_machine() {
        let f = collect();
        assert!(f.cpu.logical >= 1);
        assert!(f.memory_bytes > 0);
        assert!(f.nics.iter().all(|n| n.name != "lo"));
        assert!(describe(&f).starts_with("nics="));
    }
}
