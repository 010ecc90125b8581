//! Record kinds: what the built-in operations need to know about a record type, found by the
//! type's name in any process built from the same source.
//!
//! A registered operation cannot be generic, so the built-in bag operations (`count`,
//! `frequencies`, `distinct`, `topk`, …) are each *one* registered operation that receives the
//! record type's name as a parameter and looks up its [`Kind`]: a table of functions
//! monomorphized for that type. The common record types are registered here, so a stock
//! `oxidask worker` runs every built-in operation over them; a program registers its own
//! types with [`register_records!`](crate::register_records). A bag over a type that is not
//! registered still works on the local schedulers: its tasks run the same functions as local
//! closures, which the distributed client refuses with a message saying how to register.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::OnceLock;

use oxidask_core::op::{Input, TaskFailure};
use oxidask_core::{Data, Value};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::json::Json;

/// Result of one step of a built-in operation.
pub(crate) type Fallible<T> = Result<T, TaskFailure>;

/// Total order used by `topk`, `min` and `max` (floats by `total_cmp`, so NaN sorts above
/// every number, as it does for `f64::total_cmp`).
pub trait Ordered {
    /// Compares two records.
    fn order(&self, other: &Self) -> Ordering;
}

macro_rules! ordered_by_ord {
    ($($t:ty),*) => {$(
        impl Ordered for $t {
            fn order(&self, other: &Self) -> Ordering { self.cmp(other) }
        }
    )*};
}
ordered_by_ord!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, bool, char, String);

impl Ordered for f64 {
    fn order(&self, other: &Self) -> Ordering {
        self.total_cmp(other)
    }
}

impl Ordered for f32 {
    fn order(&self, other: &Self) -> Ordering {
        self.total_cmp(other)
    }
}

impl<T: Ordered> Ordered for Vec<T> {
    fn order(&self, other: &Self) -> Ordering {
        for (a, b) in self.iter().zip(other) {
            match a.order(b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        self.len().cmp(&other.len())
    }
}

impl<T: Ordered> Ordered for std::cmp::Reverse<T> {
    fn order(&self, other: &Self) -> Ordering {
        other.0.order(&self.0)
    }
}

impl<T: Ordered> Ordered for Option<T> {
    fn order(&self, other: &Self) -> Ordering {
        match (self, other) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => a.order(b),
        }
    }
}

impl<A: Ordered, B: Ordered> Ordered for (A, B) {
    fn order(&self, other: &Self) -> Ordering {
        self.0.order(&other.0).then_with(|| self.1.order(&other.1))
    }
}

impl<A: Ordered, B: Ordered, C: Ordered> Ordered for (A, B, C) {
    fn order(&self, other: &Self) -> Ordering {
        self.0
            .order(&other.0)
            .then_with(|| self.1.order(&other.1))
            .then_with(|| self.2.order(&other.2))
    }
}

/// Numbers: what `sum`, `mean`, `var` and `std` need.
pub trait Numeric: Data + Copy + Ordered {
    /// The additive identity.
    fn zero() -> Self;
    /// `self + other` (wrapping for integers, as Rust's release builds do).
    fn plus(self, other: Self) -> Self;
    /// The value as an `f64` (for moments).
    fn to_f64(self) -> f64;
}

macro_rules! numeric_int {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            fn zero() -> Self { 0 }
            fn plus(self, other: Self) -> Self { self.wrapping_add(other) }
            fn to_f64(self) -> f64 { self as f64 }
        }
    )*};
}
numeric_int!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl Numeric for f64 {
    fn zero() -> Self {
        0.0
    }
    fn plus(self, other: Self) -> Self {
        self + other
    }
    fn to_f64(self) -> f64 {
        self
    }
}

impl Numeric for f32 {
    fn zero() -> Self {
        0.0
    }
    fn plus(self, other: Self) -> Self {
        self + other
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// Count, mean and sum of squared deviations of a set of numbers (Chan's parallel form).
pub(crate) type Moments = (u64, f64, f64);

/// A function of partitions and one parameter.
pub(crate) type PartsWith<P> = fn(Vec<Input>, P) -> Fallible<Value>;

/// The functions the built-in operations call for one record type `T`, whose partitions are
/// `Vec<T>` values. Capabilities that need more than [`Data`] (an order, numbers) are
/// `None` for kinds registered without them.
#[derive(Clone, Copy)]
pub struct Kind {
    pub(crate) name: fn() -> &'static str,
    pub(crate) len: fn(&Value) -> Fallible<usize>,
    pub(crate) concat: fn(Vec<Input>) -> Fallible<Value>,
    pub(crate) slice: fn(Value, usize, usize) -> Fallible<Value>,
    pub(crate) explode: fn(Value) -> Fallible<Vec<Value>>,
    pub(crate) gather: fn(Vec<Value>) -> Fallible<Value>,
    pub(crate) flatten: fn(Value) -> Fallible<Value>,
    pub(crate) item: fn(Value, &str) -> Fallible<Value>,
    pub(crate) distinct: fn(Vec<Input>) -> Fallible<Value>,
    pub(crate) frequencies: fn(Vec<Input>) -> Fallible<Value>,
    pub(crate) merge_counts: fn(Vec<Input>, bool) -> Fallible<Value>,
    pub(crate) oks: fn(Value) -> Fallible<Value>,
    pub(crate) errs: fn(Value) -> Fallible<Value>,
    pub(crate) topk: Option<PartsWith<usize>>,
    pub(crate) extreme: Option<PartsWith<bool>>,
    pub(crate) sum: Option<fn(Vec<Input>) -> Fallible<Value>>,
    pub(crate) moments: Option<fn(Vec<Input>) -> Fallible<Value>>,
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kind({})", (self.name)())
    }
}

impl Kind {
    /// The kind of any [`Data`] type: records are hashed and compared through their encoding
    /// (`distinct`, `frequencies`); no order, no arithmetic.
    pub fn of<T: Data>() -> Kind {
        Kind {
            name: std::any::type_name::<T>,
            len: len::<T>,
            concat: concat_value::<T>,
            slice: slice::<T>,
            explode: explode::<T>,
            gather: gather::<T>,
            flatten: flatten::<T>,
            item: item::<T>,
            distinct: distinct_encoded::<T>,
            frequencies: frequencies_encoded::<T>,
            merge_counts: merge_counts_encoded::<T>,
            oks: oks::<T>,
            errs: errs::<T>,
            topk: None,
            extreme: None,
            sum: None,
            moments: None,
        }
    }

    /// A kind whose records hash and compare natively (faster `distinct` and `frequencies`).
    pub fn hashed<T: Data + Hash + Eq>() -> Kind {
        Kind {
            distinct: distinct_native::<T>,
            frequencies: frequencies_native::<T>,
            merge_counts: merge_counts_native::<T>,
            ..Kind::of::<T>()
        }
    }

    /// A hashable kind with an order (`topk`, `min`, `max` too).
    pub fn ordered<T: Data + Hash + Eq + Ordered>() -> Kind {
        Kind {
            topk: Some(topk::<T>),
            extreme: Some(extreme::<T>),
            ..Kind::hashed::<T>()
        }
    }

    /// A kind with an order but no native hash (floats, records holding floats).
    pub fn sortable<T: Data + Ordered>() -> Kind {
        Kind {
            topk: Some(topk::<T>),
            extreme: Some(extreme::<T>),
            ..Kind::of::<T>()
        }
    }

    /// Floating-point numbers: ordered, summable, no native hash.
    pub fn float<T: Numeric>() -> Kind {
        Kind {
            sum: Some(sum::<T>),
            moments: Some(moments::<T>),
            ..Kind::sortable::<T>()
        }
    }

    /// Integers: hashable, ordered, summable.
    pub fn integer<T: Numeric + Hash + Eq>() -> Kind {
        Kind {
            sum: Some(sum::<T>),
            moments: Some(moments::<T>),
            ..Kind::ordered::<T>()
        }
    }

    /// The record type's name (`std::any::type_name`).
    pub fn name(&self) -> &'static str {
        (self.name)()
    }
}

/// A kind registered at link time; written by [`register_records!`](crate::register_records).
pub struct KindRegistration(pub fn() -> Kind);

inventory::collect!(KindRegistration);

fn table() -> &'static HashMap<&'static str, Kind> {
    static TABLE: OnceLock<HashMap<&'static str, Kind>> = OnceLock::new();
    TABLE.get_or_init(|| {
        inventory::iter::<KindRegistration>
            .into_iter()
            .map(|r| {
                let k = (r.0)();
                (k.name(), k)
            })
            .collect()
    })
}

/// The registered kind of the record type named `name`, if this binary has one.
pub fn lookup(name: &str) -> Option<Kind> {
    table().get(name).copied()
}

/// The registered kind of `T`, if this binary has one.
pub fn registered<T>() -> Option<Kind> {
    lookup(std::any::type_name::<T>())
}

/// Every registered record type, sorted.
pub fn registered_names() -> Vec<&'static str> {
    let mut v: Vec<_> = table().keys().copied().collect();
    v.sort_unstable();
    v
}

/// The kind named `name`, or an error saying how to register it.
pub(crate) fn find(name: &str) -> Fallible<Kind> {
    lookup(name).ok_or_else(|| {
        TaskFailure::unavailable(format!(
            "bag record type `{name}` is not registered in this process: add \
             `oxidask_bag::register_records!({name})` to the program and run its workers from \
             the same program (`oxidask::distributed::run_if_worker()`)"
        ))
    })
}

// ---- the monomorphized functions -------------------------------------------------------

/// Takes the partitions of a list argument (or one partition) as owned vectors.
pub(crate) fn parts<T: Data>(inputs: Vec<Input>) -> Fallible<Vec<Vec<T>>> {
    let mut out = Vec::with_capacity(inputs.len());
    for i in inputs {
        match i {
            Input::Value(v) => out.push(v.take::<Vec<T>>()?),
            Input::List(items) => out.extend(parts::<T>(items)?),
        }
    }
    Ok(out)
}

fn concat_vecs<T>(mut parts: Vec<Vec<T>>) -> Vec<T> {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    let n = parts.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(n);
    for p in parts {
        out.extend(p);
    }
    out
}

fn len<T: Data>(v: &Value) -> Fallible<usize> {
    v.downcast_ref::<Vec<T>>()
        .map(Vec::len)
        .ok_or_else(|| TaskFailure::type_mismatch(std::any::type_name::<Vec<T>>(), v.type_name()))
}

fn concat_value<T: Data>(inputs: Vec<Input>) -> Fallible<Value> {
    Ok(Value::new(concat_vecs(parts::<T>(inputs)?)))
}

fn slice<T: Data>(v: Value, start: usize, end: usize) -> Fallible<Value> {
    let mut p = v.take::<Vec<T>>()?;
    let end = end.min(p.len());
    let start = start.min(end);
    p.truncate(end);
    if start > 0 {
        p.drain(..start);
    }
    Ok(Value::new(p))
}

fn explode<T: Data>(v: Value) -> Fallible<Vec<Value>> {
    Ok(v.take::<Vec<T>>()?.into_iter().map(Value::new).collect())
}

fn gather<T: Data>(values: Vec<Value>) -> Fallible<Value> {
    let out: Fallible<Vec<T>> = values.into_iter().map(|v| v.take::<T>()).collect();
    Ok(Value::new(out?))
}

fn flatten<T: Data>(v: Value) -> Fallible<Value> {
    Ok(Value::new(concat_vecs(v.take::<Vec<Vec<T>>>()?)))
}

fn item<T: Data>(v: Value, what: &str) -> Fallible<Value> {
    match v.take::<Vec<T>>()?.into_iter().next() {
        Some(x) => Ok(Value::new(x)),
        None => Err(TaskFailure::msg(format!(
            "{what} of an empty bag: it has no records"
        ))),
    }
}

fn encoded<T: Data>(x: &T) -> Vec<u8> {
    oxidask_core::encode(x)
}

fn distinct_encoded<T: Data>(inputs: Vec<Input>) -> Fallible<Value> {
    let mut seen = FxHashSet::default();
    let mut out = Vec::new();
    for p in parts::<T>(inputs)? {
        for x in p {
            if seen.insert(encoded(&x)) {
                out.push(x);
            }
        }
    }
    Ok(Value::new(out))
}

fn distinct_native<T: Data + Hash + Eq>(inputs: Vec<Input>) -> Fallible<Value> {
    let mut seen = FxHashSet::default();
    let mut out = Vec::new();
    for p in parts::<T>(inputs)? {
        for x in p {
            if !seen.contains(&x) {
                seen.insert(x.clone());
                out.push(x);
            }
        }
    }
    Ok(Value::new(out))
}

fn frequencies_encoded<T: Data>(inputs: Vec<Input>) -> Fallible<Value> {
    let mut index: FxHashMap<Vec<u8>, usize> = FxHashMap::default();
    let mut out: Vec<(T, u64)> = Vec::new();
    for p in parts::<T>(inputs)? {
        for x in p {
            match index.entry(encoded(&x)) {
                std::collections::hash_map::Entry::Occupied(e) => out[*e.get()].1 += 1,
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(out.len());
                    out.push((x, 1));
                }
            }
        }
    }
    Ok(Value::new(out))
}

fn frequencies_native<T: Data + Hash + Eq>(inputs: Vec<Input>) -> Fallible<Value> {
    let mut counts: FxHashMap<T, u64> = FxHashMap::default();
    for p in parts::<T>(inputs)? {
        for x in p {
            *counts.entry(x).or_insert(0) += 1;
        }
    }
    Ok(Value::new(counts.into_iter().collect::<Vec<(T, u64)>>()))
}

/// Sorts counts by count, largest first; ties keep their order.
fn sort_counts<T>(v: &mut [(T, u64)]) {
    v.sort_by_key(|x| std::cmp::Reverse(x.1));
}

fn merge_counts_encoded<T: Data>(inputs: Vec<Input>, sort: bool) -> Fallible<Value> {
    let mut index: FxHashMap<Vec<u8>, usize> = FxHashMap::default();
    let mut out: Vec<(T, u64)> = Vec::new();
    for p in parts::<(T, u64)>(inputs)? {
        for (x, c) in p {
            match index.entry(encoded(&x)) {
                std::collections::hash_map::Entry::Occupied(e) => out[*e.get()].1 += c,
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(out.len());
                    out.push((x, c));
                }
            }
        }
    }
    if sort {
        sort_counts(&mut out);
    }
    Ok(Value::new(out))
}

fn merge_counts_native<T: Data + Hash + Eq>(inputs: Vec<Input>, sort: bool) -> Fallible<Value> {
    let mut ps = parts::<(T, u64)>(inputs)?;
    if ps.len() == 1 && !sort {
        return Ok(Value::new(ps.pop().unwrap_or_default()));
    }
    let mut counts: FxHashMap<T, u64> = FxHashMap::default();
    for p in ps {
        for (x, c) in p {
            *counts.entry(x).or_insert(0) += c;
        }
    }
    let mut out: Vec<(T, u64)> = counts.into_iter().collect();
    if sort {
        sort_counts(&mut out);
    }
    Ok(Value::new(out))
}

fn oks<T: Data>(v: Value) -> Fallible<Value> {
    let p = v.take::<Vec<Result<T, String>>>()?;
    Ok(Value::new(p.into_iter().flatten().collect::<Vec<T>>()))
}

fn errs<T: Data>(v: Value) -> Fallible<Value> {
    let p = v.take::<Vec<Result<T, String>>>()?;
    Ok(Value::new(
        p.into_iter()
            .filter_map(Result::err)
            .collect::<Vec<String>>(),
    ))
}

/// The `k` largest records, largest first (ties keep their first-seen order).
pub(crate) fn top_k_by<T, K: Ordered>(items: Vec<T>, k: usize, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut keyed: Vec<(K, usize, T)> = items
        .into_iter()
        .enumerate()
        .map(|(i, x)| (key(&x), i, x))
        .collect();
    let cmp = |a: &(K, usize, T), b: &(K, usize, T)| b.0.order(&a.0).then(a.1.cmp(&b.1));
    if k < keyed.len() {
        if k == 0 {
            return Vec::new();
        }
        keyed.select_nth_unstable_by(k - 1, cmp);
        keyed.truncate(k);
    }
    keyed.sort_by(cmp);
    keyed.into_iter().map(|(_, _, x)| x).collect()
}

fn topk<T: Data + Ordered>(inputs: Vec<Input>, k: usize) -> Fallible<Value> {
    let all = concat_vecs(parts::<T>(inputs)?);
    Ok(Value::new(top_k_by(all, k, |x: &T| Wrap(x.clone()))))
}

/// Orders by a record itself (for [`top_k_by`]).
struct Wrap<T>(T);
impl<T: Ordered> Ordered for Wrap<T> {
    fn order(&self, other: &Self) -> Ordering {
        self.0.order(&other.0)
    }
}

fn extreme<T: Data + Ordered>(inputs: Vec<Input>, max: bool) -> Fallible<Value> {
    let mut best: Option<T> = None;
    for p in parts::<T>(inputs)? {
        for x in p {
            best = Some(match best {
                None => x,
                Some(b) => {
                    let o = x.order(&b);
                    if (max && o == Ordering::Greater) || (!max && o == Ordering::Less) {
                        x
                    } else {
                        b
                    }
                }
            });
        }
    }
    Ok(Value::new(best.into_iter().collect::<Vec<T>>()))
}

fn sum<T: Numeric>(inputs: Vec<Input>) -> Fallible<Value> {
    let mut s = T::zero();
    for p in parts::<T>(inputs)? {
        for x in p {
            s = s.plus(x);
        }
    }
    Ok(Value::new(vec![s]))
}

fn moments<T: Numeric>(inputs: Vec<Input>) -> Fallible<Value> {
    let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
    for p in parts::<T>(inputs)? {
        for x in p {
            n += 1;
            let x = x.to_f64();
            let d = x - mean;
            mean += d / n as f64;
            m2 += d * (x - mean);
        }
    }
    Ok(Value::new(vec![(n, mean, m2)]))
}

/// Merges moments of disjoint sets (Chan et al.).
pub(crate) fn merge_moments(ms: impl IntoIterator<Item = Moments>) -> Moments {
    let mut acc: Moments = (0, 0.0, 0.0);
    for (n, mean, m2) in ms {
        if n == 0 {
            continue;
        }
        if acc.0 == 0 {
            acc = (n, mean, m2);
            continue;
        }
        let total = acc.0 + n;
        let d = mean - acc.1;
        let new_mean = acc.1 + d * n as f64 / total as f64;
        let new_m2 = acc.2 + m2 + d * d * acc.0 as f64 * n as f64 / total as f64;
        acc = (total, new_mean, new_m2);
    }
    acc
}

/// Registers record types so that bags of them run on every scheduler, including workers of
/// a distributed cluster started from this program.
///
/// `register_records!(T)` gives `T` the operations every [`Data`] type supports; add `hash`
/// for types with `Hash + Eq` (native hashing in `distinct` and `frequencies`), `ord` for
/// types that also implement [`Ordered`] (`topk`, `min`, `max`), `sortable` for ordered types
/// without `Hash` (records holding floats). Steps that make new record types need those
/// registered too for their later steps to run on workers: `frequencies` over `T` gives
/// `(T, u64)` records (`register_records!(hash (T, u64))`).
///
/// ```
/// use oxidask_bag::{register_records, kind};
///
/// #[derive(Clone, Debug, PartialEq, Eq, Hash, oxidask_core::Data)]
/// #[data(crate = oxidask_core)]
/// pub struct Visit { pub page: String, pub ms: u64 }
///
/// register_records!(hash Visit);
/// assert!(kind::registered::<Visit>().is_some());
/// ```
#[macro_export]
macro_rules! register_records {
    (hash $t:ty) => { $crate::register_records!(@with $t, $crate::kind::Kind::hashed::<$t>); };
    (ord $t:ty) => { $crate::register_records!(@with $t, $crate::kind::Kind::ordered::<$t>); };
    (sortable $t:ty) => { $crate::register_records!(@with $t, $crate::kind::Kind::sortable::<$t>); };
    (integer $t:ty) => { $crate::register_records!(@with $t, $crate::kind::Kind::integer::<$t>); };
    (float $t:ty) => { $crate::register_records!(@with $t, $crate::kind::Kind::float::<$t>); };
    ($t:ty) => { $crate::register_records!(@with $t, $crate::kind::Kind::of::<$t>); };
    (@with $t:ty, $make:expr) => {
        $crate::__private::inventory::submit! { $crate::kind::KindRegistration($make) }
        $crate::__private::inventory::submit! { $crate::__private::TypeCodec::of::<$t>() }
        $crate::__private::inventory::submit! { $crate::__private::TypeCodec::of::<::std::vec::Vec<$t>>() }
        $crate::__private::inventory::submit! {
            $crate::__private::TypeCodec::of::<::std::vec::Vec<::std::vec::Vec<$t>>>()
        }
        $crate::__private::inventory::submit! {
            $crate::__private::TypeCodec::of::<::std::vec::Vec<($t, u64)>>()
        }
        $crate::__private::inventory::submit! {
            $crate::__private::TypeCodec::of::<
                ::std::vec::Vec<::std::result::Result<$t, ::std::string::String>>,
            >()
        }
    };
}

// The record types every binary knows (so a stock worker runs bags of them).
register_records!(ord String);
register_records!(Json);
register_records!(integer i64);
register_records!(integer i32);
register_records!(integer u64);
register_records!(integer u32);
register_records!(integer usize);
register_records!(float f64);
register_records!(float f32);
register_records!(ord bool);
register_records!(ord char);
register_records!(ord Vec<String>);
register_records!(ord Vec<i64>);
register_records!(sortable Vec<f64>);
register_records!(Vec<Json>);
register_records!(ord(String, u64));
register_records!(ord(String, i64));
register_records!(sortable(String, f64));
register_records!(ord(String, String));
register_records!((String, Json));
register_records!(ord(i64, i64));
register_records!(ord(i64, u64));
register_records!((Json, u64));
register_records!(ord(String, Vec<String>));
