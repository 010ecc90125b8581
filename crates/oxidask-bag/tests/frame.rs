//! Bags to and from dataframes (feature `dataframe`), against the records themselves.
#![cfg(feature = "dataframe")]

use oxidask_bag::{from_dataframe, Bag, Json};
use oxidask_core::Collection;
use oxidask_dataframe::polars::prelude::{self as pl, DataType};
use oxidask_local::{Synchronous, Threaded};
use serde_json::json;

fn records() -> Vec<Json> {
    (0..25)
        .map(|i| {
            if i % 7 == 3 {
                Json(json!({"name": format!("n{i}")}))
            } else {
                Json(json!({"name": format!("n{i}"), "n": i, "x": i as f64 / 2.0, "ok": i % 2 == 0, "extra": [1]}))
            }
        })
        .collect()
}

fn schema() -> pl::Schema {
    pl::Schema::from_iter([
        ("name".into(), DataType::String),
        ("n".into(), DataType::Int64),
        ("x".into(), DataType::Float64),
        ("ok".into(), DataType::Boolean),
    ])
}

#[test]
fn json_records_to_a_dataframe_and_back() {
    let recs = records();
    let b = Bag::from_sequence(recs.clone(), 4);
    let df = b.to_dataframe(&schema()).unwrap();
    let got = df.compute_with(&Threaded::new(2)).unwrap();
    assert_eq!(got.height(), 25);
    let n = got.column("n").unwrap().i64().unwrap();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(n.get(i), r.get("n").and_then(|v| v.as_i64()), "row {i}");
    }
    assert_eq!(got.column("n").unwrap().null_count(), 4);
    let back = from_dataframe(&df)
        .compute_with(&Synchronous::new())
        .unwrap();
    assert_eq!(back.len(), 25);
    for (r, b) in recs.iter().zip(&back) {
        for c in ["name", "n", "x", "ok"] {
            let want = r.get(c).cloned().unwrap_or(serde_json::Value::Null);
            assert_eq!(b[c], want, "{c} of {r}");
        }
    }
}

#[test]
fn a_field_of_the_wrong_type_names_the_record_and_column() {
    let b = Bag::from_sequence(vec![Json(json!({"n": 1})), Json(json!({"n": "two"}))], 1);
    let schema = pl::Schema::from_iter([("n".into(), DataType::Int64)]);
    let e = b
        .to_dataframe(&schema)
        .unwrap()
        .compute_with(&Synchronous::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("record 1") && e.contains("\"n\""), "{e}");
    let bad = pl::Schema::from_iter([("d".into(), DataType::Date)]);
    let e = b.to_dataframe(&bad).unwrap_err().to_string();
    assert!(e.contains("declare Int64"), "{e}");
}
