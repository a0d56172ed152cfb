//! The figures of `lab bench lease` and their report: per round, when each phase marker of the
//! lease showed on the server's console after the request, and the floor of the same lab (PXE
//! boot to the agent's /init, direct kernel boot to the tenant OS's /init, the sealed image's
//! bytes at the tunnel rate); medians and the ratio to the goal. Pure.

use std::fmt::Write;

use serde::Serialize;

/// Issue 5's goal: request -> tenant OS within this multiple of the floor.
pub const GOAL_RATIO: f64 = 1.5;

/// The lease's phases after the power-on, each with the console marker that ends it: the
/// timeline of `lab demo` (`demo_lease.rs`, `PHASES`).
pub const PHASES: [(&str, &str); 7] = [
    ("power-on -> PXE -> agent up", "AGENT-PHASE init ok"),
    ("DHCP, facts, hello", "AGENT-PHASE hello ok"),
    ("enroll (key pair in RAM, CSR, token)", "AGENT-ENROLLED"),
    ("WireGuard tunnel to the gateway", "AGENT-PHASE tunnel ok"),
    ("sealed image through the tunnel", "AGENT-PHASE transfer ok"),
    ("store under start-up key + gate", "AGENT-PHASE start ok"),
    ("kexec -> tenant OS", "TENANT-OS-UP"),
];

/// One whole lease, times in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseRun {
    pub lease: String,
    /// The request command's start -> the VM's QEMU start (grant, wake, Wake-on-LAN).
    pub power_on_s: f64,
    /// QEMU start -> the agent's `AGENT-PHASE init start` (to compare with the floor's PXE).
    pub init_after_power_on_s: Option<f64>,
    /// Request -> each marker of [`PHASES`], in order (`None`: not seen).
    pub marks_s: Vec<Option<f64>>,
    /// Request -> `TENANT-OS-UP lease=<id>`.
    pub total_s: f64,
}

/// The floor of the same lab, times in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Floor {
    /// QEMU start -> the agent's `AGENT-PHASE init start`, woken by the LM without a lease.
    pub pxe_to_init_s: f64,
    /// QEMU start -> `TENANT-OS-UP`, the tenant OS booted straight from kernel and initrd.
    pub direct_to_init_s: f64,
    /// Size of the sealed image's `.chunks` file.
    pub image_bytes: u64,
    /// `image_bytes` at the tunnel rate.
    pub transfer_s: f64,
    pub sum_s: f64,
}

impl Floor {
    /// The floor from its measured parts; `None` if the tunnel rate is not a positive number.
    pub fn new(
        pxe_to_init_s: f64,
        direct_to_init_s: f64,
        image_bytes: u64,
        gbit: f64,
    ) -> Option<Floor> {
        let transfer_s = transfer_secs(image_bytes, gbit)?;
        Some(Floor {
            pxe_to_init_s,
            direct_to_init_s,
            image_bytes,
            transfer_s,
            sum_s: pxe_to_init_s + direct_to_init_s + transfer_s,
        })
    }
}

/// Seconds to move `bytes` at `gbit` Gbit/s; `None` unless the rate is finite and positive.
pub fn transfer_secs(bytes: u64, gbit: f64) -> Option<f64> {
    (gbit.is_finite() && gbit > 0.0).then(|| bytes as f64 * 8.0 / (gbit * 1e9))
}

/// One round: a lease and the floor measured right after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Round {
    pub round: u32,
    pub lease: LeaseRun,
    pub floor: Floor,
    /// `lease.total_s / floor.sum_s`.
    pub ratio: f64,
}

impl Round {
    pub fn new(round: u32, lease: LeaseRun, floor: Floor) -> Round {
        let ratio = if floor.sum_s > 0.0 {
            lease.total_s / floor.sum_s
        } else {
            f64::INFINITY
        };
        Round {
            round,
            lease,
            floor,
            ratio,
        }
    }
}

/// The duration of each phase: request -> power-on first, then each of [`PHASES`] from the
/// previous marker seen. A phase whose marker was not seen is `None`; the next one then spans
/// both.
pub fn phase_secs(run: &LeaseRun) -> Vec<Option<f64>> {
    let mut out = vec![Some(run.power_on_s)];
    let mut last = run.power_on_s;
    for i in 0..PHASES.len() {
        match run.marks_s.get(i).copied().flatten() {
            Some(at) => {
                out.push(Some((at - last).max(0.0)));
                last = at;
            }
            None => out.push(None),
        }
    }
    out
}

/// The median of the values present; `None` if there are none.
pub fn median(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = values
        .into_iter()
        .flatten()
        .filter(|x| !x.is_nan())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The medians over the rounds, what `--json` prints next to the rounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Medians {
    /// Request -> power-on, then each of [`PHASES`].
    pub phases_s: Vec<Option<f64>>,
    pub total_s: Option<f64>,
    pub floor_pxe_to_init_s: Option<f64>,
    pub floor_direct_to_init_s: Option<f64>,
    pub floor_transfer_s: Option<f64>,
    pub floor_sum_s: Option<f64>,
    /// The median of the rounds' ratios.
    pub ratio: Option<f64>,
    /// `ratio <= GOAL_RATIO`.
    pub goal_met: bool,
}

pub fn medians(rounds: &[Round]) -> Medians {
    let phases: Vec<Vec<Option<f64>>> = rounds.iter().map(|r| phase_secs(&r.lease)).collect();
    let col = |i: usize| median(phases.iter().map(|p| p.get(i).copied().flatten()));
    let ratio = median(rounds.iter().map(|r| Some(r.ratio)));
    Medians {
        phases_s: (0..=PHASES.len()).map(col).collect(),
        total_s: median(rounds.iter().map(|r| Some(r.lease.total_s))),
        floor_pxe_to_init_s: median(rounds.iter().map(|r| Some(r.floor.pxe_to_init_s))),
        floor_direct_to_init_s: median(rounds.iter().map(|r| Some(r.floor.direct_to_init_s))),
        floor_transfer_s: median(rounds.iter().map(|r| Some(r.floor.transfer_s))),
        floor_sum_s: median(rounds.iter().map(|r| Some(r.floor.sum_s))),
        ratio,
        goal_met: ratio.is_some_and(|r| r <= GOAL_RATIO),
    }
}

/// Everything `--json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary<'a> {
    pub tunnel_gbit: f64,
    /// Where the tunnel rate came from.
    pub tunnel_gbit_source: &'a str,
    pub goal_ratio: f64,
    pub phases: Vec<&'static str>,
    pub rounds: &'a [Round],
    pub median: Medians,
}

pub fn summary<'a>(rounds: &'a [Round], tunnel_gbit: f64, source: &'a str) -> Summary<'a> {
    let mut phases = vec![POWER_ON_LABEL];
    phases.extend(PHASES.iter().map(|(l, _)| *l));
    Summary {
        tunnel_gbit,
        tunnel_gbit_source: source,
        goal_ratio: GOAL_RATIO,
        phases,
        rounds,
        median: medians(rounds),
    }
}

const POWER_ON_LABEL: &str = "request -> power-on (grant, Wake-on-LAN, QEMU start)";

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into())
}

fn row(o: &mut String, label: &str, cells: &[String], median: String, bold: bool) {
    let b = if bold { "**" } else { "" };
    let mut line = format!("| {b}{label}{b} |");
    for c in cells {
        let _ = write!(line, " {c} |");
    }
    let _ = writeln!(o, "{line} {b}{median}{b} |");
}

/// The Markdown report: one column per round and the medians (seconds).
pub fn report(rounds: &[Round], tunnel_gbit: f64, source: &str) -> String {
    let mut o = String::new();
    if rounds.is_empty() {
        o.push_str("no rounds were run\n");
        return o;
    }
    let m = medians(rounds);
    let mut head = String::from("| seconds |");
    let mut rule = String::from("|---|");
    for r in rounds {
        let _ = write!(head, " round {} |", r.round);
        rule.push_str("---|");
    }
    let _ = writeln!(o, "{head} median |\n{rule}---|");
    let phases: Vec<Vec<Option<f64>>> = rounds.iter().map(|r| phase_secs(&r.lease)).collect();
    let mut labels = vec![POWER_ON_LABEL];
    labels.extend(PHASES.iter().map(|(l, _)| *l));
    for (i, label) in labels.iter().enumerate() {
        let cells: Vec<String> = phases
            .iter()
            .map(|p| secs(p.get(i).copied().flatten()))
            .collect();
        row(&mut o, label, &cells, secs(m.phases_s[i]), false);
    }
    let cells = |f: &dyn Fn(&Round) -> f64| -> Vec<String> {
        rounds.iter().map(|r| format!("{:.2}", f(r))).collect()
    };
    row(
        &mut o,
        "request -> TENANT-OS-UP",
        &cells(&|r| r.lease.total_s),
        secs(m.total_s),
        true,
    );
    row(
        &mut o,
        "floor: PXE boot to the agent's /init (power-on -> AGENT-PHASE init start)",
        &cells(&|r| r.floor.pxe_to_init_s),
        secs(m.floor_pxe_to_init_s),
        false,
    );
    row(
        &mut o,
        "floor: direct kernel boot to the tenant OS's /init (power-on -> TENANT-OS-UP)",
        &cells(&|r| r.floor.direct_to_init_s),
        secs(m.floor_direct_to_init_s),
        false,
    );
    let mib = rounds[0].floor.image_bytes as f64 / (1024.0 * 1024.0);
    row(
        &mut o,
        &format!("floor: sealed image ({mib:.1} MiB) at {tunnel_gbit} Gbit/s"),
        &cells(&|r| r.floor.transfer_s),
        secs(m.floor_transfer_s),
        false,
    );
    row(
        &mut o,
        "floor (sum)",
        &cells(&|r| r.floor.sum_s),
        secs(m.floor_sum_s),
        true,
    );
    let ratios: Vec<String> = rounds.iter().map(|r| format!("{:.2}x", r.ratio)).collect();
    row(
        &mut o,
        "request -> TENANT-OS-UP / floor",
        &ratios,
        m.ratio
            .map(|r| format!("{r:.2}x"))
            .unwrap_or_else(|| "-".into()),
        true,
    );
    let _ = writeln!(
        o,
        "\nGoal (issue 5): request -> tenant OS within {GOAL_RATIO}x of the floor (median of the rounds' ratios): **{}**.",
        if m.goal_met { "met" } else { "missed" }
    );
    let _ = writeln!(o, "Tunnel rate {tunnel_gbit} Gbit/s: {source}.");
    let own: Vec<String> = rounds
        .iter()
        .map(|r| secs(r.lease.init_after_power_on_s))
        .collect();
    let _ = writeln!(
        o,
        "The lease's own power-on -> agent /init, per round (compare with the floor's PXE boot): {} s.",
        own.join(", ")
    );
    if phases.iter().flatten().any(Option::is_none) {
        let _ = writeln!(
            o,
            "-: the phase's marker was not seen; the next phase's time includes it."
        );
    }
    let sizes: Vec<String> = rounds
        .iter()
        .map(|r| r.floor.image_bytes.to_string())
        .collect();
    let _ = writeln!(
        o,
        "Sealed image (.chunks) bytes per round: {}.",
        sizes.join(", ")
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(power_on: f64, marks: &[Option<f64>], total: f64) -> LeaseRun {
        LeaseRun {
            lease: "l-1".into(),
            power_on_s: power_on,
            init_after_power_on_s: Some(7.0),
            marks_s: marks.to_vec(),
            total_s: total,
        }
    }

    fn full(offset: f64) -> LeaseRun {
        let marks: Vec<Option<f64>> = (1..=7).map(|i| Some(offset + f64::from(i))).collect();
        run(offset, &marks, offset + 7.0)
    }

    #[test]
    fn phases_are_differences_from_the_previous_marker() {
        let p = phase_secs(&full(0.5));
        assert_eq!(p.len(), PHASES.len() + 1);
        assert_eq!(p[0], Some(0.5));
        assert!(
            p[1..].iter().all(|d| (d.unwrap() - 1.0).abs() < 1e-9),
            "{p:?}"
        );
    }

    #[test]
    fn a_missing_marker_leaves_a_gap_and_the_next_phase_spans_it() {
        let mut marks: Vec<Option<f64>> = (1..=7).map(|i| Some(f64::from(i))).collect();
        marks[2] = None;
        let p = phase_secs(&run(0.0, &marks, 7.0));
        assert_eq!(p[3], None);
        assert_eq!(p[4], Some(2.0));
    }

    #[test]
    fn short_hostile_and_backwards_marks_do_not_panic() {
        let p = phase_secs(&run(3.0, &[Some(1.0), Some(f64::NAN)], 2.0));
        assert_eq!(p.len(), PHASES.len() + 1);
        assert_eq!(p[1], Some(0.0), "a marker before the power-on is clamped");
        assert!(p[3..].iter().all(Option::is_none));
        let r = report(&[Round::new(1, run(0.0, &[], 1.0), floor(0.0))], 2.83, "x");
        assert!(r.contains("| - |"), "{r}");
    }

    fn floor(sum: f64) -> Floor {
        Floor {
            pxe_to_init_s: sum,
            direct_to_init_s: 0.0,
            image_bytes: 0,
            transfer_s: 0.0,
            sum_s: sum,
        }
    }

    #[test]
    fn transfer_time_needs_a_positive_rate() {
        let t = transfer_secs(1_000_000_000, 8.0).unwrap();
        assert!((t - 1.0).abs() < 1e-12);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(transfer_secs(1, bad), None, "{bad}");
            assert!(Floor::new(1.0, 1.0, 1, bad).is_none());
        }
        let f = Floor::new(7.9, 6.3, 50_000_000, 2.83).unwrap();
        assert!((f.sum_s - (7.9 + 6.3 + f.transfer_s)).abs() < 1e-12);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median([Some(3.0), Some(1.0), Some(2.0)]), Some(2.0));
        assert_eq!(
            median([Some(4.0), None, Some(1.0), Some(2.0), Some(3.0)]),
            Some(2.5)
        );
        assert_eq!(median([None, Some(f64::NAN)]), None);
        assert_eq!(median(std::iter::empty()), None);
    }

    #[test]
    fn ratio_goal_and_a_zero_floor() {
        let ok = Round::new(1, full(0.0), floor(5.0));
        assert!((ok.ratio - 1.4).abs() < 1e-9);
        assert!(medians(std::slice::from_ref(&ok)).goal_met);
        let slow = Round::new(2, full(3.0), floor(5.0));
        assert!(!medians(&[slow.clone(), slow]).goal_met);
        let zero = Round::new(3, full(0.0), floor(0.0));
        assert!(zero.ratio.is_infinite());
        assert!(!medians(&[zero]).goal_met);
    }

    #[test]
    fn report_has_a_column_per_round_and_the_medians() {
        let rounds = [
            Round::new(1, full(0.0), floor(5.0)),
            Round::new(2, full(1.0), floor(6.0)),
        ];
        let r = report(&rounds, 2.83, "docs/benchmarks.md");
        assert!(
            r.starts_with("| seconds | round 1 | round 2 | median |"),
            "{r}"
        );
        assert!(
            r.contains("| **request -> TENANT-OS-UP** | 7.00 | 8.00 | **7.50** |"),
            "{r}"
        );
        assert!(r.contains("**met**"), "{r}");
        assert!(r.contains("2.83 Gbit/s: docs/benchmarks.md"), "{r}");
        let lines: Vec<&str> = r.lines().take_while(|l| l.starts_with('|')).collect();
        assert_eq!(lines.len(), 2 + PHASES.len() + 1 + 6, "{r}");
        assert!(lines.iter().all(|l| l.matches('|').count() == 5), "{r}");
        assert_eq!(report(&[], 1.0, ""), "no rounds were run\n");
        let s = serde_json::to_value(summary(&rounds, 2.83, "x")).unwrap();
        assert_eq!(s["median"]["total_s"], 7.5);
        assert_eq!(s["phases"].as_array().unwrap().len(), PHASES.len() + 1);
    }
}
