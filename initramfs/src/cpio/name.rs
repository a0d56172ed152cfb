//! Archive entry names: validation and normalization. Pure, no IO.
//!
//! Every name that enters an archive (from the builder, from `modules.dep`, from a `--file`
//! destination) or comes out of one (the reader) passes through [`normalize`], so a hostile
//! name never reaches a path on disk or the kernel's unpacker.
//!
//! Rules for the normalized form:
//! - one leading `/` or `./` is stripped (`/init` and `./init` both become `init`);
//! - the rest is relative: no further leading `/`, no empty components (`a//b`, `a/`),
//!   no `.` or `..` components;
//! - no NUL and no control characters (a newline would break `modules.order` and listings);
//! - at most [`MAX_COMPONENT_LEN`] bytes per component and [`MAX_NAME_LEN`] bytes in all
//!   (the newc name size field then stays within `PATH_MAX` including the NUL).

use thiserror::Error;

/// Longest accepted name in bytes, excluding the terminating NUL (`PATH_MAX` - 1).
pub const MAX_NAME_LEN: usize = 4095;
/// Longest accepted path component in bytes (`NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is not valid UTF-8")]
    NotUtf8,
    #[error("name contains a NUL byte")]
    Nul,
    #[error("name contains a control character (0x{byte:02x})")]
    Control { byte: u8 },
    #[error("name is absolute after stripping one leading '/' or './'")]
    Absolute,
    #[error("name has an empty component ('//' or a trailing '/')")]
    EmptyComponent,
    #[error("name has a '.' component")]
    DotComponent,
    #[error("name has a '..' component")]
    DotDot,
    #[error("name is {len} bytes long; the limit is {MAX_NAME_LEN}")]
    TooLong { len: usize },
    #[error("a component is {len} bytes long; the limit is {MAX_COMPONENT_LEN}")]
    ComponentTooLong { len: usize },
}

/// Validate `name` and return its normalized relative form (see the module docs).
pub fn normalize(name: &str) -> Result<String, NameError> {
    let rest = name
        .strip_prefix("./")
        .or_else(|| name.strip_prefix('/'))
        .unwrap_or(name);
    if rest.is_empty() {
        return Err(NameError::Empty);
    }
    if rest.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: rest.len() });
    }
    if let Some(byte) = rest.bytes().find(|b| *b == 0 || b.is_ascii_control()) {
        return Err(if byte == 0 {
            NameError::Nul
        } else {
            NameError::Control { byte }
        });
    }
    if rest.starts_with('/') {
        return Err(NameError::Absolute);
    }
    for component in rest.split('/') {
        match component {
            "" => return Err(NameError::EmptyComponent),
            "." => return Err(NameError::DotComponent),
            ".." => return Err(NameError::DotDot),
            c if c.len() > MAX_COMPONENT_LEN => {
                return Err(NameError::ComponentTooLong { len: c.len() });
            }
            _ => {}
        }
    }
    Ok(rest.to_owned())
}

/// [`normalize`] for raw bytes (names read from an archive or a foreign file).
pub fn normalize_bytes(name: &[u8]) -> Result<String, NameError> {
    let text = std::str::from_utf8(name).map_err(|_| NameError::NotUtf8)?;
    normalize(text)
}

/// The parent directories of a normalized name, outermost first (`a/b/c` -> `a`, `a/b`).
pub fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('/').map(move |(i, _)| &name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strips_one_leading_root_or_dot() {
        assert_eq!(normalize("/init").unwrap(), "init");
        assert_eq!(normalize("./init").unwrap(), "init");
        assert_eq!(normalize("etc/agent/x").unwrap(), "etc/agent/x");
        assert_eq!(normalize("//init"), Err(NameError::Absolute));
        assert_eq!(normalize("/./init"), Err(NameError::DotComponent));
        assert_eq!(normalize(".//init"), Err(NameError::Absolute));
    }

    #[test]
    fn hostile_names_are_refused() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("/", NameError::Empty),
            ("./", NameError::Empty),
            (".", NameError::DotComponent),
            ("..", NameError::DotDot),
            ("../etc/shadow", NameError::DotDot),
            ("a/../../b", NameError::DotDot),
            ("a/./b", NameError::DotComponent),
            ("a//b", NameError::EmptyComponent),
            ("a/", NameError::EmptyComponent),
            ("a\0b", NameError::Nul),
            ("a\nb", NameError::Control { byte: b'\n' }),
            ("a\x7fb", NameError::Control { byte: 0x7f }),
        ];
        for (name, want) in cases {
            assert_eq!(normalize(name).as_ref(), Err(want), "{name:?}");
        }
    }

    #[test]
    fn length_limits() {
        let component = "x".repeat(MAX_COMPONENT_LEN);
        assert!(normalize(&component).is_ok());
        let long_component = "x".repeat(MAX_COMPONENT_LEN + 1);
        assert_eq!(
            normalize(&long_component),
            Err(NameError::ComponentTooLong {
                len: MAX_COMPONENT_LEN + 1
            })
        );
        let mut long = String::new();
        while long.len() <= MAX_NAME_LEN {
            long.push_str("abcdefg/");
        }
        long.push('z');
        assert!(matches!(normalize(&long), Err(NameError::TooLong { .. })));
        // Exactly at the limit is fine.
        let exact: String = (0..MAX_NAME_LEN)
            .map(|i| if i % 100 == 99 { '/' } else { 'a' })
            .collect();
        assert_eq!(normalize(&exact).unwrap().len(), MAX_NAME_LEN);
    }

    #[test]
    fn non_utf8_bytes_are_refused() {
        assert_eq!(normalize_bytes(b"a\xffb"), Err(NameError::NotUtf8));
        assert_eq!(normalize_bytes(b"lib/x.ko").unwrap(), "lib/x.ko");
    }

    #[test]
    fn ancestors_outermost_first() {
        let got: Vec<_> = ancestors("a/b/c").collect();
        assert_eq!(got, ["a", "a/b"]);
        assert_eq!(ancestors("init").count(), 0);
    }

    proptest! {
        #[test]
        fn normalized_names_are_fixed_points(name in "\\PC{0,64}") {
            if let Ok(n) = normalize(&name) {
                // A normalized name is relative and stays the same when normalized again.
                prop_assert!(!n.starts_with('/'));
                let again = normalize(&n);
                prop_assert_eq!(again.as_deref(), Ok(n.as_str()));
                prop_assert!(n.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = normalize_bytes(&bytes);
        }
    }
}
