//! The gateway in IPsec mode, pure part: which connections lose their IKE SAs when the Lease
//! Manager revokes a certificate.
//!
//! charon checks the CRL when an agent authenticates (`revocation = strict`), never again for
//! an IKE SA that is up: loading a CRL that lists the agent's certificate leaves its tunnel
//! running. So the sync remembers, per connection, every certificate serial the LM listed for
//! that connection's server while it was admitted, and when a new CRL revokes one of them
//! that the previous CRL did not, it terminates that connection's IKE SAs (the agent's next
//! IKE_AUTH with the revoked certificate is refused by charon; one with a new certificate is
//! admitted). A serial revoked already in the CRL charon had loaded ends nothing: the SA up
//! now was authenticated after that CRL, so with another certificate.

use std::collections::{BTreeMap, BTreeSet};

use lm_api::LeaseView;
use lm_pki::CheckedCrl;

use super::swanctl::conn_name;

/// Per loaded connection, the certificate serials (lowercase hex without leading zeros, as the
/// LM writes them) its server had while the connection was loaded.
pub type SeenSerials = BTreeMap<String, BTreeSet<String>>;

/// Brings `seen` up to date: connections no longer in `conns` are forgotten, and every server
/// of `leases` whose connection is in `conns` adds its current certificate serial.
pub fn remember(seen: &mut SeenSerials, conns: &BTreeSet<String>, leases: &[LeaseView]) {
    seen.retain(|c, _| conns.contains(c));
    for l in leases {
        let lease = l.id.to_string();
        for s in &l.servers {
            let Some(serial) = &s.cert_serial else {
                continue;
            };
            let conn = conn_name(&lease, &s.name);
            if conns.contains(&conn) {
                seen.entry(conn).or_default().insert(serial.clone());
            }
        }
    }
}

/// The connections whose IKE SAs end: a serial seen for them is revoked in `new` and was not
/// in `old` (the CRL charon had before; `None`: none yet, so every revoked serial counts).
pub fn to_terminate(
    seen: &SeenSerials,
    old: Option<&CheckedCrl>,
    new: &CheckedCrl,
) -> BTreeSet<String> {
    seen.iter()
        .filter(|(_, serials)| {
            serials
                .iter()
                .any(|s| new.is_revoked(s) && !old.is_some_and(|o| o.is_revoked(s)))
        })
        .map(|(c, _)| c.clone())
        .collect()
}

#[cfg(test)]
#[path = "revoked_sas_tests.rs"]
mod tests;
