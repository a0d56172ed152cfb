//! The image benchmark's markdown: one row per measurement, one column per AEAD, ratios to
//! openssl; the reader's memory; the goals. Pure.

use std::fmt::Write as _;

use super::{AeadResult, ImageBenchResult, MemResult, Rate, Round, median};

/// Median over the rounds of one figure.
fn med(a: &AeadResult, f: impl Fn(&Round) -> f64) -> f64 {
    median(a.rounds.iter().map(f).collect())
}

/// Median and range over the rounds of ours / reference, as text.
fn ratios(a: &AeadResult, f: impl Fn(&Round) -> (f64, f64)) -> (f64, String) {
    let v: Vec<f64> = a
        .rounds
        .iter()
        .map(&f)
        .filter(|(_, reference)| *reference > 0.0)
        .map(|(ours, reference)| ours / reference)
        .collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    let m = median(v);
    (m, format!("**{m:.2}x** ({lo:.2}x-{hi:.2}x)"))
}

/// The markdown report.
pub fn report(r: &ImageBenchResult) -> String {
    let mut o = String::new();
    let mib = r.image_bytes >> 20;
    let rounds = r.aeads.first().map(|a| a.rounds.len()).unwrap_or(0);
    let _ = write!(
        o,
        "| one thread, {mib} MiB generated on the fly, 1 MiB chunks; medians of {rounds} rounds, MB per CPU-second (wall clock) |"
    );
    for a in &r.aeads {
        let _ = write!(o, " {} |", a.aead);
    }
    let _ = writeln!(o, "\n|---|{}", "---|".repeat(r.aeads.len()));
    let row = |o: &mut String, label: &str, cell: &dyn Fn(&AeadResult) -> String| {
        let _ = write!(o, "| {label} |");
        for a in &r.aeads {
            let _ = write!(o, " {} |", cell(a));
        }
        o.push('\n');
    };
    row(
        &mut o,
        "`openssl speed -evp` (64 KiB), encrypt / `-decrypt`",
        &|a| {
            format!(
                "{:.0} / {:.0}",
                med(a, |x| x.openssl_enc_mbs),
                med(a, |x| x.openssl_dec_mbs)
            )
        },
    );
    row(
        &mut o,
        "ring's AEAD alone, in place on 1 MiB, seal / open",
        &|a| {
            format!(
                "{:.0} / {:.0}",
                med(a, |x| x.ring_seal.cpu_mbs),
                med(a, |x| x.ring_open.cpu_mbs)
            )
        },
    );
    row(
        &mut o,
        "**seal** (generate, chunk, AEAD, tag list, sign) -> sink",
        &|a| {
            format!(
                "**{:.0}** ({:.0})",
                med(a, |x| x.seal_sink.cpu_mbs),
                med(a, |x| x.seal_sink.wall_mbs)
            )
        },
    );
    row(
        &mut o,
        "**open** <- file (read, tag, AEAD, hand out), `finish`",
        &|a| {
            format!(
                "**{:.0}** ({:.0})",
                med(a, |x| x.open.cpu_mbs),
                med(a, |x| x.open.wall_mbs)
            )
        },
    );
    row(
        &mut o,
        "seal / openssl encrypt, per round: median (range)",
        &|a| ratios(a, |x| (x.seal_sink.cpu_mbs, x.openssl_enc_mbs)).1,
    );
    row(
        &mut o,
        "open / openssl `-decrypt`, per round: median (range)",
        &|a| ratios(a, |x| (x.open.cpu_mbs, x.openssl_dec_mbs)).1,
    );
    row(&mut o, "seal -> file (page cache, no fsync)", &|a| {
        format!(
            "{:.0} ({:.0})",
            med(a, |x| x.seal_file.cpu_mbs),
            med(a, |x| x.seal_file.wall_mbs)
        )
    });
    let m = |v: &[Rate], f: fn(&Rate) -> f64| median(v.iter().map(f).collect());
    let _ = writeln!(
        o,
        "\nWithout crypto, for the file rows: writing {mib} MiB to a file in 1 MiB writes {:.0} ({:.0}) MB/s; reading the chunks file from the page cache {:.0} ({:.0}) MB/s.",
        m(&r.file_write, |x| x.cpu_mbs),
        m(&r.file_write, |x| x.wall_mbs),
        m(&r.file_read, |x| x.cpu_mbs),
        m(&r.file_read, |x| x.wall_mbs),
    );
    let _ = writeln!(
        o,
        "\n| reader, AES-256-GCM | VmRSS before | VmHWM while opening | growth |\n|---|---|---|---|"
    );
    for m in &r.mem {
        let _ = writeln!(
            o,
            "| {} MiB image | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            m.image_bytes >> 20,
            m.rss_before_kib as f64 / 1024.0,
            m.hwm_kib as f64 / 1024.0,
            m.hwm_kib.saturating_sub(m.rss_before_kib) as f64 / 1024.0
        );
    }
    let pipeline_ok = !r.aeads.is_empty()
        && r.aeads.iter().all(|a| {
            ratios(a, |x| (x.seal_sink.cpu_mbs, x.openssl_enc_mbs)).0 >= 0.7
                && ratios(a, |x| (x.open.cpu_mbs, x.openssl_dec_mbs)).0 >= 0.7
        });
    let growth = |m: &MemResult| m.hwm_kib.saturating_sub(m.rss_before_kib);
    let mem_ok = match (r.mem.first(), r.mem.last()) {
        (Some(s), Some(b)) => growth(b) <= growth(s) + 1024,
        _ => false,
    };
    let _ = writeln!(
        o,
        "\nGoals: seal and open at >= 70% of openssl's AEAD speed (median per-round ratio): **{}**; reader memory independent of the image size (growth at {mib} MiB within 1 MiB of the growth at 64 MiB): **{}**.\n{}; load average {} at the start, {} at the end.",
        if pipeline_ok { "met" } else { "missed" },
        if mem_ok { "met" } else { "missed" },
        r.openssl_version,
        r.loadavg_start,
        r.loadavg_end
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealed_image::Aead;

    #[test]
    fn report_states_ratios_and_goals() {
        let rate = |cpu_mbs: f64| Rate {
            wall_mbs: cpu_mbs * 0.9,
            cpu_mbs,
        };
        let round = |seal: f64, open: f64| Round {
            openssl_enc_mbs: 2500.0,
            openssl_dec_mbs: 2000.0,
            ring_seal: rate(2100.0),
            ring_open: rate(2000.0),
            seal_sink: rate(seal),
            seal_file: rate(900.0),
            open: rate(open),
        };
        let mem = |image_bytes, hwm_kib| MemResult {
            image_bytes,
            rss_before_kib: 5000,
            hwm_kib,
        };
        let mut r = ImageBenchResult {
            image_bytes: 1 << 30,
            aeads: vec![AeadResult {
                aead: Aead::Aes256Gcm,
                rounds: vec![
                    round(2000.0, 1000.0),
                    round(1500.0, 1200.0),
                    round(2250.0, 800.0),
                ],
            }],
            file_write: vec![rate(1700.0)],
            file_read: vec![rate(6000.0)],
            mem: vec![mem(64 << 20, 6024), mem(1 << 30, 6100)],
            openssl_version: "OpenSSL 3".into(),
            loadavg_start: "0.1 0.1 0.1".into(),
            loadavg_end: "0.2 0.1 0.1".into(),
        };
        let text = report(&r);
        assert!(text.contains("medians of 3 rounds"), "{text}");
        assert!(text.contains("| **2000** (1800) |"), "{text}");
        assert!(text.contains("**0.80x** (0.60x-0.90x)"), "{text}");
        assert!(text.contains("**0.50x** (0.40x-0.60x)"), "{text}");
        assert!(
            text.contains("(median per-round ratio): **missed**"),
            "{text}"
        );
        assert!(text.contains("64 MiB): **met**"), "{text}");
        for x in &mut r.aeads[0].rounds {
            x.open = rate(1500.0);
        }
        r.mem[1].hwm_kib = 9000;
        let text = report(&r);
        assert!(text.contains("ratio): **met**"), "{text}");
        assert!(text.contains("64 MiB): **missed**"), "{text}");
    }
}
