//! Request paths of HTTP boot -> routes. Pure.
//!
//! ```text
//! /boot/{mac}.ipxe       the per-host iPXE script
//! /boot/{mac}/vmlinuz    the kernel, attributed to {mac}
//! /boot/{mac}/initrd     the initramfs, attributed to {mac}
//! ```
//!
//! `{mac}` is six hex octets separated by `-` (what the script uses) or `:`. A query string is
//! ignored; nothing is percent-decoded (a MAC never needs it). A path of one of these shapes
//! with a bad MAC is [`RouteError::BadMac`] (400); every other path is
//! [`RouteError::NotFound`] (404).

use lm_api::MacAddr;

/// Prefix of every boot path.
pub const PREFIX: &str = "/boot/";

/// A boot artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// The kernel image.
    Kernel,
    /// The initramfs.
    Initrd,
}

impl Artifact {
    /// The file name in the URL.
    pub fn file_name(&self) -> &'static str {
        match self {
            Self::Kernel => "vmlinuz",
            Self::Initrd => "initrd",
        }
    }
}

/// What a boot path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootRoute {
    /// The iPXE script of a host.
    Script(MacAddr),
    /// A boot artifact fetched by a host.
    File(MacAddr, Artifact),
}

impl BootRoute {
    /// The MAC the request is attributed to.
    pub fn mac(&self) -> MacAddr {
        match *self {
            Self::Script(mac) | Self::File(mac, _) => mac,
        }
    }

    /// The canonical path (dashed MAC), used in events so the timeline has one spelling.
    pub fn canonical_path(&self) -> String {
        match self {
            Self::Script(mac) => format!("{PREFIX}{}.ipxe", mac.dashed()),
            Self::File(mac, a) => format!("{PREFIX}{}/{}", mac.dashed(), a.file_name()),
        }
    }
}

/// Why a path is not a boot route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No such route.
    #[error("no such boot path")]
    NotFound,
    /// A boot route with something that is not a MAC where the MAC goes.
    #[error("{input:?} is not a MAC address (write 52-54-00-12-34-56)")]
    BadMac {
        /// The rejected segment, at most 64 characters.
        input: String,
    },
}

/// Routes a request path.
pub fn route(path: &str) -> Result<BootRoute, RouteError> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let rest = path.strip_prefix(PREFIX).ok_or(RouteError::NotFound)?;
    let (mac, target) = match rest.split_once('/') {
        None => match rest.strip_suffix(".ipxe") {
            Some(mac) => (mac, None),
            None => return Err(RouteError::NotFound),
        },
        Some((mac, "vmlinuz")) => (mac, Some(Artifact::Kernel)),
        Some((mac, "initrd")) => (mac, Some(Artifact::Initrd)),
        Some(_) => return Err(RouteError::NotFound),
    };
    let mac: MacAddr = mac.parse().map_err(|_| RouteError::BadMac {
        input: mac.chars().take(64).collect(),
    })?;
    Ok(match target {
        None => BootRoute::Script(mac),
        Some(artifact) => BootRoute::File(mac, artifact),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    #[test]
    fn the_three_routes_in_both_spellings() {
        assert_eq!(
            route("/boot/52-54-00-12-34-56.ipxe"),
            Ok(BootRoute::Script(MAC))
        );
        assert_eq!(
            route("/boot/52:54:00:12:34:56.ipxe"),
            Ok(BootRoute::Script(MAC))
        );
        assert_eq!(
            route("/boot/52-54-00-12-34-56/vmlinuz"),
            Ok(BootRoute::File(MAC, Artifact::Kernel))
        );
        assert_eq!(
            route("/boot/52-54-00-12-34-56/initrd"),
            Ok(BootRoute::File(MAC, Artifact::Initrd))
        );
        assert_eq!(
            route("/boot/52-54-00-12-34-56/initrd?x=1"),
            Ok(BootRoute::File(MAC, Artifact::Initrd))
        );
        assert_eq!(
            route("/boot/52-54-00-12-34-56/initrd").map(|r| r.mac()),
            Ok(MAC)
        );
    }

    #[test]
    fn canonical_paths_round_trip() {
        for r in [
            BootRoute::Script(MAC),
            BootRoute::File(MAC, Artifact::Kernel),
            BootRoute::File(MAC, Artifact::Initrd),
        ] {
            assert_eq!(route(&r.canonical_path()), Ok(r));
        }
        assert_eq!(
            BootRoute::Script(MAC).canonical_path(),
            "/boot/52-54-00-12-34-56.ipxe"
        );
    }

    #[test]
    fn other_paths_are_not_found() {
        for p in [
            "",
            "/",
            "/boot",
            "/boot/",
            "/boot/vmlinuz",
            "/boot/initrd",
            "/BOOT/52-54-00-12-34-56.ipxe",
            "/boot/52-54-00-12-34-56",
            "/boot/52-54-00-12-34-56/",
            "/boot/52-54-00-12-34-56/vmlinuz/",
            "/boot/52-54-00-12-34-56/../initrd",
            "/boot/52-54-00-12-34-56/x/../initrd",
            "/boot/52-54-00-12-34-56/%76mlinuz",
            "/boot/52-54-00-12-34-56/secret",
            "/boot/52-54-00-12-34-56.IPXE",
            "//boot/52-54-00-12-34-56.ipxe",
            "/v1/servers",
        ] {
            assert_eq!(route(p), Err(RouteError::NotFound), "{p:?}");
        }
    }

    #[test]
    fn bad_macs_are_bad_requests() {
        for p in [
            "/boot/.ipxe",
            "/boot/52-54-00-12-34.ipxe",
            "/boot/52-54-00-12-34-56-78.ipxe",
            "/boot/52-54-00-12-34-5g.ipxe",
            "/boot/..%2f..%2fetc.ipxe",
            "/boot/52%2d54%2d00%2d12%2d34%2d56.ipxe",
            "/boot/../vmlinuz",
            "/boot//vmlinuz",
            "/boot/52-54:00-12-34-56/initrd",
            "/boot/\u{0}/initrd",
        ] {
            assert!(matches!(route(p), Err(RouteError::BadMac { .. })), "{p:?}");
        }
        let long = format!("/boot/{}.ipxe", "a".repeat(10_000));
        let Err(RouteError::BadMac { input }) = route(&long) else {
            panic!("long path")
        };
        assert_eq!(input.len(), 64);
    }

    proptest! {
        #[test]
        fn any_path_routes_or_errs_without_panicking(p in "(/boot/)?[0-9a-f:/.?-]{0,40}") {
            if let Ok(r) = route(&p) {
                prop_assert!(p.starts_with(PREFIX));
                prop_assert!(route(&r.canonical_path()) == Ok(r));
            }
        }
    }
}
