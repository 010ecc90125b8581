//! Partition pruning: pieces of a Parquet read that a filter rules out, from the files' footer
//! statistics (min, max and null count per row group) and the pieces' hive values, decided
//! when the plan is optimized so their reads never run.
//!
//! The filter's conditions become a "may match" expression over a small frame of statistics
//! (a row per piece) that Polars evaluates once: `x > 5` may match where `max(x) > 5`, `x == v`
//! where `min <= v <= max`, `x.is_null()` where the null count is positive, `and`/`or` as
//! such; a condition it does not understand, a column without statistics or of a float type
//! (NaN is not in Parquet's min/max) may match everywhere. So the answer is exact: a piece is
//! dropped only when no row of it can pass. A dropped piece still is a partition (an empty
//! frame of the file's schema, not read), so partition counts and divisions stay as they were.
//!
//! Footers are read once per file (a few KB: the last bytes of the file; through the storage
//! layer for `s3://`) and cached per process, keyed by path, size and modification time.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, OnceLock};

use polars::io::parquet::metadata::{FileMetadataRef, ParquetStatistics};
use polars::prelude::*;

use crate::plan::FrameOp;
use crate::scan::{Format, HiveValue, Piece, Source};
use crate::storage::{self, Location, StorageOptions};

/// A file's footer: its schema (as Arrow) and metadata.
struct Footer {
    arrow: Arc<ArrowSchema>,
    meta: FileMetadataRef,
}

type Cache = Mutex<HashMap<(String, u64, u128), Arc<Footer>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The last bytes of a file seen as the whole file (reads before them give zeros), so
/// Polars' footer reader needs only a ranged read of the end.
struct Tail {
    size: u64,
    tail: Vec<u8>,
    pos: u64,
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = self.size - self.tail.len() as u64;
        if self.pos >= self.size {
            return Ok(0);
        }
        let n = if self.pos < start {
            let n = buf.len().min((start - self.pos) as usize);
            buf[..n].fill(0);
            n
        } else {
            let at = (self.pos - start) as usize;
            let n = buf.len().min(self.tail.len() - at);
            buf[..n].copy_from_slice(&self.tail[at..at + n]);
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Tail {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.size as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if p < 0 {
            return Err(std::io::Error::other("seek before the start"));
        }
        self.pos = p as u64;
        Ok(self.pos)
    }
}

impl polars::io::mmap::MmapBytesReader for Tail {}

fn read_footer<R: polars::io::mmap::MmapBytesReader>(r: R) -> PolarsResult<Footer> {
    let mut reader = ParquetReader::new(r);
    let meta = reader.get_metadata()?.clone();
    let arrow = reader.schema()?;
    Ok(Footer { arrow, meta })
}

/// The footer of the file at `loc`, read once per (path, size, modification time).
fn footer(loc: &Location, opts: &StorageOptions) -> Option<Arc<Footer>> {
    let shown = loc.display();
    let (size, modified) = match loc {
        Location::Local(p) => {
            let m = std::fs::metadata(p).ok()?;
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            (m.len(), t)
        }
        _ => (storage::size(loc, opts).ok()?, 0),
    };
    let key = (shown, size, modified);
    if let Some(f) = cache().lock().expect("footer cache").get(&key) {
        return Some(f.clone());
    }
    let f = match loc {
        Location::Local(p) => read_footer(std::fs::File::open(p).ok()?).ok()?,
        _ => {
            if size < 12 {
                return None;
            }
            // The footer's length is in the 4 bytes before the closing magic.
            let end = storage::read_range(loc, opts, size - 8, size).ok()?;
            let len = u32::from_le_bytes(end[..4].try_into().ok()?) as u64;
            let start = size.checked_sub(len + 8)?;
            let tail = storage::read_range(loc, opts, start, size).ok()?;
            read_footer(Tail { size, tail, pos: 0 }).ok()?
        }
    };
    let f = Arc::new(f);
    cache().lock().expect("footer cache").insert(key, f.clone());
    Some(f)
}

/// Rows and uncompressed bytes (`total_byte_size`) of each row group of the Parquet file at
/// `loc`, from its (cached) footer; `None` when the footer cannot be read.
pub(crate) fn row_group_sizes(loc: &Location, opts: &StorageOptions) -> Option<Vec<(u64, u64)>> {
    let f = footer(loc, opts)?;
    Some(
        f.meta
            .row_groups
            .iter()
            .map(|g| (g.num_rows() as u64, g.total_byte_size() as u64))
            .collect(),
    )
}

/// The filters of `ops` that see the file's own columns: those before anything but filters
/// and plain column selections.
fn leading_filters(ops: &[FrameOp]) -> Vec<Expr> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            FrameOp::Filter(e) => out.push(e.clone()),
            FrameOp::Select(es) if es.iter().all(|e| matches!(e, Expr::Column(_))) => {}
            _ => break,
        }
    }
    out
}

/// Types whose Parquet min/max order is Polars' order (floats are left out: NaN).
fn prunable(d: &DataType) -> bool {
    d.is_integer()
        || matches!(
            d,
            DataType::String | DataType::Date | DataType::Datetime(..)
        )
}

fn min_name(c: &str) -> String {
    format!("{c}\u{0}min")
}
fn max_name(c: &str) -> String {
    format!("{c}\u{0}max")
}
fn nulls_name(c: &str) -> String {
    format!("{c}\u{0}nulls")
}
const ROWS: &str = "\u{0}rows";

/// A literal, or a cast of one (`lit(19000).cast(Date)`).
fn is_lit(e: &Expr) -> bool {
    match e {
        Expr::Literal(_) => true,
        Expr::Cast { expr, .. } => is_lit(expr),
        _ => false,
    }
}

/// Whether `e` may be true for some row, over the statistics frame (`true` when unknown).
fn may_match(e: &Expr, known: &dyn Fn(&str) -> bool) -> Expr {
    let unknown = lit(true);
    let some_values = |c: &str| col(nulls_name(c)).lt(col(ROWS));
    match e {
        Expr::BinaryExpr { left, op, right } => {
            use Operator as O;
            match op {
                O::And | O::LogicalAnd => may_match(left, known).and(may_match(right, known)),
                O::Or | O::LogicalOr => may_match(left, known).or(may_match(right, known)),
                O::Eq | O::NotEq | O::Lt | O::LtEq | O::Gt | O::GtEq => {
                    // Column on the left, literal on the right (flipping the comparison).
                    let (c, v, op) = match (left.as_ref(), right.as_ref()) {
                        (Expr::Column(c), v) if is_lit(v) => (c, v, *op),
                        (v, Expr::Column(c)) if is_lit(v) => (
                            c,
                            v,
                            match op {
                                O::Lt => O::Gt,
                                O::LtEq => O::GtEq,
                                O::Gt => O::Lt,
                                O::GtEq => O::LtEq,
                                o => *o,
                            },
                        ),
                        _ => return unknown,
                    };
                    if !known(c) {
                        return unknown;
                    }
                    let (lo, hi, v) = (col(min_name(c)), col(max_name(c)), v.clone());
                    let cond = match op {
                        O::Eq => lo.lt_eq(v.clone()).and(hi.gt_eq(v)),
                        O::NotEq => lo.eq(v.clone()).and(hi.eq(v)).not(),
                        O::Lt => lo.lt(v),
                        O::LtEq => lo.lt_eq(v),
                        O::Gt => hi.gt(v),
                        _ => hi.gt_eq(v),
                    };
                    some_values(c).and(cond).fill_null(lit(true))
                }
                _ => unknown,
            }
        }
        Expr::Function { input, .. } => match input.as_slice() {
            [Expr::Column(c)] if known(c) && *e == col(c.clone()).is_null() => {
                col(nulls_name(c)).gt(lit(0u64)).fill_null(lit(true))
            }
            [Expr::Column(c)] if known(c) && *e == col(c.clone()).is_not_null() => {
                some_values(c).fill_null(lit(true))
            }
            [Expr::Column(c), lo, hi] if known(c) && is_lit(lo) && is_lit(hi) => {
                // is_between, whatever its closedness: a looser test is still exact.
                let between = |closed| col(c.clone()).is_between(lo.clone(), hi.clone(), closed);
                let is = [
                    ClosedInterval::Both,
                    ClosedInterval::Left,
                    ClosedInterval::Right,
                    ClosedInterval::None,
                ]
                .into_iter()
                .any(|k| *e == between(k));
                if !is {
                    return unknown;
                }
                some_values(c)
                    .and(col(max_name(c)).gt_eq(lo.clone()))
                    .and(col(min_name(c)).lt_eq(hi.clone()))
                    .fill_null(lit(true))
            }
            _ => unknown,
        },
        _ => unknown,
    }
}

/// One column's statistics in one row group: (min, max, null count), each `None` if unknown.
fn rg_stats(
    footer: &Footer,
    rg: usize,
    column: &str,
    dtype: &DataType,
) -> (Option<Series>, Option<Series>, Option<u64>) {
    let none = (None, None, None);
    let Some(field) = footer.arrow.get(column) else {
        return none;
    };
    let group = &footer.meta.row_groups[rg];
    let Some(mut columns) = group.columns_under_root_iter(column) else {
        return none;
    };
    let Ok(Some(ParquetStatistics::Column(stats))) =
        polars::io::parquet::metadata::deserialize(field, &mut columns, &footer.meta.footer_buf)
    else {
        return none;
    };
    let Ok(stats) = stats.into_arrow() else {
        return none;
    };
    let value = |s: Option<PolarsResult<Series>>| {
        let s = s?.ok()?.strict_cast(dtype).ok()?;
        (s.len() == 1).then_some(s)
    };
    (
        value(
            stats
                .min_value
                .map(|a| Series::from_arrow(PlSmallStr::EMPTY, a)),
        ),
        value(
            stats
                .max_value
                .map(|a| Series::from_arrow(PlSmallStr::EMPTY, a)),
        ),
        stats.null_count,
    )
}

/// The row groups of a file a piece covers (all, or those its row range overlaps).
fn row_groups(footer: &Footer, piece: &Piece) -> Vec<usize> {
    let mut at = 0u64;
    let mut out = Vec::new();
    for (i, g) in footer.meta.row_groups.iter().enumerate() {
        let n = g.num_rows() as u64;
        let take = match piece.rows {
            None => true,
            Some((offset, len)) => at < offset + len && offset < at + n,
        };
        if take {
            out.push(i);
        }
        at += n;
    }
    out
}

fn hive_series(v: &HiveValue, dtype: &DataType) -> Option<Series> {
    let s = match v {
        HiveValue::Int(i) => Series::new(PlSmallStr::EMPTY, [*i]),
        HiveValue::Str(s) => Series::new(PlSmallStr::EMPTY, [s.as_str()]),
    };
    s.strict_cast(dtype).ok()
}

/// `source` with the pieces `ops`' filters rule out marked pruned (read as empty frames), or
/// `None` when none can be: not Parquet, no usable filter, nothing ruled out.
pub(crate) fn prune(source: &Source, ops: &[FrameOp]) -> Option<Source> {
    if !matches!(source.format, Format::Parquet) {
        return None;
    }
    let filters = leading_filters(ops);
    if filters.is_empty() {
        return None;
    }
    let used = crate::optimize::leaves(&filters)?;
    // Columns with statistics: the file's (types from the first footer) and the hive keys,
    // of a type whose order Parquet and Polars agree on.
    let first = source.pieces.iter().find(|p| p.pruned.is_none())?;
    let file_schema = Schema::from_arrow_schema(&footer(&first.location, &source.storage)?.arrow);
    let columns: Vec<(String, DataType)> = used
        .into_iter()
        .filter_map(|c| {
            let d = match first.hive.iter().find(|(k, _)| *k == c) {
                Some((_, HiveValue::Int(_))) => DataType::Int64,
                Some((_, HiveValue::Str(_))) => DataType::String,
                None => file_schema.get(c.as_str())?.clone(),
            };
            prunable(&d).then_some((c, d))
        })
        .collect();
    if columns.is_empty() {
        return None;
    }
    // A row per (piece, row group): the statistics of each column.
    let mut ids: Vec<u32> = Vec::new();
    let mut rows: Vec<Option<u64>> = Vec::new();
    let mut mins: Vec<Vec<Series>> = vec![Vec::new(); columns.len()];
    let mut maxs: Vec<Vec<Series>> = vec![Vec::new(); columns.len()];
    let mut nulls: Vec<Vec<Option<u64>>> = vec![Vec::new(); columns.len()];
    let mut footers: Vec<Option<Arc<Footer>>> = Vec::new();
    for (i, p) in source.pieces.iter().enumerate() {
        if p.pruned.is_some() {
            footers.push(None);
            continue;
        }
        let f = footer(&p.location, &source.storage);
        let Some(f) = f else {
            footers.push(None);
            continue;
        };
        for rg in row_groups(&f, p) {
            let n = f.meta.row_groups[rg].num_rows() as u64;
            ids.push(i as u32);
            rows.push(Some(n));
            for (j, (c, d)) in columns.iter().enumerate() {
                let hive = p.hive.iter().find(|(k, _)| k == c);
                let (lo, hi, nc) = match hive {
                    Some((_, v)) => {
                        // A hive value is the column for the whole file: no nulls.
                        let s = hive_series(v, d);
                        let nc = s.is_some().then_some(0);
                        (s.clone(), s, nc)
                    }
                    None => rg_stats(&f, rg, c, d),
                };
                // Unknown null count: unknown rows too (no conclusion for this column).
                let null = |_: ()| Series::full_null(PlSmallStr::EMPTY, 1, d);
                mins[j].push(lo.unwrap_or_else(|| null(())));
                maxs[j].push(hi.unwrap_or_else(|| null(())));
                nulls[j].push(nc);
            }
        }
        footers.push(Some(f));
    }
    if ids.is_empty() {
        return None;
    }
    let mut frame_cols: Vec<Column> = vec![
        Series::new("piece".into(), ids).into(),
        Series::new(ROWS.into(), rows).into(),
    ];
    for (j, (c, _)) in columns.iter().enumerate() {
        let cat = |parts: &[Series], name: String| -> Option<Column> {
            let mut s = parts[0].clone();
            for p in &parts[1..] {
                s.append(p).ok()?;
            }
            Some(s.with_name(name.into()).into())
        };
        frame_cols.push(cat(&mins[j], min_name(c))?);
        frame_cols.push(cat(&maxs[j], max_name(c))?);
        frame_cols.push(Series::new(nulls_name(c).into(), nulls[j].clone()).into());
    }
    let frame = DataFrame::new_infer_height(frame_cols).ok()?;
    // Per piece: min of mins and max of maxes over row groups with values, unknown if a row
    // group with values has none; null counts summed, unknown if one is.
    let mut aggs = vec![col(ROWS).sum()];
    for (c, _) in &columns {
        let (lo, hi, nc) = (min_name(c), max_name(c), nulls_name(c));
        let has_values = col(nc.as_str()).lt(col(ROWS));
        let missing = has_values
            .clone()
            .fill_null(lit(true))
            .and(col(lo.as_str()).is_null().or(col(hi.as_str()).is_null()))
            .any(true);
        aggs.push(
            when(missing.clone())
                .then(lit(NULL))
                .otherwise(col(lo.as_str()).min())
                .alias(lo.as_str()),
        );
        aggs.push(
            when(missing)
                .then(lit(NULL))
                .otherwise(col(hi.as_str()).max())
                .alias(hi.as_str()),
        );
        aggs.push(
            when(col(nc.as_str()).is_null().any(true))
                .then(lit(NULL).cast(DataType::UInt64))
                .otherwise(col(nc.as_str()).sum())
                .alias(nc.as_str()),
        );
    }
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    let known = |c: &str| names.contains(&c);
    let cond = filters
        .iter()
        .map(|f| may_match(f, &known))
        .reduce(|a, b| a.and(b))?;
    let query = frame
        .lazy()
        .group_by([col("piece")])
        .agg(aggs)
        .select([col("piece"), cond.alias("may")]);
    let verdict = query.collect().ok()?;
    let piece = verdict.column("piece").ok()?.u32().ok()?.clone();
    let may = verdict.column("may").ok()?.bool().ok()?.clone();
    let mut out: Vec<Piece> = source.pieces.clone();
    let mut pruned = 0;
    for (p, m) in piece.iter().zip(may.iter()) {
        let (Some(p), Some(false)) = (p, m) else {
            continue;
        };
        let Some(f) = &footers[p as usize] else {
            continue;
        };
        out[p as usize].pruned = Some(Arc::new(Schema::from_arrow_schema(&f.arrow)));
        pruned += 1;
    }
    (pruned > 0).then(|| Source {
        format: source.format.clone(),
        storage: source.storage.clone(),
        pieces: out,
    })
}

/// An upper estimate of a node's size in memory, from what is known without computing it:
/// a Parquet read's footers (uncompressed bytes of the columns it yields, in the row groups
/// of its unpruned pieces) or the sizes of in-memory partitions, through row-wise steps,
/// subsets and repartitions. `None` when unknown (the side is then never broadcast by size).
pub(crate) fn estimated_bytes(n: &crate::plan::Node) -> Option<u64> {
    use crate::plan::Kind;
    match &n.kind {
        Kind::Scan { source, ops } => {
            if !matches!(source.format, Format::Parquet) {
                return None;
            }
            let pruned = prune(source, ops);
            let source = pruned.as_ref().unwrap_or(source);
            let mut total = 0u64;
            for p in &source.pieces {
                if p.pruned.is_some() {
                    continue;
                }
                let f = footer(&p.location, &source.storage)?;
                for rg in row_groups(&f, p) {
                    let group = &f.meta.row_groups[rg];
                    for c in n.schema.iter_names() {
                        if let Some(chunks) = group.columns_under_root_iter(c.as_str()) {
                            total += chunks
                                .map(|ch| ch.uncompressed_size().max(0) as u64)
                                .sum::<u64>();
                        }
                    }
                }
            }
            Some(total)
        }
        Kind::Parts { parts, .. } => {
            let mut total = 0u64;
            for a in parts.iter() {
                let oxidask_core::Arg::Value(v) = a else {
                    return None;
                };
                let df = &v.downcast_ref::<crate::Partition>()?.0;
                total += n
                    .schema
                    .iter_names()
                    .filter_map(|c| df.column(c.as_str()).ok())
                    .map(|c| c.as_materialized_series().estimated_size() as u64)
                    .sum::<u64>();
            }
            Some(total)
        }
        Kind::Map { input, ops }
            if ops.iter().all(|o| {
                matches!(
                    o,
                    FrameOp::Select(_) | FrameOp::Filter(_) | FrameOp::Slice { .. }
                )
            }) =>
        {
            estimated_bytes(input)
        }
        Kind::Repartition { input } | Kind::Subset { input, .. } => estimated_bytes(input),
        _ => None,
    }
}

/// An estimate of the number of groups of `keys` in a Parquet read: the product of the
/// integer keys' value ranges (footer min/max over every row group), at most the row count.
/// `None` when not a Parquet read or a key is not an integer column with statistics.
pub(crate) fn estimated_groups(n: &crate::plan::Node, keys: &[String]) -> Option<u64> {
    estimated_groups_and_rows(n, keys).map(|(groups, _)| groups)
}

/// [`estimated_groups`] and the read's row count (of the pieces not pruned).
pub(crate) fn estimated_groups_and_rows(
    n: &crate::plan::Node,
    keys: &[String],
) -> Option<(u64, u64)> {
    let crate::plan::Kind::Scan { source, ops } = &n.kind else {
        return None;
    };
    if !matches!(source.format, Format::Parquet) || keys.is_empty() {
        return None;
    }
    // Keys that are copies of file columns (`with_columns(col("a").alias("k"))`, as the
    // Python layer's merge makes of its key columns) have the file columns' statistics.
    let keys: Vec<String> = keys
        .iter()
        .map(|k| copied_from(ops, k))
        .collect::<Option<_>>()?;
    let keys = &keys[..];
    let mut rows = 0u64;
    let mut ranges: Vec<(i64, i64)> = vec![(i64::MAX, i64::MIN); keys.len()];
    for p in &source.pieces {
        if p.pruned.is_some() {
            continue;
        }
        let f = footer(&p.location, &source.storage)?;
        for rg in row_groups(&f, p) {
            let group_rows = f.meta.row_groups[rg].num_rows() as u64;
            rows += group_rows;
            for (k, range) in keys.iter().zip(ranges.iter_mut()) {
                let d = Schema::from_arrow_schema(&f.arrow).get(k.as_str())?.clone();
                if !d.is_integer() {
                    return None;
                }
                let (lo, hi, nulls) = rg_stats(&f, rg, k, &DataType::Int64);
                if nulls == Some(group_rows) {
                    continue; // only nulls: one group, counted below
                }
                let value = |s: Option<Series>| s?.i64().ok()?.get(0);
                range.0 = range.0.min(value(lo)?);
                range.1 = range.1.max(value(hi)?);
            }
        }
    }
    let mut groups = 1u64;
    for (lo, hi) in ranges {
        let width = if lo > hi {
            1
        } else {
            (hi as i128 - lo as i128 + 2).min(u64::MAX as i128) as u64
        };
        groups = groups.saturating_mul(width);
    }
    Some((groups.min(rows), rows))
}

/// The file column that column `name` holds after `ops`: itself, or the column a selection
/// or `with_columns` copied under that name. `None` when `name` is computed, or when `ops`
/// aggregate (a copy's values, and so its file statistics, are the file column's; filters,
/// sorts and slices only drop or move rows, within the same bounds).
fn copied_from(ops: &[FrameOp], name: &str) -> Option<String> {
    let mut current = name.to_owned();
    for op in ops.iter().rev() {
        // The expression naming `current`: `Some(Some(file column))` for a copy,
        // `Some(None)` for anything computed (or a name we cannot tell), `None` if none does.
        let defining = |es: &[Expr]| -> Option<Option<String>> {
            es.iter().find_map(|e| {
                let out = output_name(e);
                if out.as_ref().is_some_and(|o| o.as_str() != current) {
                    return None;
                }
                Some(match e {
                    Expr::Column(c) => Some(c.to_string()),
                    Expr::Alias(inner, _) => match inner.as_ref() {
                        Expr::Column(c) => Some(c.to_string()),
                        _ => None,
                    },
                    _ => None,
                })
            })
        };
        match op {
            FrameOp::WithColumns(es) => {
                if let Some(src) = defining(es) {
                    current = src?;
                }
            }
            FrameOp::Select(es) => current = defining(es)??,
            FrameOp::Filter(_) | FrameOp::Sort { .. } | FrameOp::Slice { .. } => {}
            FrameOp::Unique { .. } | FrameOp::GroupAgg { .. } => return None,
        }
    }
    Some(current)
}

/// The name of the column `e` produces as Polars names it (the first column or alias met
/// walking the expression), or `None` when it starts otherwise (a literal, `len()`...).
fn output_name(e: &Expr) -> Option<String> {
    for node in e {
        match node {
            Expr::Column(c) | Expr::Alias(_, c) => return Some(c.to_string()),
            Expr::Len | Expr::Literal(_) | Expr::Selector(_) | Expr::RenameAlias { .. } => {
                return None
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_copied_from_a_file_column_has_its_statistics() {
        let copy = FrameOp::WithColumns(vec![col("PULocationID").alias("__oxidask_lkey0")]);
        assert_eq!(
            copied_from(std::slice::from_ref(&copy), "__oxidask_lkey0").as_deref(),
            Some("PULocationID")
        );
        // Through a selection and a filter; a file column is itself.
        let ops = [
            copy.clone(),
            FrameOp::Filter(col("x").gt(lit(1))),
            FrameOp::Select(vec![col("__oxidask_lkey0").alias("k")]),
        ];
        assert_eq!(copied_from(&ops, "k").as_deref(), Some("PULocationID"));
        assert_eq!(copied_from(&[], "x").as_deref(), Some("x"));
        // Computed, rewritten after the copy's source changed, aggregated: no statistics.
        let computed = FrameOp::WithColumns(vec![col("a") * lit(2)]);
        assert_eq!(copied_from(std::slice::from_ref(&computed), "a"), None);
        let computed = FrameOp::WithColumns(vec![(col("a") + lit(1)).alias("k")]);
        assert_eq!(copied_from(std::slice::from_ref(&computed), "k"), None);
        let changed = [
            FrameOp::WithColumns(vec![col("a") * lit(2)]),
            FrameOp::WithColumns(vec![col("a").alias("k")]),
        ];
        assert_eq!(copied_from(&changed, "k"), None);
        let grouped = FrameOp::GroupAgg {
            keys: vec![col("a")],
            aggs: vec![len().alias("n")],
        };
        assert_eq!(copied_from(std::slice::from_ref(&grouped), "a"), None);
    }
}
