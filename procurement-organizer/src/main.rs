//! `procurement-organizer`: the tenant's side of the appliance.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
