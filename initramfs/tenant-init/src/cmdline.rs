//! The kernel command line as the kernel itself splits it (`next_arg` in `lib/cmdline.c` and
//! `kernel/params.c`). Pure: bytes in, borrowed slices out; never panics, linear in the input,
//! allocates nothing while parsing.
//!
//! Rules: parameters are separated by whitespace (the kernel's `isspace`: space, `\t\n\v\f\r`
//! and byte 0xA0) outside double quotes; the first `=` that is not the parameter's first byte
//! splits key and value; a `"` anywhere toggles quoting; one leading `"` of the parameter and one
//! leading `"` of the value are dropped, and then one trailing `"` each. The bytes need not be
//! UTF-8. A repeated key: the last one wins. A key without `=` has no value. Unlike the kernel,
//! a `--` does not end the scan: this reads `/proc/cmdline` as a whole.

/// The kernel's `isspace` (lib/ctype.c, Latin-1: 0xA0 is a space too).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

/// One `key[=value]` of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub key: &'a [u8],
    /// `None` for a bare `key`, `Some(b"")` for `key=`.
    pub value: Option<&'a [u8]>,
}

/// Iterator over the parameters of a command line, see [`params`].
#[derive(Debug, Clone)]
pub struct Params<'a> {
    rest: &'a [u8],
}

/// The parameters of `cmdline`, in order.
pub fn params(cmdline: &[u8]) -> Params<'_> {
    Params { rest: cmdline }
}

impl<'a> Iterator for Params<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        let start = self.rest.iter().position(|&b| !is_space(b))?;
        let mut arg = &self.rest[start..];
        let quoted = arg.first() == Some(&b'"');
        if quoted {
            arg = &arg[1..];
        }
        let mut in_quote = quoted;
        let mut equals = None;
        let mut end = arg.len();
        for (i, &b) in arg.iter().enumerate() {
            if is_space(b) && !in_quote {
                end = i;
                break;
            }
            // The kernel's `equals == 0` means "none yet", so a leading '=' never splits.
            if equals.is_none() && b == b'=' && i > 0 {
                equals = Some(i);
            }
            if b == b'"' {
                in_quote = !in_quote;
            }
        }
        self.rest = &arg[end..];
        let mut whole = &arg[..end];
        // The kernel drops the closing quote of a quoted parameter or value (one byte).
        let trailing_quote = whole.last() == Some(&b'"');
        let param = match equals {
            None => {
                if quoted && trailing_quote {
                    whole = &whole[..whole.len() - 1];
                }
                Param {
                    key: whole,
                    value: None,
                }
            }
            Some(eq) => {
                let key = &whole[..eq];
                let mut value = &whole[eq + 1..];
                if value.first() == Some(&b'"') {
                    value = &value[1..];
                    if trailing_quote && !value.is_empty() {
                        value = &value[..value.len() - 1];
                    }
                } else if quoted && trailing_quote && !value.is_empty() {
                    value = &value[..value.len() - 1];
                }
                Param {
                    key,
                    value: Some(value),
                }
            }
        };
        Some(param)
    }
}

/// The last occurrence of `key`: `None` if absent, `Some(None)` if present without `=`.
pub fn last<'a>(cmdline: &'a [u8], key: &[u8]) -> Option<Option<&'a [u8]>> {
    params(cmdline)
        .filter(|p| p.key == key)
        .last()
        .map(|p| p.value)
}

/// The command-line key naming the lease (appended by the agent before kexec).
pub const LEASE_KEY: &[u8] = b"tenant.lease";
/// The command-line key asking the test OS to power off after its report.
pub const POWEROFF_KEY: &[u8] = b"tenant.poweroff";

/// What the tenant test OS takes from its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantArgs<'a> {
    /// `tenant.lease=<id>`; `None` when absent, bare or empty.
    pub lease: Option<&'a [u8]>,
    /// `tenant.poweroff` bare or with any value but `0`, `no`, `false`, `off`.
    pub poweroff: bool,
}

/// Read [`LEASE_KEY`] and [`POWEROFF_KEY`] from a command line (last occurrence wins).
pub fn tenant_args(cmdline: &[u8]) -> TenantArgs<'_> {
    let lease = last(cmdline, LEASE_KEY).flatten().filter(|v| !v.is_empty());
    let poweroff = match last(cmdline, POWEROFF_KEY) {
        None => false,
        Some(None) => true,
        Some(Some(v)) => !matches!(v, b"0" | b"no" | b"false" | b"off"),
    };
    TenantArgs { lease, poweroff }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(cmdline: &[u8]) -> Vec<(String, Option<String>)> {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        params(cmdline)
            .map(|p| (s(p.key), p.value.map(s)))
            .collect()
    }

    fn kv(k: &str, v: Option<&str>) -> (String, Option<String>) {
        (k.to_owned(), v.map(str::to_owned))
    }

    #[test]
    fn the_e2e_command_line() {
        let line = b"console=ttyS0 panic=-1 tenant.lease=l-e2e-test tenant.poweroff\n".as_slice();
        assert_eq!(
            pairs(line),
            vec![
                kv("console", Some("ttyS0")),
                kv("panic", Some("-1")),
                kv("tenant.lease", Some("l-e2e-test")),
                kv("tenant.poweroff", None),
            ]
        );
        let args = tenant_args(line);
        assert_eq!(args.lease, Some(b"l-e2e-test".as_slice()));
        assert!(args.poweroff);
    }

    #[test]
    fn quotes_as_the_kernel_reads_them() {
        assert_eq!(
            pairs(br#"a="b c" "d=e f" "g h" x="" y=" z"#),
            vec![
                kv("a", Some("b c")),
                kv("d", Some("e f")),
                kv("g h", None),
                kv("x", Some("")),
                kv("y", Some(" z")),
            ]
        );
        // An unterminated quote runs to the end of the line.
        assert_eq!(pairs(b"k=\"v w"), vec![kv("k", Some("v w"))]);
        // A quote inside a value only toggles splitting.
        assert_eq!(
            pairs(b"k=a\"b c\"d e"),
            vec![kv("k", Some("a\"b c\"d")), kv("e", None)]
        );
        assert_eq!(pairs(b"\""), vec![kv("", None)]);
        assert_eq!(pairs(b"\"\""), vec![kv("", None)]);
        assert_eq!(pairs(b"=\""), vec![kv("=\"", None)]);
        assert_eq!(pairs(b"=a=b"), vec![kv("=a", Some("b"))]);
    }

    #[test]
    fn repeated_keys_the_last_wins() {
        let line = b"tenant.lease=a tenant.lease=b tenant.poweroff tenant.poweroff=0";
        let args = tenant_args(line);
        assert_eq!(args.lease, Some(b"b".as_slice()));
        assert!(!args.poweroff);
        assert!(tenant_args(b"tenant.poweroff=0 tenant.poweroff").poweroff);
        assert!(tenant_args(b"tenant.poweroff=1").poweroff);
        // A later bare or empty lease clears an earlier one.
        assert_eq!(tenant_args(b"tenant.lease=a tenant.lease").lease, None);
        assert_eq!(tenant_args(b"tenant.lease=a tenant.lease=").lease, None);
        // Only the exact key counts.
        let near = tenant_args(b"tenant.leases=x xtenant.lease=y tenant.poweroffx");
        assert_eq!(
            near,
            TenantArgs {
                lease: None,
                poweroff: false
            }
        );
    }

    #[test]
    fn empty_and_whitespace_only() {
        assert!(pairs(b"").is_empty());
        assert!(pairs(b" \t\n\r\x0b\x0c\xa0 ").is_empty());
        assert_eq!(
            pairs(b"a\xa0b\x0bc"),
            vec![kv("a", None), kv("b", None), kv("c", None)]
        );
        assert_eq!(
            tenant_args(b""),
            TenantArgs {
                lease: None,
                poweroff: false
            }
        );
    }

    #[test]
    fn non_utf8_bytes_are_kept() {
        let line = b"tenant.lease=\xff\xfe\x00x other=\x80";
        let args = tenant_args(line);
        assert_eq!(args.lease, Some(b"\xff\xfe\x00x".as_slice()));
        assert_eq!(params(line).count(), 2);
    }

    #[test]
    fn very_long_lines() {
        let mut line = Vec::new();
        for i in 0..20_000 {
            line.extend_from_slice(format!("k{i}=v{i} ").as_bytes());
        }
        line.extend_from_slice(b"tenant.lease=");
        line.extend(std::iter::repeat_n(b'z', 1 << 20));
        assert_eq!(params(&line).count(), 20_001);
        assert_eq!(tenant_args(&line).lease.map(<[u8]>::len), Some(1 << 20));
        // One huge quoted parameter.
        let mut quoted = vec![b'"'];
        quoted.extend(std::iter::repeat_n(b' ', 1 << 20));
        assert_eq!(params(&quoted).count(), 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep over short inputs from a small alphabet of the special bytes.
        let alphabet = [b'a', b'=', b'"', b' ', b'\n', 0xff, 0];
        let mut input = Vec::new();
        for n in 0u32..(7u32.pow(6)) {
            input.clear();
            let mut x = n;
            for _ in 0..6 {
                input.push(alphabet[(x % 7) as usize]);
                x /= 7;
            }
            for p in params(&input) {
                assert!(p.key.len() <= input.len());
            }
            let _ = tenant_args(&input);
        }
    }
}
