//! Tests of the kernel command line parser, including hostile input. No IO.

use super::*;
use crate::lm_url::LmHost;
use proptest::prelude::*;
use std::net::Ipv4Addr;

const GOOD: &str = "BOOT_IMAGE=vmlinuz initrd=initrd console=ttyS0 quiet panic=-1 \
    lm.url=https://10.77.0.1:8443 lm.boot=00000000000000ff lm.mac=52:54:00:00:00:01\n";

fn kv(w: &Word<'_>) -> (String, Option<String>) {
    (lossy(w.key), w.value.map(lossy))
}

fn split(line: &str) -> Vec<(String, Option<String>)> {
    words(line.as_bytes()).unwrap().iter().map(kv).collect()
}

fn pair(k: &str, v: Option<&str>) -> (String, Option<String>) {
    (k.to_string(), v.map(str::to_string))
}

#[test]
fn parses_the_ipxe_rendering() {
    let a = AgentArgs::parse(GOOD.as_bytes()).unwrap();
    assert_eq!(a.lm_url.host(), &LmHost::Ip(Ipv4Addr::new(10, 77, 0, 1)));
    assert_eq!(a.lm_url.port(), 8443);
    assert_eq!(a.boot_id.to_string(), "00000000000000ff");
    assert_eq!(a.boot_mac.to_string(), "52:54:00:00:00:01");
    assert_eq!(a.poweroff_after_secs, DEFAULT_POWEROFF_SECS);
    assert_eq!(a.log_level, LogLevel::Info);
    assert!(a.ignored_lm_keys.is_empty());
}

#[test]
fn optional_keys_and_unknown_lm_keys() {
    let line = format!(
        "{} lm.poweroff=30 lm.log=debug lm.token=abc lm.lease",
        GOOD.trim()
    );
    let a = AgentArgs::parse(line.as_bytes()).unwrap();
    assert_eq!(a.poweroff_after_secs, 30);
    assert_eq!(a.log_level, LogLevel::Debug);
    assert_eq!(
        a.ignored_lm_keys,
        vec!["lm.token".to_string(), "lm.lease".to_string()]
    );
}

#[test]
fn kernel_quote_rules() {
    assert_eq!(
        split("a=\"b c\" d \"e f\" \"g=h i\" j=\"k l\"m \t\n x=\"\" \"\" y= z"),
        vec![
            pair("a", Some("b c")),
            pair("d", None),
            pair("e f", None),
            pair("g", Some("h i")),
            pair("j", Some("k l\"m")),
            pair("x", Some("")),
            pair("", None),
            pair("y", Some("")),
            pair("z", None),
        ]
    );
    // Only the first '=' splits; later ones belong to the value.
    assert_eq!(split("a=b=c"), vec![pair("a", Some("b=c"))]);
    // A quoted value of a quoted word loses one closing quote, as in the kernel.
    assert_eq!(split("\"a=\"b\"\""), vec![pair("a", Some("b\""))]);
    assert_eq!(split("   "), vec![]);
    assert_eq!(split(""), vec![]);
}

#[test]
fn quoted_agent_values_are_accepted() {
    let line = "lm.url=\"https://lm.example:443\" \"lm.boot=0123456789abcdef\" lm.mac=\"52-54-00-00-00-02\"";
    let a = AgentArgs::parse(line.as_bytes()).unwrap();
    assert_eq!(a.lm_url.to_string(), "https://lm.example:443");
    assert_eq!(a.boot_id.to_string(), "0123456789abcdef");
    assert_eq!(a.boot_mac.to_string(), "52:54:00:00:00:02");
}

#[test]
fn hostile_lines_are_refused_with_a_reason() {
    assert_eq!(
        AgentArgs::parse(b"console=ttyS0 lm.url=\"https://10.0.0.1:1 lm.boot=00000000000000ff"),
        Err(CmdlineError::UnterminatedQuote { offset: 14 })
    );
    assert_eq!(
        AgentArgs::parse(b"\""),
        Err(CmdlineError::UnterminatedQuote { offset: 0 })
    );
    assert_eq!(
        AgentArgs::parse(b"a b\0c"),
        Err(CmdlineError::Nul { offset: 3 })
    );
    let huge = vec![b'a'; MAX_CMDLINE + 1];
    assert_eq!(
        AgentArgs::parse(&huge),
        Err(CmdlineError::TooLong {
            len: MAX_CMDLINE + 1,
            max: MAX_CMDLINE
        })
    );
    // A huge line of many short words within the limit is fine (and fast).
    let many = "x ".repeat(MAX_CMDLINE / 2);
    assert_eq!(
        AgentArgs::parse(many.as_bytes()),
        Err(CmdlineError::Missing { key: "lm.url" })
    );
}

#[test]
fn duplicates_are_refused_even_when_equal() {
    let line = format!("{} lm.mac=52:54:00:00:00:01", GOOD.trim());
    assert_eq!(
        AgentArgs::parse(line.as_bytes()),
        Err(CmdlineError::Duplicate { key: "lm.mac" })
    );
    // Duplicates of the kernel's own words are none of our business.
    let line = format!("quiet quiet {GOOD}");
    assert!(AgentArgs::parse(line.as_bytes()).is_ok());
}

#[test]
fn missing_keys_are_named() {
    for (drop, key) in [
        ("lm.url", "lm.url"),
        ("lm.boot", "lm.boot"),
        ("lm.mac", "lm.mac"),
    ] {
        let line: Vec<&str> = GOOD
            .split_whitespace()
            .filter(|w| !w.starts_with(drop))
            .collect();
        assert_eq!(
            AgentArgs::parse(line.join(" ").as_bytes()),
            Err(CmdlineError::Missing { key }),
            "{drop}"
        );
    }
    assert_eq!(
        AgentArgs::parse(b""),
        Err(CmdlineError::Missing { key: "lm.url" })
    );
}

#[test]
fn malformed_values_name_key_and_value() {
    let cases = [
        ("lm.url=http://10.0.0.1:80", "lm.url", "http://10.0.0.1:80"),
        ("lm.url", "lm.url", ""),
        ("lm.boot=xyz", "lm.boot", "xyz"),
        ("lm.mac=52:54:00:00:00", "lm.mac", "52:54:00:00:00"),
        ("lm.mac=01:00:5e:00:00:01", "lm.mac", "01:00:5e:00:00:01"),
        ("lm.mac=00:00:00:00:00:00", "lm.mac", "00:00:00:00:00:00"),
        ("lm.poweroff=0", "lm.poweroff", "0"),
        ("lm.poweroff=86401", "lm.poweroff", "86401"),
        ("lm.poweroff=-5", "lm.poweroff", "-5"),
        (
            "lm.poweroff=99999999999999",
            "lm.poweroff",
            "99999999999999",
        ),
        ("lm.log=loud", "lm.log", "loud"),
    ];
    for (word, key, value) in cases {
        let base: Vec<&str> = GOOD
            .split_whitespace()
            .filter(|w| !w.starts_with(key) || key == "lm.poweroff")
            .collect();
        let line = format!("{} {word}", base.join(" "));
        match AgentArgs::parse(line.as_bytes()) {
            Err(CmdlineError::Malformed {
                key: k,
                value: v,
                reason,
            }) => {
                assert_eq!((k, v.as_str()), (key, value), "{word}");
                assert!(!reason.is_empty());
                let msg = CmdlineError::Malformed {
                    key: k,
                    value: v,
                    reason,
                }
                .to_string();
                assert!(msg.contains(key) && msg.contains(value), "{msg}");
            }
            other => panic!("{word}: {other:?}"),
        }
    }
    let bad_utf8 = [GOOD.trim().as_bytes(), b" lm.log=\xff"].concat();
    assert!(matches!(
        AgentArgs::parse(&bad_utf8),
        Err(CmdlineError::Malformed { key: "lm.log", .. })
    ));
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(line in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = AgentArgs::parse(&line);
    }

    #[test]
    fn never_panics_on_quote_heavy_text(line in "[a-z=\" \t.:/0-9]{0,200}") {
        if let Ok(ws) = words(line.as_bytes()) {
            for w in ws {
                prop_assert!(w.key.len() + w.value.map_or(0, <[u8]>::len) <= line.len());
            }
        }
    }

    #[test]
    fn without_quotes_words_are_whitespace_split(line in "[a-z=. \t\n]{0,200}") {
        let got: Vec<String> = words(line.as_bytes())
            .unwrap()
            .iter()
            .map(|w| match w.value {
                Some(v) => format!("{}={}", lossy(w.key), lossy(v)),
                None => lossy(w.key),
            })
            .collect();
        let want: Vec<String> = line.split_ascii_whitespace().map(str::to_string).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn rendered_lines_parse_back(
        boot: u64,
        mac in proptest::array::uniform6(any::<u8>()),
        secs in 1u32..=MAX_POWEROFF_SECS,
        quote: bool,
        noise in "[a-z_]{1,8}(=[a-z0-9,]{0,8})?",
    ) {
        let mut mac = mac;
        mac[0] = (mac[0] & 0xfe) | 0x02; // unicast, locally administered, never zero
        let mac = MacAddr(mac);
        let q = if quote { "\"" } else { "" };
        let line = format!(
            "{noise} lm.url={q}https://10.1.2.3:443{q} lm.boot={} {noise} lm.mac={q}{mac}{q} lm.poweroff={secs}",
            BootId::from_random(boot)
        );
        let a = AgentArgs::parse(line.as_bytes()).unwrap();
        prop_assert_eq!(a.boot_id, BootId::from_random(boot));
        prop_assert_eq!(a.boot_mac, mac);
        prop_assert_eq!(a.poweroff_after_secs, secs);
    }
}
