//! [`Bag<T>`]: a lazy, partitioned collection of records.

use std::hash::Hash;
use std::marker::PhantomData;

use oxidask_core::op::{Input, OpDef, TaskFailure};
use oxidask_core::task::{Arg, LocalOp, Op, Task, TaskSpec};
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Collection, Data, Delayed, Error, Graph, Key, Token, Value};
use rustc_hash::FxHashMap;
use smallvec::smallvec;

use crate::json::Json;
use crate::kind::{self, top_k_by, Kind, Numeric, Ordered};
use crate::ops::{self, runner, Body, Params};

/// Dask's default fan-in of tree reductions.
pub const DEFAULT_SPLIT_EVERY: usize = 8;

/// The key of partition `i` of a layer.
pub(crate) fn part_key(name: &str, token: Token, i: usize) -> Key {
    Key::block(name, token, &[i as u32])
}

/// A lazy bag of records of type `T`, in partitions: Dask's `dask.bag.Bag`.
///
/// Each partition is a `Vec<T>` computed by one task; operations add layers of tasks and
/// nothing runs until [`Collection::compute`] (which returns every record, in partition
/// order). Built-in operations are registered operations taking their parameters as data,
/// so they run on every scheduler, including a distributed cluster of stock workers, for
/// the record types registered in [`crate::kind`]. Methods taking closures run only on the
/// local schedulers; their `*_op` twins take `#[oxidask::task]` functions and run anywhere.
///
/// ```
/// use oxidask_bag::Bag;
/// use oxidask_core::Collection;
/// # oxidask_core::compute::with_scheduler(std::sync::Arc::new(oxidask_core::compute::Inline), || {
/// let b = Bag::from_sequence(1..=10i64, 3);
/// assert_eq!(b.npartitions(), 3);
/// let evens = b.filter(|x| x % 2 == 0).map(|x| x * 10);
/// assert_eq!(evens.compute().unwrap(), vec![20, 40, 60, 80, 100]);
/// assert_eq!(evens.sum().compute().unwrap(), 300);
/// # });
/// ```
pub struct Bag<T> {
    parts: Vec<Delayed<Vec<T>>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Bag<T> {
    fn clone(&self) -> Self {
        Bag {
            parts: self.parts.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Bag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bag<{}>(npartitions={})",
            std::any::type_name::<T>(),
            self.parts.len()
        )
    }
}

/// A partition-wise layer: one task per input partition, calling `op` with parameters and
/// the partition.
fn layer<U>(
    name: &'static str,
    op: Op,
    params: Params,
    inputs: &[Delayed<()>],
    unique: bool,
) -> Vec<Delayed<Vec<U>>> {
    let params = Value::new(params);
    let token = layer_token(name, &op, &params, inputs, unique);
    inputs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let task = Task::from_spec(TaskSpec::Call {
                op: op.clone(),
                args: smallvec![Arg::Value(params.clone()), Arg::Key(p.key())],
            });
            Delayed::from_task(part_key(name, token, i), task, [p.clone()])
        })
        .collect()
}

fn layer_token(name: &str, op: &Op, params: &Value, inputs: &[Delayed<()>], unique: bool) -> Token {
    if unique {
        return Token::unique();
    }
    let mut t = Tokenizer::new();
    t.write_str(name);
    t.write_str(op.full_name());
    params.tokenize_into(&mut t);
    for i in inputs {
        t.write_str(i.key().prefix_str());
        t.write_token(i.key().token());
        for &x in i.key().index() {
            t.write_u64(x as u64);
        }
    }
    t.finish()
}

/// One task over a list of inputs.
fn call_list<U>(
    name: &'static str,
    op: Op,
    params: Params,
    inputs: Vec<Delayed<()>>,
) -> Delayed<U> {
    let params = Value::new(params);
    let token = layer_token(name, &op, &params, &inputs, false);
    let task = Task::from_spec(TaskSpec::Call {
        op,
        args: smallvec![
            Arg::Value(params),
            Arg::List(inputs.iter().map(|d| Arg::Key(d.key())).collect()),
        ],
    });
    Delayed::from_task(Key::new(name, token), task, inputs)
}

/// A tree reduction: `chunk` over each partition, `combine` over groups of `split_every`
/// until at most `split_every` remain, then `finish` over those (Dask's `reduction`).
fn tree<U>(
    parts: Vec<Delayed<()>>,
    split_every: usize,
    chunk: Option<(&'static str, Op, Params)>,
    combine: (&'static str, Op, Params),
    finish: (&'static str, Op, Params),
) -> Delayed<U> {
    let split_every = split_every.max(2);
    let mut level: Vec<Delayed<()>> = match chunk {
        Some((name, op, params)) => {
            let params = Value::new(params);
            let token = layer_token(name, &op, &params, &parts, false);
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let task = Task::from_spec(TaskSpec::Call {
                        op: op.clone(),
                        args: smallvec![
                            Arg::Value(params.clone()),
                            Arg::List(vec![Arg::Key(p.key())]),
                        ],
                    });
                    Delayed::from_task(part_key(name, token, i), task, [p.clone()])
                })
                .collect()
        }
        None => parts,
    };
    let (cname, cop, cparams) = combine;
    while level.len() > split_every {
        level = level
            .chunks(split_every)
            .map(|g| call_list::<()>(cname, cop.clone(), cparams.clone(), g.to_vec()))
            .collect();
    }
    let (fname, fop, fparams) = finish;
    call_list(fname, fop, fparams, level)
}

fn kinds_params(kinds: &[Kind]) -> Vec<String> {
    kinds.iter().map(|k| k.name().to_owned()).collect()
}

fn any(_: &Kind) -> bool {
    true
}

/// A local closure task over one partition: its result under a unique key.
fn local_layer<T: Data, U: Data>(
    parts: &[Delayed<Vec<T>>],
    name: &'static str,
    f: impl Fn(Vec<T>) -> Result<Vec<U>, TaskFailure> + Send + Sync + 'static,
) -> Vec<Delayed<Vec<U>>> {
    let op = LocalOp::new(name, move |args| {
        let p = args.take::<Vec<T>>(0, "partition")?;
        f(p).map(Value::new)
    });
    let token = Token::unique();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let task = Task::local(op.clone(), [Arg::Key(p.key())]);
            Delayed::from_task(part_key(name, token, i), task, [p.erase()])
        })
        .collect()
}

/// A local closure over a list of values of type `A`, giving a `B`.
fn local_list<A: Data, B: Data>(
    name: &'static str,
    inputs: Vec<Delayed<()>>,
    f: impl Fn(Vec<A>) -> Result<B, TaskFailure> + Send + Sync + 'static,
) -> Delayed<B> {
    let op = LocalOp::new(name, move |args| {
        let items = match args.take_input(0) {
            Some(Input::List(items)) => items,
            Some(v @ Input::Value(_)) => vec![v],
            None => return Err(TaskFailure::argument("missing argument")),
        };
        let mut vals = Vec::with_capacity(items.len());
        for i in items {
            match i {
                Input::Value(v) => vals.push(v.take::<A>()?),
                Input::List(_) => return Err(TaskFailure::argument("nested list")),
            }
        }
        f(vals).map(Value::new)
    });
    let task = Task::local(
        op,
        [Arg::List(
            inputs.iter().map(|d| Arg::Key(d.key())).collect(),
        )],
    );
    Delayed::from_task(Key::new(name, Token::unique()), task, inputs)
}

/// A local tree reduction with closures (`chunk` per partition, `combine` over lists).
fn local_tree<T: Data, A: Data>(
    parts: &[Delayed<Vec<T>>],
    split_every: usize,
    name: &'static str,
    chunk: impl Fn(Vec<T>) -> Result<A, TaskFailure> + Send + Sync + 'static,
    combine: impl Fn(Vec<A>) -> Result<A, TaskFailure> + Send + Sync + Clone + 'static,
) -> Delayed<A> {
    let op = LocalOp::new(name, move |args| {
        chunk(args.take::<Vec<T>>(0, "partition")?).map(Value::new)
    });
    let token = Token::unique();
    let mut level: Vec<Delayed<()>> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let task = Task::local(op.clone(), [Arg::Key(p.key())]);
            Delayed::<A>::from_task(part_key(name, token, i), task, [p.erase()]).erase()
        })
        .collect();
    let split_every = split_every.max(2);
    while level.len() > split_every {
        level = level
            .chunks(split_every)
            .map(|g| local_list::<A, A>(name, g.to_vec(), combine.clone()).erase())
            .collect();
    }
    local_list::<A, A>(name, level, combine)
}

impl<T> Bag<T> {
    /// A bag from its partitions' delayed values.
    pub fn from_parts(parts: Vec<Delayed<Vec<T>>>) -> Bag<T> {
        Bag {
            parts,
            _type: PhantomData,
        }
    }

    /// The number of partitions.
    pub fn npartitions(&self) -> usize {
        self.parts.len()
    }

    /// The partitions, as delayed values (Dask's `to_delayed`).
    pub fn partitions(&self) -> &[Delayed<Vec<T>>] {
        &self.parts
    }

    /// The partitions, as delayed values (Dask's `to_delayed`).
    pub fn to_delayed(&self) -> Vec<Delayed<Vec<T>>> {
        self.parts.clone()
    }

    fn erased(&self) -> Vec<Delayed<()>> {
        self.parts.iter().map(Delayed::erase).collect()
    }
}

/// Splits `items` Dask's way: `ceil(len / npartitions)` records per partition.
fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let size = size.max(1);
    let mut out = Vec::with_capacity(items.len().div_ceil(size));
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(size).collect());
    }
    out
}

impl<T: Data> Bag<T> {
    /// A bag of the given records in about `npartitions` partitions of
    /// `ceil(len / npartitions)` records each (Dask's `from_sequence(seq, npartitions=n)`;
    /// so 10 records in 4 partitions are 3 + 3 + 3 + 1, and there may be fewer partitions).
    ///
    /// Partitions are values held in the graph, keyed by their content.
    pub fn from_sequence(items: impl IntoIterator<Item = T>, npartitions: usize) -> Bag<T> {
        let items: Vec<T> = items.into_iter().collect();
        let size = items.len().div_ceil(npartitions.max(1));
        Bag::from_sequence_sized(items, size)
    }

    /// A bag of the given records, `partition_size` records per partition (the last may hold
    /// fewer): Dask's `from_sequence(seq, partition_size=k)`.
    pub fn from_sequence_sized(
        items: impl IntoIterator<Item = T>,
        partition_size: usize,
    ) -> Bag<T> {
        let items: Vec<T> = items.into_iter().collect();
        let chunks = if items.is_empty() {
            vec![Vec::new()]
        } else {
            chunked(items, partition_size)
        };
        Bag::from_partitions(chunks)
    }

    /// A bag whose partitions are exactly these (empty ones included).
    pub fn from_partitions(partitions: impl IntoIterator<Item = Vec<T>>) -> Bag<T> {
        let parts = partitions
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let mut t = Tokenizer::new();
                t.write_str("from-sequence");
                t.write_data(&p);
                t.write_u64(i as u64);
                let key = part_key("from-sequence", t.finish(), i);
                Delayed::from_task(key, Task::value(Value::new(p)), [])
            })
            .collect();
        Bag::from_parts(parts)
    }

    /// A bag whose partitions are delayed values (Dask's `from_delayed`).
    pub fn from_delayed(parts: impl IntoIterator<Item = Delayed<Vec<T>>>) -> Bag<T> {
        Bag::from_parts(parts.into_iter().collect())
    }

    fn kind() -> Kind {
        kind::registered::<T>().unwrap_or_else(Kind::of::<T>)
    }

    fn step<U>(
        &self,
        name: &'static str,
        op: &'static OpDef,
        kinds: &[Kind],
        strs: Vec<String>,
        ints: Vec<u64>,
    ) -> Bag<U> {
        let r = runner(op, ops_body(op), kinds, any);
        Bag::from_parts(layer(
            name,
            r,
            (kinds_params(kinds), strs, ints),
            &self.erased(),
            false,
        ))
    }

    // ---- element-wise, with closures (local schedulers) -----------------------------

    /// Applies `f` to every record (runs on the local schedulers; see [`Bag::map_op`]).
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Bag<U> {
        Bag::from_parts(local_layer(&self.parts, "map", move |p: Vec<T>| {
            Ok(p.into_iter().map(&f).collect())
        }))
    }

    /// Keeps the records for which `f` is true (local schedulers; see [`Bag::filter_op`]).
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Bag<T> {
        Bag::from_parts(local_layer(&self.parts, "filter", move |p: Vec<T>| {
            Ok(p.into_iter().filter(|x| f(x)).collect())
        }))
    }

    /// Applies `f` to every record and concatenates the results (`map` then `flatten`, in
    /// one step).
    pub fn flat_map<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> Bag<U> {
        Bag::from_parts(local_layer(&self.parts, "flat-map", move |p: Vec<T>| {
            Ok(p.into_iter().flat_map(&f).collect())
        }))
    }

    /// Applies `f` to every record; an `Err` becomes a bad record instead of failing the
    /// computation — the bad-records pattern. Keep the good ones with
    /// [`Bag::oks`], count the bad with [`Bag::count_errs`], list them with [`Bag::errs`].
    ///
    /// ```
    /// use oxidask_bag::Bag;
    /// use oxidask_core::Collection;
    /// # oxidask_core::compute::with_scheduler(std::sync::Arc::new(oxidask_core::compute::Inline), || {
    /// let raw = Bag::from_sequence(["1", "2", "x", "4"].map(String::from), 2);
    /// let parsed = raw.try_map(|s| s.parse::<i64>().map_err(|e| format!("{s:?}: {e}")));
    /// assert_eq!(parsed.oks().compute().unwrap(), vec![1, 2, 4]);
    /// assert_eq!(parsed.count_errs().compute().unwrap(), 1);
    /// # });
    /// ```
    pub fn try_map<U: Data, E: std::fmt::Display>(
        &self,
        f: impl Fn(T) -> Result<U, E> + Send + Sync + 'static,
    ) -> Bag<Result<U, String>> {
        Bag::from_parts(local_layer(&self.parts, "try-map", move |p: Vec<T>| {
            Ok(p.into_iter()
                .map(|x| f(x).map_err(|e| e.to_string()))
                .collect())
        }))
    }

    /// Applies `f` to each whole partition (local schedulers; see
    /// [`Bag::map_partitions_op`]).
    pub fn map_partitions<U: Data>(
        &self,
        f: impl Fn(Vec<T>) -> Vec<U> + Send + Sync + 'static,
    ) -> Bag<U> {
        Bag::from_parts(local_layer(&self.parts, "map-partitions", move |p| {
            Ok(f(p))
        }))
    }

    // ---- element-wise, with registered functions (every scheduler) -------------------

    /// Applies a registered function `fn(T) -> U` to every record; runs on every scheduler,
    /// including workers started from the program that defines the function.
    ///
    /// ```
    /// use oxidask_bag::Bag;
    /// use oxidask_core::Collection;
    ///
    /// #[oxidask_core::task(crate = oxidask_core)]
    /// fn square(x: i64) -> i64 { x * x }
    ///
    /// # oxidask_core::compute::with_scheduler(std::sync::Arc::new(oxidask_core::compute::Inline), || {
    /// let b = Bag::from_sequence(1..=4i64, 2).map_op::<i64>(square::op());
    /// assert_eq!(b.compute().unwrap(), vec![1, 4, 9, 16]);
    /// # });
    /// ```
    pub fn map_op<U: Data>(&self, op: &'static OpDef) -> Bag<U> {
        let kinds = [Bag::<T>::kind(), Bag::<U>::kind()];
        self.step(
            "map",
            &ops::MAP_RECORDS,
            &kinds,
            vec![op.name().to_owned()],
            vec![],
        )
    }

    /// Keeps the records for which a registered function `fn(T) -> bool` is true; runs on
    /// every scheduler.
    pub fn filter_op(&self, op: &'static OpDef) -> Bag<T> {
        self.step(
            "filter",
            &ops::FILTER_RECORDS,
            &[Bag::<T>::kind()],
            vec![op.name().to_owned()],
            vec![],
        )
    }

    /// Applies a registered function `fn(Vec<T>) -> Vec<U>` to each whole partition; runs on
    /// every scheduler.
    pub fn map_partitions_op<U>(&self, op: &'static OpDef) -> Bag<U> {
        let mut t = Tokenizer::new();
        t.write_str(op.name());
        for p in &self.parts {
            t.write_token(p.key().token());
        }
        let token = if op.is_pure() {
            t.finish()
        } else {
            Token::unique()
        };
        Bag::from_parts(
            self.parts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let task = Task::call(op, [Arg::Key(p.key())]);
                    Delayed::from_task(part_key(op.short_name(), token, i), task, [p.erase()])
                })
                .collect(),
        )
    }

    // ---- structure --------------------------------------------------------------------

    /// The first `k` records (fewer if the bag is smaller), computing only as many
    /// partitions as needed — the first, then twice as many, and so on (Dask's `take`
    /// computes the first partition and warns if it was short).
    pub fn take(&self, k: usize) -> Result<Vec<T>, Error> {
        let kd = Bag::<T>::kind();
        let mut out = Vec::new();
        let mut next = 0;
        let mut batch = 1;
        while out.len() < k && next < self.parts.len() {
            let end = (next + batch).min(self.parts.len());
            let slice = Bag::from_parts(self.parts[next..end].to_vec());
            let heads: Bag<T> = slice.step(
                "take",
                &ops::HEAD,
                &[kd],
                vec![],
                vec![(k - out.len()) as u64],
            );
            out.extend(heads.compute()?);
            next = end;
            batch *= 2;
        }
        out.truncate(k);
        Ok(out)
    }

    /// The same records in `n` partitions: neighbouring partitions are concatenated, or
    /// each is cut into nearly equal pieces (Dask's `repartition(npartitions=n)`); no data
    /// is computed to decide.
    pub fn repartition(&self, n: usize) -> Bag<T> {
        let n = n.max(1);
        let kd = Bag::<T>::kind();
        let have = self.parts.len();
        if n == have {
            return self.clone();
        }
        let erased = self.erased();
        if n < have {
            let op = runner(&ops::CONCAT, ops_body(&ops::CONCAT), &[kd], any);
            let params: Params = (kinds_params(&[kd]), vec![], vec![]);
            let token = layer_token(
                "repartition",
                &op,
                &Value::new(params.clone()),
                &erased,
                false,
            );
            let parts = (0..n)
                .map(|j| {
                    let group = erased[j * have / n..(j + 1) * have / n].to_vec();
                    let task = Task::from_spec(TaskSpec::Call {
                        op: op.clone(),
                        args: smallvec![
                            Arg::Value(Value::new(params.clone())),
                            Arg::List(group.iter().map(|d| Arg::Key(d.key())).collect()),
                        ],
                    });
                    Delayed::from_task(part_key("repartition", token, j), task, group)
                })
                .collect();
            return Bag::from_parts(parts);
        }
        // More partitions: input i is cut into m_i pieces, the m_i as even as can be.
        let op = runner(&ops::SPLIT_PIECE, ops_body(&ops::SPLIT_PIECE), &[kd], any);
        let token = layer_token(
            "repartition",
            &op,
            &Value::new(kinds_params(&[kd])),
            &erased,
            false,
        );
        let mut parts = Vec::with_capacity(n);
        for (i, p) in erased.iter().enumerate() {
            let m = (i + 1) * n / have - i * n / have;
            for j in 0..m {
                let params: Params = (kinds_params(&[kd]), vec![], vec![j as u64, m as u64]);
                let task = Task::from_spec(TaskSpec::Call {
                    op: op.clone(),
                    args: smallvec![Arg::Value(Value::new(params)), Arg::Key(p.key())],
                });
                let idx = parts.len();
                parts.push(Delayed::from_task(
                    part_key("repartition", token, idx),
                    task,
                    [p.clone()],
                ));
            }
        }
        Bag::from_parts(parts)
    }

    // ---- reductions ---------------------------------------------------------------------

    fn reduce_with<U>(
        &self,
        name: &'static str,
        op: &'static OpDef,
        needs: fn(&Kind) -> bool,
        local: Kind,
        ints: Vec<u64>,
        split_every: usize,
    ) -> Delayed<U> {
        let r = runner(op, ops_body(op), &[local], needs);
        let params: Params = (kinds_params(&[local]), vec![], ints);
        tree(
            self.erased(),
            split_every,
            Some((name, r.clone(), params.clone())),
            (name, r.clone(), params.clone()),
            (name, r, params),
        )
    }

    fn item_of<U>(&self, d: Delayed<Vec<U>>, what: &str, kd: Kind) -> Delayed<U> {
        let r = runner(&ops::ITEM, ops_body(&ops::ITEM), &[kd], any);
        call_list(
            "bag-item",
            r,
            (kinds_params(&[kd]), vec![what.to_owned()], vec![]),
            vec![d.erase()],
        )
    }

    /// The number of records.
    pub fn count(&self) -> Delayed<u64> {
        let kd = Bag::<T>::kind();
        let r = runner(&ops::COUNT, ops_body(&ops::COUNT), &[kd], any);
        let add = runner(&ops::ADD_COUNTS, ops_body(&ops::ADD_COUNTS), &[], any);
        let params: Params = (kinds_params(&[kd]), vec![], vec![]);
        tree(
            self.erased(),
            DEFAULT_SPLIT_EVERY,
            Some(("count", r, params)),
            ("count-aggregate", add.clone(), (vec![], vec![], vec![])),
            ("count-aggregate", add, (vec![], vec![], vec![])),
        )
    }

    /// The distinct records, in one partition (first occurrences, in order).
    pub fn distinct(&self) -> Bag<T> {
        let d: Delayed<Vec<T>> = self.reduce_with(
            "distinct",
            &ops::DISTINCT,
            any,
            Bag::<T>::kind(),
            vec![],
            DEFAULT_SPLIT_EVERY,
        );
        Bag::from_parts(vec![d])
    }

    /// How often each distinct record occurs, as `(record, count)` pairs in one partition;
    /// with `sort`, most frequent first (Dask's `frequencies(sort=True)`).
    pub fn frequencies(&self, sort: bool) -> Bag<(T, u64)> {
        let kd = Bag::<T>::kind();
        let f = runner(&ops::FREQUENCIES, ops_body(&ops::FREQUENCIES), &[kd], any);
        let m = runner(&ops::MERGE_COUNTS, ops_body(&ops::MERGE_COUNTS), &[kd], any);
        let k = kinds_params(&[kd]);
        let d = tree(
            self.erased(),
            DEFAULT_SPLIT_EVERY,
            Some(("frequencies", f, (k.clone(), vec![], vec![]))),
            (
                "frequencies-combine",
                m.clone(),
                (k.clone(), vec![], vec![0]),
            ),
            ("frequencies-aggregate", m, (k, vec![], vec![sort as u64])),
        );
        Bag::from_parts(vec![d])
    }

    /// Reduces with closures: `perpartition` turns each partition into a value,
    /// `aggregate` combines lists of those in a tree of fan-in `split_every` (Dask's
    /// `reduction`). Local schedulers; see [`Bag::reduction_op`].
    pub fn reduction<A: Data>(
        &self,
        perpartition: impl Fn(Vec<T>) -> A + Send + Sync + 'static,
        aggregate: impl Fn(Vec<A>) -> A + Send + Sync + Clone + 'static,
        split_every: usize,
    ) -> Delayed<A> {
        local_tree(
            &self.parts,
            split_every,
            "reduction",
            move |p| Ok(perpartition(p)),
            move |v| Ok(aggregate(v)),
        )
    }

    /// [`Bag::reduction`] with registered functions `perpartition: fn(Vec<T>) -> A` and
    /// `aggregate: fn(Vec<A>) -> A`; runs on every scheduler.
    pub fn reduction_op<A>(
        &self,
        perpartition: &'static OpDef,
        aggregate: &'static OpDef,
        split_every: usize,
    ) -> Delayed<A> {
        let mut t = Tokenizer::new();
        t.write_str(perpartition.name());
        t.write_str(aggregate.name());
        for p in &self.parts {
            t.write_token(p.key().token());
        }
        let token = t.finish();
        let mut level: Vec<Delayed<()>> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Delayed::<()>::from_task(
                    part_key(perpartition.short_name(), token, i),
                    Task::call(perpartition, [Arg::Key(p.key())]),
                    [p.erase()],
                )
            })
            .collect();
        let split_every = split_every.max(2);
        let mut depth = 0u32;
        let agg = |depth: u32, i: usize, g: Vec<Delayed<()>>| {
            let task = Task::call(
                aggregate,
                [Arg::List(g.iter().map(|d| Arg::Key(d.key())).collect())],
            );
            let key = Key::block(aggregate.short_name(), token, &[depth, i as u32]);
            (key, task, g)
        };
        while level.len() > split_every {
            depth += 1;
            level = level
                .chunks(split_every)
                .enumerate()
                .map(|(i, g)| {
                    let (key, task, g) = agg(depth, i, g.to_vec());
                    Delayed::<()>::from_task(key, task, g)
                })
                .collect();
        }
        let (key, task, g) = agg(depth + 1, 0, level);
        Delayed::from_task(key, task, g)
    }

    /// Folds the records with `binop(acc, record)` from `initial` in each partition, then
    /// the partitions' results with `combine(acc, acc)` from `initial` (Dask's `fold`; when
    /// `combine` is `binop` on accumulators, pass it twice). Local schedulers.
    pub fn fold<A: Data>(
        &self,
        initial: A,
        binop: impl Fn(A, T) -> A + Send + Sync + 'static,
        combine: impl Fn(A, A) -> A + Send + Sync + Clone + 'static,
    ) -> Delayed<A> {
        let init = initial.clone();
        self.reduction(
            move |p| p.into_iter().fold(init.clone(), &binop),
            move |v: Vec<A>| v.into_iter().fold(initial.clone(), &combine),
            DEFAULT_SPLIT_EVERY,
        )
    }

    /// Folds by key in one pass, Dask's `foldby`: records with equal `key(record)` are
    /// folded with `binop(acc, record)` from `initial` within each partition, and the
    /// partitions' accumulators with `combine(acc, acc)` from `combine_initial`. Returns
    /// `(key, accumulator)` pairs in one partition. Local schedulers.
    ///
    /// ```
    /// use oxidask_bag::Bag;
    /// use oxidask_core::Collection;
    /// # oxidask_core::compute::with_scheduler(std::sync::Arc::new(oxidask_core::compute::Inline), || {
    /// let b = Bag::from_sequence(1..=10i64, 3);
    /// // Sum of evens and of odds.
    /// let mut r = b.foldby(|x| x % 2 == 0, 0, |acc, x| acc + x, 0, |a, b| a + b).compute().unwrap();
    /// r.sort();
    /// assert_eq!(r, vec![(false, 25), (true, 30)]);
    /// # });
    /// ```
    pub fn foldby<K, A>(
        &self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        initial: A,
        binop: impl Fn(A, T) -> A + Send + Sync + 'static,
        combine_initial: A,
        combine: impl Fn(A, A) -> A + Send + Sync + Clone + 'static,
    ) -> Bag<(K, A)>
    where
        K: Data + Hash + Eq,
        A: Data,
    {
        let chunk = move |p: Vec<T>| {
            let mut m: FxHashMap<K, A> = FxHashMap::default();
            let mut order: Vec<K> = Vec::new();
            for x in p {
                let k = key(&x);
                let acc = match m.remove(&k) {
                    Some(a) => a,
                    None => {
                        order.push(k.clone());
                        initial.clone()
                    }
                };
                m.insert(k, binop(acc, x));
            }
            Ok(order
                .into_iter()
                .map(|k| {
                    let a = m.remove(&k).expect("every key seen has an accumulator");
                    (k, a)
                })
                .collect::<Vec<(K, A)>>())
        };
        let merge = move |parts: Vec<Vec<(K, A)>>| {
            let mut m: FxHashMap<K, A> = FxHashMap::default();
            let mut order: Vec<K> = Vec::new();
            for (k, a) in parts.into_iter().flatten() {
                let acc = match m.remove(&k) {
                    Some(x) => x,
                    None => {
                        order.push(k.clone());
                        combine_initial.clone()
                    }
                };
                m.insert(k, combine(acc, a));
            }
            Ok(order
                .into_iter()
                .map(|k| {
                    let a = m.remove(&k).expect("every key seen has an accumulator");
                    (k, a)
                })
                .collect::<Vec<(K, A)>>())
        };
        let d = local_tree(&self.parts, DEFAULT_SPLIT_EVERY, "foldby", chunk, merge);
        Bag::from_parts(vec![d])
    }

    /// Groups records by `key` through a shuffle into `npartitions` partitions (Dask's
    /// `groupby(key, shuffle="tasks")`): each output partition holds `(key, records)`
    /// pairs, every record of a key in one group, in input order. Local schedulers.
    pub fn groupby<K>(
        &self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        npartitions: usize,
    ) -> Bag<(K, Vec<T>)>
    where
        K: Data + Hash + Eq,
    {
        let n = npartitions.max(1);
        let key = std::sync::Arc::new(key);
        // Split: each input partition into n buckets by the key's hash.
        let split: Vec<Delayed<Vec<Vec<T>>>> = {
            let key = key.clone();
            local_layer(&self.parts, "groupby-split", move |p: Vec<T>| {
                let mut buckets: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
                for x in p {
                    let h = hash_of(&key(&x));
                    buckets[(h % n as u64) as usize].push(x);
                }
                Ok(buckets)
            })
        };
        // Each output j picks bucket j of every split and groups.
        let split_erased: Vec<Delayed<()>> = split.iter().map(Delayed::erase).collect();
        let parts = (0..n)
            .map(|j| {
                let key = key.clone();
                let d: Delayed<Vec<(K, Vec<T>)>> = local_list::<Vec<Vec<T>>, Vec<(K, Vec<T>)>>(
                    "groupby-collect",
                    split_erased.clone(),
                    move |splits| {
                        let mut index: FxHashMap<K, usize> = FxHashMap::default();
                        let mut out: Vec<(K, Vec<T>)> = Vec::new();
                        for s in splits {
                            let Some(bucket) = s.into_iter().nth(j) else {
                                continue;
                            };
                            for x in bucket {
                                let k = key(&x);
                                match index.get(&k) {
                                    Some(&i) => out[i].1.push(x),
                                    None => {
                                        index.insert(k.clone(), out.len());
                                        out.push((k, vec![x]));
                                    }
                                }
                            }
                        }
                        Ok(out)
                    },
                );
                d
            })
            .collect();
        Bag::from_parts(parts)
    }

    /// The `k` records with the largest `key`, largest first, in one partition (Dask's
    /// `topk(k, key=...)`). Local schedulers.
    pub fn topk_by<K: Ordered>(
        &self,
        k: usize,
        key: impl Fn(&T) -> K + Send + Sync + Clone + 'static,
    ) -> Bag<T> {
        let key2 = key.clone();
        let d = local_tree(
            &self.parts,
            DEFAULT_SPLIT_EVERY,
            "topk",
            move |p: Vec<T>| Ok(top_k_by(p, k, &key)),
            move |v: Vec<Vec<T>>| Ok(top_k_by(v.into_iter().flatten().collect(), k, &key2)),
        );
        Bag::from_parts(vec![d])
    }
}

/// A 64-bit hash of a key's encoding (stable across processes of one build).
fn hash_of<K: Data>(k: &K) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&oxidask_core::encode(k))
}

impl<T: Data + Ordered> Bag<T> {
    fn ordered_kind() -> Kind {
        match kind::registered::<T>() {
            Some(k) if k.topk.is_some() => k,
            _ => Kind::sortable::<T>(),
        }
    }

    /// The `k` largest records, largest first, in one partition (Dask's `topk(k)`).
    pub fn topk(&self, k: usize) -> Bag<T> {
        let d = self.reduce_with(
            "topk",
            &ops::TOPK,
            |k| k.topk.is_some(),
            Bag::<T>::ordered_kind(),
            vec![k as u64],
            DEFAULT_SPLIT_EVERY,
        );
        Bag::from_parts(vec![d])
    }

    /// The largest record; computing it fails on an empty bag.
    pub fn max(&self) -> Delayed<T> {
        let kd = Bag::<T>::ordered_kind();
        let d = self.reduce_with(
            "max",
            &ops::EXTREME,
            |k| k.extreme.is_some(),
            kd,
            vec![1],
            DEFAULT_SPLIT_EVERY,
        );
        self.item_of(d, "max", kd)
    }

    /// The smallest record; computing it fails on an empty bag.
    pub fn min(&self) -> Delayed<T> {
        let kd = Bag::<T>::ordered_kind();
        let d = self.reduce_with(
            "min",
            &ops::EXTREME,
            |k| k.extreme.is_some(),
            kd,
            vec![0],
            DEFAULT_SPLIT_EVERY,
        );
        self.item_of(d, "min", kd)
    }
}

impl<T: Numeric> Bag<T> {
    fn numeric_kind() -> Kind {
        match kind::registered::<T>() {
            Some(k) if k.sum.is_some() => k,
            _ => Kind::float::<T>(),
        }
    }

    /// The sum of the records (zero for an empty bag).
    pub fn sum(&self) -> Delayed<T> {
        let kd = Bag::<T>::numeric_kind();
        let d = self.reduce_with(
            "sum",
            &ops::SUM,
            |k| k.sum.is_some(),
            kd,
            vec![],
            DEFAULT_SPLIT_EVERY,
        );
        self.item_of(d, "sum", kd)
    }

    fn moments(&self, which: u64, ddof: u64) -> Delayed<f64> {
        let kd = Bag::<T>::numeric_kind();
        let m = runner(&ops::MOMENTS, ops_body(&ops::MOMENTS), &[kd], |k| {
            k.moments.is_some()
        });
        let merge = runner(&ops::MERGE_MOMENTS, ops_body(&ops::MERGE_MOMENTS), &[], any);
        let fin = runner(
            &ops::FINISH_MOMENTS,
            ops_body(&ops::FINISH_MOMENTS),
            &[],
            any,
        );
        tree(
            self.erased(),
            DEFAULT_SPLIT_EVERY,
            Some(("moments", m, (kinds_params(&[kd]), vec![], vec![]))),
            ("moments-combine", merge, (vec![], vec![], vec![])),
            (
                "moments-aggregate",
                fin,
                (vec![], vec![], vec![which, ddof]),
            ),
        )
    }

    /// The mean of the records; computing it fails on an empty bag.
    pub fn mean(&self) -> Delayed<f64> {
        self.moments(0, 0)
    }

    /// The variance with `ddof` delta degrees of freedom (Dask's `var(ddof=0)` by default:
    /// pass 0); NaN when there are no more records than `ddof`.
    pub fn var(&self, ddof: u64) -> Delayed<f64> {
        self.moments(1, ddof)
    }

    /// The standard deviation with `ddof` delta degrees of freedom (Dask's `std(ddof=0)`).
    pub fn std(&self, ddof: u64) -> Delayed<f64> {
        self.moments(2, ddof)
    }
}

impl<U: Data> Bag<Vec<U>> {
    /// Concatenates the records, which are lists (Dask's `flatten`).
    pub fn flatten(&self) -> Bag<U> {
        self.step(
            "flatten",
            &ops::FLATTEN,
            &[Bag::<U>::kind()],
            vec![],
            vec![],
        )
    }
}

impl<U: Data> Bag<Result<U, String>> {
    /// The good records of a bag from [`Bag::try_map`] or [`crate::TextReader::json_results`].
    pub fn oks(&self) -> Bag<U> {
        self.step("oks", &ops::OKS, &[Bag::<U>::kind()], vec![], vec![])
    }

    /// The bad records' messages.
    pub fn errs(&self) -> Bag<String> {
        self.step("errs", &ops::ERRS, &[Bag::<U>::kind()], vec![], vec![])
    }

    /// The number of bad records.
    pub fn count_errs(&self) -> Delayed<u64> {
        self.errs().count()
    }
}

impl Bag<Json> {
    /// The field `name` of every record (Dask's `pluck("name")`); a record without it fails
    /// the computation with an error showing the record.
    pub fn pluck(&self, name: &str) -> Bag<Json> {
        self.step("pluck", &ops::PLUCK, &[], vec![name.to_owned()], vec![0])
    }

    /// Item `index` of every record, which are arrays (Dask's `pluck(0)`).
    pub fn pluck_index(&self, index: usize) -> Bag<Json> {
        self.step("pluck", &ops::PLUCK, &[], vec![], vec![1, index as u64])
    }
}

impl<A: Data, B: Data> Bag<(A, B)> {
    /// The first items of the pairs (Dask's `pluck(0)` on tuples). Local schedulers.
    pub fn keys(&self) -> Bag<A> {
        self.map(|(a, _)| a)
    }

    /// The second items of the pairs (Dask's `pluck(1)` on tuples). Local schedulers.
    pub fn values(&self) -> Bag<B> {
        self.map(|(_, b)| b)
    }
}

/// The body a registered operation runs (for its local-closure twin).
fn ops_body(op: &'static OpDef) -> Body {
    ops::body_of_registered(op)
}

impl<T: Data> Collection for Bag<T> {
    type Output = Vec<T>;
    type Persisted = Bag<T>;

    fn keys(&self) -> Vec<Key> {
        self.parts.iter().map(Delayed::key).collect()
    }

    fn build_graph(&self, graph: &mut Graph) {
        for p in &self.parts {
            p.build_graph(graph);
        }
    }

    fn finalize(&self, values: Vec<Value>) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        for (v, p) in values.into_iter().zip(&self.parts) {
            let found = v.type_name();
            let part = v.take::<Vec<T>>().map_err(|_| Error::OutputType {
                key: p.key(),
                expected: std::any::type_name::<Vec<T>>(),
                found,
            })?;
            if out.is_empty() {
                out = part;
            } else {
                out.extend(part);
            }
        }
        Ok(out)
    }

    fn rebuild(&self, values: Vec<Value>) -> Bag<T> {
        Bag::from_parts(
            values
                .into_iter()
                .zip(&self.parts)
                .map(|(v, p)| Delayed::from_task(p.key(), Task::value(v), []))
                .collect(),
        )
    }
}
