//! [`Config`]: the effective value of every key and where it came from, built by applying
//! layers over the defaults; [`Flags`]: the layer a command line adds.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use crate::error::ConfigError;
use crate::load::Environment;
use crate::schema::{self, KeySpec, Kind, SCHEMA};
use crate::source::Source;
use crate::value::{check, Raw, Value};

/// Values from one place, each checked against its key when it was added.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layer {
    /// (index in [`SCHEMA`], value, source), in the order given; later entries win.
    entries: Vec<(usize, Value, Source)>,
}

impl Layer {
    /// Adds `key = raw` from `from`, or says why it cannot be: an unknown key (with the
    /// closest known one), a group of keys, or a value that does not fit.
    pub(crate) fn insert(&mut self, key: &str, raw: &Raw, from: Source) -> Result<(), ConfigError> {
        let index = resolve(key, &from)?;
        let spec = &SCHEMA[index];
        let value = check(spec, raw).map_err(|reason| ConfigError::Invalid {
            key: spec.key,
            value: if spec.secret {
                "(a secret)".to_owned()
            } else {
                raw.to_string()
            },
            from: from.clone(),
            reason,
            expected: spec.expected(),
        })?;
        self.entries.push((index, value, from));
        Ok(())
    }

    /// Whether the layer sets nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The index of `key` in the schema, or the error for a key that is not one.
pub(crate) fn resolve(key: &str, from: &Source) -> Result<usize, ConfigError> {
    if let Some(i) = schema::index_of(key) {
        return Ok(i);
    }
    let key = schema::normalize(key).into_owned();
    Err(match schema::example_in_group(&key) {
        Some(example) => ConfigError::Section {
            key,
            from: from.clone(),
            example,
        },
        None => ConfigError::UnknownKey {
            suggestion: schema::suggest(&key),
            key,
            from: from.clone(),
        },
    })
}

/// The effective configuration: a value and its [`Source`] for every key of the
/// [schema](crate::schema).
///
/// Built from the layers, lowest first: built-in defaults, YAML files, environment variables
/// ([`Config::load`]), then [`Config::with_flags`]; the process-wide [`global`](crate::global)
/// adds values set in code between the environment and the flags.
///
/// The typed getters (`fraction`, `int`, `size`, ...) return `None` for `null` and for `false`
/// where a key takes `false` to mean "off"; keys that allow neither always give `Some`. Keys
/// may be written with `_` for `-`.
#[derive(Clone, Debug)]
pub struct Config {
    /// One entry per key, in [`SCHEMA`] order.
    entries: Vec<(Value, Source)>,
    /// The YAML files read, in the order applied.
    files: Vec<PathBuf>,
}

static DEFAULTS: LazyLock<Config> = LazyLock::new(|| Config {
    entries: SCHEMA
        .iter()
        .map(|spec| {
            let value = check(spec, &Raw::parse_scalar(spec.default)).unwrap_or_else(|reason| {
                panic!(
                    "the built-in default of {} ({}) {reason}: a bug in oxidask-config's schema",
                    spec.key, spec.default
                )
            });
            (value, Source::Default)
        })
        .collect(),
    files: Vec::new(),
});

impl Default for Config {
    /// The built-in defaults alone ([`Config::defaults`]).
    fn default() -> Config {
        Config::defaults()
    }
}

impl Config {
    /// The built-in defaults alone.
    pub fn defaults() -> Config {
        DEFAULTS.clone()
    }

    /// Defaults, then the YAML files, then the `OXIDASK_*` variables of this process (see
    /// [`Environment`] for where files are looked for and which variables are configuration).
    pub fn load() -> Result<Config, ConfigError> {
        Config::load_from(&Environment::from_process())
    }

    /// [`Config::load`] with the variables of `env` instead of the process's (for tests, and
    /// for launching processes with another environment).
    pub fn load_from(env: &Environment) -> Result<Config, ConfigError> {
        let mut config = Config::defaults();
        for path in env.config_files()? {
            let layer = crate::load::file_layer(&path)?;
            config.apply(&layer);
            config.files.push(path);
        }
        config.apply(&env.env_layer()?);
        Ok(config)
    }

    /// This configuration with `flags` applied over it.
    pub fn with_flags(mut self, flags: &Flags) -> Config {
        self.apply(&flags.layer);
        self
    }

    /// Applies `layer` over this configuration.
    pub(crate) fn apply(&mut self, layer: &Layer) {
        for (index, value, source) in &layer.entries {
            self.entries[*index] = (value.clone(), source.clone());
        }
    }

    /// The value of `key` and where it came from, or [`ConfigError::UnknownKey`] (with a
    /// suggestion) for a key the schema does not have.
    #[track_caller]
    pub fn get(&self, key: &str) -> Result<(&Value, &Source), ConfigError> {
        let index = resolve(key, &Source::caller())?;
        let (value, source) = &self.entries[index];
        Ok((value, source))
    }

    /// The value of `key` (see [`Config::get`]).
    #[track_caller]
    pub fn value(&self, key: &str) -> Result<&Value, ConfigError> {
        self.get(key).map(|(v, _)| v)
    }

    /// Where the value of `key` came from (see [`Config::get`]).
    #[track_caller]
    pub fn source_of(&self, key: &str) -> Result<&Source, ConfigError> {
        self.get(key).map(|(_, s)| s)
    }

    /// The fraction `key` holds; `None` for `false` ("off") or `null`.
    ///
    /// # Panics
    /// If `key` is not a key of the schema or not a fraction: a bug in the calling code, which
    /// names keys with constants.
    #[track_caller]
    pub fn fraction(&self, key: &str) -> Option<f64> {
        match self.typed(key, "fraction", |k| matches!(k, Kind::Fraction)) {
            Value::Fraction(x) => Some(*x),
            _ => None,
        }
    }

    /// The whole number `key` holds; `None` for `null`.
    ///
    /// # Panics
    /// As [`Config::fraction`], if `key` is not a whole-number key.
    #[track_caller]
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.typed(key, "int", |k| matches!(k, Kind::Int { .. })) {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean `key` holds; `None` for `null`.
    ///
    /// # Panics
    /// As [`Config::fraction`], if `key` is not a boolean key.
    #[track_caller]
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.typed(key, "bool", |k| matches!(k, Kind::Bool)) {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The size in bytes `key` holds; `None` for `false` ("no limit") or `null`.
    ///
    /// # Panics
    /// As [`Config::fraction`], if `key` is not a size key.
    #[track_caller]
    pub fn size(&self, key: &str) -> Option<u64> {
        match self.typed(key, "size", |k| matches!(k, Kind::Size)) {
            Value::Size(b) => Some(*b),
            _ => None,
        }
    }

    /// The duration `key` holds; `None` for `null`.
    ///
    /// # Panics
    /// As [`Config::fraction`], if `key` is not a duration key.
    #[track_caller]
    pub fn duration(&self, key: &str) -> Option<Duration> {
        match self.typed(key, "duration", |k| matches!(k, Kind::Duration)) {
            Value::Duration(d) => Some(*d),
            _ => None,
        }
    }

    /// The text `key` holds (a string, a choice as the schema spells it, or a path); `None`
    /// for `null`.
    ///
    /// # Panics
    /// As [`Config::fraction`], if `key` holds something else.
    #[track_caller]
    pub fn string(&self, key: &str) -> Option<&str> {
        match self.typed(key, "string", |k| {
            matches!(k, Kind::Str | Kind::Choice(_) | Kind::Path)
        }) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The path `key` holds; `None` for `null`.
    ///
    /// # Panics
    /// As [`Config::fraction`], if `key` is not a path key.
    #[track_caller]
    pub fn path(&self, key: &str) -> Option<&Path> {
        match self.typed(key, "path", |k| matches!(k, Kind::Path)) {
            Value::Str(s) => Some(Path::new(s)),
            _ => None,
        }
    }

    #[track_caller]
    fn typed(&self, key: &str, getter: &str, fits: impl Fn(Kind) -> bool) -> &Value {
        let spec = match schema::spec(key) {
            Some(spec) => spec,
            None => panic!(
                "oxidask_config: Config::{getter}({key:?}): {} (a bug in the calling code)",
                resolve(key, &Source::caller()).expect_err("not a key")
            ),
        };
        assert!(
            fits(spec.kind),
            "oxidask_config: Config::{getter}({key:?}): the key holds {}, not a {getter} (a bug \
             in the calling code)",
            spec.expected()
        );
        &self.entries[schema::index_of(key).expect("a key")].0
    }

    /// Every key with its value and where it came from, in schema order.
    pub fn effective(&self) -> impl Iterator<Item = (&'static str, &Value, &Source)> + '_ {
        SCHEMA
            .iter()
            .zip(&self.entries)
            .map(|(spec, (value, source))| (spec.key, value, source))
    }

    /// The YAML files read, in the order they were applied (later ones win).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The configuration as YAML, a `key: value   # source` line per key (secrets shown as
    /// `"***"`). The dotted keys read back: a file holding this text configures the same
    /// values.
    pub fn render(&self) -> String {
        let lines: Vec<(String, &Source)> = SCHEMA
            .iter()
            .zip(&self.entries)
            .map(|(spec, (value, source))| {
                (format!("{}: {}", spec.key, shown(spec, value)), source)
            })
            .collect();
        let width = lines
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (line, source) in lines {
            let pad = width - line.chars().count();
            out.push_str(&format!("{line}{:pad$}   # {source}\n", ""));
        }
        out
    }
}

/// How `value` of `spec` is shown: secrets are hidden.
fn shown(spec: &KeySpec, value: &Value) -> String {
    if spec.secret && *value != Value::Null {
        "\"***\"".to_owned()
    } else {
        value.to_string()
    }
}

/// The values a command line sets, each with its flag as the source; apply them with
/// [`Config::with_flags`] or, process-wide, [`set_flags`](crate::set_flags).
///
/// ```
/// use oxidask_config::{Config, Flags};
///
/// let mut flags = Flags::new();
/// flags.set("--memory-target", "distributed.worker.memory.target", "0.5")?;
/// let config = Config::defaults().with_flags(&flags);
/// assert_eq!(config.fraction("distributed.worker.memory.target"), Some(0.5));
/// assert_eq!(
///     config.source_of("distributed.worker.memory.target")?.to_string(),
///     "flag --memory-target"
/// );
/// # Ok::<(), oxidask_config::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Flags {
    layer: Layer,
}

impl Flags {
    /// No flags.
    pub fn new() -> Flags {
        Flags::default()
    }

    /// Sets `key` to `value` as flag `flag` says (text such as `"4GiB"` or `"30s"` is read by
    /// the key's kind); an unknown key or a value that does not fit is an error naming the
    /// flag.
    pub fn set(
        &mut self,
        flag: &str,
        key: &str,
        value: impl Into<Raw>,
    ) -> Result<&mut Flags, ConfigError> {
        self.layer
            .insert(key, &value.into(), Source::Flag(flag.to_owned()))?;
        Ok(self)
    }

    /// [`Flags::set`] when the flag was given (`Some`), nothing otherwise.
    pub fn set_some<V: Into<Raw>>(
        &mut self,
        flag: &str,
        key: &str,
        value: Option<V>,
    ) -> Result<&mut Flags, ConfigError> {
        match value {
            Some(v) => self.set(flag, key, v),
            None => Ok(self),
        }
    }

    /// Whether no flag set anything.
    pub fn is_empty(&self) -> bool {
        self.layer.is_empty()
    }

    pub(crate) fn layer(&self) -> &Layer {
        &self.layer
    }
}
