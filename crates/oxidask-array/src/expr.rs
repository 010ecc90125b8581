//! Elementwise expressions: what one fused elementwise task computes per block.
//!
//! Chained elementwise operations (`(&a + &b).sqrt() * 2.0`) build one [`Expr`] over the
//! input arrays instead of one layer per step, so the graph has one task per block and no
//! intermediate blocks are stored between steps. The expression is data (it travels to remote
//! workers with the task).
//!
//! Evaluation keeps constant chunks constant (`ones * 3` allocates nothing) and works in place
//! when a step's input is an intermediate of the right shape.

use ndarray::{ArrayD, IxDyn, Zip};

use crate::block::{Block, Chunk};
use crate::element::{DType, Element, Float, Number};

/// An elementwise operation of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, oxidask_core::Data)]
#[data(crate = oxidask_core)]
#[allow(missing_docs)]
pub enum UnaryOp {
    Neg,
    Abs,
    Square,
    Sign,
    Not,
    Sqrt,
    Exp,
    Expm1,
    Log,
    Log2,
    Log10,
    Log1p,
    Sin,
    Cos,
    Tan,
    Arcsin,
    Arccos,
    Arctan,
    Sinh,
    Cosh,
    Tanh,
    Floor,
    Ceil,
    Round,
    IsNan,
    IsFinite,
}

/// An elementwise operation of two arguments (broadcast against each other).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, oxidask_core::Data)]
#[data(crate = oxidask_core)]
#[allow(missing_docs)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
    Maximum,
    Minimum,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
}

impl UnaryOp {
    /// NumPy's name, used as the key prefix.
    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "negative",
            Abs => "absolute",
            Square => "square",
            Sign => "sign",
            Not => "invert",
            Sqrt => "sqrt",
            Exp => "exp",
            Expm1 => "expm1",
            Log => "log",
            Log2 => "log2",
            Log10 => "log10",
            Log1p => "log1p",
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Arcsin => "arcsin",
            Arccos => "arccos",
            Arctan => "arctan",
            Sinh => "sinh",
            Cosh => "cosh",
            Tanh => "tanh",
            Floor => "floor",
            Ceil => "ceil",
            Round => "round",
            IsNan => "isnan",
            IsFinite => "isfinite",
        }
    }

    /// The result dtype for an input of `dtype`, or `None` if the operation does not apply.
    pub fn result(self, dtype: DType) -> Option<DType> {
        use UnaryOp::*;
        match self {
            Neg | Abs | Square | Sign => (dtype != DType::Bool).then_some(dtype),
            Not => (dtype == DType::Bool).then_some(dtype),
            IsNan | IsFinite => dtype.is_float().then_some(DType::Bool),
            _ => dtype.is_float().then_some(dtype),
        }
    }
}

impl BinaryOp {
    /// NumPy's name, used as the key prefix.
    pub fn name(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Sub => "subtract",
            Mul => "multiply",
            Div => "divide",
            Rem => "mod",
            Pow => "power",
            Maximum => "maximum",
            Minimum => "minimum",
            Eq => "equal",
            Ne => "not_equal",
            Lt => "less",
            Le => "less_equal",
            Gt => "greater",
            Ge => "greater_equal",
            And => "logical_and",
            Or => "logical_or",
            Xor => "logical_xor",
        }
    }

    /// The result dtype for operands of `dtype`, or `None` if the operation does not apply.
    pub fn result(self, dtype: DType) -> Option<DType> {
        use BinaryOp::*;
        match self {
            Add | Sub | Mul | Div | Rem | Pow | Maximum | Minimum => {
                (dtype != DType::Bool).then_some(dtype)
            }
            Eq | Ne | Lt | Le | Gt | Ge => Some(DType::Bool),
            And | Or | Xor => (dtype == DType::Bool).then_some(DType::Bool),
        }
    }
}

/// An elementwise expression over the blocks of a task's inputs.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Expr {
    /// The block of input `i`.
    Input(u32),
    /// A constant (a 0-d constant block, broadcast to anything).
    Literal(Block),
    /// One-argument operation.
    Unary(UnaryOp, Box<Expr>),
    /// Two-argument operation with broadcasting.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `where(cond, a, b)`.
    Where(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `astype`.
    Cast(DType, Box<Expr>),
}

impl Expr {
    /// A literal scalar.
    pub fn scalar<T: Element>(v: T) -> Expr {
        Expr::Literal(Block::full(Vec::new(), v))
    }

    /// The name of the outermost operation (the key prefix of its layer).
    pub fn name(&self) -> &'static str {
        match self {
            Expr::Input(_) => "identity",
            Expr::Literal(_) => "full",
            Expr::Unary(op, _) => op.name(),
            Expr::Binary(op, _, _) => op.name(),
            Expr::Where(..) => "where",
            Expr::Cast(..) => "astype",
        }
    }

    /// The same expression with every input index `i` replaced by `map(i)`.
    pub fn remap(&self, map: &dyn Fn(u32) -> Expr) -> Expr {
        match self {
            Expr::Input(i) => map(*i),
            Expr::Literal(b) => Expr::Literal(b.clone()),
            Expr::Unary(op, x) => Expr::Unary(*op, Box::new(x.remap(map))),
            Expr::Binary(op, a, b) => {
                Expr::Binary(*op, Box::new(a.remap(map)), Box::new(b.remap(map)))
            }
            Expr::Where(c, a, b) => Expr::Where(
                Box::new(c.remap(map)),
                Box::new(a.remap(map)),
                Box::new(b.remap(map)),
            ),
            Expr::Cast(d, x) => Expr::Cast(*d, Box::new(x.remap(map))),
        }
    }
}

/// Why an expression could not be evaluated (a graph built wrongly; never user input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// Input index out of range.
    #[error("expression reads input {index} but the task has {count}")]
    MissingInput {
        /// The index read.
        index: u32,
        /// Inputs present.
        count: usize,
    },
    /// Operand shapes do not broadcast.
    #[error("shapes {a:?} and {b:?} do not broadcast")]
    Broadcast {
        /// One shape.
        a: Vec<usize>,
        /// The other.
        b: Vec<usize>,
    },
    /// An operation got a dtype it does not apply to.
    #[error("`{op}` does not apply to {dtype} (or to mixed dtypes {dtype}/{other})")]
    DType {
        /// The operation.
        op: &'static str,
        /// The dtype found.
        dtype: DType,
        /// The other operand's dtype.
        other: DType,
    },
}

/// NumPy broadcasting of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// A step's value: an input block (borrowed, possibly seen through a permutation of its
/// axes) or an intermediate (owned, reusable in place).
enum Val<'a> {
    Ref(&'a Block, Option<&'a [usize]>, Option<Window>),
    Own(Block),
}

/// Rows `start..end` of output axis 0: inputs that span that axis are read only there (a
/// fused reduction evaluates the expression tile by tile instead of building whole blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The output block's number of dimensions.
    pub ndim: usize,
    /// The output block's length along axis 0.
    pub rows: usize,
    /// First row.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
}

impl Window {
    fn applies(&self, shape: &[usize]) -> bool {
        shape.len() == self.ndim && self.ndim > 0 && shape[0] == self.rows && self.rows > 1
    }
}

impl Val<'_> {
    fn dtype(&self) -> DType {
        match self {
            Val::Ref(b, ..) => b.dtype(),
            Val::Own(b) => b.dtype(),
        }
    }

    fn shape(&self) -> Vec<usize> {
        match self {
            Val::Ref(b, perm, window) => {
                let mut s: Vec<usize> = match perm {
                    None => b.shape().to_vec(),
                    Some(p) => p.iter().map(|&a| b.shape()[a]).collect(),
                };
                if let Some(w) = window {
                    if w.applies(&s) {
                        s[0] = w.end - w.start;
                    }
                }
                s
            }
            Val::Own(b) => b.shape().to_vec(),
        }
    }

    fn into_block(self) -> Block {
        match self {
            Val::Ref(b, None, None) => b.clone(),
            Val::Ref(b, perm, window) => {
                crate::block::map_chunk!(b, c => match arg_of(c, perm, window) {
                    Arg::Full(shape, value) => Chunk::Full { shape, value },
                    Arg::View(v) => Chunk::Dense(v.to_owned()),
                    Arg::Own(a) => Chunk::Dense(a),
                })
            }
            Val::Own(b) => b,
        }
    }
}

/// A chunk argument: a constant, borrowed data (a view, maybe with permuted axes), or owned
/// data that can be reused for the result.
enum Arg<'a, T> {
    Full(Vec<usize>, T),
    View(ndarray::ArrayViewD<'a, T>),
    Own(ArrayD<T>),
}

impl<T: Element> Arg<'_, T> {
    fn scalar(&self) -> Option<T> {
        match self {
            Arg::Full(_, v) => Some(*v),
            _ => None,
        }
    }

    fn view(&self) -> Option<ndarray::ArrayViewD<'_, T>> {
        match self {
            Arg::Full(..) => None,
            Arg::View(v) => Some(v.view()),
            Arg::Own(a) => Some(a.view()),
        }
    }
}

fn arg_of<'a, T: Element>(
    c: &'a Chunk<T>,
    perm: Option<&[usize]>,
    window: Option<Window>,
) -> Arg<'a, T> {
    match c {
        Chunk::Full { shape, value } => {
            let mut s: Vec<usize> = match perm {
                None => shape.clone(),
                Some(p) => p.iter().map(|&a| shape[a]).collect(),
            };
            if let Some(w) = window {
                if w.applies(&s) {
                    s[0] = w.end - w.start;
                }
            }
            Arg::Full(s, *value)
        }
        Chunk::Dense(a) => {
            let mut v = match perm {
                None => a.view(),
                Some(p) => a.view().permuted_axes(IxDyn(p)),
            };
            if let Some(w) = window {
                if w.applies(v.shape()) {
                    v.slice_axis_inplace(ndarray::Axis(0), ndarray::Slice::from(w.start..w.end));
                }
            }
            Arg::View(v)
        }
    }
}

fn arg<'a, T: Element>(v: Val<'a>) -> Arg<'a, T> {
    match v {
        Val::Ref(b, perm, window) => arg_of(
            T::unwrap_ref(b).expect("dtype checked by the caller"),
            perm,
            window,
        ),
        Val::Own(b) => {
            match T::unwrap(b).unwrap_or_else(|_| unreachable!("dtype checked by the caller")) {
                Chunk::Full { shape, value } => Arg::Full(shape, value),
                Chunk::Dense(a) => Arg::Own(a),
            }
        }
    }
}

/// Evaluates `expr` with `inputs` (one block per input array).
pub fn evaluate(expr: &Expr, inputs: &[&Block]) -> Result<Block, EvalError> {
    evaluate_with(expr, inputs, &[])
}

/// Evaluates `expr` with inputs seen through axis permutations (`perms[i]`, when present and
/// `Some`, permutes input `i`'s axes: a transpose read in place, not copied).
pub fn evaluate_with(
    expr: &Expr,
    inputs: &[&Block],
    perms: &[Option<Vec<usize>>],
) -> Result<Block, EvalError> {
    eval(expr, inputs, perms, None).map(Val::into_block)
}

/// Evaluates only rows `window.start..window.end` of output axis 0.
pub fn evaluate_window(
    expr: &Expr,
    inputs: &[&Block],
    perms: &[Option<Vec<usize>>],
    window: Window,
) -> Result<Block, EvalError> {
    eval(expr, inputs, perms, Some(window)).map(Val::into_block)
}

fn eval<'a>(
    expr: &Expr,
    inputs: &[&'a Block],
    perms: &'a [Option<Vec<usize>>],
    window: Option<Window>,
) -> Result<Val<'a>, EvalError> {
    Ok(match expr {
        Expr::Input(i) => {
            let block = inputs
                .get(*i as usize)
                .copied()
                .ok_or(EvalError::MissingInput {
                    index: *i,
                    count: inputs.len(),
                })?;
            let perm = perms.get(*i as usize).and_then(|p| p.as_deref());
            if let Some(p) = perm {
                if p.len() != block.shape().len() {
                    return Err(EvalError::Broadcast {
                        a: block.shape().to_vec(),
                        b: p.to_vec(),
                    });
                }
            }
            Val::Ref(block, perm, window)
        }
        Expr::Literal(b) => Val::Own(b.clone()),
        Expr::Unary(op, x) => Val::Own(unary(*op, eval(x, inputs, perms, window)?)?),
        Expr::Binary(op, a, b) => Val::Own(binary(
            *op,
            eval(a, inputs, perms, window)?,
            eval(b, inputs, perms, window)?,
        )?),
        Expr::Where(c, a, b) => Val::Own(where_(
            eval(c, inputs, perms, window)?,
            eval(a, inputs, perms, window)?,
            eval(b, inputs, perms, window)?,
        )?),
        Expr::Cast(d, x) => {
            let v = eval(x, inputs, perms, window)?;
            if v.dtype() == *d {
                v
            } else {
                Val::Own(cast_val(v, *d))
            }
        }
    })
}

/// Applies `f` to every element, in place when the data is owned.
fn map_same<T: Element>(a: Arg<'_, T>, f: impl Fn(T) -> T) -> Chunk<T> {
    match a {
        Arg::Full(shape, value) => Chunk::Full {
            shape,
            value: f(value),
        },
        Arg::View(v) => Chunk::Dense(v.mapv(f)),
        Arg::Own(mut a) => {
            a.mapv_inplace(f);
            Chunk::Dense(a)
        }
    }
}

/// Applies `f` to every element into a new element type.
fn map_to<T: Element, U: Element>(a: &Arg<'_, T>, f: impl Fn(T) -> U) -> Chunk<U> {
    match a {
        Arg::Full(shape, value) => Chunk::Full {
            shape: shape.clone(),
            value: f(*value),
        },
        Arg::View(v) => Chunk::Dense(v.mapv(f)),
        Arg::Own(a) => Chunk::Dense(a.mapv(f)),
    }
}

fn float_unary<T: Float>(op: UnaryOp, a: Arg<'_, T>) -> Chunk<T> {
    use UnaryOp::*;
    macro_rules! each {
        ($($op:ident => $f:expr),*) => {
            match op {
                $($op => map_same(a, |x| T::map_f64(x, $f)),)*
                _ => unreachable!("not a float function: {op:?}"),
            }
        };
    }
    each!(
        Sqrt => f64::sqrt,
        Exp => f64::exp,
        Expm1 => f64::exp_m1,
        Log => f64::ln,
        Log2 => f64::log2,
        Log10 => f64::log10,
        Log1p => f64::ln_1p,
        Sin => f64::sin,
        Cos => f64::cos,
        Tan => f64::tan,
        Arcsin => f64::asin,
        Arccos => f64::acos,
        Arctan => f64::atan,
        Sinh => f64::sinh,
        Cosh => f64::cosh,
        Tanh => f64::tanh,
        Floor => f64::floor,
        Ceil => f64::ceil,
        Round => f64::round_ties_even
    )
}

fn numeric_unary<T: Number>(op: UnaryOp, a: Arg<'_, T>) -> Chunk<T> {
    use UnaryOp::*;
    match op {
        Neg => map_same(a, T::neg),
        Abs => map_same(a, T::abs),
        Square => map_same(a, |x| T::mul(x, x)),
        Sign => map_same(a, |x| {
            if T::is_nan(x) {
                x
            } else if x > T::ZERO {
                T::ONE
            } else if x < T::ZERO {
                T::neg(T::ONE)
            } else {
                T::ZERO
            }
        }),
        _ => unreachable!("not a numeric function: {op:?}"),
    }
}

fn unary(op: UnaryOp, v: Val<'_>) -> Result<Block, EvalError> {
    let dtype = v.dtype();
    let bad = EvalError::DType {
        op: op.name(),
        dtype,
        other: dtype,
    };
    op.result(dtype).ok_or(bad.clone())?;
    use UnaryOp::*;
    Ok(match op {
        Neg | Abs | Square | Sign => match dtype {
            DType::F64 => Block::F64(numeric_unary(op, arg::<f64>(v))),
            DType::F32 => Block::F32(numeric_unary(op, arg::<f32>(v))),
            DType::I64 => Block::I64(numeric_unary(op, arg::<i64>(v))),
            DType::I32 => Block::I32(numeric_unary(op, arg::<i32>(v))),
            DType::U8 => Block::U8(numeric_unary(op, arg::<u8>(v))),
            DType::Bool => return Err(bad),
        },
        Not => Block::Bool(map_same(arg::<bool>(v), |x| !x)),
        IsNan | IsFinite => {
            let f = |x: f64| {
                if op == IsNan {
                    x.is_nan()
                } else {
                    x.is_finite()
                }
            };
            match dtype {
                DType::F64 => Block::Bool(map_to(&arg::<f64>(v), f)),
                DType::F32 => Block::Bool(map_to(&arg::<f32>(v), |x| f(x as f64))),
                _ => return Err(bad),
            }
        }
        _ => match dtype {
            DType::F64 => Block::F64(float_unary(op, arg::<f64>(v))),
            DType::F32 => Block::F32(float_unary(op, arg::<f32>(v))),
            _ => return Err(bad),
        },
    })
}

/// `f(a, b)` with broadcasting to `shape`, reusing owned data of that shape.
fn zip_same<T: Element>(
    a: Arg<'_, T>,
    b: Arg<'_, T>,
    shape: &[usize],
    f: impl Fn(T, T) -> T,
) -> Chunk<T> {
    if let (Some(x), Some(y)) = (a.scalar(), b.scalar()) {
        return Chunk::Full {
            shape: shape.to_vec(),
            value: f(x, y),
        };
    }
    match (a, b) {
        (Arg::Own(mut x), b) if x.shape() == shape => {
            match b.scalar() {
                Some(y) => x.mapv_inplace(|v| f(v, y)),
                None => {
                    let yv = b.view().expect("not a scalar");
                    let y = yv.broadcast(IxDyn(shape)).expect("shapes broadcast");
                    Zip::from(&mut x).and(&y).for_each(|p, &q| *p = f(*p, q));
                }
            }
            Chunk::Dense(x)
        }
        (a, Arg::Own(mut y)) if y.shape() == shape => {
            match a.scalar() {
                Some(x) => y.mapv_inplace(|v| f(x, v)),
                None => {
                    let xv = a.view().expect("not a scalar");
                    let x = xv.broadcast(IxDyn(shape)).expect("shapes broadcast");
                    Zip::from(&mut y).and(&x).for_each(|q, &p| *q = f(p, *q));
                }
            }
            Chunk::Dense(y)
        }
        (a, b) => Chunk::Dense(zip_to(&a, &b, shape, f)),
    }
}

/// `f(a, b)` with broadcasting to `shape`, into a new array.
fn zip_to<T: Element, U: Element>(
    a: &Arg<'_, T>,
    b: &Arg<'_, T>,
    shape: &[usize],
    f: impl Fn(T, T) -> U,
) -> ArrayD<U> {
    let sh = IxDyn(shape);
    match (a.scalar(), b.scalar()) {
        (Some(x), Some(y)) => ArrayD::from_elem(sh, f(x, y)),
        (Some(x), None) => {
            let bv = b.view().expect("not a scalar");
            bv.broadcast(sh)
                .expect("shapes broadcast")
                .mapv(|y| f(x, y))
        }
        (None, Some(y)) => {
            let av = a.view().expect("not a scalar");
            av.broadcast(sh)
                .expect("shapes broadcast")
                .mapv(|x| f(x, y))
        }
        (None, None) => {
            let (av, bv) = (a.view().expect("dense"), b.view().expect("dense"));
            // Row-major output whatever the operands' layouts (a transposed operand would
            // otherwise make the result column-major, and every later step strided).
            let mut out = ArrayD::<U>::default(sh.clone());
            Zip::from(&mut out)
                .and(&av.broadcast(sh.clone()).expect("shapes broadcast"))
                .and(&bv.broadcast(sh).expect("shapes broadcast"))
                .for_each(|o, &x, &y| *o = f(x, y));
            out
        }
    }
}

fn compare_args<T: Element>(
    op: BinaryOp,
    a: &Arg<'_, T>,
    b: &Arg<'_, T>,
    shape: &[usize],
) -> Chunk<bool> {
    use BinaryOp::*;
    let f = |x: T, y: T| match op {
        Eq => x == y,
        Ne => x != y,
        Lt => x < y,
        Le => x <= y,
        Gt => x > y,
        Ge => x >= y,
        _ => unreachable!("not a comparison"),
    };
    match (a.scalar(), b.scalar()) {
        (Some(x), Some(y)) => Chunk::Full {
            shape: shape.to_vec(),
            value: f(x, y),
        },
        _ => Chunk::Dense(zip_to(a, b, shape, f)),
    }
}

fn numeric_binary<T: Number>(
    op: BinaryOp,
    a: Arg<'_, T>,
    b: Arg<'_, T>,
    shape: &[usize],
) -> Chunk<T> {
    use BinaryOp::*;
    // One closure per operation, so each loop is monomorphized and the arithmetic inlined
    // (a function pointer would cost an indirect call per element).
    match op {
        Add => zip_same(a, b, shape, |x, y| T::add(x, y)),
        Sub => zip_same(a, b, shape, |x, y| T::sub(x, y)),
        Mul => zip_same(a, b, shape, |x, y| T::mul(x, y)),
        Div => zip_same(a, b, shape, |x, y| T::div(x, y)),
        Rem => zip_same(a, b, shape, |x, y| T::rem(x, y)),
        Pow => zip_same(a, b, shape, |x, y| T::pow(x, y)),
        Maximum => zip_same(a, b, shape, |x, y| T::max(x, y)),
        Minimum => zip_same(a, b, shape, |x, y| T::min(x, y)),
        _ => unreachable!("not arithmetic"),
    }
}

fn binary(op: BinaryOp, a: Val<'_>, b: Val<'_>) -> Result<Block, EvalError> {
    let (da, db) = (a.dtype(), b.dtype());
    let bad = EvalError::DType {
        op: op.name(),
        dtype: da,
        other: db,
    };
    if da != db {
        return Err(bad);
    }
    op.result(da).ok_or(bad.clone())?;
    let (sa, sb) = (a.shape(), b.shape());
    let shape = broadcast_shapes(&sa, &sb).ok_or(EvalError::Broadcast { a: sa, b: sb })?;
    use BinaryOp::*;
    macro_rules! cmp {
        ($t:ty) => {
            compare_args(op, &arg::<$t>(a), &arg::<$t>(b), &shape)
        };
    }
    Ok(match op {
        Eq | Ne | Lt | Le | Gt | Ge => Block::Bool(match da {
            DType::F64 => cmp!(f64),
            DType::F32 => cmp!(f32),
            DType::I64 => cmp!(i64),
            DType::I32 => cmp!(i32),
            DType::U8 => cmp!(u8),
            DType::Bool => cmp!(bool),
        }),
        And => Block::Bool(zip_same(arg::<bool>(a), arg::<bool>(b), &shape, |x, y| {
            x && y
        })),
        Or => Block::Bool(zip_same(arg::<bool>(a), arg::<bool>(b), &shape, |x, y| {
            x || y
        })),
        Xor => Block::Bool(zip_same(arg::<bool>(a), arg::<bool>(b), &shape, |x, y| {
            x != y
        })),
        _ => match da {
            DType::F64 => Block::F64(numeric_binary(op, arg(a), arg(b), &shape)),
            DType::F32 => Block::F32(numeric_binary(op, arg(a), arg(b), &shape)),
            DType::I64 => Block::I64(numeric_binary(op, arg(a), arg(b), &shape)),
            DType::I32 => Block::I32(numeric_binary(op, arg(a), arg(b), &shape)),
            DType::U8 => Block::U8(numeric_binary(op, arg(a), arg(b), &shape)),
            DType::Bool => return Err(bad),
        },
    })
}

fn where_args<'a, T: Element>(
    c: &Arg<'_, bool>,
    a: &Arg<'a, T>,
    b: &Arg<'a, T>,
    shape: &[usize],
) -> Chunk<T> {
    let sh = IxDyn(shape);
    if let Some(pick_a) = c.scalar() {
        let pick = if pick_a { a } else { b };
        return match pick.scalar() {
            Some(v) => Chunk::Full {
                shape: shape.to_vec(),
                value: v,
            },
            None => Chunk::Dense(
                pick.view()
                    .expect("dense")
                    .broadcast(sh)
                    .expect("shapes broadcast")
                    .to_owned(),
            ),
        };
    }
    let dense = |x: &Arg<'_, T>| -> ArrayD<T> {
        match x.scalar() {
            Some(v) => ArrayD::from_elem(sh.clone(), v),
            None => x
                .view()
                .expect("dense")
                .broadcast(sh.clone())
                .expect("shapes broadcast")
                .to_owned(),
        }
    };
    let (av, bv) = (dense(a), dense(b));
    let cv = c.view().expect("dense");
    Chunk::Dense(
        Zip::from(&cv.broadcast(sh.clone()).expect("shapes broadcast"))
            .and(&av)
            .and(&bv)
            .map_collect(|&c, &x, &y| if c { x } else { y }),
    )
}

fn where_(c: Val<'_>, a: Val<'_>, b: Val<'_>) -> Result<Block, EvalError> {
    let (dc, da, db) = (c.dtype(), a.dtype(), b.dtype());
    if dc != DType::Bool || da != db {
        return Err(EvalError::DType {
            op: "where",
            dtype: da,
            other: db,
        });
    }
    let shape = broadcast_shapes(&c.shape(), &a.shape())
        .and_then(|s| broadcast_shapes(&s, &b.shape()))
        .ok_or_else(|| EvalError::Broadcast {
            a: a.shape(),
            b: b.shape(),
        })?;
    let cond = arg::<bool>(c);
    macro_rules! pick {
        ($t:ty, $v:ident) => {
            Block::$v(where_args(&cond, &arg::<$t>(a), &arg::<$t>(b), &shape))
        };
    }
    Ok(match da {
        DType::F64 => pick!(f64, F64),
        DType::F32 => pick!(f32, F32),
        DType::I64 => pick!(i64, I64),
        DType::I32 => pick!(i32, I32),
        DType::U8 => pick!(u8, U8),
        DType::Bool => pick!(bool, Bool),
    })
}

fn cast_arg<T: Element>(a: &Arg<'_, T>, to: DType) -> Block {
    match to {
        DType::F64 => Block::F64(map_to(a, |x| x.cast::<f64>())),
        DType::F32 => Block::F32(map_to(a, |x| x.cast::<f32>())),
        DType::I64 => Block::I64(map_to(a, |x| x.cast::<i64>())),
        DType::I32 => Block::I32(map_to(a, |x| x.cast::<i32>())),
        DType::U8 => Block::U8(map_to(a, |x| x.cast::<u8>())),
        DType::Bool => Block::Bool(map_to(a, |x| x.cast::<bool>())),
    }
}

fn cast_val(v: Val<'_>, to: DType) -> Block {
    match v.dtype() {
        DType::F64 => cast_arg(&arg::<f64>(v), to),
        DType::F32 => cast_arg(&arg::<f32>(v), to),
        DType::I64 => cast_arg(&arg::<i64>(v), to),
        DType::I32 => cast_arg(&arg::<i32>(v), to),
        DType::U8 => cast_arg(&arg::<u8>(v), to),
        DType::Bool => cast_arg(&arg::<bool>(v), to),
    }
}

#[cfg(test)]
mod tests {
    use ndarray::ArrayD;

    use super::*;

    fn dense(v: Vec<f64>, shape: &[usize]) -> Block {
        Block::F64(Chunk::Dense(
            ArrayD::from_shape_vec(IxDyn(shape), v).unwrap(),
        ))
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[3, 1], &[4]), Some(vec![3, 4]));
        assert_eq!(broadcast_shapes(&[], &[2, 2]), Some(vec![2, 2]));
        assert_eq!(broadcast_shapes(&[3], &[4]), None);
    }

    #[test]
    fn fused_expression_matches_step_by_step() {
        let a = dense(vec![1.0, 4.0, 9.0, 16.0], &[2, 2]);
        let b = dense(vec![1.0, 2.0], &[2]);
        // sqrt(a) * b + 1
        let e = Expr::Binary(
            BinaryOp::Add,
            Box::new(Expr::Binary(
                BinaryOp::Mul,
                Box::new(Expr::Unary(UnaryOp::Sqrt, Box::new(Expr::Input(0)))),
                Box::new(Expr::Input(1)),
            )),
            Box::new(Expr::scalar(1.0f64)),
        );
        let out = evaluate(&e, &[&a, &b]).unwrap();
        assert_eq!(out, dense(vec![2.0, 5.0, 4.0, 9.0], &[2, 2]));
    }

    #[test]
    fn constants_stay_constant() {
        let ones = Block::full(vec![1000, 1000], 1.0f64);
        let e = Expr::Binary(
            BinaryOp::Mul,
            Box::new(Expr::Input(0)),
            Box::new(Expr::scalar(3.0f64)),
        );
        let out = evaluate(&e, &[&ones]).unwrap();
        assert_eq!(out, Block::full(vec![1000, 1000], 3.0f64));
        let cmp = Expr::Binary(
            BinaryOp::Gt,
            Box::new(Expr::Input(0)),
            Box::new(Expr::scalar(0.5f64)),
        );
        assert_eq!(
            evaluate(&cmp, &[&ones]).unwrap(),
            Block::full(vec![1000, 1000], true)
        );
    }

    #[test]
    fn mismatched_dtypes_are_errors_not_panics() {
        let a = Block::full(vec![2], 1.0f64);
        let b = Block::full(vec![2], 1i64);
        let e = Expr::Binary(
            BinaryOp::Add,
            Box::new(Expr::Input(0)),
            Box::new(Expr::Input(1)),
        );
        assert!(matches!(
            evaluate(&e, &[&a, &b]),
            Err(EvalError::DType { .. })
        ));
        let e = Expr::Unary(UnaryOp::Sqrt, Box::new(Expr::Input(1)));
        assert!(evaluate(&e, &[&a, &b]).is_err());
        assert!(matches!(
            evaluate(&Expr::Input(5), &[&a]),
            Err(EvalError::MissingInput { .. })
        ));
    }

    #[test]
    fn where_and_cast() {
        let x = dense(vec![-1.0, 2.0, -3.0], &[3]);
        let cond = Expr::Binary(
            BinaryOp::Gt,
            Box::new(Expr::Input(0)),
            Box::new(Expr::scalar(0.0f64)),
        );
        let e = Expr::Where(
            Box::new(cond),
            Box::new(Expr::Input(0)),
            Box::new(Expr::scalar(0.0f64)),
        );
        assert_eq!(
            evaluate(&e, &[&x]).unwrap(),
            dense(vec![0.0, 2.0, 0.0], &[3])
        );
        let c = evaluate(&Expr::Cast(DType::I32, Box::new(Expr::Input(0))), &[&x]).unwrap();
        assert_eq!(
            c,
            Block::I32(Chunk::Dense(
                ArrayD::from_shape_vec(IxDyn(&[3]), vec![-1, 2, -3]).unwrap()
            ))
        );
    }
}
