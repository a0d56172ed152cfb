//! Caller identities and their URI form (the one URI SAN of every client certificate).
//!
//! ```text
//! urn:lease-appliance:tenant:<name>
//! urn:lease-appliance:operator:<name>
//! urn:lease-appliance:agent:<lease-id>:<server-name>
//! ```
//!
//! `<name>` and `<server-name>` are [`Name`]s (no `:` possible), `<lease-id>` is a [`LeaseId`]
//! (`l-` + 16 lowercase hex). Parsing is exact: no case folding, no percent-decoding, no
//! trailing or extra parts.

use std::fmt;
use std::str::FromStr;

use lm_api::{LeaseId, Name};

/// The common prefix of every identity URI.
pub const URI_PREFIX: &str = "urn:lease-appliance:";

/// Longest identity URI accepted (the longest valid one is 20 + 6 + 1 + 18 + 1 + 63 = 109 bytes).
const MAX_URI_LEN: usize = 128;

/// Who is calling: taken from the client certificate's URI SAN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A tenant (leases servers).
    Tenant(Name),
    /// An operator (administers the appliance).
    Operator(Name),
    /// The ramdisk agent of `server`, enrolled for `lease`.
    Agent { lease: LeaseId, server: Name },
}

/// The role of an identity, for role checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Tenant,
    Operator,
    Agent,
}

/// A string that is not an identity URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("identity URI of {len} bytes is too long (at most {MAX_URI_LEN})")]
    TooLong { len: usize },
    #[error("{input:?} is not an identity URI: it must start with `{URI_PREFIX}`")]
    Prefix { input: String },
    #[error(
        "{input:?} has an unknown role: expected `{URI_PREFIX}tenant:<name>`, `...:operator:<name>` or `...:agent:<lease-id>:<server>`"
    )]
    Role { input: String },
    #[error("{input:?}: bad name: {source}")]
    Name {
        input: String,
        source: lm_api::NameError,
    },
    #[error("{input:?}: bad lease id: {source}")]
    Lease {
        input: String,
        source: lm_api::LeaseIdError,
    },
    #[error("{input:?}: an agent identity is `{URI_PREFIX}agent:<lease-id>:<server>`")]
    AgentShape { input: String },
}

impl Role {
    /// The role's word in the URI and in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Tenant => "tenant",
            Role::Operator => "operator",
            Role::Agent => "agent",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Identity {
    /// The identity's role.
    pub fn role(&self) -> Role {
        match self {
            Identity::Tenant(_) => Role::Tenant,
            Identity::Operator(_) => Role::Operator,
            Identity::Agent { .. } => Role::Agent,
        }
    }

    /// The URI that goes into the certificate.
    pub fn uri(&self) -> String {
        match self {
            Identity::Tenant(n) => format!("{URI_PREFIX}tenant:{n}"),
            Identity::Operator(n) => format!("{URI_PREFIX}operator:{n}"),
            Identity::Agent { lease, server } => format!("{URI_PREFIX}agent:{lease}:{server}"),
        }
    }

    /// A human-readable common name for the certificate subject.
    pub fn common_name(&self) -> String {
        match self {
            Identity::Tenant(n) => format!("tenant {n}"),
            Identity::Operator(n) => format!("operator {n}"),
            Identity::Agent { lease, server } => format!("agent {server} for {lease}"),
        }
    }

    /// Parses an identity URI, exactly.
    pub fn from_uri(uri: &str) -> Result<Self, IdentityError> {
        if uri.len() > MAX_URI_LEN {
            return Err(IdentityError::TooLong { len: uri.len() });
        }
        let input = || uri.to_string();
        let rest = uri
            .strip_prefix(URI_PREFIX)
            .ok_or_else(|| IdentityError::Prefix { input: input() })?;
        let (role, rest) = rest
            .split_once(':')
            .ok_or_else(|| IdentityError::Role { input: input() })?;
        let name = |s: &str| {
            Name::from_str(s).map_err(|source| IdentityError::Name {
                input: input(),
                source,
            })
        };
        match role {
            "tenant" => Ok(Identity::Tenant(name(rest)?)),
            "operator" => Ok(Identity::Operator(name(rest)?)),
            "agent" => {
                let (lease, server) = rest
                    .split_once(':')
                    .ok_or_else(|| IdentityError::AgentShape { input: input() })?;
                let lease = LeaseId::from_str(lease).map_err(|source| IdentityError::Lease {
                    input: input(),
                    source,
                })?;
                Ok(Identity::Agent {
                    lease,
                    server: name(server)?,
                })
            }
            _ => Err(IdentityError::Role { input: input() }),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Tenant(n) => write!(f, "tenant {n}"),
            Identity::Operator(n) => write!(f, "operator {n}"),
            Identity::Agent { lease, server } => write!(f, "agent {server} ({lease})"),
        }
    }
}

impl FromStr for Identity {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_uri(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn uris_round_trip() {
        let lease = LeaseId::from_random(0x0123_4567_89ab_cdef);
        let cases = [
            (
                Identity::Tenant(n("acme")),
                "urn:lease-appliance:tenant:acme",
            ),
            (
                Identity::Operator(n("ops.1")),
                "urn:lease-appliance:operator:ops.1",
            ),
            (
                Identity::Agent {
                    lease,
                    server: n("vm1"),
                },
                "urn:lease-appliance:agent:l-0123456789abcdef:vm1",
            ),
        ];
        for (id, uri) in cases {
            assert_eq!(id.uri(), uri);
            assert_eq!(Identity::from_uri(uri).unwrap(), id);
            assert_eq!(uri.parse::<Identity>().unwrap(), id);
        }
        let agent = Identity::Agent {
            lease,
            server: n("vm1"),
        };
        assert_eq!(agent.role(), Role::Agent);
        assert_eq!(agent.common_name(), "agent vm1 for l-0123456789abcdef");
        assert_eq!(Identity::Tenant(n("acme")).common_name(), "tenant acme");
        assert_eq!(Identity::Operator(n("o")).role().to_string(), "operator");
        let longest = Identity::Agent {
            lease,
            server: n(&"x".repeat(63)),
        };
        assert!(longest.uri().len() <= MAX_URI_LEN);
        assert_eq!(Identity::from_uri(&longest.uri()).unwrap(), longest);
    }

    #[test]
    fn hostile_uris_are_refused() {
        let huge = format!("urn:lease-appliance:tenant:{}", "a".repeat(10 * 1024));
        let bad = [
            "",
            "urn:lease-appliance:",
            "urn:lease-appliance:tenant",
            "urn:lease-appliance:tenant:",
            "urn:lease-appliance:tenant:acme:",
            "urn:lease-appliance:tenant:acme:x",
            "urn:lease-appliance:tenant::acme",
            "urn:lease-appliance:Tenant:acme",
            "URN:lease-appliance:tenant:acme",
            "urn:lease-appliance:admin:acme",
            "urn:other:tenant:acme",
            " urn:lease-appliance:tenant:acme",
            "urn:lease-appliance:tenant:acme ",
            "urn:lease-appliance:tenant:ac%6De",
            "urn:lease-appliance:tenant:acme\0",
            "urn:lease-appliance:tenant:\0acme",
            "urn:lease-appliance:operator:-ops",
            "urn:lease-appliance:agent:vm1",
            "urn:lease-appliance:agent:l-0123456789abcdef",
            "urn:lease-appliance:agent:l-0123456789abcdef:",
            "urn:lease-appliance:agent::vm1",
            "urn:lease-appliance:agent:l-0123456789ABCDEF:vm1",
            "urn:lease-appliance:agent:l-0123456789abcde:vm1",
            "urn:lease-appliance:agent:l-0123456789abcdef:vm1:extra",
            "urn:lease-appliance:agent:l-0123456789abcdef::vm1",
            "urn:lease-appliance:agent:vm1:l-0123456789abcdef",
            &huge,
        ];
        for b in bad {
            let err = Identity::from_uri(b).expect_err(b);
            assert!(!err.to_string().is_empty());
        }
        assert!(matches!(
            Identity::from_uri(&huge),
            Err(IdentityError::TooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics_and_accepted_uris_round_trip(s in "\\PC{0,200}") {
            if let Ok(id) = Identity::from_uri(&s) {
                prop_assert_eq!(id.uri(), s);
            }
        }

        #[test]
        fn near_misses_round_trip_or_fail(
            role in prop::sample::select(vec!["tenant", "operator", "agent", "agent:l-00000000000000ff"]),
            tail in "[a-zA-Z0-9:._\\-]{0,70}",
        ) {
            let s = format!("{URI_PREFIX}{role}:{tail}");
            if let Ok(id) = Identity::from_uri(&s) {
                prop_assert_eq!(id.uri(), s);
            }
        }
    }
}
