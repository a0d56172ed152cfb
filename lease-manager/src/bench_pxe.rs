//! `lease-manager bench-pxe`: the product's DHCP server (same engine, same sled lease store and
//! group commit) and TFTP server, with a netboot gate that is open for every MAC, for load
//! generators such as perfdhcp that invent thousands of MACs. For benchmarks only: a real
//! Lease Manager answers only the servers it is booting.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use lm_api::BootId;
use pxe::dhcp::{DhcpConfig, DhcpSection, DhcpServer, PoolSection};
use pxe::tftp::{TftpOptions, TftpService};
use pxe::{HostBoot, NullSink, StaticDirectory};

use crate::dhcp_store::SledLeaseStore;
use crate::store::Store;

/// Arguments of `bench-pxe`.
#[derive(Debug, clap::Args)]
pub struct BenchPxe {
    /// Empty folder for the lease database.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Interface to bind DHCP to.
    #[arg(long)]
    pub interface: String,
    /// The server's address (inside --network).
    #[arg(long)]
    pub address: Ipv4Addr,
    /// The subnet, like 10.88.0.0/16.
    #[arg(long)]
    pub network: String,
    /// First and last pool addresses.
    #[arg(long)]
    pub pool_start: Ipv4Addr,
    #[arg(long)]
    pub pool_end: Ipv4Addr,
    /// Serve this folder over TFTP on <address>:69 as well.
    #[arg(long)]
    pub tftp_root: Option<PathBuf>,
}

/// Runs until killed.
pub async fn run(a: BenchPxe) -> anyhow::Result<()> {
    let network = a
        .network
        .parse()
        .map_err(|e| anyhow::anyhow!("--network {}: {e}", a.network))?;
    let mut section = DhcpSection::single_subnet(
        a.address,
        network,
        PoolSection {
            start: a.pool_start,
            end: a.pool_end,
        },
    );
    section.interface = Some(a.interface.clone());
    let cfg = DhcpConfig::from_section(&section)?;
    std::fs::create_dir_all(&a.state_dir)?;
    let store = Store::open(&a.state_dir.join("db"))?;
    let directory = Arc::new(StaticDirectory {
        hosts: Default::default(),
        default: Some(HostBoot {
            name: "bench".into(),
            reserved_ip: None,
            boot_id: BootId::from_random(1),
        }),
    });
    let dhcp = DhcpServer::bind(
        cfg,
        Arc::new(SledLeaseStore::new(store)),
        directory,
        Arc::new(NullSink),
    )?;
    if let Some(root) = &a.tftp_root {
        let tftp = TftpService::bind(
            SocketAddr::from((a.address, 69)),
            root,
            TftpOptions::default(),
            Arc::new(NullSink),
            Arc::new(|_| None),
        )
        .await
        .context("binding TFTP")?;
        tftp.serve_on_thread().context("starting the TFTP thread")?;
    }
    tracing::info!("bench-pxe ready (the gate is open for every MAC: benchmarks only)");
    dhcp.run(std::future::pending()).await?;
    Ok(())
}
