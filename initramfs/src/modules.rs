//! Kernel modules: parse `modules.dep` and resolve requested modules into a load order.
//! Pure, no IO: the caller reads `modules.dep` and the `.ko` files.
//!
//! `modules.dep` (written by `depmod`) has one line per module:
//!
//! ```text
//! kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
//! ```
//!
//! Paths are relative to `/lib/modules/<release>/`; the dependency list is the full closure,
//! ordered so that the *last* one must be loaded first (that is how `modprobe` reads it).
//! A module's name is its file name without `.ko` (or `.ko.xz`/`.ko.zst`/`.ko.gz`), with `-`
//! and `_` equivalent (`virtio-net` is `virtio_net`).
//!
//! Every path is validated like an archive name (relative, no `..`), because it becomes both a
//! file read from the module directory and an entry in the initramfs.

use std::collections::{BTreeMap, HashMap, HashSet};

use thiserror::Error;

use crate::cpio::{NameError, normalize};

/// Suffixes a module file may carry.
const MODULE_SUFFIXES: [&str; 4] = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// Why `modules.dep` or a module request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModulesError {
    #[error("modules.dep line {line}: no ':' after the module path")]
    MissingColon { line: usize },
    #[error("modules.dep line {line}: invalid path {path:?}: {source}")]
    BadPath {
        line: usize,
        path: String,
        #[source]
        source: NameError,
    },
    #[error("modules.dep line {line}: path {path:?} must be relative to the module directory")]
    NotRelative { line: usize, path: String },
    #[error(
        "modules.dep line {line}: {path:?} is not a kernel module (.ko, .ko.xz, .ko.zst, .ko.gz)"
    )]
    NotAModule { line: usize, path: String },
    #[error("modules.dep line {line}: module {name} was already defined on line {first}")]
    DuplicateModule {
        line: usize,
        name: String,
        first: usize,
    },
    #[error("invalid module name {name:?}: use letters, digits, '_' and '-'")]
    InvalidName { name: String },
    #[error("no module named {name} in modules.dep{hint}")]
    UnknownModule { name: String, hint: String },
    #[error("module {module} depends on {dependency}, which has no line of its own in modules.dep")]
    DependencyMissing { module: String, dependency: String },
    #[error("modules.dep has a dependency cycle through {module}")]
    Cycle { module: String },
}

/// One line of `modules.dep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleEntry {
    /// Canonical name (`-` replaced by `_`).
    pub name: String,
    /// Path relative to the module directory.
    pub path: String,
    /// Dependency paths as listed (the last one loads first).
    pub deps: Vec<String>,
    /// Line number in `modules.dep` (1-based).
    pub line: usize,
}

/// A module in the resolved load order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModule {
    pub name: String,
    /// Path relative to the module directory, as in `modules.dep`.
    pub path: String,
}

/// A parsed `modules.dep`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulesDep {
    by_name: BTreeMap<String, ModuleEntry>,
    name_by_path: HashMap<String, String>,
}

/// `-` and `_` are the same in module names; the canonical form uses `_`.
pub fn canonical_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The canonical module name of a module path, or `None` if it is not a module file.
pub fn module_name_from_path(path: &str) -> Option<String> {
    let file = path.rsplit('/').next().unwrap_or(path);
    MODULE_SUFFIXES
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
        .filter(|stem| !stem.is_empty())
        .map(canonical_name)
}

fn check_path(line: usize, path: &str) -> Result<String, ModulesError> {
    let normalized = normalize(path).map_err(|source| ModulesError::BadPath {
        line,
        path: path.to_owned(),
        source,
    })?;
    if normalized != path {
        return Err(ModulesError::NotRelative {
            line,
            path: path.to_owned(),
        });
    }
    if module_name_from_path(path).is_none() {
        return Err(ModulesError::NotAModule {
            line,
            path: path.to_owned(),
        });
    }
    Ok(normalized)
}

impl ModulesDep {
    /// Parse the text of `modules.dep`. Blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self, ModulesError> {
        let mut dep = ModulesDep::default();
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let trimmed = raw.trim_matches(|c| c == ' ' || c == '\t');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (path, deps) = trimmed
                .split_once(':')
                .ok_or(ModulesError::MissingColon { line })?;
            let path = check_path(line, path.trim_matches(|c| c == ' ' || c == '\t'))?;
            let deps = deps
                .split([' ', '\t'])
                .filter(|d| !d.is_empty())
                .map(|d| check_path(line, d))
                .collect::<Result<Vec<_>, _>>()?;
            let name = module_name_from_path(&path).unwrap_or_default();
            if let Some(first) = dep.by_name.get(&name) {
                return Err(ModulesError::DuplicateModule {
                    line,
                    name,
                    first: first.line,
                });
            }
            dep.name_by_path.insert(path.clone(), name.clone());
            dep.by_name.insert(
                name.clone(),
                ModuleEntry {
                    name,
                    path,
                    deps,
                    line,
                },
            );
        }
        Ok(dep)
    }

    /// Number of modules listed.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// All modules, sorted by canonical name.
    pub fn entries(&self) -> impl Iterator<Item = &ModuleEntry> {
        self.by_name.values()
    }

    /// Look a module up by name (`-` and `_` equivalent).
    pub fn get(&self, name: &str) -> Option<&ModuleEntry> {
        self.by_name.get(&canonical_name(name))
    }

    fn entry_for_request(&self, requested: &str) -> Result<&ModuleEntry, ModulesError> {
        let valid = !requested.is_empty()
            && requested
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(ModulesError::InvalidName {
                name: requested.to_owned(),
            });
        }
        let name = canonical_name(requested);
        self.by_name.get(&name).ok_or_else(|| {
            let similar: Vec<&str> = self
                .by_name
                .keys()
                .filter(|k| k.contains(name.as_str()) || name.contains(k.as_str()))
                .take(5)
                .map(String::as_str)
                .collect();
            let hint = if similar.is_empty() {
                String::new()
            } else {
                format!(" (similar: {})", similar.join(", "))
            };
            ModulesError::UnknownModule {
                name: requested.to_owned(),
                hint,
            }
        })
    }

    /// Resolve `requested` module names into a load order: every module after its
    /// dependencies, each module once, requested modules in the given order where the
    /// dependencies allow it.
    pub fn resolve<S: AsRef<str>>(
        &self,
        requested: &[S],
    ) -> Result<Vec<ResolvedModule>, ModulesError> {
        let mut order = Vec::new();
        let mut done: HashSet<&str> = HashSet::new();
        let mut in_progress: HashSet<&str> = HashSet::new();
        for request in requested {
            let root = self.entry_for_request(request.as_ref())?;
            if done.contains(root.name.as_str()) {
                continue;
            }
            // Iterative depth-first walk (a hostile chain must not overflow the stack):
            // each frame is a module and how many of its dependencies were visited.
            let mut stack: Vec<(&ModuleEntry, usize)> = vec![(root, 0)];
            in_progress.insert(root.name.as_str());
            while let Some((entry, visited)) = stack.last_mut() {
                let entry: &ModuleEntry = entry;
                if *visited < entry.deps.len() {
                    // The last listed dependency loads first.
                    let dep_path = &entry.deps[entry.deps.len() - 1 - *visited];
                    *visited += 1;
                    let dep = self
                        .name_by_path
                        .get(dep_path)
                        .and_then(|name| self.by_name.get(name))
                        .ok_or_else(|| ModulesError::DependencyMissing {
                            module: entry.name.clone(),
                            dependency: dep_path.clone(),
                        })?;
                    if done.contains(dep.name.as_str()) {
                        continue;
                    }
                    if !in_progress.insert(dep.name.as_str()) {
                        return Err(ModulesError::Cycle {
                            module: dep.name.clone(),
                        });
                    }
                    stack.push((dep, 0));
                } else {
                    stack.pop();
                    in_progress.remove(entry.name.as_str());
                    done.insert(entry.name.as_str());
                    order.push(ResolvedModule {
                        name: entry.name.clone(),
                        path: entry.path.clone(),
                    });
                }
            }
        }
        Ok(order)
    }
}

#[cfg(test)]
#[path = "modules_tests.rs"]
mod tests;
