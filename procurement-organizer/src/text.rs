//! Text helpers of the human output: terminal-safe strings, aligned tables, times and sizes.
//! Pure. (The same rules as the LM console's: every value from the network is escaped, so a
//! control character can neither break a table line nor reach the terminal.)

use std::borrow::Cow;
use std::fmt::Write;

fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with control, line-separator and bidi characters escaped and `\` doubled: one line that
/// says exactly what was stored.
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

/// An aligned table; every cell is escaped.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| esc(c).into_owned()).collect())
        .collect();
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let s: Vec<String> = cells
            .iter()
            .zip(&w)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", s.join("  ").trim_end());
    };
    line(header.to_vec(), &mut out);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// Unix ms as a UTC timestamp.
pub fn timestamp(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
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

/// Time of an event after `since_ms`: `+0.250s` below a minute, then `+12m 04s`.
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

/// How long until `end_ms`, or `overdue ...`.
pub fn until(end_ms: u64, now_ms: u64) -> String {
    if end_ms >= now_ms {
        short_duration(end_ms - now_ms)
    } else {
        format!("overdue {}", short_duration(now_ms - end_ms))
    }
}

/// Bytes in binary units.
pub fn bytes_h(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_tables() {
        assert_eq!(esc("a\nb\x1b[31m\u{202e}"), "a\\nb\\x1b[31m\\u{202e}");
        assert!(matches!(esc("plain"), Cow::Borrowed(_)));
        let t = table(&["A", "BB"], &[vec!["x\ny".into(), "1".into()]]);
        assert_eq!(t, "A     BB\nx\\ny  1\n");
        assert_eq!(offset(1250, 1000), "+0.250s");
        assert_eq!(offset(1000 + 724_000, 1000), "+12m 04s");
        assert_eq!(until(0, 3000), "overdue 3s");
        assert_eq!(bytes_h(3 << 20), "3.0 MiB");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
    }
}
