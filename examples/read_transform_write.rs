//! The tutorial's read-transform-write loop over a folder of files: one lazy task per file,
//! all computed at once.
//!
//! Each input is a CSV of numbers; the transformation writes, for every row, its sum and
//! mean; the task returns where it wrote. `cargo run -p oxidask-examples --example read_transform_write`

use std::fmt::Write as _;
use std::path::Path;

use oxidask::prelude::*;
use oxidask_examples::{remove_dir, scratch_dir};

/// Why a file could not be processed.
#[derive(Debug)]
struct BadFile(String);

impl std::fmt::Display for BadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadFile {}

fn read_a_file(path: &str) -> Result<Vec<Vec<f64>>, BadFile> {
    let text = std::fs::read_to_string(path).map_err(|e| BadFile(format!("{path}: {e}")))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            line.split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|e| BadFile(format!("{path} line {}: `{v}`: {e}", i + 1)))
                })
                .collect()
        })
        .collect()
}

fn do_a_transformation(rows: &[Vec<f64>]) -> String {
    let mut out = String::from("sum,mean\n");
    for row in rows {
        let sum: f64 = row.iter().sum();
        let _ = writeln!(out, "{sum},{}", sum / row.len().max(1) as f64);
    }
    out
}

#[oxidask::task]
fn process_file(filename: String, results_dir: String) -> Result<String, BadFile> {
    let data = read_a_file(&filename)?;
    let data = do_a_transformation(&data);
    let name = Path::new(&filename)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let destination = format!("{results_dir}/{name}");
    std::fs::write(&destination, data).map_err(|e| BadFile(format!("{destination}: {e}")))?;
    Ok(destination)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = scratch_dir("rtw")?;
    let inputs = dir.join("inputs");
    let results = dir.join("results");
    std::fs::create_dir_all(&inputs)?;
    std::fs::create_dir_all(&results)?;
    let filenames: Vec<String> = (0..24)
        .map(|f| {
            let path = inputs.join(format!("part-{f:02}.csv"));
            let body: String = (0..1000)
                .map(|r| format!("{},{},{}\n", f * r, r, f + 1))
                .collect();
            std::fs::write(&path, body).expect("writing an input file");
            path.to_string_lossy().into_owned()
        })
        .collect();

    let results_dir = results.to_string_lossy().into_owned();
    let mut lazy = Vec::new();
    for filename in &filenames {
        lazy.push(process_file(filename.clone(), results_dir.clone()));
    }
    let written = oxidask::compute(&lazy)?;
    println!("wrote {} files, e.g. {}", written.len(), written[0]);
    let first = std::fs::read_to_string(&written[1])?;
    println!("{}", first.lines().take(3).collect::<Vec<_>>().join("\n"));
    assert_eq!(first.lines().nth(2), Some("4,1.3333333333333333")); // row 1: 1 + 1 + 2

    // A malformed file fails its task with a message naming the file and line.
    let bad = inputs.join("bad.csv");
    std::fs::write(&bad, "1,2\n3,x\n")?;
    let err = process_file(bad.to_string_lossy().into_owned(), results_dir)
        .compute()
        .unwrap_err();
    println!("a bad file: {err}");
    assert!(err.to_string().contains("bad.csv line 2"));
    remove_dir(&dir);
    Ok(())
}
