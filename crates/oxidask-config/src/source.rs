//! Where a value came from: every value and every error carries one, so a user always learns
//! which file, variable, call or flag to change.

use std::fmt;
use std::path::PathBuf;

/// The layer a value came from, lowest first: a built-in default, a YAML file, an environment
/// variable, a call to [`set`](crate::set), a command-line flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The built-in default of the [schema](crate::schema).
    Default,
    /// A YAML file.
    File(PathBuf),
    /// An environment variable, by name (`OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET`).
    Env(String),
    /// A call to [`set`](crate::set) (or [`Overlay::set`](crate::Overlay::set)) in code, at
    /// this place in the caller's source.
    Code {
        /// The source file of the call.
        file: &'static str,
        /// Its line.
        line: u32,
    },
    /// A command-line flag, by name (`--memory-target`).
    Flag(String),
}

impl Source {
    /// The place in the caller's code that called the current function (which must be
    /// `#[track_caller]`).
    #[track_caller]
    pub(crate) fn caller() -> Source {
        let at = std::panic::Location::caller();
        Source::Code {
            file: at.file(),
            line: at.line(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::Code { file, line } => write!(f, "oxidask_config::set at {file}:{line}"),
            Source::Flag(name) => write!(f, "flag {name}"),
        }
    }
}
