//! `lab`: the QEMU lab by hand. `lab up --vms N` builds the data-centre namespace with N
//! registered VMs (woken by magic packets) and waits for Ctrl-C; `lab wake` sends a magic
//! packet from inside a namespace. Does IO; needs root.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use lab::wol_listener;
use lab::{Firmware, Lab, LabSpec, MacAddr, Netns, VmSpec};

#[derive(Debug, Parser)]
#[command(about = "The provisioning appliance's QEMU lab (network namespaces, WoL, RA, QEMU)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the lab with N VMs registered, print what was made, wait for Ctrl-C, tear down.
    Up {
        /// Number of VMs (MACs 52:54:00:77:00:01 upwards).
        #[arg(long, default_value_t = 1)]
        vms: u8,
        /// Boot the VMs with OVMF instead of SeaBIOS.
        #[arg(long)]
        uefi: bool,
        /// Power the VMs on at once instead of waiting for magic packets.
        #[arg(long)]
        power_on: bool,
        /// Log folder (default: target/lab-logs/<run>).
        #[arg(long)]
        log_dir: Option<PathBuf>,
    },
    /// The demo: a whole lease in the lab (request, wake, PXE, enroll, WireGuard, sealed
    /// image, start-up key, kexec into the tenant OS, release and wipe); with --wake-only the
    /// maintenance boot alone (wake a server, show its agent's facts and timeline).
    Demo {
        /// Only wake a server and show its agent come up (no lease).
        #[arg(long)]
        wake_only: bool,
        /// Artifacts of scripts/lab-prepare.sh (default target/lab).
        #[arg(long)]
        artifacts: Option<PathBuf>,
        /// Boot the VM with OVMF (UEFI PXE, iPXE chain-loaded over TFTP) instead of SeaBIOS.
        #[arg(long)]
        uefi: bool,
        /// The lease's tunnel is IPsec: the tenant's gateway runs strongSwan (charon with
        /// kernel-libipsec) and the agent builds an IKEv2/ESP tunnel with its certificate.
        #[arg(long)]
        ipsec: bool,
        /// Give up waiting for each stage after this many seconds.
        #[arg(long, default_value_t = 240)]
        timeout: u64,
    },
    /// Benchmarks against reference servers (scripts/bench.sh installs them): DHCP vs
    /// kea-dhcp4 and dnsmasq with perfdhcp, TFTP vs tftpd-hpa and atftpd.
    Bench {
        /// What to run.
        #[arg(value_enum, default_value_t = BenchWhat::All)]
        what: BenchWhat,
        /// The lease-manager binary (default target/release/lease-manager).
        #[arg(long)]
        lease_manager: Option<PathBuf>,
        /// Seconds per perfdhcp step.
        #[arg(long, default_value_t = 5)]
        secs: u32,
        /// Simulated agents for `fleet`.
        #[arg(long, default_value_t = 1000)]
        agents: u32,
        /// Size of the generated image for `image`, MiB.
        #[arg(long, default_value_t = 1024)]
        image_mib: u64,
        /// Rounds for `lease` (each: a whole lease, a PXE boot and a direct kernel boot).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Tunnel rate for `lease`'s floor, Gbit/s (default: the wg-tunnel figure recorded in
        /// docs/benchmarks.md, 2.83).
        #[arg(long)]
        tunnel_gbit: Option<f64>,
        /// `lease`: print the figures as JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Artifacts of scripts/lab-prepare.sh for `lease` and `fleet` (default target/lab).
        #[arg(long)]
        artifacts: Option<PathBuf>,
        /// `lease`: give up waiting for a console marker after this many seconds.
        #[arg(long, default_value_t = 240)]
        timeout: u64,
    },
    /// Send a Wake-on-LAN magic packet out of an interface inside a namespace.
    Wake {
        /// Namespace to send from (the one `lab up` printed).
        #[arg(long)]
        netns: String,
        /// Target MAC.
        #[arg(long)]
        mac: MacAddr,
        /// Interface to send out of.
        #[arg(long, default_value = "br0")]
        iface: String,
        /// How to send it.
        #[arg(long, value_enum, default_value_t = Via::Both)]
        via: Via,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchWhat {
    All,
    Dhcp,
    Tftp,
    /// 1,000 simulated agents enrolling at once (fleet-sim).
    Fleet,
    /// Sealed image: seal/open throughput vs openssl speed, reader memory. Not part of `all`:
    /// it needs a release build of lab (scripts/bench.sh image).
    Image,
    /// WireGuard tunnel throughput and handshake: wg-tunnel vs boringtun-cli (iperf3). Not part
    /// of `all`: it needs wg-node and boringtun-cli built (scripts/bench.sh tunnel).
    Tunnel,
    /// IPsec (issue 6): the agent's stack (ipsec-node) against a strongSwan responder, next to
    /// strongSwan against the same responder (iperf3 both ways, handshakes on the wire) and the
    /// WireGuard benchmark, in one run. Not part of `all`: it needs ipsec-node, wg-node and
    /// boringtun-cli built (scripts/bench.sh ipsec).
    Ipsec,
    /// The whole lease in the QEMU lab (request -> tenant OS, each phase) against the floor of
    /// the same lab (PXE boot, direct kernel boot, image at the tunnel rate). Not part of
    /// `all`: it needs the lab artifacts and the debug binaries (scripts/bench.sh lease).
    Lease,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Via {
    Udp,
    Ethertype,
    Both,
}

/// For commands that run long (demo, bench): SIGINT/SIGTERM delete the namespaces this process
/// made (child processes die with it: they have PDEATHSIG) and exit 130. Must run before any
/// thread starts, so that every thread inherits the blocked mask and only the handler thread
/// takes the signal.
fn clean_up_on_signal() {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; pthread_sigmask changes only
    // this thread's mask; sigwait reads the initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        std::thread::spawn(move || {
            let mut sig: libc::c_int = 0;
            libc::sigwait(&set, &mut sig);
            eprintln!("signal {sig}: deleting the lab's namespaces and exiting");
            let n = lab::netns::delete_all_owned();
            eprintln!("deleted {n} namespace(s)");
            std::process::exit(130);
        });
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The demo and the benchmarks tell their own story on stdout; the harness's logs are in
    // the log folder (and RUST_LOG brings them to the terminal).
    let default = if matches!(cli.cmd, Cmd::Demo { .. } | Cmd::Bench { .. }) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if matches!(cli.cmd, Cmd::Demo { .. } | Cmd::Bench { .. }) {
        clean_up_on_signal();
    }
    match cli.cmd {
        Cmd::Up {
            vms,
            uefi,
            power_on,
            log_dir,
        } => up(vms, uefi, power_on, log_dir),
        Cmd::Bench {
            what: BenchWhat::Image,
            image_mib,
            ..
        } => bench_image(image_mib),
        Cmd::Bench {
            what: BenchWhat::Lease,
            rounds,
            tunnel_gbit,
            json,
            artifacts,
            timeout,
            ..
        } => bench_lease(rounds, tunnel_gbit, json, artifacts, timeout),
        Cmd::Bench {
            what,
            lease_manager,
            artifacts,
            secs,
            agents,
            ..
        } => {
            set_artifacts(artifacts);
            bench(what, lease_manager, secs, agents)
        }
        Cmd::Demo {
            artifacts,
            wake_only,
            uefi,
            ipsec,
            timeout,
        } => {
            if let Some(a) = artifacts {
                // SAFETY: single-threaded at this point (before any lab thread starts).
                unsafe { std::env::set_var("LAB_ARTIFACTS", a) };
            }
            let art = lab::Artifacts::locate()?;
            if wake_only {
                return lab::demo::run(
                    &art,
                    &lab::demo::DemoOptions {
                        uefi,
                        timeout_secs: timeout,
                    },
                );
            }
            lab::demo_lease::run(
                &art,
                &lab::demo_lease::LeaseDemoOptions {
                    uefi,
                    ipsec,
                    timeout_secs: timeout,
                },
            )
        }
        Cmd::Wake {
            netns,
            mac,
            iface,
            via,
        } => {
            let ns = Netns::existing(&netns)?;
            if matches!(via, Via::Udp | Via::Both) {
                wol_listener::send_udp(&ns, &iface, mac, 9)?;
            }
            if matches!(via, Via::Ethertype | Via::Both) {
                wol_listener::send_ethertype(&ns, &iface, mac)?;
            }
            println!("magic packet for {mac} sent out of {iface} in {netns} ({via:?})");
            Ok(())
        }
    }
}

fn up(vms: u8, uefi: bool, power_on: bool, log_dir: Option<PathBuf>) -> Result<()> {
    // Block SIGINT/SIGTERM before any thread starts (threads inherit the mask; children get a
    // clean one from std), then take them synchronously with sigwait so Drop tears down.
    // SAFETY: sigset_t is plain data initialised by sigemptyset; pthread_sigmask affects only
    // this thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let spec = LabSpec {
        log_dir,
        ..LabSpec::default()
    };
    let lab = Lab::start(spec.clone()).context("starting the lab")?;
    let ns = lab.netns().name();
    println!(
        "lab up: netns {ns}, bridge {} {}/{} {}/{}",
        spec.bridge, spec.ipv4.0, spec.ipv4.1, spec.ipv6.0, spec.ipv6.1
    );
    println!(
        "  RA responder: {}, WoL listener on {}",
        if spec.ra { "on" } else { "off" },
        spec.bridge
    );
    println!("  logs: {}", lab.log_dir().display());
    for i in 1..=vms {
        let mut vm = VmSpec::new(
            &format!("vm{i}"),
            MacAddr([0x52, 0x54, 0x00, 0x77, 0x00, i]),
        );
        vm.firmware = if uefi { Firmware::Uefi } else { Firmware::Bios };
        let h = lab.register_vm(vm)?;
        let s = h.spec();
        println!(
            "  {}: mac {} tap {} uuid {} serial {} ({:?})",
            s.name,
            s.mac,
            s.tap.as_deref().unwrap_or("-"),
            s.smbios_uuid,
            s.smbios_serial,
            s.firmware
        );
        if power_on {
            h.power_on()?;
        }
    }
    println!("run inside:  ip netns exec {ns} <command>");
    println!("wake a VM:   lab wake --netns {ns} --mac 52:54:00:77:00:01");
    println!("Ctrl-C tears everything down.");
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is initialised above; `sig` is a live out-parameter.
    unsafe { libc::sigwait(&set, &mut sig) };
    println!("signal {sig}: tearing down");
    drop(lab);
    Ok(())
}

/// `--artifacts`: where `lab::Artifacts::locate` looks.
fn set_artifacts(dir: Option<PathBuf>) {
    if let Some(a) = dir {
        // SAFETY: called before any lab thread starts; the only other thread sleeps in
        // sigwait until a signal (as in `Demo`).
        unsafe { std::env::set_var("LAB_ARTIFACTS", a) };
    }
}

fn bench_lease(
    rounds: u32,
    tunnel_gbit: Option<f64>,
    json: bool,
    artifacts: Option<PathBuf>,
    timeout: u64,
) -> Result<()> {
    use lab::bench::lease::{self, report};
    set_artifacts(artifacts);
    let art = lab::Artifacts::locate()?;
    let bins = lab::tenant::world::Bins::locate()?;
    let (gbit, source) = match tunnel_gbit {
        Some(g) => (g, "given with --tunnel-gbit"),
        None => (lease::TUNNEL_GBIT_RECORDED, lease::TUNNEL_GBIT_SOURCE),
    };
    let opts = lease::Options {
        rounds,
        tunnel_gbit: gbit,
        timeout: std::time::Duration::from_secs(timeout),
    };
    let rounds = lease::bench(&art, &bins, &opts)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::summary(&rounds, gbit, source))?
        );
    } else {
        println!("{}", report::report(&rounds, gbit, source));
    }
    Ok(())
}

fn bench_image(image_mib: u64) -> Result<()> {
    use lab::bench::image;
    println!("{}", image::report(&image::bench(image_mib)?));
    Ok(())
}

fn bench(what: BenchWhat, lm: Option<PathBuf>, secs: u32, agents: u32) -> Result<()> {
    use lab::bench::{dhcp, fleet, ipsec, report, tftp, tunnel};
    if what == BenchWhat::Tunnel {
        // needs no lease-manager
        let (secs, rounds) = (10, 3);
        let runs = tunnel::bench(&tunnel::Tools::locate()?, secs, rounds)?;
        println!("{}", tunnel::report(&runs, secs));
        return Ok(());
    }
    if what == BenchWhat::Ipsec {
        let (secs, rounds, trials) = (10, 3, 10);
        let res = ipsec::bench(&ipsec::Tools::locate()?, secs, rounds, trials)?;
        println!("{}", ipsec::report(&res));
        return Ok(());
    }
    let lm = lm.unwrap_or_else(|| PathBuf::from("target/release/lease-manager"));
    anyhow::ensure!(
        lm.exists(),
        "{} not found: build it with cargo build --release -p lease-manager",
        lm.display()
    );
    let mut out = String::new();
    if matches!(what, BenchWhat::All | BenchWhat::Dhcp) {
        let steps = [
            100, 250, 500, 1000, 2000, 4000, 6000, 8000, 9000, 10000, 12000,
        ];
        let mut results = Vec::new();
        for s in [dhcp::Server::Ours, dhcp::Server::Kea, dhcp::Server::Dnsmasq] {
            results.push(dhcp::bench(s, &lm, &steps, secs)?);
        }
        out.push_str(&report::dhcp(&results));
        out.push('\n');
    }
    if matches!(what, BenchWhat::All | BenchWhat::Tftp) {
        out.push_str(&report::tftp(&tftp::bench(&lm)?));
        out.push('\n');
    }
    if matches!(what, BenchWhat::All | BenchWhat::Fleet) {
        let sim = lm.with_file_name("fleet-sim");
        anyhow::ensure!(
            sim.exists(),
            "{} not found: build it with cargo build --release -p fleet-sim",
            sim.display()
        );
        let art = lab::Artifacts::locate()?;
        out.push_str(&fleet::report(&fleet::bench(&art, &lm, &sim, agents)?));
    }
    println!("{out}");
    Ok(())
}
