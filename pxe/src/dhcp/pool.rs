//! Address selection: which address a MAC gets in a subnet, and whether a requested address
//! may be bound to it. Pure: no IO.
//!
//! Order for a DISCOVER: the MAC's fixed address (the gate's `reserved_ip`, else a config
//! reservation); its unexpired lease; its unexpired offer hold; the address it asked for
//! (option 50); its expired lease; then a scan of the pools that starts at a point derived
//! from the MAC (so a MAC tends to get the same address again, and concurrent clients spread
//! out) and takes the first address no one else holds. The scan is bounded by the pool size
//! (at most `MAX_POOL_SIZE` per pool).

use std::net::Ipv4Addr;

use lm_api::MacAddr;

use super::decision::Silence;
use super::table::LeaseTable;
use super::validate::{DhcpConfig, Subnet};

/// The MAC's fixed address, if it has one (gate first, then config).
pub fn fixed_address(
    cfg: &DhcpConfig,
    gate_reserved: Option<Ipv4Addr>,
    mac: MacAddr,
) -> Option<Ipv4Addr> {
    gate_reserved.or_else(|| cfg.reserved_by_mac.get(&mac).copied())
}

/// True if `addr` is a dynamic address of `subnet` that `mac` may hold at `now`: in a pool,
/// not reserved for another MAC in the config, not held by anyone else.
pub fn dynamic_ok(
    cfg: &DhcpConfig,
    subnet: &Subnet,
    table: &LeaseTable,
    addr: Ipv4Addr,
    mac: MacAddr,
    now: u64,
) -> bool {
    subnet.in_pool(addr)
        && addr != cfg.server_address
        && cfg.reserved_by_addr.get(&addr).is_none_or(|m| *m == mac)
        && table.is_free_for(addr, mac, now)
}

/// Checks a fixed address for `mac` in `subnet`.
pub fn check_fixed(
    cfg: &DhcpConfig,
    subnet: &Subnet,
    table: &LeaseTable,
    addr: Ipv4Addr,
    mac: MacAddr,
    now: u64,
) -> Result<Ipv4Addr, Silence> {
    if !subnet.network.is_host(addr) || addr == cfg.server_address {
        return Err(Silence::ReservationOutsideSubnet {
            address: addr,
            subnet: subnet.network,
        });
    }
    if let Some(other) = cfg.reserved_by_addr.get(&addr).filter(|m| **m != mac) {
        return Err(Silence::ReservationTaken {
            address: addr,
            holder: *other,
        });
    }
    match table.holder_other_than(addr, mac, now) {
        Some(holder) => Err(Silence::ReservationTaken {
            address: addr,
            holder,
        }),
        None => Ok(addr),
    }
}

/// The address to offer `mac` in `subnet`.
pub fn address_for(
    cfg: &DhcpConfig,
    subnet: &Subnet,
    gate_reserved: Option<Ipv4Addr>,
    table: &LeaseTable,
    mac: MacAddr,
    requested: Option<Ipv4Addr>,
    now: u64,
) -> Result<Ipv4Addr, Silence> {
    if let Some(fixed) = fixed_address(cfg, gate_reserved, mac) {
        return check_fixed(cfg, subnet, table, fixed, mac, now);
    }
    let ok = |a: Ipv4Addr| dynamic_ok(cfg, subnet, table, a, mac, now);
    let preferred = [
        table.active_lease_of(mac, now).map(|l| l.address),
        table.hold_of(mac, now).map(|h| h.address),
        requested,
        table.lease_of(mac).map(|l| l.address),
    ];
    if let Some(a) = preferred.into_iter().flatten().find(|a| ok(*a)) {
        return Ok(a);
    }
    scan(subnet, mac, ok).ok_or(Silence::NoFreeAddress {
        subnet: subnet.network,
    })
}

/// First address in the pools, starting at the MAC's point and wrapping, that passes `ok`.
fn scan(subnet: &Subnet, mac: MacAddr, ok: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
    let total: u64 = subnet.pools.iter().map(|p| u64::from(p.len())).sum();
    if total == 0 {
        return None;
    }
    let start = mac_hash(mac) % total;
    (0..total)
        .map(|i| (start + i) % total)
        .filter_map(|i| nth_address(subnet, i))
        .find(|a| ok(*a))
}

/// The `i`-th address across the pools of `subnet`.
fn nth_address(subnet: &Subnet, mut i: u64) -> Option<Ipv4Addr> {
    for p in &subnet.pools {
        let len = u64::from(p.len());
        if i < len {
            let n = u64::from(p.start).checked_add(i)?;
            return u32::try_from(n).ok().map(Ipv4Addr::from);
        }
        i -= len;
    }
    None
}

/// FNV-1a over the MAC: a stable, well-spread starting point.
fn mac_hash(mac: MacAddr) -> u64 {
    mac.octets().iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::lease::{Lease, LeaseState};
    use crate::dhcp::table::{LeaseChange, OfferHold};
    use crate::dhcp::testutil::{config_with_pool, mac};

    fn bind(t: &mut LeaseTable, m: MacAddr, a: Ipv4Addr, exp: u64) {
        t.apply(&LeaseChange::Put(Lease {
            mac: m,
            address: a,
            expires_at: exp,
            state: LeaseState::Bound,
            hostname: None,
            client_id: None,
        }));
    }

    #[test]
    fn exhausts_the_pool_then_reports_it() {
        let cfg = config_with_pool("10.77.0.100", "10.77.0.103");
        let subnet = &cfg.subnets[0];
        let mut t = LeaseTable::new();
        let mut given = vec![];
        for n in 0..4 {
            let a = address_for(&cfg, subnet, None, &t, mac(n), None, 0).unwrap();
            assert!(subnet.in_pool(a) && !given.contains(&a));
            t.apply(&LeaseChange::Hold(OfferHold {
                mac: mac(n),
                address: a,
                until: 30,
            }));
            given.push(a);
        }
        let e = address_for(&cfg, subnet, None, &t, mac(9), None, 0).unwrap_err();
        assert!(matches!(e, Silence::NoFreeAddress { .. }));
        assert!(
            address_for(&cfg, subnet, None, &t, mac(9), None, 30).is_ok(),
            "holds expire"
        );
    }

    #[test]
    fn prefers_own_lease_then_requested_address() {
        let cfg = config_with_pool("10.77.0.100", "10.77.0.199");
        let subnet = &cfg.subnets[0];
        let mut t = LeaseTable::new();
        let a: Ipv4Addr = "10.77.0.150".parse().unwrap();
        bind(&mut t, mac(1), a, 100);
        assert_eq!(
            address_for(
                &cfg,
                subnet,
                None,
                &t,
                mac(1),
                Some("10.77.0.120".parse().unwrap()),
                50
            ),
            Ok(a)
        );
        let want: Ipv4Addr = "10.77.0.120".parse().unwrap();
        assert_eq!(
            address_for(&cfg, subnet, None, &t, mac(2), Some(want), 50),
            Ok(want)
        );
        assert_ne!(
            address_for(&cfg, subnet, None, &t, mac(2), Some(a), 50),
            Ok(a),
            "someone else's lease"
        );
        assert_eq!(
            address_for(&cfg, subnet, None, &t, mac(1), None, 500),
            Ok(a),
            "expired own lease is reused"
        );
    }

    #[test]
    fn fixed_addresses_win_and_conflicts_are_reported() {
        let cfg = config_with_pool("10.77.0.100", "10.77.0.199");
        let subnet = &cfg.subnets[0];
        let mut t = LeaseTable::new();
        let fixed: Ipv4Addr = "10.77.0.10".parse().unwrap();
        assert_eq!(
            address_for(&cfg, subnet, Some(fixed), &t, mac(1), None, 0),
            Ok(fixed)
        );
        bind(&mut t, mac(2), fixed, 100);
        assert_eq!(
            address_for(&cfg, subnet, Some(fixed), &t, mac(1), None, 0),
            Err(Silence::ReservationTaken {
                address: fixed,
                holder: mac(2)
            })
        );
        let outside: Ipv4Addr = "10.78.0.10".parse().unwrap();
        assert!(matches!(
            address_for(&cfg, subnet, Some(outside), &t, mac(1), None, 0),
            Err(Silence::ReservationOutsideSubnet { .. })
        ));
    }

    #[test]
    fn nth_address_spans_pools() {
        let mut cfg = config_with_pool("10.77.0.100", "10.77.0.101");
        cfg.subnets[0].pools.push(crate::dhcp::validate::AddrRange {
            start: u32::from(Ipv4Addr::new(10, 77, 0, 200)),
            end: u32::from(Ipv4Addr::new(10, 77, 0, 200)),
        });
        let s = &cfg.subnets[0];
        let got: Vec<_> = (0..4).map(|i| nth_address(s, i)).collect();
        assert_eq!(
            got,
            vec![
                Some(Ipv4Addr::new(10, 77, 0, 100)),
                Some(Ipv4Addr::new(10, 77, 0, 101)),
                Some(Ipv4Addr::new(10, 77, 0, 200)),
                None
            ]
        );
    }
}
