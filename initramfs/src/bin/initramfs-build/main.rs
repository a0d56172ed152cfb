//! `initramfs-build`: fetch the pinned kernel, build the agent's initramfs or the tenant test
//! OS image, list or scan an image. A dispatch table over the `initramfs` library; does IO (files, apt/dpkg/depmod,
//! stdout). Progress goes to stderr, results to stdout.
//!
//! Exit codes: 0 success, 1 error, 3 `scan` found a private key.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use initramfs::inspect::{self, ListRow};
use initramfs::kernel::DEFAULT_CACHE;
use initramfs::{BuildSpec, DEFAULT_MODULES, FileMapping, KernelDir, Pin, human_bytes};

#[derive(Parser, Debug)]
#[command(
    name = "initramfs-build",
    version,
    about = "Deterministic initramfs builder for the ramdisk agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download, verify, extract and depmod the pinned Debian kernel; print its directory.
    KernelFetch {
        /// Cache directory.
        #[arg(long, default_value = DEFAULT_CACHE)]
        cache: PathBuf,
        #[command(flatten)]
        pin: PinArgs,
    },
    /// Build DIR/initrd.img (gzip'd newc cpio) and copy the kernel to DIR/vmlinuz.
    Build(BuildArgs),
    /// Build DIR/tenant-initrd.cpio.gz: the tenant test OS (/init = the static tenant-init).
    TenantOs {
        /// The static tenant-init binary; becomes /init.
        #[arg(long)]
        init: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// List the entries of an image (gzip'd or plain newc cpio).
    List {
        file: PathBuf,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Exit non-zero (3) and name the entries if any file in the image holds a private key.
    Scan { file: PathBuf },
}

#[derive(Args, Debug)]
struct BuildArgs {
    /// The agent binary; becomes /init.
    #[arg(long)]
    agent: PathBuf,
    /// The Lease Manager CA certificate (PEM CERTIFICATE blocks only).
    #[arg(long)]
    ca: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Kernel cache directory (the kernel is fetched if needed).
    #[arg(long, default_value = DEFAULT_CACHE)]
    kernel_cache: PathBuf,
    /// Modules to load, space or comma separated; dependencies are added.
    #[arg(long, default_value = DEFAULT_MODULES)]
    modules: String,
    /// Extra file SRC:DEST (repeatable; split at the last ':').
    #[arg(long = "file", value_name = "SRC:DEST")]
    files: Vec<FileMapping>,
    #[command(flatten)]
    pin: PinArgs,
}

/// Which kernel: the pin compiled in (initramfs/kernel.pin), another pin file, or overrides.
#[derive(Args, Debug)]
struct PinArgs {
    /// Pin file (TOML: package, version, sha256); default: the pin built into this binary.
    #[arg(long)]
    pin: Option<PathBuf>,
    /// Override the kernel package (linux-image-<release>).
    #[arg(long)]
    package: Option<String>,
    /// Override the package version.
    #[arg(long = "version")]
    pkg_version: Option<String>,
    /// Override the expected sha256 of the .deb.
    #[arg(long)]
    sha256: Option<String>,
}

impl PinArgs {
    fn resolve(&self) -> Result<Pin> {
        let base = match &self.pin {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading pin file {}", path.display()))?;
                Pin::parse(&text).with_context(|| format!("pin file {}", path.display()))?
            }
            None => Pin::builtin().context("built-in kernel.pin")?,
        };
        Ok(base.with_overrides(
            self.package.as_deref(),
            self.pkg_version.as_deref(),
            self.sha256.as_deref(),
        )?)
    }
}

fn fetch(pin: &PinArgs, cache: &Path) -> Result<KernelDir> {
    let pin = pin.resolve()?;
    KernelDir::fetch(&pin, cache)
        .with_context(|| format!("fetching kernel {} {}", pin.package(), pin.version()))
}

fn build(args: BuildArgs) -> Result<()> {
    let BuildArgs {
        agent,
        ca,
        out,
        kernel_cache,
        modules,
        files,
        pin,
    } = args;
    let kernel = fetch(&pin, &kernel_cache)?;
    let spec = BuildSpec {
        agent,
        ca,
        kernel,
        modules: modules
            .split([' ', ',', '\t', '\n'])
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect(),
        files,
        out_dir: out,
    };
    let output = initramfs::build(&spec).context("building the initramfs")?;
    let mut text = String::new();
    for (sha, path, size) in [
        (&output.initrd_sha256, &output.initrd, output.initrd_size),
        (&output.vmlinuz_sha256, &output.vmlinuz, output.vmlinuz_size),
    ] {
        let human = human_bytes(size);
        writeln!(text, "{sha}  {}  {human} ({size} bytes)", path.display())?;
    }
    writeln!(
        text,
        "entries: {}, cpio: {} bytes, kernel {}, modules in load order: {}",
        output.entries,
        output.cpio_size,
        spec.kernel.release,
        output.modules_order.len()
    )?;
    for m in &output.modules_order {
        writeln!(text, "  {m}")?;
    }
    emit(&text)
}

fn tenant_os(init: &Path, out: &Path) -> Result<()> {
    let output =
        initramfs::build_tenant_os(init, out).context("building the tenant test OS image")?;
    let size = output.size;
    emit(&format!(
        "{}  {}  {} ({size} bytes)\nentries: {}, cpio: {} bytes\n",
        output.sha256,
        output.initrd.display(),
        human_bytes(size),
        output.entries,
        output.cpio_size
    ))
}

/// Write to stdout; a closed pipe (`| head`) ends the output quietly instead of panicking.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("writing to stdout"),
    }
}

fn read_image(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn list(file: &Path, json: bool) -> Result<()> {
    let rows: Vec<ListRow> =
        inspect::list(&read_image(file)?).with_context(|| format!("reading {}", file.display()))?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?))
    } else {
        emit(&inspect::format_table(&rows))
    }
}

fn scan(file: &Path) -> Result<ExitCode> {
    let bytes = read_image(file)?;
    let found = inspect::scan(&bytes).with_context(|| format!("reading {}", file.display()))?;
    if found.is_empty() {
        let entries = inspect::list(&bytes)?.len();
        emit(&format!(
            "{}: no private keys in {entries} entries\n",
            file.display()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for f in &found {
        let name = file.display();
        writeln!(text, "{name}: private key in {}: {}", f.path, f.finding)?;
    }
    emit(&text)?;
    Ok(ExitCode::from(3))
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::KernelFetch { cache, pin } => {
            let kernel = fetch(&pin, &cache)?;
            emit(&format!("{}\n", kernel.root.display()))?;
        }
        Command::Build(args) => build(args)?,
        Command::TenantOs { init, out } => tenant_os(&init, &out)?,
        Command::List { file, json } => list(&file, json)?,
        Command::Scan { file } => return scan(&file),
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .without_time()
        .with_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
