//! `lease-manager`: the daemon (`serve`) and the operator console (`server`, `lease`,
//! `tenant`, `events`, `audit`, `ca ...`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lease_manager::{ca, config, console, daemon};

#[derive(Debug, Parser)]
#[command(
    name = "lease-manager",
    version,
    about = "Lease Manager: wakes, network-boots and tracks lease servers"
)]
struct Cli {
    /// Config file (TOML); `lease-manager config example` prints a documented one.
    #[arg(
        long,
        short,
        global = true,
        env = "LEASE_MANAGER_CONFIG",
        default_value = "/etc/lease-manager/lease-manager.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the daemon: DHCP, TFTP, HTTP boot, the HTTPS API and the admin socket.
    Serve,
    #[command(flatten)]
    Console(console::ConsoleCmd),
    /// The certificate authority.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Benchmarks only: the DHCP and TFTP servers with the netboot gate open for every MAC.
    #[command(hide = true)]
    BenchPxe(lease_manager::bench_pxe::BenchPxe),
}

#[derive(Debug, Subcommand)]
enum CaCmd {
    /// Create the CA if it does not exist and print the path of its public certificate
    /// (the input of `initramfs-build build --ca`).
    Init {
        /// CA folder; default `<state_dir>/ca` of the config.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Import an existing CA (certificate and key, PEM) instead of creating one; refused if the
    /// folder already holds a CA. The key is written with mode 0600.
    Import {
        /// The CA certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// CA folder; default `<state_dir>/ca` of the config.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the CA certificate (PEM).
    Show {
        /// CA folder; default `<state_dir>/ca` of the config.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Fetch the CRL from the running LM: write it (DER) to FILE, or print what it revokes.
    Crl {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Print a documented example config.
    Example,
    /// Validate the config file and print the resolved values.
    Check,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(match cli.cmd {
            Cmd::Serve | Cmd::BenchPxe(_) => "info",
            _ => "warn",
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    let load = || config::Config::load(&cli.config).context("loading the configuration");
    match cli.cmd {
        Cmd::Config(ConfigCmd::Example) => print!("{}", config::EXAMPLE),
        Cmd::Config(ConfigCmd::Check) => println!("{:#?}", load()?),
        Cmd::Ca(CaCmd::Crl { out }) => {
            let client = console::AdminClient::new(&load()?.admin_socket());
            console_runtime()?.block_on(console::ca_crl(&client, out.as_deref()))?;
        }
        Cmd::Ca(CaCmd::Import { cert, key, dir }) => {
            let dir = match dir {
                Some(d) => d,
                None => load()?.state_dir.join("ca"),
            };
            let ca = ca::Ca::import(&dir, &cert, &key)?;
            eprintln!("imported the CA into {}", dir.display());
            println!("{}", ca.cert_path().display());
        }
        Cmd::Ca(c) => {
            let (CaCmd::Init { dir } | CaCmd::Show { dir }) = &c else {
                unreachable!("ca crl and ca import are handled above")
            };
            let dir = match dir {
                Some(d) => d.clone(),
                None => load()?.state_dir.join("ca"),
            };
            let (ca, created) =
                ca::Ca::load_or_create(&dir, std::time::SystemTime::now(), rand::random())?;
            match c {
                CaCmd::Init { .. } => {
                    if created {
                        eprintln!("created a new CA in {}", dir.display());
                    }
                    println!("{}", ca.cert_path().display());
                }
                CaCmd::Show { .. } => print!("{}", ca.cert_pem()),
                CaCmd::Crl { .. } | CaCmd::Import { .. } => {
                    unreachable!("ca crl and ca import are handled above")
                }
            }
        }
        Cmd::BenchPxe(a) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(lease_manager::bench_pxe::run(a))?;
        }
        Cmd::Serve => {
            let cfg = load()?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                // Store work is serialized by the writer lock and its fsyncs are grouped:
                // a few blocking threads are enough, and many would only slow sled's
                // epoch-based reclamation down.
                .max_blocking_threads(32)
                .enable_all()
                .build()?;
            rt.block_on(daemon::serve(cfg))?;
        }
        Cmd::Console(cmd) => {
            let client = console::AdminClient::new(&load()?.admin_socket());
            console_runtime()?.block_on(console::run(&client, cmd))?;
        }
    }
    Ok(())
}

/// The console's runtime: one thread is plenty for one request or one stream.
fn console_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
