//! Benchmarks of the Lease Manager's network-boot services against reference servers, each pair
//! measured in the same run on a namespace pair joined by a veth (server 10.88.0.1/16, client
//! 10.88.0.2/16). `lab bench` runs them; `scripts/bench.sh` installs the reference tools.
//! Results go to `docs/benchmarks.md` by hand, with the command. [`lease`] times the whole lease
//! in the QEMU lab against the floor of the same lab instead.

pub mod dhcp;
pub mod dhcp_latency;
pub mod fleet;
pub mod image;
pub mod ipsec;
pub mod lease;
pub mod perfdhcp;
pub mod report;
pub mod tftp;
pub mod tunnel;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::netns::{self, Netns};

/// The server/client namespace pair of one measurement; deleted on drop.
#[derive(Debug)]
pub struct Pair {
    pub server: Netns,
    pub client: Netns,
}

/// Server side address, client side address.
pub const SERVER_ADDR: &str = "10.88.0.1";
pub const CLIENT_ADDR: &str = "10.88.0.2";

impl Pair {
    pub fn new() -> Result<Self> {
        let server = Netns::create("bs")?;
        let client = Netns::create("bc")?;
        netns::veth(&server, "bs0", &client, "bc0")?;
        server.add_addr("bs0", SERVER_ADDR.parse()?, 16)?;
        client.add_addr("bc0", CLIENT_ADDR.parse()?, 16)?;
        server.link_up("bs0")?;
        client.link_up("bc0")?;
        Ok(Self { server, client })
    }
}

/// A scratch folder under `target/bench/<name>`, emptied first.
pub fn scratch(name: &str) -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("target/bench");
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// `ours / reference` as text.
pub fn ratio(ours: f64, reference: f64) -> String {
    if reference > 0.0 {
        format!("{:.2}x", ours / reference)
    } else {
        "-".into()
    }
}

/// `lease-manager bench-pxe` on the server side of a [`Pair`]: DHCP for 10.88.0.0/16 with a
/// pool from 10.88.1.0 to `pool_end`, and TFTP of `tftp_root` when given.
pub fn ours(lm: &Path, state: &Path, pool_end: &str, tftp_root: Option<&Path>) -> Command {
    let mut c = Command::new(lm);
    c.args([
        "bench-pxe",
        "--interface",
        "bs0",
        "--address",
        SERVER_ADDR,
        "--network",
        "10.88.0.0/16",
    ])
    .args([
        "--pool-start",
        "10.88.1.0",
        "--pool-end",
        pool_end,
        "--state-dir",
    ])
    .arg(state);
    if let Some(root) = tftp_root {
        c.arg("--tftp-root").arg(root);
    }
    c
}
