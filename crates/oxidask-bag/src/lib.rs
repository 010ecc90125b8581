//! # oxidask-bag
//!
//! Dask's bag for oxidask: a lazy, partitioned collection of records of any
//! [`Data`](oxidask_core::Data) type — text lines, JSON values ([`Json`]), numbers, tuples,
//! your own `#[derive(Data)]` structs — processed with `map`, `filter`, `flatten`,
//! `frequencies`, `foldby`, `groupby`, `topk` and friends, on any scheduler.
//!
//! ```
//! use oxidask_bag::{Bag, TextReader};
//! use oxidask_core::Collection;
//! # oxidask_core::compute::with_scheduler(std::sync::Arc::new(oxidask_core::compute::Inline), || {
//! // Word count: read, split, count, keep the most frequent.
//! let dir = std::env::temp_dir().join(format!("oxidask-bag-lib-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(dir.join("a.txt"), "the cat\nthe dog\n").unwrap();
//! std::fs::write(dir.join("b.txt"), "the end\n").unwrap();
//!
//! let words = TextReader::new(&dir).lines().unwrap()
//!     .flat_map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
//! let top = words.frequencies(true).take(1).unwrap();
//! assert_eq!(top, vec![("the".to_string(), 3)]);
//! assert_eq!(words.count().compute().unwrap(), 6);
//!
//! // Numbers: reductions are tree reductions.
//! let nums = Bag::from_sequence(1..=100i64, 7);
//! assert_eq!(nums.sum().compute().unwrap(), 5050);
//! assert_eq!(nums.mean().compute().unwrap(), 50.5);
//! assert_eq!(nums.topk(2).compute().unwrap(), vec![100, 99]);
//! std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```
//!
//! ## Where bags run
//!
//! A bag is a list of partitions, each a task producing a `Vec<T>`. Built-in operations
//! (`count`, `frequencies`, `distinct`, `topk`, `sum`, `take`, `repartition`, `flatten`,
//! `pluck`, `read_text`, `to_textfiles`, …) are registered operations that take their
//! parameters as data, so the same graph runs on the synchronous, threaded and distributed
//! schedulers — on stock `oxidask worker`s for the record types registered in [`kind`]
//! (strings, numbers, JSON, common tuples and lists), and on workers started from your
//! program for the types it registers with [`register_records!`].
//!
//! User functions come in two forms, as elsewhere in oxidask: closures (`map`, `filter`,
//! `flat_map`, `foldby`, `groupby`, `reduction`, `topk_by`) run on the local schedulers
//! only — the distributed client refuses them with a message saying how to register them;
//! `#[oxidask::task]` functions (`map_op`, `filter_op`, `map_partitions_op`,
//! `reduction_op`) run everywhere.
//!
//! ## Bad records
//!
//! [`Bag::try_map`] turns a function returning `Result` into a bag of `Result<U, String>`;
//! [`Bag::oks`] keeps the good records, [`Bag::count_errs`] counts the bad and
//! [`Bag::errs`] lists their messages. [`TextReader::json_results`] reads JSON lines that
//! way, each bad line's message naming its file and line number.

mod bag;
#[cfg(feature = "dataframe")]
mod frame;
mod json;
pub mod kind;
mod ops;
mod text;

pub use bag::{Bag, DEFAULT_SPLIT_EVERY};
#[cfg(feature = "dataframe")]
pub use frame::from_dataframe;
pub use json::Json;
pub use kind::{Numeric, Ordered};
pub use text::{read_json, read_text, Compression, IntoPaths, TextReader};

/// What can go wrong when a bag is built (reading file lists, bad options) or written.
#[derive(Debug, thiserror::Error)]
pub enum BagError {
    /// A bad path, pattern or option; the message says which and what to do.
    #[error("{0}")]
    Invalid(String),
    /// A file system error on the named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The computation failed.
    #[error(transparent)]
    Compute(#[from] oxidask_core::Error),
}

impl BagError {
    pub(crate) fn io(path: &str, source: std::io::Error) -> BagError {
        BagError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// What [`register_records!`] expands to. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use oxidask_core::codecs::TypeCodec;
}
