//! Reading the layers below code: YAML files and environment variables, from an
//! [`Environment`] (the process's, or one a test or a launcher makes).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::Layer;
use crate::error::ConfigError;
use crate::schema::{Kind, SCHEMA};
use crate::source::Source;
use crate::value::Raw;

/// The prefix of configuration variables.
pub const ENV_PREFIX: &str = "OXIDASK_";
/// The variable naming extra configuration files or directories.
pub const CONFIG_VAR: &str = "OXIDASK_CONFIG";
/// The variable naming the system configuration directory (default `/etc/oxidask`).
pub const ROOT_CONFIG_VAR: &str = "OXIDASK_ROOT_CONFIG";
/// The system configuration directory when `OXIDASK_ROOT_CONFIG` is unset.
pub const SYSTEM_DIR: &str = "/etc/oxidask";

/// The environment variables configuration is loaded from: the process's
/// ([`Environment::from_process`]) or given ([`Environment::from_vars`]), so tests and
/// launchers need not touch the process's environment.
///
/// # Files
/// In this order, later files winning: every `*.yaml`, `*.yml` and `*.json` file (sorted by
/// name) in `/etc/oxidask` (or the directory `OXIDASK_ROOT_CONFIG` names, as Dask's
/// `DASK_ROOT_CONFIG`), then in `$XDG_CONFIG_HOME/oxidask` (`~/.config/oxidask` when
/// `XDG_CONFIG_HOME` is unset), then each path in `OXIDASK_CONFIG` (separated as `PATH` is), a
/// file or a directory. The first two may be missing; a path `OXIDASK_CONFIG` names must
/// exist. A file holds nested mappings (`distributed: {worker: {memory: {target: 0.6}}}`);
/// dotted keys (`distributed.worker.memory.target: 0.6`) work too, as `oxidask config` prints
/// them.
///
/// # Variables
/// An `OXIDASK_` variable is configuration when the rest of its name contains `__`, which
/// separates nested keys (`OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET=0.6`), or is exactly a
/// top-level key (`OXIDASK_SCHEDULER`, `OXIDASK_NUM_WORKERS`, `OXIDASK_TEMPORARY_DIRECTORY`).
/// Segments are lower-cased and a `_` inside one reads as `-`
/// (`..._MEMORY__MONITOR_INTERVAL` is `monitor-interval`); values are read as YAML scalars,
/// except that text and path keys (tokens, file names) take the text as it is.
/// Every other `OXIDASK_` variable (`OXIDASK_CONFIG`, `OXIDASK_LOG`,
/// `OXIDASK_SCHEDULER_ADDRESS`, ...) belongs to something else and is not read here; a
/// configuration variable naming no key is an error.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: BTreeMap<String, OsString>,
}

impl Environment {
    /// This process's variables (those whose names are not UTF-8 cannot be configuration
    /// and are left out).
    pub fn from_process() -> Environment {
        Environment {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
                .collect(),
        }
    }

    /// Exactly these variables.
    pub fn from_vars<K: Into<String>, V: Into<OsString>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Environment {
        Environment {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    fn var(&self, name: &str) -> Option<&OsString> {
        self.vars.get(name).filter(|v| !v.is_empty())
    }

    /// The configuration files to read, in order (see [`Environment`]); each appears
    /// once, where it last appears.
    pub fn config_files(&self) -> Result<Vec<PathBuf>, ConfigError> {
        let mut files = Vec::new();
        let system = self
            .var(ROOT_CONFIG_VAR)
            .map_or_else(|| PathBuf::from(SYSTEM_DIR), PathBuf::from);
        collect(&system, false, &mut files)?;
        let user = match self.var("XDG_CONFIG_HOME") {
            Some(xdg) if Path::new(xdg).is_absolute() => Some(PathBuf::from(xdg)),
            _ => self.var("HOME").map(|h| Path::new(h).join(".config")),
        };
        if let Some(user) = user {
            collect(&user.join("oxidask"), false, &mut files)?;
        }
        if let Some(paths) = self.var(CONFIG_VAR) {
            for path in std::env::split_paths(paths).filter(|p| !p.as_os_str().is_empty()) {
                collect(&path, true, &mut files)?;
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut unique: Vec<PathBuf> = files
            .into_iter()
            .rev()
            .filter(|f| seen.insert(f.clone()))
            .collect();
        unique.reverse();
        Ok(unique)
    }

    /// The layer of configuration variables.
    pub(crate) fn env_layer(&self) -> Result<Layer, ConfigError> {
        let mut layer = Layer::default();
        for (name, value) in &self.vars {
            let Some(key) = key_of_var(name) else {
                continue;
            };
            let text = value
                .to_str()
                .ok_or_else(|| ConfigError::NotUnicode { var: name.clone() })?;
            layer.insert(&key, &raw_of_var(&key, text), Source::Env(name.clone()))?;
        }
        Ok(layer)
    }
}

/// The key a variable sets, if it is a configuration variable (see [`Environment`]).
pub fn key_of_var(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    let segment = |s: &str| s.to_lowercase().replace('_', "-");
    if rest.contains("__") {
        return Some(rest.split("__").map(segment).collect::<Vec<_>>().join("."));
    }
    let key = segment(rest);
    SCHEMA.iter().any(|s| s.key == key).then_some(key)
}

/// The value of a configuration variable: a YAML scalar, except that text and path keys take
/// the text as it is (a token `0123` stays `0123`), bar the words for null.
fn raw_of_var(key: &str, text: &str) -> Raw {
    let verbatim =
        crate::schema::spec(key).is_some_and(|s| matches!(s.kind, Kind::Str | Kind::Path));
    match Raw::parse_scalar(text) {
        Raw::Null => Raw::Null,
        _ if verbatim => Raw::Str(text.to_owned()),
        raw => raw,
    }
}

/// Adds the configuration files at `path` (a file, or the YAML files of a directory) to
/// `files`; a missing path is an error only when `must_exist`.
fn collect(path: &Path, must_exist: bool, files: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    let read_error = |e: std::io::Error| ConfigError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if must_exist {
                Err(ConfigError::MissingPath {
                    var: CONFIG_VAR,
                    path: path.to_owned(),
                })
            } else {
                Ok(())
            };
        }
        Err(e) => return Err(read_error(e)),
    };
    if !meta.is_dir() {
        files.push(path.to_owned());
        return Ok(());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let p = entry.path();
        let yaml = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["yaml", "yml", "json"].contains(&e.to_ascii_lowercase().as_str()));
        if yaml && !p.is_dir() {
            found.push(p);
        }
    }
    found.sort();
    files.extend(found);
    Ok(())
}

/// The layer a YAML file sets.
pub(crate) fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let doc: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| ConfigError::Yaml {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let mut layer = Layer::default();
    match doc {
        serde_norway::Value::Null => {}
        serde_norway::Value::Mapping(m) => flatten(&m, &[], path, &mut layer)?,
        other => {
            return Err(ConfigError::NotAMapping {
                path: path.to_owned(),
                found: Raw::from_yaml(&other).err().unwrap_or("a single value"),
            })
        }
    }
    Ok(layer)
}

/// Adds the keys of a nested mapping under `prefix` to `layer`.
fn flatten(
    map: &serde_norway::Mapping,
    prefix: &[String],
    path: &Path,
    layer: &mut Layer,
) -> Result<(), ConfigError> {
    use serde_norway::Value as Y;
    let from = || Source::File(path.to_owned());
    for (k, v) in map {
        let name = match k {
            Y::String(s) => s.clone(),
            Y::Bool(b) => b.to_string(),
            Y::Number(n) => n.to_string(),
            _ => "(a key that is not text)".to_owned(),
        };
        let mut full = prefix.to_vec();
        full.extend(name.split('.').map(|s| s.replace('_', "-")));
        let key = full.join(".");
        let is_key = crate::schema::spec(&key).is_some();
        match (v, is_key) {
            (Y::Mapping(m), false) => {
                if m.is_empty() {
                    // An empty group is fine; an empty unknown name is not.
                    if crate::schema::example_in_group(&key).is_none() {
                        crate::config::resolve(&key, &from())?;
                    }
                }
                flatten(m, &full, path, layer)?;
            }
            (Y::Null, false) if crate::schema::example_in_group(&key).is_some() => {}
            _ => {
                let spec = &SCHEMA[crate::config::resolve(&key, &from())?];
                match Raw::from_yaml(v) {
                    Ok(raw) => layer.insert(&key, &raw, from())?,
                    Err(found) => {
                        return Err(ConfigError::Invalid {
                            key: spec.key,
                            value: match v {
                                Y::Sequence(_) => "[…]",
                                Y::Mapping(_) => "{…}",
                                _ => "!tag …",
                            }
                            .to_owned(),
                            from: from(),
                            reason: crate::error::Reason::WrongType { found },
                            expected: spec.expected(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}
