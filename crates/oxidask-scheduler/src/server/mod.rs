//! The network shell.
