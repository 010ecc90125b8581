//! # oxidask-core
//!
//! The pure heart of oxidask: everything about *what* to compute, nothing about *where*.
//!
//! - [`Key`] and [`Token`] name results; [`tokenize`] makes equal calls share a key.
//! - [`Data`] values can be measured, tokenized and encoded; [`Value`] holds any result.
//! - [`OpDef`] is a registered operation (written by `#[task]`), found by name with
//!   [`op::lookup`].
//! - [`Task`] and [`Graph`] describe work; [`Plan`] is a graph culled, checked, ordered and
//!   fused for running; [`exec::execute`] runs one task.
//! - [`Delayed`] builds graphs lazily from typed calls; [`Collection`] and [`Compute`] are the
//!   seam between collections and schedulers.
//!
//! Architecture invariant: this crate does no I/O (beyond running Graphviz on request), starts
//! no threads and knows no scheduler.
//!
//! ```
//! use oxidask_core::{task, Collection};
//!
//! #[task(crate = oxidask_core)]
//! fn inc(x: i64) -> i64 { x + 1 }
//!
//! #[task(crate = oxidask_core)]
//! fn add(x: i64, y: i64) -> i64 { x + y }
//!
//! let z = add(inc(1), inc(2));            // lazy: a graph of three tasks
//! assert_eq!(z.graph().len(), 3);
//! let v = z.compute_with(&oxidask_core::compute::Inline).unwrap();
//! assert_eq!(v, 5);
//! assert_eq!(inc::call(1), 2);            // the plain function is still there
//! ```

pub mod codec;
pub mod codecs;
pub mod compute;
pub mod data;
pub mod delayed;
pub mod error;
pub mod exec;
pub mod graph;
pub mod key;
pub mod op;
pub mod reference;
pub mod remote;
pub mod shuffle;
pub mod task;
pub mod tokenize;
pub mod value;

pub use codec::CodecError;
pub use compute::{compute, persist, Collection, Compute};
pub use data::{decode, encode, Data};
pub use delayed::{
    collect, delayed, lazy, map2, map3, Delayed, IntoArg, IntoDelayed, MaybeDelayed,
};
pub use error::{Error, GraphError, TaskError, VisualizeError};
pub use graph::{DotOptions, Graph, Plan, PlanOptions};
pub use key::{Key, Prefix};
pub use op::{OpDef, TaskFailure};
pub use oxidask_macros::{task, Data};
pub use task::{Arg, Task, TaskSpec};
pub use tokenize::{tokenize, Token};
pub use value::{Encoded, Foreign, Value};

/// What the `#[task]` and `#[derive(Data)]` macros expand to. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::codec::{CodecError, Reader, Writer};
    pub use crate::codecs::TypeCodec;
    pub use crate::data::Data;
    pub use crate::delayed::{ArgSource, Delayed, IntoArg};
    pub use crate::op::{Args, Input, OpDef, OpRegistration, TaskFailure};
    pub use crate::value::Value;
    pub use inventory;
}
