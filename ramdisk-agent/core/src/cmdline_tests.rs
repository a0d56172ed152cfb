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
        "{} lm.poweroff=30 lm.log=debug lm.tunnel=wg lm.image",
        GOOD.trim()
    );
    let a = AgentArgs::parse(line.as_bytes()).unwrap();
    assert_eq!(a.poweroff_after_secs, 30);
    assert_eq!(a.log_level, LogLevel::Debug);
    assert_eq!(
        a.ignored_lm_keys,
        vec!["lm.tunnel".to_string(), "lm.image".to_string()]
    );
    assert_eq!(a.enrollment, None);
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn leased(extra: &str) -> String {
    format!(
        "{} lm.lease=l-00000000000000aa lm.token={TOKEN} {extra}",
        GOOD.trim()
    )
}

#[test]
fn a_leased_boot_carries_lease_and_token() {
    let a = AgentArgs::parse(leased("").as_bytes()).unwrap();
    let e = a.enrollment.as_ref().expect("enrollment");
    assert_eq!(e.lease.to_string(), "l-00000000000000aa");
    assert_eq!(e.token.expose(), TOKEN);
    assert!(a.ignored_lm_keys.is_empty());
    // Quoted, like every other value.
    let q = format!(
        "{} \"lm.lease=l-00000000000000aa\" lm.token=\"{TOKEN}\"",
        GOOD.trim()
    );
    assert_eq!(
        AgentArgs::parse(q.as_bytes()).unwrap().enrollment,
        a.enrollment
    );
}

#[test]
fn the_token_is_never_printed() {
    let a = AgentArgs::parse(leased("").as_bytes()).unwrap();
    let debug = format!("{a:?} {:?}", a.enrollment);
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(!debug.contains(&TOKEN[..16]), "{debug}");
    assert!(
        debug.contains("l-00000000000000aa") && debug.contains("redacted"),
        "{debug}"
    );
    // Nor in errors about a malformed token: a near miss may be most of a real one.
    let near_misses = [
        TOKEN.to_uppercase(),
        format!("{TOKEN}0"),
        TOKEN[..63].to_string(),
        format!("{}z", &TOKEN[..63]),
        format!("\"{}\"", &TOKEN[..40]),
    ];
    for bad in near_misses {
        let line = format!("{} lm.lease=l-00000000000000aa lm.token={bad}", GOOD.trim());
        let e = AgentArgs::parse(line.as_bytes()).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(
            matches!(
                e,
                CmdlineError::Malformed {
                    key: "lm.token",
                    ..
                }
            ),
            "{text}"
        );
        assert!(
            !text.contains(&bad[..bad.len().min(20)].replace('"', "")),
            "{text}"
        );
        assert!(text.contains("redacted"), "{text}");
    }
    let bad_utf8 = [leased("").replace(TOKEN, "").as_bytes(), b""].concat();
    assert!(AgentArgs::parse(&bad_utf8).is_err());
    let mut raw = GOOD.trim().as_bytes().to_vec();
    raw.extend_from_slice(b" lm.lease=l-00000000000000aa lm.token=\xff\xfe");
    let e = AgentArgs::parse(&raw).unwrap_err();
    assert!(
        matches!(&e, CmdlineError::Malformed { key: "lm.token", reason, .. } if reason.contains("UTF-8")),
        "{e:?}"
    );
}

#[test]
fn lease_and_token_come_together_or_not_at_all() {
    let lease_only = format!("{} lm.lease=l-00000000000000aa", GOOD.trim());
    let e = AgentArgs::parse(lease_only.as_bytes()).unwrap_err();
    assert_eq!(
        e,
        CmdlineError::Unpaired {
            present: "lm.lease",
            missing: "lm.token"
        }
    );
    assert!(e.to_string().contains("no lm.token="), "{e}");
    let token_only = format!("{} lm.token={TOKEN}", GOOD.trim());
    let e = AgentArgs::parse(token_only.as_bytes()).unwrap_err();
    assert_eq!(
        e,
        CmdlineError::Unpaired {
            present: "lm.token",
            missing: "lm.lease"
        }
    );
    assert!(!e.to_string().contains(TOKEN));
    // A key without a value counts as present (and then malformed), not absent.
    let bare = format!("{} lm.lease lm.token={TOKEN}", GOOD.trim());
    assert!(matches!(
        AgentArgs::parse(bare.as_bytes()),
        Err(CmdlineError::Malformed {
            key: "lm.lease",
            ..
        })
    ));
    let bare = format!("{} lm.lease=l-00000000000000aa lm.token", GOOD.trim());
    assert!(matches!(
        AgentArgs::parse(bare.as_bytes()),
        Err(CmdlineError::Malformed {
            key: "lm.token",
            ..
        })
    ));
}

#[test]
fn hostile_lease_words_are_refused() {
    for (extra, key) in [
        (format!("lm.token={TOKEN}"), "lm.token"),
        ("lm.lease=l-00000000000000aa".to_string(), "lm.lease"),
    ] {
        let line = leased(&extra);
        assert_eq!(
            AgentArgs::parse(line.as_bytes()),
            Err(CmdlineError::Duplicate { key }),
            "{extra}"
        );
    }
    for lease in [
        "l-00000000000000AA",
        "l-0",
        "00000000000000aa",
        "l-00000000000000aa0",
        "l-0000000000000 aa",
        "l-00000000000000a\u{e9}",
    ] {
        let line = format!("{} lm.lease={lease} lm.token={TOKEN}", GOOD.trim());
        assert!(
            matches!(
                AgentArgs::parse(line.as_bytes()),
                Err(CmdlineError::Malformed {
                    key: "lm.lease",
                    ..
                })
            ),
            "{lease}"
        );
    }
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

    /// Whatever follows `lm.token=`, an error never repeats it.
    #[test]
    fn token_errors_never_echo_the_value(token in "[ -~]{8,80}") {
        let line = format!("{} lm.lease=l-00000000000000aa lm.token=\"{token}\"", GOOD.trim());
        if let Err(e) = AgentArgs::parse(line.as_bytes()) {
            let text = format!("{e} {e:?}");
            let probe: String = token.chars().filter(|c| *c != '"').take(8).collect();
            if probe.len() == 8 && !matches!(e, CmdlineError::UnterminatedQuote { .. }) {
                prop_assert!(!text.contains(&probe), "{}", text);
            }
        }
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
