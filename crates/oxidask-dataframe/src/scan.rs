//! Reading files into partitions: Parquet (a partition per file or per run of row groups), CSV and JSON lines (split
//! into byte ranges of `blocksize` at line ends), local or on S3. Each partition's read is one
//! Polars lazy query with the frame's operations fused on, so Polars pushes projections and
//! predicates into the reader.

use std::sync::Arc;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::FrameError;
use crate::plan::{apply_ops, FrameOp};
use crate::read::RowGroupSplit;
use crate::storage::{self, Location, StorageOptions};

/// The file format and how to parse it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Format {
    Parquet,
    Csv(CsvSpec),
    Json { schema: SchemaRef },
}

/// How CSV pieces are parsed: the schema every piece is read with (inferred from the first
/// block, with the user's overrides) and the dialect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CsvSpec {
    pub schema: SchemaRef,
    pub separator: u8,
    pub has_header: bool,
    /// Rows the schema was inferred from, for the hint when a later piece disagrees.
    pub inferred_from: usize,
}

/// One partition's share of a file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Piece {
    pub location: Location,
    /// Bytes `start..end` (lines that start in it), or the whole file.
    pub range: Option<(u64, u64)>,
    /// Rows `offset, len` of a Parquet file (a group of row groups), or all.
    pub rows: Option<(u64, u64)>,
    /// Columns from the path (`year=2019/`), added as literals.
    pub hive: Vec<(String, HiveValue)>,
    /// Ruled out by the filter (`prune.rs`): read as an empty frame of this schema (the
    /// file's columns), without opening the file.
    #[serde(default)]
    pub pruned: Option<SchemaRef>,
}

/// A hive partition value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HiveValue {
    Int(i64),
    Str(String),
}

/// Everything a read needs.
pub(crate) struct Source {
    pub format: Format,
    pub storage: StorageOptions,
    pub pieces: Vec<Piece>,
}

/// One read task: a piece, how to parse it, and the operations fused onto it (internal;
/// public only because registered operations name it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScanTask {
    pub(crate) format: Format,
    pub(crate) storage: StorageOptions,
    pub(crate) piece: Piece,
    pub(crate) ops: Vec<FrameOp>,
}

fn hive_exprs(hive: &[(String, HiveValue)]) -> Vec<Expr> {
    hive.iter()
        .map(|(k, v)| match v {
            HiveValue::Int(i) => lit(*i).cast(DataType::Int64).alias(k.as_str()),
            HiveValue::Str(s) => lit(s.clone()).alias(k.as_str()),
        })
        .collect()
}

fn buffer_source(bytes: Vec<u8>) -> ScanSources {
    ScanSources::Buffers(Arc::from([polars_buffer::Buffer::from(bytes)]))
}

/// Lines that start in `start..end`: skip a partial first line, read past `end` to the end of
/// the last line.
fn read_lines(
    loc: &Location,
    opts: &StorageOptions,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, FrameError> {
    const MORE: u64 = 1 << 16;
    let from = start.saturating_sub(1);
    let mut buf = storage::read_range(loc, opts, from, end)?;
    // Complete the last line.
    let mut at = end;
    if buf.last() != Some(&b'\n') {
        loop {
            let more = storage::read_range(loc, opts, at, at + MORE)?;
            if more.is_empty() {
                break;
            }
            at += more.len() as u64;
            if let Some(nl) = more.iter().position(|&b| b == b'\n') {
                buf.extend_from_slice(&more[..=nl]);
                break;
            }
            buf.extend_from_slice(&more);
        }
    }
    if start == 0 {
        return Ok(buf);
    }
    // A line belongs to the piece its first byte is in: drop everything up to the first
    // newline at or after `start - 1`.
    match buf.iter().position(|&b| b == b'\n') {
        Some(nl) => Ok(buf.split_off(nl + 1)),
        None => Ok(Vec::new()),
    }
}

/// The bytes `begin..stop` of `data` holding the lines that start in `start..end` (the same
/// lines [`read_lines`] returns).
fn line_span(data: &[u8], start: usize, end: usize) -> (usize, usize) {
    let next_newline = |from: usize| {
        data.get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(data.len(), |i| from + i + 1)
    };
    let begin = if start == 0 {
        0
    } else {
        next_newline(start - 1)
    };
    let stop = next_newline(end.min(data.len()).saturating_sub(1));
    (begin, stop.max(begin))
}

/// A piece's lines as a Polars buffer: local files are memory-mapped and sliced (no copy, no
/// fresh pages), remote ones fetched.
fn piece_lines(
    loc: &Location,
    opts: &StorageOptions,
    range: Option<(u64, u64)>,
) -> Result<polars_buffer::Buffer<u8>, FrameError> {
    if let Location::Local(path) = loc {
        let f = std::fs::File::open(path).map_err(|e| FrameError::io(path, e))?;
        if f.metadata().map_err(|e| FrameError::io(path, e))?.len() == 0 {
            return Ok(polars_buffer::Buffer::from_vec(Vec::new()));
        }
        // SAFETY: the map is read-only; as with Polars' own readers, a file truncated while
        // it is read is the caller's to avoid.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| FrameError::io(path, e))?;
        let (begin, stop) = match range {
            Some((s, e)) => line_span(&map, s as usize, e as usize),
            None => (0, map.len()),
        };
        return Ok(polars_buffer::Buffer::from_owner(map).sliced(begin..stop));
    }
    let bytes = match range {
        Some((s, e)) => read_lines(loc, opts, s, e)?,
        None => storage::read_all(loc, opts)?,
    };
    Ok(polars_buffer::Buffer::from_vec(bytes))
}

fn is_compressed(loc: &Location) -> bool {
    matches!(
        loc.extension().as_str(),
        "gz" | "gzip" | "zst" | "zstd" | "zlib" | "bz2" | "xz"
    )
}

/// The lazy frame of a piece, before the fused operations.
fn piece_frame(
    format: &Format,
    storage: &StorageOptions,
    piece: &Piece,
) -> Result<LazyFrame, FrameError> {
    let shown = piece.location.display();
    let lf = match (format, &piece.pruned) {
        (Format::Parquet, Some(schema)) => DataFrame::empty_with_schema(schema).lazy(),
        _ => match format {
            Format::Parquet => match &piece.location {
                // Hive columns are ours (from the listing), not Polars' per file.
                Location::Local(p) => LazyFrame::scan_parquet(
                    PlRefPath::new(p.as_str()),
                    ScanArgsParquet {
                        glob: false,
                        hive_options: HiveOptions::new_disabled(),
                        ..Default::default()
                    },
                ),
                loc => LazyFrame::scan_parquet_sources(
                    buffer_source(storage::read_all(loc, storage)?),
                    ScanArgsParquet {
                        hive_options: HiveOptions::new_disabled(),
                        ..Default::default()
                    },
                ),
            }
            .map_err(|e| FrameError::io(&shown, e))?,
            Format::Csv(spec) => {
                let header = spec.has_header && piece.range.is_none_or(|(s, _)| s == 0);
                let bytes = piece_lines(&piece.location, storage, piece.range)?;
                if bytes.is_empty() {
                    // A piece no line starts in.
                    DataFrame::empty_with_schema(&spec.schema).lazy()
                } else {
                    LazyCsvReader::new_with_sources(ScanSources::Buffers(Arc::from([bytes])))
                        .with_has_header(header)
                        .with_schema(Some(spec.schema.clone()))
                        .with_separator(spec.separator)
                        .finish()
                        .map_err(|e| FrameError::io(&shown, e))?
                }
            }
            Format::Json { schema } => {
                let bytes = piece_lines(&piece.location, storage, piece.range)?;
                if bytes.is_empty() {
                    DataFrame::empty_with_schema(schema).lazy()
                } else {
                    LazyJsonLineReader::new_with_sources(ScanSources::Buffers(Arc::from([bytes])))
                        .with_schema(Some(schema.clone()))
                        .finish()
                        .map_err(|e| FrameError::io(&shown, e))?
                }
            }
        },
    };
    let lf = match piece.rows {
        // Polars reads only the row groups the slice touches.
        Some((offset, len)) => lf.slice(offset as i64, len.min(IdxSize::MAX as u64) as IdxSize),
        None => lf,
    };
    Ok(if piece.hive.is_empty() {
        lf
    } else {
        lf.with_columns(hive_exprs(&piece.hive))
    })
}

/// Whether a read task's piece is parsed before its query runs (see [`read_csv_piece`]).
fn parsed_first(task: &ScanTask) -> bool {
    matches!(task.format, Format::Csv(_)) && !is_compressed(&task.piece.location)
}

/// A read task as a lazy frame: the piece, then the fused operations (a join task reads its
/// streamed side this way, inside its own query). An uncompressed CSV piece is parsed here
/// (the columns the operations read), the rest of the query runs later.
pub(crate) fn lazy(task: &ScanTask) -> Result<LazyFrame, FrameError> {
    lazy_with(task, &task.ops)
}

/// [`lazy`] with `ops` (the task's, or the first of them) applied after the read; a CSV piece
/// is still parsed for the columns all the task's operations read.
fn lazy_with(task: &ScanTask, ops: &[FrameOp]) -> Result<LazyFrame, FrameError> {
    let lf = match &task.format {
        Format::Csv(spec) if parsed_first(task) => {
            let lf = read_csv_piece(spec, &task.storage, &task.piece, &task.ops)
                .map_err(|e| read_error(task, e))?
                .lazy();
            if task.piece.hive.is_empty() {
                lf
            } else {
                lf.with_columns(hive_exprs(&task.piece.hive))
            }
        }
        _ => piece_frame(&task.format, &task.storage, &task.piece)?,
    };
    Ok(apply_ops(lf, ops))
}

/// A failed read of `task`, naming the piece (and, for CSV, where the schema came from).
pub(crate) fn read_error(task: &ScanTask, e: impl std::fmt::Display) -> FrameError {
    let place = match task.piece.range {
        Some((s, e)) => format!("{} (bytes {s}..{e})", task.piece.location.display()),
        None => task.piece.location.display(),
    };
    let hint = match &task.format {
        Format::Csv(spec) => format!(
            "; the schema was inferred from the first {} rows of the first file — give the column's type with `.dtype(column, DataType)`",
            spec.inferred_from
        ),
        _ => String::new(),
    };
    FrameError::io(place, format!("{e}{hint}"))
}

/// Runs a read task: the piece, then the fused operations, in one Polars query (an
/// uncompressed CSV piece: parsed first, see [`read_csv_piece`]).
pub(crate) fn run(task: &ScanTask) -> Result<DataFrame, FrameError> {
    // A final sort runs on the collected rows, skipped when they are in order already.
    let (ops, sort) = crate::plan::final_sort(&task.ops);
    // A group-by of one numeric key last: the kernel over the rows as they stream past.
    if let Some((FrameOp::GroupAgg { keys, aggs }, before)) = ops.split_last() {
        let lf = lazy_with(task, before)?;
        let schema =
            crate::blocking::collect_schema(lf.clone()).map_err(|e| read_error(task, e))?;
        if let Some(g) = crate::onekey::OneKeyGroupBy::recognise(keys, aggs, &schema) {
            return g
                .run(lf)
                .and_then(|df| crate::plan::sort_collected(df, sort))
                .map_err(|e| read_error(task, e));
        }
    }
    let lf = lazy_with(task, ops)?;
    let out = if parsed_first(task) {
        // The rows are in memory: the in-memory engine.
        lf.collect()
    } else {
        crate::plan::run_query(lf)
    };
    out.and_then(|df| crate::plan::sort_collected(df, sort))
        .map_err(|e| read_error(task, e))
}

/// Parses the columns of a CSV piece that `ops` read. A piece without quote characters is cut
/// into line-aligned chunks at newlines found with `memchr` (runtime-detected SIMD) and the
/// chunks are parsed in parallel on Polars' thread pool ([`parse_chunks`]). Other pieces go to
/// Polars' in-memory CSV reader, which first walks the whole piece serially to cut its chunks,
/// counting quote-aware line ends byte by byte (without Polars' nightly `simd` feature): that
/// walk was 42% of the CPU time of a `read_csv(..).column(c).value_counts()`. (The streaming
/// engine's CSV source counts lines the same way.)
fn read_csv_piece(
    spec: &CsvSpec,
    storage: &StorageOptions,
    piece: &Piece,
    ops: &[FrameOp],
) -> PolarsResult<DataFrame> {
    let bytes = piece_lines(&piece.location, storage, piece.range)
        .map_err(|e| polars_err!(ComputeError: "{e}"))?;
    if bytes.is_empty() {
        // A piece no line starts in.
        return Ok(DataFrame::empty_with_schema(&spec.schema));
    }
    let at_file_start = piece.range.is_none_or(|(s, _)| s == 0);
    let header = spec.has_header && at_file_start;
    let columns = crate::optimize::columns_read(ops, &spec.schema).map(|mut c| {
        if c.is_empty() {
            // Only the row count matters (`len()`): parse one column.
            c.extend(spec.schema.iter_names().next().map(|n| n.to_string()));
        }
        c.into_iter().map(PlSmallStr::from).collect::<Arc<[_]>>()
    });
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    if !(at_file_start && bytes.starts_with(BOM)) {
        // Past the header line (the schema is known already).
        let body_at = if header {
            memchr::memchr(b'\n', &bytes).map_or(bytes.len(), |nl| nl + 1)
        } else {
            0
        };
        if memchr::memchr(b'"', &bytes[..body_at]).is_none() {
            if let Some(df) = parse_chunks(spec, columns.as_deref(), &bytes[body_at..])? {
                return Ok(df);
            }
        }
    }
    CsvReadOptions::default()
        .with_has_header(header)
        .with_schema(Some(spec.schema.clone()))
        .with_columns(columns)
        .map_parse_options(|o| o.with_separator(spec.separator))
        .into_reader_with_file_handle(std::io::Cursor::new(&bytes[..]))
        .finish()
}

/// The bytes of a chunk [`parse_chunks`] aims at: as Polars' reader, about 16 chunks per thread,
/// between 64 KiB and 16 MiB (small enough that all threads start at once, large enough that
/// the per-chunk column buffers do not matter).
fn chunk_bytes(len: usize, threads: usize) -> usize {
    (len / (threads.max(1) * 16)).clamp(64 << 10, 16 << 20)
}

/// Ends (exclusive) of line-aligned chunks of about `target` bytes covering `body`: each chunk
/// ends just after a newline, or at the end of `body`.
fn chunk_ends(body: &[u8], target: usize) -> Vec<usize> {
    let mut ends = Vec::with_capacity(body.len() / target.max(1) + 1);
    let mut at = 0;
    while at < body.len() {
        let want = (at + target.max(1)).min(body.len());
        let end = match memchr::memchr(b'\n', &body[want - 1..]) {
            Some(i) => want + i,
            None => body.len(),
        };
        ends.push(end);
        at = end;
    }
    ends
}

/// Parses `body` (whole lines, no header) in line-aligned chunks, in parallel on Polars' thread
/// pool, with the field parser of Polars' in-memory reader: the same rows as `CsvReader` over
/// `body`, without its serial line count. Each chunk is first checked for quote characters
/// (in parallel too): a quoted field may hold a newline, so with any quote in `body` the cuts
/// may be wrong and the answer is `None` (parse it with `CsvReader`).
fn parse_chunks(
    spec: &CsvSpec,
    columns: Option<&[PlSmallStr]>,
    body: &[u8],
) -> PolarsResult<Option<DataFrame>> {
    use std::sync::atomic::{AtomicBool, Ordering};

    // Polars' per-chunk CSV parser is an internal API (the one `CsvReader` runs per chunk): it
    // is usable here only because the workspace pins Polars (`=0.55.2`); an upgrade must check
    // these three functions again (the tests in `tests/dataframe/io.rs` compare with Polars).
    use polars::io::csv::read::_csv_read_internal::{cast_columns, prepare_csv_schema, read_chunk};
    use rayon::prelude::*;

    // Types the parser reads as text and casts afterwards (`Time`), as `CsvReader` does.
    let mut schema = spec.schema.clone();
    let mut to_cast = Vec::new();
    prepare_csv_schema(&mut schema, &mut to_cast)?;
    let mut projection = match columns {
        Some(cols) => cols
            .iter()
            .map(|c| schema.try_index_of(c))
            .collect::<PolarsResult<Vec<_>>>()?,
        None => (0..schema.len()).collect(),
    };
    // The parser wants the projection sorted: columns come out in file order, as from `CsvReader`.
    projection.sort_unstable();
    projection.dedup();
    if body.is_empty() || projection.is_empty() {
        let mut df = DataFrame::empty_with_schema(&spec.schema);
        if let Some(cols) = columns {
            df = df.select(cols.iter().cloned())?;
        }
        return Ok(Some(df));
    }
    let options = CsvParseOptions::default().with_separator(spec.separator);
    let pool = &polars_core::runtime::RAYON;
    let ends = chunk_ends(body, chunk_bytes(body.len(), pool.current_num_threads()));
    // Rows per chunk for the column buffers' capacity, from the line length of the first 64 KiB.
    let sample = &body[..body.len().min(64 << 10)];
    let line_len = sample.len() / memchr::memchr_iter(b'\n', sample).count().max(1);
    let starts = std::iter::once(0).chain(ends.iter().copied());
    let chunks: Vec<(usize, usize)> = starts.zip(ends.iter().copied()).collect();
    let quoted = AtomicBool::new(false);
    let frames = pool.install(|| {
        chunks
            .par_iter()
            .map(|&(start, end)| {
                let chunk = &body[start..end];
                if quoted.load(Ordering::Relaxed) || memchr::memchr(b'"', chunk).is_some() {
                    quoted.store(true, Ordering::Relaxed);
                    return Ok(None);
                }
                let rows = chunk.len() / line_len.max(1);
                let mut df = read_chunk(
                    chunk,
                    &options,
                    &schema,
                    false,
                    &projection,
                    0,
                    rows + rows / 8 + 16,
                    None,
                    usize::MAX,
                    chunk.len(),
                    Some(start),
                )?;
                cast_columns(&mut df, &to_cast, false, false)?;
                Ok(Some(df))
            })
            .collect::<Vec<PolarsResult<Option<DataFrame>>>>()
    });
    if quoted.load(Ordering::Relaxed) {
        // Before any error: a chunk cut inside a long quoted field may fail to parse.
        return Ok(None);
    }
    let frames = frames
        .into_iter()
        .filter_map(Result::transpose)
        .collect::<PolarsResult<Vec<_>>>()?;
    polars_core::utils::accumulate_dataframes_vertical(frames).map(Some)
}

/// Hive columns of a path under `root` (`root/year=2019/month=1/part.parquet`).
fn hive_parts(root: &str, path: &str) -> Vec<(String, String)> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut dirs: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    dirs.pop(); // the file name
    dirs.iter()
        .filter_map(|d| d.split_once('='))
        .map(|(k, v)| (k.to_owned(), crate::write::decode_hive(v)))
        .collect()
}

/// Finds the files of `paths`, with hive columns when a directory was given.
pub(crate) fn pieces_of(
    paths: &[String],
    extensions: &[&str],
    storage: &StorageOptions,
) -> Result<Vec<Piece>, FrameError> {
    if paths.is_empty() {
        return Err(FrameError::Invalid(
            "no paths given: pass a file, a glob, a directory or a list of them".into(),
        ));
    }
    let mut pieces = Vec::new();
    for p in paths {
        let locations = storage::expand(std::slice::from_ref(p), extensions, storage)?;
        let root = p.trim_end_matches('/');
        let raw: Vec<Vec<(String, String)>> = locations
            .iter()
            .map(|l| hive_parts(root, &l.display()))
            .collect();
        // A key is an integer column when every value parses as one.
        let mut keys: Vec<String> = Vec::new();
        for r in &raw {
            for (k, _) in r {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        let int_key = |k: &String| {
            raw.iter()
                .flat_map(|r| r.iter().filter(|(kk, _)| kk == k))
                .all(|(_, v)| v.parse::<i64>().is_ok())
        };
        let ints: Vec<bool> = keys.iter().map(int_key).collect();
        for (loc, r) in locations.into_iter().zip(raw) {
            if r.len() != keys.len() {
                return Err(FrameError::Invalid(format!(
                    "{}: hive partition directories differ in depth (expected keys {keys:?})",
                    loc.display()
                )));
            }
            let hive = keys
                .iter()
                .zip(&ints)
                .map(|(k, &int)| {
                    let v = &r.iter().find(|(kk, _)| kk == k).expect("checked").1;
                    let v = if int {
                        HiveValue::Int(v.parse().expect("checked"))
                    } else {
                        HiveValue::Str(v.clone())
                    };
                    (k.clone(), v)
                })
                .collect();
            pieces.push(Piece {
                location: loc,
                range: None,
                rows: None,
                hive,
                pruned: None,
            });
        }
    }
    Ok(pieces)
}

/// The schema of a piece (its file's columns plus hive columns).
pub(crate) fn piece_schema(
    format: &Format,
    storage: &StorageOptions,
    piece: &Piece,
) -> Result<SchemaRef, FrameError> {
    piece_frame(format, storage, piece)?
        .collect_schema()
        .map_err(|e| FrameError::io(piece.location.display(), e))
}

/// Splits each piece of a splittable text file into byte ranges of about `blocksize`.
pub(crate) fn split_ranges(
    pieces: Vec<Piece>,
    storage: &StorageOptions,
    blocksize: Option<u64>,
) -> Result<Vec<Piece>, FrameError> {
    let Some(block) = blocksize.filter(|b| *b > 0) else {
        return Ok(pieces);
    };
    let mut out = Vec::new();
    for p in pieces {
        if is_compressed(&p.location) {
            out.push(p);
            continue;
        }
        let size = storage::size(&p.location, storage)?;
        if size <= block {
            out.push(p);
            continue;
        }
        let mut start = 0;
        while start < size {
            let end = (start + block).min(size);
            out.push(Piece {
                range: Some((start, end)),
                ..p.clone()
            });
            start = end;
        }
    }
    Ok(out)
}

/// Infers a CSV schema from the start of the first file.
pub(crate) fn infer_csv_schema(
    piece: &Piece,
    storage: &StorageOptions,
    separator: u8,
    has_header: bool,
    rows: usize,
) -> Result<Schema, FrameError> {
    let shown = piece.location.display();
    let bytes = if is_compressed(&piece.location) {
        storage::read_all(&piece.location, storage)?
    } else {
        let size = storage::size(&piece.location, storage)?;
        read_lines(&piece.location, storage, 0, size.min(1 << 20))?
    };
    // Only the first rows (and the header) decide the types.
    let keep = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(rows + usize::from(has_header))
        .map_or(bytes.len(), |(i, _)| i + 1);
    let bytes = bytes[..keep].to_vec();
    let df = CsvReadOptions::default()
        .with_has_header(has_header)
        .with_infer_schema_length(Some(rows))
        .with_n_rows(Some(rows))
        .map_parse_options(|o| o.with_separator(separator))
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| FrameError::io(&shown, e))?;
    Ok(df.schema().as_ref().clone())
}

/// Infers a JSON-lines schema from the start of the first file.
pub(crate) fn infer_json_schema(
    piece: &Piece,
    storage: &StorageOptions,
    rows: usize,
) -> Result<Schema, FrameError> {
    let shown = piece.location.display();
    let size = storage::size(&piece.location, storage)?;
    let bytes = read_lines(&piece.location, storage, 0, size.min(1 << 20))?;
    let schema = LazyJsonLineReader::new_with_sources(buffer_source(bytes))
        .with_infer_schema_length(std::num::NonZeroUsize::new(rows))
        .with_n_rows(Some(rows))
        .finish()
        .and_then(|mut lf| lf.collect_schema())
        .map_err(|e| FrameError::io(&shown, e))?;
    Ok(schema.as_ref().clone())
}

/// Cuts local Parquet pieces into runs of consecutive row groups as `split` says (Dask's
/// `split_row_groups` and `blocksize`, see [`RowGroupSplit`]); `s3://` files stay whole.
/// A piece that would be a single run stays whole (no row slice).
pub(crate) fn split_row_groups(
    pieces: Vec<Piece>,
    split: RowGroupSplit,
    storage: &StorageOptions,
) -> Result<Vec<Piece>, FrameError> {
    let sizes = |p: &Piece| {
        crate::prune::row_group_sizes(&p.location, storage).ok_or_else(|| {
            FrameError::io(
                p.location.display(),
                "could not read the Parquet footer (row group sizes)",
            )
        })
    };
    let split = match split {
        // Dask decides from the first file's row groups alone.
        RowGroupSplit::Infer { blocksize } => match pieces.first() {
            Some(p) if blocksize > 0 && matches!(p.location, Location::Local(_)) => {
                let total: u64 = sizes(p)?.iter().map(|(_, bytes)| bytes).sum();
                if total > 2 * blocksize {
                    RowGroupSplit::Blocksize(blocksize)
                } else {
                    RowGroupSplit::PerFile
                }
            }
            _ => RowGroupSplit::PerFile,
        },
        RowGroupSplit::Every(0) => RowGroupSplit::PerFile,
        other => other,
    };
    if split == RowGroupSplit::PerFile {
        return Ok(pieces);
    }
    let mut out = Vec::new();
    for p in pieces {
        if !matches!(p.location, Location::Local(_)) {
            out.push(p);
            continue;
        }
        let groups = sizes(&p)?;
        let runs = row_group_runs(&groups, split);
        if runs.len() <= 1 {
            out.push(p);
            continue;
        }
        let mut offset = 0u64;
        for run in runs {
            let len: u64 = groups[run].iter().map(|(rows, _)| rows).sum();
            out.push(Piece {
                rows: Some((offset, len)),
                ..p.clone()
            });
            offset += len;
        }
    }
    Ok(out)
}

/// The runs of row groups (given as `(rows, bytes)`) a file is cut into: `Every(n)` row
/// groups, or, for `Blocksize(b)`, greedily while the run's bytes stay at most `b` (Dask's
/// `aggregate_row_groups`).
fn row_group_runs(groups: &[(u64, u64)], split: RowGroupSplit) -> Vec<std::ops::Range<usize>> {
    match split {
        RowGroupSplit::Every(n) => (0..groups.len())
            .step_by(n.max(1))
            .map(|s| s..(s + n.max(1)).min(groups.len()))
            .collect(),
        RowGroupSplit::Blocksize(block) => {
            let mut runs = Vec::new();
            let mut start = 0;
            let mut bytes = 0u64;
            for (i, (_, b)) in groups.iter().enumerate() {
                if i > start && bytes + b > block {
                    runs.push(start..i);
                    start = i;
                    bytes = 0;
                }
                bytes += b;
            }
            if start < groups.len() {
                runs.push(start..groups.len());
            }
            runs
        }
        RowGroupSplit::PerFile | RowGroupSplit::Infer { .. } => {
            std::iter::once(0..groups.len()).collect()
        }
    }
}

/// Whether a quoted field in `sample` spans lines (then byte-range splitting would cut a
/// record in two, so files are read whole).
pub(crate) fn quoted_newlines(sample: &[u8], quote: u8) -> bool {
    let mut inside = false;
    for &b in sample {
        if b == quote {
            inside = !inside;
        } else if b == b'\n' && inside {
            return true;
        }
    }
    false
}

/// The first bytes of a piece (up to 1 MiB, whole lines), for sniffing.
pub(crate) fn sample_of(piece: &Piece, storage: &StorageOptions) -> Result<Vec<u8>, FrameError> {
    if is_compressed(&piece.location) {
        return Ok(Vec::new());
    }
    let size = storage::size(&piece.location, storage)?;
    read_lines(&piece.location, storage, 0, size.min(1 << 20))
}
