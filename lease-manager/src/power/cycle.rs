//! Power-cycling a server through the operator's out-of-band tool: `[power] cycle_command`, an
//! argv whose words may hold `{name}` and `{mac}` (for example `ipmitool -H bmc-{name} ...
//! chassis power cycle`, a Redfish client, or the lab's virtual BMC). The LM runs it when a
//! released server's agent had started the tenant OS (kexec): nothing on the server hears the
//! release, and only a power cycle brings the agent back to destroy the start-up key and wipe.
//! IO (runs a process, bounded in time).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::PowerTarget;

/// How long the command may run.
pub const CYCLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a power cycle failed.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(
        "no [power] cycle_command is configured: power-cycle {name} by hand so its agent can wipe it"
    )]
    NotConfigured { name: String },
    #[error("power cycle of {name}: cannot run {program:?}: {source}")]
    Spawn {
        name: String,
        program: String,
        source: std::io::Error,
    },
    #[error("power cycle of {name}: {program:?} exited with {status}: {stderr}")]
    Failed {
        name: String,
        program: String,
        status: String,
        stderr: String,
    },
    #[error(
        "power cycle of {name}: {program:?} did not finish within {0:?}",
        CYCLE_TIMEOUT
    )]
    TimedOut { name: String, program: String },
}

/// The configured command, if any.
#[derive(Debug, Clone, Default)]
pub struct PowerCycle {
    argv: Option<Vec<String>>,
}

/// `argv` with `{name}` and `{mac}` filled in.
pub fn expand(argv: &[String], t: &PowerTarget) -> Vec<String> {
    argv.iter()
        .map(|w| {
            w.replace("{name}", &t.name)
                .replace("{mac}", &t.mac.to_string())
        })
        .collect()
}

impl PowerCycle {
    pub fn new(argv: Option<Vec<String>>) -> Self {
        Self { argv }
    }

    pub fn is_configured(&self) -> bool {
        self.argv.is_some()
    }

    /// Runs the command for `t` (blocking, at most [`CYCLE_TIMEOUT`]).
    pub fn cycle(&self, t: &PowerTarget) -> Result<(), CycleError> {
        let Some(argv) = &self.argv else {
            return Err(CycleError::NotConfigured {
                name: t.name.clone(),
            });
        };
        let words = expand(argv, t);
        let program = words.first().cloned().unwrap_or_default();
        let mut child = Command::new(&program)
            .args(&words[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| CycleError::Spawn {
                name: t.name.clone(),
                program: program.clone(),
                source,
            })?;
        let end = Instant::now() + CYCLE_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let mut stderr = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut stderr);
                    }
                    return Err(CycleError::Failed {
                        name: t.name.clone(),
                        program,
                        status: status.to_string(),
                        stderr: stderr.trim().chars().take(500).collect(),
                    });
                }
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(CycleError::TimedOut {
                        name: t.name.clone(),
                        program,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lm_api::MacAddr;

    fn target() -> PowerTarget {
        PowerTarget {
            name: "vm1".into(),
            mac: MacAddr([0x52, 0x54, 0, 0x77, 0, 1]),
            wol_password: None,
        }
    }

    #[test]
    fn placeholders_are_filled_word_by_word() {
        let argv = vec![
            "ipmitool".into(),
            "-H".into(),
            "bmc-{name}".into(),
            "{mac}".into(),
        ];
        assert_eq!(
            expand(&argv, &target()),
            ["ipmitool", "-H", "bmc-vm1", "52:54:00:77:00:01"]
        );
    }

    #[test]
    fn success_failure_missing_program_and_no_command() {
        let ok = PowerCycle::new(Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "test {name} = vm1".into(),
        ]));
        ok.cycle(&target()).unwrap();
        let bad = PowerCycle::new(Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo no BMC answer >&2; exit 3".into(),
        ]));
        let e = bad.cycle(&target()).unwrap_err().to_string();
        assert!(
            e.contains("no BMC answer") && e.contains("exit status: 3"),
            "{e}"
        );
        let missing = PowerCycle::new(Some(vec!["/nonexistent/bmc-tool".into()]));
        assert!(matches!(
            missing.cycle(&target()),
            Err(CycleError::Spawn { .. })
        ));
        let none = PowerCycle::new(None);
        assert!(
            none.cycle(&target())
                .unwrap_err()
                .to_string()
                .contains("by hand")
        );
    }
}
