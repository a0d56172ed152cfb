use super::*;

fn sample() -> String {
    example(
        "acme.json",
        "po-state",
        Ipv4Addr::new(10, 77, 0, 2),
        "10.99.0.0/24".parse().unwrap(),
        &["172.30.0.0/24".parse().unwrap()],
    )
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/po/organizer.toml"))
}

fn key_of(text: &str) -> String {
    match parse(text).unwrap_err() {
        ConfigError::Invalid { key, .. } => key.to_string(),
        ConfigError::Parse { message, .. } => format!("parse: {message}"),
        e => panic!("{e}"),
    }
}

#[test]
fn the_example_parses_with_its_defaults() {
    let c = parse(&sample()).unwrap();
    assert_eq!(c.bundle, Path::new("/etc/po/acme.json"));
    assert_eq!(c.state_dir, Path::new("/etc/po/po-state"));
    let g = &c.gateway;
    assert_eq!(g.register_listen.to_string(), "10.77.0.2:7443");
    assert_eq!(g.register_url, "https://10.77.0.2:7443");
    assert_eq!(g.wg_endpoint, "10.77.0.2:51820");
    assert_eq!(g.tunnel_address, Ipv4Addr::new(10, 99, 0, 1));
    assert_eq!(g.key_service_listen.to_string(), "10.99.0.1:7444");
    assert_eq!(g.image_store_url(), "http://10.99.0.1:8080");
    assert_eq!(g.key_service_url(), "https://10.99.0.1:7444");
    assert_eq!(g.routes().len(), 2);
    assert_eq!(
        (g.lm_poll_secs, g.crl_refresh_secs, g.crl_max_age_secs),
        (3, 10, 60)
    );
}

#[test]
fn bad_values_name_their_key() {
    let s = sample();
    let cases = [
        (s.replace("[gateway]", "colour = 1\n[gateway]"), "parse"),
        (s.replace("state_dir", "# state_dir"), "parse"),
        (
            s.replace(
                "tunnel_network = \"10.99.0.0/24\"",
                "tunnel_network = \"10.99.0.1/24\"",
            ),
            "parse",
        ),
        (
            s.replace(
                "# key_service_listen = \"<gateway tunnel address>:7444\"",
                "key_service_listen = \"10.77.0.2:7444\"",
            ),
            "gateway.key_service_listen",
        ),
        (
            s.replace(
                "# key_service_listen = \"<gateway tunnel address>:7444\"",
                "key_service_listen = \"0.0.0.0:7444\"",
            ),
            "gateway.key_service_listen",
        ),
        (
            s.replace(
                "# image_store_listen = \"<gateway tunnel address>:8080\"",
                "image_store_listen = \"192.168.1.1:8080\"",
            ),
            "gateway.image_store_listen",
        ),
        (
            s.replace("10.99.0.0/24", "10.99.0.0/31"),
            "gateway.tunnel_network",
        ),
        (
            s.replace("10.99.0.0/24", "10.77.0.0/24"),
            "gateway.tunnel_network",
        ),
        (
            s.replace("172.30.0.0/24", "10.99.0.0/16"),
            "gateway.private_networks",
        ),
        (
            s.replace("dc_address = \"10.77.0.2\"", "dc_address = \"0.0.0.0\""),
            "gateway.dc_address",
        ),
        (
            s.replace("# tun_name = \"po-wg0\"", "tun_name = \"a/b\""),
            "gateway.tun_name",
        ),
        (
            s.replace("# lm_poll_secs = 3", "lm_poll_secs = 0"),
            "gateway.lm_poll_secs",
        ),
        (
            s.replace("# crl_max_age_secs = 60", "crl_max_age_secs = 5"),
            "gateway.crl_max_age_secs",
        ),
        (
            s.replace(
                "# register_url = \"https://10.77.0.2:7443\"",
                "register_url = \"http://10.77.0.2:7443\"",
            ),
            "gateway.register_url",
        ),
        (
            s.replace(
                "# wg_endpoint = \"10.77.0.2:51820\"",
                "wg_endpoint = \"nowhere\"",
            ),
            "gateway.wg_endpoint",
        ),
        (
            s.replace(
                "# lm_url = \"https://10.77.0.1:8443\"",
                "lm_url = \"http://x\"",
            ),
            "lm_url",
        ),
    ];
    for (text, key) in cases {
        let got = key_of(&text);
        assert!(got.starts_with(key), "expected {key}, got {got}");
    }
    let e = parse(&s.replace("[gateway]", "colour = 1\n[gateway]"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("colour") && e.contains("/etc/po/organizer.toml"),
        "{e}"
    );
}

#[test]
fn a_missing_file_says_what_to_do() {
    let e = Config::load(Path::new("/nonexistent/organizer.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/organizer.toml") && e.contains("init"),
        "{e}"
    );
}

#[test]
fn the_tunnel_defaults_to_wireguard_with_debian_strongswan_paths() {
    let g = parse(&sample()).unwrap().gateway;
    assert_eq!(g.tunnel, TunnelMode::Wireguard);
    assert_eq!(
        g.ipsec,
        IpsecConfig {
            charon: Some(PathBuf::from("/usr/lib/ipsec/charon")),
            swanctl: PathBuf::from("/usr/sbin/swanctl"),
            vici: None,
            dpd_secs: 30,
            ike_rekey_secs: 14_400,
            child_rekey_secs: 3600,
        }
    );
}

#[test]
fn ipsec_mode_and_its_keys_are_read() {
    let s = sample()
        .replace("# tunnel = \"wireguard\"", "tunnel = \"ipsec\"")
        .replace(
            "# ipsec_charon = \"/usr/lib/ipsec/charon\"",
            "ipsec_charon = \"\"",
        )
        .replace(
            "# ipsec_swanctl = \"/usr/sbin/swanctl\"",
            "ipsec_swanctl = \"/opt/sw/swanctl\"",
        )
        .replace(
            "# ipsec_vici = \"unix:///var/run/charon.vici\"",
            "ipsec_vici = \"unix:///run/x/charon.vici\"",
        )
        .replace("# ipsec_dpd_secs = 30", "ipsec_dpd_secs = 0");
    let g = parse(&s).unwrap().gateway;
    assert_eq!(g.tunnel, TunnelMode::Ipsec);
    assert_eq!(g.ipsec.charon, None, "\"\": the operator runs charon");
    assert_eq!(g.ipsec.swanctl, Path::new("/opt/sw/swanctl"));
    assert_eq!(g.ipsec.vici.as_deref(), Some("unix:///run/x/charon.vici"));
    assert_eq!(g.ipsec.dpd_secs, 0);
    let explicit = sample().replace("# tunnel = \"wireguard\"", "tunnel = \"wireguard\"");
    assert_eq!(
        parse(&explicit).unwrap().gateway.tunnel,
        TunnelMode::Wireguard
    );
    let far = sample().replace("# ipsec_dpd_secs = 30", "ipsec_dpd_secs = 3600");
    assert_eq!(parse(&far).unwrap().gateway.ipsec.dpd_secs, 3600);
    // Rekey times: 0 (never) or 2 s to a week; the field is named when refused.
    for (ike, child, ok) in [
        ("0", "0", true),
        ("2", "5", true),
        ("604800", "3600", true),
        ("1", "3600", false),
        ("14400", "604801", false),
    ] {
        let text = sample()
            .replace(
                "# ipsec_ike_rekey_secs = 14400",
                &format!("ipsec_ike_rekey_secs = {ike}"),
            )
            .replace(
                "# ipsec_child_rekey_secs = 3600",
                &format!("ipsec_child_rekey_secs = {child}"),
            );
        match parse(&text) {
            Ok(c) => {
                assert!(ok, "{ike}/{child} accepted");
                assert_eq!(c.gateway.ipsec.ike_rekey_secs.to_string(), ike);
                assert_eq!(c.gateway.ipsec.child_rekey_secs.to_string(), child);
            }
            Err(e) => {
                assert!(!ok, "{ike}/{child}: {e}");
                assert!(e.to_string().contains("rekey_secs"), "{e}");
            }
        }
    }
}

#[test]
fn bad_ipsec_values_name_their_key() {
    let s = sample();
    let with = |from: &str, to: &str| {
        assert!(s.contains(from), "the example has no {from:?}");
        s.replace(from, to)
    };
    for bad in ["\"gre\"", "\"IPsec\"", "\"\"", "1", "[\"ipsec\"]"] {
        let text = with("# tunnel = \"wireguard\"", &format!("tunnel = {bad}"));
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("tunnel") && e.contains("/etc/po/organizer.toml"),
            "tunnel = {bad}: {e}"
        );
        if bad.starts_with('"') {
            assert!(
                e.contains("wireguard") && e.contains("ipsec"),
                "the choices: {e}"
            );
        }
    }
    for bad in ["3601", "86400"] {
        let text = with("# ipsec_dpd_secs = 30", &format!("ipsec_dpd_secs = {bad}"));
        assert_eq!(key_of(&text), "gateway.ipsec_dpd_secs", "{bad}");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains(bad) && e.contains("0 to 3600"), "{e}");
    }
    for bad in ["-1", "4294967296", "\"30\"", "1.5"] {
        let text = with("# ipsec_dpd_secs = 30", &format!("ipsec_dpd_secs = {bad}"));
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("ipsec_dpd_secs"), "ipsec_dpd_secs = {bad}: {e}");
    }
    for bad in [
        "\"/var/run/charon.vici\"",
        "\"unix://\"",
        "\"unix:///\"",
        "\"unix:///a b\"",
        "\"tcp://1.2.3.4:4502\"",
    ] {
        let text = with(
            "# ipsec_vici = \"unix:///var/run/charon.vici\"",
            &format!("ipsec_vici = {bad}"),
        );
        assert_eq!(key_of(&text), "gateway.ipsec_vici", "{bad}");
    }
    let unknown = with("# ipsec_dpd_secs = 30", "ipsec_dpd = 30");
    let e = parse(&unknown).unwrap_err().to_string();
    assert!(e.contains("ipsec_dpd"), "{e}");
    assert!(key_of(&unknown).starts_with("parse"));
    let typo = with("# tunnel = \"wireguard\"", "tunel = \"ipsec\"");
    assert!(parse(&typo).unwrap_err().to_string().contains("tunel"));
}

#[test]
fn the_init_example_parses_in_both_modes_and_its_comments_are_the_defaults() {
    let s = sample();
    let plain = parse(&s).unwrap();
    // Uncommenting every `# key = value` line of the example gives the same configuration
    // (but lm_url and ipsec_vici, which are examples, not defaults).
    let uncommented: String = s
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(kv)
                if kv.contains(" = ")
                    && kv.split(" = ").next().is_some_and(|k| {
                        k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    })
                    && !kv.contains('<')
                    && !kv.starts_with("ipsec_vici")
                    && !kv.starts_with("lm_url") =>
            {
                kv.to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        uncommented.contains("\nipsec_dpd_secs = 30"),
        "{uncommented}"
    );
    assert_eq!(parse(&uncommented).unwrap(), plain);
    let ipsec = parse(&s.replace("# tunnel = \"wireguard\"", "tunnel = \"ipsec\"")).unwrap();
    assert_eq!(ipsec.gateway.tunnel, TunnelMode::Ipsec);
    assert_eq!(
        ipsec.gateway.ipsec, plain.gateway.ipsec,
        "the other defaults stay"
    );
}
