//! Drawing graphs: Graphviz DOT text, and rendering it with `dot`.
//!
//! Like Dask's `visualize`, each call is a circle labelled with the operation and each result a
//! box labelled with its (shortened) key; values held in the graph are boxes only.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::Graph;
use crate::error::VisualizeError;
use crate::task::TaskSpec;

/// How to draw a graph.
#[derive(Debug, Clone)]
pub struct DotOptions {
    /// Graphviz `rankdir`: `BT` (bottom to top, Dask's default), `LR`, `TB` or `RL`.
    pub rankdir: &'static str,
    /// Draw result boxes as well as call circles.
    pub show_data: bool,
}

impl Default for DotOptions {
    fn default() -> Self {
        DotOptions {
            rankdir: "BT",
            show_data: true,
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Graph {
    /// The graph as Graphviz DOT text.
    pub fn to_dot(&self, options: &DotOptions) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "digraph oxidask {{");
        let _ = writeln!(s, "  rankdir={};", options.rankdir);
        let _ = writeln!(s, "  node [fontname=\"Helvetica\", fontsize=10];");
        for (pos, (key, task)) in self.iter().enumerate() {
            let data = format!("d{pos}");
            let is_value = matches!(task.spec(), TaskSpec::Value(_));
            if options.show_data || is_value {
                let _ = writeln!(
                    s,
                    "  {data} [label=\"{}\", shape=box, tooltip=\"{}\"];",
                    escape(&key.short()),
                    escape(&key.to_string())
                );
            }
            if is_value {
                continue;
            }
            let call = format!("f{pos}");
            let _ = writeln!(
                s,
                "  {call} [label=\"{}\", shape=circle, tooltip=\"{}\"];",
                escape(task.label()),
                escape(&key.to_string())
            );
            if options.show_data {
                let _ = writeln!(s, "  {call} -> {data};");
            }
            let mut seen = Vec::new();
            task.for_each_dependency(|k| {
                if seen.contains(k) {
                    return;
                }
                seen.push(*k);
                if let Some(dpos) = self.position(k) {
                    let dep_is_value = matches!(self.task_at(dpos).spec(), TaskSpec::Value(_));
                    let src = if options.show_data || dep_is_value {
                        format!("d{dpos}")
                    } else {
                        format!("f{dpos}")
                    };
                    let _ = writeln!(s, "  {src} -> {call};");
                }
            });
        }
        let _ = writeln!(s, "}}");
        s
    }

    /// Writes a picture of the graph to `path`: DOT text for `.dot`/`.gv`, otherwise rendered
    /// by Graphviz `dot` in the format the extension names (`svg`, `png`, `pdf`, …).
    pub fn visualize(
        &self,
        path: impl AsRef<Path>,
        options: &DotOptions,
    ) -> Result<(), VisualizeError> {
        let path = path.as_ref();
        let text = self.to_dot(options);
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("svg")
            .to_ascii_lowercase();
        if ext == "dot" || ext == "gv" {
            return std::fs::write(path, text).map_err(|source| VisualizeError::Io {
                path: path.to_owned(),
                source,
            });
        }
        let child = Command::new("dot")
            .arg(format!("-T{ext}"))
            .arg("-o")
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VisualizeError::GraphvizMissing {
                    path: path.to_owned(),
                })
            }
            Err(source) => {
                return Err(VisualizeError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(text.as_bytes())
                .map_err(|source| VisualizeError::Io {
                    path: path.to_owned(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| VisualizeError::Io {
                path: path.to_owned(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(VisualizeError::GraphvizFailed {
                path: path.to_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }
}
