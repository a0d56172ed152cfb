use super::*;

fn spec() -> GatewaySpec {
    GatewaySpec {
        register_url: "https://10.63.0.2:7443".into(),
        tls_cert_sha256: "ab".repeat(32),
        wg_endpoint: Some("10.63.0.2:51820".into()),
        wg_public_key: Some(WgPublicKey([1; 32]).to_base64()),
    }
}

fn lease() -> LeaseId {
    LeaseId::from_random(0xaa)
}

fn reg() -> PeerRegistered {
    PeerRegistered {
        lease: lease(),
        server: "vm1".parse().unwrap(),
        tunnel_address: Ipv4Addr::new(10, 64, 0, 2),
        tunnel_network: "10.64.0.0/24".parse().unwrap(),
        gateway_tunnel_address: Ipv4Addr::new(10, 64, 0, 1),
        gateway_wg_public_key: Some(WgPublicKey([1; 32])),
        gateway_wg_endpoint: Some("10.63.0.2:51820".into()),
        gateway_ike_endpoint: None,
        routes: vec![
            "172.30.0.0/24".parse().unwrap(),
            "10.64.0.0/24".parse().unwrap(),
        ],
        image_store_url: "http://10.64.0.1:8080".into(),
        key_service_url: "https://10.64.0.1:7444/".into(),
        keepalive_secs: 15,
        image_signing_key: ImageSigningKey([0xc3; 32]),
    }
}

const LM: Option<Ipv4Addr> = Some(Ipv4Addr::new(10, 63, 0, 1));

fn refused(r: PeerRegistered) -> PlanError {
    check(&spec(), lease(), "vm1", Tunnel::Wireguard, LM, &r).unwrap_err()
}

#[test]
fn a_good_answer_becomes_a_plan() {
    let p = check(&spec(), lease(), "vm1", Tunnel::Wireguard, LM, &reg()).unwrap();
    assert_eq!(p.address, Ipv4Addr::new(10, 64, 0, 2));
    assert_eq!(p.gateway_endpoint, "10.63.0.2:51820".parse().unwrap());
    assert_eq!(
        p.routes[0],
        "10.64.0.0/24".parse().unwrap(),
        "tunnel network first"
    );
    assert_eq!(p.routes.len(), 2);
    assert_eq!(p.store.authority(), "10.64.0.1:8080");
    assert_eq!(p.keys.addr, "10.64.0.1:7444".parse().unwrap());
    // Without a key or endpoint in the spec, the pinned answer is taken as it is.
    let loose = GatewaySpec {
        wg_endpoint: None,
        wg_public_key: None,
        ..spec()
    };
    assert!(check(&loose, lease(), "vm1", Tunnel::Wireguard, None, &reg()).is_ok());
}

#[test]
fn answers_for_someone_else_or_from_another_gateway_are_refused() {
    let e = check(
        &spec(),
        LeaseId::from_random(0xbb),
        "vm1",
        Tunnel::Wireguard,
        LM,
        &reg(),
    )
    .unwrap_err();
    assert!(matches!(e, PlanError::OtherLease { .. }), "{e}");
    let e = check(&spec(), lease(), "vm2", Tunnel::Wireguard, LM, &reg()).unwrap_err();
    assert!(matches!(e, PlanError::OtherServer { .. }), "{e}");
    let e = refused(PeerRegistered {
        gateway_wg_public_key: Some(WgPublicKey([2; 32])),
        ..reg()
    });
    assert!(matches!(e, PlanError::GatewayKey { .. }), "{e}");
    assert!(e.to_string().contains("lease manager named"), "{e}");
    let e = refused(PeerRegistered {
        gateway_wg_endpoint: Some("10.63.0.9:51820".into()),
        ..reg()
    });
    assert!(matches!(e, PlanError::GatewayEndpoint { .. }), "{e}");
    let e = refused(PeerRegistered {
        gateway_wg_endpoint: Some("gw.example:51820".into()),
        ..reg()
    });
    assert!(matches!(e, PlanError::Endpoint { .. }), "{e}");
}

#[test]
fn addresses_routes_and_services_must_stay_inside_the_tunnel() {
    let e = refused(PeerRegistered {
        tunnel_address: Ipv4Addr::new(10, 65, 0, 2),
        ..reg()
    });
    assert!(
        matches!(
            e,
            PlanError::OutsideNetwork {
                field: "tunnel_address",
                ..
            }
        ),
        "{e}"
    );
    let e = refused(PeerRegistered {
        tunnel_address: Ipv4Addr::new(10, 64, 0, 1),
        ..reg()
    });
    assert!(matches!(e, PlanError::SameAddress(_)), "{e}");
    let e = refused(PeerRegistered {
        routes: vec!["172.30.0.0/24".parse().unwrap()],
        ..reg()
    });
    assert!(matches!(e, PlanError::NoTunnelRoute(_)), "{e}");
    // A default route would carry the LM and the WireGuard packets themselves into the tunnel.
    let e = refused(PeerRegistered {
        routes: vec![
            "10.64.0.0/24".parse().unwrap(),
            "0.0.0.0/0".parse().unwrap(),
        ],
        ..reg()
    });
    assert!(matches!(e, PlanError::RouteCovers { .. }), "{e}");
    let e = check(
        &GatewaySpec {
            wg_endpoint: None,
            register_url: "https://192.168.9.9:7443".into(),
            ..spec()
        },
        lease(),
        "vm1",
        Tunnel::Wireguard,
        Some(Ipv4Addr::new(172, 30, 0, 9)),
        &reg(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("the lease manager 172.30.0.9"),
        "{e}"
    );
    let e = refused(PeerRegistered {
        image_store_url: "http://10.63.0.2:8080".into(),
        ..reg()
    });
    assert!(
        matches!(
            e,
            PlanError::NotInTunnel {
                field: "image_store_url",
                ..
            }
        ),
        "{e}"
    );
    for (store, keys) in [
        ("https://10.64.0.1:8080", "https://10.64.0.1:7444"),
        ("http://10.64.0.1", "https://10.64.0.1:7444"),
        ("http://10.64.0.1:8080/v1", "https://10.64.0.1:7444"),
        ("http://10.64.0.1:0", "https://10.64.0.1:7444"),
        ("http://10.64.0.1:8080", "http://10.64.0.1:7444"),
        ("http://user@10.64.0.1:8080", "https://10.64.0.1:7444"),
    ] {
        let e = refused(PeerRegistered {
            image_store_url: store.into(),
            key_service_url: keys.into(),
            ..reg()
        });
        assert!(
            matches!(e, PlanError::ServiceUrl { .. }),
            "{store} {keys}: {e}"
        );
    }
    let e = refused(PeerRegistered {
        keepalive_secs: 3600,
        ..reg()
    });
    assert!(matches!(e, PlanError::Keepalive(3600)), "{e}");
    let e = refused(PeerRegistered {
        routes: (0..40)
            .map(|i| format!("172.{i}.0.0/24").parse().unwrap())
            .collect(),
        ..reg()
    });
    assert!(matches!(e, PlanError::TooManyRoutes { count: 40 }), "{e}");
}

#[test]
fn the_register_url_is_https_host_port() {
    assert_eq!(register_url(&spec()).unwrap().port(), 7443);
    let mut s = spec();
    s.register_url = "https://10.63.0.2:7443/".into();
    assert!(register_url(&s).is_ok());
    s.register_url = "http://10.63.0.2:7443".into();
    assert!(matches!(
        register_url(&s),
        Err(PlanError::RegisterUrl { .. })
    ));
    s.register_url = "https://10.63.0.2:7443/v1/peers".into();
    assert!(matches!(
        register_url(&s),
        Err(PlanError::RegisterUrl { .. })
    ));
}

fn ipsec_reg() -> PeerRegistered {
    PeerRegistered {
        gateway_wg_public_key: None,
        gateway_wg_endpoint: None,
        gateway_ike_endpoint: Some("10.63.0.2:500".into()),
        keepalive_secs: 0,
        ..reg()
    }
}

fn ipsec_spec() -> GatewaySpec {
    GatewaySpec {
        wg_endpoint: None,
        wg_public_key: None,
        ..spec()
    }
}

#[test]
fn an_ipsec_answer_becomes_a_plan_to_the_gateways_ike_responder() {
    let p = check(
        &ipsec_spec(),
        lease(),
        "vm1",
        Tunnel::Ipsec,
        LM,
        &ipsec_reg(),
    )
    .unwrap();
    assert_eq!(p.tunnel, Tunnel::Ipsec);
    assert_eq!(p.gateway_key, None);
    assert_eq!(p.gateway_endpoint, "10.63.0.2:500".parse().unwrap());
    assert_eq!(p.address, Ipv4Addr::new(10, 64, 0, 2));
    assert_eq!(p.routes[0], "10.64.0.0/24".parse().unwrap());
    // The same answer for a WireGuard lease lacks the WireGuard half, and the other way round.
    let e = check(
        &ipsec_spec(),
        lease(),
        "vm1",
        Tunnel::Wireguard,
        LM,
        &ipsec_reg(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            PlanError::WrongTunnel {
                lease: "wireguard",
                ..
            }
        ),
        "{e}"
    );
    let e = check(&spec(), lease(), "vm1", Tunnel::Ipsec, LM, &reg()).unwrap_err();
    assert!(
        matches!(e, PlanError::WrongTunnel { lease: "ipsec", .. }),
        "{e}"
    );
}

#[test]
fn an_ike_endpoint_elsewhere_or_malformed_is_refused() {
    for (value, ok) in [
        ("10.63.0.2:4500", true),
        ("10.63.0.9:500", false),
        ("10.63.0.2:0", false),
        ("10.63.0.2", false),
        ("gw.example:500", false),
        ("[::1]:500", false),
        ("", false),
    ] {
        let r = PeerRegistered {
            gateway_ike_endpoint: Some(value.into()),
            ..ipsec_reg()
        };
        let got = check(&ipsec_spec(), lease(), "vm1", Tunnel::Ipsec, LM, &r);
        assert_eq!(got.is_ok(), ok, "{value:?}: {got:?}");
    }
    // The IKE endpoint stays outside the tunnel like WireGuard's.
    let r = PeerRegistered {
        routes: vec![
            "10.64.0.0/24".parse().unwrap(),
            "10.63.0.0/24".parse().unwrap(),
        ],
        ..ipsec_reg()
    };
    let e = check(&ipsec_spec(), lease(), "vm1", Tunnel::Ipsec, None, &r).unwrap_err();
    assert!(matches!(e, PlanError::RouteCovers { .. }), "{e}");
}
