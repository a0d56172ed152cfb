//! The Lease Manager's TOML configuration: read once, unknown keys refused, defaults named,
//! validated into [`Config`] at start with errors that name the key and what to do.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use pxe::dhcp::DhcpSection;
use serde::Deserialize;

use crate::wake::WakePolicy;

/// Default kernel command line of the agent (the LM adds `lm.url`, `lm.boot`, `lm.mac`).
pub const DEFAULT_CMDLINE: &str = "console=ttyS0,115200 panic=-1 quiet";
/// Default TFTP root: Debian's `ipxe` package (undionly.kpxe, ipxe.efi, snponly.efi).
pub const DEFAULT_TFTP_ROOT: &str = "/usr/lib/ipxe";
/// Default agent heartbeat interval.
pub const DEFAULT_HEARTBEAT_SECS: u32 = 15;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Where the database, the CA and the admin socket live.
    pub state_dir: PathBuf,
    pub provisioning: Provisioning,
    #[serde(default)]
    pub api: ApiSection,
    pub boot: BootSection,
    pub dhcp: DhcpSection,
    #[serde(default)]
    pub wake: WakePolicy,
    #[serde(default)]
    pub leases: LeasesSection,
    #[serde(default)]
    pub power: PowerSection,
}

/// `[power]`: out-of-band power control besides Wake-on-LAN.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSection {
    /// The command that power-cycles a server (argv; `{name}` and `{mac}` are filled in),
    /// run when a released server is running its tenant OS (no agent hears the release).
    pub cycle_command: Option<Vec<String>>,
}

/// `[leases]`: lease and enrollment limits (every key optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeasesSection {
    /// Shortest lease a tenant may ask for; default 60 s.
    pub min_duration_s: Option<u64>,
    /// Longest lease in all (renewals included); default 90 days.
    pub max_duration_s: Option<u64>,
    /// How long an enrollment token is valid after the boot script was fetched; default 900 s.
    pub token_ttl_s: Option<u64>,
    /// Longest agent certificate (never past the lease's end anyway); default 7 days.
    pub agent_cert_max_s: Option<u64>,
    /// How long a released server may take to confirm its wipe before it is quarantined;
    /// default 300 s.
    pub release_timeout_s: Option<u64>,
    /// Lifetime of tenant client certificates; default 365 days.
    pub tenant_cert_days: Option<u32>,
}

/// The validated `[leases]` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    pub limits: crate::ledger::leases::Limits,
    pub token_ttl_s: u64,
    pub agent_cert_max_s: u64,
    pub release_timeout_s: u64,
    pub tenant_cert_days: u32,
}

impl LeasesSection {
    fn validate(&self) -> Result<LeaseSettings, ConfigError> {
        let d = crate::ledger::leases::Limits::default();
        let min = self.min_duration_s.unwrap_or(d.min_duration_s);
        let max = self.max_duration_s.unwrap_or(d.max_duration_s);
        if min == 0 || min > max {
            return Err(invalid(
                "leases.min_duration_s",
                format!("{min} must be at least 1 and at most leases.max_duration_s ({max})"),
            ));
        }
        let check = |key: &'static str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(invalid(key, format!("{v} must be between {lo} and {hi}")))
            }
        };
        Ok(LeaseSettings {
            limits: crate::ledger::leases::Limits {
                min_duration_s: min,
                max_duration_s: max,
            },
            token_ttl_s: check(
                "leases.token_ttl_s",
                self.token_ttl_s.unwrap_or(900),
                10,
                86_400,
            )?,
            agent_cert_max_s: check(
                "leases.agent_cert_max_s",
                self.agent_cert_max_s.unwrap_or(7 * 86_400),
                60,
                365 * 86_400,
            )?,
            release_timeout_s: check(
                "leases.release_timeout_s",
                self.release_timeout_s.unwrap_or(300),
                5,
                86_400,
            )?,
            tenant_cert_days: check(
                "leases.tenant_cert_days",
                u64::from(self.tenant_cert_days.unwrap_or(365)),
                1,
                3650,
            )? as u32,
        })
    }
}

/// `[provisioning]`: the network the servers boot on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provisioning {
    /// Interface facing the servers (DHCP binds to it, Wake-on-LAN goes out on it).
    pub interface: String,
    /// The LM's address on it.
    pub address: Ipv4Addr,
}

/// `[api]`: the HTTPS API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Listen address; default `<provisioning.address>:8443`.
    pub listen: Option<SocketAddr>,
    /// The URL agents use (goes into their kernel command line; the TLS certificate is issued
    /// for its host); default `https://<provisioning.address>:<listen port>`.
    pub url: Option<String>,
    /// Agent heartbeat interval; default [`DEFAULT_HEARTBEAT_SECS`].
    pub heartbeat_secs: Option<u32>,
}

/// `[boot]`: what the servers boot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSection {
    /// The kernel served to iPXE (`initramfs-build` writes it next to the initrd).
    pub kernel: PathBuf,
    /// The agent's initramfs.
    pub initrd: PathBuf,
    /// Kernel command line base; default [`DEFAULT_CMDLINE`].
    #[serde(default)]
    pub cmdline: Option<String>,
    /// Plain-HTTP boot listener; default `<provisioning.address>:8080`.
    #[serde(default)]
    pub http_listen: Option<SocketAddr>,
    /// TFTP root; default [`DEFAULT_TFTP_ROOT`].
    #[serde(default)]
    pub tftp_root: Option<PathBuf>,
    /// TFTP listener; default `<provisioning.address>:69`.
    #[serde(default)]
    pub tftp_listen: Option<SocketAddr>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub interface: String,
    pub address: Ipv4Addr,
    pub api_listen: SocketAddr,
    pub api_url: String,
    /// Host part of `api_url` (certificate subject alternative name).
    pub api_host: String,
    pub heartbeat_secs: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub http_listen: SocketAddr,
    pub tftp_root: PathBuf,
    pub tftp_listen: SocketAddr,
    pub dhcp: DhcpSection,
    pub wake: WakePolicy,
    pub leases: LeaseSettings,
    /// `[power] cycle_command`, validated (non-empty, an absolute program path).
    pub cycle_command: Option<Vec<String>>,
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("config {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let file: ConfigFile = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })?;
        Self::validate(file)
    }

    /// Validates a parsed file.
    pub fn validate(f: ConfigFile) -> Result<Self, ConfigError> {
        let addr = f.provisioning.address;
        if f.provisioning.interface.is_empty() || f.provisioning.interface.len() > 15 {
            return Err(invalid(
                "provisioning.interface",
                "must be a network interface name (1-15 characters)",
            ));
        }
        let api_listen = f.api.listen.unwrap_or(SocketAddr::from((addr, 8443)));
        let api_url = f
            .api
            .url
            .clone()
            .unwrap_or_else(|| format!("https://{addr}:{}", api_listen.port()));
        let api_host = api_url
            .strip_prefix("https://")
            .and_then(|rest| rest.split(['/', ':']).next())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                invalid(
                    "api.url",
                    format!("{api_url:?} must look like https://HOST:PORT"),
                )
            })?
            .to_string();
        if api_url
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'"' || b.is_ascii_control())
        {
            return Err(invalid(
                "api.url",
                "must not contain spaces, quotes or control characters",
            ));
        }
        let heartbeat_secs = f.api.heartbeat_secs.unwrap_or(DEFAULT_HEARTBEAT_SECS);
        if !(1..=3600).contains(&heartbeat_secs) {
            return Err(invalid("api.heartbeat_secs", "must be between 1 and 3600"));
        }
        f.wake.validate().map_err(|r| invalid("wake", r))?;
        let leases = f.leases.validate()?;
        if f.dhcp.server_address != addr {
            return Err(invalid(
                "dhcp.server_address",
                format!(
                    "{} differs from provisioning.address {addr}; they must be the same",
                    f.dhcp.server_address
                ),
            ));
        }
        // Validate the DHCP section now, so a bad pool fails at start with its own message.
        pxe::dhcp::DhcpConfig::from_section(&f.dhcp).map_err(|e| invalid("dhcp", e.to_string()))?;
        Ok(Config {
            state_dir: f.state_dir,
            interface: f.provisioning.interface,
            address: addr,
            api_listen,
            api_url,
            api_host,
            heartbeat_secs,
            kernel: f.boot.kernel,
            initrd: f.boot.initrd,
            cmdline: f.boot.cmdline.unwrap_or_else(|| DEFAULT_CMDLINE.into()),
            http_listen: f.boot.http_listen.unwrap_or(SocketAddr::from((addr, 8080))),
            tftp_root: f.boot.tftp_root.unwrap_or_else(|| DEFAULT_TFTP_ROOT.into()),
            tftp_listen: f.boot.tftp_listen.unwrap_or(SocketAddr::from((addr, 69))),
            dhcp: f.dhcp,
            wake: f.wake,
            leases,
            cycle_command: match f.power.cycle_command {
                Some(argv) if argv.first().is_none_or(|p| !p.starts_with('/')) => {
                    return Err(invalid(
                        "power.cycle_command",
                        "give the program as an absolute path, then its arguments",
                    ));
                }
                other => other,
            },
        })
    }

    /// The admin socket path.
    pub fn admin_socket(&self) -> PathBuf {
        self.state_dir.join("admin.sock")
    }
}

/// A documented example, printed by `lease-manager config example`.
pub const EXAMPLE: &str = include_str!("../lease-manager.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_validates() {
        let f: ConfigFile = toml::from_str(EXAMPLE).unwrap();
        let c = Config::validate(f).unwrap();
        assert_eq!(c.api_url, "https://10.77.0.1:8443");
        assert_eq!(c.api_host, "10.77.0.1");
        assert_eq!(c.http_listen.port(), 8080);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let bad = EXAMPLE.replace("[provisioning]", "[provisioning]\ncolour = \"blue\"");
        let e = toml::from_str::<ConfigFile>(&bad).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        let bad = EXAMPLE.replace(
            "server_address = \"10.77.0.1\"",
            "server_address = \"10.77.0.9\"",
        );
        let e = Config::validate(toml::from_str(&bad).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("dhcp.server_address"), "{e}");
        let bad = EXAMPLE.replace("attempts = 3", "attempts = 0");
        let e = Config::validate(toml::from_str(&bad).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("wake"), "{e}");
        let bad = EXAMPLE.replace("token_ttl_s = 900", "token_ttl_s = 1");
        let e = Config::validate(toml::from_str(&bad).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("leases.token_ttl_s"), "{e}");
    }
}
