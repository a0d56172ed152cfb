//! What a simulated agent takes from its per-host iPXE script: the `lm.*` words of the kernel
//! line (the real agent gets them from /proc/cmdline). Pure.

use lm_api::{BootId, LeaseId};

/// The boot parameters of one boot attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    pub api_url: String,
    pub boot_id: BootId,
    pub lease: Option<LeaseId>,
    pub token: Option<String>,
}

/// Parses the script's `kernel` line.
pub fn parse(script: &str) -> Result<BootParams, String> {
    let line = script
        .lines()
        .find(|l| l.starts_with("kernel "))
        .ok_or("the script has no kernel line")?;
    let word = |key: &str| {
        line.split(' ')
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
    };
    let api_url = word("lm.url=").ok_or("no lm.url")?;
    let boot_id = word("lm.boot=")
        .ok_or("no lm.boot")?
        .parse()
        .map_err(|e| format!("lm.boot: {e}"))?;
    let lease = match word("lm.lease=") {
        Some(l) => Some(l.parse().map_err(|e| format!("lm.lease: {e}"))?),
        None => None,
    };
    Ok(BootParams {
        api_url,
        boot_id,
        lease,
        token: word("lm.token="),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lm_words() {
        let s = "#!ipxe\necho x\nkernel http://h/boot/x/vmlinuz initrd=initrd quiet lm.url=https://10.0.0.1:8443 lm.boot=00000000000000ff lm.mac=52:54:00:00:00:01 lm.lease=l-0000000000000001 lm.token=abcd\ninitrd x\nboot\n";
        let p = parse(s).unwrap();
        assert_eq!(p.api_url, "https://10.0.0.1:8443");
        assert_eq!(p.boot_id.to_string(), "00000000000000ff");
        assert_eq!(p.lease.unwrap().to_string(), "l-0000000000000001");
        assert_eq!(p.token.as_deref(), Some("abcd"));
        assert!(parse("#!ipxe\nboot\n").is_err());
        assert!(parse("kernel x lm.url=u lm.boot=zz").is_err());
    }
}
