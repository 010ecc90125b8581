//! Integration tests of the local schedulers.

mod errors;
mod nested;
mod ops;
mod parallel;
mod random_dags;
