use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use proptest::prelude::*;

use super::*;
use crate::tokenize::tokenize;

fn round_trip<T: Data + PartialEq + std::fmt::Debug>(v: &T) {
    let bytes = encode(v);
    let back: T = decode(&bytes).unwrap_or_else(|e| panic!("decoding {v:?}: {e}"));
    assert_eq!(&back, v);
    assert_eq!(tokenize(&back), tokenize(v));
}

/// Garbage must decode to an error or a value, never a panic or a huge allocation.
fn no_panic_on<T: Data>(bytes: &[u8]) {
    let _ = decode::<T>(bytes);
}

#[derive(Clone, Debug, PartialEq, crate::Data)]
#[data(crate = crate)]
struct Station {
    name: String,
    readings: Vec<f64>,
    elevation: Option<i32>,
    tags: BTreeMap<String, u8>,
}

#[derive(Clone, Debug, PartialEq, crate::Data)]
#[data(crate = crate)]
struct Pair(u8, String);

#[derive(Clone, Debug, PartialEq, crate::Data)]
#[data(crate = crate)]
struct Unit;

#[derive(Clone, Debug, PartialEq, crate::Data)]
#[data(crate = crate)]
enum Shape {
    Point,
    Circle { r: f64 },
    Poly(Vec<(f64, f64)>),
}

#[derive(Clone, Debug, PartialEq, crate::Data)]
#[data(crate = crate)]
struct Wrapper<T> {
    inner: T,
    count: usize,
}

fn station() -> impl Strategy<Value = Station> {
    (
        ".{0,12}",
        prop::collection::vec(
            any::<f64>().prop_filter("NaN != NaN", |x| !x.is_nan()),
            0..20,
        ),
        any::<Option<i32>>(),
        prop::collection::btree_map(".{0,4}", any::<u8>(), 0..5),
    )
        .prop_map(|(name, readings, elevation, tags)| Station {
            name,
            readings,
            elevation,
            tags,
        })
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Point),
        any::<i32>().prop_map(|r| Shape::Circle { r: r as f64 }),
        prop::collection::vec((any::<i16>(), any::<i16>()), 0..8)
            .prop_map(|v| Shape::Poly(v.into_iter().map(|(a, b)| (a as f64, b as f64)).collect())),
    ]
}

proptest! {
    #[test]
    fn primitives_round_trip(a: u8, b: i16, c: u32, d: i64, e: u128, f: i128, g: bool, h: char, i: usize, j: isize) {
        round_trip(&a); round_trip(&b); round_trip(&c); round_trip(&d); round_trip(&e);
        round_trip(&f); round_trip(&g); round_trip(&h); round_trip(&i); round_trip(&j);
    }

    #[test]
    fn floats_round_trip_bit_exactly(x: f64, y: f32) {
        let bx: f64 = decode(&encode(&x)).unwrap();
        let by: f32 = decode(&encode(&y)).unwrap();
        prop_assert_eq!(bx.to_bits(), x.to_bits());
        prop_assert_eq!(by.to_bits(), y.to_bits());
    }

    #[test]
    fn strings_and_bytes_round_trip(s: String, b: Vec<u8>) {
        round_trip(&s);
        round_trip(&b);
        round_trip(&bytes::Bytes::from(b.clone()));
    }

    #[test]
    fn sequences_round_trip(v: Vec<i64>, w: Vec<String>, o: Option<Vec<u16>>, d: VecDeque<u32>, a: [u8; 5]) {
        round_trip(&v); round_trip(&w); round_trip(&o); round_trip(&d); round_trip(&a);
    }

    #[test]
    fn tuples_and_results_round_trip(t: (u8, String, (i64, bool)), r: Result<u32, String>) {
        round_trip(&t);
        round_trip(&r);
        round_trip(&(1u8, 2u16, 3u32, 4u64, 5i8, 6i16, 7i32, 8i64, String::new(), ()));
    }

    #[test]
    fn maps_and_sets_round_trip(m: HashMap<String, Vec<u8>>, s: HashSet<i32>, b: BTreeMap<u8, String>, bs: BTreeSet<i64>) {
        round_trip(&m); round_trip(&s); round_trip(&b); round_trip(&bs);
    }

    #[test]
    fn derived_structs_round_trip(st in station(), sh in shape(), p: (u8, String)) {
        round_trip(&st);
        round_trip(&sh);
        round_trip(&Pair(p.0, p.1.clone()));
        round_trip(&Unit);
        round_trip(&Wrapper { inner: st.clone(), count: 3 });
        round_trip(&vec![sh.clone(), Shape::Point]);
    }

    #[test]
    fn garbage_never_panics(bytes: Vec<u8>) {
        no_panic_on::<String>(&bytes);
        no_panic_on::<Vec<String>>(&bytes);
        no_panic_on::<Vec<f64>>(&bytes);
        no_panic_on::<HashMap<String, Vec<u64>>>(&bytes);
        no_panic_on::<Station>(&bytes);
        no_panic_on::<Shape>(&bytes);
        no_panic_on::<(bool, char, Option<u8>)>(&bytes);
    }

    #[test]
    fn truncated_encodings_are_errors(st in station(), cut in 0usize..64) {
        let bytes = encode(&st);
        if cut < bytes.len() {
            prop_assert!(decode::<Station>(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn equal_hash_maps_tokenize_equally_whatever_the_layout(entries in prop::collection::vec((".{0,6}", any::<u32>()), 0..30)) {
        let first: HashMap<String, u32> = entries.into_iter().collect();
        let mut pairs: Vec<(&String, &u32)> = first.iter().collect();
        pairs.sort();
        pairs.reverse();
        // A different capacity and insertion order give a different iteration order.
        let mut second: HashMap<String, u32> = HashMap::with_capacity(1024);
        for (k, v) in pairs {
            second.insert(k.clone(), *v);
        }
        prop_assert_eq!(tokenize(&first), tokenize(&second));
        let mut third = second.clone();
        third.insert("a key not in the others".into(), 1);
        prop_assert_ne!(tokenize(&first), tokenize(&third));
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = encode(&7u32);
    bytes.push(0);
    assert_eq!(decode::<u32>(&bytes), Err(CodecError::Trailing(1)));
}

#[test]
fn invalid_values_name_what_is_wrong() {
    let err = decode::<bool>(&[2]).unwrap_err();
    assert!(err.to_string().contains("bool"), "{err}");
    let err = decode::<Shape>(&[9]).unwrap_err();
    assert!(
        err.to_string().contains("Shape has no variant number 9"),
        "{err}"
    );
    let err = decode::<String>(&[2, 0xff, 0xfe]).unwrap_err();
    assert!(err.to_string().contains("string"), "{err}");
}

#[test]
fn nbytes_counts_owned_heap() {
    let v: Vec<f64> = Vec::with_capacity(100);
    assert_eq!(v.nbytes(), std::mem::size_of::<Vec<f64>>() + 800);
    let s = String::from("hello");
    assert_eq!(s.nbytes(), std::mem::size_of::<String>() + s.capacity());
    let nested = vec![String::from("ab"), String::from("cde")];
    assert_eq!(
        nested.nbytes(),
        std::mem::size_of::<Vec<String>>()
            + nested.capacity() * std::mem::size_of::<String>()
            + nested[0].capacity()
            + nested[1].capacity()
    );
    let st = Station {
        name: "x".into(),
        readings: vec![1.0; 10],
        elevation: None,
        tags: BTreeMap::new(),
    };
    assert_eq!(
        st.nbytes(),
        std::mem::size_of::<Station>() + st.name.capacity() + st.readings.capacity() * 8
    );
}

#[test]
fn numbers_in_vectors_are_one_block() {
    let v: Vec<u32> = (0..1000).collect();
    // A varint length (2 bytes for 1000) and 4 bytes per number, nothing else.
    assert_eq!(encode(&v).len(), 2 + 4000);
}

#[test]
fn lists_build_vectors_and_refuse_scalars() {
    use crate::op::Input;
    use crate::value::Value;
    let items = vec![
        Input::Value(Value::new(1i64)),
        Input::Value(Value::new(2i64)),
    ];
    assert_eq!(Vec::<i64>::from_list(items.clone()).unwrap(), vec![1, 2]);
    let err = i64::from_list(items).unwrap_err();
    assert!(err.to_string().contains("a list was given"), "{err}");
    let wrong = vec![Input::Value(Value::new(1.5f64))];
    assert!(Vec::<i64>::from_list(wrong).is_err());
}

/// A type that holds itself through a `Vec`: its encoding is one length per level.
#[derive(Clone, Debug, PartialEq, crate::Data)]
#[data(crate = crate)]
struct Nest(Vec<Nest>);

/// A type that holds itself through a `Box`: its encoding is one enum tag per level.
#[derive(Clone, Debug, PartialEq, crate::Data)]
#[data(crate = crate)]
enum Chain {
    End,
    Link(Box<Chain>),
}

/// Runs `f` on a thread with a 2 MiB stack, the size of tokio's and the executors' threads.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn regression_a_million_nested_levels_are_an_error_not_a_stack_overflow() {
    let err = on_small_stack(|| {
        // `Nest` a million levels deep: a length of 1 per level, then an empty one.
        let mut bytes = vec![1u8; 1_000_000];
        bytes.push(0);
        decode::<Nest>(&bytes).unwrap_err()
    });
    assert_eq!(
        err,
        CodecError::TooDeep {
            what: "sequence",
            limit: crate::codec::MAX_NESTING
        }
    );
    assert!(err.to_string().contains("at most 256 containers"), "{err}");
    let err = on_small_stack(|| {
        let mut bytes = vec![1u8; 1_000_000];
        bytes.push(0);
        decode::<Chain>(&bytes).unwrap_err()
    });
    assert!(
        matches!(err, CodecError::TooDeep { what: "box", .. }),
        "{err}"
    );
    let err = on_small_stack(|| {
        // A map whose values are maps: length 1, key 0u8, then the next level.
        let mut bytes = Vec::new();
        for _ in 0..1_000_000 {
            bytes.extend_from_slice(&[1, 0]);
        }
        bytes.push(0);
        #[derive(Clone, Debug, PartialEq, crate::Data)]
        #[data(crate = crate)]
        struct Tree(BTreeMap<u8, Tree>);
        decode::<Tree>(&bytes).unwrap_err()
    });
    assert!(
        matches!(err, CodecError::TooDeep { what: "map", .. }),
        "{err}"
    );
}

#[test]
fn nesting_up_to_the_limit_round_trips_and_one_more_level_does_not() {
    let limit = crate::codec::MAX_NESTING as usize;
    let nest = |depth: usize| {
        let mut n = Nest(Vec::new());
        for _ in 1..depth {
            n = Nest(vec![n]);
        }
        n
    };
    let deepest = nest(limit);
    let bytes = encode(&deepest);
    assert_eq!(bytes.len(), limit, "one byte per level");
    let back = on_small_stack(move || decode::<Nest>(&bytes).unwrap());
    assert_eq!(back, deepest);
    let too_deep = encode(&nest(limit + 1));
    assert!(matches!(
        decode::<Nest>(&too_deep),
        Err(CodecError::TooDeep { .. })
    ));
}
