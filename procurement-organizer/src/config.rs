//! The organizer's TOML configuration (`organizer.toml`): read once, unknown keys refused,
//! defaults named, validated into [`Config`] with errors that name the key and what to do.
//! Relative paths are taken from the config file's folder.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use po_api::Ipv4Net;
use serde::Deserialize;

/// Default port of the registration service (data-centre side).
pub const DEFAULT_REGISTER_PORT: u16 = 7443;
/// Default WireGuard port.
pub const DEFAULT_WG_PORT: u16 = 51820;
/// Default port of the key service (private side).
pub const DEFAULT_KEY_PORT: u16 = 7444;
/// Default port of the image store (private side).
pub const DEFAULT_STORE_PORT: u16 = 8080;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The tenant credential bundle (JSON printed by `lease-manager tenant add`).
    pub bundle: PathBuf,
    /// `https://host:port` of the Lease Manager; default: the bundle's `api_url`.
    #[serde(default)]
    pub lm_url: Option<String>,
    /// Where the lease record, gateway identity, image store and key store live.
    pub state_dir: PathBuf,
    pub gateway: GatewaySection,
}

/// `[gateway]`: the tenant gateway (`gateway run`) and what lease requests tell agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// The gateway's address on the data-centre segment: the registration service and
    /// WireGuard listen there (and only they do).
    pub dc_address: Ipv4Addr,
    /// Registration service port (default 7443).
    #[serde(default)]
    pub register_port: Option<u16>,
    /// `https://host:port` agents use to register; default `https://<dc_address>:<port>`.
    #[serde(default)]
    pub register_url: Option<String>,
    /// WireGuard UDP port (default 51820).
    #[serde(default)]
    pub wg_port: Option<u16>,
    /// `host:port` agents send WireGuard to; default `<dc_address>:<wg_port>`.
    #[serde(default)]
    pub wg_endpoint: Option<String>,
    /// Name of the gateway's TUN device (default `po-wg0`).
    #[serde(default)]
    pub tun_name: Option<String>,
    /// The tunnel network: the gateway takes its first address, agents one each after it.
    pub tunnel_network: Ipv4Net,
    /// The tenant's private networks agents may reach through the tunnel.
    #[serde(default)]
    pub private_networks: Vec<Ipv4Net>,
    /// Key service listen address; default `<gateway tunnel address>:7444`. Must not be the
    /// data-centre address (nor 0.0.0.0).
    #[serde(default)]
    pub key_service_listen: Option<SocketAddr>,
    /// Image store listen address; default `<gateway tunnel address>:8080`. Same rule.
    #[serde(default)]
    pub image_store_listen: Option<SocketAddr>,
    /// Seconds between polls of the Lease Manager's leases (default 3).
    #[serde(default)]
    pub lm_poll_secs: Option<u64>,
    /// Seconds between CRL refreshes (default 10).
    #[serde(default)]
    pub crl_refresh_secs: Option<u64>,
    /// Oldest CRL a decision may use before the gateway refuses to decide (default 60).
    #[serde(default)]
    pub crl_max_age_secs: Option<u64>,
    /// WireGuard keepalive the agents are asked to send (default 15, 0 for none).
    #[serde(default)]
    pub keepalive_secs: Option<u16>,
    /// Refuse servers whose start-up key would only have the weak, identity-derived root
    /// (no TPM): their registration is refused with `weak-host-root` (default false).
    #[serde(default)]
    pub require_tpm: Option<bool>,
    /// The tunnel agents build to this gateway: `"wireguard"` (default) or `"ipsec"` (the
    /// gateway writes and loads a strongSwan configuration; see docs/operations.md).
    #[serde(default)]
    pub tunnel: Option<TunnelMode>,
    /// IPsec mode: charon the gateway starts (default `/usr/lib/ipsec/charon`); `""` when
    /// the operator runs charon.
    #[serde(default)]
    pub ipsec_charon: Option<PathBuf>,
    /// IPsec mode: the swanctl program (default `/usr/sbin/swanctl`).
    #[serde(default)]
    pub ipsec_swanctl: Option<PathBuf>,
    /// IPsec mode: charon's VICI socket (`unix://<path>`); default: in the state folder when
    /// the gateway starts charon, `unix:///var/run/charon.vici` when the operator does.
    #[serde(default)]
    pub ipsec_vici: Option<String>,
    /// IPsec mode: seconds between dead peer detection probes (default 30, 0 for none).
    #[serde(default)]
    pub ipsec_dpd_secs: Option<u32>,
    /// IPsec mode: the gateway rekeys each agent's IKE SA after this many seconds (default
    /// 14400, strongSwan's; 0: never). strongSwan subtracts up to a tenth at random.
    #[serde(default)]
    pub ipsec_ike_rekey_secs: Option<u32>,
    /// IPsec mode: the gateway rekeys each agent's child SA after this many seconds (default
    /// 3600, strongSwan's; 0: never; the agent also rekeys by its own byte and age limits).
    #[serde(default)]
    pub ipsec_child_rekey_secs: Option<u32>,
}

/// `gateway.tunnel`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelMode {
    #[default]
    Wireguard,
    Ipsec,
}

/// A rekey time: 0 (never) or 2 s to a week.
fn rekey_secs(
    key: &'static str,
    v: Option<u32>,
    default: u32,
) -> Result<u32, (&'static str, String)> {
    match v.unwrap_or(default) {
        v @ (0 | 2..=604_800) => Ok(v),
        v => Err((key, format!("{v} must be 0 (never) or 2 to 604800 seconds"))),
    }
}

/// Debian's charon.
pub const DEFAULT_CHARON: &str = "/usr/lib/ipsec/charon";
/// Debian's swanctl.
pub const DEFAULT_SWANCTL: &str = "/usr/sbin/swanctl";
/// charon's default VICI socket.
pub const DEFAULT_VICI: &str = "unix:///var/run/charon.vici";

/// The validated IPsec settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsecConfig {
    /// charon to start, `None` when the operator runs it.
    pub charon: Option<PathBuf>,
    pub swanctl: PathBuf,
    /// `None`: the default for who runs charon (see [`GatewaySection::ipsec_vici`]).
    pub vici: Option<String>,
    pub dpd_secs: u32,
    /// IKE and child SA rekey times in seconds (0: never).
    pub ike_rekey_secs: u32,
    pub child_rekey_secs: u32,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bundle: PathBuf,
    pub lm_url: Option<String>,
    pub state_dir: PathBuf,
    pub gateway: GatewayConfig,
}

/// The validated `[gateway]` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub dc_address: Ipv4Addr,
    pub register_listen: SocketAddr,
    pub register_url: String,
    pub wg_listen: SocketAddr,
    pub wg_endpoint: String,
    pub tun_name: String,
    pub tunnel_network: Ipv4Net,
    /// The gateway's address in the tunnel (the network's first host).
    pub tunnel_address: Ipv4Addr,
    pub private_networks: Vec<Ipv4Net>,
    pub key_service_listen: SocketAddr,
    pub image_store_listen: SocketAddr,
    pub lm_poll_secs: u64,
    pub crl_refresh_secs: u64,
    pub crl_max_age_secs: u64,
    pub keepalive_secs: u16,
    pub require_tpm: bool,
    pub tunnel: TunnelMode,
    pub ipsec: IpsecConfig,
}

impl GatewayConfig {
    /// The key service as agents reach it through the tunnel.
    pub fn key_service_url(&self) -> String {
        format!("https://{}", self.key_service_listen)
    }

    /// The image store as agents reach it through the tunnel.
    pub fn image_store_url(&self) -> String {
        format!("http://{}", self.image_store_listen)
    }

    /// What agents route into the tunnel: the tunnel network and the private networks.
    pub fn routes(&self) -> Vec<Ipv4Net> {
        let mut r = vec![self.tunnel_network];
        r.extend(self.private_networks.iter().copied());
        r
    }
}

/// Why the configuration was refused: names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read the config file {path}: {source}; write one with `procurement-organizer init` or pass --config"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {key}: {why}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        why: String,
    },
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Validates the text of the file at `path` (relative paths are taken from its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let invalid = |key, why: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            why,
        };
        if let Some(url) = &file.lm_url
            && !url.starts_with("https://")
        {
            return Err(invalid(
                "lm_url",
                format!("{url:?} must start with https://"),
            ));
        }
        let gateway = validate_gateway(&file.gateway).map_err(|(k, why)| invalid(k, why))?;
        Ok(Self {
            bundle: base.join(&file.bundle),
            lm_url: file.lm_url,
            state_dir: base.join(&file.state_dir),
            gateway,
        })
    }
}

fn validate_gateway(g: &GatewaySection) -> Result<GatewayConfig, (&'static str, String)> {
    let dc = IpAddr::V4(g.dc_address);
    if g.dc_address.is_unspecified() {
        return Err((
            "gateway.dc_address",
            "must be the gateway's own address on the data-centre segment, not 0.0.0.0".into(),
        ));
    }
    let register_port = g.register_port.unwrap_or(DEFAULT_REGISTER_PORT);
    let wg_port = g.wg_port.unwrap_or(DEFAULT_WG_PORT);
    let register_listen = SocketAddr::new(dc, register_port);
    let wg_listen = SocketAddr::new(dc, wg_port);
    let register_url = g
        .register_url
        .clone()
        .unwrap_or_else(|| format!("https://{register_listen}"));
    let wg_endpoint = g
        .wg_endpoint
        .clone()
        .unwrap_or_else(|| wg_listen.to_string());
    let net = g.tunnel_network;
    if net.prefix() > 30 {
        return Err((
            "gateway.tunnel_network",
            format!(
                "{net} is too small: it needs the gateway's address and one per agent (use /30 or larger, e.g. /24)"
            ),
        ));
    }
    let tunnel_address = net.nth(1).ok_or((
        "gateway.tunnel_network",
        format!("{net} has no first host address"),
    ))?;
    for p in &g.private_networks {
        if p.overlaps(&net) {
            return Err((
                "gateway.private_networks",
                format!("{p} overlaps the tunnel network {net}"),
            ));
        }
        if p.contains(g.dc_address) {
            return Err((
                "gateway.private_networks",
                format!(
                    "{p} contains the data-centre address {}: the private side must be another network",
                    g.dc_address
                ),
            ));
        }
    }
    if net.contains(g.dc_address) {
        return Err((
            "gateway.tunnel_network",
            format!("{net} contains the data-centre address {}", g.dc_address),
        ));
    }
    let private_listen = |key: &'static str, v: Option<SocketAddr>, port: u16| {
        let addr = v.unwrap_or(SocketAddr::new(IpAddr::V4(tunnel_address), port));
        match addr.ip() {
            IpAddr::V4(ip) if ip == g.dc_address => Err((
                key,
                format!(
                    "{addr} is the data-centre address: this service must be reachable through the tunnel only; bind it to {tunnel_address} or a private network address"
                ),
            )),
            ip if ip.is_unspecified() => Err((
                key,
                format!(
                    "{addr} listens on every address, the data-centre one too; bind it to {tunnel_address} or a private network address"
                ),
            )),
            IpAddr::V4(ip)
                if net.contains(ip) || g.private_networks.iter().any(|p| p.contains(ip)) =>
            {
                Ok(addr)
            }
            _ => Err((
                key,
                format!(
                    "{addr} is neither in the tunnel network {net} nor in a private network; agents could not reach it through the tunnel"
                ),
            )),
        }
    };
    let key_service_listen = private_listen(
        "gateway.key_service_listen",
        g.key_service_listen,
        DEFAULT_KEY_PORT,
    )?;
    let image_store_listen = private_listen(
        "gateway.image_store_listen",
        g.image_store_listen,
        DEFAULT_STORE_PORT,
    )?;
    let tun_name = g.tun_name.clone().unwrap_or_else(|| "po-wg0".into());
    if tun_name.is_empty()
        || tun_name.len() > 15
        || !tun_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err((
            "gateway.tun_name",
            format!("{tun_name:?} is not an interface name: 1-15 letters, digits, '-' or '_'"),
        ));
    }
    let secs = |key: &'static str, v: Option<u64>, default: u64, max: u64| {
        let v = v.unwrap_or(default);
        if v == 0 || v > max {
            Err((key, format!("{v} must be 1 to {max}")))
        } else {
            Ok(v)
        }
    };
    let lm_poll_secs = secs("gateway.lm_poll_secs", g.lm_poll_secs, 3, 300)?;
    let crl_refresh_secs = secs("gateway.crl_refresh_secs", g.crl_refresh_secs, 10, 3600)?;
    let crl_max_age_secs = secs("gateway.crl_max_age_secs", g.crl_max_age_secs, 60, 86_400)?;
    if crl_max_age_secs < crl_refresh_secs {
        return Err((
            "gateway.crl_max_age_secs",
            format!(
                "{crl_max_age_secs} is shorter than crl_refresh_secs ({crl_refresh_secs}): every CRL would be too old before the next refresh"
            ),
        ));
    }
    // The spec the LM checks, checked here first so `request` fails before asking the LM.
    let spec = lm_api::GatewaySpec {
        register_url: register_url.clone(),
        tls_cert_sha256: "0".repeat(64),
        wg_endpoint: Some(wg_endpoint.clone()),
        wg_public_key: None,
    };
    if let Err(e) = spec.validate() {
        let key = match e.field {
            "register_url" => "gateway.register_url",
            _ => "gateway.wg_endpoint",
        };
        return Err((key, e.why.to_string()));
    }
    let charon = match &g.ipsec_charon {
        None => Some(PathBuf::from(DEFAULT_CHARON)),
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
    };
    if let Some(v) = &g.ipsec_vici
        && !(v.starts_with("unix:///") && v.len() > 8 && !v.contains(char::is_whitespace))
    {
        return Err((
            "gateway.ipsec_vici",
            format!("{v:?} is not a VICI socket: write unix:///path/to/charon.vici"),
        ));
    }
    let ipsec = IpsecConfig {
        charon,
        swanctl: g
            .ipsec_swanctl
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SWANCTL)),
        vici: g.ipsec_vici.clone(),
        dpd_secs: match g.ipsec_dpd_secs.unwrap_or(30) {
            v @ 0..=3600 => v,
            v => return Err(("gateway.ipsec_dpd_secs", format!("{v} must be 0 to 3600"))),
        },
        ike_rekey_secs: rekey_secs(
            "gateway.ipsec_ike_rekey_secs",
            g.ipsec_ike_rekey_secs,
            14_400,
        )?,
        child_rekey_secs: rekey_secs(
            "gateway.ipsec_child_rekey_secs",
            g.ipsec_child_rekey_secs,
            3600,
        )?,
    };
    Ok(GatewayConfig {
        dc_address: g.dc_address,
        register_listen,
        register_url,
        wg_listen,
        wg_endpoint,
        tun_name,
        tunnel_network: net,
        tunnel_address,
        private_networks: g.private_networks.clone(),
        key_service_listen,
        image_store_listen,
        lm_poll_secs,
        crl_refresh_secs,
        crl_max_age_secs,
        keepalive_secs: g.keepalive_secs.unwrap_or(15),
        require_tpm: g.require_tpm.unwrap_or(false),
        tunnel: g.tunnel.unwrap_or_default(),
        ipsec,
    })
}

/// What `init` writes: the settings it was given and every default, documented.
pub fn example(
    bundle: &str,
    state_dir: &str,
    dc_address: Ipv4Addr,
    tunnel: Ipv4Net,
    private: &[Ipv4Net],
) -> String {
    let private = private
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# procurement-organizer configuration (written by `procurement-organizer init`).
# Relative paths are taken from this file's folder. Unknown keys are refused.

# The tenant credential bundle printed by `lease-manager tenant add` (keep it mode 0600).
bundle = "{bundle}"
# The Lease Manager; default: the bundle's api_url.
# lm_url = "https://10.77.0.1:8443"
# The lease record (the tenant's approval list), gateway identity, image store and keys.
state_dir = "{state_dir}"

[gateway]
# The gateway's address on the data-centre segment: registration and WireGuard only.
dc_address = "{dc_address}"
# register_port = {DEFAULT_REGISTER_PORT}
# register_url = "https://{dc_address}:{DEFAULT_REGISTER_PORT}"
# wg_port = {DEFAULT_WG_PORT}
# wg_endpoint = "{dc_address}:{DEFAULT_WG_PORT}"
# tun_name = "po-wg0"
# The gateway takes the first address, each agent one of the others.
tunnel_network = "{tunnel}"
# Networks behind the gateway that agents reach through the tunnel.
private_networks = [{private}]
# Key service and image store: on the tunnel address by default, never the data-centre one.
# key_service_listen = "<gateway tunnel address>:{DEFAULT_KEY_PORT}"
# image_store_listen = "<gateway tunnel address>:{DEFAULT_STORE_PORT}"
# lm_poll_secs = 3
# crl_refresh_secs = 10
# crl_max_age_secs = 60
# keepalive_secs = 15
# Refuse servers without a TPM (their start-up key would have only the weak root derived
# from the server's identity).
# require_tpm = false
# The tunnel: "wireguard" or "ipsec" (strongSwan; see docs/operations.md).
# tunnel = "wireguard"
# IPsec mode: charon the gateway starts ("" if you run charon yourself), swanctl, the VICI
# socket (default: in the state folder, or unix:///var/run/charon.vici if you run charon),
# and the dead peer detection interval.
# ipsec_charon = "{DEFAULT_CHARON}"
# ipsec_swanctl = "{DEFAULT_SWANCTL}"
# ipsec_vici = "unix:///var/run/charon.vici"
# ipsec_dpd_secs = 30
# ipsec_ike_rekey_secs = 14400
# ipsec_child_rekey_secs = 3600
"#
    )
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
