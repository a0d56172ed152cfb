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
