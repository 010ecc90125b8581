//! Bags to and from dataframes (feature `dataframe`): JSON records become rows of a declared
//! schema, and rows become JSON objects.

use oxidask_core::op::{Args, Input, OpDef, OpRegistration, TaskFailure};
use oxidask_core::task::{Arg, Op, Task, TaskSpec};
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Collection, Delayed, Graph, Key, Value};
use oxidask_dataframe::polars::prelude::{self as pl, AnyValue, DataType};
use oxidask_dataframe::{DataFrame, Partition};
use smallvec::smallvec;

use crate::bag::{part_key, Bag};
use crate::json::Json;
use crate::kind::Fallible;
use crate::ops::{run_registered, Ctx, Params};
use crate::BagError;

static TO_FRAME: OpDef = OpDef::new(
    "oxidask_bag::bag-to-frame",
    "bag-to-frame",
    "(params: (Vec<String>, Vec<String>, Vec<u64>), inputs...) -> Value",
    &["params", "inputs"],
    true,
    |args| run_registered(args, to_frame),
);
inventory::submit! { OpRegistration(&TO_FRAME) }

static FROM_FRAME: OpDef = OpDef::new(
    "oxidask_bag::bag-from-frame",
    "bag-from-frame",
    "(params: (Vec<String>, Vec<String>, Vec<u64>), inputs...) -> Value",
    &["params", "inputs"],
    true,
    |args| run_registered(args, from_frame),
);
inventory::submit! { OpRegistration(&FROM_FRAME) }

fn dtype_code(d: &DataType) -> Option<&'static str> {
    Some(match d {
        DataType::Int64 => "i64",
        DataType::Float64 => "f64",
        DataType::String => "str",
        DataType::Boolean => "bool",
        _ => return None,
    })
}

fn input_value(args: &mut Args) -> Fallible<Value> {
    match args.take_input(1) {
        Some(Input::Value(v)) => Ok(v),
        _ => Err(TaskFailure::argument("expected one partition")),
    }
}

/// strs: `[column, type code, column, type code, …]`.
fn to_frame(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let records = input_value(args)?.take::<Vec<Json>>()?;
    let mut columns = Vec::new();
    for pair in ctx.strs.chunks(2) {
        let (name, code) = (pair[0].as_str(), pair[1].as_str());
        let bad = |i: usize, v: &serde_json::Value| {
            TaskFailure::msg(format!(
                "to_dataframe: record {i} of its partition has {name:?} = {v}, not a {code} \
                 as the declared schema says; fix the records (e.g. with map) or declare \
                 another type"
            ))
        };
        let field = |r: &Json| r.get(name).filter(|v| !v.is_null()).cloned();
        let col = match code {
            "i64" => {
                let mut v = Vec::with_capacity(records.len());
                for (i, r) in records.iter().enumerate() {
                    v.push(match field(r) {
                        None => None,
                        Some(x) => Some(x.as_i64().ok_or_else(|| bad(i, &x))?),
                    });
                }
                pl::Column::new(name.into(), v)
            }
            "f64" => {
                let mut v = Vec::with_capacity(records.len());
                for (i, r) in records.iter().enumerate() {
                    v.push(match field(r) {
                        None => None,
                        Some(x) => Some(x.as_f64().ok_or_else(|| bad(i, &x))?),
                    });
                }
                pl::Column::new(name.into(), v)
            }
            "bool" => {
                let mut v = Vec::with_capacity(records.len());
                for (i, r) in records.iter().enumerate() {
                    v.push(match field(r) {
                        None => None,
                        Some(x) => Some(x.as_bool().ok_or_else(|| bad(i, &x))?),
                    });
                }
                pl::Column::new(name.into(), v)
            }
            _ => {
                let mut v: Vec<Option<String>> = Vec::with_capacity(records.len());
                for (i, r) in records.iter().enumerate() {
                    v.push(match field(r) {
                        None => None,
                        Some(x) => Some(x.as_str().ok_or_else(|| bad(i, &x))?.to_owned()),
                    });
                }
                pl::Column::new(name.into(), v)
            }
        };
        columns.push(col);
    }
    let df = pl::DataFrame::new_infer_height(columns)
        .map_err(|e| TaskFailure::msg(format!("to_dataframe: {e}")))?;
    Ok(Value::new(Partition(df)))
}

fn json_of(v: AnyValue<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        AnyValue::Null => J::Null,
        AnyValue::Boolean(b) => J::Bool(b),
        AnyValue::Int8(x) => x.into(),
        AnyValue::Int16(x) => x.into(),
        AnyValue::Int32(x) => x.into(),
        AnyValue::Int64(x) => x.into(),
        AnyValue::UInt8(x) => x.into(),
        AnyValue::UInt16(x) => x.into(),
        AnyValue::UInt32(x) => x.into(),
        AnyValue::UInt64(x) => x.into(),
        AnyValue::Float32(x) => serde_json::Number::from_f64(x as f64).map_or(J::Null, J::Number),
        AnyValue::Float64(x) => serde_json::Number::from_f64(x).map_or(J::Null, J::Number),
        AnyValue::String(s) => J::String(s.to_owned()),
        AnyValue::StringOwned(s) => J::String(s.to_string()),
        other => J::String(other.to_string()),
    }
}

fn from_frame(_: &Ctx, args: &mut Args) -> Fallible<Value> {
    let df = input_value(args)?.take::<Partition>()?.0;
    let cols = df.columns();
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let mut m = serde_json::Map::with_capacity(cols.len());
        for c in cols {
            let v = c
                .get(i)
                .map_err(|e| TaskFailure::msg(format!("from_dataframe: {e}")))?;
            m.insert(c.name().to_string(), json_of(v));
        }
        out.push(Json(serde_json::Value::Object(m)));
    }
    Ok(Value::new(out))
}

impl Bag<Json> {
    /// A dataframe of the JSON records with a declared schema (Dask's
    /// `to_dataframe(meta=...)`): each column is the record's field of that name (missing or
    /// `null` fields are nulls); a field of another type fails the computation with an error
    /// showing it. Column types: `Int64`, `Float64`, `String`, `Boolean` (cast in the frame
    /// for others). Needs the `dataframe` feature.
    pub fn to_dataframe(&self, schema: &pl::Schema) -> Result<DataFrame, BagError> {
        let mut strs = Vec::new();
        for (name, d) in schema.iter() {
            let code = dtype_code(d).ok_or_else(|| {
                BagError::Invalid(format!(
                    "to_dataframe: column {name:?} is declared {d}; declare Int64, Float64, \
                     String or Boolean and cast in the frame"
                ))
            })?;
            strs.push(name.to_string());
            strs.push(code.to_owned());
        }
        let params = Value::new::<Params>((Vec::new(), strs, Vec::new()));
        let mut t = Tokenizer::new();
        t.write_str("bag-to-frame");
        params.tokenize_into(&mut t);
        for p in self.partitions() {
            t.write_token(p.key().token());
        }
        let token = t.finish();
        let parts = self
            .partitions()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let task = Task::from_spec(TaskSpec::Call {
                    op: Op::Registered(&TO_FRAME),
                    args: smallvec![Arg::Value(params.clone()), Arg::Key(p.key())],
                });
                Delayed::<Partition>::from_task(
                    part_key("bag-to-frame", token, i),
                    task,
                    [p.erase()],
                )
            })
            .collect();
        Ok(oxidask_dataframe::from_delayed(parts, schema.clone()))
    }
}

/// A bag of one JSON object per row of `df` (column name → value), a partition per
/// partition. Needs the `dataframe` feature.
pub fn from_dataframe(df: &DataFrame) -> Bag<Json> {
    // The frame's tasks become delayed nodes, dependencies first.
    let mut graph = Graph::new();
    df.build_graph(&mut graph);
    let outputs = df.keys();
    let order = graph.order(&outputs).unwrap_or_default();
    let mut nodes: std::collections::HashMap<Key, Delayed<()>> = std::collections::HashMap::new();
    for k in order {
        let Some(task) = graph.get(&k) else { continue };
        let deps: Vec<Delayed<()>> = task
            .dependencies()
            .iter()
            .filter_map(|d| nodes.get(d).cloned())
            .collect();
        nodes.insert(k, Delayed::from_task(k, task.clone(), deps));
    }
    let params = Value::new::<Params>((Vec::new(), Vec::new(), Vec::new()));
    let mut t = Tokenizer::new();
    t.write_str("bag-from-frame");
    for k in &outputs {
        t.write_token(k.token());
    }
    let token = t.finish();
    let parts = outputs
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let task = Task::from_spec(TaskSpec::Call {
                op: Op::Registered(&FROM_FRAME),
                args: smallvec![Arg::Value(params.clone()), Arg::Key(*k)],
            });
            let input: Vec<Delayed<()>> = nodes.get(k).cloned().into_iter().collect();
            Delayed::<Vec<Json>>::from_task(part_key("bag-from-frame", token, i), task, input)
        })
        .collect();
    Bag::from_parts(parts)
}
