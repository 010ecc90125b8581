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

/// A step's value: an input block (borrowed) or an intermediate (owned, reusable in place).
enum Val<'a> {
    Ref(&'a Block),
    Own(Block),
}

impl Val<'_> {
    fn block(&self) -> &Block {
        match self {
            Val::Ref(b) => b,
            Val::Own(b) => b,
        }
    }

    fn into_block(self) -> Block {
        match self {
            Val::Ref(b) => b.clone(),
            Val::Own(b) => b,
        }
    }
}

/// A chunk argument: borrowed, or owned and so reusable for the result.
enum Arg<'a, T> {
    Ref(&'a Chunk<T>),
    Own(Chunk<T>),
}

impl<T: Element> Arg<'_, T> {
    fn chunk(&self) -> &Chunk<T> {
        match self {
            Arg::Ref(c) => c,
            Arg::Own(c) => c,
        }
    }
}

fn arg<'a, T: Element>(v: Val<'a>) -> Arg<'a, T> {
    match v {
        Val::Ref(b) => Arg::Ref(T::unwrap_ref(b).expect("dtype checked by the caller")),
        Val::Own(b) => {
            Arg::Own(T::unwrap(b).unwrap_or_else(|_| unreachable!("dtype checked by the caller")))
        }
    }
}

/// Evaluates `expr` with `inputs` (one block per input array).
pub fn evaluate(expr: &Expr, inputs: &[&Block]) -> Result<Block, EvalError> {
    eval(expr, inputs).map(Val::into_block)
}

fn eval<'a>(expr: &Expr, inputs: &[&'a Block]) -> Result<Val<'a>, EvalError> {
    Ok(match expr {
        Expr::Input(i) => Val::Ref(inputs.get(*i as usize).copied().ok_or(
            EvalError::MissingInput {
                index: *i,
                count: inputs.len(),
            },
        )?),
        Expr::Literal(b) => Val::Own(b.clone()),
        Expr::Unary(op, x) => Val::Own(unary(*op, eval(x, inputs)?)?),
        Expr::Binary(op, a, b) => Val::Own(binary(*op, eval(a, inputs)?, eval(b, inputs)?)?),
        Expr::Where(c, a, b) => Val::Own(where_(
            eval(c, inputs)?,
            eval(a, inputs)?,
            eval(b, inputs)?,
        )?),
        Expr::Cast(d, x) => {
            let v = eval(x, inputs)?;
            if v.block().dtype() == *d {
                v
            } else {
                Val::Own(cast(v.block(), *d))
            }
        }
    })
}

/// Applies `f` to every element, in place when the chunk is owned.
fn map_same<T: Element>(a: Arg<'_, T>, f: impl Fn(T) -> T) -> Chunk<T> {
    match a {
        Arg::Ref(Chunk::Full { shape, value }) => Chunk::Full {
            shape: shape.clone(),
            value: f(*value),
        },
        Arg::Own(Chunk::Full { shape, value }) => Chunk::Full {
            shape,
            value: f(value),
        },
        Arg::Ref(Chunk::Dense(a)) => Chunk::Dense(a.mapv(f)),
        Arg::Own(Chunk::Dense(mut a)) => {
            a.mapv_inplace(f);
            Chunk::Dense(a)
        }
    }
}

/// Applies `f` to every element into a new element type.
fn map_to<T: Element, U: Element>(a: &Chunk<T>, f: impl Fn(T) -> U) -> Chunk<U> {
    match a {
        Chunk::Full { shape, value } => Chunk::Full {
            shape: shape.clone(),
            value: f(*value),
        },
        Chunk::Dense(a) => Chunk::Dense(a.mapv(f)),
    }
}

fn float_unary<T: Float>(op: UnaryOp, a: Arg<'_, T>) -> Chunk<T> {
    use UnaryOp::*;
    let f: fn(f64) -> f64 = match op {
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
        Round => f64::round_ties_even,
        _ => unreachable!("not a float function: {op:?}"),
    };
    map_same(a, |x| T::map_f64(x, f))
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
    let dtype = v.block().dtype();
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
            match v.block() {
                Block::F64(c) => Block::Bool(map_to(c, f)),
                Block::F32(c) => Block::Bool(map_to(c, |x| f(x as f64))),
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

/// `f(a, b)` with broadcasting to `shape`, reusing an owned operand of that shape.
fn zip_same<T: Element>(
    a: Arg<'_, T>,
    b: Arg<'_, T>,
    shape: &[usize],
    f: impl Fn(T, T) -> T,
) -> Chunk<T> {
    match (a, b) {
        (a, b)
            if matches!(
                (a.chunk(), b.chunk()),
                (Chunk::Full { .. }, Chunk::Full { .. })
            ) =>
        {
            let (Chunk::Full { value: x, .. }, Chunk::Full { value: y, .. }) =
                (a.chunk(), b.chunk())
            else {
                unreachable!()
            };
            Chunk::Full {
                shape: shape.to_vec(),
                value: f(*x, *y),
            }
        }
        (Arg::Own(Chunk::Dense(mut x)), b) if x.shape() == shape => {
            match b.chunk() {
                Chunk::Full { value: y, .. } => x.mapv_inplace(|v| f(v, *y)),
                Chunk::Dense(y) => {
                    let y = y.broadcast(IxDyn(shape)).expect("shapes broadcast");
                    Zip::from(&mut x).and(&y).for_each(|p, &q| *p = f(*p, q));
                }
            }
            Chunk::Dense(x)
        }
        (a, Arg::Own(Chunk::Dense(mut y))) if y.shape() == shape => {
            match a.chunk() {
                Chunk::Full { value: x, .. } => y.mapv_inplace(|v| f(*x, v)),
                Chunk::Dense(x) => {
                    let x = x.broadcast(IxDyn(shape)).expect("shapes broadcast");
                    Zip::from(&mut y).and(&x).for_each(|q, &p| *q = f(p, *q));
                }
            }
            Chunk::Dense(y)
        }
        (a, b) => Chunk::Dense(zip_to(a.chunk(), b.chunk(), shape, f)),
    }
}

/// `f(a, b)` with broadcasting to `shape`, into a new array.
fn zip_to<T: Element, U: Element>(
    a: &Chunk<T>,
    b: &Chunk<T>,
    shape: &[usize],
    f: impl Fn(T, T) -> U,
) -> ArrayD<U> {
    let sh = IxDyn(shape);
    match (a, b) {
        (Chunk::Full { value: x, .. }, Chunk::Full { value: y, .. }) => {
            ArrayD::from_elem(sh, f(*x, *y))
        }
        (Chunk::Full { value: x, .. }, Chunk::Dense(b)) => b
            .broadcast(sh)
            .expect("shapes broadcast")
            .mapv(|y| f(*x, y)),
        (Chunk::Dense(a), Chunk::Full { value: y, .. }) => a
            .broadcast(sh)
            .expect("shapes broadcast")
            .mapv(|x| f(x, *y)),
        (Chunk::Dense(a), Chunk::Dense(b)) => {
            Zip::from(&a.broadcast(sh.clone()).expect("shapes broadcast"))
                .and(&b.broadcast(sh).expect("shapes broadcast"))
                .map_collect(|&x, &y| f(x, y))
        }
    }
}

fn compare_chunks<T: Element>(
    op: BinaryOp,
    a: &Chunk<T>,
    b: &Chunk<T>,
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
    match (a, b) {
        (Chunk::Full { value: x, .. }, Chunk::Full { value: y, .. }) => Chunk::Full {
            shape: shape.to_vec(),
            value: f(*x, *y),
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
    let f: fn(T, T) -> T = match op {
        Add => T::add,
        Sub => T::sub,
        Mul => T::mul,
        Div => T::div,
        Rem => T::rem,
        Pow => T::pow,
        Maximum => T::max,
        Minimum => T::min,
        _ => unreachable!("not arithmetic"),
    };
    zip_same(a, b, shape, f)
}

fn binary(op: BinaryOp, a: Val<'_>, b: Val<'_>) -> Result<Block, EvalError> {
    let (da, db) = (a.block().dtype(), b.block().dtype());
    let bad = EvalError::DType {
        op: op.name(),
        dtype: da,
        other: db,
    };
    if da != db {
        return Err(bad);
    }
    op.result(da).ok_or(bad.clone())?;
    let shape = broadcast_shapes(a.block().shape(), b.block().shape()).ok_or_else(|| {
        EvalError::Broadcast {
            a: a.block().shape().to_vec(),
            b: b.block().shape().to_vec(),
        }
    })?;
    use BinaryOp::*;
    Ok(match op {
        Eq | Ne | Lt | Le | Gt | Ge => Block::Bool(match (a.block(), b.block()) {
            (Block::F64(x), Block::F64(y)) => compare_chunks(op, x, y, &shape),
            (Block::F32(x), Block::F32(y)) => compare_chunks(op, x, y, &shape),
            (Block::I64(x), Block::I64(y)) => compare_chunks(op, x, y, &shape),
            (Block::I32(x), Block::I32(y)) => compare_chunks(op, x, y, &shape),
            (Block::U8(x), Block::U8(y)) => compare_chunks(op, x, y, &shape),
            (Block::Bool(x), Block::Bool(y)) => compare_chunks(op, x, y, &shape),
            _ => return Err(bad),
        }),
        And | Or | Xor => {
            let f: fn(bool, bool) -> bool = match op {
                And => |x, y| x && y,
                Or => |x, y| x || y,
                _ => |x, y| x != y,
            };
            Block::Bool(zip_same(arg::<bool>(a), arg::<bool>(b), &shape, f))
        }
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

fn where_chunk<T: Element>(
    c: &Chunk<bool>,
    a: &Chunk<T>,
    b: &Chunk<T>,
    shape: &[usize],
) -> Chunk<T> {
    if let Chunk::Full { value, .. } = c {
        let pick = if *value { a } else { b };
        return match pick {
            Chunk::Full { value, .. } => Chunk::Full {
                shape: shape.to_vec(),
                value: *value,
            },
            Chunk::Dense(d) => Chunk::Dense(
                d.broadcast(IxDyn(shape))
                    .expect("shapes broadcast")
                    .to_owned(),
            ),
        };
    }
    let sh = IxDyn(shape);
    let c = c.to_dense();
    let (a, b) = (a.to_dense(), b.to_dense());
    Chunk::Dense(
        Zip::from(&c.broadcast(sh.clone()).expect("shapes broadcast"))
            .and(&a.broadcast(sh.clone()).expect("shapes broadcast"))
            .and(&b.broadcast(sh).expect("shapes broadcast"))
            .map_collect(|&c, &x, &y| if c { x } else { y }),
    )
}

fn where_(c: Val<'_>, a: Val<'_>, b: Val<'_>) -> Result<Block, EvalError> {
    let (dc, da, db) = (c.block().dtype(), a.block().dtype(), b.block().dtype());
    if dc != DType::Bool || da != db {
        return Err(EvalError::DType {
            op: "where",
            dtype: da,
            other: db,
        });
    }
    let shape = broadcast_shapes(c.block().shape(), a.block().shape())
        .and_then(|s| broadcast_shapes(&s, b.block().shape()))
        .ok_or_else(|| EvalError::Broadcast {
            a: a.block().shape().to_vec(),
            b: b.block().shape().to_vec(),
        })?;
    let Block::Bool(cond) = c.block() else {
        unreachable!("checked")
    };
    Ok(match (a.block(), b.block()) {
        (Block::F64(x), Block::F64(y)) => Block::F64(where_chunk(cond, x, y, &shape)),
        (Block::F32(x), Block::F32(y)) => Block::F32(where_chunk(cond, x, y, &shape)),
        (Block::I64(x), Block::I64(y)) => Block::I64(where_chunk(cond, x, y, &shape)),
        (Block::I32(x), Block::I32(y)) => Block::I32(where_chunk(cond, x, y, &shape)),
        (Block::U8(x), Block::U8(y)) => Block::U8(where_chunk(cond, x, y, &shape)),
        (Block::Bool(x), Block::Bool(y)) => Block::Bool(where_chunk(cond, x, y, &shape)),
        _ => unreachable!("dtypes checked equal"),
    })
}

fn cast_chunk<T: Element>(c: &Chunk<T>, to: DType) -> Block {
    match to {
        DType::F64 => Block::F64(map_to(c, |x| x.cast::<f64>())),
        DType::F32 => Block::F32(map_to(c, |x| x.cast::<f32>())),
        DType::I64 => Block::I64(map_to(c, |x| x.cast::<i64>())),
        DType::I32 => Block::I32(map_to(c, |x| x.cast::<i32>())),
        DType::U8 => Block::U8(map_to(c, |x| x.cast::<u8>())),
        DType::Bool => Block::Bool(map_to(c, |x| x.cast::<bool>())),
    }
}

/// Converts a block to another dtype (NumPy's `astype`).
pub fn cast(b: &Block, to: DType) -> Block {
    crate::block::with_chunk!(b, c => cast_chunk(c, to))
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
