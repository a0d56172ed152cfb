//! The console lines of the tenant test OS. Pure: formatting only.
//!
//! ```text
//! TENANT-OS-UP lease=<tenant.lease or none> kernel=<uname -r> uptime_s=<first field of /proc/uptime>
//! TENANT-OS-CMDLINE <the whole /proc/cmdline>
//! ```
//!
//! Every value is printed as one word of printable ASCII: bytes outside `!`..`~` and the
//! backslash are written `\xNN`, so a hostile command line cannot start a line of its own or
//! fake a field. A value longer than [`MAX_VALUE`] bytes is cut there and ends in `...`.

use crate::cmdline::tenant_args;

/// The marker the lab and the demo wait for.
pub const UP_MARKER: &str = "TENANT-OS-UP";
/// The marker of the command-line line.
pub const CMDLINE_MARKER: &str = "TENANT-OS-CMDLINE";
/// Longest value (in input bytes) printed in full.
pub const MAX_VALUE: usize = 256;
/// Longest command line (in input bytes) printed in full (x86's COMMAND_LINE_SIZE is 2048).
pub const MAX_CMDLINE: usize = 4096;

/// `bytes` as one printable word, cut after `max` input bytes (see the module docs).
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max) + 3);
    for &b in bytes.iter().take(max) {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}

/// The first field of `/proc/uptime` (seconds since boot), or `?` if it is not a number.
pub fn uptime_field(proc_uptime: &[u8]) -> String {
    let first = proc_uptime
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or_default();
    let numeric = !first.is_empty() && first.iter().all(|b| b.is_ascii_digit() || *b == b'.');
    if numeric && first.len() <= 32 {
        escape(first, 32)
    } else {
        "?".to_owned()
    }
}

/// The two report lines, each ending in `\n`.
pub fn report(cmdline: &[u8], kernel_release: &[u8], proc_uptime: &[u8]) -> String {
    let args = tenant_args(cmdline);
    let lease = args
        .lease
        .map_or_else(|| "none".to_owned(), |l| escape(l, MAX_VALUE));
    let kernel = if kernel_release.is_empty() {
        "?".to_owned()
    } else {
        escape(kernel_release, MAX_VALUE)
    };
    let uptime = uptime_field(proc_uptime);
    // /proc/cmdline ends in a newline; the words stay separated by single spaces.
    let words: Vec<String> = cmdline
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| escape(w, MAX_CMDLINE))
        .collect();
    let mut line = words.join(" ");
    if line.len() > MAX_CMDLINE {
        let mut cut = MAX_CMDLINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    format!(
        "{UP_MARKER} lease={lease} kernel={kernel} uptime_s={uptime}\n{CMDLINE_MARKER} {line}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_report() {
        let text = report(
            b"console=ttyS0 panic=-1 tenant.lease=l-e2e-test tenant.poweroff\n",
            b"6.1.0-56-amd64",
            b"5.43 4.90\n",
        );
        assert_eq!(
            text,
            "TENANT-OS-UP lease=l-e2e-test kernel=6.1.0-56-amd64 uptime_s=5.43\n\
             TENANT-OS-CMDLINE console=ttyS0 panic=-1 tenant.lease=l-e2e-test tenant.poweroff\n"
        );
    }

    #[test]
    fn no_lease_no_proc() {
        assert_eq!(
            report(b"", b"", b""),
            "TENANT-OS-UP lease=none kernel=? uptime_s=?\nTENANT-OS-CMDLINE \n"
        );
        assert_eq!(uptime_field(b"12x 3"), "?");
        assert_eq!(uptime_field(b"  7.00 1.00"), "7.00");
    }

    #[test]
    fn hostile_values_stay_one_word_on_one_line() {
        let text = report(
            b"tenant.lease=\"a b\nTENANT-OS-UP lease=evil\\\xff\" x",
            b"6.1\n",
            b"1.0",
        );
        assert_eq!(text.lines().count(), 2, "{text}");
        let up = text.lines().next().unwrap();
        assert_eq!(
            up,
            "TENANT-OS-UP lease=a\\x20b\\x0aTENANT-OS-UP\\x20lease=evil\\x5c\\xff kernel=6.1\\x0a uptime_s=1.0"
        );
        assert_eq!(up.split(' ').count(), 4);
    }

    #[test]
    fn long_values_are_cut() {
        let mut line = b"tenant.lease=".to_vec();
        line.extend(std::iter::repeat_n(b'q', 10_000));
        let text = report(&line, b"k", b"1");
        let up = text.lines().next().unwrap();
        assert!(up.starts_with(&format!("TENANT-OS-UP lease={}... ", "q".repeat(MAX_VALUE))));
        let cmd = text.lines().nth(1).unwrap();
        assert_eq!(cmd.len(), CMDLINE_MARKER.len() + 1 + MAX_CMDLINE + 3);
        assert_eq!(escape(&[0xff; 3], 2), "\\xff\\xff...");
    }
}
