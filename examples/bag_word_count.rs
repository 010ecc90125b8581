//! Word count with a bag (Dask's `db.read_text(...).str.split().flatten().frequencies()`):
//! read text files, split lines into words, count them, keep the most frequent — on the
//! threaded scheduler with closures, then on a local cluster with a registered function —
//! both checked against a plain loop.
//!
//! `cargo run --release -p oxidask-examples --example bag_word_count`

use std::collections::HashMap;
use std::time::Instant;

use oxidask::bag::TextReader;
use oxidask::distributed::LocalCluster;
use oxidask::prelude::*;

/// Lower-cased alphanumeric words of a line.
fn split(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The same, registered so that workers of a cluster can run it.
#[oxidask::task]
fn words(line: String) -> Vec<String> {
    split(&line)
}

/// A deterministic corpus: Zipf-like word frequencies, `files` files of `lines` lines.
fn write_corpus(dir: &std::path::Path, files: usize, lines: usize) -> std::io::Result<()> {
    let vocab: Vec<String> = (0..5000).map(|i| format!("w{i}")).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for f in 0..files {
        let mut text = String::new();
        for _ in 0..lines {
            let line: Vec<&str> = (0..12)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                    vocab[((vocab.len() as f64).powf(u) as usize).saturating_sub(1)].as_str()
                })
                .collect();
            text.push_str(&line.join(" "));
            text.push('\n');
        }
        std::fs::write(dir.join(format!("part-{f:02}.txt")), text)?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    oxidask::distributed::run_if_worker();
    let dir = std::env::temp_dir().join(format!("oxidask-bag-word-count-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    write_corpus(&dir, 8, 50_000)?;

    // Threaded, with closures: 1 MB blocks of every file in the directory.
    let t = Instant::now();
    let lines = TextReader::new(&dir).blocksize(1 << 20).lines()?;
    let counts = lines.flat_map(|l| split(&l)).frequencies(false);
    let top = counts.topk_by(5, |(w, c)| (*c, std::cmp::Reverse(w.clone())));
    let (all, top) = oxidask::compute((&counts, &top))?;
    println!(
        "parallel: {} distinct words from {} partitions in {:.2?}",
        all.len(),
        lines.npartitions(),
        t.elapsed()
    );

    // The plain loop.
    let t = Instant::now();
    let mut expected: HashMap<String, u64> = HashMap::new();
    for entry in std::fs::read_dir(&dir)? {
        for line in std::fs::read_to_string(entry?.path())?.lines() {
            for w in split(line) {
                *expected.entry(w).or_insert(0) += 1;
            }
        }
    }
    println!(
        "one loop: {} distinct words in {:.2?}",
        expected.len(),
        t.elapsed()
    );
    let got: HashMap<String, u64> = all.into_iter().collect();
    assert_eq!(got, expected);
    let mut want_top: Vec<(String, u64)> = expected.clone().into_iter().collect();
    want_top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    want_top.truncate(5);
    assert_eq!(top, want_top);
    for (w, c) in &top {
        println!("{w:>6} {c}");
    }

    // On a cluster, with the registered function: the same graph shape, every step a
    // registered operation.
    let cluster = LocalCluster::builder()
        .workers(2)
        .threads_per_worker(1)
        .start()?;
    let client = cluster.client()?;
    let freq = TextReader::new(&dir)
        .blocksize(4 << 20)
        .lines()?
        .map_op::<Vec<String>>(words::op())
        .flatten()
        .frequencies(true);
    let on_cluster = freq.compute_with(&client)?;
    assert_eq!(on_cluster.len(), expected.len());
    assert_eq!(on_cluster[0], (want_top[0].0.clone(), want_top[0].1));
    assert!(on_cluster.iter().all(|(w, c)| expected[w] == *c));
    println!(
        "cluster: {} distinct words, most frequent {:?}",
        on_cluster.len(),
        on_cluster[0]
    );
    drop(client);
    drop(cluster);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
