//! What can be wrong with a configuration. Every error names the key (or file), where the value
//! came from and what was expected, so the message alone tells the user what to change.

use std::path::PathBuf;

use crate::source::Source;

/// Why a value does not fit its key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// Nothing was written.
    #[error("is empty")]
    Empty,
    /// The number part does not read as a number.
    #[error("is not a number")]
    NotANumber,
    /// NaN or infinite.
    #[error("is not a finite number")]
    NotFinite,
    /// Below zero where only quantities make sense.
    #[error("is negative")]
    Negative,
    /// Too large to represent (more than 2^64 bytes, more than 2^64 seconds, ...).
    #[error("is too large")]
    TooLarge,
    /// A size or duration with a unit this crate does not know.
    #[error("has an unknown unit `{0}`")]
    UnknownUnit(String),
    /// A number outside the key's range.
    #[error("is out of range")]
    OutOfRange,
    /// A value of another type (`found`: "a list", "true or false", "null", ...).
    #[error("is {found}")]
    WrongType {
        /// What the value is.
        found: &'static str,
    },
    /// A string that is not one of the key's choices.
    #[error("is not one of the choices")]
    NotAChoice,
}

/// A configuration that cannot be used, and what to do about it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key the schema does not have.
    #[error(
        "`{key}` (from {from}) is not a configuration key{}; `oxidask config --defaults` lists \
         every key",
        suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
    )]
    UnknownKey {
        /// The key as written (normalized: `_` read as `-`, segments joined with `.`).
        key: String,
        /// Where it was written.
        from: Source,
        /// The known key closest to it, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A value given to a group of keys (`distributed.worker.memory: 0.5`).
    #[error(
        "`{key}` (from {from}) is a group of keys, not a key: set one of its keys, such as \
         `{example}`"
    )]
    Section {
        /// The group.
        key: String,
        /// Where the value was written.
        from: Source,
        /// One of the group's keys.
        example: &'static str,
    },
    /// A value that does not fit its key.
    #[error("`{key}` is {value} in {from}, which {reason}; expected {expected}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// Where it was written.
        from: Source,
        /// What is wrong with it.
        reason: Reason,
        /// What the key takes.
        expected: String,
    },
    /// A configuration file that is not YAML.
    #[error(
        "the configuration file {} is not valid YAML: {message}; fix it, or move it out of \
         the way",
        path.display()
    )]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's account (with the line and column).
        message: String,
    },
    /// A configuration file whose top is not a mapping.
    #[error(
        "the configuration file {} holds {found} at the top, but it must be a mapping of keys \
         such as `distributed: {{worker: {{memory: {{target: 0.6}}}}}}`",
        path.display()
    )]
    NotAMapping {
        /// The file.
        path: PathBuf,
        /// What it holds instead ("a list", "a string", ...).
        found: &'static str,
    },
    /// A configuration file or directory that exists but cannot be read.
    #[error("cannot read the configuration file {}: {message}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's account.
        message: String,
    },
    /// A path named by `OXIDASK_CONFIG` that does not exist.
    #[error(
        "{var} names {}, which does not exist; point it at a YAML file or a directory of them, \
         or unset it",
        path.display()
    )]
    MissingPath {
        /// The variable (`OXIDASK_CONFIG`).
        var: &'static str,
        /// The path it names.
        path: PathBuf,
    },
    /// A configuration variable whose value is not UTF-8.
    #[error("the environment variable {var} is not valid UTF-8; set it to text")]
    NotUnicode {
        /// The variable.
        var: String,
    },
}
