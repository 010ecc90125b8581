//! One layered configuration for oxidask, with Dask's key names.
//!
//! Every setting has a key from one [schema](schema::SCHEMA) (Dask's name where Dask has one:
//! `distributed.worker.memory.target`, `distributed.comm.timeouts.connect`, `array.chunk-size`,
//! ...), a kind (fraction, whole number, boolean, size, duration, text, path, choice; some
//! also take `null` or `false`), a default and a one-line meaning (`docs/CONFIG.md` lists
//! them all). Values come from layers, lowest first:
//!
//! 1. built-in defaults;
//! 2. YAML files: `/etc/oxidask/*.yaml`, then `~/.config/oxidask/*.yaml` (`$XDG_CONFIG_HOME`
//!    respected), then the files or directories `OXIDASK_CONFIG` names;
//! 3. environment variables such as `OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET=0.6` (`__`
//!    separates nested keys; see [`Environment`] for the exact rule);
//! 4. code: [`set`] returns a guard, and the value holds until it drops (scoped, nestable,
//!    for every thread, as Dask's `dask.config.set`);
//! 5. command-line [`Flags`].
//!
//! The main types: [`Config`] (a value and its [`Source`] for every key, with typed getters
//! and [`Config::render`] for printing), [`Environment`] (where layers 2 and 3 come from),
//! [`Flags`], [`Overlay`] (layers 4 and 5 over a config; [`global`] is the process-wide one)
//! and [`ConfigError`], whose every message names the key, where the value came from and what
//! was expected. Sizes and durations read with units as Dask reads them ([`units`]).
//!
//! ```
//! use std::time::Duration;
//! use oxidask_config::{Config, Environment, Flags, Source};
//!
//! // Load as the process would, from these variables rather than the process's.
//! let env = Environment::from_vars([
//!     ("OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET", "0.5"),
//!     ("OXIDASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "5 minutes"),
//! ]);
//! let config = Config::load_from(&env)?;
//! assert_eq!(config.fraction("distributed.worker.memory.target"), Some(0.5));
//! assert_eq!(
//!     config.duration("distributed.comm.timeouts.connect"),
//!     Some(Duration::from_secs(300))
//! );
//! assert_eq!(
//!     config.source_of("distributed.worker.memory.target")?,
//!     &Source::Env("OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET".into())
//! );
//! assert_eq!(config.size("array.chunk-size"), Some(128 << 20)); // a default
//! assert_eq!(config.size("distributed.worker.memory.max-spill"), None); // false: no limit
//!
//! // A command line's flags rank highest.
//! let mut flags = Flags::new();
//! flags.set("--memory-target", "distributed.worker.memory.target", "0.7")?;
//! let config = config.with_flags(&flags);
//! assert_eq!(config.fraction("distributed.worker.memory.target"), Some(0.7));
//!
//! // Errors say what is wrong, where, and what would be right.
//! let env = Environment::from_vars([("OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGT", "0.5")]);
//! let err = Config::load_from(&env).unwrap_err().to_string();
//! assert!(err.contains("did you mean `distributed.worker.memory.target`?"), "{err}");
//! # Ok::<(), oxidask_config::ConfigError>(())
//! ```

mod config;
mod error;
mod load;
mod overlay;
pub mod schema;
mod source;
pub mod units;
mod value;

pub use config::{Config, Flags};
pub use error::{ConfigError, Reason};
pub use load::{key_of_var, Environment, CONFIG_VAR, ENV_PREFIX, ROOT_CONFIG_VAR, SYSTEM_DIR};
pub use overlay::{global, refresh, set, set_all, set_flags, Overlay, SetGuard};
pub use source::Source;
pub use value::{Raw, Value};
