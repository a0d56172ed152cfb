//! Network namespaces for the lab: the [`Netns`] guard (created with `ip netns add` under a name
//! unique to this process, deleted on drop), helpers for bridges, taps, veth pairs, addresses
//! and sysctls, and [`Netns::run`], which runs a closure on a thread that entered the namespace
//! so sockets can be opened there from Rust (a socket keeps its namespace for life).
//!
//! Does IO: runs `ip` (iproute2) and calls setns(2).

use std::ffi::OsStr;
use std::fs::File;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};
use lm_api::MacAddr;

use crate::sys;

static NEXT_NS: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS...` in the host namespace; the error carries the command line and stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    tracing::debug!(cmd = %format!("ip {}", args.join(" ")), "run");
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Names of all network namespaces (`ip netns list`).
pub fn list() -> Result<Vec<String>> {
    let out = ip(&["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Whether a namespace called `name` exists.
pub fn exists(name: &str) -> Result<bool> {
    Ok(list()?.iter().any(|n| n == name))
}

/// Namespaces this process created and has not deleted yet, for [`delete_all_owned`].
static LIVE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Deletes every namespace this process created and still holds: the last resort of a signal
/// handler, when the guards' destructors will not run. Returns how many were deleted.
pub fn delete_all_owned() -> usize {
    let names = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    names
        .iter()
        .filter(|n| ip(&["netns", "del", n]).is_ok())
        .count()
}

/// A network namespace; deleted (`ip netns del`) on drop when this guard created it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    owned: bool,
}

impl Netns {
    /// Creates `<prefix><pid>-<counter>` (unique per process and call) with `lo` up.
    pub fn create(prefix: &str) -> Result<Netns> {
        let n = NEXT_NS.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}{}-{n}", std::process::id());
        ip(&["netns", "add", &name])?;
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.clone());
        let ns = Netns { name, owned: true };
        ns.ip(&["link", "set", "lo", "up"])?;
        tracing::debug!(netns = %ns.name, "created");
        Ok(ns)
    }

    /// Refers to an existing namespace made by someone else; it is not deleted on drop.
    pub fn existing(name: &str) -> Result<Netns> {
        if !exists(name)? {
            bail!("no network namespace {name:?} (see `ip netns list`)");
        }
        Ok(Netns {
            name: name.to_owned(),
            owned: false,
        })
    }

    /// The namespace's name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`); add
    /// arguments, then spawn it (for example with [`crate::Process::spawn`] and `netns: None`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `program ARGS...` inside the namespace to completion and returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .context("cannot run `ip netns exec`")?;
        if !out.status.success() {
            bail!(
                "`{program} {}` in netns {} failed ({}): {}",
                args.join(" "),
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `f` on a new thread that entered this namespace and returns its result; sockets it
    /// opens stay in the namespace when handed back. A panic in `f` is resumed here.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let file = self.open()?;
        let joined = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name(format!("netns-{}", self.name))
                .spawn_scoped(s, move || -> Result<T> {
                    sys::enter_netns(&file).context("setns(CLONE_NEWNET)")?;
                    Ok(f())
                })
                .map(|h| h.join())
        });
        match joined.context("cannot spawn a thread")? {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Moves the calling thread into this namespace for good. Threads it spawns afterwards
    /// (for example a tokio runtime's workers) start there too. Use on dedicated threads only.
    pub fn enter_current_thread(&self) -> Result<()> {
        sys::enter_netns(&self.open()?).context("setns(CLONE_NEWNET)")
    }

    fn open(&self) -> Result<File> {
        let path = format!("/run/netns/{}", self.name);
        File::open(&path).with_context(|| format!("cannot open {path}"))
    }

    /// Adds bridge `name` (STP off, forward delay 0, no automatic IPv6 link-local, MAC fixed
    /// when given so it does not follow its ports) and brings it up.
    pub fn add_bridge(&self, name: &str, mac: Option<MacAddr>) -> Result<()> {
        let mac_s = mac.map(|m| m.to_string());
        let mut args = vec!["link", "add", name];
        if let Some(m) = &mac_s {
            args.extend(["address", m.as_str()]);
        }
        args.extend(["type", "bridge", "stp_state", "0", "forward_delay", "0"]);
        self.ip(&args)?;
        self.ip(&["link", "set", "dev", name, "addrgenmode", "none"])?;
        self.link_up(name)
    }

    /// Adds tap `name` (`ip tuntap add mode tap`), attaches it to `master` if given, brings it up.
    pub fn add_tap(&self, name: &str, master: Option<&str>) -> Result<()> {
        self.ip(&["tuntap", "add", "dev", name, "mode", "tap"])?;
        if let Some(br) = master {
            self.set_master(name, br)?;
        }
        self.link_up(name)
    }

    /// Adds `addr/prefix_len` to `dev`; IPv6 addresses get `nodad` (usable at once).
    pub fn add_addr(&self, dev: &str, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let cidr = format!("{addr}/{prefix_len}");
        let mut args = vec!["addr", "add", cidr.as_str(), "dev", dev];
        if addr.is_ipv6() {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    /// Makes `dev` a port of bridge `bridge`.
    pub fn set_master(&self, dev: &str, bridge: &str) -> Result<()> {
        self.ip(&["link", "set", "dev", dev, "master", bridge])
            .map(drop)
    }

    /// `ip link set dev DEV up`.
    pub fn link_up(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", "dev", dev, "up"]).map(drop)
    }

    /// Writes `/proc/sys/<key>` as seen from inside the namespace (`key` like
    /// `net/ipv6/conf/br0/disable_ipv6`).
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        if key.split('/').any(|p| p.is_empty() || p == "..") {
            bail!("bad sysctl key {key:?}");
        }
        let path = format!("/proc/sys/{key}");
        self.run(|| std::fs::write(&path, value))?
            .with_context(|| format!("cannot write {value:?} to {path} in netns {}", self.name))
    }

    /// The Ethernet address of `dev` inside the namespace.
    pub fn mac_of(&self, dev: &str) -> Result<MacAddr> {
        self.run(|| sys::hwaddr(dev))?
            .with_context(|| format!("{dev} in netns {}", self.name))
    }

    /// The interface index of `dev` inside the namespace.
    pub fn ifindex(&self, dev: &str) -> Result<u32> {
        self.run(|| sys::ifindex(dev))?
            .with_context(|| format!("netns {}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|n| n != &self.name);
        match ip(&["netns", "del", &self.name]) {
            Ok(_) => tracing::debug!(netns = %self.name, "deleted"),
            Err(e) => tracing::warn!(netns = %self.name, "cannot delete: {e:#}"),
        }
    }
}

/// Creates a veth pair `a_if` (in `a`) <-> `b_if` (in `b`) and brings both ends up. The ends are
/// created directly in their namespaces, so the names only need to be unique there.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    ip(&[
        "link", "add", "name", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if,
        "netns", &b.name,
    ])?;
    a.link_up(a_if)?;
    b.link_up(b_if)
}

/// Creates a veth pair with both ends in `ns` and brings both up.
pub fn veth_local(ns: &Netns, a_if: &str, b_if: &str) -> Result<()> {
    ns.ip(&[
        "link", "add", "name", a_if, "type", "veth", "peer", "name", b_if,
    ])?;
    ns.link_up(a_if)?;
    ns.link_up(b_if)
}
