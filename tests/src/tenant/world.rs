//! The tenant world of the lab (the tenant-tunnel namespace test, the whole-lease QEMU test
//! and the demo): the lab's data-centre namespace with the
//! Lease Manager on bridge `br0` (10.77.0.1), the tenant gateway's namespace (10.77.0.2 on the
//! bridge, its tunnel network only on its TUN device) and the lease server's namespace (a veth
//! on the bridge carrying the server's MAC, no address until the agent's DHCP). Every process
//! is started through the lab (logged in its folder, dumped on a panic, killed by PID when it
//! is dropped); the namespaces are deleted on drop.
//!
//! Uses the real binaries: `lease-manager`, `procurement-organizer` and `ramdisk-agent` from
//! `$LAB_BIN_DIR` (default `<workspace>/target/debug`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::lm::{Artifacts, LabLm, LmOptions};
use crate::netns::Netns;
use crate::{Lab, LabSpec, MacAddr, Process, VmHandle, VmSpec};
use anyhow::{Context, Result, bail};

use super::helpers::http_get;

pub const LM_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const GW_DC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The address the "firmware" uses to fetch its boot script (outside the LM's DHCP pool); it
/// is removed before the agent starts, as iPXE's address goes away with iPXE.
const FIRMWARE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 250);
pub const TUNNEL_NET: &str = "10.64.0.0/24";
pub const GW_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
pub const STORE_PORT: u16 = 8080;
pub const KEY_PORT: u16 = 7444;
pub const REGISTER_PORT: u16 = 7443;
pub const WG_PORT: u16 = 51820;
pub const SERVER: &str = "srv1";
pub const SERVER_MAC: MacAddr = MacAddr([0x02, 0x54, 0x00, 0x77, 0x0a, 0x01]);
/// The lease server's interface inside its namespace.
pub const SERVER_IF: &str = "eth0";

/// Why the test cannot run here, if it cannot.
pub fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, TUN devices)");
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun on this machine");
    }
    None
}

/// The three binaries under test.
#[derive(Debug, Clone)]
pub struct Bins {
    pub dir: PathBuf,
    pub lease_manager: PathBuf,
    pub organizer: PathBuf,
    pub agent: PathBuf,
}

impl Bins {
    pub fn locate() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let dir = std::env::var_os("LAB_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/debug"));
        let b = Self {
            lease_manager: dir.join("lease-manager"),
            organizer: dir.join("procurement-organizer"),
            agent: dir.join("ramdisk-agent"),
            dir,
        };
        for p in [&b.lease_manager, &b.organizer, &b.agent] {
            if !p.exists() {
                bail!(
                    "{} is missing: cargo build -p lease-manager -p procurement-organizer -p ramdisk-agent",
                    p.display()
                );
            }
        }
        Ok(b)
    }
}

/// Runs a short command to completion; its stdout, or an error with its stderr.
pub fn run(what: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// `procurement-organizer --config <cfg>` for the tenant, run in the gateway's namespace.
#[derive(Debug)]
pub struct Organizer {
    pub bin: PathBuf,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    ns: String,
}

impl Organizer {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        c
    }

    /// Runs a subcommand to completion in the gateway's namespace.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let inner = self.command(args);
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns])
            .arg(inner.get_program())
            .args(inner.get_args());
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        run(&format!("procurement-organizer {}", args.join(" ")), &mut c)
    }

    /// Runs a `--json` subcommand and decodes its answer.
    pub fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a)?;
        serde_json::from_str(&out)
            .with_context(|| format!("procurement-organizer {}: not JSON: {out}", a.join(" ")))
    }
}

/// The namespaces, the Lease Manager, the tenant and its organizer. Fields drop in order: the
/// lab first (it kills every process it started, in every namespace), then the namespaces.
#[derive(Debug)]
pub struct World {
    pub lab: Lab,
    pub lm: LabLm,
    pub gw_ns: Netns,
    pub srv_ns: Netns,
    /// The bridge port (in the lab's namespace) of the gateway's veth.
    pub gw_port: String,
    /// The bridge port (in the lab's namespace) of the lease server's veth.
    pub srv_port: String,
    pub bins: Bins,
    pub po: Organizer,
    /// The LM CA certificate the agent pins.
    pub ca_pem: PathBuf,
    /// Scratch folder of the run (inside the lab's log folder).
    pub dir: PathBuf,
}

/// A lease server that is a QEMU VM (PXE boot through the lab) instead of the agent process
/// in a namespace.
#[derive(Debug)]
pub struct VmServer {
    /// The lab's boot files (`scripts/lab-prepare.sh`): kernel, agent initramfs, pinned CA.
    pub art: Artifacts,
    pub spec: VmSpec,
}

impl World {
    /// Namespaces, LM, the server in the inventory, tenant `acme` with its bundle, the
    /// organizer's config. Nothing of the tenant runs yet.
    pub fn build(bins: Bins) -> Result<World> {
        Self::build_with(bins, None).map(|(w, _)| w)
    }

    /// Like [`World::build`]; with `vm`, the lab also runs RA and WoL, the LM serves the lab's
    /// real boot files with the lab CA, and the VM (registered with the lab, woken by the LM)
    /// is the server in the inventory.
    pub fn build_with(bins: Bins, vm: Option<VmServer>) -> Result<(World, Option<VmHandle>)> {
        let lab = Lab::start(LabSpec {
            prefix: if vm.is_some() { "tv" } else { "tt" }.into(),
            ra: vm.is_some(),
            wol: vm.is_some(),
            ..LabSpec::default()
        })?;
        let dir = lab.log_dir().join("work");
        std::fs::create_dir_all(&dir)?;

        let (art, handle, server) = match vm {
            Some(v) => {
                let server = (v.spec.name.clone(), v.spec.mac);
                let handle = lab.register_vm(v.spec)?;
                (v.art, Some(handle), server)
            }
            None => {
                // The LM's boot files are never fetched here; its CA is made for the run.
                let art = Artifacts {
                    dir: dir.join("lm-artifacts"),
                    bin_dir: bins.dir.clone(),
                };
                std::fs::create_dir_all(art.dir.join("boot"))?;
                for f in [art.kernel(), art.initrd()] {
                    std::fs::write(&f, b"not booted by the tenant tunnel test\n")?;
                }
                run(
                    "lease-manager ca init",
                    Command::new(&bins.lease_manager)
                        .args(["ca", "init", "--dir"])
                        .arg(art.ca_dir()),
                )?;
                (art, None, (SERVER.to_string(), SERVER_MAC))
            }
        };
        let ca_dir = art.ca_dir();
        // With a VM, the LM power-cycles it through the lab's virtual BMC (a released server
        // running its tenant OS has no agent to hear the release).
        let extra_toml = match (handle.is_some(), lab.bmc_socket()) {
            (true, Some(sock)) => format!(
                "[power]\ncycle_command = [{:?}, {:?}, \"cycle\", \"{{mac}}\"]\n",
                bins.dir.join("lab-bmc").display().to_string(),
                sock.display().to_string()
            ),
            _ => String::new(),
        };
        let lm = LabLm::start(
            &lab,
            &art,
            &LmOptions {
                heartbeat_secs: 1,
                wake_attempts: 3,
                wake_confirm_ms: if handle.is_some() { 30_000 } else { 20_000 },
                bin: Some(bins.lease_manager.clone()),
                extra_toml,
                ..LmOptions::default()
            },
        )?;

        let gw_ns = Netns::create("ttgw")?;
        let gw_port = lab.attach(&gw_ns, "dc0")?;
        gw_ns.add_addr("dc0", GW_DC.into(), 24)?;
        let srv_ns = Netns::create("ttsv")?;
        let srv_port = lab.attach(&srv_ns, SERVER_IF)?;
        srv_ns.ip(&["link", "set", "dev", SERVER_IF, "down"])?;
        srv_ns.ip(&[
            "link",
            "set",
            "dev",
            SERVER_IF,
            "address",
            &SERVER_MAC.to_string(),
        ])?;
        srv_ns.set_sysctl(&format!("net/ipv6/conf/{SERVER_IF}/disable_ipv6"), "1")?;

        lm.console(&["server", "add", &server.0, "--mac", &server.1.to_string()])?;
        let bundle = dir.join("acme-bundle.json");
        lm.console(&[
            "tenant",
            "add",
            "acme",
            "--out",
            &bundle.display().to_string(),
        ])?;

        let po_dir = dir.join("organizer");
        std::fs::create_dir_all(&po_dir)?;
        let config = po_dir.join("organizer.toml");
        let po = Organizer {
            bin: bins.organizer.clone(),
            state_dir: po_dir.join("po-state"),
            config,
            ns: gw_ns.name().to_string(),
        };
        run(
            "procurement-organizer init",
            &mut po.command(&[
                "init",
                "--bundle",
                &bundle.display().to_string(),
                "--dc-address",
                &GW_DC.to_string(),
                "--tunnel-network",
                TUNNEL_NET,
            ]),
        )?;
        // The watcher follows the LM every second (release within a second or two).
        let text = std::fs::read_to_string(&po.config)?;
        if !text.contains("# lm_poll_secs = 3") {
            bail!("organizer.toml no longer has the lm_poll_secs line this test edits:\n{text}");
        }
        std::fs::write(
            &po.config,
            text.replace("# lm_poll_secs = 3", "lm_poll_secs = 1"),
        )?;
        Ok((
            World {
                ca_pem: ca_dir.join("ca.pem"),
                lab,
                lm,
                gw_ns,
                srv_ns,
                gw_port,
                srv_port,
                bins,
                po,
                dir,
            },
            handle,
        ))
    }

    /// Seals `kernel` and `initrd` (written to the run's folder) with the organizer; its JSON
    /// answer (`id`, `chunk_count`, `plaintext_len`, ...).
    pub fn seal(&self, kernel: &[u8], initrd: &[u8], cmdline: &str) -> Result<serde_json::Value> {
        let plain = self.dir.join("plain");
        std::fs::create_dir_all(&plain)?;
        std::fs::write(plain.join("vmlinuz"), kernel)?;
        std::fs::write(plain.join("initrd.img"), initrd)?;
        let path = |f: &str| plain.join(f).display().to_string();
        self.po.json(&[
            "images",
            "seal",
            "--kernel",
            &path("vmlinuz"),
            "--initramfs",
            &path("initrd.img"),
            "--cmdline",
            cmdline,
        ])
    }

    /// Switches the organizer's gateway to IPsec (`gateway.tunnel = "ipsec"`): it starts
    /// charon with kernel-libipsec in its namespace, whose TUN device `ipsec0` holds the
    /// gateway's tunnel address. Call before [`World::start_gateway`].
    pub fn use_ipsec(&self) -> Result<()> {
        let text = std::fs::read_to_string(&self.po.config)?;
        for line in ["# tunnel = \"wireguard\"", "# tun_name = \"po-wg0\""] {
            if !text.contains(line) {
                bail!("organizer.toml no longer has the line {line:?} this lab edits:\n{text}");
            }
        }
        let text = text
            .replace("# tunnel = \"wireguard\"", "tunnel = \"ipsec\"")
            .replace("# tun_name = \"po-wg0\"", "tun_name = \"ipsec0\"");
        std::fs::write(&self.po.config, text)?;
        Ok(())
    }

    /// Starts `procurement-organizer gateway run` in the gateway's namespace and waits for
    /// `gateway ready`.
    pub fn start_gateway(&self, name: &str) -> Result<Arc<Process>> {
        let p = self
            .lab
            .run_in(&self.gw_ns, name, &self.po.command(&["gateway", "run"]))?;
        p.wait_for("gateway ready", Duration::from_secs(30))
            .map_err(|e| anyhow::anyhow!("the gateway did not start: {e}"))?;
        Ok(p)
    }

    /// The per-host iPXE script, fetched from the LM's boot listener in the lease server's
    /// namespace the way the firmware would (with a temporary address, removed after), retried
    /// until the netboot gate opens. Each fetch mints the enrollment token anew.
    pub fn fetch_boot_script(&self, timeout: Duration) -> Result<String> {
        let cidr = format!("{FIRMWARE_ADDR}/24");
        self.srv_ns.link_up(SERVER_IF)?;
        self.srv_ns.ip(&["addr", "add", &cidr, "dev", SERVER_IF])?;
        let path = format!("/boot/{}.ipxe", SERVER_MAC.dashed());
        let lm = SocketAddr::from((LM_ADDR, 8080));
        let end = Instant::now() + timeout;
        let got = loop {
            let answer = self
                .srv_ns
                .run(|| http_get(lm, &path, Duration::from_secs(5)))?;
            match answer {
                Ok((200, body)) => break Ok(String::from_utf8_lossy(&body).into_owned()),
                other if Instant::now() > end => {
                    break Err(anyhow::anyhow!(
                        "GET http://{lm}{path}: no script within {timeout:?}: {:?}",
                        other.map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        self.srv_ns.ip(&["addr", "del", &cidr, "dev", SERVER_IF])?;
        got
    }

    /// Starts the agent in the lease server's namespace with `cmdline` as its kernel command
    /// line, keeping the image it downloads in `image_dir` and storing it under its start-up
    /// key on `disk` (a file standing in for the server's local disk).
    pub fn start_agent(
        &self,
        cmdline: &str,
        image_dir: &Path,
        disk: &Path,
    ) -> Result<Arc<Process>> {
        let mut cmd = Command::new(&self.bins.agent);
        cmd.args(["--not-init", "--cmdline", cmdline, "--ca"])
            .arg(&self.ca_pem)
            .arg("--image-dir")
            .arg(image_dir)
            .arg("--disk")
            .arg(disk);
        self.lab.run_in(&self.srv_ns, "agent", &cmd)
    }
}
