//! The Lease Manager inside the lab: locating the built artifacts (`scripts/lab-prepare.sh`
//! writes them to `target/lab`), writing an LM config for the data-centre namespace, starting
//! `lease-manager serve` there, and driving its console. IO.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;

use crate::lab::Lab;
use crate::process::Process;

/// What `scripts/lab-prepare.sh` built.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// `target/lab`.
    pub dir: PathBuf,
    /// The workspace's `target/debug` (lease-manager, initramfs-build).
    pub bin_dir: PathBuf,
}

impl Artifacts {
    /// From `$LAB_ARTIFACTS`, else `<workspace>/target/lab`; checks every file is there.
    pub fn locate() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let dir = std::env::var_os("LAB_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/lab"));
        let bin_dir = std::env::var_os("LAB_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/debug"));
        let a = Self { dir, bin_dir };
        for p in [
            a.kernel(),
            a.initrd(),
            a.ca_dir().join("ca.pem"),
            a.ca_dir().join("ca.key"),
            a.lease_manager(),
        ] {
            if !p.exists() {
                bail!(
                    "lab artifact {} is missing: run scripts/lab-prepare.sh first",
                    p.display()
                );
            }
        }
        Ok(a)
    }

    pub fn kernel(&self) -> PathBuf {
        self.dir.join("boot/vmlinuz")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("boot/initrd.img")
    }
    /// The lab CA whose certificate is pinned in the initramfs.
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }
    pub fn lease_manager(&self) -> PathBuf {
        self.bin_dir.join("lease-manager")
    }
}

/// Knobs of the LM in a test.
#[derive(Debug, Clone)]
pub struct LmOptions {
    /// Wake attempts before `unreachable`.
    pub wake_attempts: u32,
    /// Wait for the DHCPDISCOVER after the first attempt (each retry waits 1.5x longer).
    pub wake_confirm_ms: u64,
    /// UEFI boot file for plain PXE ROMs.
    pub uefi_file: String,
    /// Agent heartbeat interval (`[api] heartbeat_secs`).
    pub heartbeat_secs: u32,
    /// More TOML appended to the config (whole tables, e.g. `[leases]`).
    pub extra_toml: String,
    /// The lease-manager binary (default: the artifacts' debug build).
    pub bin: Option<PathBuf>,
}

impl Default for LmOptions {
    fn default() -> Self {
        // A TCG VM sends its first DISCOVER ~2.5 s (SeaBIOS) or ~10 s (OVMF) after power-on.
        Self {
            wake_attempts: 3,
            wake_confirm_ms: 30_000,
            uefi_file: "snponly.efi".into(),
            heartbeat_secs: 2,
            extra_toml: String::new(),
            bin: None,
        }
    }
}

/// A running Lease Manager in the lab's data-centre namespace.
#[derive(Debug)]
pub struct LabLm {
    process: Arc<Process>,
    config: PathBuf,
    state_dir: PathBuf,
    bin: PathBuf,
}

impl LabLm {
    /// Writes the config (state in `<lab log dir>/lm-state`, the lab CA copied in), starts
    /// `lease-manager serve` in the lab and waits for `lease-manager ready`.
    pub fn start(lab: &Lab, art: &Artifacts, opts: &LmOptions) -> Result<Self> {
        let state_dir = lab.log_dir().join("lm-state");
        let ca = state_dir.join("ca");
        std::fs::create_dir_all(&ca)?;
        std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700))?;
        for f in ["ca.pem", "ca.key"] {
            std::fs::copy(art.ca_dir().join(f), ca.join(f))
                .with_context(|| format!("copying the lab CA's {f}"))?;
        }
        std::fs::set_permissions(ca.join("ca.key"), std::fs::Permissions::from_mode(0o600))?;
        let (addr, prefix) = lab.spec().ipv4;
        let o = addr.octets();
        let config = lab.log_dir().join("lease-manager.toml");
        let text = format!(
            r#"# written by the lab (tests/src/lm.rs)
state_dir = "{state}"

[provisioning]
interface = "{br}"
address = "{addr}"

[api]
heartbeat_secs = {heartbeat}

[boot]
kernel = "{kernel}"
initrd = "{initrd}"
tftp_root = "/usr/lib/ipxe"

[wake]
attempts = {attempts}
confirm_timeout_ms = {confirm}

[dhcp]
server_address = "{addr}"
interface = "{br}"

[dhcp.boot]
uefi_file = "{uefi}"

[[dhcp.subnets]]
network = "{n0}.{n1}.{n2}.0/{prefix}"
pools = [{{ start = "{n0}.{n1}.{n2}.100", end = "{n0}.{n1}.{n2}.199" }}]
"#,
            state = state_dir.display(),
            br = lab.bridge(),
            kernel = art.kernel().display(),
            initrd = art.initrd().display(),
            attempts = opts.wake_attempts,
            confirm = opts.wake_confirm_ms,
            uefi = opts.uefi_file,
            heartbeat = opts.heartbeat_secs,
            n0 = o[0],
            n1 = o[1],
            n2 = o[2],
        );
        let text = format!("{text}\n{}\n", opts.extra_toml);
        std::fs::write(&config, text)?;
        let bin = opts.bin.clone().unwrap_or_else(|| art.lease_manager());
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        let process = lab.run_in_dc("lease-manager", &cmd)?;
        process
            .wait_for("lease-manager ready", Duration::from_secs(30))
            .map_err(|e| anyhow::anyhow!("the Lease Manager did not start: {e}"))?;
        Ok(Self {
            process,
            config,
            state_dir,
            bin,
        })
    }

    /// Kills the daemon with SIGKILL (no shutdown of any kind: a crash) and starts it again
    /// on the same state directory; waits for `lease-manager ready`.
    pub fn crash_and_restart(&mut self, lab: &Lab, n: u32) -> Result<()> {
        // SAFETY: kill(2) on the PID of a child this harness started and still holds.
        unsafe { libc::kill(self.process.pid() as libc::pid_t, libc::SIGKILL) };
        if self.process.wait_exit(Duration::from_secs(10)).is_none() {
            bail!("the Lease Manager did not die of SIGKILL");
        }
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        let process = lab.run_in_dc(&format!("lease-manager-restart{n}"), &cmd)?;
        process
            .wait_for("lease-manager ready", Duration::from_secs(30))
            .map_err(|e| anyhow::anyhow!("the Lease Manager did not restart: {e}"))?;
        self.process = process;
        Ok(())
    }

    /// The daemon's process (log lines, markers).
    pub fn process(&self) -> &Arc<Process> {
        &self.process
    }

    /// The state directory (database, CA, admin socket).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// A console command line (`lease-manager --config <cfg> ...`), ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("NO_COLOR", "1");
        c
    }

    /// Runs a console command; its stdout on success, an error with stderr otherwise.
    pub fn console(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command(args)
            .output()
            .with_context(|| format!("running lease-manager {}", args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "lease-manager {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                stdout
            );
        }
        Ok(stdout)
    }

    /// Runs a console command with `--json` and decodes its answer.
    pub fn console_json<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T> {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.console(&a)?;
        serde_json::from_str(&out).with_context(|| {
            format!(
                "decoding the answer of lease-manager {}: {out}",
                a.join(" ")
            )
        })
    }

    /// The server view (`server show NAME --json`).
    pub fn show(&self, name: &str) -> Result<lm_api::ServerView> {
        self.console_json(&["server", "show", name])
    }

    /// Polls `server show` until `done` holds or `timeout` passes.
    pub fn wait_server(
        &self,
        name: &str,
        timeout: Duration,
        done: impl Fn(&lm_api::ServerView) -> bool,
    ) -> Result<lm_api::ServerView> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let v = self.show(name)?;
            if done(&v) {
                return Ok(v);
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "timed out after {timeout:?} waiting on server {name}; it is {}",
                    v.state.name()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
