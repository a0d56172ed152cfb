//! The Debian package tools the kernel fetch runs (`apt-get`, `dpkg`, `depmod`), behind a
//! trait so the fetch logic can be tested with a fake. [`SystemTools`] does IO: it spawns the
//! real commands and captures their output.

use std::fmt;
use std::path::Path;
use std::process::Command;

/// A command that failed: what ran, how it ended, and the tail of what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolFailure {
    pub command: String,
    /// Exit code, `None` if it could not be started or was killed by a signal.
    pub status: Option<i32>,
    pub output: String,
}

impl fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(code) => write!(f, "`{}` exited with {code}", self.command)?,
            None => write!(f, "`{}` did not run to completion", self.command)?,
        }
        if !self.output.is_empty() {
            write!(f, ": {}", self.output)?;
        }
        Ok(())
    }
}

impl std::error::Error for ToolFailure {}

/// The package operations of a kernel fetch.
pub trait PackageTools {
    /// `apt-get download <package>=<version>`, run in `dir`.
    fn download(&self, dir: &Path, package: &str, version: &str) -> Result<(), ToolFailure>;
    /// Whether apt has any package index at all (false on a fresh machine before
    /// `apt-get update`).
    fn index_present(&self) -> bool;
    /// `apt-get update`.
    fn update_index(&self) -> Result<(), ToolFailure>;
    /// `dpkg -x <deb> <dest>`.
    fn extract(&self, deb: &Path, dest: &Path) -> Result<(), ToolFailure>;
    /// `depmod -b <root> <release>`: writes `modules.dep` under the extracted tree.
    fn depmod(&self, root: &Path, release: &str) -> Result<(), ToolFailure>;
}

/// The real tools of the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemTools;

/// Where apt keeps its downloaded package indexes.
const APT_LISTS: &str = "/var/lib/apt/lists";
/// Keep this many bytes of a failing command's output in the error.
const OUTPUT_TAIL: usize = 2000;

fn run(program: &str, args: &[&str], dir: Option<&Path>) -> Result<(), ToolFailure> {
    let command = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    tracing::debug!(%command, "running");
    let out = cmd.output().map_err(|e| ToolFailure {
        command: command.clone(),
        status: None,
        output: if e.kind() == std::io::ErrorKind::NotFound {
            format!("{program} is not installed or not on PATH")
        } else {
            e.to_string()
        },
    })?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if text.is_empty() {
        text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    if text.len() > OUTPUT_TAIL {
        let mut cut = text.len() - OUTPUT_TAIL;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = format!("...{}", &text[cut..]);
    }
    Err(ToolFailure {
        command,
        status: out.status.code(),
        output: text,
    })
}

/// `depmod` lives in /usr/sbin, which is not on every PATH.
fn depmod_program() -> &'static str {
    ["/usr/sbin/depmod", "/sbin/depmod"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("depmod")
}

fn path_arg(path: &Path) -> Result<&str, ToolFailure> {
    path.to_str().ok_or_else(|| ToolFailure {
        command: format!("(path {})", path.display()),
        status: None,
        output: "path is not UTF-8".to_owned(),
    })
}

impl PackageTools for SystemTools {
    fn download(&self, dir: &Path, package: &str, version: &str) -> Result<(), ToolFailure> {
        let spec = format!("{package}={version}");
        run("apt-get", &["-q", "download", &spec], Some(dir))
    }

    fn index_present(&self) -> bool {
        std::fs::read_dir(APT_LISTS).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
        })
    }

    fn update_index(&self) -> Result<(), ToolFailure> {
        run("apt-get", &["-q", "update"], None)
    }

    fn extract(&self, deb: &Path, dest: &Path) -> Result<(), ToolFailure> {
        run("dpkg", &["-x", path_arg(deb)?, path_arg(dest)?], None)
    }

    fn depmod(&self, root: &Path, release: &str) -> Result<(), ToolFailure> {
        let result = run(depmod_program(), &["-b", path_arg(root)?, release], None);
        result.map_err(|mut f| {
            if f.status.is_none() {
                f.output
                    .push_str(" (install it with `apt-get install kmod`)");
            }
            f
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_command_status_and_output() {
        let err = run("sh", &["-c", "echo oops >&2; exit 3"], None).unwrap_err();
        assert_eq!(err.status, Some(3));
        assert_eq!(err.output, "oops");
        assert_eq!(
            err.to_string(),
            "`sh -c echo oops >&2; exit 3` exited with 3: oops"
        );
        assert!(run("sh", &["-c", "true"], None).is_ok());
    }

    #[test]
    fn a_missing_program_is_reported() {
        let err = run("no-such-program-initramfs", &[], None).unwrap_err();
        assert_eq!(err.status, None);
        assert!(err.output.contains("not installed"), "{err}");
    }

    #[test]
    fn long_output_keeps_the_tail() {
        let err = run(
            "sh",
            &[
                "-c",
                "head -c 5000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1",
            ],
            None,
        )
        .unwrap_err();
        assert!(err.output.starts_with("..."));
        assert!(err.output.ends_with("END"));
        assert!(err.output.len() <= OUTPUT_TAIL + 3);
    }
}
