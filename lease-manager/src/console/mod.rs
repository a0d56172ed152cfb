//! The operator console: `lease-manager server|lease|tenant|events|audit|ca crl ...` talking
//! to the running LM's `/v1` API over its admin socket (`<state_dir>/admin.sock`, where the
//! caller is the local operator). Human tables by default, `--json` for scripts (the API's
//! JSON, pretty); errors are the API's `{"error": ...}` message and a non-zero exit.
//!
//! The command modules (`*_cmd`) are thin: a request, then a pure rendering function
//! ([`render`], [`lease_render`], [`audit_render`], [`text`]) or a pure reader ([`crl`],
//! [`ndjson`]). [`client`] is the HTTP/1.1-over-Unix-socket plumbing.

mod audit_cmd;
pub mod audit_render;
mod client;
pub mod crl;
mod lease_cmd;
pub mod lease_render;
pub mod ndjson;
mod output;
pub mod render;
#[cfg(test)]
mod render_tests;
mod server_cmd;
#[cfg(test)]
mod socket_tests;
mod tenant_cmd;
pub mod text;

use clap::Subcommand;

pub use audit_cmd::{AuditCmd, ExportSummary, ca_crl, export, verify_file};
pub use client::{AdminClient, LineStream};
pub use lease_cmd::{EventsArgs, LeaseCmd, lease_events, leases};
pub use output::StdoutClosed;
pub use server_cmd::ServerCmd;
pub use tenant_cmd::{OperatorCmd, TenantCmd, add_tenant, tenants};

/// The console's commands (flattened into the binary's top level).
#[derive(Debug, Subcommand)]
pub enum ConsoleCmd {
    /// The server inventory: add, list, show, wake, reset, watch, remove.
    #[command(subcommand)]
    Server(ServerCmd),
    /// Leases: list, show (with the lease's event timeline), release, watch.
    #[command(subcommand)]
    Lease(LeaseCmd),
    /// Tenants: add (prints the tenant's credential bundle), list, show, remove.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Operators with client certificates (remote access over mutual TLS): add, list, remove.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// The event stream (every audit entry as a line), optionally followed live.
    Events(EventsArgs),
    /// The hash-chained audit log: list, export (NDJSON), verify (online or an export offline).
    #[command(subcommand)]
    Audit(AuditCmd),
}

/// Runs one console command. A closed stdout (`| head`) ends it without an error.
pub async fn run(client: &AdminClient, cmd: ConsoleCmd) -> anyhow::Result<()> {
    let r = match cmd {
        ConsoleCmd::Server(c) => server_cmd::run(client, c).await,
        ConsoleCmd::Lease(c) => lease_cmd::run(client, c).await,
        ConsoleCmd::Tenant(c) => tenant_cmd::run(client, c).await,
        ConsoleCmd::Operator(c) => tenant_cmd::run_operator(client, c).await,
        ConsoleCmd::Events(a) => lease_cmd::events(client, a).await,
        ConsoleCmd::Audit(c) => audit_cmd::run(client, c).await,
    };
    quiet_if_closed(r)
}

/// A closed stdout (the reader of a pipe went away) ends a command quietly.
pub(crate) fn quiet_if_closed(r: anyhow::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e)
            if e.chain().any(|c| {
                c.is::<StdoutClosed>()
                    || c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(())
        }
        r => r,
    }
}

/// Unix ms now, for "ends in" columns.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
