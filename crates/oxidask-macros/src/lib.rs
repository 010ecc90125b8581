//! Procedural macros for oxidask: `#[task]` registers a function as an operation and makes
//! calling it lazy; `#[derive(Data)]` gives a type a codec, a token and an exact size.
//!
//! Both accept `crate = path` to name the oxidask crate when it is not `::oxidask` (the
//! collection crates use `oxidask_core`).

mod data;
mod task;

use proc_macro::TokenStream;

/// Registers a function as an oxidask operation and makes calling it lazy.
///
/// ```text
/// #[oxidask::task]
/// fn inc(x: i64) -> i64 { x + 1 }
///
/// let d: Delayed<i64> = inc(1);        // lazy: builds a task
/// let d2 = inc(d);                     // arguments may be values or delayed results
/// assert_eq!(inc::call(1), 2);         // the function itself, run now
/// let op = inc::op();                  // its registered operation
/// ```
///
/// Parameters may be taken by value (`x: T`, moved in when this task is the last reader,
/// cloned otherwise) or by reference (`x: &T`). The return type may be `T` or
/// `Result<T, E>`; an `Err` fails the task with its message and cause chain. Every parameter
/// and result type must implement `Data`.
///
/// Options: `name = "stable::name"` (default: module path and function name),
/// `pure = false` (a fresh key per call, for functions with side effects),
/// `crate = path` (where oxidask is).
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    task::expand(attr.into(), item.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Implements `Data` for a struct or enum whose fields all implement `Data`.
///
/// Use `#[data(crate = path)]` when oxidask is not `::oxidask`.
#[proc_macro_derive(Data, attributes(data))]
pub fn derive_data(item: TokenStream) -> TokenStream {
    data::expand(item.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}
