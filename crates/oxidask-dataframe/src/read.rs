//! Readers (`read_parquet`, `read_csv`, `read_json`) and writers (`to_parquet`, `to_csv`).

use std::collections::HashMap;
use std::sync::Arc;

use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Error, Task};
use polars::prelude::{DataType, Schema};

use crate::error::FrameError;
use crate::frame::DataFrame;
use crate::plan::{add_layer, Kind, Node};
use crate::scan::{self, CsvSpec, Format, Piece, Source};
use crate::storage::StorageOptions;
use crate::write::{self, Compression, FileFormat, WriteTask};

/// Paths to read: one path, glob, directory or `s3://` URL, or a list of them.
pub trait IntoPaths {
    /// The paths.
    fn into_paths(self) -> Vec<String>;
}

impl IntoPaths for &str {
    fn into_paths(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}

impl IntoPaths for String {
    fn into_paths(self) -> Vec<String> {
        vec![self]
    }
}

impl IntoPaths for &std::path::Path {
    fn into_paths(self) -> Vec<String> {
        vec![self.to_string_lossy().into_owned()]
    }
}

impl IntoPaths for &std::path::PathBuf {
    fn into_paths(self) -> Vec<String> {
        vec![self.to_string_lossy().into_owned()]
    }
}

impl<S: AsRef<str>> IntoPaths for Vec<S> {
    fn into_paths(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}

impl<S: AsRef<str>, const N: usize> IntoPaths for [S; N] {
    fn into_paths(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}

fn source_token(
    kind: &str,
    pieces: &[Piece],
    storage: &StorageOptions,
    extra: &str,
) -> oxidask_core::Token {
    let mut t = Tokenizer::new();
    t.write_str(kind);
    t.write_str(extra);
    for p in pieces {
        t.write_str(&p.location.display());
        if let crate::storage::Location::Local(path) = &p.location {
            let modified = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as u64);
            t.write_u64(modified);
        }
        for (a, b) in p.range.iter().chain(&p.rows) {
            t.write_u64(*a);
            t.write_u64(*b);
        }
    }
    t.write_str(&storage.describe());
    t.finish()
}

fn scan_node(name: &'static str, source: Source, schema: Arc<Schema>, extra: &str) -> Arc<Node> {
    let token = source_token(name, &source.pieces, &source.storage, extra);
    let n = source.pieces.len();
    Node::new(
        name,
        token,
        schema,
        n,
        Kind::Scan {
            source: Arc::new(source),
            ops: Vec::new(),
        },
    )
}

/// The `blocksize` a Parquet read aims at by default: 256 MiB of uncompressed data, the
/// default of Dask's pyarrow engine (Dask has no configuration key for it).
pub const DEFAULT_PARQUET_BLOCKSIZE: u64 = 256 << 20;

/// How a Parquet read cuts files into partitions (Dask's `split_row_groups` and `blocksize`).
/// A partition is always a run of consecutive row groups of one file; sizes are the row
/// groups' uncompressed `total_byte_size` from the footers. `s3://` files stay whole (a
/// partition of a remote file would download the whole file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowGroupSplit {
    /// Dask's default (`split_row_groups="infer"`): when the first file's row groups hold
    /// more than twice `blocksize` bytes, [`RowGroupSplit::Blocksize`]; otherwise
    /// [`RowGroupSplit::PerFile`]. A `blocksize` of 0 means a partition per file.
    Infer {
        /// The bytes a partition aims at (Dask's `blocksize`).
        blocksize: u64,
    },
    /// Dask's `split_row_groups="adaptive"` (or `True` with a blocksize): in every file,
    /// consecutive row groups are gathered while their total stays at most this many bytes
    /// (a larger row group is a partition alone).
    Blocksize(u64),
    /// A partition per file (`split_row_groups=False`, or `blocksize=None`).
    PerFile,
    /// A partition per this many row groups of a file (`split_row_groups=n`; 0 is
    /// [`RowGroupSplit::PerFile`], as Dask's `0`).
    Every(usize),
}

impl Default for RowGroupSplit {
    fn default() -> Self {
        RowGroupSplit::Infer {
            blocksize: DEFAULT_PARQUET_BLOCKSIZE,
        }
    }
}

/// Options of [`read_parquet_with`].
#[derive(Clone, Debug, Default)]
pub struct ParquetOptions {
    /// Only these columns (projection pushed into the reader).
    pub columns: Option<Vec<String>>,
    /// Only rows where this holds (pushed into the reader: row groups whose statistics rule
    /// it out are skipped).
    pub filter: Option<polars::prelude::Expr>,
    /// Where `s3://` paths live.
    pub storage: StorageOptions,
    /// How files become partitions (default: Dask's `"infer"` with a 256 MiB blocksize).
    pub split_row_groups: RowGroupSplit,
}

impl ParquetOptions {
    /// Sets how files become partitions.
    pub fn split_row_groups(mut self, split: RowGroupSplit) -> Self {
        self.split_row_groups = split;
        self
    }
}

/// Reads Parquet: a file, a glob, a directory (hive-partitioned directories such as
/// `year=2019/` become columns), an `s3://` URL, or a list of them. Partitions as Dask's
/// default: a partition per file, or, when the first file holds more than twice 256 MiB
/// (uncompressed), runs of row groups of about 256 MiB (see [`RowGroupSplit`]).
pub fn read_parquet(paths: impl IntoPaths) -> DataFrame {
    read_parquet_with(paths, ParquetOptions::default())
}

/// [`read_parquet`] with a column projection, a row filter and storage options.
pub fn read_parquet_with(paths: impl IntoPaths, options: ParquetOptions) -> DataFrame {
    let paths = paths.into_paths();
    let go = || -> Result<DataFrame, FrameError> {
        let pieces = scan::pieces_of(&paths, &["parquet", "parq", "pq"], &options.storage)?;
        let schema = scan::piece_schema(&Format::Parquet, &options.storage, &pieces[0])?;
        let pieces = scan::split_row_groups(pieces, options.split_row_groups, &options.storage)?;
        let source = Source {
            format: Format::Parquet,
            storage: options.storage.clone(),
            pieces,
        };
        let mut df = DataFrame::from_node(scan_node("read-parquet", source, schema, ""));
        if let Some(f) = options.filter.clone() {
            df = df.filter(f);
        }
        if let Some(c) = &options.columns {
            df = df.columns_subset(c.iter());
        }
        Ok(df)
    };
    // Listing and reading schemas happen here, on the caller's thread.
    crate::blocking::outside_async_runtime(go).unwrap_or_else(|e| DataFrame::from_result(Err(e)))
}

/// Options of [`read_csv_with`].
#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// Bytes per partition for splittable (uncompressed) files; default `dataframe.blocksize`
    /// (64 MiB, Dask's).
    pub blocksize: Option<u64>,
    /// Types for columns, overriding inference (`{"store_and_fwd_flag": String}`).
    pub dtypes: HashMap<String, DataType>,
    /// Field separator.
    pub separator: u8,
    /// Whether the first line holds column names.
    pub has_header: bool,
    /// Rows read to infer the schema.
    pub infer_rows: usize,
    /// Where `s3://` paths live.
    pub storage: StorageOptions,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            blocksize: crate::configured_blocksize(),
            dtypes: HashMap::new(),
            separator: b',',
            has_header: true,
            infer_rows: 1000,
            storage: StorageOptions::default(),
        }
    }
}

impl CsvOptions {
    /// Sets a column's type.
    pub fn dtype(mut self, column: &str, dtype: DataType) -> Self {
        self.dtypes.insert(column.to_owned(), dtype);
        self
    }

    /// Sets the partition size in bytes (`None`: a partition per file).
    pub fn blocksize(mut self, bytes: Option<u64>) -> Self {
        self.blocksize = bytes;
        self
    }
}

/// Reads CSV files (globs, directories, `s3://`, lists; `.gz`/`.zst` compressed files are
/// decompressed, a partition per compressed file), split into partitions of `blocksize`.
pub fn read_csv(paths: impl IntoPaths) -> DataFrame {
    read_csv_with(paths, CsvOptions::default())
}

fn override_types(
    mut schema: Schema,
    dtypes: &HashMap<String, DataType>,
    first: &str,
) -> Result<Schema, FrameError> {
    for (c, d) in dtypes {
        match schema.get_mut(c.as_str()) {
            Some(slot) => *slot = d.clone(),
            None => {
                return Err(FrameError::Io {
                    path: first.to_owned(),
                    detail: format!(
                    "a type was given for column `{c}`, which the file does not have (it has: {})",
                    schema
                        .iter_names()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                })
            }
        }
    }
    Ok(schema)
}

/// [`read_csv`] with options.
pub fn read_csv_with(paths: impl IntoPaths, options: CsvOptions) -> DataFrame {
    let paths = paths.into_paths();
    let go = || -> Result<DataFrame, FrameError> {
        let pieces = scan::pieces_of(
            &paths,
            &["csv", "gz", "zst", "tsv", "txt"],
            &options.storage,
        )?;
        let first = pieces[0].location.display();
        let inferred = scan::infer_csv_schema(
            &pieces[0],
            &options.storage,
            options.separator,
            options.has_header,
            options.infer_rows,
        )?;
        let schema = Arc::new(override_types(inferred, &options.dtypes, &first)?);
        // Records with quoted line breaks cannot be split at line ends: read files whole.
        let blocksize =
            if scan::quoted_newlines(&scan::sample_of(&pieces[0], &options.storage)?, b'"') {
                None
            } else {
                options.blocksize
            };
        let pieces = scan::split_ranges(pieces, &options.storage, blocksize)?;
        let spec = CsvSpec {
            schema: schema.clone(),
            separator: options.separator,
            has_header: options.has_header,
            inferred_from: options.infer_rows,
        };
        // Hive columns come after the file's.
        let full = scan::piece_schema(
            &Format::Csv(spec.clone()),
            &options.storage,
            &Piece {
                range: Some((0, 0)),
                ..pieces[0].clone()
            },
        )?;
        let source = Source {
            format: Format::Csv(spec),
            storage: options.storage.clone(),
            pieces,
        };
        let extra = format!(
            "{:?}{}",
            options
                .dtypes
                .iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
            options.separator
        );
        Ok(DataFrame::from_node(scan_node(
            "read-csv", source, full, &extra,
        )))
    };
    // Listing and reading schemas happen here, on the caller's thread.
    crate::blocking::outside_async_runtime(go).unwrap_or_else(|e| DataFrame::from_result(Err(e)))
}

/// Reads JSON lines files (one object per line), split into partitions of `blocksize` bytes
/// (64 MiB); the schema is inferred from the first rows of the first file.
pub fn read_json(paths: impl IntoPaths) -> DataFrame {
    read_json_with(
        paths,
        crate::configured_blocksize(),
        StorageOptions::default(),
    )
}

/// [`read_json`] with a block size (`None`: a partition per file) and storage options.
pub fn read_json_with(
    paths: impl IntoPaths,
    blocksize: Option<u64>,
    storage: StorageOptions,
) -> DataFrame {
    let paths = paths.into_paths();
    let go = || -> Result<DataFrame, FrameError> {
        let pieces = scan::pieces_of(&paths, &["json", "jsonl", "ndjson"], &storage)?;
        let schema = Arc::new(scan::infer_json_schema(&pieces[0], &storage, 1000)?);
        let pieces = scan::split_ranges(pieces, &storage, blocksize)?;
        let full = scan::piece_schema(
            &Format::Json {
                schema: schema.clone(),
            },
            &storage,
            &Piece {
                range: Some((0, 0)),
                ..pieces[0].clone()
            },
        )?;
        let source = Source {
            format: Format::Json { schema },
            storage,
            pieces,
        };
        Ok(DataFrame::from_node(scan_node(
            "read-json",
            source,
            full,
            "",
        )))
    };
    // Listing and reading schemas happen here, on the caller's thread.
    crate::blocking::outside_async_runtime(go).unwrap_or_else(|e| DataFrame::from_result(Err(e)))
}

/// Options of [`DataFrame::to_parquet_with`].
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Parquet compression (Snappy by default).
    pub compression: Compression,
    /// Columns whose values become directories (`year=2019/`), dropped from the files.
    pub partition_on: Vec<String>,
    /// Where `s3://` paths live.
    pub storage: StorageOptions,
}

impl DataFrame {
    /// Writes a directory of Parquet files, `part.{i}.parquet` per partition.
    pub fn to_parquet(&self, dir: impl AsRef<str>) -> Result<u64, Error> {
        self.to_parquet_with(dir, WriteOptions::default())
    }

    /// [`DataFrame::to_parquet`] with compression, `partition_on` and storage options.
    /// Returns the rows written. Files appear only when every partition was written.
    pub fn to_parquet_with(
        &self,
        dir: impl AsRef<str>,
        options: WriteOptions,
    ) -> Result<u64, Error> {
        self.write_files(
            dir.as_ref(),
            FileFormat::Parquet(options.compression),
            "parquet",
            &options,
        )
    }

    /// Writes a directory of CSV files, `part.{i}.csv` per partition, with headers.
    pub fn to_csv(&self, dir: impl AsRef<str>) -> Result<u64, Error> {
        self.to_csv_with(dir, StorageOptions::default())
    }

    /// [`DataFrame::to_csv`] with storage options.
    pub fn to_csv_with(&self, dir: impl AsRef<str>, storage: StorageOptions) -> Result<u64, Error> {
        let options = WriteOptions {
            storage,
            ..Default::default()
        };
        self.write_files(
            dir.as_ref(),
            FileFormat::Csv {
                separator: b',',
                header: true,
            },
            "csv",
            &options,
        )
    }

    fn write_files(
        &self,
        dir: &str,
        format: FileFormat,
        ext: &str,
        options: &WriteOptions,
    ) -> Result<u64, Error> {
        let node = self.node()?;
        for c in &options.partition_on {
            if c.starts_with(['_', '.']) || c.contains(['/', '=']) {
                return Err(FrameError::Invalid(format!(
                    "partition_on column `{c}` cannot name a directory: readers skip names starting with `_` or `.`, and `/` or `=` would split it; rename it first"
                ))
                .into());
            }
            if node.schema.get(c.as_str()).is_none() {
                return Err(FrameError::UnknownColumn {
                    column: c.clone(),
                    available: self.columns(),
                }
                .into());
            }
        }
        let mut t = Tokenizer::new();
        t.write_str("to-files");
        t.write_token(node.token);
        t.write_str(dir);
        t.write_u64(std::process::id() as u64);
        t.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        );
        let token = t.finish();
        let tmp = write::join(dir, &format!(".oxidask-tmp-{}", crate::frame::short(token)));
        let layer = node.layer();
        let mut graph = oxidask_core::Graph::new();
        add_layer(&mut graph, &layer);
        let mut keys = Vec::new();
        for (i, k) in layer.outputs.iter().enumerate() {
            let spec = WriteTask {
                format: format.clone(),
                storage: options.storage.clone(),
                dir: tmp.clone(),
                name: format!("part.{i}.{ext}"),
                partition_on: options.partition_on.clone(),
            };
            let key = oxidask_core::Key::block("to-files", token, &[i as u32]);
            graph.insert(
                key,
                Task::call(
                    crate::ops::write_part::op(),
                    [
                        Arg::Value(crate::credentials::plan_value(
                            spec,
                            &options.storage.credentials,
                        )),
                        Arg::Key(*k),
                    ],
                ),
            );
            keys.push(key);
        }
        let scheduler = oxidask_core::compute::current_scheduler()?;
        match scheduler.compute(graph, &keys) {
            Ok(values) => {
                let mut rows = 0u64;
                for v in values {
                    rows += v
                        .take::<u64>()
                        .map_err(|e| Error::Collection(e.to_string().into()))?;
                }
                if rows == 0 && layer.outputs.is_empty() {
                    write::discard(&tmp, &options.storage);
                    return Ok(0);
                }
                write::publish(&tmp, dir, &options.storage)?;
                Ok(rows)
            }
            Err(e) => {
                write::discard(&tmp, &options.storage);
                Err(e)
            }
        }
    }
}
