//! The boot NIC: find it by MAC in /sys/class/net (waiting while its driver probes), bring it
//! and `lo` up, and wait for carrier.
//!
//! Does IO (sysfs reads, ioctls via [`super::ifconfig`], sleeps).

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use lm_api::MacAddr;

use super::ifconfig;
use crate::sys;

const SYS_NET: &str = "/sys/class/net";
const POLL: Duration = Duration::from_millis(100);

/// The interface the agent works on.
#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    pub index: i32,
    pub mac: MacAddr,
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Interfaces present now, with their MAC when they have one: `(name, mac)`.
fn interfaces() -> Vec<(String, Option<MacAddr>)> {
    let Ok(dir) = std::fs::read_dir(SYS_NET) else {
        return vec![];
    };
    let mut out: Vec<(String, Option<MacAddr>)> = dir
        .filter_map(|e| e.ok())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let mac = read_trimmed(&e.path().join("address")).and_then(|a| a.parse().ok());
            (name, mac)
        })
        .collect();
    out.sort();
    out
}

fn describe(list: &[(String, Option<MacAddr>)]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|(n, m)| match m {
            Some(m) => format!("{n} ({m})"),
            None => n.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits up to `timeout` for an interface with `mac` to appear; returns its name.
pub fn find_by_mac(mac: MacAddr, timeout: Duration) -> Result<String> {
    let until = sys::now() + timeout;
    loop {
        let list = interfaces();
        if let Some((name, _)) = list.iter().find(|(_, m)| *m == Some(mac)) {
            return Ok(name.clone());
        }
        if sys::now() >= until {
            bail!(
                "no interface with MAC {mac} (lm.mac) after {:.1} s; present: {} \
                 (is its driver in {}?)",
                timeout.as_secs_f64(),
                describe(&list),
                crate::modules::MODULES_ORDER
            );
        }
        sys::sleep(POLL);
    }
}

/// Waits up to `timeout` for `/sys/class/net/<name>/carrier` to read 1.
pub fn wait_carrier(name: &str, timeout: Duration) -> Result<Duration> {
    let start = sys::now();
    let dir = Path::new(SYS_NET).join(name);
    loop {
        // Reading `carrier` fails with EINVAL while the interface is down; that is "no carrier".
        if read_trimmed(&dir.join("carrier")).as_deref() == Some("1") {
            return Ok(sys::now().saturating_sub(start));
        }
        if sys::now().saturating_sub(start) >= timeout {
            let oper = read_trimmed(&dir.join("operstate")).unwrap_or_else(|| "unknown".into());
            bail!(
                "no carrier on {name} after {:.1} s (operstate {oper})",
                timeout.as_secs_f64()
            );
        }
        sys::sleep(POLL);
    }
}

/// Finds the boot NIC, brings `lo` and it up, waits for carrier. Returns the interface and a
/// detail for the phase marker.
pub fn bring_up(
    mac: MacAddr,
    find_timeout: Duration,
    carrier_timeout: Duration,
) -> Result<(Iface, String)> {
    if let Err(e) = ifconfig::set_up("lo") {
        tracing::warn!("lo stays down: {e:#}");
    }
    let name = find_by_mac(mac, find_timeout)?;
    ifconfig::set_up(&name)?;
    let index = ifconfig::index(&name)?;
    let waited = wait_carrier(&name, carrier_timeout)?;
    let detail = format!(
        "iface={name} mac={mac} carrier_after_ms={}",
        waited.as_millis()
    );
    Ok((Iface { name, index, mac }, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_what_is_present() {
        let mac: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let list = vec![("eth0".to_string(), Some(mac)), ("wg0".to_string(), None)];
        assert_eq!(describe(&list), "eth0 (52:54:00:00:00:01), wg0");
        assert_eq!(describe(&[]), "none");
    }

    #[test]
    fn a_missing_mac_times_out_with_the_list() {
        // Multicast: no real interface has it.
        let mac: MacAddr = "01:00:5e:00:00:fe".parse().unwrap();
        let err = find_by_mac(mac, Duration::ZERO).unwrap_err().to_string();
        assert!(
            err.contains("no interface with MAC 01:00:5e:00:00:fe"),
            "{err}"
        );
        assert!(err.contains("present: "), "{err}");
    }
}
