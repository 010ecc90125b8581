//! Writing partitions: a file per partition (Parquet or CSV), optionally split into hive
//! directories (`partition_on`). Files are written under a temporary directory and moved into
//! place only when every partition succeeded, so a failure leaves nothing partial behind.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::FrameError;
use crate::storage::{self, Location, StorageOptions};

/// Parquet compression codecs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    /// No compression.
    Uncompressed,
    /// Snappy (Dask's default).
    #[default]
    Snappy,
    /// Zstandard.
    Zstd,
    /// LZ4.
    Lz4,
    /// Gzip.
    Gzip,
}

/// What a write task writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FileFormat {
    Parquet(Compression),
    Csv { separator: u8, header: bool },
}

/// One partition's write.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WriteTask {
    pub format: FileFormat,
    pub storage: StorageOptions,
    /// The temporary directory (local path or `s3://bucket/prefix`).
    pub dir: String,
    /// The file name within `dir` (or within its hive subdirectory).
    pub name: String,
    pub partition_on: Vec<String>,
}

pub(crate) fn join(dir: &str, rel: &str) -> String {
    format!("{}/{}", dir.trim_end_matches('/'), rel)
}

fn encode(format: &FileFormat, df: &mut DataFrame) -> PolarsResult<Vec<u8>> {
    let mut buf = Vec::new();
    match format {
        FileFormat::Parquet(c) => {
            let c = match c {
                Compression::Uncompressed => ParquetCompression::Uncompressed,
                Compression::Snappy => ParquetCompression::Snappy,
                Compression::Zstd => ParquetCompression::Zstd(None),
                Compression::Lz4 => ParquetCompression::Lz4Raw,
                Compression::Gzip => ParquetCompression::Gzip(None),
            };
            ParquetWriter::new(&mut buf)
                .with_compression(c)
                .finish(df)?;
        }
        FileFormat::Csv { separator, header } => {
            CsvWriter::new(&mut buf)
                .include_header(*header)
                .with_separator(*separator)
                .finish(df)?;
        }
    }
    Ok(buf)
}

fn hive_value(v: &AnyValue<'_>) -> String {
    let text = match v {
        AnyValue::String(s) => (*s).to_owned(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Null => return "__HIVE_DEFAULT_PARTITION__".to_owned(),
        other => other.to_string(),
    };
    encode_hive(&text)
}

/// Escapes what cannot stand in a directory name (`/`, `=`, `%`), as Hive does.
pub(crate) fn encode_hive(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '/' | '=' | '%' | '\\' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`encode_hive`].
pub(crate) fn decode_hive(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && s.is_char_boundary(i + 3) {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// Writes one partition (split by `partition_on`); returns the rows written.
pub(crate) fn write_one(task: &WriteTask, df: &DataFrame) -> Result<u64, FrameError> {
    let opts = &task.storage;
    let mut files: Vec<(String, DataFrame)> = Vec::new();
    if task.partition_on.is_empty() {
        files.push((task.name.clone(), df.clone()));
    } else {
        let groups = df
            .partition_by_stable(task.partition_on.iter().map(|s| s.as_str()), true)
            .map_err(|e| FrameError::polars("partition_on", e))?;
        for g in groups {
            let mut dir = String::new();
            for k in &task.partition_on {
                let v = g
                    .column(k)
                    .and_then(|c| c.get(0))
                    .map_err(|e| FrameError::polars("partition_on", e))?;
                dir.push_str(&format!("{k}={}/", hive_value(&v)));
            }
            let g = g.drop_many(task.partition_on.iter().map(|s| s.as_str()));
            files.push((format!("{dir}{}", task.name), g));
        }
    }
    for (rel, mut part) in files {
        let bytes = encode(&task.format, &mut part)
            .map_err(|e| FrameError::polars(format!("writing {rel}"), e))?;
        let target = join(&task.dir, &rel);
        let loc = Location::parse(&target)?;
        if let Location::Local(p) = &loc {
            if let Some(parent) = std::path::Path::new(p).parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| FrameError::io(parent.display().to_string(), e))?;
            }
        }
        storage::write_all(&loc, opts, bytes)?;
    }
    Ok(df.height() as u64)
}

/// Moves every file under `tmp` to the same place under `dest`, then removes `tmp`.
pub(crate) fn publish(tmp: &str, dest: &str, opts: &StorageOptions) -> Result<(), FrameError> {
    let files = match storage::expand(&[tmp.to_owned()], &[], opts) {
        Ok(f) => f,
        // Nothing was written (every partition empty and split by `partition_on`).
        Err(FrameError::NoFiles(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    // Files of an earlier write of this directory (`part.N.ext`) would be read back with the
    // new ones: remove them first.
    if let Ok(old) = storage::expand(&[dest.to_owned()], &[], opts) {
        for f in old {
            let shown = f.display();
            let base = shown.rsplit('/').next().unwrap_or("");
            let ours = base
                .strip_prefix("part.")
                .and_then(|r| r.split_once('.'))
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if ours && !shown.contains("/.oxidask-tmp-") {
                storage::delete(&f, opts)?;
            }
        }
    }
    for f in files {
        let shown = f.display();
        let rel = shown
            .strip_prefix(tmp.trim_end_matches('/'))
            .unwrap_or(&shown)
            .trim_start_matches('/')
            .to_owned();
        let to = Location::parse(&join(dest, &rel))?;
        if let Location::Local(p) = &to {
            if let Some(parent) = std::path::Path::new(p).parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| FrameError::io(parent.display().to_string(), e))?;
            }
        }
        storage::rename(&f, &to, opts)?;
    }
    discard(tmp, opts);
    Ok(())
}

/// Removes a temporary directory and whatever was written into it.
pub(crate) fn discard(tmp: &str, opts: &StorageOptions) {
    match Location::parse(tmp) {
        Ok(Location::Local(p)) => {
            let _ = std::fs::remove_dir_all(p);
        }
        Ok(loc @ Location::S3 { .. }) => {
            if let Ok(files) = storage::expand(&[loc.display()], &[], opts) {
                for f in files {
                    let _ = storage::delete(&f, opts);
                }
            }
        }
        Err(_) => {}
    }
}
