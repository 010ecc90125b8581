//! Every bag operation against a plain-iterator oracle, on the synchronous and threaded
//! schedulers, with property tests over partitionings (empty partitions, skew).

use std::collections::HashMap;
use std::sync::Arc;

use oxidask_bag::{Bag, Json, TextReader};
use oxidask_core::{Collection, Compute};
use oxidask_local::{Synchronous, Threaded};
use proptest::prelude::*;

fn schedulers() -> Vec<Arc<dyn Compute>> {
    vec![Arc::new(Synchronous::new()), Arc::new(Threaded::new(3))]
}

fn on_each(f: impl Fn()) {
    for s in schedulers() {
        oxidask_core::compute::with_scheduler(s, &f);
    }
}

fn counts<T: std::hash::Hash + Eq + Clone>(xs: &[T]) -> HashMap<T, u64> {
    let mut m = HashMap::new();
    for x in xs {
        *m.entry(x.clone()).or_insert(0) += 1;
    }
    m
}

#[oxidask_core::task(crate = oxidask_core)]
fn triple(x: i64) -> i64 {
    x * 3
}

#[oxidask_core::task(crate = oxidask_core)]
fn is_odd(x: i64) -> bool {
    x % 2 != 0
}

#[oxidask_core::task(crate = oxidask_core)]
fn part_sum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[oxidask_core::task(crate = oxidask_core)]
fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[oxidask_core::task(crate = oxidask_core)]
fn reverse_part(xs: Vec<i64>) -> Vec<i64> {
    xs.into_iter().rev().collect()
}

/// Partitions of `xs` cut at the given points (empty partitions and skew included).
fn cut(xs: &[i64], cuts: &[usize]) -> Vec<Vec<i64>> {
    let mut cs: Vec<usize> = cuts.iter().map(|c| c % (xs.len() + 1)).collect();
    cs.sort();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cs {
        out.push(xs[at..c].to_vec());
        at = c;
    }
    out.push(xs[at..].to_vec());
    out
}

fn check_all(xs: Vec<i64>, cuts: Vec<usize>) {
    let parts = cut(&xs, &cuts);
    let b = Bag::from_partitions(parts.clone());
    assert_eq!(b.npartitions(), parts.len());
    on_each(|| {
        assert_eq!(b.compute().unwrap(), xs);
        // element-wise, closures and registered functions
        let m: Vec<i64> = xs.iter().map(|x| x * 3).collect();
        assert_eq!(b.map(|x| x * 3).compute().unwrap(), m);
        assert_eq!(b.map_op::<i64>(triple::op()).compute().unwrap(), m);
        let odd: Vec<i64> = xs.iter().copied().filter(|x| x % 2 != 0).collect();
        assert_eq!(b.filter(|x| x % 2 != 0).compute().unwrap(), odd);
        assert_eq!(b.filter_op(is_odd::op()).compute().unwrap(), odd);
        let fm: Vec<i64> = xs
            .iter()
            .flat_map(|&x| vec![x; (x.rem_euclid(3)) as usize])
            .collect();
        assert_eq!(
            b.flat_map(|x| vec![x; (x.rem_euclid(3)) as usize])
                .compute()
                .unwrap(),
            fm
        );
        assert_eq!(
            b.map(|x| vec![x; (x.rem_euclid(3)) as usize])
                .flatten()
                .compute()
                .unwrap(),
            fm
        );
        let rev: Vec<i64> = parts.iter().flat_map(|p| p.iter().rev().copied()).collect();
        assert_eq!(
            b.map_partitions(|p| p.into_iter().rev().collect())
                .compute()
                .unwrap(),
            rev
        );
        assert_eq!(
            b.map_partitions_op::<i64>(reverse_part::op())
                .compute()
                .unwrap(),
            rev
        );
        // reductions
        assert_eq!(b.count().compute().unwrap(), xs.len() as u64);
        assert_eq!(b.sum().compute().unwrap(), xs.iter().sum::<i64>());
        assert_eq!(
            b.reduction_op::<i64>(part_sum::op(), total::op(), 3)
                .compute()
                .unwrap(),
            xs.iter().sum::<i64>()
        );
        assert_eq!(
            b.reduction(|p| p.len() as u64, |v| v.iter().sum(), 2)
                .compute()
                .unwrap(),
            xs.len() as u64
        );
        assert_eq!(
            b.fold(0i64, |a, x| a.max(x), |a, c| a.max(c))
                .compute()
                .unwrap(),
            xs.iter().copied().fold(0, i64::max)
        );
        match xs.iter().max() {
            Some(&mx) => {
                assert_eq!(b.max().compute().unwrap(), mx);
                assert_eq!(b.min().compute().unwrap(), *xs.iter().min().unwrap());
                let n = xs.len() as f64;
                let mean = xs.iter().sum::<i64>() as f64 / n;
                let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
                let got = b.mean().compute().unwrap();
                assert!(
                    (got - mean).abs() <= 1e-9 * mean.abs().max(1.0),
                    "{got} {mean}"
                );
                let gv = b.var(0).compute().unwrap();
                assert!((gv - var).abs() <= 1e-9 * var.max(1.0), "{gv} {var}");
                let gs = b.std(0).compute().unwrap();
                assert!((gs - var.sqrt()).abs() <= 1e-9 * var.sqrt().max(1.0));
            }
            None => {
                let e = b.max().compute().unwrap_err().to_string();
                assert!(e.contains("max of an empty bag"), "{e}");
                let e = b.mean().compute().unwrap_err().to_string();
                assert!(e.contains("mean of an empty bag"), "{e}");
            }
        }
        // frequencies, distinct, topk
        let want = counts(&xs);
        let got: HashMap<i64, u64> = b
            .frequencies(false)
            .compute()
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, want);
        let sorted = b.frequencies(true).compute().unwrap();
        assert_eq!(sorted.len(), want.len());
        assert!(sorted.windows(2).all(|w| w[0].1 >= w[1].1));
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<i64> = xs.iter().copied().filter(|x| seen.insert(*x)).collect();
        assert_eq!(b.distinct().compute().unwrap(), distinct);
        let mut desc = xs.clone();
        desc.sort_by(|a, b| b.cmp(a));
        assert_eq!(
            b.topk(3).compute().unwrap(),
            desc[..3.min(desc.len())].to_vec()
        );
        let by_neg: Vec<i64> = {
            let mut v = xs.clone();
            v.sort();
            v.truncate(4);
            v
        };
        assert_eq!(b.topk_by(4, |x| -x).compute().unwrap(), by_neg);
        // foldby and groupby
        let mut fb = b
            .foldby(|x| x.rem_euclid(5), 0i64, |a, x| a + x, 0i64, |a, c| a + c)
            .compute()
            .unwrap();
        fb.sort();
        let mut want_fb: HashMap<i64, i64> = HashMap::new();
        for &x in &xs {
            *want_fb.entry(x.rem_euclid(5)).or_insert(0) += x;
        }
        let mut want_fb: Vec<(i64, i64)> = want_fb.into_iter().collect();
        want_fb.sort();
        assert_eq!(fb, want_fb);
        let g = b.groupby(|x| x.rem_euclid(4), 3);
        assert_eq!(g.npartitions(), 3);
        let mut groups = g.compute().unwrap();
        groups.sort();
        let mut want_g: HashMap<i64, Vec<i64>> = HashMap::new();
        for &x in &xs {
            want_g.entry(x.rem_euclid(4)).or_default().push(x);
        }
        let mut want_g: Vec<(i64, Vec<i64>)> = want_g.into_iter().collect();
        want_g.sort();
        assert_eq!(groups, want_g);
        // take and repartition
        for k in [0, 1, 5, xs.len() + 3] {
            assert_eq!(b.take(k).unwrap(), xs[..k.min(xs.len())].to_vec());
        }
        for n in [1, 2, 5, 13] {
            let r = b.repartition(n);
            assert_eq!(r.npartitions(), n);
            assert_eq!(r.compute().unwrap(), xs);
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn every_operation_agrees_with_a_plain_iterator(
        xs in proptest::collection::vec(-20i64..20, 0..60),
        cuts in proptest::collection::vec(0usize..100, 0..7),
    ) {
        check_all(xs, cuts);
    }
}

#[test]
fn skewed_and_empty_partitions() {
    let xs: Vec<i64> = (0..200).map(|i| (i * 37) % 23).collect();
    check_all(xs.clone(), vec![0, 0, 0, 199, 199, 200]);
    check_all(vec![], vec![0, 0, 0]);
    check_all(xs, vec![]);
}

#[test]
fn from_sequence_partitions_as_dask_does() {
    let b = Bag::from_sequence(0..10i64, 4);
    assert_eq!(b.npartitions(), 4); // 3 + 3 + 3 + 1
    let sizes: Vec<usize> = b
        .partitions()
        .iter()
        .map(|p| p.compute_with(&Synchronous::new()).unwrap().len())
        .collect();
    assert_eq!(sizes, vec![3, 3, 3, 1]);
    assert_eq!(Bag::from_sequence(0..10i64, 3).npartitions(), 3); // 4 + 4 + 2
    assert_eq!(Bag::from_sequence_sized(0..10i64, 4).npartitions(), 3);
    assert_eq!(Bag::<i64>::from_sequence(Vec::new(), 4).npartitions(), 1);
    let d = Bag::from_delayed(vec![
        oxidask_core::delayed(vec![1i64, 2]),
        oxidask_core::delayed(vec![3]),
    ]);
    assert_eq!(d.compute_with(&Synchronous::new()).unwrap(), vec![1, 2, 3]);
}

#[test]
fn strings_json_and_the_bad_records_pattern() {
    on_each(|| {
        let lines = vec![
            r#"{"name": "a", "n": 1}"#.to_string(),
            "not json".to_string(),
            r#"{"name": "b", "n": 2}"#.to_string(),
            r#"{"name": "a", "n": 3}"#.to_string(),
        ];
        let b = Bag::from_sequence(lines, 2);
        let parsed = b.try_map(|l| l.parse::<Json>());
        let good = parsed.oks();
        assert_eq!(good.count().compute().unwrap(), 3);
        assert_eq!(parsed.count_errs().compute().unwrap(), 1);
        let errs = parsed.errs().compute().unwrap();
        assert!(errs[0].contains("expected"), "{errs:?}");
        let names = good.pluck("name").map(|j| j.as_str().unwrap().to_owned());
        let f: HashMap<String, u64> = names
            .frequencies(false)
            .compute()
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(f, HashMap::from([("a".into(), 2), ("b".into(), 1)]));
        let e = good.pluck("missing").compute().unwrap_err().to_string();
        assert!(e.contains("no field \"missing\""), "{e}");
        // JSON values are counted through their encoding.
        let jf = good.pluck("name").frequencies(true).compute().unwrap();
        assert_eq!(jf[0], (Json(serde_json::json!("a")), 2));
        let arr = Bag::from_sequence(
            vec![
                Json(serde_json::json!([1, 2])),
                Json(serde_json::json!([3, 4])),
            ],
            1,
        );
        assert_eq!(
            arr.pluck_index(1).compute().unwrap(),
            vec![Json(serde_json::json!(2)), Json(serde_json::json!(4))]
        );
    });
}

/// A record type nobody registered still works locally (through local closures).
#[derive(Clone, Debug, PartialEq, Eq, Hash, oxidask_core::Data)]
#[data(crate = oxidask_core)]
struct Unregistered {
    k: u8,
}

#[test]
fn unregistered_record_types_run_locally() {
    on_each(|| {
        let b = Bag::from_sequence((0..20u8).map(|k| Unregistered { k: k % 3 }), 4);
        assert_eq!(b.count().compute().unwrap(), 20);
        assert_eq!(b.distinct().compute().unwrap().len(), 3);
        assert_eq!(b.frequencies(true).compute().unwrap()[0].1, 7);
        assert_eq!(b.repartition(7).compute().unwrap().len(), 20);
    });
}

#[test]
fn read_text_blocks_globs_compression_and_delimiters() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 0..500 {
        lines.push(format!("line {i} {}\n", "x".repeat(i % 17)));
    }
    let text: String = lines.concat();
    std::fs::write(dir.path().join("a.txt"), &text).unwrap();
    std::fs::write(dir.path().join("b.txt"), "last line without newline").unwrap();
    {
        use std::io::Write;
        let f = std::fs::File::create(dir.path().join("c.txt.gz")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        gz.write_all(b"gz one\ngz two\n").unwrap();
        gz.finish().unwrap();
    }
    let mut want = lines.clone();
    want.push("last line without newline".into());
    want.push("gz one\n".into());
    want.push("gz two\n".into());
    on_each(|| {
        for bs in [1u64, 7, 64, 1000, 1 << 20] {
            let b = TextReader::new(dir.path()).blocksize(bs).lines().unwrap();
            assert_eq!(b.compute().unwrap(), want, "blocksize {bs}");
        }
        let g = TextReader::new(dir.path().join("*.txt").to_string_lossy().into_owned())
            .lines()
            .unwrap();
        assert_eq!(g.npartitions(), 2);
        assert_eq!(g.count().compute().unwrap(), 501);
    });
    // Other delimiters, split across blocks.
    std::fs::write(dir.path().join("semi"), "a;bb;ccc;;dddd;e").unwrap();
    for bs in [1u64, 2, 3, 5, 100] {
        let b = TextReader::new(dir.path().join("semi"))
            .delimiter(";")
            .blocksize(bs)
            .lines()
            .unwrap();
        assert_eq!(
            b.compute_with(&Synchronous::new()).unwrap(),
            vec!["a;", "bb;", "ccc;", ";", "dddd;", "e"],
            "blocksize {bs}"
        );
    }
    std::fs::write(dir.path().join("crlf"), "a\r\nbb\r\n\r\nccc").unwrap();
    for bs in [1u64, 2, 3, 4, 100] {
        let b = TextReader::new(dir.path().join("crlf"))
            .delimiter("\r\n")
            .blocksize(bs)
            .lines()
            .unwrap();
        assert_eq!(
            b.compute_with(&Synchronous::new()).unwrap(),
            vec!["a\r\n", "bb\r\n", "\r\n", "ccc"],
            "blocksize {bs}"
        );
    }
}

#[test]
fn bad_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("latin1.txt");
    let mut bytes = b"fine\nstill fine\n".to_vec();
    bytes.extend_from_slice(b"caf\xe9\nmore\n");
    std::fs::write(&p, bytes).unwrap();
    for bs in [4u64, 1000] {
        let e = TextReader::new(&p)
            .blocksize(bs)
            .lines()
            .unwrap()
            .compute_with(&Synchronous::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("latin1.txt: line 3 is not valid UTF-8"), "{e}");
    }
    let j = dir.path().join("records.jsonl");
    let mut text = String::new();
    for i in 0..40 {
        if i == 17 || i == 31 {
            text.push_str("{\"id\": oops}\n");
        } else {
            text.push_str(&format!("{{\"id\": {i}}}\n"));
        }
    }
    std::fs::write(&j, text).unwrap();
    for bs in [30u64, 1 << 20] {
        let r = TextReader::new(&j).blocksize(bs);
        let e = r
            .json()
            .unwrap()
            .compute_with(&Synchronous::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("records.jsonl:18: malformed JSON"), "{e}");
        let res = r.json_results().unwrap();
        let on = Threaded::new(2);
        let good = res.oks().compute_with(&on).unwrap();
        assert_eq!(good.len(), 38);
        let ids: Vec<i64> = good.iter().map(|g| g["id"].as_i64().unwrap()).collect();
        let want: Vec<i64> = (0..40).filter(|i| *i != 17 && *i != 31).collect();
        assert_eq!(ids, want);
        let errs = res.errs().compute_with(&on).unwrap();
        assert_eq!(errs.len(), 2);
        assert!(
            errs[0].contains("records.jsonl:18:") && errs[1].contains("records.jsonl:32:"),
            "{errs:?}"
        );
        assert_eq!(res.count_errs().compute_with(&on).unwrap(), 2);
    }
    let e = TextReader::new(dir.path().join("nope*.txt").to_string_lossy().into_owned())
        .lines()
        .unwrap_err()
        .to_string();
    assert!(e.contains("no file matches"), "{e}");
    let e = TextReader::new("/no/such/file")
        .lines()
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such file"), "{e}");
}

#[test]
fn to_textfiles_round_trips_and_publishes_only_complete_output() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bag::from_sequence((0..100).map(|i| format!("row {i}")), 4);
    let out = dir.path().join("out");
    let written = b.to_textfiles(&out).unwrap();
    assert_eq!(written.len(), 4);
    let back = TextReader::new(&out)
        .lines()
        .unwrap()
        .map(|l| l.trim_end().to_owned());
    assert_eq!(
        back.compute_with(&Synchronous::new()).unwrap(),
        b.compute_with(&Synchronous::new()).unwrap()
    );
    let pattern = dir.path().join("gz/part-*.txt.gz");
    let written = b.to_textfiles(pattern.to_string_lossy().as_ref()).unwrap();
    assert!(written[3].ends_with("part-3.txt.gz"));
    let back = TextReader::new(dir.path().join("gz")).lines().unwrap();
    assert_eq!(back.count().compute_with(&Synchronous::new()).unwrap(), 100);
    // A failing partition publishes nothing.
    let bad = b.map(|s| if s == "row 60" { panic!("bad row") } else { s });
    let failed = dir.path().join("failed");
    assert!(bad.to_textfiles(&failed).is_err());
    let visible: Vec<_> = std::fs::read_dir(&failed)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
}
