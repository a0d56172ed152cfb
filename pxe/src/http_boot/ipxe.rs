//! The per-host iPXE script. Pure.
//!
//! The script boots the kernel and the initramfs over HTTP from per-host URLs, so that every
//! fetch is attributed to a MAC:
//!
//! ```text
//! #!ipxe
//! echo Lease Manager: booting {name} (boot {boot_id})
//! kernel http://{http_host}/boot/{mac-dashed}/vmlinuz initrd=initrd {cmdline}
//! initrd --name initrd http://{http_host}/boot/{mac-dashed}/initrd
//! boot
//! ```
//!
//! `cmdline` is the configured base followed by `lm.url={api_url} lm.boot={boot_id}
//! lm.mac={mac}` (colons): these three keys are the contract with the agent's command-line
//! parser. `initrd=initrd` with `--name initrd` is what the kernel's EFI stub needs under UEFI
//! and is harmless under BIOS.
//!
//! Every value is checked before it reaches the script: iPXE expands `${...}`, splits on
//! whitespace, honours quotes and backslashes, and treats `||`, `&&` and `;` as operators, so
//! a value with any of those could run other commands. Script words are non-empty printable
//! ASCII without whitespace and without `" ' \` $ ; | & < > #`. The base may not set `lm.*` or
//! `initrd=` itself, and the whole command line must fit the kernel's 2048-byte buffer.

use lm_api::{BootId, MacAddr};

/// The kernel command line the appliance uses unless configured otherwise.
pub const DEFAULT_CMDLINE_BASE: &str = "console=ttyS0,115200 panic=-1 quiet";

/// Longest kernel command line (x86 `COMMAND_LINE_SIZE` is 2048 including the NUL).
pub const MAX_CMDLINE: usize = 2047;

/// Longest inventory name put into the script.
pub const MAX_NAME: usize = 128;

/// Which input a [`ScriptError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptField {
    /// The `host:port` iPXE uses to reach the HTTP listener.
    HttpHost,
    /// The LM API URL for the agent.
    ApiUrl,
    /// A word of the configured kernel command line.
    CmdlineBase,
    /// The inventory name of the host.
    Name,
}

impl std::fmt::Display for ScriptField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::HttpHost => "http_host",
            Self::ApiUrl => "api_url",
            Self::CmdlineBase => "cmdline_base",
            Self::Name => "server name",
        })
    }
}

/// A value that cannot go into an iPXE script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The value is empty.
    #[error("{field} is empty")]
    Empty {
        /// Which input.
        field: ScriptField,
    },
    /// The value holds a character iPXE or the kernel would interpret.
    #[error("{field} {value:?} holds {ch:?}, which is not allowed in an iPXE script")]
    ForbiddenChar {
        /// Which input.
        field: ScriptField,
        /// The value (at most 64 characters).
        value: String,
        /// The first forbidden character.
        ch: char,
    },
    /// The value is too long.
    #[error("{field} is {len} bytes long, more than {max}")]
    TooLong {
        /// Which input.
        field: ScriptField,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The API URL is not an `http://` or `https://` URL.
    #[error("api_url {value:?} must start with http:// or https:// and name a host")]
    NotHttpUrl {
        /// The value (at most 64 characters).
        value: String,
    },
    /// The HTTP host is not `host` or `host:port` (letters, digits, `.-:[]`).
    #[error("http_host {value:?} must be host or host:port, e.g. 10.77.0.1:8080")]
    BadHost {
        /// The value (at most 64 characters).
        value: String,
    },
    /// A command-line word the script sets itself.
    #[error("per-boot word {word:?} is not `lm.<key>=<value>` with a safe value")]
    BadExtra { word: String },
    #[error("cmdline_base word {word:?} is reserved: the script sets lm.* and initrd= itself")]
    ReservedWord {
        /// The word.
        word: String,
    },
}

/// A per-boot word must be `lm.<lowercase key>=<1-128 of [A-Za-z0-9._:-]>`.
fn check_extra(word: &str) -> Result<(), ScriptError> {
    let ok = word
        .strip_prefix("lm.")
        .and_then(|r| r.split_once('='))
        .is_some_and(|(k, v)| {
            !k.is_empty()
                && k.len() <= 16
                && k.bytes().all(|b| b.is_ascii_lowercase())
                && !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(ScriptError::BadExtra { word: clip(word) })
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn forbidden(ch: char) -> bool {
    !ch.is_ascii_graphic()
        || matches!(
            ch,
            '"' | '\'' | '\\' | '`' | '$' | ';' | '|' | '&' | '<' | '>' | '#'
        )
}

/// Checks one script word (see the module doc).
fn check_word(field: ScriptField, value: &str, max: usize) -> Result<(), ScriptError> {
    if value.is_empty() {
        return Err(ScriptError::Empty { field });
    }
    if value.len() > max {
        return Err(ScriptError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    match value.chars().find(|c| forbidden(*c)) {
        Some(ch) => Err(ScriptError::ForbiddenChar {
            field,
            value: clip(value),
            ch,
        }),
        None => Ok(()),
    }
}

/// The validated, host-independent part of the script: built once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptTemplate {
    http_host: String,
    api_url: String,
    base: Vec<String>,
}

/// Bytes of the kernel command line around the base words and the API URL:
/// `initrd=initrd ` + `lm.url=` + ` lm.boot=<16 hex>` + ` lm.mac=<17>`.
/// Room kept for the per-boot words (`lm.lease=`, `lm.token=`) of [`ScriptTemplate::render_with`].
pub const EXTRA_RESERVE: usize = 192;
const FIXED_CMDLINE: usize = "initrd=initrd ".len()
    + "lm.url=".len()
    + " lm.boot=".len()
    + 16
    + " lm.mac=".len()
    + 17
    + EXTRA_RESERVE;

impl ScriptTemplate {
    /// Validates the configuration. `cmdline_base` is split on spaces; each word is checked.
    pub fn new(http_host: &str, api_url: &str, cmdline_base: &str) -> Result<Self, ScriptError> {
        check_word(ScriptField::HttpHost, http_host, 255)?;
        if !http_host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        {
            return Err(ScriptError::BadHost {
                value: clip(http_host),
            });
        }
        check_word(ScriptField::ApiUrl, api_url, 512)?;
        let rest = api_url
            .strip_prefix("https://")
            .or_else(|| api_url.strip_prefix("http://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) {
            return Err(ScriptError::NotHttpUrl {
                value: clip(api_url),
            });
        }
        let mut base = Vec::new();
        for word in cmdline_base.split(' ').filter(|w| !w.is_empty()) {
            check_word(ScriptField::CmdlineBase, word, MAX_CMDLINE)?;
            if word.starts_with("lm.") || word.starts_with("initrd=") {
                return Err(ScriptError::ReservedWord { word: clip(word) });
            }
            base.push(word.to_owned());
        }
        let template = Self {
            http_host: http_host.to_owned(),
            api_url: api_url.to_owned(),
            base,
        };
        let len = template.base.iter().map(|w| w.len() + 1).sum::<usize>()
            + template.api_url.len()
            + FIXED_CMDLINE;
        if len > MAX_CMDLINE {
            return Err(ScriptError::TooLong {
                field: ScriptField::CmdlineBase,
                len,
                max: MAX_CMDLINE,
            });
        }
        Ok(template)
    }

    /// The `host:port` in the script's URLs.
    pub fn http_host(&self) -> &str {
        &self.http_host
    }

    /// The kernel command line after `initrd=initrd`: base words, then the `lm.*` keys.
    pub fn kernel_cmdline(&self, mac: MacAddr, boot_id: BootId) -> String {
        self.kernel_cmdline_with(mac, boot_id, &[])
    }

    /// The kernel command line with per-boot words from the LM appended (`lm.lease=`,
    /// `lm.token=`), already checked by [`check_extra`].
    fn kernel_cmdline_with(&self, mac: MacAddr, boot_id: BootId, extra: &[String]) -> String {
        let mut words = self.base.clone();
        words.push(format!("lm.url={}", self.api_url));
        words.push(format!("lm.boot={boot_id}"));
        words.push(format!("lm.mac={mac}"));
        words.extend(extra.iter().cloned());
        words.join(" ")
    }

    /// The script for one host; refuses a name that is not a safe script word.
    pub fn render(&self, name: &str, mac: MacAddr, boot_id: BootId) -> Result<String, ScriptError> {
        self.render_with(name, mac, boot_id, &[])
    }

    /// The script for one host with per-boot `lm.<key>=<value>` words for the agent.
    pub fn render_with(
        &self,
        name: &str,
        mac: MacAddr,
        boot_id: BootId,
        extra: &[String],
    ) -> Result<String, ScriptError> {
        check_word(ScriptField::Name, name, MAX_NAME)?;
        for w in extra {
            check_extra(w)?;
        }
        let extra_len: usize = extra.iter().map(|w| w.len() + 1).sum();
        if extra_len > EXTRA_RESERVE {
            return Err(ScriptError::TooLong {
                field: ScriptField::CmdlineBase,
                len: extra_len,
                max: EXTRA_RESERVE,
            });
        }
        let host = &self.http_host;
        let dashed = mac.dashed();
        let cmdline = self.kernel_cmdline_with(mac, boot_id, extra);
        Ok(format!(
            "#!ipxe\n\
             echo Lease Manager: booting {name} (boot {boot_id})\n\
             kernel http://{host}/boot/{dashed}/vmlinuz initrd=initrd {cmdline}\n\
             initrd --name initrd http://{host}/boot/{dashed}/initrd\n\
             boot\n"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    fn template() -> ScriptTemplate {
        ScriptTemplate::new(
            "10.77.0.1:8080",
            "https://10.77.0.1:8443",
            DEFAULT_CMDLINE_BASE,
        )
        .unwrap()
    }

    #[test]
    fn golden_script() {
        let script = template()
            .render("vm1", MAC, BootId::from_random(0xff))
            .unwrap();
        assert_eq!(
            script,
            "#!ipxe\n\
             echo Lease Manager: booting vm1 (boot 00000000000000ff)\n\
             kernel http://10.77.0.1:8080/boot/52-54-00-12-34-56/vmlinuz initrd=initrd \
             console=ttyS0,115200 panic=-1 quiet lm.url=https://10.77.0.1:8443 \
             lm.boot=00000000000000ff lm.mac=52:54:00:12:34:56\n\
             initrd --name initrd http://10.77.0.1:8080/boot/52-54-00-12-34-56/initrd\n\
             boot\n"
        );
    }

    #[test]
    fn per_boot_words_are_appended_and_checked() {
        let t = template();
        let id = BootId::from_random(1);
        let extra = vec![
            "lm.lease=l-0000000000000001".to_string(),
            format!("lm.token={}", "a".repeat(64)),
        ];
        let s = t.render_with("vm1", MAC, id, &extra).unwrap();
        assert!(
            s.contains(" lm.mac=52:54:00:12:34:56 lm.lease=l-0000000000000001 lm.token=aaaa"),
            "{s}"
        );
        for bad in [
            "lease=x",
            "lm.=x",
            "lm.Lease=x",
            "lm.lease=",
            "lm.lease=a b",
            "lm.lease=a\nboot",
            "lm.x=;shell",
            &format!("lm.t={}", "a".repeat(129)),
        ] {
            assert!(
                t.render_with("vm1", MAC, id, &[bad.to_string()]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn base_spacing_is_normalized_and_may_be_empty() {
        let t = ScriptTemplate::new("lm.lab", "http://lm.lab", "  quiet   panic=-1 ").unwrap();
        let id = BootId::from_random(1);
        assert_eq!(
            t.kernel_cmdline(MAC, id),
            "quiet panic=-1 lm.url=http://lm.lab lm.boot=0000000000000001 lm.mac=52:54:00:12:34:56"
        );
        let t = ScriptTemplate::new("[fd99::1]:80", "http://[fd99::1]", "").unwrap();
        assert!(t.kernel_cmdline(MAC, id).starts_with("lm.url="));
    }

    #[test]
    fn hostile_names_are_refused() {
        let t = template();
        let id = BootId::from_random(1);
        for (name, ch) in [
            ("vm 1", ' '),
            ("vm\n1", '\n'),
            ("${net0/mac}", '$'),
            ("a\"b", '"'),
            ("a'b", '\''),
            ("a\\b", '\\'),
            ("x;shell", ';'),
            ("||", '|'),
            ("a&&b", '&'),
            ("#x", '#'),
            ("vm\u{7f}", '\u{7f}'),
            ("vm\u{e9}", '\u{e9}'),
            ("vm\t", '\t'),
        ] {
            let e = t.render(name, MAC, id).unwrap_err();
            assert!(
                matches!(e, ScriptError::ForbiddenChar { field: ScriptField::Name, ch: c, .. } if c == ch),
                "{name:?}: {e:?}"
            );
        }
        assert!(matches!(
            t.render("", MAC, id),
            Err(ScriptError::Empty { .. })
        ));
        let long = "a".repeat(MAX_NAME + 1);
        assert!(matches!(
            t.render(&long, MAC, id),
            Err(ScriptError::TooLong { .. })
        ));
        assert!(t.render("rack3-srv07.dc_1", MAC, id).is_ok());
    }

    #[test]
    fn hostile_config_is_refused() {
        let ok_url = "https://10.77.0.1:8443";
        let host_err = |h: &str| ScriptTemplate::new(h, ok_url, "").unwrap_err();
        assert!(matches!(
            host_err(""),
            ScriptError::Empty {
                field: ScriptField::HttpHost
            }
        ));
        assert!(matches!(
            host_err("10.77.0.1/x"),
            ScriptError::BadHost { .. }
        ));
        assert!(matches!(host_err("a@b"), ScriptError::BadHost { .. }));
        assert!(matches!(
            host_err("h ost"),
            ScriptError::ForbiddenChar { .. }
        ));
        assert!(matches!(
            host_err("${ip}"),
            ScriptError::ForbiddenChar { .. }
        ));

        let url_err = |u: &str| ScriptTemplate::new("h:1", u, "").unwrap_err();
        for u in [
            "ftp://x",
            "https://",
            "http:///x",
            "10.0.0.1:8443",
            "HTTPS//x",
        ] {
            assert!(
                matches!(url_err(u), ScriptError::NotHttpUrl { .. }),
                "{u:?}"
            );
        }
        assert!(matches!(
            url_err("https://x/${a}"),
            ScriptError::ForbiddenChar { .. }
        ));
        assert!(matches!(
            url_err("https://x\n"),
            ScriptError::ForbiddenChar { .. }
        ));

        let base_err = |b: &str| ScriptTemplate::new("h:1", ok_url, b).unwrap_err();
        for b in [
            "quiet lm.url=http://evil",
            "lm.boot=0",
            "initrd=/x.img",
            "lm.other=1",
        ] {
            assert!(
                matches!(base_err(b), ScriptError::ReservedWord { .. }),
                "{b:?}"
            );
        }
        for b in [
            "a\tb",
            "quiet\nkernel http://evil/x",
            "root=\"x y\"",
            "x=$y",
            "a;b",
        ] {
            assert!(
                matches!(base_err(b), ScriptError::ForbiddenChar { .. }),
                "{b:?}"
            );
        }
        let long = "x".repeat(2000);
        assert!(matches!(base_err(&long), ScriptError::TooLong { .. }));
    }

    #[test]
    fn longest_accepted_cmdline_fits_the_kernel() {
        // The largest base accepted still leaves room for the lm.* keys.
        let url = "https://10.77.0.1:8443";
        let mut base = String::new();
        while ScriptTemplate::new("h:1", url, &format!("{base} x")).is_ok() {
            base.push_str(" x");
        }
        let t = ScriptTemplate::new("h:1", url, &base).unwrap();
        let line = format!(
            "initrd=initrd {}",
            t.kernel_cmdline(MAC, BootId::from_random(u64::MAX))
        );
        assert!(line.len() <= MAX_CMDLINE, "{}", line.len());
        assert!(
            line.len() >= MAX_CMDLINE - 1 - EXTRA_RESERVE,
            "{}",
            line.len()
        );
    }
}
