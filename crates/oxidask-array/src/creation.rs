//! Creating arrays: constants, ranges, identity, random numbers, from data and from delayed
//! blocks, concatenation and stacking.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Delayed, Task, Token, Value};

use crate::array::{Array, Layer, Node, Source};
use crate::block::{Block, Chunk};
use crate::chunks::{normalize, Auto, ChunkSpec, Chunks, IntoChunks, IntoShape};
use crate::element::{DType, Element, Float, Number};
use crate::error::ArrayError;
use crate::ops;
use crate::random_impl as random;

/// How a creation function fills a block, from the block's position alone.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Creation {
    /// Every element equal to a 0-d constant block.
    Full(Block),
    /// `start + step · i` along the only axis.
    Arange {
        /// First value.
        start: f64,
        /// Increment.
        step: f64,
    },
    /// `num` values from `start` to `stop`.
    Linspace {
        /// First value.
        start: f64,
        /// Last value (included if `endpoint`).
        stop: f64,
        /// Number of values.
        num: usize,
        /// Whether `stop` is the last value.
        endpoint: bool,
    },
    /// Ones on the `k`-th diagonal.
    Eye {
        /// Diagonal offset (0: main).
        k: i64,
    },
    /// Random numbers, reproducible whatever the chunking.
    Random {
        /// The seed.
        seed: u64,
        /// The distribution.
        dist: Distribution,
    },
}

/// A random distribution.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Distribution {
    /// Uniform in `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Normal with mean `loc` and standard deviation `scale`.
    Normal {
        /// Mean.
        loc: f64,
        /// Standard deviation.
        scale: f64,
    },
    /// Integers in `[low, high)`.
    Integers {
        /// Lower bound.
        low: i64,
        /// Upper bound (exclusive).
        high: i64,
    },
}

impl Creation {
    fn name(&self) -> &'static str {
        match self {
            Creation::Full(_) => "full",
            Creation::Arange { .. } => "arange",
            Creation::Linspace { .. } => "linspace",
            Creation::Eye { .. } => "eye",
            Creation::Random { dist, .. } => match dist {
                Distribution::Uniform { .. } => "random",
                Distribution::Normal { .. } => "normal",
                Distribution::Integers { .. } => "randint",
            },
        }
    }
}

/// Where a block sits: its shape and offset in an array of `total` shape.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct BlockPos {
    /// The block's shape.
    pub shape: Vec<usize>,
    /// Its first element's position.
    pub offset: Vec<usize>,
    /// The whole array's shape.
    pub total: Vec<usize>,
}

/// A creation node over `chunks`.
pub(crate) fn creation_node(
    creation: Creation,
    dtype: DType,
    shape: Vec<usize>,
    chunks: Chunks,
) -> Arc<Node> {
    let mut t = Tokenizer::new();
    t.write_str("creation");
    t.write_data(&creation);
    t.write_data(&dtype);
    t.write_data(&shape);
    t.write_data(&chunks);
    Node::new(
        creation.name(),
        shape,
        chunks,
        dtype,
        t.finish(),
        Source::Creation(creation),
    )
}

/// One task per block calling [`ops::create`].
pub(crate) fn creation_layer(node: &Node, creation: &Creation) -> Layer {
    let recipe = Value::new(creation.clone());
    let dtype = Value::new(node.dtype);
    let mut tasks = Vec::with_capacity(node.chunks.nblocks());
    let mut outputs = Vec::with_capacity(node.chunks.nblocks());
    for idx in node.chunks.indices() {
        let key = node.key(&idx);
        let pos = BlockPos {
            shape: node.chunks.block_shape(&idx),
            offset: node.chunks.block_offset(&idx),
            total: node.shape.clone(),
        };
        let task = Task::call(
            ops::create::op(),
            [
                Arg::Value(recipe.clone()),
                Arg::Value(dtype.clone()),
                Arg::Value(Value::new(pos)),
            ],
        );
        tasks.push((key, task));
        outputs.push(key);
    }
    Layer {
        tasks,
        outputs,
        deps: Vec::new(),
    }
}

/// Global row-major positions of a block's elements, row by row: calls `f(start, len)` for
/// each run along the last axis.
fn for_each_run(pos: &BlockPos, mut f: impl FnMut(u64, usize)) {
    let nd = pos.shape.len();
    if nd == 0 {
        f(0, 1);
        return;
    }
    let mut strides = vec![1u64; nd];
    for a in (0..nd - 1).rev() {
        strides[a] = strides[a + 1] * pos.total[a + 1] as u64;
    }
    let inner = pos.shape[nd - 1];
    let rows: usize = pos.shape[..nd - 1].iter().product();
    let mut idx = vec![0usize; nd - 1];
    for _ in 0..rows {
        let mut start = pos.offset[nd - 1] as u64;
        for a in 0..nd - 1 {
            start += (pos.offset[a] + idx[a]) as u64 * strides[a];
        }
        f(start, inner);
        for a in (0..nd - 1).rev() {
            idx[a] += 1;
            if idx[a] < pos.shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

fn generate<T: Element>(pos: &BlockPos, value: impl Fn(u64) -> T) -> ArrayD<T> {
    let mut out = Vec::with_capacity(pos.shape.iter().product());
    for_each_run(pos, |start, len| {
        out.extend((start..start + len as u64).map(&value));
    });
    ArrayD::from_shape_vec(IxDyn(&pos.shape), out).expect("generated exactly the block's elements")
}

fn make<T: Element>(creation: &Creation, pos: &BlockPos) -> Chunk<T> {
    match creation {
        Creation::Full(b) => {
            let v = T::unwrap_ref(b).map(|c| match c {
                Chunk::Full { value, .. } => *value,
                Chunk::Dense(a) => a.iter().next().copied().unwrap_or_default(),
            });
            Chunk::Full {
                shape: pos.shape.clone(),
                value: v.unwrap_or_default(),
            }
        }
        Creation::Arange { start, step } => Chunk::Dense(generate(pos, |i| {
            if T::DTYPE.is_float() {
                T::from_f64(start + step * i as f64)
            } else {
                T::from_i64((*start as i64).wrapping_add((*step as i64).wrapping_mul(i as i64)))
            }
        })),
        Creation::Linspace {
            start,
            stop,
            num,
            endpoint,
        } => {
            let div = if *endpoint {
                num.saturating_sub(1)
            } else {
                *num
            }
            .max(1) as f64;
            let step = (stop - start) / div;
            Chunk::Dense(generate(pos, |i| {
                if *endpoint && i as usize + 1 == *num && *num > 1 {
                    T::from_f64(*stop)
                } else {
                    T::from_f64(start + step * i as f64)
                }
            }))
        }
        Creation::Eye { k } => {
            let cols = pos.total.get(1).copied().unwrap_or(1) as u64;
            Chunk::Dense(generate(pos, |i| {
                let (r, c) = ((i / cols) as i64, (i % cols) as i64);
                T::from_i64((c - r == *k) as i64)
            }))
        }
        Creation::Random { seed, dist } => Chunk::Dense(match dist {
            Distribution::Uniform { low, high } => generate(pos, |i| {
                T::from_f64(low + (high - low) * random::uniform(*seed, i))
            }),
            Distribution::Normal { loc, scale } => {
                generate(pos, |i| T::from_f64(loc + scale * random::normal(*seed, i)))
            }
            Distribution::Integers { low, high } => {
                generate(pos, |i| T::from_i64(random::integer(*seed, i, *low, *high)))
            }
        }),
    }
}

/// Fills one block (the kernel behind [`ops::create`]).
pub(crate) fn create_block(creation: &Creation, dtype: DType, pos: &BlockPos) -> Block {
    match dtype {
        DType::F64 => Block::F64(make(creation, pos)),
        DType::F32 => Block::F32(make(creation, pos)),
        DType::I64 => Block::I64(make(creation, pos)),
        DType::I32 => Block::I32(make(creation, pos)),
        DType::U8 => Block::U8(make(creation, pos)),
        DType::Bool => Block::Bool(make(creation, pos)),
    }
}

fn created<T: Element>(creation: Creation, shape: Vec<usize>, chunks: ChunkSpec) -> Array<T> {
    match normalize(&shape, chunks, T::DTYPE.size()) {
        Ok(c) => Array::from_node(creation_node(creation, T::DTYPE, shape, c)),
        Err(e) => Array::error(e),
    }
}

/// An array of `value`, chunked automatically (call `.chunks(..)` to choose).
///
/// Its blocks are constants: nothing is allocated until something needs dense data.
pub fn full<T: Element>(shape: impl IntoShape, value: T) -> Array<T> {
    created(
        Creation::Full(Block::full(Vec::new(), value)),
        shape.into_shape(),
        Auto.into_spec(),
    )
}

/// An array of ones.
pub fn ones<T: Number>(shape: impl IntoShape) -> Array<T> {
    full(shape, T::ONE)
}

/// An array of zeros.
pub fn zeros<T: Number>(shape: impl IntoShape) -> Array<T> {
    full(shape, T::ZERO)
}

/// `start, start + step, …` up to (not including) `stop`.
pub fn arange<T: Number>(start: f64, stop: f64, step: f64) -> Array<T> {
    if step == 0.0 || !step.is_finite() {
        return Array::error(ArrayError::Argument {
            op: "arange",
            detail: format!("step must be a non-zero finite number, got {step}"),
        });
    }
    let n = ((stop - start) / step).ceil().max(0.0) as usize;
    created(Creation::Arange { start, step }, vec![n], Auto.into_spec())
}

/// `num` evenly spaced values from `start` to `stop` (inclusive when `endpoint`).
pub fn linspace<T: Float>(start: f64, stop: f64, num: usize, endpoint: bool) -> Array<T> {
    created(
        Creation::Linspace {
            start,
            stop,
            num,
            endpoint,
        },
        vec![num],
        Auto.into_spec(),
    )
}

/// An `n × m` array with ones on the `k`-th diagonal.
pub fn eye<T: Number>(n: usize, m: usize, k: i64) -> Array<T> {
    created(Creation::Eye { k }, vec![n, m], Auto.into_spec())
}

/// An array from an ndarray, cut into blocks as `chunks` says; each block is held in the
/// graph (Dask's `from_array`).
pub fn from_array<T: Element>(data: ArrayD<T>, chunks: impl IntoChunks) -> Array<T> {
    let shape = data.shape().to_vec();
    let chunks = match normalize(&shape, chunks.into_spec(), T::DTYPE.size()) {
        Ok(c) => c,
        Err(e) => return Array::error(e),
    };
    let mut t = Tokenizer::new();
    t.write_str("from_array");
    t.write_data(&data);
    t.write_data(&chunks);
    let token = t.finish();
    let node_name = "array";
    let grid = chunks.grid();
    let mut tasks = Vec::with_capacity(chunks.nblocks());
    let mut outputs = Vec::with_capacity(chunks.nblocks());
    for idx in chunks.indices() {
        let key = crate::array::block_key(node_name, token, &idx, &grid);
        let off = chunks.block_offset(&idx);
        let sh = chunks.block_shape(&idx);
        // Only this block's elements are copied (copying `data` for every block made
        // from_array quadratic in the number of blocks).
        let info: Vec<ndarray::SliceInfoElem> = off
            .iter()
            .zip(&sh)
            .map(|(&o, &s)| ndarray::SliceInfoElem::Slice {
                start: o as isize,
                end: Some((o + s) as isize),
                step: 1,
            })
            .collect();
        let part = Chunk::Dense(data.slice(info.as_slice()).to_owned());
        tasks.push((key, Task::value(Value::new(T::wrap(part)))));
        outputs.push(key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: Vec::new(),
    });
    Array::from_node(Node::new(
        node_name,
        shape,
        chunks,
        T::DTYPE,
        token,
        Source::Layer(layer),
    ))
}

/// A 1-d array from a `Vec`.
pub fn from_vec<T: Element>(data: Vec<T>, chunks: impl IntoChunks) -> Array<T> {
    let n = data.len();
    from_array(
        ArrayD::from_shape_vec(IxDyn(&[n]), data).expect("a vector is 1-d"),
        chunks,
    )
}

/// An array from blocks already in memory, row-major over the grid `chunks` describes (each
/// block held in the graph as it is, without copies). Blocks of other shapes than `chunks`
/// declares make an invalid array.
///
/// ```
/// use ndarray::{ArrayD, IxDyn};
/// use oxidask_array::{from_blocks, Chunks};
/// let b = |n| ArrayD::<f64>::zeros(IxDyn(&[n]));
/// let x = from_blocks(vec![b(2), b(3)], Chunks(vec![vec![2, 3]]));
/// assert_eq!(x.shape(), vec![5]);
/// ```
pub fn from_blocks<T: Element>(blocks: Vec<ArrayD<T>>, chunks: Chunks) -> Array<T> {
    if blocks.len() != chunks.nblocks() {
        return Array::error(ArrayError::Shapes {
            op: "from_blocks",
            detail: format!(
                "{} blocks for a grid of {:?} blocks",
                blocks.len(),
                chunks.grid()
            ),
        });
    }
    let shape: Vec<usize> = chunks.0.iter().map(|a| a.iter().sum()).collect();
    let mut t = Tokenizer::new();
    t.write_str("from_array");
    for (idx, b) in chunks.indices().zip(&blocks) {
        let want = chunks.block_shape(&idx);
        if b.shape() != want.as_slice() {
            return Array::error(ArrayError::Shapes {
                op: "from_blocks",
                detail: format!(
                    "block {idx:?} has shape {:?}, chunks say {want:?}",
                    b.shape()
                ),
            });
        }
        t.write_data(b);
    }
    t.write_data(&chunks);
    let token = t.finish();
    let node_name = "array";
    let grid = chunks.grid();
    let mut tasks = Vec::with_capacity(blocks.len());
    let mut outputs = Vec::with_capacity(blocks.len());
    for (idx, b) in chunks.indices().zip(blocks) {
        let key = crate::array::block_key(node_name, token, &idx, &grid);
        tasks.push((key, Task::value(Value::new(T::wrap(Chunk::Dense(b))))));
        outputs.push(key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: Vec::new(),
    });
    Array::from_node(Node::new(
        node_name,
        shape,
        chunks,
        T::DTYPE,
        token,
        Source::Layer(layer),
    ))
}

/// An array whose blocks are delayed [`Block`]s (results of array operations built by hand,
/// e.g. selected by a mask; handles with their type erased), row-major over the grid `chunks`
/// describes. The blocks are used as they are: each must have the shape and dtype declared.
pub fn from_block_delayed<T: Element>(blocks: Vec<Delayed<()>>, chunks: Chunks) -> Array<T> {
    let keys = blocks.iter().map(|b| b.key()).collect();
    delayed_blocks(
        "from_block_delayed",
        "blocks",
        &blocks,
        keys,
        chunks,
        |_, _, _, key| Task::alias(key),
    )
}

/// An array whose blocks are delayed results of the given shapes (Dask's `from_delayed` and
/// `block` together): `blocks` in row-major order over a grid described by `chunks`.
///
/// A block of another shape or dtype than declared fails the tasks that read it.
pub fn from_delayed<T: Element>(blocks: Vec<Delayed<ArrayD<T>>>, chunks: Chunks) -> Array<T> {
    let keys = blocks.iter().map(|b| b.key()).collect();
    delayed_blocks(
        "from_delayed",
        "from-delayed",
        &blocks,
        keys,
        chunks,
        |chunks, shape, idx, key| {
            let expect = Value::new(BlockPos {
                shape: chunks.block_shape(idx),
                offset: chunks.block_offset(idx),
                total: shape.to_vec(),
            });
            Task::call(
                ops::wrap_block::op(),
                [
                    Arg::Value(Value::new(T::DTYPE)),
                    Arg::Value(expect),
                    Arg::Key(key),
                ],
            )
        },
    )
}

/// The layer of an array made of delayed values, one per block of `chunks` in row-major order
/// (`keys[i]` is `blocks[i]`'s key): the blocks' own graphs, then a task per block made by
/// `block_task(chunks, shape, block index, delayed key)`, named `name` and tokenized as `op`.
fn delayed_blocks<T: Element, C: oxidask_core::Collection>(
    op: &'static str,
    name: &'static str,
    blocks: &[C],
    keys: Vec<oxidask_core::Key>,
    chunks: Chunks,
    block_task: impl Fn(&Chunks, &[usize], &[usize], oxidask_core::Key) -> Task,
) -> Array<T> {
    if keys.len() != chunks.nblocks() {
        return Array::error(ArrayError::Shapes {
            op: "from_delayed",
            detail: format!(
                "{} delayed blocks for a grid of {:?} blocks",
                keys.len(),
                chunks.grid()
            ),
        });
    }
    let shape: Vec<usize> = chunks.0.iter().map(|a| a.iter().sum()).collect();
    let mut t = Tokenizer::new();
    t.write_str(op);
    for k in &keys {
        t.write_token(k.token());
        t.write_str(k.prefix_str());
    }
    t.write_data(&chunks);
    let token = t.finish();
    let grid = chunks.grid();
    let mut graph = oxidask_core::Graph::new();
    for b in blocks {
        b.build_graph(&mut graph);
    }
    let mut tasks: Vec<(oxidask_core::Key, Task)> =
        graph.iter().map(|(k, t)| (*k, t.clone())).collect();
    let mut outputs = Vec::with_capacity(keys.len());
    for (idx, k) in chunks.indices().zip(keys) {
        let key = crate::array::block_key(name, token, &idx, &grid);
        tasks.push((key, block_task(&chunks, &shape, &idx, k)));
        outputs.push(key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: Vec::new(),
    });
    Array::from_node(Node::new(
        name,
        shape,
        chunks,
        T::DTYPE,
        token,
        Source::Layer(layer),
    ))
}

/// Random arrays, reproducible from a seed whatever the chunking.
///
/// ```
/// use oxidask_array::random::RandomState;
/// let rs = RandomState::new(42);
/// let x = rs.uniform::<f64>((100, 100), 0.0, 1.0).chunks(30);
/// let y = rs.uniform::<f64>((100, 100), 0.0, 1.0).chunks(50);
/// // Same values however chunked.
/// # use oxidask_core::Collection;
/// # let s = oxidask_core::compute::Inline;
/// assert_eq!(x.compute_with(&s).unwrap(), y.compute_with(&s).unwrap());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RandomState {
    seed: u64,
}

impl RandomState {
    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> RandomState {
        RandomState { seed }
    }

    /// A generator seeded from the clock and a counter (different every time).
    pub fn fresh() -> RandomState {
        RandomState {
            seed: Token::unique().as_u128() as u64,
        }
    }

    fn make<T: Element>(&self, shape: Vec<usize>, dist: Distribution) -> Array<T> {
        created(
            Creation::Random {
                seed: self.seed,
                dist,
            },
            shape,
            Auto.into_spec(),
        )
    }

    /// Uniform in `[low, high)`.
    pub fn uniform<T: Float>(&self, shape: impl IntoShape, low: f64, high: f64) -> Array<T> {
        self.make(shape.into_shape(), Distribution::Uniform { low, high })
    }

    /// Uniform in `[0, 1)` (NumPy's `random`).
    pub fn random<T: Float>(&self, shape: impl IntoShape) -> Array<T> {
        self.uniform(shape, 0.0, 1.0)
    }

    /// Normal with mean `loc` and standard deviation `scale`.
    pub fn normal<T: Float>(&self, shape: impl IntoShape, loc: f64, scale: f64) -> Array<T> {
        self.make(shape.into_shape(), Distribution::Normal { loc, scale })
    }

    /// Integers in `[low, high)`.
    pub fn integers<T: Number>(&self, shape: impl IntoShape, low: i64, high: i64) -> Array<T> {
        if high <= low {
            return Array::error(ArrayError::Argument {
                op: "integers",
                detail: format!("high ({high}) must be greater than low ({low})"),
            });
        }
        self.make(shape.into_shape(), Distribution::Integers { low, high })
    }
}

/// Uniform random numbers in `[0, 1)` with a fresh seed (`da.random.random`).
pub fn random<T: Float>(shape: impl IntoShape) -> Array<T> {
    RandomState::fresh().random(shape)
}
