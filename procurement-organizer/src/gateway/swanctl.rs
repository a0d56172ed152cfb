//! The gateway in IPsec mode, pure part: which agents strongSwan may admit, and the
//! `swanctl.conf` that says so. The IO shell (`ipsec.rs`) writes the text and the credential
//! files next to it and loads them into charon with `swanctl --load-all`.
//!
//! One connection per admitted (lease, server). Its `remote.id` is the subject DN the Lease
//! Manager puts into that agent's certificate (`CN=agent <server> for <lease>`, the only RDN;
//! the identity URI is in the SAN). The DN is what the agent sends as IDi, so charon picks the
//! connection by it, and charon checks that the certificate holds it; with `cacerts` = the LM CA
//! and `revocation = strict` (the LM's CRL, kept fresh next to the file) a certificate of
//! another lease, another CA or a revoked one finds no connection to authenticate against.
//!
//! Every value that reaches the text comes from a closed alphabet checked here: lease ids
//! (`l-` and 16 lowercase hex), server names (letters, digits, `-`, `_`, `.`; 1-63, starting
//! with a letter or digit), file names, and the gateway's DN. Anything else is refused with
//! [`SwanctlError`] and never written.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use lm_api::{LeaseState, LeaseView, Name, Tunnel};
use po_api::Ipv4Net;

use super::approval::{SERVING_STATES, check_tunnel};
use crate::record::Record;

/// IKE proposal: AES-GCM-16-256, PRF HMAC-SHA2-256, x25519 or P-256.
pub const IKE_PROPOSALS: &str = "aes256gcm16-prfsha256-x25519-ecp256";
/// ESP proposal: AES-GCM-16-256, no ESN.
pub const ESP_PROPOSALS: &str = "aes256gcm16";
/// The address pool's name (agents that ask for a virtual IP get one from it).
pub const POOL_NAME: &str = "po-agents";
/// Prefix of every connection this gateway writes.
pub const CONN_PREFIX: &str = "po-";

/// One agent strongSwan may admit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IpsecPeer {
    /// The lease id as the LM writes it (`l-<16 hex>`).
    pub lease: String,
    /// The server's name in the lease.
    pub server: String,
    /// A fixed inner address (`remote_ts = <it>/32`); `None`: from the pool.
    pub address: Option<Ipv4Addr>,
}

/// What the gateway's configuration is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwanctlPlan {
    /// The gateway certificate's subject DN (`local.id`), e.g. `CN=tenant gateway`.
    pub local_id: String,
    /// The gateway certificate's file name in `x509/`.
    pub local_cert: String,
    /// The LM CA's file name in `x509ca/`.
    pub ca_cert: String,
    /// The gateway's data-centre address (`local_addrs`).
    pub dc_address: Ipv4Addr,
    /// The tunnel network; the gateway holds `tunnel_address`, the pool is the rest.
    pub tunnel_network: Ipv4Net,
    pub tunnel_address: Ipv4Addr,
    /// The tenant's private networks (with the gateway's tunnel address: `local_ts`).
    pub private_networks: Vec<Ipv4Net>,
    /// Dead peer detection interval in seconds (0: none).
    pub dpd_delay_secs: u32,
    /// IKE SA and child SA rekey times in seconds (0: never).
    pub ike_rekey_secs: u32,
    pub child_rekey_secs: u32,
    /// The admitted agents.
    pub peers: Vec<IpsecPeer>,
}

/// Why no configuration was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwanctlError {
    #[error(
        "lease id {input:?} cannot go into the strongSwan configuration: expected `l-` and 16 lowercase hex characters"
    )]
    BadLease { input: String },
    #[error(
        "server name {input:?} of lease {lease} cannot go into the strongSwan configuration: 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit"
    )]
    BadServer { lease: String, input: String },
    #[error("server {server} of lease {lease} is listed twice")]
    Duplicate { lease: String, server: String },
    #[error(
        "{what} {input:?} cannot go into the strongSwan configuration: use letters, digits, '-', '_' or '.' (not starting with '.')"
    )]
    BadFileName { what: &'static str, input: String },
    #[error(
        "the gateway identity {input:?} cannot go into the strongSwan configuration: use a DN like `CN=tenant gateway` of letters, digits, spaces and - _ . , = : @"
    )]
    BadLocalId { input: String },
    #[error(
        "the fixed address {address} of server {server} of lease {lease} is not a usable address of the tunnel network {network}"
    )]
    BadAddress {
        lease: String,
        server: String,
        address: Ipv4Addr,
        network: Ipv4Net,
    },
    #[error(
        "the tunnel network {network} leaves no addresses for agents next to the gateway's {gateway}"
    )]
    NoPool { network: Ipv4Net, gateway: Ipv4Addr },
}

fn check_lease(s: &str) -> Result<(), SwanctlError> {
    let ok = s.strip_prefix("l-").is_some_and(|h| {
        h.len() == 16 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if ok {
        Ok(())
    } else {
        Err(SwanctlError::BadLease {
            input: s.chars().take(64).collect(),
        })
    }
}

fn check_server(lease: &str, s: &str) -> Result<(), SwanctlError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(SwanctlError::BadServer {
            lease: lease.to_string(),
            input: s.chars().take(64).collect(),
        })
    }
}

fn check_file(what: &'static str, s: &str) -> Result<(), SwanctlError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(SwanctlError::BadFileName {
            what,
            input: s.chars().take(64).collect(),
        })
    }
}

fn check_local_id(s: &str) -> Result<(), SwanctlError> {
    let ok = s.len() >= 3
        && s.len() <= 256
        && s.contains('=')
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b' ' | b'-' | b'_' | b'.' | b',' | b'=' | b':' | b'@')
        });
    if ok {
        Ok(())
    } else {
        Err(SwanctlError::BadLocalId {
            input: s.chars().take(64).collect(),
        })
    }
}

/// The subject DN the LM writes into the certificate of `server`'s agent for `lease`
/// (`lm_pki::Identity::common_name` as the only RDN), as strongSwan reads a DN.
pub fn agent_dn(lease: &str, server: &str) -> String {
    format!("CN=agent {server} for {lease}")
}

/// The connection's name: [`CONN_PREFIX`], the lease, `-`, the server with `_` written `_u`
/// and `.` written `_d` (strongSwan reads a dot in a name as a section separator); distinct
/// (lease, server) pairs get distinct names.
pub fn conn_name(lease: &str, server: &str) -> String {
    let mut s = format!("{CONN_PREFIX}{lease}-");
    for c in server.chars() {
        match c {
            '_' => s.push_str("_u"),
            '.' => s.push_str("_d"),
            c => s.push(c),
        }
    }
    s
}

/// The pool: every host address of the tunnel network but the gateway's and the fixed
/// addresses of registered agents (`taken`), as `first-last` ranges, so a pool address can
/// never be a registered agent's.
fn pool_ranges(
    net: Ipv4Net,
    gateway: Ipv4Addr,
    taken: &BTreeSet<Ipv4Addr>,
) -> Result<Vec<String>, SwanctlError> {
    let size = net.size();
    let first = net.nth(1);
    let last = net.nth(size.saturating_sub(2));
    let none = || SwanctlError::NoPool {
        network: net,
        gateway,
    };
    let (Some(first), Some(last)) = (first, last) else {
        return Err(none());
    };
    let (f, l) = (u32::from(first), u32::from(last));
    let mut holes: Vec<u32> = taken
        .iter()
        .map(|a| u32::from(*a))
        .chain([u32::from(gateway)])
        .filter(|a| (f..=l).contains(a))
        .collect();
    holes.sort_unstable();
    holes.dedup();
    let mut out = Vec::new();
    let mut push = |a: u32, b: u32| {
        if a < b {
            out.push(format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b)));
        } else if a == b {
            out.push(format!("{}/32", Ipv4Addr::from(a)));
        }
    };
    let mut next = f;
    for h in holes {
        if h > next {
            push(next, h - 1);
        }
        next = h.saturating_add(1);
    }
    if next <= l && next != 0 {
        push(next, l);
    }
    if out.is_empty() {
        return Err(none());
    }
    Ok(out)
}

/// Whether `p` may go into the configuration of `plan`: its lease id, server name and fixed
/// address (if any) are checked; the shell leaves out (and logs) a peer that is refused, so one
/// bad name from the LM does not take the other agents' connections down.
pub fn check_peer(plan: &SwanctlPlan, p: &IpsecPeer) -> Result<(), SwanctlError> {
    check_lease(&p.lease)?;
    check_server(&p.lease, &p.server)?;
    if let Some(a) = p.address {
        let net = plan.tunnel_network;
        let broadcast = net.nth(net.size().saturating_sub(1));
        if !net.contains(a) || a == net.addr() || a == plan.tunnel_address || Some(a) == broadcast {
            return Err(SwanctlError::BadAddress {
                lease: p.lease.clone(),
                server: p.server.clone(),
                address: a,
                network: net,
            });
        }
    }
    Ok(())
}

/// The names of the connections `plan` renders (to find the ones a reload drops).
pub fn conn_names(plan: &SwanctlPlan) -> BTreeSet<String> {
    plan.peers
        .iter()
        .map(|p| conn_name(&p.lease, &p.server))
        .collect()
}

/// The margin between a rekey and the hard end of an SA: a tenth of the rekey time, at least
/// 10 s (strongSwan's own default, a tenth, rounds to the rekey time itself for short ones,
/// and an SA then expires before it is rekeyed).
fn margin(rekey: u32) -> u32 {
    (rekey / 10).max(10)
}

/// The IKE SA's rekey lines: rekey at `rekey` less up to a tenth at random, hard end a margin
/// later; `0s` never rekeys.
fn ike_lifetimes(rekey: u32) -> String {
    if rekey == 0 {
        return "    rekey_time = 0s\n".into();
    }
    format!(
        "    rekey_time = {rekey}s\n    over_time = {}s\n    rand_time = {}s\n",
        margin(rekey),
        rekey / 10
    )
}

/// The child SA's rekey lines, as [`ike_lifetimes`] (`life_time` is the hard end).
fn child_lifetimes(rekey: u32) -> String {
    if rekey == 0 {
        return "        rekey_time = 0s\n".into();
    }
    format!(
        "        rekey_time = {rekey}s\n        life_time = {}s\n        rand_time = {}s\n",
        rekey + margin(rekey),
        rekey / 10
    )
}

/// Renders `swanctl.conf`. Peers are written sorted, so the same plan gives the same text.
pub fn render(plan: &SwanctlPlan) -> Result<String, SwanctlError> {
    check_local_id(&plan.local_id)?;
    check_file("the gateway certificate's file name", &plan.local_cert)?;
    check_file("the LM CA's file name", &plan.ca_cert)?;
    let mut peers = plan.peers.clone();
    peers.sort();
    let mut seen = BTreeSet::new();
    for p in &peers {
        check_peer(plan, p)?;
        if !seen.insert((p.lease.as_str(), p.server.as_str())) {
            return Err(SwanctlError::Duplicate {
                lease: p.lease.clone(),
                server: p.server.clone(),
            });
        }
    }
    let taken: BTreeSet<Ipv4Addr> = peers.iter().filter_map(|p| p.address).collect();
    let pool = if peers.iter().any(|p| p.address.is_none()) {
        Some(pool_ranges(
            plan.tunnel_network,
            plan.tunnel_address,
            &taken,
        )?)
    } else {
        None
    };
    let mut local_ts = vec![format!("{}/32", plan.tunnel_address)];
    local_ts.extend(plan.private_networks.iter().map(|n| n.to_string()));
    let local_ts = local_ts.join(",");
    let mut t = String::new();
    t.push_str(
        "# Written by procurement-organizer's gateway (IPsec mode); replaced on every change.\n\
         # One connection per admitted (lease, server): remote.id is the subject DN of that\n\
         # agent's LM certificate.\n",
    );
    t.push_str("connections {\n");
    for p in &peers {
        let name = conn_name(&p.lease, &p.server);
        let _ = writeln!(t, "  {name} {{");
        t.push_str("    version = 2\n");
        let _ = writeln!(t, "    local_addrs = {}", plan.dc_address);
        t.push_str("    remote_addrs = %any\n");
        let _ = writeln!(t, "    proposals = {IKE_PROPOSALS}");
        t.push_str("    encap = yes\n");
        if plan.dpd_delay_secs > 0 {
            let _ = writeln!(t, "    dpd_delay = {}s", plan.dpd_delay_secs);
        }
        t.push_str(&ike_lifetimes(plan.ike_rekey_secs));
        t.push_str("    unique = replace\n");
        if p.address.is_none() {
            let _ = writeln!(t, "    pools = {POOL_NAME}");
        }
        t.push_str("    local {\n      auth = pubkey\n");
        let _ = writeln!(t, "      certs = {}", plan.local_cert);
        let _ = writeln!(t, "      id = \"{}\"", plan.local_id);
        t.push_str("    }\n    remote {\n      auth = pubkey\n");
        let _ = writeln!(t, "      id = \"{}\"", agent_dn(&p.lease, &p.server));
        let _ = writeln!(t, "      cacerts = {}", plan.ca_cert);
        t.push_str("      revocation = strict\n    }\n    children {\n");
        let _ = writeln!(t, "      {name} {{");
        let _ = writeln!(t, "        local_ts = {local_ts}");
        match p.address {
            Some(a) => {
                let _ = writeln!(t, "        remote_ts = {a}/32");
            }
            None => t.push_str("        remote_ts = dynamic\n"),
        }
        let _ = writeln!(t, "        esp_proposals = {ESP_PROPOSALS}");
        t.push_str(&child_lifetimes(plan.child_rekey_secs));
        t.push_str("        mode = tunnel\n");
        if plan.dpd_delay_secs > 0 {
            t.push_str("        dpd_action = clear\n");
        }
        t.push_str("      }\n    }\n  }\n");
    }
    t.push_str("}\n");
    if let Some(pool) = pool {
        t.push_str("pools {\n");
        let _ = writeln!(t, "  {POOL_NAME} {{");
        let _ = writeln!(t, "    addrs = {}", pool.join(","));
        t.push_str("  }\n}\n");
    }
    Ok(t)
}

/// The agents the gateway admits: every server, in a serving state and with a certificate
/// issued, of every lease this organizer requested with tunnel `ipsec` and has not released,
/// that the LM lists for `tenant` as provisioning or active and with tunnel `ipsec`
/// ([`check_tunnel`]: a WireGuard lease, or one the record and the LM disagree about, gets no
/// connection). Sorted; fixed addresses none (the pool): the shell gives registered agents
/// theirs.
pub fn admitted_peers(record: &Record, leases: &[LeaseView], tenant: &Name) -> Vec<IpsecPeer> {
    let mut out: Vec<IpsecPeer> = leases
        .iter()
        .filter(|l| &l.tenant == tenant)
        .filter(|l| matches!(l.state, LeaseState::Provisioning | LeaseState::Active))
        .filter(|l| {
            record
                .approved(l.id)
                .is_ok_and(|r| check_tunnel(l.id, r.tunnel, l.tunnel, Tunnel::Ipsec).is_ok())
        })
        .flat_map(|l| {
            l.servers
                .iter()
                .filter(|s| SERVING_STATES.contains(&s.state.as_str()) && s.cert_serial.is_some())
                .map(move |s| IpsecPeer {
                    lease: l.id.to_string(),
                    server: s.name.clone(),
                    address: None,
                })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The private networks of `plan` in which this host has none of the addresses `local`:
/// kernel-libipsec installs the route to an agent with a source address inside `local_ts`, and
/// without one charon answers every child SA that includes such a network with
/// TS_UNACCEPTABLE (`error installing route with policy ...`).
pub fn networks_without_local_address(private: &[Ipv4Net], local: &[Ipv4Addr]) -> Vec<Ipv4Net> {
    private
        .iter()
        .filter(|n| !local.iter().any(|a| n.contains(*a)))
        .copied()
        .collect()
}

#[cfg(test)]
#[path = "swanctl_tests.rs"]
mod tests;
