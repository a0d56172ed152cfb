use std::time::{Duration, SystemTime};

use lm_api::{LeaseId, LeaseServer, LeaseState, MacAddr, Tunnel};
use lm_pki::{Authority, RevokedCert, check_crl};

use super::*;

fn checked(ca: &Authority, number: u64, revoked: &[u64]) -> CheckedCrl {
    let now = SystemTime::now();
    let list: Vec<RevokedCert> = revoked
        .iter()
        .map(|s| RevokedCert {
            serial: (*s).into(),
            revoked_at: now,
        })
        .collect();
    let der = ca
        .crl(&list, number, now, now + Duration::from_secs(3600))
        .unwrap();
    check_crl(&der, ca.cert_der()).unwrap()
}

fn view(id: u64, servers: &[(&str, Option<&str>)]) -> LeaseView {
    LeaseView {
        id: LeaseId::from_random(id),
        tenant: "acme".parse().unwrap(),
        state: LeaseState::Active,
        reason: None,
        count: servers.len() as u32,
        waiting: 0,
        servers: servers
            .iter()
            .map(|(n, serial)| LeaseServer {
                name: (*n).into(),
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                state: "tunneling".into(),
                cert_serial: serial.map(str::to_string),
            })
            .collect(),
        tunnel: Tunnel::Ipsec,
        role: None,
        image: None,
        gateway: None,
        created_ms: 0,
        starts_ms: 0,
        ends_ms: u64::MAX / 2,
        ended_ms: None,
        renewals: 0,
    }
}

fn conn(id: u64, server: &str) -> String {
    conn_name(&LeaseId::from_random(id).to_string(), server)
}

#[test]
fn serials_are_remembered_for_loaded_connections_only() {
    let conns: BTreeSet<String> = [conn(0xaa, "vm1"), conn(0xaa, "vm.2")].into();
    let mut seen = SeenSerials::new();
    seen.insert(conn(0xbb, "vm1"), ["77".to_string()].into());
    let leases = [
        view(
            0xaa,
            &[("vm1", Some("51")), ("vm.2", None), ("vm3", Some("53"))],
        ),
        view(0xcc, &[("vm1", Some("61"))]),
    ];
    remember(&mut seen, &conns, &leases);
    assert_eq!(
        seen,
        SeenSerials::from([(conn(0xaa, "vm1"), ["51".to_string()].into())]),
        "unloaded connections forgotten, servers without certificate or connection skipped"
    );
    // Re-enrolled: the old serial stays remembered next to the new one.
    let leases = [view(0xaa, &[("vm1", Some("54")), ("vm.2", Some("52"))])];
    remember(&mut seen, &conns, &leases);
    assert_eq!(
        seen[&conn(0xaa, "vm1")],
        ["51", "54"].map(String::from).into()
    );
    assert_eq!(seen[&conn(0xaa, "vm.2")], ["52".to_string()].into());
    remember(&mut seen, &BTreeSet::new(), &leases);
    assert!(seen.is_empty());
}

#[test]
fn only_newly_revoked_serials_end_connections() {
    let ca = Authority::generate(SystemTime::now(), 1u64.into())
        .unwrap()
        .0;
    let seen = SeenSerials::from([
        (conn(0xaa, "vm1"), ["51", "54"].map(String::from).into()),
        (conn(0xaa, "vm2"), ["52".to_string()].into()),
        (conn(0xbb, "vm1"), ["61".to_string()].into()),
    ]);
    let none = checked(&ca, 1, &[]);
    let r51 = checked(&ca, 2, &[0x51, 0x99]);
    let r51_52 = checked(&ca, 3, &[0x51, 0x52]);
    assert!(to_terminate(&seen, Some(&none), &none).is_empty());
    assert!(to_terminate(&seen, None, &none).is_empty());
    assert_eq!(
        to_terminate(&seen, Some(&none), &r51),
        [conn(0xaa, "vm1")].into()
    );
    // Already revoked before: the SA up now was authenticated with another certificate.
    assert!(to_terminate(&seen, Some(&r51), &r51).is_empty());
    assert_eq!(
        to_terminate(&seen, Some(&r51), &r51_52),
        [conn(0xaa, "vm2")].into()
    );
    // No CRL loaded before (a restart): whatever is revoked ends.
    assert_eq!(
        to_terminate(&seen, None, &r51_52),
        [conn(0xaa, "vm1"), conn(0xaa, "vm2")].into()
    );
    // A serial the LM never listed for a connection ends nothing.
    let other = checked(&ca, 4, &[0x1, 0x5100, 0x5]);
    assert!(to_terminate(&seen, None, &other).is_empty());
    assert!(to_terminate(&SeenSerials::new(), None, &r51_52).is_empty());
}
