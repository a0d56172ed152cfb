//! Fuzz target: arbitrary bytes as the kernel command line (`/proc/cmdline`) of the ramdisk agent.
//!
//! Checks that the word splitter and `AgentArgs::parse` never panic, that words never outgrow
//! the input, and that accepted arguments survive a render-and-parse round trip.
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
            let line = format!(
                "lm.url={} lm.boot={} lm.mac={} lm.poweroff={}",
                args.lm_url, args.boot_id, args.boot_mac, args.poweroff_after_secs
            );
            let again = AgentArgs::parse(line.as_bytes()).expect("rendered arguments parse");
            assert_eq!(again.lm_url, args.lm_url);
            assert_eq!(again.boot_id, args.boot_id);
            assert_eq!(again.boot_mac, args.boot_mac);
            assert_eq!(again.poweroff_after_secs, args.poweroff_after_secs);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
