//! The `bag` suite: a word count over generated text and a JSON-records aggregation, on the
//! threaded scheduler, against Dask bag (`reference/bag_ref.py`) on the same files.
//!
//! The data is generated deterministically (xorshift, Zipf-like words) into
//! `$OXIDASK_BENCH_DATA/bag-{text|json}-{n}` (n = megabytes) the first time, outside the
//! timed region; both sides read the same files.

use std::cmp::Reverse;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use oxidask::bag::{Bag, Json, TextReader};
use serde_json::json;

use crate::array::peak_rss_mib;
use crate::Opts;

/// Files per data set (one partition each on both sides).
const FILES: usize = 16;

fn root() -> PathBuf {
    PathBuf::from(std::env::var("OXIDASK_BENCH_DATA").unwrap_or_else(|_| "benchmarks/data".into()))
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Zipf-like index in `0..n`.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as usize).saturating_sub(1)
    }
}

fn vocabulary(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let len = 2 + (rng.next() % 9) as usize;
            (0..len)
                .map(|_| (b'a' + (rng.next() % 26) as u8) as char)
                .collect()
        })
        .collect()
}

/// Writes `FILES` files totalling about `mb` megabytes, each line made by `line`.
fn generate(dir: &Path, mb: usize, mut line: impl FnMut(&mut String)) -> Result<(), String> {
    if dir.join("DONE").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let per_file = mb * 1_000_000 / FILES;
    for f in 0..FILES {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(dir.join(format!("part-{f:02}.txt")))
                .map_err(|e| e.to_string())?,
        );
        let mut written = 0;
        let mut l = String::new();
        while written < per_file {
            l.clear();
            line(&mut l);
            l.push('\n');
            out.write_all(l.as_bytes()).map_err(|e| e.to_string())?;
            written += l.len();
        }
        out.flush().map_err(|e| e.to_string())?;
    }
    std::fs::write(dir.join("DONE"), "").map_err(|e| e.to_string())
}

fn text_data(mb: usize) -> Result<PathBuf, String> {
    let dir = root().join(format!("bag-text-{mb}"));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let vocab = vocabulary(&mut rng, 50_000);
    generate(&dir, mb, |l| {
        for i in 0..12 {
            if i > 0 {
                l.push(' ');
            }
            l.push_str(&vocab[rng.zipf(vocab.len())]);
        }
    })?;
    Ok(dir)
}

fn json_data(mb: usize) -> Result<PathBuf, String> {
    let dir = root().join(format!("bag-json-{mb}"));
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let kinds = ["view", "click", "purchase", "refund", "search"];
    let mut id = 0u64;
    generate(&dir, mb, |l| {
        id += 1;
        let user = rng.zipf(20_000);
        let kind = kinds[(rng.next() % 5) as usize];
        let amount = rng.next() % 100_000;
        let tags: Vec<String> = (0..(rng.next() % 4))
            .map(|t| format!("\"t{}\"", (t * 7 + rng.next() % 50)))
            .collect();
        l.push_str(&format!(
            r#"{{"id": {id}, "user": "u{user}", "kind": "{kind}", "amount": {amount}, "tags": [{}]}}"#,
            tags.join(", ")
        ));
    })?;
    Ok(dir)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Runs one case of the suite.
pub fn run(case: &str, opts: &Opts) -> Result<serde_json::Value, String> {
    // The default scheduler is the threaded pool, one thread per core.
    let _guard = (opts.threads > 0).then(|| {
        oxidask::config::enter_scheduler(std::sync::Arc::new(oxidask::Threaded::new(opts.threads)))
    });
    match case {
        "word-count" => {
            let dir = text_data(opts.n)?;
            let start = Instant::now();
            let words = TextReader::new(dir.join("*.txt").to_string_lossy().into_owned())
                .lines()
                .map_err(err)?
                .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
            let freq = words.frequencies(false);
            let top = freq.topk_by(10, |(w, c)| (*c, Reverse(w.clone())));
            let (top, distinct) = oxidask::compute((&top, &freq.count())).map_err(err)?;
            let seconds = start.elapsed().as_secs_f64();
            let check = json!([distinct, top]);
            Ok(json!({"seconds": seconds, "peak_mib": peak_rss_mib(), "check": check}))
        }
        "json-records" => {
            let dir = json_data(opts.n)?;
            let start = Instant::now();
            let records: Bag<Json> =
                TextReader::new(dir.join("*.txt").to_string_lossy().into_owned())
                    .json()
                    .map_err(err)?;
            let purchases = records.filter(|r| r["kind"] == "purchase");
            let by_user = purchases.foldby(
                |r| r["user"].as_str().unwrap_or_default().to_owned(),
                0i64,
                |acc, r| acc + r["amount"].as_i64().unwrap_or(0),
                0i64,
                |a, b| a + b,
            );
            let amounts = purchases.pluck("amount").map(|a| a.as_i64().unwrap_or(0));
            let (groups, total) = oxidask::compute((&by_user, &amounts.sum())).map_err(err)?;
            let seconds = start.elapsed().as_secs_f64();
            let group_total: i64 = groups.iter().map(|(_, a)| a).sum();
            let top = groups.iter().map(|(_, a)| *a).max().unwrap_or(0);
            let check = json!([groups.len(), group_total, total, top]);
            Ok(json!({"seconds": seconds, "peak_mib": peak_rss_mib(), "check": check}))
        }
        other => Err(format!("unknown case {other}")),
    }
}
