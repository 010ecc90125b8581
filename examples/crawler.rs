//! Tasks that submit tasks: a crawler over a generated "site" (a folder of pages linking to
//! other pages). Each `crawl` task reads its page and, to crawl the links, builds and
//! computes a graph of its own from inside the task. The pool's threads help with nested
//! work instead of blocking, so this never deadlocks however few threads there are.
//!
//! `cargo run -p oxidask-examples --example crawler`

use std::path::Path;

use oxidask::prelude::*;
use oxidask_examples::{remove_dir, scratch_dir};

/// What a crawl found below a page.
#[derive(Clone, Debug, PartialEq, oxidask::Data)]
struct Found {
    pages: u64,
    words: u64,
}

/// A page: its words, then `link:` lines naming other pages.
fn write_site(root: &Path, name: &str, depth: u32, fanout: u32) -> std::io::Result<()> {
    let mut body = format!("page {name} says hello to every crawler out there\n");
    if depth > 0 {
        for i in 0..fanout {
            let child = format!("{name}-{i}");
            body.push_str(&format!("link:{child}\n"));
            write_site(root, &child, depth - 1, fanout)?;
        }
    }
    std::fs::write(root.join(format!("{name}.txt")), body)
}

#[oxidask::task]
fn crawl(root: String, page: String) -> Result<Found, oxidask::Error> {
    let text = std::fs::read_to_string(format!("{root}/{page}.txt")).unwrap_or_default();
    let words: u64 = text
        .lines()
        .filter(|l| !l.starts_with("link:"))
        .map(|l| l.split_whitespace().count() as u64)
        .sum();
    let links: Vec<Delayed<Found>> = text
        .lines()
        .filter_map(|l| l.strip_prefix("link:"))
        .map(|child| crawl(root.clone(), child.to_string()))
        .collect();
    // Nested: compute the children's graph now, in parallel, from inside this task.
    let below = oxidask::compute(&links)?;
    Ok(Found {
        pages: 1 + below.iter().map(|f| f.pages).sum::<u64>(),
        words: words + below.iter().map(|f| f.words).sum::<u64>(),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = scratch_dir("crawler")?;
    write_site(&dir, "home", 4, 3)?;
    let root = dir.to_string_lossy().into_owned();
    for threads in [1, 2, 4] {
        let pool = Threaded::new(threads);
        let found = crawl(root.clone(), String::from("home")).compute_with(&pool)?;
        println!(
            "{threads} thread(s): {} pages, {} words",
            found.pages, found.words
        );
        assert_eq!(found.pages, 1 + 3 + 9 + 27 + 81);
        assert_eq!(found.words, found.pages * 9);
    }
    remove_dir(&dir);
    Ok(())
}
