//! Looks into a VM's TPM state folder from the host, to show which TPM it is: a swtpm of its
//! own on the folder (server mode, `not-need-init,startup-clear`: no firmware sends Startup
//! here) answers TPM2_CreatePrimary for an ECC P-256 storage key under the owner hierarchy
//! from a fixed template. The key is derived from the TPM's owner seed, so its public area is
//! the same every time for the same state and different for another TPM. Only while no VM
//! runs on that folder (swtpm locks it).
//!
//! The command and response framing are pure ([`create_primary_command`],
//! [`parse_create_primary`]); [`owner_primary_public`] does IO.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::Process;
use crate::swtpm::{self, SWTPM};

/// TPM2_CreatePrimary(TPM_RH_OWNER, empty password session, ECC P-256 restricted decryption
/// key with AES-128-CFB, SHA-256 name, no PCRs).
pub fn create_primary_command() -> Vec<u8> {
    let mut public = Vec::new();
    for (v, n) in [
        (0x0023u32, 2),   // TPM_ALG_ECC
        (0x000b, 2),      // nameAlg SHA-256
        (0x0003_0072, 4), // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|decrypt
        (0, 2),           // authPolicy: empty
        (0x0006, 2),      // symmetric AES
        (128, 2),         //   128 bits
        (0x0043, 2),      //   CFB
        (0x0010, 2),      // scheme NULL
        (0x0003, 2),      // curve NIST P-256
        (0x0010, 2),      // kdf NULL
        (0, 2),           // unique.x: empty
        (0, 2),           // unique.y: empty
    ] {
        public.extend_from_slice(&u32::to_be_bytes(v)[4 - n..]);
    }
    let mut c = vec![0x80, 0x02, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x31];
    c.extend_from_slice(&0x4000_0001u32.to_be_bytes()); // TPM_RH_OWNER
    c.extend_from_slice(&9u32.to_be_bytes()); // authorization area size
    c.extend_from_slice(&0x4000_0009u32.to_be_bytes()); // TPM_RS_PW
    c.extend_from_slice(&[0, 0, 0, 0, 0]); // nonce empty, attributes 0, hmac empty
    c.extend_from_slice(&[0, 4, 0, 0, 0, 0]); // inSensitive: empty auth and data
    c.extend_from_slice(&(public.len() as u16).to_be_bytes());
    c.extend_from_slice(&public);
    c.extend_from_slice(&[0, 0]); // outsideInfo
    c.extend_from_slice(&[0, 0, 0, 0]); // creationPCR: none
    let len = (c.len() as u32).to_be_bytes();
    c[2..6].copy_from_slice(&len);
    c
}

/// The outPublic (TPMT_PUBLIC bytes) of a CreatePrimary response; an error naming the
/// response code or what is short otherwise.
pub fn parse_create_primary(resp: &[u8]) -> Result<Vec<u8>> {
    let u32_at = |i: usize| -> Result<u32> {
        let b = resp
            .get(i..i + 4)
            .with_context(|| format!("TPM response of {} bytes is truncated", resp.len()))?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let size = u32_at(2)? as usize;
    if size != resp.len() {
        bail!("TPM response says {size} bytes, has {}", resp.len());
    }
    let rc = u32_at(6)?;
    if rc != 0 {
        bail!("TPM2_CreatePrimary failed: response code {rc:#x}");
    }
    // header 10, handle 4, parameterSize 4, then TPM2B_PUBLIC
    let n = resp
        .get(18..20)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .context("TPM response has no outPublic")?;
    let public = resp
        .get(20..20 + n)
        .with_context(|| format!("outPublic of {n} bytes runs past the response"))?;
    Ok(public.to_vec())
}

/// Starts a swtpm on `state` with its socket and log in `run_dir`, asks for the owner
/// storage primary's public area and stops the swtpm again (by PID). On a folder without
/// `tpm2-00.permall` this makes a new TPM there.
pub fn owner_primary_public(state: &Path, run_dir: &Path) -> Result<Vec<u8>> {
    let sock = run_dir.join("tpm-probe.sock");
    swtpm::check_paths("tpm-probe", state, &sock)?;
    std::fs::create_dir_all(state).with_context(|| format!("cannot create {}", state.display()))?;
    let _ = std::fs::remove_file(&sock);
    let mut cmd = Command::new(SWTPM);
    cmd.args(["socket", "--tpm2", "--tpmstate"])
        .arg(format!("dir={}", state.display()))
        .arg("--server")
        .arg(format!("type=unixio,path={}", sock.display()))
        .args(["--flags", "not-need-init,startup-clear"]);
    let log = run_dir.join("tpm-probe.log");
    let p = Process::spawn("tpm-probe", &cmd, None, Some(&log))?;
    let t = Instant::now();
    let table = format!("/proc/{}/net/unix", p.pid());
    while !swtpm::unix_listening(&std::fs::read_to_string(&table).unwrap_or_default(), &sock) {
        if p.exit_status().is_some() || t.elapsed() > swtpm::LISTEN_TIMEOUT {
            bail!("the probe swtpm did not listen:\n{}", p.dump(20));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut s = UnixStream::connect(&sock)
        .with_context(|| format!("cannot connect to {}", sock.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(&create_primary_command())?;
    let mut resp = vec![0u8; 10];
    s.read_exact(&mut resp)
        .context("reading the TPM response header")?;
    let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
    if (10..=4096).contains(&size) {
        resp.resize(size, 0);
        s.read_exact(&mut resp[10..])
            .context("reading the TPM response")?;
    }
    drop(s);
    p.terminate();
    parse_create_primary(&resp)
}
