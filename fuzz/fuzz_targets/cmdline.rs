//! Fuzz target: arbitrary bytes as the kernel command line (`/proc/cmdline`) of the ramdisk agent.
//!
//! Checks that the word splitter and `AgentArgs::parse` never panic, that words never outgrow
//! the input, that accepted arguments survive a render-and-parse round trip, and that the
//! enrollment token never shows in `Debug` or in an error.
#![no_main]

use agent_core::AgentArgs;
use agent_core::cmdline::words;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ws) = words(data) {
        for w in &ws {
            assert!(w.key.len() + w.value.map_or(0, <[u8]>::len) <= data.len());
        }
    }
    match AgentArgs::parse(data) {
        Ok(args) => {
            let mut line = format!(
                "lm.url={} lm.boot={} lm.mac={} lm.poweroff={}",
                args.lm_url, args.boot_id, args.boot_mac, args.poweroff_after_secs
            );
            if let Some(e) = &args.enrollment {
                assert!(!format!("{args:?}").contains(e.token.expose()));
                line.push_str(&format!(
                    " lm.lease={} lm.token={}",
                    e.lease,
                    e.token.expose()
                ));
            }
            let again = AgentArgs::parse(line.as_bytes()).expect("rendered arguments parse");
            assert_eq!(again.lm_url, args.lm_url);
            assert_eq!(again.boot_id, args.boot_id);
            assert_eq!(again.boot_mac, args.boot_mac);
            assert_eq!(again.poweroff_after_secs, args.poweroff_after_secs);
            assert_eq!(again.enrollment, args.enrollment);
        }
        Err(e) => {
            let text = e.to_string();
            // A 64-hex-character run in an error would be a leaked token.
            let hex_run = text
                .as_bytes()
                .split(|b| !b.is_ascii_hexdigit())
                .any(|run| run.len() >= 64);
            assert!(
                !hex_run
                    || !matches!(
                        e,
                        agent_core::CmdlineError::Malformed {
                            key: "lm.token",
                            ..
                        }
                    ),
                "{text}"
            );
        }
    }
});
