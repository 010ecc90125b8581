//! Reductions along one axis, several, or all, as tree reductions.
//!
//! Each input block is reduced to a partial (`{name}-partial`); partials of one output block
//! are combined `split_every` at a time (`{name}-combine`) until one task finishes them
//! (`{name}-aggregate`). With the plan's depth-first order, a reduction over an array larger
//! than memory holds only a few blocks at a time.

use std::sync::Arc;

use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Key, Task, Value};

use crate::array::{block_key, Array, Layer, Node, Source};
use crate::chunks::Chunks;
use crate::creation::BlockPos;
use crate::element::{DType, Element};
use crate::error::ArrayError;
use crate::ops;
use crate::reduce_kernels::Reduction;

/// Number of partials combined per task when neither the call nor the configuration
/// (`array.split-every`) says.
pub const DEFAULT_SPLIT_EVERY: usize = 16;

/// Partials combined per task by default: `array.split-every` of the process's
/// configuration (16 unless set; an invalid configuration falls back to 16 — `oxidask config`
/// shows its error).
pub fn configured_split_every() -> usize {
    oxidask_config::global()
        .ok()
        .and_then(|c| c.int("array.split-every"))
        .map_or(DEFAULT_SPLIT_EVERY, |n| n.max(2) as usize)
}

/// Options of a reduction: which axes, whether to keep them with length 1, and how many
/// partials each combining task takes.
///
/// ```
/// use oxidask_array::{ones, Reduce};
/// let x = ones::<f64>((4, 5, 6));
/// let s = x.sum_with(Reduce::axes([1, 2]).keepdims(true).split_every(4));
/// assert_eq!(s.shape(), vec![4, 1, 1]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Reduce {
    axes: Option<Vec<isize>>,
    keepdims: bool,
    split_every: Option<usize>,
}

impl Reduce {
    /// Over every axis.
    pub fn all() -> Reduce {
        Reduce::default()
    }

    /// Over one axis (negative counts from the end).
    pub fn axis(axis: isize) -> Reduce {
        Reduce {
            axes: Some(vec![axis]),
            ..Reduce::default()
        }
    }

    /// Over several axes.
    pub fn axes(axes: impl IntoIterator<Item = isize>) -> Reduce {
        Reduce {
            axes: Some(axes.into_iter().collect()),
            ..Reduce::default()
        }
    }

    /// Keep reduced axes with length 1.
    pub fn keepdims(mut self, on: bool) -> Reduce {
        self.keepdims = on;
        self
    }

    /// Partials combined per task (at least 2; default `array.split-every`, 16).
    pub fn split_every(mut self, n: usize) -> Reduce {
        self.split_every = Some(n);
        self
    }
}

/// Normalizes axes: negative from the end, checked, sorted, unique.
pub(crate) fn normalize_axes(axes: &[isize], shape: &[usize]) -> Result<Vec<usize>, ArrayError> {
    let nd = shape.len() as isize;
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let ax = if a < 0 { a + nd } else { a };
        if ax < 0 || ax >= nd {
            return Err(ArrayError::AxisOutOfRange {
                axis: a,
                ndim: shape.len(),
                shape: shape.to_vec(),
            });
        }
        if out.contains(&(ax as usize)) {
            return Err(ArrayError::RepeatedAxis {
                axis: ax as usize,
                axes: axes.to_vec(),
            });
        }
        out.push(ax as usize);
    }
    out.sort_unstable();
    Ok(out)
}

pub(crate) fn reduce_node(
    node: &Arc<Node>,
    kind: Reduction,
    opts: &Reduce,
    out_dtype: DType,
) -> Result<Arc<Node>, ArrayError> {
    let nd = node.shape.len();
    let axes = match &opts.axes {
        None => (0..nd).collect(),
        Some(a) => normalize_axes(a, &node.shape)?,
    };
    if matches!(kind, Reduction::ArgMin | Reduction::ArgMax) && axes.len() != nd && axes.len() != 1
    {
        return Err(ArrayError::Argument {
            op: kind.name(),
            detail: format!("reduces over one axis or all of them, not {axes:?}"),
        });
    }
    if matches!(
        kind,
        Reduction::ArgMin | Reduction::ArgMax | Reduction::Min | Reduction::Max
    ) && axes.iter().any(|&a| node.shape[a] == 0)
    {
        return Err(ArrayError::Argument {
            op: kind.name(),
            detail: format!(
                "zero-size array (shape {:?}) has no identity to reduce to",
                node.shape
            ),
        });
    }
    let split_every = opts
        .split_every
        .unwrap_or_else(configured_split_every)
        .max(2);
    let keepdims = opts.keepdims;

    let mut t = Tokenizer::new();
    t.write_str("reduction");
    t.write_data(&kind);
    t.write_data(&axes);
    t.write_u64(keepdims as u64);
    t.write_u64(split_every as u64);
    t.write_token(node.token);
    let token = t.finish();

    // Output shape and chunks.
    let mut out_shape = Vec::new();
    let mut out_chunks = Vec::new();
    for a in 0..nd {
        if axes.contains(&a) {
            if keepdims {
                out_shape.push(1);
                out_chunks.push(vec![1]);
            }
        } else {
            out_shape.push(node.shape[a]);
            out_chunks.push(node.chunks.0[a].clone());
        }
    }
    let out_chunks = Chunks(out_chunks);
    let input = node.layer();
    let in_grid = node.chunks.grid();
    let name = kind.name();
    let partial_name = leak(format!("{name}-partial"));
    let combine_name = leak(format!("{name}-combine"));
    let aggregate_name = leak(format!("{name}-aggregate"));

    let kind_v = Value::new(kind);
    let axes_v = Value::new(axes.clone());
    let mut tasks: Vec<(Key, Task)> = Vec::new();
    // Reducing a pending elementwise expression over axis 0: evaluate it inside the partial
    // tasks, tile by tile, instead of building its blocks.
    let fused = match &node.source {
        Source::Elementwise { expr, inputs } if axes.first() == Some(&0) => {
            let perms: Vec<Option<Vec<usize>>> = inputs.iter().map(|(_, p)| p.clone()).collect();
            Some((Value::new((expr.clone(), perms)), inputs))
        }
        _ => None,
    };
    let input = match &fused {
        Some((_, inputs)) => Arc::new(Layer {
            tasks: Vec::new(),
            outputs: Vec::new(),
            deps: inputs.iter().map(|(n, _)| n.layer()).collect(),
        }),
        None => input,
    };
    // Partials, grouped by output block.
    let reduced_grid: Vec<usize> = (0..nd)
        .map(|a| if axes.contains(&a) { 1 } else { in_grid[a] })
        .collect();
    let mut groups: Vec<Vec<Key>> = vec![Vec::new(); reduced_grid.iter().product()];
    for idx in node.chunks.indices() {
        let pkey = block_key(partial_name, token, &idx, &in_grid);
        let pos = BlockPos {
            shape: node.chunks.block_shape(&idx),
            offset: node.chunks.block_offset(&idx),
            total: node.shape.clone(),
        };
        let task = match &fused {
            Some((spec, inputs)) => Task::call(
                ops::reduce_expr_partial::op(),
                [
                    Arg::Value(kind_v.clone()),
                    Arg::Value(axes_v.clone()),
                    Arg::Value(Value::new(pos)),
                    Arg::Value(spec.clone()),
                    Arg::List(crate::elementwise::input_keys(node, inputs, &idx)),
                ],
            ),
            None => Task::call(
                ops::reduce_partial::op(),
                [
                    Arg::Value(kind_v.clone()),
                    Arg::Value(axes_v.clone()),
                    Arg::Value(Value::new(pos)),
                    Arg::Key(node.block(&idx)),
                ],
            ),
        };
        tasks.push((pkey, task));
        let group = crate::array::flat_index(
            &idx.iter()
                .enumerate()
                .map(|(a, &i)| if axes.contains(&a) { 0 } else { i })
                .collect::<Vec<_>>(),
            &reduced_grid,
        );
        groups[group].push(pkey);
    }
    // Tree-combine each group, then aggregate.
    let finish_v = Value::new((kind, axes.clone(), keepdims, out_dtype));
    let out_grid = out_chunks.grid();
    let mut outputs = Vec::with_capacity(groups.len());
    for (g, mut level) in groups.into_iter().enumerate() {
        let mut depth = 0u64;
        while level.len() > split_every {
            depth += 1;
            let mut lt = Tokenizer::new();
            lt.write_token(token);
            lt.write_u64(depth);
            lt.write_u64(g as u64);
            let ltoken = lt.finish();
            level = level
                .chunks(split_every)
                .enumerate()
                .map(|(i, part)| {
                    let k = Key::block(combine_name, ltoken, &[i as u32]);
                    tasks.push((
                        k,
                        Task::call(
                            ops::reduce_combine::op(),
                            [
                                Arg::Value(kind_v.clone()),
                                Arg::List(part.iter().map(|p| Arg::Key(*p)).collect()),
                            ],
                        ),
                    ));
                    k
                })
                .collect();
        }
        let out_idx = out_index(g, &reduced_grid, &axes, keepdims);
        let key = block_key(aggregate_name, token, &out_idx, &out_grid);
        tasks.push((
            key,
            Task::call(
                ops::reduce_aggregate::op(),
                [
                    Arg::Value(finish_v.clone()),
                    Arg::List(level.iter().map(|p| Arg::Key(*p)).collect()),
                ],
            ),
        ));
        outputs.push(key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: vec![input],
    });
    Ok(Node::new(
        aggregate_name,
        out_shape,
        out_chunks,
        out_dtype,
        token,
        Source::Layer(layer),
    ))
}

/// The output block index of group `g` (an index into the grid with reduced axes of 1).
fn out_index(g: usize, reduced_grid: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    let mut rem = g;
    let mut full = vec![0; reduced_grid.len()];
    for a in (0..reduced_grid.len()).rev() {
        full[a] = rem % reduced_grid[a];
        rem /= reduced_grid[a];
    }
    full.into_iter()
        .enumerate()
        .filter(|(a, _)| keepdims || !axes.contains(a))
        .map(|(_, i)| i)
        .collect()
}

/// Key prefixes are `&'static str`; reduction names are a small fixed set, so each distinct
/// name is leaked once.
fn leak(s: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(s.as_str()) {
        return n;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    names.insert(leaked);
    leaked
}

macro_rules! reductions {
    ($($name:ident, $name_axis:ident, $name_with:ident => $kind:expr, $out:ty, $doc:literal;)*) => {
        impl<T: Element> Array<T> {
            $(
                #[doc = concat!($doc, ", over every axis.")]
                pub fn $name(&self) -> Array<$out> {
                    self.$name_with(Reduce::all())
                }

                #[doc = concat!($doc, ", along one axis (negative counts from the end).")]
                pub fn $name_axis(&self, axis: isize) -> Array<$out> {
                    self.$name_with(Reduce::axis(axis))
                }

                #[doc = concat!($doc, ", with [`Reduce`] options.")]
                pub fn $name_with(&self, opts: Reduce) -> Array<$out> {
                    self.then(|n| reduce_node(n, $kind, &opts, <$out as Element>::DTYPE))
                }
            )*
        }
    };
}

reductions! {
    sum, sum_axis, sum_with => Reduction::Sum, T::Sum, "Sum";
    prod, prod_axis, prod_with => Reduction::Prod, T::Sum, "Product";
    min, min_axis, min_with => Reduction::Min, T, "Minimum (NaN if any is NaN)";
    max, max_axis, max_with => Reduction::Max, T, "Maximum (NaN if any is NaN)";
    any, any_axis, any_with => Reduction::Any, bool, "Whether any element is non-zero";
    all, all_axis, all_with => Reduction::All, bool, "Whether every element is non-zero";
    nansum, nansum_axis, nansum_with => Reduction::NanSum, T::Sum, "Sum ignoring NaN";
    mean, mean_axis, mean_with => Reduction::Mean, T::Float, "Mean";
    nanmean, nanmean_axis, nanmean_with => Reduction::NanMean, T::Float, "Mean ignoring NaN";
    argmin, argmin_axis, argmin_with => Reduction::ArgMin, i64, "Index of the minimum (flat over the array, or along the axis)";
    argmax, argmax_axis, argmax_with => Reduction::ArgMax, i64, "Index of the maximum (flat over the array, or along the axis)";
}

impl<T: Element> Array<T> {
    /// Variance with `ddof` delta degrees of freedom (0: population, 1: sample).
    pub fn var(&self, ddof: u32) -> Array<T::Float> {
        self.var_with(ddof, Reduce::all())
    }

    /// Variance along one axis.
    pub fn var_axis(&self, axis: isize, ddof: u32) -> Array<T::Float> {
        self.var_with(ddof, Reduce::axis(axis))
    }

    /// Variance with [`Reduce`] options.
    pub fn var_with(&self, ddof: u32, opts: Reduce) -> Array<T::Float> {
        self.then(|n| {
            reduce_node(
                n,
                Reduction::Var { ddof },
                &opts,
                <T::Float as Element>::DTYPE,
            )
        })
    }

    /// Standard deviation with `ddof` delta degrees of freedom.
    pub fn std(&self, ddof: u32) -> Array<T::Float> {
        self.std_with(ddof, Reduce::all())
    }

    /// Standard deviation along one axis.
    pub fn std_axis(&self, axis: isize, ddof: u32) -> Array<T::Float> {
        self.std_with(ddof, Reduce::axis(axis))
    }

    /// Standard deviation with [`Reduce`] options.
    pub fn std_with(&self, ddof: u32, opts: Reduce) -> Array<T::Float> {
        self.then(|n| {
            reduce_node(
                n,
                Reduction::Std { ddof },
                &opts,
                <T::Float as Element>::DTYPE,
            )
        })
    }

    /// Computes a 0-d array and returns its value.
    pub fn compute_scalar(&self) -> Result<T, oxidask_core::Error> {
        let a = oxidask_core::Collection::compute(self)?;
        a.iter().next().copied().ok_or_else(|| {
            oxidask_core::Error::Collection(
                format!("compute_scalar on an array of shape {:?}", self.shape()).into(),
            )
        })
    }
}
