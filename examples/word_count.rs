//! Word count over text lines: count each partition in parallel, then merge the counts with
//! a tree reduction (like a Dask bag's `frequencies`), checked against a plain loop.
//!
//! `cargo run --release -p oxidask-examples --example word_count`

use std::collections::HashMap;
use std::time::Instant;

use oxidask::prelude::*;

type Counts = HashMap<String, u64>;

#[oxidask::task]
fn count_words(lines: &[String]) -> Counts {
    let mut counts = Counts::new();
    for line in lines {
        for word in line
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            *counts.entry(word.to_lowercase()).or_insert(0) += 1;
        }
    }
    counts
}

#[oxidask::task]
fn merge(parts: Vec<Counts>) -> Counts {
    let mut parts = parts.into_iter();
    let mut out = parts.next().unwrap_or_default();
    for part in parts {
        for (w, c) in part {
            *out.entry(w).or_insert(0) += c;
        }
    }
    out
}

/// A deterministic corpus: Zipf-like word frequencies.
fn corpus(lines: usize) -> Vec<String> {
    let vocab: Vec<String> = (0..5000).map(|i| format!("w{i}")).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..lines)
        .map(|_| {
            (0..12)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                    vocab[((vocab.len() as f64).powf(u) as usize).saturating_sub(1)].as_str()
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn main() -> Result<(), oxidask::Error> {
    let lines = corpus(400_000);
    let t = Instant::now();
    let mut level: Vec<Delayed<Counts>> = lines
        .chunks(10_000)
        .map(|c| count_words(c.to_vec()))
        .collect();
    while level.len() > 1 {
        level = level.chunks(4).map(|c| merge(c.to_vec())).collect(); // split_every = 4
    }
    let counts = level[0].compute()?;
    println!(
        "parallel: {} distinct words in {:.2?}",
        counts.len(),
        t.elapsed()
    );

    let t = Instant::now();
    let expected = count_words::call(&lines);
    println!(
        "one loop: {} distinct words in {:.2?}",
        expected.len(),
        t.elapsed()
    );
    assert_eq!(counts, expected);

    let mut top: Vec<(&String, &u64)> = counts.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (w, c) in top.iter().take(5) {
        println!("{w:>6} {c}");
    }
    Ok(())
}
