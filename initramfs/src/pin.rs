//! The kernel pin (`initramfs/kernel.pin`): which Debian kernel package, which version, which
//! sha256. Pure: parses and validates TOML text; reading the file is the caller's job.
//!
//! ```toml
//! package = "linux-image-6.1.0-56-amd64"
//! version = "6.1.192-2"
//! sha256 = "a86e2049672f52354c4536a089203b6c82639420424d31c91cf31a181fd4d8f1"
//! ```
//!
//! The kernel release (`6.1.0-56-amd64`, the directory under `/lib/modules`) is derived from
//! the package name. Every field is checked because it ends up in a command line and a path.

use serde::Deserialize;
use thiserror::Error;

/// The pin compiled into the binary (the `kernel.pin` next to this crate's Cargo.toml).
pub const DEFAULT_PIN: &str = include_str!("../kernel.pin");

const PACKAGE_PREFIX: &str = "linux-image-";

/// Why a pin was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PinError {
    #[error("kernel pin is not valid TOML with exactly package, version, sha256: {0}")]
    Toml(String),
    #[error(
        "package {0:?} is not a Debian kernel image package (linux-image-<release>, \
         lowercase letters, digits, '.', '+', '-')"
    )]
    Package(String),
    #[error("version {0:?} is not a Debian version (digits first, then [A-Za-z0-9.+~:-])")]
    Version(String),
    #[error("sha256 {0:?} is not 64 hex digits")]
    Sha256(String),
}

/// A validated kernel pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    package: String,
    version: String,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinFile {
    package: String,
    version: String,
    sha256: String,
}

impl Pin {
    /// Validate the three fields; the sha256 is stored lowercase.
    pub fn new(package: &str, version: &str, sha256: &str) -> Result<Self, PinError> {
        let release = package.strip_prefix(PACKAGE_PREFIX).unwrap_or_default();
        let package_ok = !release.is_empty()
            && package.len() <= 100
            && release.starts_with(|c: char| c.is_ascii_digit())
            && package.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'+' | b'-')
            });
        if !package_ok {
            return Err(PinError::Package(package.to_owned()));
        }
        let version_ok = version.len() <= 100
            && version.starts_with(|c: char| c.is_ascii_digit())
            && version.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'~' | b':' | b'-')
            });
        if !version_ok {
            return Err(PinError::Version(version.to_owned()));
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PinError::Sha256(sha256.to_owned()));
        }
        Ok(Pin {
            package: package.to_owned(),
            version: version.to_owned(),
            sha256: sha256.to_ascii_lowercase(),
        })
    }

    /// Parse the TOML text of a pin file (unknown keys are refused).
    pub fn parse(text: &str) -> Result<Self, PinError> {
        let file: PinFile = toml::from_str(text).map_err(|e| PinError::Toml(e.to_string()))?;
        Self::new(&file.package, &file.version, &file.sha256)
    }

    /// The pin compiled into this crate ([`DEFAULT_PIN`]).
    pub fn builtin() -> Result<Self, PinError> {
        Self::parse(DEFAULT_PIN)
    }

    /// Replace any of the fields (command-line overrides), validating the result.
    pub fn with_overrides(
        &self,
        package: Option<&str>,
        version: Option<&str>,
        sha256: Option<&str>,
    ) -> Result<Self, PinError> {
        Self::new(
            package.unwrap_or(&self.package),
            version.unwrap_or(&self.version),
            sha256.unwrap_or(&self.sha256),
        )
    }

    pub fn package(&self) -> &str {
        &self.package
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Expected sha256 of the .deb, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The kernel release: the package name without `linux-image-` (`6.1.0-56-amd64`).
    pub fn release(&self) -> &str {
        &self.package[PACKAGE_PREFIX.len()..]
    }

    /// The file name `apt-get download` gives the .deb for `arch` (an epoch's ':' becomes
    /// `%3a`).
    pub fn deb_file_name(&self, arch: &str) -> String {
        format!(
            "{}_{}_{arch}.deb",
            self.package,
            self.version.replace(':', "%3a")
        )
    }

    /// The pin as TOML (the format of `kernel.pin` and of the cache's `ready` stamp).
    pub fn to_toml(&self) -> String {
        format!(
            "package = \"{}\"\nversion = \"{}\"\nsha256 = \"{}\"\n",
            self.package, self.version, self.sha256
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_builtin_pin_parses() {
        let pin = Pin::builtin().unwrap();
        assert_eq!(pin.package(), "linux-image-6.1.0-56-amd64");
        assert_eq!(pin.version(), "6.1.192-2");
        assert_eq!(pin.release(), "6.1.0-56-amd64");
        assert_eq!(
            pin.deb_file_name("amd64"),
            "linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb"
        );
        assert_eq!(Pin::parse(&pin.to_toml()).unwrap(), pin);
    }

    #[test]
    fn overrides_are_validated() {
        let pin = Pin::builtin().unwrap();
        let other = pin
            .with_overrides(
                Some("linux-image-6.1.0-57-amd64"),
                Some("1:6.1.200-1"),
                None,
            )
            .unwrap();
        assert_eq!(other.release(), "6.1.0-57-amd64");
        assert_eq!(other.sha256(), pin.sha256());
        assert_eq!(
            other.deb_file_name("amd64"),
            "linux-image-6.1.0-57-amd64_1%3a6.1.200-1_amd64.deb"
        );
        assert!(pin.with_overrides(None, None, Some("abc")).is_err());
    }

    #[test]
    fn hostile_pins_are_refused() {
        let sha = "a".repeat(64);
        let bad_packages = [
            "linux-image-",
            "linux-headers-6.1.0-56-amd64",
            "linux-image-../../x",
            "linux-image-6.1/x",
            "linux-image-6.1 x",
            "linux-image-amd64",
            "-olinux-image-6.1",
        ];
        for p in bad_packages {
            assert_eq!(
                Pin::new(p, "1.0", &sha),
                Err(PinError::Package(p.into())),
                "{p}"
            );
        }
        for v in ["", "-1", "1.0;rm", "1.0 2", "1/0", "a1.0"] {
            assert_eq!(
                Pin::new("linux-image-6.1.0-56-amd64", v, &sha),
                Err(PinError::Version(v.into())),
                "{v}"
            );
        }
        let upper = "A".repeat(64);
        assert_eq!(
            Pin::new("linux-image-6.1.0-56-amd64", "1", &upper)
                .unwrap()
                .sha256(),
            "a".repeat(64)
        );
        assert!(Pin::new("linux-image-6.1.0-56-amd64", "1", &"g".repeat(64)).is_err());
        assert!(matches!(
            Pin::parse(
                "package = \"linux-image-6.1\"\nversion = \"1\"\nsha256 = \"x\"\nextra = 1\n"
            ),
            Err(PinError::Toml(_))
        ));
        assert!(matches!(Pin::parse("package = 3"), Err(PinError::Toml(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = Pin::parse(&text);
        }

        #[test]
        fn valid_pins_round_trip(rel in "[0-9][a-z0-9.-]{0,20}", ver in "[0-9][a-z0-9.+~-]{0,12}") {
            let pin = Pin::new(&format!("linux-image-{rel}"), &ver, &"0".repeat(64)).unwrap();
            prop_assert_eq!(pin.release(), rel.as_str());
            prop_assert_eq!(Pin::parse(&pin.to_toml()).unwrap(), pin);
        }
    }
}
