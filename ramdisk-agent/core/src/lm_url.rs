//! The Lease Manager's address as the kernel command line carries it (`lm.url=https://HOST:PORT`).
//!
//! Pure parsing, no IO. Only the exact form `https://HOST:PORT` is accepted, where HOST is an
//! IPv4 address or a DNS name (letters, digits, hyphens, dots) and PORT is 1-65535 in at most
//! five decimal digits, without a sign. No user info, path, query, fragment
//! or IPv6 literal: the agent only ever posts to fixed paths on one IPv4 network, and anything
//! else on the command line is a rendering mistake worth refusing loudly.

use std::fmt;
use std::net::Ipv4Addr;

/// The host part of the LM URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmHost {
    /// A literal IPv4 address (TLS server name is then the IP address).
    Ip(Ipv4Addr),
    /// A DNS name, stored in lowercase.
    Name(String),
}

/// A validated `https://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmUrl {
    host: LmHost,
    port: u16,
}

/// Why a string is not an LM URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LmUrlError {
    /// The string does not start with `https://`.
    #[error("the scheme must be https:// (lowercase)")]
    Scheme,
    /// Something after the port: a path, query or fragment.
    #[error("a path, query or fragment is not allowed; write only https://HOST:PORT")]
    Trailing,
    /// `user@host`.
    #[error("user info (user@host) is not allowed")]
    UserInfo,
    /// `[v6]` literal.
    #[error("IPv6 literals are not supported: the agent configures IPv4 only")]
    Ipv6,
    /// No `:PORT`.
    #[error("the port is missing; write https://HOST:PORT")]
    MissingPort,
    /// The port is not a number in 1-65535.
    #[error("port {0:?} is not a number in 1-65535")]
    Port(String),
    /// The host is neither an IPv4 address nor a DNS name.
    #[error("host {0:?} is neither an IPv4 address nor a DNS name")]
    Host(String),
}

impl LmUrl {
    /// Builds a URL from parts (tests, tools).
    pub fn new(host: LmHost, port: u16) -> Self {
        Self { host, port }
    }

    /// Parses `https://HOST:PORT`.
    pub fn parse(s: &str) -> Result<Self, LmUrlError> {
        let rest = s.strip_prefix("https://").ok_or(LmUrlError::Scheme)?;
        if rest.contains(['/', '?', '#']) {
            return Err(LmUrlError::Trailing);
        }
        if rest.contains('@') {
            return Err(LmUrlError::UserInfo);
        }
        if rest.starts_with('[') {
            return Err(LmUrlError::Ipv6);
        }
        let (host, port) = rest.rsplit_once(':').ok_or(LmUrlError::MissingPort)?;
        let port = parse_port(port)?;
        let host = parse_host(host)?;
        Ok(Self { host, port })
    }

    /// The host.
    pub fn host(&self) -> &LmHost {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host as text (for the HTTP `Host` header and name resolution).
    pub fn host_str(&self) -> String {
        match &self.host {
            LmHost::Ip(ip) => ip.to_string(),
            LmHost::Name(n) => n.clone(),
        }
    }

    /// The value of the HTTP `Host` header: `host:port`.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host_str(), self.port)
    }
}

impl fmt::Display for LmUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}", self.authority())
    }
}

fn parse_port(p: &str) -> Result<u16, LmUrlError> {
    let err = || LmUrlError::Port(p.chars().take(16).collect());
    if p.is_empty() {
        return Err(LmUrlError::MissingPort);
    }
    if p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(err()),
        Ok(n) => Ok(n),
    }
}

fn parse_host(h: &str) -> Result<LmHost, LmUrlError> {
    let err = || LmUrlError::Host(h.chars().take(64).collect());
    if h.is_empty() || h.len() > 253 {
        return Err(err());
    }
    let labels: Vec<&str> = h.split('.').collect();
    let all_numeric = labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if all_numeric {
        // Looks like an address: it must be a full dotted quad, never a name.
        return h.parse::<Ipv4Addr>().map(LmHost::Ip).map_err(|_| err());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !labels.iter().all(|l| label_ok(l)) {
        return Err(err());
    }
    Ok(LmHost::Name(h.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ip_and_name() {
        let u = LmUrl::parse("https://10.77.0.1:8443").unwrap();
        assert_eq!(u.host(), &LmHost::Ip(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(u.port(), 8443);
        assert_eq!(u.to_string(), "https://10.77.0.1:8443");
        let n = LmUrl::parse("https://LM.dc-1.example:443").unwrap();
        assert_eq!(n.host(), &LmHost::Name("lm.dc-1.example".into()));
        assert_eq!(n.authority(), "lm.dc-1.example:443");
        assert_eq!(LmUrl::parse("https://lm:1").unwrap().port(), 1);
    }

    #[test]
    fn refuses_everything_else() {
        let cases: &[(&str, LmUrlError)] = &[
            ("http://10.0.0.1:80", LmUrlError::Scheme),
            ("HTTPS://10.0.0.1:80", LmUrlError::Scheme),
            ("10.0.0.1:443", LmUrlError::Scheme),
            ("https://10.0.0.1:443/", LmUrlError::Trailing),
            ("https://10.0.0.1:443/v1", LmUrlError::Trailing),
            ("https://10.0.0.1:443?x", LmUrlError::Trailing),
            ("https://10.0.0.1:443#x", LmUrlError::Trailing),
            ("https://u@10.0.0.1:443", LmUrlError::UserInfo),
            ("https://[::1]:443", LmUrlError::Ipv6),
            ("https://10.0.0.1", LmUrlError::MissingPort),
            ("https://10.0.0.1:", LmUrlError::MissingPort),
            ("https://10.0.0.1:0", LmUrlError::Port("0".into())),
            ("https://10.0.0.1:65536", LmUrlError::Port("65536".into())),
            ("https://10.0.0.1:+443", LmUrlError::Port("+443".into())),
            ("https://10.0.0.1:0443x", LmUrlError::Port("0443x".into())),
            ("https://10.0.0.1:004430", LmUrlError::Port("004430".into())),
            ("https://:443", LmUrlError::Host("".into())),
            (
                "https://10.0.0.256:443",
                LmUrlError::Host("10.0.0.256".into()),
            ),
            ("https://10.0.0:443", LmUrlError::Host("10.0.0".into())),
            ("https://a..b:443", LmUrlError::Host("a..b".into())),
            ("https://-a.b:443", LmUrlError::Host("-a.b".into())),
            ("https://a_b:443", LmUrlError::Host("a_b".into())),
            ("https://a b:443", LmUrlError::Host("a b".into())),
            (
                "https://ä.example:443",
                LmUrlError::Host("ä.example".into()),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(LmUrl::parse(input).as_ref(), Err(want), "{input}");
        }
        let long = format!("https://{}:443", "a".repeat(64));
        assert!(matches!(LmUrl::parse(&long), Err(LmUrlError::Host(_))));
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(s in "\\PC{0,80}") {
            if let Ok(u) = LmUrl::parse(&s) {
                prop_assert_eq!(LmUrl::parse(&u.to_string()), Ok(u));
            }
        }

        #[test]
        fn ip_urls_round_trip(a: u8, b: u8, c: u8, d: u8, port in 1u16..) {
            let s = format!("https://{a}.{b}.{c}.{d}:{port}");
            let u = LmUrl::parse(&s).unwrap();
            prop_assert_eq!(u.to_string(), s);
        }
    }
}
