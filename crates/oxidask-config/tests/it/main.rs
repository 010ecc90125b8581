//! Integration tests of oxidask-config: loading and precedence, every error message, scoped
//! values, and the documentation of every key.

mod docs;
mod errors;
mod overlay;
mod precedence;

use std::path::{Path, PathBuf};

use oxidask_config::{Config, ConfigError, Environment};

/// A sandbox: its own system directory, user directory and extra files, so no test reads the
/// machine's `/etc/oxidask` or `~/.config/oxidask`, nor changes the process's environment.
pub(crate) struct Sandbox {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Sandbox {
    /// An empty sandbox.
    pub(crate) fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for sub in ["etc", "xdg/oxidask", "extra"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create a directory");
        }
        let vars = vec![
            (
                "OXIDASK_ROOT_CONFIG".to_owned(),
                path_str(&dir.path().join("etc")),
            ),
            (
                "XDG_CONFIG_HOME".to_owned(),
                path_str(&dir.path().join("xdg")),
            ),
        ];
        Sandbox { dir, vars }
    }

    /// The sandbox's root.
    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `rel` under the root, returning its path.
    pub(crate) fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create a directory");
        std::fs::write(&path, text).expect("write a file");
        path
    }

    /// Adds (or replaces) a variable.
    pub(crate) fn var(mut self, name: &str, value: &str) -> Sandbox {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The sandbox's variables.
    pub(crate) fn env(&self) -> Environment {
        Environment::from_vars(self.vars.clone())
    }

    /// Loads from the sandbox's variables.
    pub(crate) fn load(&self) -> Result<Config, ConfigError> {
        Config::load_from(&self.env())
    }

    /// The error message loading gives (the load must fail).
    pub(crate) fn error(&self) -> String {
        match self.load() {
            Ok(_) => panic!("the configuration loaded, but it should not have"),
            Err(e) => e.to_string(),
        }
    }
}

/// `p` as text.
pub(crate) fn path_str(p: &Path) -> String {
    p.to_str().expect("a UTF-8 path").to_owned()
}
