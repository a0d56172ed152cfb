//! [`Lab`]: the data-centre namespace of ARCHITECTURE.md section 5. A namespace with bridge
//! `br0` (10.77.0.1/24, fd77::1/64 and a fixed link-local, all without DAD), a veth "carrier
//! anchor" on the bridge, the RA responder, the Wake-on-LAN listener that powers on the
//! registered VM whose MAC is in a magic packet, one tap per VM, processes started inside
//! (the Lease Manager) with captured logs, one log folder per run, and teardown of everything
//! in reverse order on drop (with a dump of all logs when dropped during a panic).
//!
//! The carrier anchor matters: a bridge whose only ports are taps without QEMU has no carrier,
//! and the kernel then drops frames sent out of it before AF_PACKET sees them, so the LM's own
//! wake broadcast would never reach the listener.
//!
//! Does IO.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use lm_api::MacAddr;

use crate::lab_vm::{PowerOn, VmHandle, WakeEvent, WakeOutcome};
use crate::netns::{self, Netns};
use crate::process::Process;
use crate::qemu::VmSpec;
use crate::ra::link_local_from_mac;
use crate::ra_responder::{RaConfig, RaResponder};
use crate::wol::WakeVia;
use crate::wol_listener::WolListener;

/// How to build the lab. `Default` is the layout of ARCHITECTURE.md section 5.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Prefix of the namespace name (`<prefix><pid>-<n>`).
    pub prefix: String,
    /// Bridge name.
    pub bridge: String,
    /// Bridge MAC, fixed so it does not follow the ports; its EUI-64 link-local is added.
    pub bridge_mac: MacAddr,
    /// The DC's IPv4 address on the bridge and prefix length.
    pub ipv4: (Ipv4Addr, u8),
    /// The DC's IPv6 address on the bridge and prefix length (the RA advertises its prefix).
    pub ipv6: (Ipv6Addr, u8),
    /// Log folder; default `<repo>/target/lab-logs/<unix time>-<namespace>/`.
    pub log_dir: Option<PathBuf>,
    /// Run the RA responder.
    pub ra: bool,
    /// Run the WoL listener.
    pub wol: bool,
    /// Lines per process in the dump printed when the lab is dropped during a panic.
    pub dump_lines: usize,
}

impl Default for LabSpec {
    fn default() -> Self {
        LabSpec {
            prefix: "lab".into(),
            bridge: "br0".into(),
            bridge_mac: MacAddr([0x02, 0x77, 0, 0, 0, 0x01]),
            ipv4: (Ipv4Addr::new(10, 77, 0, 1), 24),
            ipv6: (Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1), 64),
            log_dir: None,
            ra: true,
            wol: true,
            dump_lines: 40,
        }
    }
}

#[derive(Debug)]
struct Shared {
    started: Instant,
    vms: Mutex<Vec<VmHandle>>,
    procs: Mutex<Vec<Arc<Process>>>,
    wakes: Mutex<Vec<WakeEvent>>,
    wakes_changed: Condvar,
    wake_log: PathBuf,
}

impl Shared {
    fn on_wake(&self, mac: MacAddr, via: WakeVia) {
        let vm = self
            .vms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|v| v.mac() == mac)
            .cloned();
        let outcome = match vm {
            None => WakeOutcome::Unregistered,
            Some(vm) => match vm.power_on() {
                Ok(PowerOn::Started(run)) => WakeOutcome::Started {
                    vm: vm.name().into(),
                    boot: run.boot(),
                },
                Ok(PowerOn::AlreadyRunning(_)) => WakeOutcome::AlreadyRunning {
                    vm: vm.name().into(),
                },
                Err(e) => WakeOutcome::Failed {
                    vm: vm.name().into(),
                    error: format!("{e:#}"),
                },
            },
        };
        tracing::info!(%mac, ?via, ?outcome, "wake");
        let event = WakeEvent {
            at: self.started.elapsed(),
            mac,
            via,
            outcome,
        };
        let line = format!(
            "{:9.3} {} {:?} -> {:?}\n",
            event.at.as_secs_f64(),
            event.mac,
            event.via,
            event.outcome
        );
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.wake_log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            tracing::warn!("cannot append to {}: {e}", self.wake_log.display());
        }
        self.wakes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
        self.wakes_changed.notify_all();
    }
}

/// The running lab; everything is torn down on drop.
#[derive(Debug)]
pub struct Lab {
    spec: LabSpec,
    log_dir: PathBuf,
    shared: Arc<Shared>,
    next_port: AtomicU32,
    wol: Option<WolListener>,
    ra: Option<RaResponder>,
    bmc: Option<crate::bmc::Bmc>,
    ns: Netns,
}

impl Lab {
    /// Builds the namespace, bridge, addresses, carrier anchor, RA responder and WoL listener.
    pub fn start(spec: LabSpec) -> Result<Lab> {
        let t = Instant::now();
        let ns = Netns::create(&spec.prefix)?;
        let br = spec.bridge.as_str();
        ns.add_bridge(br, Some(spec.bridge_mac))?;
        ns.add_addr(br, IpAddr::V4(spec.ipv4.0), spec.ipv4.1)?;
        ns.add_addr(br, IpAddr::V6(spec.ipv6.0), spec.ipv6.1)?;
        ns.add_addr(br, IpAddr::V6(link_local_from_mac(spec.bridge_mac)), 64)?;
        netns::veth_local(&ns, "carrier0", "carrier1")?;
        for port in ["carrier0", "carrier1"] {
            ns.set_sysctl(&format!("net/ipv6/conf/{port}/disable_ipv6"), "1")?;
        }
        ns.set_master("carrier0", br)?;
        let log_dir = match &spec.log_dir {
            Some(d) => d.clone(),
            None => {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
                repo.parent()
                    .unwrap_or(repo)
                    .join("target/lab-logs")
                    .join(format!("{secs}-{}", ns.name()))
            }
        };
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        let shared = Arc::new(Shared {
            started: t,
            vms: Mutex::new(Vec::new()),
            procs: Mutex::new(Vec::new()),
            wakes: Mutex::new(Vec::new()),
            wakes_changed: Condvar::new(),
            wake_log: log_dir.join("wol.log"),
        });
        let ra = if spec.ra {
            let (prefix, prefix_len) = (spec.ipv6.0, spec.ipv6.1);
            Some(RaResponder::start(
                &ns,
                RaConfig {
                    iface: br.into(),
                    prefix,
                    prefix_len,
                },
            )?)
        } else {
            None
        };
        let wol = if spec.wol {
            let s = shared.clone();
            Some(WolListener::start(&ns, br, move |mac, via| {
                s.on_wake(mac, via)
            })?)
        } else {
            None
        };
        // The virtual BMC: a power cycle of a registered VM, for the LM's cycle_command.
        let s = shared.clone();
        let bmc = crate::bmc::Bmc::start(&log_dir.join("bmc.sock"), move |mac| {
            let vm = s
                .vms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|v| v.mac() == mac)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no VM with MAC {mac} in the lab"))?;
            vm.power_off();
            vm.power_on().map(|_| ())
        })?;
        tracing::info!(netns = ns.name(), log_dir = %log_dir.display(), took = ?t.elapsed(), "lab up");
        Ok(Lab {
            spec,
            log_dir,
            shared,
            next_port: AtomicU32::new(0),
            wol,
            ra,
            bmc: Some(bmc),
            ns,
        })
    }

    /// The virtual BMC's socket (`lab-bmc <socket> cycle <mac>` power-cycles a VM).
    pub fn bmc_socket(&self) -> Option<&Path> {
        self.bmc.as_ref().map(|b| b.path())
    }

    /// The data-centre namespace (for `ip`, commands, sockets via [`Netns::run`]).
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        &self.spec.bridge
    }

    /// Where every log of this run goes.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The RA responder, if running.
    pub fn ra(&self) -> Option<&RaResponder> {
        self.ra.as_ref()
    }

    /// Registers a VM: creates its tap on the bridge (`tapN` unless `spec.tap` names one) and
    /// fills in the log folder. A magic packet for its MAC then powers it on.
    pub fn register_vm(&self, mut spec: VmSpec) -> Result<VmHandle> {
        let mut vms = self.shared.vms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(other) = vms
            .iter()
            .find(|v| v.name() == spec.name || v.mac() == spec.mac)
        {
            bail!(
                "VM {} ({}) clashes with registered VM {} ({})",
                spec.name,
                spec.mac,
                other.name(),
                other.mac()
            );
        }
        if let Some(other) = spec.tpm.as_ref().and_then(|state| {
            vms.iter()
                .find(|v| v.spec().tpm.as_ref().is_some_and(|s| s == state))
        }) {
            bail!(
                "VM {}: TPM state folder {} belongs to VM {} already; one TPM per VM",
                spec.name,
                spec.tpm
                    .as_ref()
                    .map(|s| s.display().to_string())
                    .unwrap_or_default(),
                other.name()
            );
        }
        let tap = spec
            .tap
            .get_or_insert_with(|| format!("tap{}", vms.len()))
            .clone();
        spec.log_dir.get_or_insert_with(|| self.log_dir.clone());
        spec.validate()?;
        self.ns.add_tap(&tap, Some(&self.spec.bridge))?;
        self.ns
            .set_sysctl(&format!("net/ipv6/conf/{tap}/disable_ipv6"), "1")?;
        let handle = VmHandle::new(spec, self.ns.name());
        vms.push(handle.clone());
        Ok(handle)
    }

    /// The registered VM called `name`.
    pub fn vm(&self, name: &str) -> Option<VmHandle> {
        self.vms().into_iter().find(|v| v.name() == name)
    }

    /// The registered VM with NIC `mac`.
    pub fn vm_by_mac(&self, mac: MacAddr) -> Option<VmHandle> {
        self.vms().into_iter().find(|v| v.mac() == mac)
    }

    /// All registered VMs, in registration order.
    pub fn vms(&self) -> Vec<VmHandle> {
        self.shared
            .vms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts `cmd` inside the DC namespace with its output in `<log dir>/<name>.log`; it is
    /// killed when the lab is dropped (or earlier with [`Process::terminate`]).
    pub fn run_in_dc(&self, name: &str, cmd: &Command) -> Result<Arc<Process>> {
        self.run_in(&self.ns, name, cmd)
    }

    /// Like [`Lab::run_in_dc`], but inside namespace `ns` (one attached to the bridge, say):
    /// logged in the lab's folder, dumped with the lab on a panic, killed when it is dropped.
    pub fn run_in(&self, ns: &Netns, name: &str, cmd: &Command) -> Result<Arc<Process>> {
        if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
            bail!("process name {name:?} must be usable as a file name");
        }
        let log = self.log_dir.join(format!("{name}.log"));
        let p = Arc::new(Process::spawn(name, cmd, Some(ns.name()), Some(&log))?);
        self.shared
            .procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(p.clone());
        Ok(p)
    }

    /// Processes started with [`Lab::run_in_dc`] and [`Lab::run_in`].
    pub fn processes(&self) -> Vec<Arc<Process>> {
        self.shared
            .procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Connects `other` to the bridge with a veth pair: `ifname` in `other` (up, no address),
    /// a port `vpN` on the bridge. Returns the port's name.
    pub fn attach(&self, other: &Netns, ifname: &str) -> Result<String> {
        let port = format!("vp{}", self.next_port.fetch_add(1, Ordering::Relaxed));
        netns::veth(&self.ns, &port, other, ifname)?;
        self.ns
            .set_sysctl(&format!("net/ipv6/conf/{port}/disable_ipv6"), "1")?;
        self.ns.set_master(&port, &self.spec.bridge)?;
        Ok(port)
    }

    /// Every magic packet seen so far, in order.
    pub fn wakes(&self) -> Vec<WakeEvent> {
        self.shared
            .wakes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until at least `count` magic packets were seen; returns all seen so far. (Each is
    /// also appended to `wol.log` in the log folder.)
    pub fn wait_wakes(&self, count: usize, timeout: Duration) -> Result<Vec<WakeEvent>> {
        let wakes = self.shared.wakes.lock().unwrap_or_else(|p| p.into_inner());
        let (wakes, _) = self
            .shared
            .wakes_changed
            .wait_timeout_while(wakes, timeout, |w| w.len() < count)
            .unwrap_or_else(|p| p.into_inner());
        if wakes.len() < count {
            bail!(
                "{} of {count} magic packets seen within {timeout:?}: {:?}",
                wakes.len(),
                *wakes
            );
        }
        Ok(wakes.clone())
    }

    /// The last `lines` lines of every VM boot and process, and the wake events.
    pub fn dump(&self, lines: usize) -> String {
        let mut out = format!(
            "===== lab {} (logs in {}) =====\n",
            self.ns.name(),
            self.log_dir.display()
        );
        for w in self.wakes() {
            out.push_str(&format!(
                "wake {:9.3} {} {:?} -> {:?}\n",
                w.at.as_secs_f64(),
                w.mac,
                w.via,
                w.outcome
            ));
        }
        for vm in self.vms() {
            for n in 1..=vm.boots() {
                if let Some(run) = vm.boot(n) {
                    out.push_str(&run.console().dump(lines));
                    if let Some(tpm) = run.tpm() {
                        out.push_str(&tpm.dump(lines));
                    }
                }
            }
        }
        for p in self.processes() {
            out.push_str(&p.dump(lines));
        }
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        self.wol.take(); // no more wakes
        self.bmc.take(); // no more power cycles
        for vm in self.vms().iter().rev() {
            vm.shut_down();
        }
        for p in self.processes().iter().rev() {
            p.terminate();
        }
        if panicking {
            eprintln!("{}", self.dump(self.spec.dump_lines));
        }
        self.ra.take();
        tracing::info!(netns = self.ns.name(), "lab down");
        // `ns` is dropped last: deleting the namespace removes the bridge, taps and veths.
    }
}
