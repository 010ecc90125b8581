//! The examples live in this folder as `cargo run -p oxidask-examples --example NAME`
//! programs; this library only holds what several of them share.

use std::path::{Path, PathBuf};

/// A fresh, empty scratch directory under the system temp dir.
pub fn scratch_dir(name: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("oxidask-example-{name}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes a scratch directory, ignoring errors (it is only temp data).
pub fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
