//! The registered operations of bags: one per built-in step, each taking its parameters as
//! data (record kinds by name, strings, integers) and its partitions as arguments, so a stock
//! worker of the same build runs every built-in bag operation.
//!
//! Every operation's body is a plain function of a [`Ctx`] and the call's arguments. A
//! registered call resolves the kinds by name ([`crate::kind::find`]); a bag over a record
//! type that is not registered runs the same body as a local closure with the kinds it knows
//! statically ([`runner`]).

use oxidask_core::op::{lookup, Args, Input, OpDef, OpRegistration, TaskFailure};
use oxidask_core::task::{LocalOp, Op};
use oxidask_core::Value;
use smallvec::SmallVec;

use crate::kind::{self, merge_moments, Fallible, Kind, Moments};
use crate::text;

/// The parameters of a call: record kinds (type names), strings, integers.
pub(crate) type Params = (Vec<String>, Vec<String>, Vec<u64>);

/// What a body sees: the resolved kinds and the call's other parameters.
pub(crate) struct Ctx {
    pub kinds: SmallVec<[Kind; 2]>,
    pub strs: Vec<String>,
    pub ints: Vec<u64>,
}

impl Ctx {
    fn kind(&self, i: usize) -> Fallible<&Kind> {
        self.kinds
            .get(i)
            .ok_or_else(|| TaskFailure::argument(format!("missing record kind {i}")))
    }

    fn int(&self, i: usize) -> Fallible<u64> {
        self.ints
            .get(i)
            .copied()
            .ok_or_else(|| TaskFailure::argument(format!("missing integer parameter {i}")))
    }

    fn str(&self, i: usize) -> Fallible<&str> {
        self.strs
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| TaskFailure::argument(format!("missing text parameter {i}")))
    }
}

/// A body: the context and the call's arguments (argument 0, the parameters, already taken).
pub(crate) type Body = fn(&Ctx, &mut Args) -> Fallible<Value>;

fn take_input(args: &mut Args, i: usize) -> Fallible<Input> {
    args.take_input(i)
        .ok_or_else(|| TaskFailure::argument(format!("missing argument {i}")))
}

/// Argument `i` as a list of inputs (a single value is a list of one).
fn list(args: &mut Args, i: usize) -> Fallible<Vec<Input>> {
    Ok(match take_input(args, i)? {
        Input::List(items) => items,
        v @ Input::Value(_) => vec![v],
    })
}

fn value(args: &mut Args, i: usize) -> Fallible<Value> {
    match take_input(args, i)? {
        Input::Value(v) => Ok(v),
        Input::List(mut items) if items.len() == 1 => match items.pop() {
            Some(Input::Value(v)) => Ok(v),
            _ => Err(TaskFailure::argument(format!(
                "argument {i}: a nested list"
            ))),
        },
        Input::List(_) => Err(TaskFailure::argument(format!(
            "argument {i}: a list where one partition was expected"
        ))),
    }
}

/// Runs a registered call: resolves the kinds named in the parameters, then the body.
pub(crate) fn run_registered(args: &mut Args, body: Body) -> Fallible<Value> {
    let (kinds, strs, ints) = args.take::<Params>(0, "params")?;
    let kinds = kinds
        .iter()
        .map(|n| kind::find(n))
        .collect::<Fallible<_>>()?;
    body(&Ctx { kinds, strs, ints }, args)
}

/// The operation a layer's tasks call: the registered `op` when every kind is registered in
/// this process and has what `needs` asks, otherwise a local closure running the same body.
pub(crate) fn runner(
    op: &'static OpDef,
    body: Body,
    kinds: &[Kind],
    needs: fn(&Kind) -> bool,
) -> Op {
    let all_registered = kinds
        .iter()
        .all(|k| kind::lookup(k.name()).is_some_and(|r| needs(&r)));
    if all_registered {
        return Op::Registered(op);
    }
    let kinds: SmallVec<[Kind; 2]> = kinds.iter().copied().collect();
    Op::Local(LocalOp::new(op.short_name(), move |args: &mut Args| {
        let (_, strs, ints) = args.take::<Params>(0, "params")?;
        body(
            &Ctx {
                kinds: kinds.clone(),
                strs,
                ints,
            },
            args,
        )
    }))
}

macro_rules! bag_ops {
    ($($stat:ident = $name:literal => $body:path;)*) => {$(
        pub(crate) static $stat: OpDef = OpDef::new(
            concat!("oxidask_bag::", $name),
            $name,
            "(params: (Vec<String>, Vec<String>, Vec<u64>), inputs...) -> Value",
            &["params", "inputs"],
            true,
            |args| run_registered(args, $body),
        );
        inventory::submit! { OpRegistration(&$stat) }
    )*

    /// The body of one of the registered operations above (for its local-closure twin).
    pub(crate) fn body_of_registered(op: &'static OpDef) -> Body {
        $(if std::ptr::eq(op, &$stat) { return $body; })*
        unreachable!("{} is not a bag operation", op.name())
    }
    };
}

bag_ops! {
    COUNT = "bag-count" => count;
    ADD_COUNTS = "bag-add-counts" => add_counts;
    CONCAT = "bag-concat" => concat;
    SPLIT_PIECE = "bag-split" => split_piece;
    HEAD = "bag-head" => head;
    FLATTEN = "bag-flatten" => flatten;
    ITEM = "bag-item" => item;
    DISTINCT = "bag-distinct" => distinct;
    FREQUENCIES = "bag-frequencies" => frequencies;
    MERGE_COUNTS = "bag-merge-counts" => merge_counts;
    OKS = "bag-oks" => oks;
    ERRS = "bag-errs" => errs;
    TOPK = "bag-topk" => topk;
    EXTREME = "bag-extreme" => extreme;
    SUM = "bag-sum" => sum;
    MOMENTS = "bag-moments" => moments;
    MERGE_MOMENTS = "bag-merge-moments" => merge_moments_op;
    FINISH_MOMENTS = "bag-finish-moments" => finish_moments;
    MAP_RECORDS = "bag-map" => map_records;
    FILTER_RECORDS = "bag-filter" => filter_records;
    PLUCK = "bag-pluck" => pluck;
    READ_TEXT = "bag-read-text" => text::read_block_op;
    WRITE_TEXT = "bag-write-text" => text::write_part_op;
    PUBLISH_TEXT = "bag-publish-text" => text::publish_op;
}

fn count(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let k = ctx.kind(0)?;
    let mut n = 0u64;
    for p in list(args, 1)? {
        match p {
            Input::Value(v) => n += (k.len)(&v)? as u64,
            Input::List(_) => return Err(TaskFailure::argument("nested list in count")),
        }
    }
    Ok(Value::new(n))
}

fn add_counts(_: &Ctx, args: &mut Args) -> Fallible<Value> {
    let mut n = 0u64;
    for p in list(args, 1)? {
        match p {
            Input::Value(v) => n += v.take::<u64>()?,
            Input::List(_) => return Err(TaskFailure::argument("nested list in add-counts")),
        }
    }
    Ok(Value::new(n))
}

fn concat(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    (ctx.kind(0)?.concat)(list(args, 1)?)
}

/// Piece `j` of `m` of a partition (pieces differ in length by at most one).
fn split_piece(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let k = ctx.kind(0)?;
    let (j, m) = (ctx.int(0)? as usize, ctx.int(1)? as usize);
    let v = value(args, 1)?;
    let n = (k.len)(&v)?;
    let (start, end) = (j * n / m.max(1), (j + 1) * n / m.max(1));
    (k.slice)(v, start, end)
}

fn head(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let n = ctx.int(0)? as usize;
    (ctx.kind(0)?.slice)(value(args, 1)?, 0, n)
}

fn flatten(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    (ctx.kind(0)?.flatten)(value(args, 1)?)
}

fn item(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    (ctx.kind(0)?.item)(value(args, 1)?, ctx.str(0)?)
}

fn distinct(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    (ctx.kind(0)?.distinct)(list(args, 1)?)
}

fn frequencies(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    (ctx.kind(0)?.frequencies)(list(args, 1)?)
}

fn merge_counts(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    (ctx.kind(0)?.merge_counts)(list(args, 1)?, ctx.int(0)? != 0)
}

fn oks(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    (ctx.kind(0)?.oks)(value(args, 1)?)
}

fn errs(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    (ctx.kind(0)?.errs)(value(args, 1)?)
}

fn missing(k: &Kind, what: &str) -> TaskFailure {
    TaskFailure::unavailable(format!(
        "bag record type `{}` was registered without {what}; register it with a kind that \
         has it (`register_records!(ord T)`, `sortable`, `integer` or `float`)",
        k.name()
    ))
}

fn topk(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let k = ctx.kind(0)?;
    let f = k.topk.ok_or_else(|| missing(k, "an order"))?;
    f(list(args, 1)?, ctx.int(0)? as usize)
}

fn extreme(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let k = ctx.kind(0)?;
    let f = k.extreme.ok_or_else(|| missing(k, "an order"))?;
    f(list(args, 1)?, ctx.int(0)? != 0)
}

fn sum(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let k = ctx.kind(0)?;
    let f = k.sum.ok_or_else(|| missing(k, "arithmetic"))?;
    f(list(args, 1)?)
}

fn moments(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let k = ctx.kind(0)?;
    let f = k.moments.ok_or_else(|| missing(k, "arithmetic"))?;
    f(list(args, 1)?)
}

fn merge_moments_op(_: &Ctx, args: &mut Args) -> Fallible<Value> {
    let ms = kind::parts::<Moments>(list(args, 1)?)?;
    Ok(Value::new(vec![merge_moments(ms.into_iter().flatten())]))
}

/// `ints[0]`: 0 mean, 1 variance, 2 standard deviation; `ints[1]`: ddof.
fn finish_moments(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let ms = kind::parts::<Moments>(list(args, 1)?)?;
    let (n, mean, m2) = merge_moments(ms.into_iter().flatten());
    let which = ctx.int(0)?;
    let ddof = ctx.int(1)?;
    let name = ["mean", "var", "std"][(which as usize).min(2)];
    if n == 0 {
        return Err(TaskFailure::msg(format!(
            "{name} of an empty bag: it has no records"
        )));
    }
    let var = if n > ddof {
        m2 / (n - ddof) as f64
    } else {
        f64::NAN
    };
    Ok(Value::new(match which {
        0 => mean,
        1 => var,
        _ => var.sqrt(),
    }))
}

fn user_op(name: &str) -> Fallible<&'static OpDef> {
    lookup(name).ok_or_else(|| {
        TaskFailure::unavailable(format!(
            "operation `{name}` is not registered in this process; run workers from the \
             program that defines it (`oxidask::distributed::run_if_worker()`)"
        ))
    })
}

/// Calls the registered operation `strs[0]` on each record: kinds `[T, U]`.
fn map_records(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let (kt, ku) = (ctx.kind(0)?, ctx.kind(1)?);
    let op = user_op(ctx.str(0)?)?;
    let records = (kt.explode)(value(args, 1)?)?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        out.push(op.call(&mut Args::new([Input::Value(r)]))?);
    }
    (ku.gather)(out)
}

/// Keeps the records for which the registered operation `strs[0]` returns `true`.
fn filter_records(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let kt = ctx.kind(0)?;
    let op = user_op(ctx.str(0)?)?;
    let records = (kt.explode)(value(args, 1)?)?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        if op
            .call(&mut Args::new([Input::Value(r.clone())]))?
            .take::<bool>()?
        {
            out.push(r);
        }
    }
    (kt.gather)(out)
}

/// `pluck` on JSON records: `strs[0]` a field name, or `ints[0] == 1` and `ints[1]` an index.
fn pluck(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    use crate::json::Json;
    let part = value(args, 1)?.take::<Vec<Json>>()?;
    let by_index = ctx.int(0)? == 1;
    let mut out = Vec::with_capacity(part.len());
    for (i, rec) in part.into_iter().enumerate() {
        let got = if by_index {
            let idx = ctx.int(1)? as usize;
            rec.get(idx).cloned().ok_or_else(|| {
                TaskFailure::msg(format!(
                    "pluck({idx}): record {i} of its partition has no item {idx}: {rec}"
                ))
            })?
        } else {
            let field = ctx.str(0)?;
            rec.get(field).cloned().ok_or_else(|| {
                TaskFailure::msg(format!(
                    "pluck({field:?}): record {i} of its partition has no field {field:?}: {rec}"
                ))
            })?
        };
        out.push(Json(got));
    }
    Ok(Value::new(out))
}

// Values the operations above exchange besides partitions.
inventory::submit! { oxidask_core::codecs::TypeCodec::of::<Params>() }
inventory::submit! { oxidask_core::codecs::TypeCodec::of::<Vec<Moments>>() }
inventory::submit! { oxidask_core::codecs::TypeCodec::of::<u64>() }
inventory::submit! { oxidask_core::codecs::TypeCodec::of::<f64>() }
