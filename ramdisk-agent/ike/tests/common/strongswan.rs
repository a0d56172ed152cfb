//! A strongSwan charon responder in its own network namespace, for interop tests
//! (command lines from LAB-NOTES: private /run, STRONGSWAN_CONF, kernel-libipsec).
//! Creates namespaces `ikei<pid>` (our side) and `iker<pid>` (charon) joined by a veth pair;
//! everything is deleted and charon is stopped by its PID on drop.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHARON: &str = "/usr/lib/ipsec/charon";
pub const RESPONDER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// Why the test cannot run here, if it cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces)".into());
    }
    for p in [
        CHARON,
        "/usr/sbin/swanctl",
        "/usr/sbin/ip",
        "/usr/bin/unshare",
    ] {
        if !Path::new(p).exists() {
            return Some(format!("{p} missing: run scripts/setup.sh"));
        }
    }
    None
}

pub struct Lab {
    pub ns_i: String,
    pub ns_r: String,
    pub dir: tempfile::TempDir,
    charon: Option<Child>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    /// Namespaces, addresses (`initiators` on our side), charon started with `swanctl_conf`
    /// and `charon_extra` (strongswan.conf lines inside `charon { }`).
    #[allow(dead_code)] // each test file includes this module; not all use every constructor
    pub fn start(initiators: &[Ipv4Addr], swanctl_conf: &str, charon_extra: &str) -> Lab {
        Lab::start_with(initiators, swanctl_conf, charon_extra, "", &[])
    }

    /// Like [`Lab::start`], with more filelog levels (e.g. `chd = 4` prints child SA keys) and
    /// `files` (path relative to swanctl.conf, content) written before swanctl loads: since
    /// strongSwan 5.7.2 `x509/`, `x509ca/` and `private/` are read next to the file it loads.
    pub fn start_with(
        initiators: &[Ipv4Addr],
        swanctl_conf: &str,
        charon_extra: &str,
        log_levels: &str,
        files: &[(&str, &str)],
    ) -> Lab {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = format!("{}{n}", std::process::id() % 100_000);
        let (ns_i, ns_r) = (format!("ikei{pid}"), format!("iker{pid}"));
        let (vi, vr) = (format!("ikvi{pid}"), format!("ikvr{pid}"));
        let dir = tempfile::Builder::new()
            .prefix("ike-interop")
            .tempdir()
            .expect("tempdir");
        ip(&["netns", "add", &ns_i]);
        let mut lab = Lab {
            ns_i,
            ns_r,
            dir,
            charon: None,
        };
        ip(&["netns", "add", &lab.ns_r]);
        ip(&["link", "add", &vi, "type", "veth", "peer", "name", &vr]);
        ip(&["link", "set", &vi, "netns", &lab.ns_i]);
        ip(&["link", "set", &vr, "netns", &lab.ns_r]);
        for a in initiators {
            ip(&[
                "-n",
                &lab.ns_i,
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                &vi,
            ]);
        }
        ip(&[
            "-n",
            &lab.ns_r,
            "addr",
            "add",
            &format!("{RESPONDER}/24"),
            "dev",
            &vr,
        ]);
        for (ns, dev) in [(&lab.ns_i, &vi), (&lab.ns_r, &vr)] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        for (rel, content) in files {
            let p = lab.dir.path().join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("create swanctl credential folder");
            }
            std::fs::write(&p, content).expect("write swanctl credential");
        }
        lab.start_charon(swanctl_conf, charon_extra, log_levels);
        lab
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("charon.log")
    }

    /// charon's PID (`ip netns exec`, `unshare` and `sh -c "... && exec"` all exec it).
    #[allow(dead_code)]
    pub fn charon_pid(&self) -> Option<u32> {
        self.charon.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn start_charon(&mut self, swanctl_conf: &str, extra: &str, levels: &str) {
        let d = self.dir.path();
        let vici = format!("unix://{}", d.join("charon.vici").display());
        let conf = format!(
            "charon {{\n  load_modular = no\n  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey \
             revocation constraints aes sha1 sha2 hmac gcm kdf kernel-libipsec \
             kernel-netlink socket-default vici\n  {extra}\n  filelog {{ f {{ path = {log}\n    \
             time_format = %T\n    flush_line = yes\n    default = 1\n    ike = 2\n    enc = 1\n    {levels}\n  }} }}\n  plugins {{ \
             vici {{ socket = {vici} }} }}\n}}\n",
            log = self.log_path().display()
        );
        std::fs::write(d.join("strongswan.conf"), conf).expect("write strongswan.conf");
        std::fs::write(d.join("swanctl.conf"), swanctl_conf).expect("write swanctl.conf");
        let sh = format!(
            "mount -t tmpfs none /run && exec env STRONGSWAN_CONF={} {CHARON}",
            d.join("strongswan.conf").display()
        );
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns_r,
                "unshare",
                "-m",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &sh])
            .stdout(Stdio::null())
            .stderr(File::create(d.join("charon.stderr")).expect("stderr file"))
            .spawn()
            .expect("start charon");
        self.charon = Some(child);
        let sock = d.join("charon.vici");
        let until = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                Instant::now() < until,
                "charon did not open {}: {}",
                sock.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = Command::new("swanctl")
            .args(["--load-all", "--file"])
            .arg(d.join("swanctl.conf"))
            .args(["--uri", &vici])
            .output()
            .expect("run swanctl");
        eprintln!(
            "swanctl --load-all: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
        assert!(
            out.status.success(),
            "swanctl --load-all: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A UDP socket bound to `addr` inside our namespace (opened on a thread that entered it).
    pub fn bind(&self, addr: SocketAddr) -> UdpSocket {
        let ns = File::open(format!("/run/netns/{}", self.ns_i)).expect("open netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: plain syscall on a valid fd; only this thread changes namespace.
                let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                UdpSocket::bind(addr).expect("bind in namespace")
            })
            .join()
            .expect("netns thread")
        })
    }

    /// Waits until the charon log holds `needle` at least `count` times.
    pub fn wait_log(&self, needle: &str, count: usize, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            if self.log().matches(needle).count() >= count {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.charon.take() {
            let pid = c.id() as libc::pid_t;
            // SAFETY: signalling our own child by its PID.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let until = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.ns_i, &self.ns_r] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if std::thread::panicking() {
            eprintln!("--- charon log ---\n{}", self.log());
        }
    }
}
