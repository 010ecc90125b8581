//! Values set in code and by flags, over a loaded configuration: an [`Overlay`], and the
//! process-wide one behind [`global`], [`set`] and [`set_flags`] (Dask's global
//! `dask.config`, with `dask.config.set` as a guard).
//!
//! The lock is a `std::sync::Mutex`: it is held only to push or remove a layer and to build
//! the effective [`Config`] (no I/O, except reading the files and variables the first time
//! [`global`] is called), and readers get an `Arc` snapshot, so nothing waits on it for long.

use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use crate::config::{Config, Flags, Layer};
use crate::error::ConfigError;
use crate::source::Source;
use crate::value::Raw;

/// A base configuration with scoped layers set in code and a layer of flags on top, lowest
/// first: base < code (in the order set) < flags. Cheap to clone (clones share the layers).
///
/// [`global`] is the process-wide overlay; make your own to give a component its own
/// configuration.
#[derive(Clone, Debug)]
pub struct Overlay {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The defaults, files and environment; `None` until the process-wide overlay first loads.
    base: Option<Arc<Config>>,
    /// Layers set in code that are still alive, by guard id, oldest first.
    code: Vec<(u64, Layer)>,
    next_id: u64,
    flags: Layer,
    /// The effective configuration, until a layer changes.
    cache: Option<Arc<Config>>,
}

impl Overlay {
    /// An overlay over `base`.
    pub fn new(base: Config) -> Overlay {
        Overlay {
            inner: Arc::new(Mutex::new(Inner {
                base: Some(Arc::new(base)),
                ..Inner::default()
            })),
        }
    }

    /// An overlay whose base is [`Config::load`]ed when first needed.
    fn unloaded() -> Overlay {
        Overlay {
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the layers half-changed: every change is one push,
        // retain or assignment.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The effective configuration now.
    pub fn current(&self) -> Result<Arc<Config>, ConfigError> {
        let mut inner = self.lock();
        if let Some(c) = &inner.cache {
            return Ok(c.clone());
        }
        let base = match &inner.base {
            Some(b) => b.clone(),
            None => {
                let b = Arc::new(Config::load()?);
                inner.base = Some(b.clone());
                b
            }
        };
        let effective = if inner.code.is_empty() && inner.flags.is_empty() {
            base
        } else {
            let mut c = Config::clone(&base);
            for (_, layer) in &inner.code {
                c.apply(layer);
            }
            c.apply(&inner.flags);
            Arc::new(c)
        };
        inner.cache = Some(effective.clone());
        Ok(effective)
    }

    /// Replaces the base (the flags and the values set in code stay).
    pub fn replace_base(&self, base: Config) {
        let mut inner = self.lock();
        inner.base = Some(Arc::new(base));
        inner.cache = None;
    }

    /// Sets `key` to `value` until the returned guard drops (see [`set`]).
    #[track_caller]
    pub fn set(&self, key: &str, value: impl Into<Raw>) -> Result<SetGuard, ConfigError> {
        self.set_all([(key, value)])
    }

    /// Sets several keys at once, until the returned guard drops; if one is wrong, none is
    /// set.
    #[track_caller]
    pub fn set_all<K: AsRef<str>, V: Into<Raw>>(
        &self,
        values: impl IntoIterator<Item = (K, V)>,
    ) -> Result<SetGuard, ConfigError> {
        let from = Source::caller();
        let mut layer = Layer::default();
        for (k, v) in values {
            layer.insert(k.as_ref(), &v.into(), from.clone())?;
        }
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.code.push((id, layer));
        inner.cache = None;
        Ok(SetGuard {
            overlay: self.clone(),
            id,
        })
    }

    /// Makes `flags` the flag layer (replacing the previous one).
    pub fn set_flags(&self, flags: Flags) {
        let mut inner = self.lock();
        inner.flags = flags.layer().clone();
        inner.cache = None;
    }
}

/// Values set in code: they hold until this guard drops (Dask's `with dask.config.set(...)`).
///
/// Guards nest: an inner `set` of the same key wins while it lives, and the outer value is
/// back once it drops. They may drop in any order; each removes only its own values.
#[derive(Debug)]
#[must_use = "the values are unset when the guard drops: bind it (`let _guard = ...`)"]
pub struct SetGuard {
    overlay: Overlay,
    id: u64,
}

impl Drop for SetGuard {
    fn drop(&mut self) {
        let mut inner = self.overlay.lock();
        inner.code.retain(|(id, _)| *id != self.id);
        inner.cache = None;
    }
}

static GLOBAL: LazyLock<Overlay> = LazyLock::new(Overlay::unloaded);

/// The process-wide configuration: [`Config::load`] (read on first use, and again on the next
/// call if it failed; [`refresh`] reads it anew) with the
/// values [`set`] in code and the [flags](set_flags) applied over it. Cheap: a lock and an
/// `Arc` clone while nothing changes.
pub fn global() -> Result<Arc<Config>, ConfigError> {
    GLOBAL.current()
}

/// Sets `key` to `value` process-wide until the returned guard drops, checking it first
/// (text such as `"4GiB"` or `"30s"` is read by the key's kind). Values set in code rank
/// above files and the environment and below flags; they are visible to every thread, as
/// Dask's `dask.config.set` is.
///
/// ```
/// use std::time::Duration;
///
/// let key = "distributed.comm.timeouts.connect";
/// let before = oxidask_config::global()?.duration(key);
/// {
///     let _guard = oxidask_config::set(key, "5s")?;
///     let config = oxidask_config::global()?;
///     assert_eq!(config.duration(key), Some(Duration::from_secs(5)));
///     assert!(config.source_of(key)?.to_string().starts_with("oxidask_config::set at "));
/// }
/// assert_eq!(oxidask_config::global()?.duration(key), before);
/// # Ok::<(), oxidask_config::ConfigError>(())
/// ```
#[track_caller]
pub fn set(key: &str, value: impl Into<Raw>) -> Result<SetGuard, ConfigError> {
    GLOBAL.set(key, value)
}

/// Sets several keys process-wide at once (see [`set`]); if one is wrong, none is set.
#[track_caller]
pub fn set_all<K: AsRef<str>, V: Into<Raw>>(
    values: impl IntoIterator<Item = (K, V)>,
) -> Result<SetGuard, ConfigError> {
    GLOBAL.set_all(values)
}

/// Makes `flags` the process-wide flag layer: what a command line sets ranks above
/// everything else.
pub fn set_flags(flags: Flags) {
    GLOBAL.set_flags(flags)
}

/// Reads the files and the environment again for [`global`] (values set in code and flags
/// stay).
pub fn refresh() -> Result<(), ConfigError> {
    GLOBAL.replace_base(Config::load()?);
    Ok(())
}
