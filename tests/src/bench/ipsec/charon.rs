//! A strongSwan charon (kernel-libipsec: ESP in userspace over a TUN device, UDP 4500) inside a
//! namespace, configured from files in its own folder, as LAB-NOTES and agent-ike's interop
//! tests run it: a private /run (its pid file is fixed at /run/charon.pid), `STRONGSWAN_CONF`,
//! a vici socket in the folder for `swanctl`. Stopped by its PID (the [`Process`] guard) on drop.
//!
//! Does IO.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::netns::Netns;
use crate::process::Process;

pub const CHARON: &str = "/usr/lib/ipsec/charon";

/// The plugins charon loads: x509 certificates with P-256 keys, AES-GCM (openssl), x25519,
/// kernel-libipsec (the hosts here have no kernel ESP).
const PLUGINS: &str = "random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints \
                       aes sha1 sha2 hmac gcm kdf kernel-libipsec kernel-netlink socket-default vici";

/// A running charon.
#[derive(Debug)]
pub struct Charon {
    dir: PathBuf,
    process: Process,
}

impl Charon {
    /// Writes `strongswan.conf`, `swanctl.conf` and `files` (path relative to the folder,
    /// content: `x509/`, `x509ca/`, `private/`) into `dir`, starts charon in `ns` and loads the
    /// configuration with `swanctl --load-all`.
    pub fn start(
        ns: &Netns,
        dir: &Path,
        swanctl_conf: &str,
        files: &[(&str, &[u8])],
    ) -> Result<Charon> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let vici = dir.join("charon.vici");
        let _ = std::fs::remove_file(&vici);
        let conf = format!(
            "charon {{\n  load_modular = no\n  load = {PLUGINS}\n  install_virtual_ip = no\n  \
             filelog {{ f {{ path = {log}\n    time_format = %T\n    flush_line = yes\n    default = 1\n    ike = 1\n  }} }}\n  \
             plugins {{ vici {{ socket = unix://{vici} }} }}\n}}\n",
            log = dir.join("charon.log").display(),
            vici = vici.display()
        );
        std::fs::write(dir.join("strongswan.conf"), conf)?;
        std::fs::write(dir.join("swanctl.conf"), swanctl_conf)?;
        for (rel, content) in files {
            let p = dir.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, content).with_context(|| format!("cannot write {}", p.display()))?;
        }
        let sh = format!(
            "mount -t tmpfs none /run && exec env STRONGSWAN_CONF={} {CHARON}",
            dir.join("strongswan.conf").display()
        );
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c", &sh]);
        let process = Process::spawn(
            &format!("charon-{}", ns.name()),
            &c,
            Some(ns.name()),
            Some(&dir.join("charon.stdout")),
        )?;
        let charon = Charon {
            dir: dir.to_path_buf(),
            process,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while !vici.exists() {
            if Instant::now() > until || !charon.process.is_running() {
                bail!(
                    "charon in {} opened no {} within 10 s\n{}",
                    ns.name(),
                    vici.display(),
                    charon.process.dump(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        charon.swanctl(&[
            "--load-all",
            "--file",
            &dir.join("swanctl.conf").to_string_lossy(),
        ])?;
        Ok(charon)
    }

    /// Runs `swanctl ARGS --uri <this charon's vici socket>`; its stdout.
    pub fn swanctl(&self, args: &[&str]) -> Result<String> {
        let uri = format!("unix://{}", self.dir.join("charon.vici").display());
        let out = Command::new("swanctl")
            .args(args)
            .args(["--uri", &uri])
            .output()
            .context("cannot run swanctl (scripts/setup.sh installs strongswan-swanctl)")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "swanctl {} failed ({}): {}{}\ncharon log: {}",
                args.join(" "),
                out.status,
                text,
                String::from_utf8_lossy(&out.stderr),
                self.dir.join("charon.log").display()
            );
        }
        Ok(text)
    }

    /// The process guard (PID, liveness).
    pub fn process(&self) -> &Process {
        &self.process
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        self.process.terminate();
    }
}
