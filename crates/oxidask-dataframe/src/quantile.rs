//! Approximate quantiles over partitions (Dask's `quantile`, `describe`): each partition sends
//! its count and 101 quantiles (every 1%) of each column; the client merges them into one
//! piecewise-linear distribution and reads the quantiles off it. Exact for one partition at
//! whole percents; elsewhere off by at most about one percentile of rank.

use oxidask_core::{Collection, Error};
use polars::prelude::*;

use crate::error::FrameError;
use crate::frame::DataFrame as Frame;
use crate::plan::FrameOp;
use crate::shuffle::physical;

const STEPS: usize = 100;

/// One partition's summary of a column: its non-null count and quantiles at every 1%.
struct Summary {
    count: f64,
    points: Vec<f64>,
}

impl Summary {
    /// The fraction of this partition's values at or below `x` (linear between points).
    fn cdf(&self, x: f64) -> f64 {
        let p = &self.points;
        if p.is_empty() || x < p[0] {
            return 0.0;
        }
        if x >= p[p.len() - 1] {
            return 1.0;
        }
        // The last point at or below x.
        let i = p.partition_point(|v| *v <= x) - 1;
        let (a, b) = (p[i], p[i + 1]);
        let step = 1.0 / (p.len() - 1) as f64;
        let within = if b > a { (x - a) / (b - a) } else { 1.0 };
        (i as f64 + within) * step
    }
}

/// Approximate quantiles `qs` (in 0..=1) of numeric `columns`: one result list per column,
/// `None` for a column without values.
pub(crate) fn approx_quantiles(
    frame: &Frame,
    columns: &[String],
    qs: &[f64],
) -> Result<Vec<Vec<Option<f64>>>, Error> {
    let node = frame.node()?;
    let mut aggs = Vec::new();
    for (j, c) in columns.iter().enumerate() {
        aggs.push(
            physical(c)
                .count()
                .cast(DataType::Float64)
                .alias(format!("n{j}")),
        );
        for i in 0..=STEPS {
            aggs.push(
                physical(c)
                    .quantile(lit(i as f64 / STEPS as f64), QuantileMethod::Linear)
                    .alias(format!("q{j}_{i}")),
            );
        }
    }
    let summaries = Frame::from_result(node.with_ops(
        "quantile-sample",
        vec![FrameOp::GroupAgg {
            keys: Vec::new(),
            aggs,
        }],
    ))
    .compute()?;
    let get = |name: &str, row: usize| -> Result<Option<f64>, Error> {
        summaries
            .column(name)
            .and_then(|c| c.f64().map(|c| c.get(row)))
            .map_err(|e| FrameError::polars("quantile", e).into())
    };
    let mut out = Vec::with_capacity(columns.len());
    for j in 0..columns.len() {
        let mut parts = Vec::new();
        for row in 0..summaries.height() {
            let count = get(&format!("n{j}"), row)?.unwrap_or(0.0);
            if count <= 0.0 {
                continue;
            }
            let mut points = Vec::with_capacity(STEPS + 1);
            for i in 0..=STEPS {
                if let Some(v) = get(&format!("q{j}_{i}"), row)? {
                    points.push(v);
                }
            }
            parts.push(Summary { count, points });
        }
        out.push(qs.iter().map(|&q| merged_quantile(&parts, q)).collect());
    }
    Ok(out)
}

/// The value where the count-weighted mixture of the partitions' distributions reaches `q`.
fn merged_quantile(parts: &[Summary], q: f64) -> Option<f64> {
    let total: f64 = parts.iter().map(|p| p.count).sum();
    if total <= 0.0 {
        return None;
    }
    let cdf = |x: f64| parts.iter().map(|p| p.count * p.cdf(x)).sum::<f64>() / total;
    let mut candidates: Vec<f64> = parts
        .iter()
        .flat_map(|p| p.points.iter().copied())
        .collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    let first = *candidates.first()?;
    if q <= 0.0 {
        return Some(first);
    }
    // The first candidate where the mixture reaches q; interpolate from the one before.
    let mut prev = (first, cdf(first));
    if prev.1 >= q {
        return Some(first);
    }
    for &x in &candidates[1..] {
        let f = cdf(x);
        if f >= q {
            let (px, pf) = prev;
            return Some(if f > pf {
                px + (x - px) * (q - pf) / (f - pf)
            } else {
                x
            });
        }
        prev = (x, f);
    }
    candidates.last().copied()
}
