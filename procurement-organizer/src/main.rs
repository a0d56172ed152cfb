//! `procurement-organizer`: the tenant's side of the appliance. A dispatch table; the work is
//! in the library (`procurement_organizer::*`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use lm_api::{LeaseId, Tunnel};
use po_api::{ImageRef, Ipv4Net};
use procurement_organizer::cmd_lease::{self, RequestArgs, parse_duration, print_json};
use procurement_organizer::config::{self, Config};
use procurement_organizer::{files, gateway, images, render};

#[derive(Debug, Parser)]
#[command(
    name = "procurement-organizer",
    version,
    about = "The tenant's procurement organizer: leases, sealed images and the tenant gateway"
)]
struct Cli {
    /// Config file (TOML); `procurement-organizer init` writes one.
    #[arg(
        long,
        short,
        global = true,
        env = "PO_CONFIG",
        default_value = "organizer.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write a config file (refuses to replace one unless --force).
    Init {
        /// The tenant credential bundle (from `lease-manager tenant add --out FILE`).
        #[arg(long)]
        bundle: PathBuf,
        /// The gateway's address on the data-centre segment.
        #[arg(long)]
        dc_address: Ipv4Addr,
        /// State folder (relative to the config file).
        #[arg(long, default_value = "po-state")]
        state_dir: PathBuf,
        /// The tunnel network (the gateway takes its first address).
        #[arg(long, default_value = "10.99.0.0/24")]
        tunnel_network: Ipv4Net,
        /// A private network agents reach through the tunnel (repeat for more).
        #[arg(long = "private-network")]
        private_networks: Vec<Ipv4Net>,
        #[arg(long)]
        force: bool,
    },
    /// Ask the Lease Manager for servers that boot IMAGE; records the lease as approved.
    Request {
        #[arg(long)]
        count: u32,
        /// Free label (task class) for the lease.
        #[arg(long)]
        role: String,
        /// The sealed image (its id, see `images list`).
        #[arg(long)]
        image: ImageRef,
        /// How long, e.g. 90m, 1h, 2d.
        #[arg(long, value_parser = parse_duration)]
        duration: u64,
        #[arg(long, value_enum, default_value = "wireguard")]
        tunnel: TunnelArg,
        /// Wait for servers that are not idle yet.
        #[arg(long)]
        queue: bool,
        /// Take fewer servers than asked when not enough are idle.
        #[arg(long)]
        allow_partial: bool,
        #[arg(long)]
        json: bool,
    },
    /// The tenant's leases, or one lease with its servers and timeline.
    Status {
        lease: Option<LeaseId>,
        #[arg(long)]
        json: bool,
    },
    /// Release a lease (the gateway stops admitting its agents at once).
    Release {
        lease: LeaseId,
        #[arg(long)]
        json: bool,
    },
    /// Extend a lease.
    Renew {
        lease: LeaseId,
        /// How much longer, e.g. 1h.
        #[arg(long, value_parser = parse_duration)]
        duration: u64,
        #[arg(long)]
        json: bool,
    },
    /// Sealed boot images.
    #[command(subcommand)]
    Images(ImagesCmd),
    /// The tenant gateway.
    #[command(subcommand)]
    Gateway(GatewayCmd),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TunnelArg {
    Wireguard,
    Ipsec,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AeadArg {
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
    #[value(name = "chacha20-poly1305")]
    Chacha20Poly1305,
}

#[derive(Debug, Subcommand)]
enum ImagesCmd {
    /// Seal a kernel, an initramfs and a command line into the image store; the key goes to
    /// the key store (mode 0600).
    Seal {
        #[arg(long)]
        kernel: PathBuf,
        #[arg(long)]
        initramfs: PathBuf,
        /// Kernel command line (signed, not encrypted: no secrets).
        #[arg(long)]
        cmdline: String,
        /// An optional extra payload.
        #[arg(long)]
        extra: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "aes-256-gcm")]
        aead: AeadArg,
        /// Key epoch of this sealing.
        #[arg(long, default_value_t = 1)]
        epoch: u32,
        #[arg(long)]
        json: bool,
    },
    /// The images of the store, verified.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum GatewayCmd {
    /// Run the gateway: registration service, WireGuard, key service, image store, watcher.
    Run,
    /// The gateway's identity as lease requests name it (creates it if missing).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// The registered WireGuard peers (from the state folder).
    Peers {
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init(config: &Path, cmd: Cmd) -> anyhow::Result<()> {
    let Cmd::Init {
        bundle,
        dc_address,
        state_dir,
        tunnel_network,
        private_networks,
        force,
    } = cmd
    else {
        unreachable!("init is dispatched here only")
    };
    let text = config::example(
        &bundle.display().to_string(),
        &state_dir.display().to_string(),
        dc_address,
        tunnel_network,
        &private_networks,
    );
    Config::parse(&text, config).context("the values given to init")?;
    if config.exists() && !force {
        anyhow::bail!(
            "{} exists already; pass --force to replace it",
            config.display()
        );
    }
    std::fs::write(config, text).with_context(|| format!("cannot write {}", config.display()))?;
    eprintln!("wrote {}", config.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(match cli.cmd {
            Cmd::Gateway(GatewayCmd::Run) => "info",
            _ => "warn",
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    if matches!(cli.cmd, Cmd::Init { .. }) {
        return init(&cli.config, cli.cmd);
    }
    let cfg = Config::load(&cli.config)?;
    match cli.cmd {
        Cmd::Init { .. } => unreachable!("handled above"),
        Cmd::Request {
            count,
            role,
            image,
            duration,
            tunnel,
            queue,
            allow_partial,
            json,
        } => {
            let a = RequestArgs {
                count,
                role: Some(role),
                image,
                duration_s: duration,
                tunnel: match tunnel {
                    TunnelArg::Wireguard => Tunnel::Wireguard,
                    TunnelArg::Ipsec => Tunnel::Ipsec,
                },
                queue,
                allow_partial,
            };
            runtime()?.block_on(cmd_lease::request(&cfg, a, json))
        }
        Cmd::Status { lease, json } => runtime()?.block_on(cmd_lease::status(&cfg, lease, json)),
        Cmd::Release { lease, json } => runtime()?.block_on(cmd_lease::release(&cfg, lease, json)),
        Cmd::Renew {
            lease,
            duration,
            json,
        } => runtime()?.block_on(cmd_lease::renew(&cfg, lease, duration, json)),
        Cmd::Images(ImagesCmd::Seal {
            kernel,
            initramfs,
            cmdline,
            extra,
            aead,
            epoch,
            json,
        }) => {
            let req = images::SealRequest {
                kernel,
                initramfs,
                cmdline,
                extra,
                aead: match aead {
                    AeadArg::Aes256Gcm => sealed_image::Aead::Aes256Gcm,
                    AeadArg::Chacha20Poly1305 => sealed_image::Aead::ChaCha20Poly1305,
                },
                epoch,
            };
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "sealing {bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let e = images::seal(&cfg.state_dir, &req, &mut |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            });
            bar.finish_and_clear();
            let e = e?;
            if json {
                return print_json(&e);
            }
            println!("sealed image {} (epoch {}, {})", e.id, e.epoch, e.aead);
            print!("{}", render::image_list(&[e]));
            Ok(())
        }
        Cmd::Images(ImagesCmd::List { json }) => {
            let all = images::list(&cfg.state_dir)?;
            if json {
                return print_json(&all);
            }
            print!("{}", render::image_list(&all));
            Ok(())
        }
        Cmd::Gateway(GatewayCmd::Run) => runtime()?.block_on(gateway::run::run(&cfg)),
        Cmd::Gateway(GatewayCmd::Show { json }) => {
            files::private_dir(&cfg.state_dir)?;
            let id =
                gateway::identity::GatewayIdentity::load_or_create(&cfg.state_dir, &cfg.gateway)?;
            let spec = id.spec(&cfg.gateway);
            if json {
                return print_json(&spec);
            }
            let g = &cfg.gateway;
            println!("register_url     {}", spec.register_url);
            println!("tls_cert_sha256  {}", spec.tls_cert_sha256);
            println!("wg_endpoint      {}", g.wg_endpoint);
            println!("wg_public_key    {}", id.wg_public);
            println!(
                "tunnel           {} (gateway {}) on {}",
                g.tunnel_network, g.tunnel_address, g.tun_name
            );
            println!("key_service      {}", g.key_service_url());
            println!("image_store      {}", g.image_store_url());
            Ok(())
        }
        Cmd::Gateway(GatewayCmd::Peers { json }) => {
            let peers = gateway::peers_file::load(&cfg.state_dir, &cfg.gateway)?;
            if json {
                return print_json(&peers.peers());
            }
            print!("{}", render::peer_list(peers.peers()));
            Ok(())
        }
    }
}
