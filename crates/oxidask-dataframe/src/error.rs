//! Errors of dataframe construction, reading and writing.

/// What went wrong building, reading or writing a dataframe. Every variant names what to look
/// at: the column, the file, the value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FrameError {
    /// Polars refused an operation (an unknown column, a type mismatch in an expression, …).
    #[error("{context}: {detail}")]
    Polars {
        /// What was being done.
        context: String,
        /// Polars' message.
        detail: String,
    },
    /// A column the operation needs is not in the frame.
    #[error("unknown column `{column}`; the frame has: {}", available.join(", "))]
    UnknownColumn {
        /// The column asked for.
        column: String,
        /// The columns there are.
        available: Vec<String>,
    },
    /// A file could not be listed, read or written.
    #[error("{path}: {detail}")]
    Io {
        /// The file or URL.
        path: String,
        /// What failed.
        detail: String,
    },
    /// A path or pattern matched no files.
    #[error("no files match `{0}`; check the path (globs like data/*.parquet, directories and s3:// URLs are accepted)")]
    NoFiles(String),
    /// A named secret ([`crate::Credentials::Named`]) is not set in this process's
    /// environment. Names the variables, never their values.
    #[error("S3 secret `{name}` is not set in this process: set {} in the environment of the client and of every worker (the process that reads the bucket resolves it)", missing.join(" and "))]
    MissingSecret {
        /// The secret's name.
        name: String,
        /// The environment variables that are unset or empty.
        missing: Vec<String>,
    },
    /// The arguments of an operation do not fit together.
    #[error("{0}")]
    Invalid(String),
}

impl FrameError {
    /// A Polars error with what was being done.
    pub(crate) fn polars(context: impl Into<String>, e: impl std::fmt::Display) -> FrameError {
        FrameError::Polars {
            context: context.into(),
            detail: e.to_string(),
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<String>, e: impl std::fmt::Display) -> FrameError {
        FrameError::Io {
            path: path.into(),
            detail: e.to_string(),
        }
    }
}

impl From<FrameError> for oxidask_core::Error {
    fn from(e: FrameError) -> Self {
        oxidask_core::Error::Collection(Box::new(e))
    }
}
