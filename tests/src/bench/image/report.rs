//! The image benchmark's markdown: one row per measurement, one column per AEAD, ratios to
//! openssl; the reader's memory; the goals. Pure.

use std::fmt::Write as _;

use super::{AeadResult, ImageBenchResult, MemResult};
use crate::bench::ratio;

/// The markdown report.
pub fn report(r: &ImageBenchResult) -> String {
    let mut o = String::new();
    let mib = r.image_bytes >> 20;
    let _ = write!(
        o,
        "| one thread, {mib} MiB generated on the fly, 1 MiB chunks |"
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
        &|a| format!("{:.0} / {:.0} MB/s", a.openssl_seal_mbs, a.openssl_open_mbs),
    );
    row(
        &mut o,
        "ring's AEAD alone, in place on 1 MiB, seal / open",
        &|a| format!("{:.0} / {:.0} MB/s", a.ring_seal_mbs, a.ring_open_mbs),
    );
    row(
        &mut o,
        "**seal** (generate, chunk, AEAD, tag list, sign) -> sink",
        &|a| {
            format!(
                "**{:.0} MB/s** ({} openssl)",
                a.seal_sink_mbs,
                ratio(a.seal_sink_mbs, a.openssl_seal_mbs)
            )
        },
    );
    row(
        &mut o,
        "**open** <- file (read, tag, AEAD, hand out) + final check",
        &|a| {
            format!(
                "**{:.0} MB/s** ({} openssl)",
                a.open_mbs,
                ratio(a.open_mbs, a.openssl_open_mbs)
            )
        },
    );
    row(&mut o, "seal -> file (page cache, no fsync)", &|a| {
        format!("{:.0} MB/s", a.seal_file_mbs)
    });
    let _ = writeln!(
        o,
        "\nWithout crypto, for the file rows: writing {mib} MiB to a file in 1 MiB writes {:.0} MB/s; reading the chunks file back from the page cache {:.0} MB/s.",
        r.file_write_mbs, r.file_read_mbs
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
    let pipeline_ok = r.aeads.iter().all(|a| {
        a.seal_sink_mbs >= 0.7 * a.openssl_seal_mbs && a.open_mbs >= 0.7 * a.openssl_open_mbs
    });
    let growth = |m: &MemResult| m.hwm_kib.saturating_sub(m.rss_before_kib);
    let mem_ok = match (r.mem.first(), r.mem.last()) {
        (Some(s), Some(b)) => growth(b) <= growth(s) + 1024,
        _ => false,
    };
    let _ = writeln!(
        o,
        "\nGoals: seal and open at >= 70% of openssl's AEAD speed: **{}**; reader memory independent of the image size (growth at {mib} MiB within 1 MiB of the growth at 64 MiB): **{}**.\n{}; load average at the end {}.",
        if pipeline_ok { "met" } else { "missed" },
        if mem_ok { "met" } else { "missed" },
        r.openssl_version,
        r.loadavg
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealed_image::Aead;

    #[test]
    fn report_states_ratios_and_goals() {
        let a = AeadResult {
            aead: Aead::Aes256Gcm,
            seal_file_mbs: 900.0,
            seal_sink_mbs: 2000.0,
            open_mbs: 1000.0,
            ring_seal_mbs: 2100.0,
            ring_open_mbs: 2000.0,
            openssl_seal_mbs: 2500.0,
            openssl_open_mbs: 2000.0,
        };
        let mem = |image_bytes, hwm_kib| MemResult {
            image_bytes,
            rss_before_kib: 5000,
            hwm_kib,
        };
        let mut r = ImageBenchResult {
            image_bytes: 1 << 30,
            aeads: vec![a],
            file_write_mbs: 1700.0,
            file_read_mbs: 6000.0,
            mem: vec![mem(64 << 20, 6024), mem(1 << 30, 6100)],
            openssl_version: "OpenSSL 3".into(),
            loadavg: "0.1 0.1 0.1".into(),
        };
        let text = report(&r);
        assert!(text.contains("**2000 MB/s** (0.80x openssl)"), "{text}");
        assert!(text.contains("**1000 MB/s** (0.50x openssl)"), "{text}");
        assert!(
            text.contains("70% of openssl's AEAD speed: **missed**"),
            "{text}"
        );
        assert!(text.contains("64 MiB): **met**"), "{text}");
        r.aeads[0].open_mbs = 1500.0;
        r.mem[1].hwm_kib = 9000;
        let text = report(&r);
        assert!(text.contains("AEAD speed: **met**"), "{text}");
        assert!(text.contains("64 MiB): **missed**"), "{text}");
    }
}
