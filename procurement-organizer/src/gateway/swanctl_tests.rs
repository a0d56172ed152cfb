use std::net::Ipv4Addr;

use lm_api::{LeaseId, LeaseServer, LeaseState, LeaseView, MacAddr, Tunnel};

use super::*;
use crate::record::{Record, RequestedLease};

fn plan(peers: Vec<IpsecPeer>) -> SwanctlPlan {
    SwanctlPlan {
        local_id: "CN=tenant gateway".into(),
        local_cert: "gateway.pem".into(),
        ca_cert: "lm-ca.pem".into(),
        dc_address: Ipv4Addr::new(10, 63, 0, 2),
        tunnel_network: "10.64.0.0/24".parse().unwrap(),
        tunnel_address: Ipv4Addr::new(10, 64, 0, 1),
        private_networks: vec!["10.70.0.0/16".parse().unwrap()],
        dpd_delay_secs: 30,
        ike_rekey_secs: 14_400,
        child_rekey_secs: 3600,
        peers,
    }
}

fn peer(lease: &str, server: &str, address: Option<Ipv4Addr>) -> IpsecPeer {
    IpsecPeer {
        lease: lease.into(),
        server: server.into(),
        address,
    }
}

const L1: &str = "l-00000000000000aa";
const L2: &str = "l-00000000000000bb";

#[test]
fn golden_pool_and_fixed_address() {
    let text = render(&plan(vec![
        peer(L2, "vm_2.a", Some(Ipv4Addr::new(10, 64, 0, 9))),
        peer(L1, "vm1", None),
    ]))
    .unwrap();
    let want = r#"# Written by procurement-organizer's gateway (IPsec mode); replaced on every change.
# One connection per admitted (lease, server): remote.id is the subject DN of that
# agent's LM certificate.
connections {
  po-l-00000000000000aa-vm1 {
    version = 2
    local_addrs = 10.63.0.2
    remote_addrs = %any
    proposals = aes256gcm16-prfsha256-x25519-ecp256
    encap = yes
    dpd_delay = 30s
    rekey_time = 14400s
    over_time = 1440s
    rand_time = 1440s
    unique = replace
    pools = po-agents
    local {
      auth = pubkey
      certs = gateway.pem
      id = "CN=tenant gateway"
    }
    remote {
      auth = pubkey
      id = "CN=agent vm1 for l-00000000000000aa"
      cacerts = lm-ca.pem
      revocation = strict
    }
    children {
      po-l-00000000000000aa-vm1 {
        local_ts = 10.64.0.1/32,10.70.0.0/16
        remote_ts = dynamic
        esp_proposals = aes256gcm16
        rekey_time = 3600s
        life_time = 3960s
        rand_time = 360s
        mode = tunnel
        dpd_action = clear
      }
    }
  }
  po-l-00000000000000bb-vm_u2_da {
    version = 2
    local_addrs = 10.63.0.2
    remote_addrs = %any
    proposals = aes256gcm16-prfsha256-x25519-ecp256
    encap = yes
    dpd_delay = 30s
    rekey_time = 14400s
    over_time = 1440s
    rand_time = 1440s
    unique = replace
    local {
      auth = pubkey
      certs = gateway.pem
      id = "CN=tenant gateway"
    }
    remote {
      auth = pubkey
      id = "CN=agent vm_2.a for l-00000000000000bb"
      cacerts = lm-ca.pem
      revocation = strict
    }
    children {
      po-l-00000000000000bb-vm_u2_da {
        local_ts = 10.64.0.1/32,10.70.0.0/16
        remote_ts = 10.64.0.9/32
        esp_proposals = aes256gcm16
        rekey_time = 3600s
        life_time = 3960s
        rand_time = 360s
        mode = tunnel
        dpd_action = clear
      }
    }
  }
}
pools {
  po-agents {
    addrs = 10.64.0.2-10.64.0.8,10.64.0.10-10.64.0.254
  }
}
"#;
    assert_eq!(text, want);
}

#[test]
fn short_rekey_times_keep_a_margin_before_the_hard_end() {
    let mut p = plan(vec![peer(L1, "vm1", None)]);
    p.ike_rekey_secs = 3;
    p.child_rekey_secs = 2;
    let text = render(&p).unwrap();
    assert!(
        text.contains("    rekey_time = 3s\n    over_time = 10s\n    rand_time = 0s\n"),
        "{text}"
    );
    assert!(
        text.contains("        rekey_time = 2s\n        life_time = 12s\n        rand_time = 0s\n"),
        "{text}"
    );
    p.ike_rekey_secs = 0;
    p.child_rekey_secs = 0;
    let text = render(&p).unwrap();
    assert!(
        !text.contains("over_time") && !text.contains("life_time"),
        "{text}"
    );
    assert_eq!(text.matches("rekey_time = 0s").count(), 2, "{text}");
}

#[test]
fn golden_no_peers_no_dpd() {
    let mut p = plan(vec![]);
    p.dpd_delay_secs = 0;
    let text = render(&p).unwrap();
    assert!(text.ends_with("connections {\n}\n"), "{text}");
    assert!(!text.contains("pools"));
    let mut p = plan(vec![peer(L1, "vm1", None)]);
    p.dpd_delay_secs = 0;
    let text = render(&p).unwrap();
    assert!(!text.contains("dpd"), "{text}");
}

#[test]
fn same_plan_same_text_whatever_the_order() {
    let a = plan(vec![
        peer(L1, "a", None),
        peer(L1, "b", None),
        peer(L2, "a", None),
    ]);
    let mut b = a.clone();
    b.peers.reverse();
    assert_eq!(render(&a).unwrap(), render(&b).unwrap());
    assert_eq!(
        conn_names(&a).into_iter().collect::<Vec<_>>(),
        [
            "po-l-00000000000000aa-a",
            "po-l-00000000000000aa-b",
            "po-l-00000000000000bb-a"
        ]
    );
}

#[test]
fn pool_skips_the_gateway_address_wherever_it_is() {
    let mut p = plan(vec![peer(L1, "vm1", None)]);
    p.tunnel_network = "10.64.0.0/29".parse().unwrap();
    p.tunnel_address = Ipv4Addr::new(10, 64, 0, 3);
    assert!(
        render(&p)
            .unwrap()
            .contains("addrs = 10.64.0.1-10.64.0.2,10.64.0.4-10.64.0.6\n")
    );
    p.tunnel_network = "10.64.0.0/30".parse().unwrap();
    p.tunnel_address = Ipv4Addr::new(10, 64, 0, 1);
    assert!(render(&p).unwrap().contains("addrs = 10.64.0.2/32\n"));
    p.tunnel_network = "10.64.0.0/31".parse().unwrap();
    assert!(matches!(render(&p), Err(SwanctlError::NoPool { .. })));
    // Registered agents' fixed addresses are never in the pool, at either end or inside.
    p.tunnel_network = "10.64.0.0/28".parse().unwrap();
    p.tunnel_address = Ipv4Addr::new(10, 64, 0, 1);
    p.peers.extend([
        peer(L2, "a", Some(Ipv4Addr::new(10, 64, 0, 2))),
        peer(L2, "b", Some(Ipv4Addr::new(10, 64, 0, 7))),
        peer(L2, "c", Some(Ipv4Addr::new(10, 64, 0, 14))),
    ]);
    assert!(
        render(&p)
            .unwrap()
            .contains("addrs = 10.64.0.3-10.64.0.6,10.64.0.8-10.64.0.13\n")
    );
    // Only fixed addresses: no pool at all, even in a network with none left over.
    p.peers.retain(|x| x.address.is_some());
    p.tunnel_network = "10.64.0.0/30".parse().unwrap();
    p.peers = vec![peer(L2, "a", Some(Ipv4Addr::new(10, 64, 0, 2)))];
    let text = render(&p).unwrap();
    assert!(!text.contains("pools"), "{text}");
}

#[test]
fn connection_names_are_distinct_for_distinct_servers() {
    let names = [
        "a_d", "a.", "a_", "a.d", "a__d", "a_.d", "a._d", "a-d", "a-_d",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        let c = conn_name(L1, n);
        assert!(!c.contains('.'), "{c}");
        assert!(seen.insert(c.clone()), "{n} -> {c} collides");
    }
}

#[test]
fn hostile_lease_ids_are_refused() {
    for bad in [
        "",
        "l-",
        "l-00000000000000AA",
        "l-00000000000000a",
        "l-00000000000000aaa",
        "x-00000000000000aa",
        "l-00000000000000a\"",
        "l-0000000000000a\n}",
        "l-00000000000000aa }\nconnections { evil {",
    ] {
        let err = render(&plan(vec![peer(bad, "vm1", None)])).unwrap_err();
        assert!(
            matches!(err, SwanctlError::BadLease { .. }),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains("16 lowercase hex"), "{err}");
    }
}

#[test]
fn hostile_server_names_are_refused() {
    let long = "a".repeat(64);
    for bad in [
        "",
        ".vm",
        "-vm",
        "vm 1",
        "vm\"1",
        "vm1\"\n    remote { auth = psk",
        "vm}",
        "vm{",
        "vm#1",
        "vm=1",
        "vm,CN=x",
        "vm/1",
        "vm\\1",
        "vm\u{e9}",
        "vm\0",
        "vm\r",
        long.as_str(),
    ] {
        let err = render(&plan(vec![peer(L1, bad, None)])).unwrap_err();
        assert!(
            matches!(err, SwanctlError::BadServer { .. }),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains(L1), "{err}");
    }
    assert!(render(&plan(vec![peer(L1, &"a".repeat(63), None)])).is_ok());
}

#[test]
fn hostile_plan_values_are_refused() {
    for (cert, ca) in [
        ("../gateway.pem", "lm-ca.pem"),
        ("gateway.pem", "/etc/ssl/ca.pem"),
        (".hidden", "lm-ca.pem"),
        ("gw pem", "lm-ca.pem"),
        ("gateway.pem", "ca.pem\n}"),
        ("", "lm-ca.pem"),
    ] {
        let mut p = plan(vec![]);
        p.local_cert = cert.into();
        p.ca_cert = ca.into();
        let err = render(&p).unwrap_err();
        assert!(
            matches!(err, SwanctlError::BadFileName { .. }),
            "{cert} {ca}: {err}"
        );
    }
    for id in ["CN=gw\"", "CN=gw\n}", "gateway", "CN={x}", "CN=gw#", ""] {
        let mut p = plan(vec![]);
        p.local_id = id.into();
        let err = render(&p).unwrap_err();
        assert!(
            matches!(err, SwanctlError::BadLocalId { .. }),
            "{id:?}: {err}"
        );
    }
}

#[test]
fn bad_fixed_addresses_and_duplicates_are_refused() {
    for a in [
        [10, 64, 0, 0],
        [10, 64, 0, 1],
        [10, 64, 0, 255],
        [10, 65, 0, 2],
    ] {
        let err = render(&plan(vec![peer(L1, "vm1", Some(Ipv4Addr::from(a)))])).unwrap_err();
        assert!(
            matches!(err, SwanctlError::BadAddress { .. }),
            "{a:?}: {err}"
        );
    }
    let err = render(&plan(vec![peer(L1, "vm1", None), peer(L1, "vm1", None)])).unwrap_err();
    assert!(matches!(err, SwanctlError::Duplicate { .. }), "{err}");
}

fn lease_view(
    id: u64,
    tenant: &str,
    state: LeaseState,
    servers: &[(&str, &str, bool)],
) -> LeaseView {
    LeaseView {
        id: LeaseId::from_random(id),
        tenant: tenant.parse().unwrap(),
        state,
        reason: None,
        count: servers.len() as u32,
        waiting: 0,
        servers: servers
            .iter()
            .map(|(name, st, cert)| LeaseServer {
                name: (*name).into(),
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                state: (*st).into(),
                cert_serial: cert.then(|| "51".into()),
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

fn requested(id: u64, released: bool) -> RequestedLease {
    RequestedLease {
        id: LeaseId::from_random(id),
        requested_ms: 0,
        count: 1,
        duration_s: 3600,
        tunnel: Tunnel::Ipsec,
        role: None,
        image: None,
        released_ms: released.then_some(5),
    }
}

#[test]
fn admitted_peers_follow_record_lm_and_server_states() {
    let mut record = Record::default();
    record.add(requested(0xaa, false));
    record.add(requested(0xbb, true));
    record.add(requested(0xcc, false));
    record.add(requested(0xdd, false));
    let tenant: Name = "acme".parse().unwrap();
    let leases = vec![
        lease_view(
            0xaa,
            "acme",
            LeaseState::Active,
            &[
                ("vm1", "tunneling", true),
                ("vm2", "running", true),
                ("vm3", "tunneling", false),
                ("vm4", "wiped", true),
                ("vm5", "enrolling", true),
            ],
        ),
        // Released by this organizer.
        lease_view(
            0xbb,
            "acme",
            LeaseState::Active,
            &[("vm1", "tunneling", true)],
        ),
        // Another tenant's (the LM would not show it; refused anyway).
        lease_view(
            0xcc,
            "other",
            LeaseState::Active,
            &[("vm1", "tunneling", true)],
        ),
        // Over at the LM.
        lease_view(
            0xdd,
            "acme",
            LeaseState::Releasing,
            &[("vm1", "tunneling", true)],
        ),
        // Never requested here.
        lease_view(
            0xee,
            "acme",
            LeaseState::Provisioning,
            &[("vm1", "tunneling", true)],
        ),
    ];
    let got: Vec<(String, String)> = admitted_peers(&record, &leases, &tenant)
        .into_iter()
        .map(|p| (p.lease, p.server))
        .collect();
    let l = LeaseId::from_random(0xaa).to_string();
    assert_eq!(
        got,
        [
            (l.clone(), "vm1".to_string()),
            (l.clone(), "vm2".to_string()),
            (l, "vm5".to_string())
        ]
    );
}

#[test]
fn agent_dn_is_what_lm_pki_writes() {
    let lease = LeaseId::from_random(0xaa);
    let id = lm_pki::Identity::Agent {
        lease,
        server: "vm1".parse().unwrap(),
    };
    assert_eq!(
        agent_dn(&lease.to_string(), "vm1"),
        format!("CN={}", id.common_name())
    );
}

#[test]
fn admitted_peers_are_the_leases_that_asked_for_ipsec() {
    let tenant: Name = "acme".parse().unwrap();
    let mut record = Record::default();
    let mut leases = Vec::new();
    // (id, requested here, listed by the LM, admitted)
    let cases = [
        (0xa1, Tunnel::Ipsec, Tunnel::Ipsec, true),
        (0xa2, Tunnel::Wireguard, Tunnel::Wireguard, false),
        (0xa3, Tunnel::Ipsec, Tunnel::Wireguard, false),
        (0xa4, Tunnel::Wireguard, Tunnel::Ipsec, false),
    ];
    for (id, requested_with, listed, _) in cases {
        let mut r = requested(id, false);
        r.tunnel = requested_with;
        record.add(r);
        let mut v = lease_view(
            id,
            "acme",
            LeaseState::Active,
            &[("vm1", "tunneling", true)],
        );
        v.tunnel = listed;
        leases.push(v);
    }
    let got: Vec<String> = admitted_peers(&record, &leases, &tenant)
        .into_iter()
        .map(|p| p.lease)
        .collect();
    let want: Vec<String> = cases
        .iter()
        .filter(|c| c.3)
        .map(|c| LeaseId::from_random(c.0).to_string())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn private_networks_without_a_local_address_are_named() {
    let nets: Vec<Ipv4Net> = vec![
        "10.70.0.0/16".parse().unwrap(),
        "172.30.0.0/24".parse().unwrap(),
    ];
    let local = [Ipv4Addr::new(10, 63, 0, 2), Ipv4Addr::new(10, 70, 9, 1)];
    assert_eq!(
        networks_without_local_address(&nets, &local),
        vec!["172.30.0.0/24".parse::<Ipv4Net>().unwrap()]
    );
    assert!(networks_without_local_address(&[], &local).is_empty());
    assert_eq!(networks_without_local_address(&nets, &[]), nets);
}
