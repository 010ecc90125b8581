//! Zarr v3 round trips and errors.

use oxidask_array::{self as da, ChunkSpec};
use oxidask_core::Collection;

use crate::support::{data, run};

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("oxidask-zarr-{}-{name}", std::process::id()))
}

#[test]
fn round_trip_with_any_chunking() {
    let a = data(&[11, 6]);
    let path = tmp("rt.zarr");
    let _ = std::fs::remove_dir_all(&path);
    // Irregular chunks are made regular for Zarr.
    da::from_array(a.clone(), vec![vec![5, 6], vec![2, 4]])
        .to_zarr(&path)
        .unwrap();
    assert!(path.join("zarr.json").exists());
    let stored = da::from_zarr::<f64>(&path, None);
    assert_eq!(stored.chunksize(), vec![6, 4]);
    assert_eq!(run(&stored), a);
    let other = da::from_zarr::<f64>(&path, Some(ChunkSpec::Every(3)));
    assert_eq!(run(&other), a);
    let ints = da::arange::<i32>(0.0, 10.0, 1.0).chunks(4);
    let ipath = tmp("ints.zarr");
    let _ = std::fs::remove_dir_all(&ipath);
    ints.to_zarr(&ipath).unwrap();
    assert_eq!(run(&da::from_zarr::<i32>(&ipath, None)), run(&ints));
    std::fs::remove_dir_all(path).ok();
    std::fs::remove_dir_all(ipath).ok();
}

#[test]
fn wrong_type_missing_store_and_existing_target() {
    let path = tmp("typed.zarr");
    let _ = std::fs::remove_dir_all(&path);
    da::ones::<u8>(4).to_zarr(&path).unwrap();
    let e = da::from_zarr::<f64>(&path, None)
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("uint8") && e.contains("float64"), "{e}");
    let e = da::ones::<u8>(4).to_zarr(&path).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
    let missing = da::from_zarr::<f64>(tmp("missing.zarr"), None)
        .check()
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing.zarr"), "{missing}");
    std::fs::remove_dir_all(path).ok();
    let _ = da::ones::<f64>(1).compute_with(&oxidask_local::Synchronous::new());
}
