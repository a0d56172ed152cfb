//! Text helpers of the console's rendering: terminal-safe strings and short durations. Pure.
//!
//! Everything the console prints for a human passes [`esc`]: audit details, server names and
//! hardware facts come from the network (agents, tenants), and a control character in them
//! must neither break a table's lines nor reach the terminal as an escape sequence.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal as is: C0 and C1 controls and DEL (newlines, ESC,
/// CSI, ...), line and paragraph separators, and the bidirectional formatting characters
/// that can make text display in another order than it is stored.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every unsafe character written as an escape (`\n`, `\t`, `\r`, `\x1b`,
/// `\u{202e}`) and `\` doubled, so the output is one line and says exactly what was stored.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || unsafe_char(c)) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x100 && unsafe_char(c) => {
                let _ = write!(o, "\\x{:02x}", c as u32);
            }
            c if unsafe_char(c) => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    Cow::Owned(o)
}

/// [`esc`] of an optional value, `-` when absent.
pub fn esc_or_dash(s: Option<&str>) -> String {
    s.map(|s| esc(s).into_owned()).unwrap_or_else(|| "-".into())
}

/// A duration as its two largest units: `45s`, `12m 04s`, `3h 07m`, `5d 02h`.
pub fn short_duration(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{m}m {:02}s", s % 60),
        3600..86_400 => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h:02}h"),
    }
}

/// Time of an event after a reference point: `+0.250s` below a minute, then `+12m 04s`, ...
/// An event before the reference (clock skew) shows as `-...`.
pub fn offset(at_ms: u64, since_ms: u64) -> String {
    if at_ms < since_ms {
        return format!("-{}", short_duration(since_ms - at_ms));
    }
    let d = at_ms - since_ms;
    if d < 60_000 {
        format!("+{}.{:03}s", d / 1000, d % 1000)
    } else {
        format!("+{}", short_duration(d))
    }
}

/// How long until `end_ms`: `1h 59m`, or `overdue 3s` when it is past.
pub fn until(end_ms: u64, now_ms: u64) -> String {
    if end_ms >= now_ms {
        short_duration(end_ms - now_ms)
    } else {
        format!("overdue {}", short_duration(now_ms - end_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            esc("provisioning -> active (ünïcode ok)"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(
            esc("a\nb\r\tc\x1b[31mred\x07\u{7f}"),
            "a\\nb\\r\\tc\\x1b[31mred\\x07\\x7f"
        );
        // C1 CSI (U+009B) is a terminal escape too; RLO reorders what follows.
        assert_eq!(esc("x\u{9b}2Jy"), "x\\x9b2Jy");
        assert_eq!(esc("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(esc("line\u{2028}sep"), "line\\u{2028}sep");
        // The escape character itself is doubled, so `\n` typed by someone differs from a newline.
        assert_eq!(esc(r"C:\n"), r"C:\\n");
        assert_eq!(esc_or_dash(None), "-");
        assert_eq!(esc_or_dash(Some("a\nb")), "a\\nb");
    }

    #[test]
    fn durations() {
        assert_eq!(short_duration(0), "0s");
        assert_eq!(short_duration(59_999), "59s");
        assert_eq!(short_duration(724_000), "12m 04s");
        assert_eq!(
            short_duration(3 * 3_600_000 + 7 * 60_000 + 59_000),
            "3h 07m"
        );
        assert_eq!(short_duration(5 * 86_400_000 + 2 * 3_600_000), "5d 02h");
        assert_eq!(offset(1_250, 1_000), "+0.250s");
        assert_eq!(offset(1_000 + 61_000, 1_000), "+1m 01s");
        assert_eq!(offset(500, 1_000), "-0s");
        assert_eq!(until(10_000 + 7_200_000, 10_000), "2h 00m");
        assert_eq!(until(10_000, 13_000), "overdue 3s");
    }
}
