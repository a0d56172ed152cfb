//! The kernel command line (`/proc/cmdline`) and the agent's arguments in it.
//!
//! Pure parsing, no IO: the caller reads the file and passes its bytes.
//!
//! Words are split the way the kernel's `next_arg()` (lib/cmdline.c) splits them: runs of
//! whitespace separate words, a double quote toggles "inside quotes" (where spaces do not
//! separate), a value starting with `"` loses that quote and a matching trailing one, and a word
//! starting with `"` loses its outer quotes. Two choices are stricter than the kernel, because the
//! line comes from a script we render and a sloppy line is better refused than guessed at:
//!
//! - an unterminated quote anywhere is an error (the kernel would swallow the rest of the line,
//!   silently hiding every `lm.*` word after it);
//! - a NUL byte, or a line longer than [`MAX_CMDLINE`], is an error;
//! - an `lm.*` key given twice is an error ([`CmdlineError::Duplicate`]), even with equal values:
//!   two renderings of one key mean someone edited the line, and "last wins" would hide it.
//!
//! Keys of the contract with the per-host iPXE script: `lm.url` (required, `https://HOST:PORT`),
//! `lm.boot` (required, [`BootId`]), `lm.mac` (required, [`MacAddr`] of the boot NIC). Optional:
//! `lm.poweroff` (bring-up deadline in seconds, 1-86400, default
//! [`DEFAULT_POWEROFF_SECS`]) and `lm.log` (`error|warn|info|debug|trace`, default `info`).
//! A leased boot also carries `lm.lease` ([`LeaseId`]) and `lm.token` (the single-use
//! enrollment token, [`EnrollToken`]): both or neither (a maintenance boot has neither). The
//! token is a secret: it is never printed, not in `Debug` and not in errors.
//! Other words, including unknown `lm.*` keys that later versions add, are ignored; unknown
//! `lm.*` keys are listed in [`AgentArgs::ignored_lm_keys`] so the agent can log them.

use lm_api::{BootId, LeaseId, MacAddr};

use crate::lm_url::LmUrl;
use crate::secret::EnrollToken;

/// Longest command line accepted (the kernel's own limit on x86 is 2048; be generous).
pub const MAX_CMDLINE: usize = 64 * 1024;
/// Bring-up deadline when `lm.poweroff` is absent.
pub const DEFAULT_POWEROFF_SECS: u32 = 600;
/// Largest accepted `lm.poweroff`.
pub const MAX_POWEROFF_SECS: u32 = 86_400;

/// One word of the command line, after the kernel's quote rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word<'a> {
    /// The part before the first `=` (the whole word when there is none).
    pub key: &'a [u8],
    /// The part after the first `=`, if there is one.
    pub value: Option<&'a [u8]>,
}

/// How verbose the console log is (`lm.log=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

/// The agent's arguments from the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentArgs {
    /// Where the Lease Manager's HTTPS API listens.
    pub lm_url: LmUrl,
    /// This boot attempt.
    pub boot_id: BootId,
    /// The NIC the server booted from.
    pub boot_mac: MacAddr,
    /// Seconds from the start of `/init` until the agent gives up and powers off.
    pub poweroff_after_secs: u32,
    /// Console log level.
    pub log_level: LogLevel,
    /// `lm.*` keys this version does not know (for a log line; not an error).
    pub ignored_lm_keys: Vec<String>,
    /// The lease to enroll for (`lm.lease` + `lm.token`); `None` on a maintenance boot.
    pub enrollment: Option<Enrollment>,
}

/// What a leased boot needs to enroll. `Debug` shows the lease, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// `lm.lease=`.
    pub lease: LeaseId,
    /// `lm.token=`.
    pub token: EnrollToken,
}

/// Why the command line does not give the agent what it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("kernel command line is {len} bytes, more than the {max} accepted")]
    TooLong { len: usize, max: usize },
    #[error("kernel command line has a NUL byte at offset {offset}")]
    Nul { offset: usize },
    #[error("kernel command line has an unterminated double quote in the word at offset {offset}")]
    UnterminatedQuote { offset: usize },
    #[error("kernel command line has no {key}=; the per-host iPXE script must set it")]
    Missing { key: &'static str },
    #[error("kernel command line has {key}= more than once; refusing to guess which one counts")]
    Duplicate { key: &'static str },
    #[error(
        "kernel command line has {present}= but no {missing}=; a leased boot carries both, a maintenance boot neither"
    )]
    Unpaired {
        present: &'static str,
        missing: &'static str,
    },
    #[error("kernel command line: {key}={value:?} is not usable: {reason}")]
    Malformed {
        key: &'static str,
        /// The rejected value, lossily decoded and cut to 128 characters.
        value: String,
        reason: String,
    },
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Splits a command line into words with the kernel's quote rules (see the module doc).
pub fn words(line: &[u8]) -> Result<Vec<Word<'_>>, CmdlineError> {
    if line.len() > MAX_CMDLINE {
        return Err(CmdlineError::TooLong {
            len: line.len(),
            max: MAX_CMDLINE,
        });
    }
    if let Some(offset) = line.iter().position(|&b| b == 0) {
        return Err(CmdlineError::Nul { offset });
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < line.len() {
        let Some(rest) = line.get(pos..) else { break };
        let skip = rest.iter().take_while(|&&b| is_space(b)).count();
        pos += skip;
        let Some(rest) = line.get(pos..).filter(|r| !r.is_empty()) else {
            break;
        };
        let word_start = pos;
        let quoted = rest.first() == Some(&b'"');
        let args = if quoted {
            rest.get(1..).unwrap_or_default()
        } else {
            rest
        };
        let mut in_quote = quoted;
        let mut equals = None;
        let mut end = args.len();
        for (i, &b) in args.iter().enumerate() {
            if is_space(b) && !in_quote {
                end = i;
                break;
            }
            if equals.is_none() && b == b'=' {
                equals = Some(i);
            }
            if b == b'"' {
                in_quote = !in_quote;
            }
        }
        if in_quote {
            return Err(CmdlineError::UnterminatedQuote { offset: word_start });
        }
        let word = args.get(..end).unwrap_or_default();
        let (mut key, mut value) = match equals {
            None => (word, None),
            Some(eq) => (
                word.get(..eq).unwrap_or_default(),
                Some(word.get(eq + 1..).unwrap_or_default()),
            ),
        };
        // The kernel drops the opening quote of a value and the word's last byte when it is a
        // quote (once, even when both the word and the value were quoted).
        let mut dropped_last = false;
        if let Some(v) = value
            && let Some(v) = v.strip_prefix(b"\"")
        {
            dropped_last = v.ends_with(b"\"");
            value = Some(drop_last_quote(v));
        }
        if quoted && !dropped_last {
            match value {
                Some(v) => value = Some(drop_last_quote(v)),
                None => key = drop_last_quote(key),
            }
        }
        out.push(Word { key, value });
        // `end` is relative to `args`, which skipped the opening quote of a quoted word.
        pos = word_start + usize::from(quoted) + end;
    }
    Ok(out)
}

fn drop_last_quote(w: &[u8]) -> &[u8] {
    w.strip_suffix(b"\"").unwrap_or(w)
}

/// The `lm.*` keys this version knows.
const KNOWN: [&str; 7] = [
    "lm.url",
    "lm.boot",
    "lm.mac",
    "lm.poweroff",
    "lm.log",
    "lm.lease",
    "lm.token",
];

impl AgentArgs {
    /// Parses the agent's arguments out of the whole command line (see the module doc).
    pub fn parse(line: &[u8]) -> Result<Self, CmdlineError> {
        let mut found: [Option<&[u8]>; KNOWN.len()] = [None; KNOWN.len()];
        let mut ignored_lm_keys = Vec::new();
        for w in words(line)? {
            let Some(slot) = KNOWN.iter().position(|k| k.as_bytes() == w.key) else {
                if w.key.starts_with(b"lm.") {
                    ignored_lm_keys.push(lossy(w.key));
                }
                continue;
            };
            let key = KNOWN.get(slot).copied().unwrap_or("lm.?");
            let Some(entry) = found.get_mut(slot) else {
                continue;
            };
            if entry.is_some() {
                return Err(CmdlineError::Duplicate { key });
            }
            // A key without `=` counts as an empty value, refused below with the key's name.
            *entry = Some(w.value.unwrap_or_default());
        }
        let [url, boot, mac, poweroff, log, lease, token] = found;
        let lm_url = required("lm.url", url, |s| {
            LmUrl::parse(s).map_err(|e| e.to_string())
        })?;
        let boot_id = required("lm.boot", boot, |s| {
            s.parse::<BootId>().map_err(|e| e.to_string())
        })?;
        let boot_mac = required("lm.mac", mac, parse_boot_mac)?;
        let poweroff_after_secs = match poweroff {
            None => DEFAULT_POWEROFF_SECS,
            Some(v) => value_str("lm.poweroff", v).and_then(|s| {
                parse_poweroff(s).map_err(|reason| malformed("lm.poweroff", v, reason))
            })?,
        };
        let log_level = match log {
            None => LogLevel::default(),
            Some(v) => value_str("lm.log", v).and_then(|s| {
                parse_log_level(s).map_err(|reason| malformed("lm.log", v, reason))
            })?,
        };
        let enrollment = parse_enrollment(lease, token)?;
        Ok(Self {
            lm_url,
            boot_id,
            boot_mac,
            poweroff_after_secs,
            log_level,
            ignored_lm_keys,
            enrollment,
        })
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(128).collect()
}

fn malformed(key: &'static str, value: &[u8], reason: String) -> CmdlineError {
    CmdlineError::Malformed {
        key,
        value: lossy(value),
        reason,
    }
}

fn value_str<'a>(key: &'static str, v: &'a [u8]) -> Result<&'a str, CmdlineError> {
    std::str::from_utf8(v).map_err(|_| malformed(key, v, "not valid UTF-8".into()))
}

fn required<T>(
    key: &'static str,
    value: Option<&[u8]>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, CmdlineError> {
    let v = value.ok_or(CmdlineError::Missing { key })?;
    let s = value_str(key, v)?;
    parse(s).map_err(|reason| malformed(key, v, reason))
}

fn parse_enrollment(
    lease: Option<&[u8]>,
    token: Option<&[u8]>,
) -> Result<Option<Enrollment>, CmdlineError> {
    let (lease, token) = match (lease, token) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(CmdlineError::Unpaired {
                present: "lm.lease",
                missing: "lm.token",
            });
        }
        (None, Some(_)) => {
            return Err(CmdlineError::Unpaired {
                present: "lm.token",
                missing: "lm.lease",
            });
        }
        (Some(l), Some(t)) => (l, t),
    };
    let lease = required("lm.lease", Some(lease), |s| {
        s.parse::<LeaseId>().map_err(|e| e.to_string())
    })?;
    // The token's value never goes into an error: only its length.
    let redacted = |reason: String| CmdlineError::Malformed {
        key: "lm.token",
        value: format!("<redacted, {} bytes>", token.len()),
        reason,
    };
    let text = std::str::from_utf8(token).map_err(|_| redacted("not valid UTF-8".into()))?;
    let token = EnrollToken::parse(text).map_err(redacted)?;
    Ok(Some(Enrollment { lease, token }))
}

fn parse_boot_mac(s: &str) -> Result<MacAddr, String> {
    let mac = s.parse::<MacAddr>().map_err(|e| e.to_string())?;
    if mac.is_multicast() || mac == MacAddr::default() {
        return Err("a boot NIC has a unicast, non-zero address".into());
    }
    Ok(mac)
}

fn parse_poweroff(s: &str) -> Result<u32, String> {
    let range = || format!("expected whole seconds from 1 to {MAX_POWEROFF_SECS}");
    if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(range());
    }
    match s.parse::<u32>() {
        Ok(n) if (1..=MAX_POWEROFF_SECS).contains(&n) => Ok(n),
        _ => Err(range()),
    }
}

fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    Ok(match s {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => return Err("expected one of error, warn, info, debug, trace".into()),
    })
}

#[cfg(test)]
#[path = "cmdline_tests.rs"]
mod tests;
