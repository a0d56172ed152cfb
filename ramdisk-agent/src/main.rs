//! `/init` of the network-booted initramfs: the ramdisk agent's IO shell.
//!
//! Does IO. The decisions live in `agent-core` (pure); this binary mounts, logs to the console,
//! loads modules, drives the NIC, runs DHCP over a packet socket, talks HTTPS to the Lease
//! Manager, and powers off when the policy says so. See `bringup.rs` for the phase loop and
//! `console.rs` for the console markers.
//!
//! Modes:
//! - PID 1 (the normal case): argv is whatever the kernel passed on (command-line words it did
//!   not recognise) and is ignored; the agent never exits: at the end it powers off, and if even
//!   that fails it hangs.
//! - Not PID 1, or `--not-init`: no mounts, no console takeover, no module loading, no
//!   /etc/resolv.conf, no power-off: the process exits with status 1 where PID 1 would power off
//!   (status 2 for a usage error). For tests and network-namespace runs:
//!   `ramdisk-agent --not-init [--cmdline TEXT] [--ca PATH] [--image-dir DIR]`.

mod bringup;
mod console;
mod facts;
mod gateway;
mod hello;
mod host_root;
mod https;
mod ipsec_way;
mod kexec;
mod lease;
mod lease_way;
mod local_disk;
mod modules;
mod net;
mod pid1;
mod pinned;
mod start;
mod startup_key;
mod store;
mod sys;
mod transfer;
mod tunnel;

use std::panic::AssertUnwindSafe;

use pid1::Mode;

const USAGE: &str = "usage: ramdisk-agent [--not-init] [--cmdline TEXT] [--ca PATH] [--image-dir DIR]\n\
    As PID 1 (the initramfs /init) arguments are ignored. Otherwise the agent runs without\n\
    mounts, module loading or power-off and exits with status 1 where it would power off.\n\
    --cmdline TEXT  use TEXT instead of /proc/cmdline\n\
    --ca PATH       trust PATH instead of /etc/lease-manager/ca.pem\n\
    --image-dir DIR keep the lease's sealed image in DIR instead of /run/lease-image\n\
    --disk PATH     the local disk (a block device or a file) for the start-up key table and\n\
                    the image slot; without it the start phase looks for /dev/vda and others";

/// Parses argv for a process that is not PID 1.
fn parse_args(args: impl Iterator<Item = String>) -> Result<bringup::Options, String> {
    let mut opts = bringup::Options {
        mode: Mode::NotInit,
        cmdline: None,
        ca_path: https::CA_PATH.into(),
        image_dir: bringup::IMAGE_DIR.into(),
        disk: None,
    };
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--not-init" => {}
            "--cmdline" => opts.cmdline = Some(args.next().ok_or("--cmdline needs a value")?),
            "--ca" => opts.ca_path = args.next().ok_or("--ca needs a value")?,
            "--image-dir" => {
                opts.image_dir = args.next().ok_or("--image-dir needs a value")?.into()
            }
            "--disk" => opts.disk = Some(args.next().ok_or("--disk needs a value")?.into()),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn main() {
    let is_pid1 = std::process::id() == 1;
    let opts = if is_pid1 {
        bringup::Options {
            mode: Mode::Init,
            cmdline: None,
            ca_path: https::CA_PATH.into(),
            image_dir: bringup::IMAGE_DIR.into(),
            disk: None,
        }
    } else {
        match parse_args(std::env::args().skip(1)) {
            Ok(o) => o,
            Err(msg) => {
                if !msg.is_empty() {
                    eprintln!("ramdisk-agent: {msg}");
                }
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
    };
    let mode = opts.mode;
    let early = (mode == Mode::Init).then(pid1::early_setup);
    let set_level = console::init_tracing();
    std::panic::set_hook(Box::new(|info| {
        console::line(&format!("agent panic: {info}"))
    }));
    if let Some((tty, problems)) = early {
        console::line(&format!(
            "ramdisk-agent {} as PID 1, console {}",
            hello::version(),
            tty.unwrap_or("none")
        ));
        for p in problems {
            tracing::warn!("{p:#}");
        }
        if let Err(e) = pid1::start_reaper() {
            tracing::warn!("orphans will not be reaped: {e:#}");
        }
    } else {
        console::line(&format!(
            "ramdisk-agent {} not PID 1: test mode",
            hello::version()
        ));
    }

    let result = std::panic::catch_unwind(AssertUnwindSafe(|| bringup::run(opts, &set_level)));
    if let Err(payload) = result {
        console::poweroff(&format!(
            "the agent panicked: {}",
            console::one_line(&panic_message(&*payload))
        ));
    }
    match mode {
        Mode::Init => {
            let err = pid1::power_off();
            console::line(&format!("power off failed ({err}); halting here"));
            pid1::hang()
        }
        Mode::NotInit => {
            console::line("not PID 1: exiting with status 1 instead of powering off");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<bringup::Options, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn switches() {
        let o = args(&["--not-init", "--cmdline", "lm.url=x", "--ca", "/tmp/ca.pem"]).unwrap();
        assert_eq!(o.mode, Mode::NotInit);
        assert_eq!(o.cmdline.as_deref(), Some("lm.url=x"));
        assert_eq!(o.ca_path, "/tmp/ca.pem");
        assert_eq!(args(&[]).unwrap().ca_path, https::CA_PATH);
        assert!(args(&["--cmdline"]).unwrap_err().contains("needs a value"));
        assert!(args(&["quiet"]).unwrap_err().contains("unknown argument"));
        assert_eq!(args(&["--help"]).unwrap_err(), "");
    }

    #[test]
    fn panic_messages() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&5u8), "unknown panic");
    }
}
