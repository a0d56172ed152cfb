//! The individual checks behind [`DhcpConfig::from_section`](super::DhcpConfig::from_section):
//! subnets and pools, lease times, boot parameters, reservations. Each error names the field
//! and says what to do. Pure: no IO.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use lm_api::MacAddr;

use super::config::{BootSection, DhcpSection, PoolSection, SubnetSection};
use super::net::Ipv4Net;
use super::validate::{
    AddrRange, BootConfig, ConfigError, MAX_BOOT_FILE_LEN, MAX_POOL_SIZE, MIN_LEASE_TIME_SECS,
    Subnet, UrlTemplate, bad,
};

pub(crate) fn check_subnets(sections: &[SubnetSection]) -> Result<Vec<Subnet>, ConfigError> {
    if sections.is_empty() {
        return Err(bad(
            "dhcp.subnets",
            "no subnet configured: add a [[dhcp.subnets]] for the provisioning network",
        ));
    }
    let mut out: Vec<Subnet> = Vec::with_capacity(sections.len());
    for (i, sec) in sections.iter().enumerate() {
        let net = sec.network;
        let field = format!("dhcp.subnets[{i}]");
        if !(8..=30).contains(&net.prefix()) {
            return Err(bad(
                format!("{field}.network"),
                format!("{net}: use a prefix length from /8 to /30"),
            ));
        }
        if let Some(other) = out.iter().find(|o| o.network.overlaps(&net)) {
            return Err(bad(
                format!("{field}.network"),
                format!("{net} overlaps {}: subnets must be disjoint", other.network),
            ));
        }
        let mut pools: Vec<AddrRange> = Vec::with_capacity(sec.pools.len());
        for (j, p) in sec.pools.iter().enumerate() {
            let range = check_pool(&format!("{field}.pools[{j}]"), net, p)?;
            let clash = out
                .iter()
                .flat_map(|o| o.pools.iter())
                .chain(pools.iter())
                .any(|q| q.overlaps(&range));
            if clash {
                return Err(bad(
                    format!("{field}.pools[{j}]"),
                    "overlaps another pool: pools must be disjoint",
                ));
            }
            pools.push(range);
        }
        for (j, r) in sec.routers.iter().enumerate() {
            if !net.is_host(*r) {
                return Err(bad(
                    format!("{field}.routers[{j}]"),
                    format!("{r} is not a host address of {net}: the router must be on the subnet"),
                ));
            }
        }
        for (j, d) in sec.dns_servers.iter().enumerate() {
            if d.is_unspecified() || d.is_broadcast() || d.is_multicast() {
                return Err(bad(
                    format!("{field}.dns_servers[{j}]"),
                    format!("{d} cannot be a DNS server address"),
                ));
            }
        }
        if let Some(name) = &sec.domain_name {
            let ok = !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                return Err(bad(
                    format!("{field}.domain_name"),
                    format!(
                        "{name:?} is not a domain name (letters, digits, '-', '.', at most 253)"
                    ),
                ));
            }
        }
        out.push(Subnet {
            network: net,
            pools,
            routers: sec.routers.clone(),
            dns_servers: sec.dns_servers.clone(),
            domain_name: sec.domain_name.clone(),
        });
    }
    Ok(out)
}

pub(crate) fn check_pool(
    field: &str,
    net: Ipv4Net,
    p: &PoolSection,
) -> Result<AddrRange, ConfigError> {
    for (end, addr) in [("start", p.start), ("end", p.end)] {
        if !net.is_host(addr) {
            return Err(bad(
                format!("{field}.{end}"),
                format!(
                    "{addr} is not a host address of {net}: move the pool inside the subnet (network and broadcast addresses excluded)"
                ),
            ));
        }
    }
    let range = AddrRange {
        start: u32::from(p.start),
        end: u32::from(p.end),
    };
    if range.is_empty() {
        return Err(bad(
            field,
            format!("start {} is after end {}: swap them", p.start, p.end),
        ));
    }
    if range.len() > MAX_POOL_SIZE {
        return Err(bad(
            field,
            format!(
                "{} addresses: split it into pools of at most {MAX_POOL_SIZE}",
                range.len()
            ),
        ));
    }
    Ok(range)
}

pub(crate) fn check_times(s: &DhcpSection) -> Result<(u32, u32, u32), ConfigError> {
    let lease = s.lease_time_secs;
    if !(MIN_LEASE_TIME_SECS..u32::MAX).contains(&lease) {
        return Err(bad(
            "dhcp.lease_time_secs",
            format!(
                "{lease} is out of range: use at least {MIN_LEASE_TIME_SECS} (infinite leases are not supported)"
            ),
        ));
    }
    let t1 = s.renewal_time_secs.unwrap_or(lease / 2);
    let t2 = s
        .rebinding_time_secs
        .unwrap_or((u64::from(lease) * 7 / 8) as u32);
    if t1 == 0 || t1 >= t2 || t2 >= lease {
        return Err(bad(
            "dhcp.renewal_time_secs",
            format!(
                "need 0 < T1 ({t1}) < T2 ({t2}) < lease time ({lease}): omit both to use 1/2 and 7/8 of the lease"
            ),
        ));
    }
    Ok((lease, t1, t2))
}

pub(crate) fn check_boot(b: &BootSection, server: Ipv4Addr) -> Result<BootConfig, ConfigError> {
    let next_server = b.next_server.unwrap_or(server);
    if next_server.is_unspecified() || next_server.is_broadcast() || next_server.is_multicast() {
        return Err(bad(
            "dhcp.boot.next_server",
            format!("{next_server} cannot be a TFTP server address"),
        ));
    }
    for (field, name) in [
        ("dhcp.boot.bios_file", &b.bios_file),
        ("dhcp.boot.uefi_file", &b.uefi_file),
    ] {
        if name.is_empty()
            || name.len() > MAX_BOOT_FILE_LEN
            || !name.bytes().all(|c| c.is_ascii_graphic())
        {
            return Err(bad(
                field,
                format!(
                    "{name:?} must be 1-{MAX_BOOT_FILE_LEN} visible ASCII characters (it goes into the BOOTP file field)"
                ),
            ));
        }
    }
    let url = b.ipxe_script_url.replace("{server}", &server.to_string());
    let field = "dhcp.boot.ipxe_script_url";
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || !url.bytes().all(|c| c.is_ascii_graphic())
    {
        return Err(bad(
            field,
            format!("{url:?} must be an http:// or https:// URL without spaces"),
        ));
    }
    if url.replace("{mac}", "").contains(['{', '}']) {
        return Err(bad(
            field,
            "only {server} and {mac} placeholders are known: remove the others",
        ));
    }
    let rendered = url.replace("{mac}", "52-54-00-12-34-56");
    if rendered.len() > MAX_BOOT_FILE_LEN {
        return Err(bad(
            field,
            format!(
                "the rendered URL has {} bytes, more than the {MAX_BOOT_FILE_LEN} the BOOTP file field holds: shorten it",
                rendered.len()
            ),
        ));
    }
    Ok(BootConfig {
        next_server,
        bios_file: b.bios_file.clone(),
        uefi_file: b.uefi_file.clone(),
        ipxe_script_url: UrlTemplate(url),
    })
}

pub(crate) type Reservations = (HashMap<MacAddr, Ipv4Addr>, HashMap<Ipv4Addr, MacAddr>);

pub(crate) fn check_reservations(
    s: &DhcpSection,
    subnets: &[Subnet],
) -> Result<Reservations, ConfigError> {
    let mut by_mac = HashMap::new();
    let mut by_addr = HashMap::new();
    for (i, r) in s.reservations.iter().enumerate() {
        let field = format!("dhcp.reservations[{i}]");
        if r.mac.is_multicast() {
            return Err(bad(
                format!("{field}.mac"),
                format!("{} is a group address, never a server's NIC", r.mac),
            ));
        }
        if !subnets.iter().any(|n| n.network.is_host(r.address)) || r.address == s.server_address {
            return Err(bad(
                format!("{field}.address"),
                format!(
                    "{} is not a free host address of any subnet: pick one inside a [[dhcp.subnets]] network, not the server's",
                    r.address
                ),
            ));
        }
        if by_mac.insert(r.mac, r.address).is_some() {
            return Err(bad(
                format!("{field}.mac"),
                format!("{} is reserved twice: keep one entry", r.mac),
            ));
        }
        if let Some(other) = by_addr.insert(r.address, r.mac) {
            return Err(bad(
                format!("{field}.address"),
                format!(
                    "{} is already reserved for {other}: give each MAC its own address",
                    r.address
                ),
            ));
        }
    }
    Ok((by_mac, by_addr))
}
