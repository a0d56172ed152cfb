//! `lease-manager tenant ...` and `lease-manager operator ...`: tenants, operators with client
//! certificates, and their credential bundles. IO (admin socket, stdout, the bundle file);
//! rendering in [`super::audit_render`].
//!
//! The answer of `tenant add` is the only copy of the tenant's private key (the LM keeps
//! none). With `--out` the file is created (mode 0600, never over an existing file) before
//! the tenant is added, so a bad path costs nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use lm_api::{AddTenant, CredentialBundle, Name, TenantView};

use super::output::{create_private, out, out_line, print_json};
use super::{AdminClient, audit_render};

/// `lease-manager tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Add a tenant; prints its credential bundle (API URL, CA, client certificate and key).
    Add {
        /// Tenant name (letters, digits, '-', '_', '.').
        name: Name,
        /// Lifetime of the tenant's client certificate in days (default: the LM's config).
        #[arg(long)]
        cert_days: Option<u32>,
        /// Write the bundle to this new file (mode 0600) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the tenants (removed ones too).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant.
    Show {
        name: Name,
        #[arg(long)]
        json: bool,
    },
    /// Remove a tenant: its certificate is revoked (refused while it has open leases).
    Remove {
        name: Name,
        #[arg(long)]
        json: bool,
    },
}

/// `lease-manager operator ...`: operators who reach the API over mutual TLS from elsewhere
/// (the admin socket on the LM's machine needs no certificate).
#[derive(Debug, Subcommand)]
pub enum OperatorCmd {
    /// Add an operator; prints its credential bundle (the only copy of its key).
    Add {
        name: Name,
        /// Lifetime of the client certificate in days (default: the LM's config).
        #[arg(long)]
        cert_days: Option<u32>,
        /// Write the bundle to this new file (mode 0600) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the operators with client certificates (removed ones too).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an operator: its certificate is revoked.
    Remove { name: Name },
}

/// Tenants or operators: the same bundles, different collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tenant,
    Operator,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Operator => "operator",
        }
    }

    fn collection(self) -> &'static str {
        match self {
            Self::Tenant => "/v1/tenants",
            Self::Operator => "/v1/operators",
        }
    }
}

/// `POST /v1/tenants`: the new tenant's credential bundle.
pub async fn add_tenant(
    client: &AdminClient,
    name: &Name,
    cert_days: Option<u32>,
) -> anyhow::Result<CredentialBundle> {
    add_client(client, Kind::Tenant, name, cert_days).await
}

async fn add_client(
    client: &AdminClient,
    kind: Kind,
    name: &Name,
    cert_days: Option<u32>,
) -> anyhow::Result<CredentialBundle> {
    let body = serde_json::to_vec(&AddTenant {
        name: name.clone(),
        cert_days,
    })?;
    client
        .call("POST", kind.collection(), Some(body))
        .await
        .with_context(|| format!("cannot add {} {name}", kind.word()))
}

/// Runs one `operator` command.
pub async fn run_operator(client: &AdminClient, cmd: OperatorCmd) -> anyhow::Result<()> {
    match cmd {
        OperatorCmd::Add {
            name,
            cert_days,
            out: None,
        } => {
            let b = add_client(client, Kind::Operator, &name, cert_days).await?;
            print_json(&b)?;
            eprintln!(
                "note: this is the only copy of operator {name}'s private key; store it safely \
                 (`--out FILE` writes it to a new file of mode 0600)"
            );
            Ok(())
        }
        OperatorCmd::Add {
            name,
            cert_days,
            out: Some(path),
        } => add_to_file(client, Kind::Operator, &name, cert_days, &path).await,
        OperatorCmd::List { json } => {
            let v: Vec<TenantView> = client.call("GET", "/v1/operators", None).await?;
            if json {
                print_json(&v)
            } else {
                out(&audit_render::tenant_list(&v))
            }
        }
        OperatorCmd::Remove { name } => {
            let v: TenantView = client
                .call("DELETE", &format!("/v1/operators/{name}"), None)
                .await
                .with_context(|| format!("cannot remove operator {name}"))?;
            out_line(&format!(
                "removed operator {name}; its client certificate {} is revoked",
                v.cert_serial
            ))
        }
    }
}

/// Every tenant.
pub async fn tenants(client: &AdminClient) -> anyhow::Result<Vec<TenantView>> {
    client.call("GET", "/v1/tenants", None).await
}

fn tenant_path(name: &Name) -> String {
    // Names are [A-Za-z0-9._-]: safe in a path segment.
    format!("/v1/tenants/{name}")
}

/// Runs one `tenant` command.
pub async fn run(client: &AdminClient, cmd: TenantCmd) -> anyhow::Result<()> {
    match cmd {
        TenantCmd::Add {
            name,
            cert_days,
            out: None,
        } => {
            let b = add_tenant(client, &name, cert_days).await?;
            print_json(&b)?;
            eprintln!(
                "note: this is the only copy of {name}'s private key (the Lease Manager keeps none); \
                 store it safely and hand it to the tenant over a trusted channel \
                 (`--out FILE` writes it to a new file of mode 0600)"
            );
            Ok(())
        }
        TenantCmd::Add {
            name,
            cert_days,
            out: Some(path),
        } => add_to_file(client, Kind::Tenant, &name, cert_days, &path).await,
        TenantCmd::List { json } => {
            let v = tenants(client).await?;
            if json {
                print_json(&v)
            } else {
                out(&audit_render::tenant_list(&v))
            }
        }
        TenantCmd::Show { name, json } => {
            let v: TenantView = client.call("GET", &tenant_path(&name), None).await?;
            if json {
                print_json(&v)
            } else {
                out(&audit_render::tenant_show(&v))
            }
        }
        TenantCmd::Remove { name, json } => {
            let v: TenantView = client
                .call("DELETE", &tenant_path(&name), None)
                .await
                .with_context(|| format!("cannot remove tenant {name}"))?;
            if json {
                print_json(&v)
            } else {
                out_line(&format!(
                    "removed tenant {name}; its client certificate {} is revoked",
                    v.cert_serial
                ))
            }
        }
    }
}

async fn add_to_file(
    client: &AdminClient,
    kind: Kind,
    name: &Name,
    cert_days: Option<u32>,
    path: &Path,
) -> anyhow::Result<()> {
    let mut file = create_private(path)?;
    let b = match add_client(client, kind, name, cert_days).await {
        Ok(b) => b,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
    };
    let mut write = || -> std::io::Result<()> {
        let mut json = serde_json::to_vec_pretty(&b)?;
        json.push(b'\n');
        file.write_all(&json)?;
        file.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| {
            format!(
                "{w} {name} was added but its credential bundle could not be written to {}; \
                 the key is lost: `lease-manager {w} remove {name}` and add it again",
                path.display(),
                w = kind.word()
            )
        });
    }
    out_line(&format!(
        "added {} {name} ({}): credential bundle for {} written to {} (mode 0600, the only copy of the key)",
        kind.word(),
        b.identity,
        b.api_url,
        path.display()
    ))
}
