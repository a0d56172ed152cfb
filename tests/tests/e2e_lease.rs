//! End-to-end: a tenant leases a server and releases it. The operator adds a VM and a tenant
//! (admin socket); the tenant asks for a lease over HTTPS with its client certificate (curl
//! with the credential bundle); the LM wakes the VM, the agent enrolls with the token from its
//! kernel command line, reports its tunnel and transfer phases (skipped: the lease names no
//! gateway), so the server runs and the lease is active, and runs its heartbeats over mutual
//! TLS; the tenant releases the lease;
//! the agent wipes, reports with its certificate and powers off; the LM revokes the
//! certificate (CRL and audit), the server is idle and the lease ended. Needs root, QEMU and
//! `scripts/lab-prepare.sh`; enabled with `--features lab/e2e`.
#![cfg(feature = "e2e")]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::{Artifacts, Lab, LabLm, LabSpec, LmOptions, MacAddr, VmSpec};
use lm_api::{AuditEntry, CreateLeaseResponse, CredentialBundle, LeaseView};

/// One HTTP/1.1 request over the admin socket (the local operator); status and body.
fn admin(sock: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    let mut s = UnixStream::connect(sock).unwrap_or_else(|e| panic!("{}: {e}", sock.display()));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: lm\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let mut rest = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        rest = dechunk(&rest);
    }
    (status, rest)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

fn admin_json<T: serde::de::DeserializeOwned>(sock: &Path, method: &str, path: &str) -> T {
    let (status, body) = admin(sock, method, path, None);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&body)))
}

fn ndjson(sock: &Path, path: &str) -> Vec<AuditEntry> {
    let (status, body) = admin(sock, "GET", path, None);
    assert_eq!(status, 200, "{path}");
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The tenant's side: curl inside the data-centre namespace with the credential bundle.
struct Tenant {
    dir: PathBuf,
    url: String,
}

impl Tenant {
    fn new(dir: PathBuf, b: &CredentialBundle) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), &b.ca_pem).unwrap();
        std::fs::write(dir.join("cert.pem"), &b.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &b.key_pem).unwrap();
        Self {
            dir,
            url: b.api_url.clone(),
        }
    }

    fn post(&self, lab: &Lab, path: &str, body: &str) -> (u16, String) {
        let f = |n: &str| self.dir.join(n).to_string_lossy().into_owned();
        let out = lab
            .netns()
            .exec(
                "curl",
                &[
                    "-sS",
                    "--max-time",
                    "20",
                    "--cacert",
                    &f("ca.pem"),
                    "--cert",
                    &f("cert.pem"),
                    "--key",
                    &f("key.pem"),
                    "-H",
                    "content-type: application/json",
                    "-d",
                    body,
                    "-w",
                    "\n%{http_code}",
                    &format!("{}{path}", self.url),
                ],
            )
            .expect("curl");
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    let padded = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_string()
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).unwrap())
        .collect()
}

/// A lab with the LM, one registered VM added as a server, tenant `acme`, and a lease for one
/// server asked for by the tenant over mutual TLS.
struct Leased {
    lab: Lab,
    vm: lab::VmHandle,
    lm: LabLm,
    sock: PathBuf,
    tenant: Tenant,
    lease: lm_api::LeaseId,
}

fn lease_one_vm(name: &str, mac: MacAddr) -> Leased {
    let art = Artifacts::locate().expect("artifacts");
    let lab = Lab::start(LabSpec::default()).expect("lab");
    let vm = lab
        .register_vm(VmSpec::new(name, mac))
        .expect("register vm");
    let lm = LabLm::start(&lab, &art, &LmOptions::default()).expect("lease manager");
    let sock = lm.state_dir().join("admin.sock");
    lm.console(&["server", "add", name, "--mac", &mac.to_string()])
        .expect("server add");
    let (status, body) = admin(&sock, "POST", "/v1/tenants", Some(r#"{"name":"acme"}"#));
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let bundle: CredentialBundle = serde_json::from_slice(&body).expect("bundle");
    let tenant = Tenant::new(lab.log_dir().join("tenant-acme"), &bundle);
    // The tenant asks for one server for ten minutes, over mutual TLS.
    let (status, body) = tenant.post(&lab, "/v1/leases", r#"{"count":1,"duration_s":600}"#);
    assert_eq!(status, 201, "{body}");
    let created: CreateLeaseResponse = serde_json::from_str(&body).expect("lease");
    assert_eq!(created.granted, 1, "{body}");
    Leased {
        lab,
        vm,
        lm,
        sock,
        tenant,
        lease: created.lease.id,
    }
}

#[test]
fn a_tenant_leases_a_server_the_agent_enrolls_and_wipes_on_release() {
    let t0 = Instant::now();
    let Leased {
        lab,
        vm,
        lm,
        sock,
        tenant,
        lease,
    } = lease_one_vm("vm1", MacAddr([0x52, 0x54, 0x00, 0x77, 0x05, 0x01]));
    println!(
        "[{:>6.2}s] lease {lease} granted",
        t0.elapsed().as_secs_f64()
    );

    // The LM wakes vm1; its agent enrolls with the token from the boot script.
    let line = vm
        .wait_for(
            &format!("AGENT-ENROLLED lease={lease}"),
            Duration::from_secs(240),
        )
        .unwrap_or_else(|e| panic!("no enrollment: {e}\n{}", lab.dump(60)));
    // The serial comes from the LM: the console line may be cut by kernel messages printed in
    // the middle of it (two VMs boot at once in the suite), or still be arriving when the
    // marker matches, so its `serial=` may be partial. What the line shows must be a prefix.
    let serial: String = wait_until(
        "the server's certificate serial",
        Duration::from_secs(10),
        || {
            let v: LeaseView = admin_json(&sock, "GET", &format!("/v1/leases/{lease}"));
            v.servers.first().and_then(|s| s.cert_serial.clone())
        },
    );
    if let Some(shown) = line
        .text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("serial="))
    {
        assert!(
            serial.starts_with(shown),
            "the console shows serial {shown}, the LM {serial}"
        );
    }
    println!(
        "[{:>6.2}s] enrolled, certificate {serial}",
        t0.elapsed().as_secs_f64()
    );
    vm.wait_for("AGENT-READY server=vm1", Duration::from_secs(30))
        .expect("ready");
    // Ready comes after the agent's tunnel and transfer reports were answered (skipped: the
    // lease names no gateway), so the server runs and the lease is active.
    let view: LeaseView = admin_json(&sock, "GET", &format!("/v1/leases/{lease}"));
    let server = &view.servers[0];
    assert_eq!(server.name, "vm1");
    assert_eq!(server.state, "running", "{view:?}");
    assert_eq!(view.state, lm_api::LeaseState::Active, "{view:?}");
    assert_eq!(server.cert_serial.as_deref(), Some(serial.as_str()));
    let events = ndjson(&sock, &format!("/v1/leases/{lease}/events"));
    assert!(
        events
            .iter()
            .any(|e| e.action == "agent.enrolled" && e.detail.contains(&serial)),
        "{events:#?}"
    );
    for (action, detail) in [
        ("server.state", "enrolling -> tunneling"),
        ("server.state", "tunneling -> transferring"),
        ("server.state", "transferring -> running"),
        ("lease.state", "provisioning -> active"),
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.action == action && e.detail == detail),
            "no {action} {detail}: {events:#?}"
        );
    }
    let shown = lm.show("vm1").expect("show");
    for phase in [lm_api::AgentPhase::Tunnel, lm_api::AgentPhase::Transfer] {
        assert!(
            shown.timeline.iter().any(|t| matches!(
                &t.kind,
                lm_api::EventKind::AgentReport { phase: p, ok: true, .. } if *p == phase
            )),
            "no {} ok report in the timeline: {shown:?}",
            phase.as_str()
        );
    }
    // A heartbeat over mutual TLS went through (the LM refuses anonymous ones now).
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !vm.current()
            .expect("boot")
            .console()
            .lines_from(0)
            .iter()
            .any(|l| l.text.contains("heartbeat") && l.text.contains("failed")),
        "a heartbeat failed:\n{}",
        lab.dump(40)
    );

    // The tenant releases; the agent hears it at its next heartbeat, wipes and powers off.
    let (status, body) = tenant.post(&lab, &format!("/v1/leases/{lease}/release"), "");
    assert_eq!(status, 200, "{body}");
    vm.wait_for(
        &format!("AGENT-WIPED lease={lease}"),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("no wipe: {e}\n{}", lab.dump(60)));
    let wipe_ok = vm
        .wait_for("AGENT-PHASE wipe ok", Duration::from_secs(5))
        .expect("wipe ok marker");
    assert!(
        wipe_ok.text.contains("reported=yes") && wipe_ok.text.contains("client_cert=true"),
        "the wipe report did not go through with the agent certificate: {}",
        wipe_ok.text
    );
    vm.wait_for("AGENT-POWEROFF", Duration::from_secs(30))
        .expect("power-off marker");
    println!("[{:>6.2}s] wiped, powered off", t0.elapsed().as_secs_f64());

    let view = wait_until("the lease to end", Duration::from_secs(30), || {
        let v: LeaseView = admin_json(&sock, "GET", &format!("/v1/leases/{lease}"));
        (v.state == lm_api::LeaseState::Ended).then_some(v)
    });
    assert!(view.ended_ms.is_some(), "{view:?}");
    let v = lm.show("vm1").expect("show");
    assert_eq!(v.state.name(), "idle", "{v:?}");
    // The operator console shows the lease with its timeline.
    let shown = lm
        .console(&["lease", "show", &lease.to_string()])
        .expect("lease show");
    for want in [
        "ended",
        "lease.created",
        "agent.enrolled",
        "cert.revoked",
        "vm1",
    ] {
        assert!(shown.contains(want), "`lease show` lacks {want}:\n{shown}");
    }
    println!("{shown}");

    // The certificate is revoked: in the CRL and in the audit log (after the wipe report).
    let (status, crl) = admin(&sock, "GET", "/v1/ca/crl", None);
    assert_eq!(status, 200);
    let serial_der = hex_bytes(&serial);
    assert!(
        crl.windows(serial_der.len()).any(|w| w == serial_der),
        "serial {serial} not in the CRL"
    );
    let audit: Vec<AuditEntry> = admin_json(&sock, "GET", "/v1/audit");
    assert!(
        audit
            .iter()
            .any(|e| e.action == "cert.revoked" && e.detail.contains(&serial)),
        "no cert.revoked for {serial}: {audit:#?}"
    );
    println!(
        "[{:>6.2}s] lease {lease} ended, certificate {serial} revoked",
        t0.elapsed().as_secs_f64()
    );
}

/// Crash safety with a real server: the LM is killed (SIGKILL) while the woken VM is booting
/// the agent, and started again; the boot goes on, the agent enrolls with the token it got
/// before the crash, and the lease is released normally.
#[test]
fn a_server_woken_before_a_crash_of_the_lease_manager_enrolls_after_it() {
    let t0 = Instant::now();
    let Leased {
        lab,
        vm,
        mut lm,
        tenant,
        lease,
        ..
    } = lease_one_vm("vm2", MacAddr([0x52, 0x54, 0x00, 0x77, 0x05, 0x02]));

    // The kernel is running the agent (boot script, kernel and initramfs fetched): crash.
    vm.wait_for("AGENT-PHASE init start", Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("the agent did not start: {e}\n{}", lab.dump(60)));
    lm.crash_and_restart(&lab, 0).expect("restart");
    println!(
        "[{:>6.2}s] the Lease Manager was killed and restarted while vm2 booted",
        t0.elapsed().as_secs_f64()
    );
    let sock = lm.state_dir().join("admin.sock");
    vm.wait_for(
        &format!("AGENT-ENROLLED lease={lease}"),
        Duration::from_secs(180),
    )
    .unwrap_or_else(|e| panic!("no enrollment after the crash: {e}\n{}", lab.dump(80)));
    println!(
        "[{:>6.2}s] enrolled after the crash",
        t0.elapsed().as_secs_f64()
    );
    let (status, body) = tenant.post(&lab, &format!("/v1/leases/{lease}/release"), "");
    assert_eq!(status, 200, "{body}");
    vm.wait_for("AGENT-POWEROFF", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("no power-off: {e}\n{}", lab.dump(60)));
    let view = wait_until("the lease to end", Duration::from_secs(30), || {
        let v: LeaseView = admin_json(&sock, "GET", &format!("/v1/leases/{lease}"));
        (v.state == lm_api::LeaseState::Ended).then_some(v)
    });
    assert!(view.servers.is_empty(), "{view:?}");
    let verify: lm_api::AuditVerification = admin_json(&sock, "GET", "/v1/audit/verify");
    assert_eq!(verify.broken, None);
}
