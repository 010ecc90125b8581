//! Elementwise operations: arithmetic with NumPy broadcasting, comparisons, `where`, math
//! functions and `astype`, fused into one task per output block.
//!
//! Building `a op b` makes an elementwise node whose expression refers to its inputs. When an
//! input is itself a pending elementwise node with the same shape and chunks, its expression
//! is inlined instead, so `((a + b) * 2).sqrt()` is one expression over `a` and `b` and one
//! task per block. Inputs with different chunkings are rechunked to their common refinement.

use std::ops;
use std::sync::Arc;

use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Task, Value};

use crate::array::{Array, Input, Layer, Node, Source};
use crate::chunks::Chunks;
use crate::element::{DType, Element, Float, Number};
use crate::error::ArrayError;
use crate::expr::{broadcast_shapes, BinaryOp, Expr, UnaryOp};

/// Expressions larger than this are not inlined into their users (a node used many times
/// would otherwise be copied into every user's expression).
const MAX_INLINE_NODES: usize = 64;

fn expr_size(e: &Expr) -> usize {
    match e {
        Expr::Input(_) | Expr::Literal(_) => 1,
        Expr::Unary(_, x) | Expr::Cast(_, x) => 1 + expr_size(x),
        Expr::Binary(_, a, b) => 1 + expr_size(a) + expr_size(b),
        Expr::Where(c, a, b) => 1 + expr_size(c) + expr_size(a) + expr_size(b),
    }
}

/// The common refinement of several block-length lists over one axis.
fn refine(lists: &[&Vec<usize>]) -> Vec<usize> {
    let mut cuts: Vec<usize> = Vec::new();
    for l in lists {
        let mut at = 0;
        for &c in *l {
            at += c;
            cuts.push(at);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut prev = 0;
    let mut out = Vec::with_capacity(cuts.len());
    for c in cuts {
        if c > prev {
            out.push(c - prev);
            prev = c;
        }
    }
    if out.is_empty() {
        out.push(0);
    }
    out
}

/// Builds the node for `expr` over `inputs` (indices in `expr` refer to `inputs`).
pub(crate) fn elementwise_node(
    op_name: &'static str,
    expr: Expr,
    inputs: Vec<Arc<Node>>,
    dtype: DType,
) -> Result<Arc<Node>, ArrayError> {
    // Output shape: broadcast of every input.
    let mut shape: Vec<usize> = Vec::new();
    for n in &inputs {
        shape = broadcast_shapes(&shape, &n.shape).ok_or_else(|| ArrayError::Broadcast {
            op: op_name,
            a: shape.clone(),
            b: n.shape.clone(),
        })?;
    }
    let nd = shape.len();
    // Output chunks: per axis, the refinement of the inputs that span it.
    let mut out_chunks = Vec::with_capacity(nd);
    for (axis, &len) in shape.iter().enumerate() {
        let lists: Vec<&Vec<usize>> = inputs
            .iter()
            .filter_map(|n| {
                let off = nd - n.shape.len();
                (axis >= off && n.shape[axis - off] == len).then(|| &n.chunks.0[axis - off])
            })
            .collect();
        out_chunks.push(if lists.is_empty() {
            vec![len]
        } else {
            refine(&lists)
        });
    }
    // Rechunk inputs to the output chunks where they span the axis.
    let mut aligned = Vec::with_capacity(inputs.len());
    for n in inputs {
        let off = nd - n.shape.len();
        let want: Vec<Vec<usize>> = (0..n.shape.len())
            .map(|a| {
                if n.shape[a] == shape[a + off] {
                    out_chunks[a + off].clone()
                } else {
                    n.chunks.0[a].clone()
                }
            })
            .collect();
        aligned.push(if want == n.chunks.0 {
            n
        } else {
            crate::rechunk::rechunk_node(&n, Chunks(want))?
        });
    }
    let chunks = Chunks(out_chunks);
    // Inline pending elementwise inputs of the same shape and chunks, read transposes of the
    // output's shape in place (as permuted views), and dedupe inputs.
    let mut new_inputs: Vec<Input> = Vec::new();
    let position = |input: &Input, list: &mut Vec<Input>| -> u32 {
        match list.iter().position(|(m, p)| {
            (Arc::ptr_eq(m, &input.0) || m.token == input.0.token) && *p == input.1
        }) {
            Some(p) => p as u32,
            None => {
                list.push(input.clone());
                (list.len() - 1) as u32
            }
        }
    };
    let mut replacement: Vec<Expr> = Vec::with_capacity(aligned.len());
    for n in &aligned {
        match &n.source {
            Source::Elementwise {
                expr: inner,
                inputs: inner_inputs,
            } if n.shape == shape && n.chunks == chunks && expr_size(inner) <= MAX_INLINE_NODES => {
                let map: Vec<u32> = inner_inputs
                    .iter()
                    .map(|m| position(m, &mut new_inputs))
                    .collect();
                replacement.push(inner.remap(&|i| Expr::Input(map[i as usize])));
            }
            Source::Transpose { input, perm } if n.shape == shape && n.chunks == chunks => {
                replacement.push(Expr::Input(position(
                    &(input.clone(), Some(perm.clone())),
                    &mut new_inputs,
                )));
            }
            _ => replacement.push(Expr::Input(position(&(n.clone(), None), &mut new_inputs))),
        }
    }
    let expr = expr.remap(&|i| replacement[i as usize].clone());
    let mut t = Tokenizer::new();
    t.write_str("elemwise");
    t.write_data(&expr);
    for (n, p) in &new_inputs {
        t.write_token(n.token);
        t.write_data(p);
    }
    t.write_data(&chunks);
    Ok(Node::new(
        expr.name(),
        shape,
        chunks,
        dtype,
        t.finish(),
        Source::Elementwise {
            expr,
            inputs: new_inputs,
        },
    ))
}

/// The keys of the input blocks that output block `idx` of an elementwise node reads.
pub(crate) fn input_keys(node: &Node, inputs: &[Input], idx: &[usize]) -> Vec<Arg> {
    let nd = node.shape.len();
    inputs
        .iter()
        .map(|(n, perm)| {
            let in_idx: Vec<usize> = match perm {
                // A permuted input has the output's shape: input axis p[k] is output axis k.
                Some(p) => {
                    let mut v = vec![0; p.len()];
                    for (k, &a) in p.iter().enumerate() {
                        v[a] = idx[k];
                    }
                    v
                }
                None => {
                    let off = nd - n.shape.len();
                    (0..n.shape.len())
                        .map(|a| {
                            if n.chunks.0[a].len() == 1 {
                                0
                            } else {
                                idx[a + off]
                            }
                        })
                        .collect()
                }
            };
            Arg::Key(n.block(&in_idx))
        })
        .collect()
}

/// One [`ops::elemwise`](crate::ops::elemwise) task per output block.
pub(crate) fn elementwise_layer(node: &Node, expr: &Expr, inputs: &[Input]) -> Layer {
    let perms: Vec<Option<Vec<usize>>> = inputs.iter().map(|(_, p)| p.clone()).collect();
    let spec = Value::new((expr.clone(), perms));
    let layers: Vec<_> = inputs.iter().map(|(n, _)| n.layer()).collect();
    let mut tasks = Vec::with_capacity(node.chunks.nblocks());
    let mut outputs = Vec::with_capacity(node.chunks.nblocks());
    for idx in node.chunks.indices() {
        let keys = input_keys(node, inputs, &idx);
        let key = node.key(&idx);
        tasks.push((
            key,
            Task::call(
                crate::ops::elemwise::op(),
                [Arg::Value(spec.clone()), Arg::List(keys)],
            ),
        ));
        outputs.push(key);
    }
    Layer {
        tasks,
        outputs,
        deps: layers,
    }
}

impl<T: Element> Array<T> {
    /// An elementwise operation over `self` and `others`, as an expression over inputs
    /// `0..=others.len()`.
    pub(crate) fn elementwise<U: Element>(
        &self,
        name: &'static str,
        others: &[Result<Arc<Node>, ArrayError>],
        expr: Expr,
    ) -> Array<U> {
        let mut nodes = Vec::with_capacity(1 + others.len());
        match self.node() {
            Ok(n) => nodes.push(n.clone()),
            Err(e) => return Array::error(e),
        }
        for o in others {
            match o {
                Ok(n) => nodes.push(n.clone()),
                Err(e) => return Array::error(e.clone()),
            }
        }
        Array::from_result(elementwise_node(name, expr, nodes, U::DTYPE))
    }

    fn unary<U: Element>(&self, op: UnaryOp) -> Array<U> {
        self.elementwise(op.name(), &[], Expr::Unary(op, Box::new(Expr::Input(0))))
    }

    fn binary<U: Element>(&self, op: BinaryOp, other: &Array<T>) -> Array<U> {
        self.elementwise(
            op.name(),
            &[other.node().cloned()],
            Expr::Binary(op, Box::new(Expr::Input(0)), Box::new(Expr::Input(1))),
        )
    }

    fn binary_scalar<U: Element>(&self, op: BinaryOp, v: T, scalar_first: bool) -> Array<U> {
        let (a, b) = if scalar_first {
            (Expr::scalar(v), Expr::Input(0))
        } else {
            (Expr::Input(0), Expr::scalar(v))
        };
        self.elementwise(op.name(), &[], Expr::Binary(op, Box::new(a), Box::new(b)))
    }

    /// An elementwise operation of one argument with a result of `U` (the caller checks
    /// [`UnaryOp::result`]; a mismatch fails when computed).
    ///
    /// ```
    /// use oxidask_array::{ones, UnaryOp};
    /// let x = ones::<f64>(4).apply_unary::<f64>(UnaryOp::Sqrt);
    /// assert_eq!(x.shape(), vec![4]);
    /// ```
    pub fn apply_unary<U: Element>(&self, op: UnaryOp) -> Array<U> {
        self.unary(op)
    }

    /// An elementwise operation of two arrays, broadcast, with a result of `U` (see
    /// [`BinaryOp::result`]).
    pub fn apply_binary<U: Element>(&self, op: BinaryOp, other: &Array<T>) -> Array<U> {
        self.binary(op, other)
    }

    /// An elementwise operation of the array and a scalar (`v op x` when `scalar_first`).
    pub fn apply_binary_scalar<U: Element>(
        &self,
        op: BinaryOp,
        v: T,
        scalar_first: bool,
    ) -> Array<U> {
        self.binary_scalar(op, v, scalar_first)
    }

    /// Converts every element (NumPy's `astype`).
    pub fn astype<U: Element>(&self) -> Array<U> {
        if T::DTYPE == U::DTYPE {
            return Array::from_result(self.node().cloned());
        }
        self.elementwise(
            "astype",
            &[],
            Expr::Cast(U::DTYPE, Box::new(Expr::Input(0))),
        )
    }

    /// `self == other`, elementwise.
    pub fn eq(&self, other: &Array<T>) -> Array<bool> {
        self.binary(BinaryOp::Eq, other)
    }
    /// `self != other`, elementwise.
    pub fn ne(&self, other: &Array<T>) -> Array<bool> {
        self.binary(BinaryOp::Ne, other)
    }
    /// `self < other`, elementwise.
    pub fn lt(&self, other: &Array<T>) -> Array<bool> {
        self.binary(BinaryOp::Lt, other)
    }
    /// `self <= other`, elementwise.
    pub fn le(&self, other: &Array<T>) -> Array<bool> {
        self.binary(BinaryOp::Le, other)
    }
    /// `self > other`, elementwise.
    pub fn gt(&self, other: &Array<T>) -> Array<bool> {
        self.binary(BinaryOp::Gt, other)
    }
    /// `self >= other`, elementwise.
    pub fn ge(&self, other: &Array<T>) -> Array<bool> {
        self.binary(BinaryOp::Ge, other)
    }
    /// `self == v`, elementwise.
    pub fn eq_scalar(&self, v: T) -> Array<bool> {
        self.binary_scalar(BinaryOp::Eq, v, false)
    }
    /// `self < v`, elementwise.
    pub fn lt_scalar(&self, v: T) -> Array<bool> {
        self.binary_scalar(BinaryOp::Lt, v, false)
    }
    /// `self <= v`, elementwise.
    pub fn le_scalar(&self, v: T) -> Array<bool> {
        self.binary_scalar(BinaryOp::Le, v, false)
    }
    /// `self > v`, elementwise.
    pub fn gt_scalar(&self, v: T) -> Array<bool> {
        self.binary_scalar(BinaryOp::Gt, v, false)
    }
    /// `self >= v`, elementwise.
    pub fn ge_scalar(&self, v: T) -> Array<bool> {
        self.binary_scalar(BinaryOp::Ge, v, false)
    }
}

/// `cond ? a : b` elementwise, with broadcasting (NumPy's `where`).
pub fn where_<T: Element>(cond: &Array<bool>, a: &Array<T>, b: &Array<T>) -> Array<T> {
    cond.elementwise(
        "where",
        &[a.node().cloned(), b.node().cloned()],
        Expr::Where(
            Box::new(Expr::Input(0)),
            Box::new(Expr::Input(1)),
            Box::new(Expr::Input(2)),
        ),
    )
}

/// `cond ? a : b` with scalars for the branches.
pub fn where_scalar<T: Element>(cond: &Array<bool>, a: T, b: T) -> Array<T> {
    cond.elementwise(
        "where",
        &[],
        Expr::Where(
            Box::new(Expr::Input(0)),
            Box::new(Expr::scalar(a)),
            Box::new(Expr::scalar(b)),
        ),
    )
}

impl<T: Number> Array<T> {
    /// `|x|`.
    pub fn abs(&self) -> Array<T> {
        self.unary(UnaryOp::Abs)
    }
    /// `x²`.
    pub fn square(&self) -> Array<T> {
        self.unary(UnaryOp::Square)
    }
    /// -1, 0 or 1.
    pub fn sign(&self) -> Array<T> {
        self.unary(UnaryOp::Sign)
    }
    /// `x ** p`.
    pub fn powf(&self, p: T) -> Array<T> {
        self.binary_scalar(BinaryOp::Pow, p, false)
    }
    /// `x ** y` elementwise.
    pub fn power(&self, y: &Array<T>) -> Array<T> {
        self.binary(BinaryOp::Pow, y)
    }
    /// Elementwise maximum (NaN wins).
    pub fn maximum(&self, y: &Array<T>) -> Array<T> {
        self.binary(BinaryOp::Maximum, y)
    }
    /// Elementwise minimum (NaN wins).
    pub fn minimum(&self, y: &Array<T>) -> Array<T> {
        self.binary(BinaryOp::Minimum, y)
    }
    /// Values limited to `[lo, hi]`.
    pub fn clip(&self, lo: T, hi: T) -> Array<T> {
        self.elementwise(
            "clip",
            &[],
            Expr::Binary(
                BinaryOp::Minimum,
                Box::new(Expr::Binary(
                    BinaryOp::Maximum,
                    Box::new(Expr::Input(0)),
                    Box::new(Expr::scalar(lo)),
                )),
                Box::new(Expr::scalar(hi)),
            ),
        )
    }
}

macro_rules! float_fns {
    ($($name:ident => $op:ident, $doc:literal;)*) => {
        impl<T: Float> Array<T> {
            $(
                #[doc = $doc]
                pub fn $name(&self) -> Array<T> {
                    self.unary(UnaryOp::$op)
                }
            )*

            /// True where NaN.
            pub fn isnan(&self) -> Array<bool> {
                self.unary(UnaryOp::IsNan)
            }

            /// True where finite.
            pub fn isfinite(&self) -> Array<bool> {
                self.unary(UnaryOp::IsFinite)
            }
        }
    };
}

float_fns! {
    sqrt => Sqrt, "Square root.";
    exp => Exp, "`e^x`.";
    expm1 => Expm1, "`e^x - 1`, accurate near 0.";
    log => Log, "Natural logarithm.";
    log2 => Log2, "Base-2 logarithm.";
    log10 => Log10, "Base-10 logarithm.";
    log1p => Log1p, "`ln(1 + x)`, accurate near 0.";
    sin => Sin, "Sine.";
    cos => Cos, "Cosine.";
    tan => Tan, "Tangent.";
    arcsin => Arcsin, "Inverse sine.";
    arccos => Arccos, "Inverse cosine.";
    arctan => Arctan, "Inverse tangent.";
    sinh => Sinh, "Hyperbolic sine.";
    cosh => Cosh, "Hyperbolic cosine.";
    tanh => Tanh, "Hyperbolic tangent.";
    floor => Floor, "Round down.";
    ceil => Ceil, "Round up.";
    round => Round, "Round to nearest, ties to even (as NumPy).";
}

impl Array<bool> {
    /// Logical and.
    pub fn and(&self, other: &Array<bool>) -> Array<bool> {
        self.binary(BinaryOp::And, other)
    }
    /// Logical or.
    pub fn or(&self, other: &Array<bool>) -> Array<bool> {
        self.binary(BinaryOp::Or, other)
    }
    /// Logical exclusive or.
    pub fn xor(&self, other: &Array<bool>) -> Array<bool> {
        self.binary(BinaryOp::Xor, other)
    }
}

impl ops::Not for &Array<bool> {
    type Output = Array<bool>;
    fn not(self) -> Array<bool> {
        self.unary(UnaryOp::Not)
    }
}

impl<T: Number> ops::Neg for &Array<T> {
    type Output = Array<T>;
    fn neg(self) -> Array<T> {
        self.unary(UnaryOp::Neg)
    }
}

impl<T: Number> ops::Neg for Array<T> {
    type Output = Array<T>;
    fn neg(self) -> Array<T> {
        self.unary(UnaryOp::Neg)
    }
}

macro_rules! arith {
    ($($trait:ident $method:ident $op:ident;)*) => {$(
        impl<T: Number> ops::$trait<&Array<T>> for &Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: &Array<T>) -> Array<T> {
                self.binary(BinaryOp::$op, rhs)
            }
        }
        impl<T: Number> ops::$trait<Array<T>> for Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: Array<T>) -> Array<T> {
                self.binary(BinaryOp::$op, &rhs)
            }
        }
        impl<T: Number> ops::$trait<&Array<T>> for Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: &Array<T>) -> Array<T> {
                self.binary(BinaryOp::$op, rhs)
            }
        }
        impl<T: Number> ops::$trait<Array<T>> for &Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: Array<T>) -> Array<T> {
                self.binary(BinaryOp::$op, &rhs)
            }
        }
        impl<T: Number> ops::$trait<T> for &Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: T) -> Array<T> {
                self.binary_scalar(BinaryOp::$op, rhs, false)
            }
        }
        impl<T: Number> ops::$trait<T> for Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: T) -> Array<T> {
                self.binary_scalar(BinaryOp::$op, rhs, false)
            }
        }
    )*};
}

arith! {
    Add add Add;
    Sub sub Sub;
    Mul mul Mul;
    Div div Div;
    Rem rem Rem;
}

macro_rules! scalar_left {
    ($($t:ty),*) => {$(
        impl ops::Add<&Array<$t>> for $t {
            type Output = Array<$t>;
            fn add(self, rhs: &Array<$t>) -> Array<$t> { rhs.binary_scalar(BinaryOp::Add, self, true) }
        }
        impl ops::Sub<&Array<$t>> for $t {
            type Output = Array<$t>;
            fn sub(self, rhs: &Array<$t>) -> Array<$t> { rhs.binary_scalar(BinaryOp::Sub, self, true) }
        }
        impl ops::Mul<&Array<$t>> for $t {
            type Output = Array<$t>;
            fn mul(self, rhs: &Array<$t>) -> Array<$t> { rhs.binary_scalar(BinaryOp::Mul, self, true) }
        }
        impl ops::Div<&Array<$t>> for $t {
            type Output = Array<$t>;
            fn div(self, rhs: &Array<$t>) -> Array<$t> { rhs.binary_scalar(BinaryOp::Div, self, true) }
        }
        impl ops::Add<Array<$t>> for $t {
            type Output = Array<$t>;
            fn add(self, rhs: Array<$t>) -> Array<$t> { rhs.binary_scalar(BinaryOp::Add, self, true) }
        }
        impl ops::Sub<Array<$t>> for $t {
            type Output = Array<$t>;
            fn sub(self, rhs: Array<$t>) -> Array<$t> { rhs.binary_scalar(BinaryOp::Sub, self, true) }
        }
        impl ops::Mul<Array<$t>> for $t {
            type Output = Array<$t>;
            fn mul(self, rhs: Array<$t>) -> Array<$t> { rhs.binary_scalar(BinaryOp::Mul, self, true) }
        }
        impl ops::Div<Array<$t>> for $t {
            type Output = Array<$t>;
            fn div(self, rhs: Array<$t>) -> Array<$t> { rhs.binary_scalar(BinaryOp::Div, self, true) }
        }
    )*};
}

scalar_left!(f64, f32, i64, i32, u8);
