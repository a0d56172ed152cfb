//! `lease-manager server ...`: the server inventory, and following one server's boot. IO
//! (admin socket, stdout); rendering in [`super::render`].

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use lm_api::{AddServer, MacAddr, ServerView};

use super::output::{out, out_line, print_json};
use super::{AdminClient, render};
use crate::api::WakeStarted;

/// `lease-manager server ...`
#[derive(Debug, Subcommand)]
pub enum ServerCmd {
    /// Add a server to the inventory (idle until woken).
    Add {
        /// Inventory name (letters, digits, '-', '_', '.').
        name: String,
        /// MAC of the NIC it network-boots from.
        #[arg(long)]
        mac: MacAddr,
        /// Fixed DHCP address for it (otherwise the dynamic pool).
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// SecureOn password for its NIC, written like a MAC.
        #[arg(long)]
        wol_password: Option<MacAddr>,
        #[arg(long)]
        json: bool,
    },
    /// List the servers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one server (name or MAC) with its facts and boot timeline.
    Show {
        server: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a server (refused while it is booting; reset it first).
    Remove { server: String },
    /// Wake a server over Wake-on-LAN and network-boot it.
    Wake {
        server: String,
        /// Follow the boot until the agent is up (or it fails), printing the timeline.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// Return a server to idle (closes its netboot gate).
    Reset {
        server: String,
        #[arg(long)]
        json: bool,
    },
    /// Follow a server live: print each new timeline event until Ctrl-C.
    Watch { server: String },
}

/// Runs one `server` command.
pub async fn run(client: &AdminClient, cmd: ServerCmd) -> anyhow::Result<()> {
    match cmd {
        ServerCmd::Add {
            name,
            mac,
            ip,
            wol_password,
            json,
        } => {
            let body = serde_json::to_vec(&AddServer {
                name,
                mac,
                reserved_ip: ip,
                wol_password,
            })?;
            let v: ServerView = client
                .call("POST", lm_api::paths::SERVERS, Some(body))
                .await?;
            if json {
                print_json(&v)?
            } else {
                out_line(&format!("added {} ({}), idle", v.name, v.mac))?;
            }
        }
        ServerCmd::List { json } => {
            let v: Vec<ServerView> = client.call("GET", lm_api::paths::SERVERS, None).await?;
            if json {
                print_json(&v)?
            } else {
                out(&render::server_list(&v))?
            }
        }
        ServerCmd::Show { server, json } => {
            let v = show(client, &server).await?;
            if json {
                print_json(&v)?
            } else {
                out(&render::server_show(&v))?
            }
        }
        ServerCmd::Remove { server } => {
            let () = client
                .call("DELETE", &server_path(&server), None)
                .await
                .map(|_: Option<()>| ())?;
            out_line(&format!("removed {server}"))?;
        }
        ServerCmd::Wake {
            server,
            wait,
            timeout,
            json,
        } => {
            let w: WakeStarted = client
                .call("POST", &format!("{}/wake", server_path(&server)), None)
                .await?;
            if !wait {
                if json {
                    print_json(&w)?
                } else {
                    out_line(&format!("waking {} (boot {})", w.server, w.boot_id))?
                }
                return Ok(());
            }
            if !json {
                out_line(&format!(
                    "waking {} (boot {}), following the boot...",
                    w.server, w.boot_id
                ))?;
            }
            let v = follow(client, &server, Duration::from_secs(timeout), !json, |v| {
                !matches!(v.state.name(), "waking" | "booting")
            })
            .await?;
            if json {
                print_json(&v)?
            } else {
                out(&format!("\n{}", render::server_show(&v)))?
            }
            if v.state.name() != "agent-up" {
                anyhow::bail!("{} did not come up: {}", v.name, v.state.name());
            }
        }
        ServerCmd::Reset { server, json } => {
            let v: ServerView = client
                .call("POST", &format!("{}/reset", server_path(&server)), None)
                .await?;
            if json {
                print_json(&v)?
            } else {
                out_line(&format!("{} is {}", v.name, v.state.name()))?
            }
        }
        ServerCmd::Watch { server } => {
            follow(
                client,
                &server,
                Duration::from_secs(u64::MAX / 4),
                true,
                |_| false,
            )
            .await?;
        }
    }
    Ok(())
}

fn server_path(key: &str) -> String {
    // Names are [A-Za-z0-9._-] and MACs hex with ':'; both are safe in a path segment.
    format!("{}/{}", lm_api::paths::SERVERS, key)
}

async fn show(client: &AdminClient, key: &str) -> anyhow::Result<ServerView> {
    client
        .call("GET", &server_path(key), None)
        .await
        .with_context(|| format!("cannot show server {key}"))
}

/// Polls the server, printing new timeline entries, until `done` says so or time runs out.
async fn follow(
    client: &AdminClient,
    key: &str,
    timeout: Duration,
    print: bool,
    done: impl Fn(&ServerView) -> bool,
) -> anyhow::Result<ServerView> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = 0usize;
    let mut state = String::new();
    loop {
        let v = show(client, key).await?;
        if print {
            let first = v.timeline.first().map(|e| e.at_ms).unwrap_or(0);
            for e in v.timeline.iter().skip(seen) {
                out_line(&render::timeline_line(e, first))?;
            }
            if v.state.name() != state {
                out_line(&format!("  state: {}", v.state.name()))?;
                state = v.state.name().to_string();
            }
        }
        seen = v.timeline.len().max(seen);
        if done(&v) {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "timed out after {} s; {} is {}",
                timeout.as_secs(),
                v.name,
                v.state.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
