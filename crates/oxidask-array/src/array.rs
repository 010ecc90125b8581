//! [`Array<T>`]: a lazily computed, chunked n-dimensional array.
//!
//! An array is a node in a DAG of array operations. Each node knows its shape, chunks and
//! dtype, and how to produce its blocks: from a creation recipe (computed from the block's
//! position alone), as a fused elementwise expression over other arrays, or by an operation's
//! own layer of tasks (reductions, slicing, …). Creation and elementwise nodes become task
//! layers only when something needs their blocks, which is what lets `ones(..).chunks(..)`
//! re-cut a creation for free and chains of elementwise steps fuse into one task per block.
//!
//! # Invariants
//! - A node's token identifies its content: equal computations get equal keys.
//! - A layer's `outputs` are the node's block keys in row-major block order.
//! - Invalid operations produce an array holding the error; it surfaces at `compute()` (or
//!   from [`Array::check`]), so operator syntax never panics.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use ndarray::{ArrayD, IxDyn};
use oxidask_core::{Collection, Error, Graph, Key, Task, Token, Value};

use crate::block::{place, Block};
use crate::chunks::{normalize, Chunks, IntoChunks};
use crate::element::{DType, Element};
use crate::error::ArrayError;
use crate::expr::Expr;

/// Tasks that produce blocks, with the layers they read.
pub(crate) struct Layer {
    /// Every task of the operation (intermediate ones included).
    pub tasks: Vec<(Key, Task)>,
    /// The keys of the array's blocks, row-major.
    pub outputs: Vec<Key>,
    /// Layers whose keys the tasks read.
    pub deps: Vec<Arc<Layer>>,
}

/// How a node's blocks are produced.
pub(crate) enum Source {
    /// From the block's position alone (`ones`, `arange`, `random`, …).
    Creation(crate::creation::Creation),
    /// A fused elementwise expression over other arrays' blocks; an input may be read with
    /// its axes permuted (a transpose inlined as a view).
    Elementwise { expr: Expr, inputs: Vec<Input> },
    /// Another array's axes permuted (`perm[i]` = input axis of output axis `i`).
    Transpose { input: Arc<Node>, perm: Vec<usize> },
    /// An operation's own tasks.
    Layer(Arc<Layer>),
}

/// An input of an elementwise node: an array, maybe seen with permuted axes.
pub(crate) type Input = (Arc<Node>, Option<Vec<usize>>);

/// An array without its element type.
pub(crate) struct Node {
    pub shape: Vec<usize>,
    pub chunks: Chunks,
    pub dtype: DType,
    pub token: Token,
    /// The operation's name, the prefix of its keys.
    pub name: &'static str,
    pub source: Source,
    layer: OnceLock<Arc<Layer>>,
}

impl Node {
    pub(crate) fn new(
        name: &'static str,
        shape: Vec<usize>,
        chunks: Chunks,
        dtype: DType,
        token: Token,
        source: Source,
    ) -> Arc<Node> {
        let layer = OnceLock::new();
        if let Source::Layer(l) = &source {
            let _ = layer.set(l.clone());
        }
        Arc::new(Node {
            shape,
            chunks,
            dtype,
            token,
            name,
            source,
            layer,
        })
    }

    /// The key of block `idx` of this node.
    pub(crate) fn key(&self, idx: &[usize]) -> Key {
        block_key(self.name, self.token, idx, &self.chunks.grid())
    }

    /// The tasks that produce this node's blocks (built on first use).
    pub(crate) fn layer(&self) -> Arc<Layer> {
        self.layer
            .get_or_init(|| match &self.source {
                Source::Creation(c) => Arc::new(crate::creation::creation_layer(self, c)),
                Source::Elementwise { expr, inputs } => {
                    Arc::new(crate::elementwise::elementwise_layer(self, expr, inputs))
                }
                Source::Transpose { input, perm } => {
                    Arc::new(crate::manipulation::transpose_layer(self, input, perm))
                }
                Source::Layer(l) => l.clone(),
            })
            .clone()
    }

    /// The key of block `idx`, as the layer names it.
    pub(crate) fn block(&self, idx: &[usize]) -> Key {
        self.layer().outputs[flat_index(idx, &self.chunks.grid())]
    }

    pub(crate) fn nbytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// Row-major flat position of `idx` in `grid`.
pub(crate) fn flat_index(idx: &[usize], grid: &[usize]) -> usize {
    idx.iter().zip(grid).fold(0, |acc, (&i, &g)| acc * g + i)
}

/// The key of a block: up to four coordinates as they are, further ones folded into the
/// fourth so arrays of any rank have keys.
pub(crate) fn block_key(name: &'static str, token: Token, idx: &[usize], grid: &[usize]) -> Key {
    let max = oxidask_core::key::MAX_KEY_DIMS;
    if idx.len() <= max {
        let coords: smallvec::SmallVec<[u32; 4]> = idx.iter().map(|&i| i as u32).collect();
        Key::block(name, token, &coords)
    } else {
        let mut coords: Vec<u32> = idx[..max - 1].iter().map(|&i| i as u32).collect();
        coords.push(flat_index(&idx[max - 1..], &grid[max - 1..]) as u32);
        Key::block(name, token, &coords)
    }
}

/// A lazily computed, chunked n-dimensional array of `T`.
///
/// ```
/// use oxidask_array as da;
/// use oxidask_core::Collection;
/// # oxidask_core::compute::with_scheduler(std::sync::Arc::new(oxidask_core::compute::Inline), || {
/// let x = da::ones::<f64>((1000, 4000)).chunks((1000, 1000));
/// assert_eq!(x.numblocks(), vec![1, 4]);
/// assert_eq!(x.sum().compute_scalar().unwrap(), 4_000_000.0);
/// let dense = x.compute().unwrap(); // an ndarray::ArrayD<f64>
/// assert_eq!(dense.shape(), &[1000, 4000]);
/// # });
/// ```
pub struct Array<T> {
    pub(crate) inner: Result<Arc<Node>, Arc<ArrayError>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            inner: self.inner.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: Element> Array<T> {
    pub(crate) fn from_node(node: Arc<Node>) -> Array<T> {
        debug_assert_eq!(node.dtype, T::DTYPE);
        Array {
            inner: Ok(node),
            _type: PhantomData,
        }
    }

    pub(crate) fn from_result(r: Result<Arc<Node>, ArrayError>) -> Array<T> {
        Array {
            inner: r.map_err(Arc::new),
            _type: PhantomData,
        }
    }

    pub(crate) fn error(e: ArrayError) -> Array<T> {
        Array {
            inner: Err(Arc::new(e)),
            _type: PhantomData,
        }
    }

    pub(crate) fn node(&self) -> Result<&Arc<Node>, ArrayError> {
        self.inner.as_ref().map_err(|e| (**e).clone())
    }

    /// Applies `f` to the node, carrying any earlier error along.
    pub(crate) fn then<U: Element>(
        &self,
        f: impl FnOnce(&Arc<Node>) -> Result<Arc<Node>, ArrayError>,
    ) -> Array<U> {
        Array::from_result(self.node().and_then(f))
    }

    /// `Ok` if the array is valid, else the error that made it invalid (the same error
    /// `compute()` would report).
    pub fn check(&self) -> Result<(), ArrayError> {
        self.node().map(|_| ())
    }

    /// The shape (empty if the array is invalid).
    pub fn shape(&self) -> Vec<usize> {
        self.inner
            .as_ref()
            .map(|n| n.shape.clone())
            .unwrap_or_default()
    }

    /// The operation's name, the prefix of the block keys (`"ones"`, `"add"`, …; empty if the
    /// array is invalid).
    pub fn name(&self) -> &'static str {
        self.inner.as_ref().map(|n| n.name).unwrap_or("")
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// The number of elements.
    pub fn size(&self) -> usize {
        self.shape().iter().product()
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// Bytes the whole array would occupy.
    pub fn nbytes(&self) -> usize {
        self.size() * T::DTYPE.size()
    }

    /// Block lengths per axis (Dask's `.chunks`).
    pub fn chunk_lengths(&self) -> Vec<Vec<usize>> {
        self.inner
            .as_ref()
            .map(|n| n.chunks.0.clone())
            .unwrap_or_default()
    }

    /// The largest block's shape (Dask's `.chunksize`).
    pub fn chunksize(&self) -> Vec<usize> {
        self.inner
            .as_ref()
            .map(|n| n.chunks.max_block())
            .unwrap_or_default()
    }

    /// Blocks per axis.
    pub fn numblocks(&self) -> Vec<usize> {
        self.inner
            .as_ref()
            .map(|n| n.chunks.grid())
            .unwrap_or_default()
    }

    /// The number of tasks in the graph that computes the array.
    pub fn ntasks(&self) -> usize {
        self.graph().len()
    }

    /// The array cut into blocks as `spec` says: `(1000, 1000)`, `1000`, `vec![-1, 500]`,
    /// explicit lengths, [`Auto`](crate::Auto)… Arrays made by a creation function are simply
    /// re-cut; others are rechunked with tasks.
    pub fn chunks(&self, spec: impl IntoChunks) -> Array<T> {
        let spec = spec.into_spec();
        self.then(|n| {
            let chunks = normalize(&n.shape, spec, T::DTYPE.size())?;
            crate::rechunk::rechunk_node(n, chunks)
        })
    }

    /// Same as [`Array::chunks`] (Dask's name).
    pub fn rechunk(&self, spec: impl IntoChunks) -> Array<T> {
        self.chunks(spec)
    }
}

/// Assembles blocks (row-major) into one array.
pub(crate) fn assemble<T: Element>(
    shape: &[usize],
    chunks: &Chunks,
    values: Vec<Value>,
) -> Result<ArrayD<T>, Error> {
    let n = values.len();
    let mut blocks = values.into_iter();
    if n == 1 {
        let v = blocks.next().expect("one block");
        let block: Block = v
            .take()
            .map_err(|e| Error::Collection(e.to_string().into()))?;
        let chunk = T::unwrap(block).map_err(|b| {
            Error::Collection(
                format!("a block of {} where {} was expected", b.dtype(), T::DTYPE).into(),
            )
        })?;
        return Ok(chunk.into_dense());
    }
    let mut out = ArrayD::from_elem(IxDyn(shape), T::default());
    for (idx, v) in chunks.indices().zip(blocks) {
        let block = v.downcast_ref::<Block>().ok_or_else(|| {
            Error::Collection(format!("a block was a `{}`", v.type_name()).into())
        })?;
        let chunk = T::unwrap_ref(block).ok_or_else(|| {
            Error::Collection(
                format!(
                    "a block of {} where {} was expected",
                    block.dtype(),
                    T::DTYPE
                )
                .into(),
            )
        })?;
        place(&mut out, &chunks.block_offset(&idx), chunk);
    }
    Ok(out)
}

/// Adds a layer and everything below it to `graph`, each layer once.
pub(crate) fn add_layer(graph: &mut Graph, layer: &Arc<Layer>) {
    let mut seen: Vec<*const Layer> = Vec::new();
    let mut stack = vec![layer.clone()];
    while let Some(l) = stack.pop() {
        let ptr = Arc::as_ptr(&l);
        if seen.contains(&ptr) {
            continue;
        }
        seen.push(ptr);
        for (k, t) in &l.tasks {
            graph.insert(*k, t.clone());
        }
        stack.extend(l.deps.iter().cloned());
    }
}

impl<T: Element> Collection for Array<T> {
    type Output = ArrayD<T>;
    type Persisted = Array<T>;

    fn keys(&self) -> Vec<Key> {
        match &self.inner {
            Ok(n) => n.layer().outputs.clone(),
            Err(_) => Vec::new(),
        }
    }

    fn build_graph(&self, graph: &mut Graph) {
        if let Ok(n) = &self.inner {
            add_layer(graph, &n.layer());
        }
    }

    fn finalize(&self, values: Vec<Value>) -> Result<ArrayD<T>, Error> {
        let node = self.node()?;
        assemble(&node.shape, &node.chunks, values)
    }

    fn rebuild(&self, values: Vec<Value>) -> Array<T> {
        let Ok(node) = &self.inner else {
            return self.clone();
        };
        let outputs = node.layer().outputs.clone();
        let tasks = outputs
            .iter()
            .zip(values)
            .map(|(k, v)| (*k, Task::value(v)))
            .collect();
        let layer = Arc::new(Layer {
            tasks,
            outputs,
            deps: Vec::new(),
        });
        Array::from_node(Node::new(
            node.name,
            node.shape.clone(),
            node.chunks.clone(),
            node.dtype,
            node.token,
            Source::Layer(layer),
        ))
    }
}

fn human_bytes(n: usize) -> String {
    const UNITS: [&str; 6] = ["B", "kiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

fn tuple(v: &[usize]) -> String {
    match v.len() {
        1 => format!("({},)", v[0]),
        _ => format!(
            "({})",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl<T: Element> fmt::Display for Array<T> {
    /// A symbolic summary, no data: `oxidask.Array<ones, shape=(1000, 4000), dtype=float64,
    /// chunksize=(1000, 1000), blocks=4, tasks=4, nbytes=30.52 MiB>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Err(e) => write!(f, "oxidask.Array<invalid: {e}>"),
            Ok(n) => write!(
                f,
                "oxidask.Array<{}, shape={}, dtype={}, chunksize={}, blocks={}, tasks={}, nbytes={}>",
                n.name,
                tuple(&n.shape),
                n.dtype,
                tuple(&n.chunks.max_block()),
                n.chunks.nblocks(),
                self.ntasks(),
                human_bytes(n.nbytes()),
            ),
        }
    }
}

impl<T: Element> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
