//! `.npy` round trips, the format's bytes, and bad files.

use ndarray::{ArrayD, IxDyn};
use oxidask_array::{self as da, ArrayError};
use oxidask_core::Collection;

use crate::support::{data, run};

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("oxidask-npy-{}-{name}", std::process::id()))
}

#[test]
fn round_trip_in_blocks_of_any_shape() {
    let a = data(&[13, 7, 3]);
    let path = tmp("rt.npy");
    da::from_array(a.clone(), (4, 3, 2)).to_npy(&path).unwrap();
    let back = da::from_npy::<f64>(&path, (5, 2, 3));
    assert_eq!(back.shape(), vec![13, 7, 3]);
    assert_eq!(run(&back), a);
    let s = run(&back.sum()).iter().next().copied().unwrap();
    assert!(
        (s - a.sum()).abs() < 1e-9 * a.sum().abs(),
        "{s} vs {}",
        a.sum()
    );
    let ints = ArrayD::from_shape_fn(IxDyn(&[9]), |i| i[0] as i32 - 4);
    let ipath = tmp("ints.npy");
    da::from_array(ints.clone(), 4).to_npy(&ipath).unwrap();
    assert_eq!(run(&da::from_npy::<i32>(&ipath, 2)), ints);
    std::fs::remove_file(path).ok();
    std::fs::remove_file(ipath).ok();
}

#[test]
fn header_is_what_numpy_writes() {
    let path = tmp("hdr.npy");
    da::from_array(ArrayD::from_elem(IxDyn(&[2, 3]), 1.5f64), 2)
        .to_npy(&path)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "header padded to 64 bytes");
    let text = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(
        text.starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"),
        "{text}"
    );
    assert_eq!(bytes.len(), 10 + hlen + 6 * 8);
    assert_eq!(&bytes[10 + hlen..10 + hlen + 8], &1.5f64.to_le_bytes());
    std::fs::remove_file(path).ok();
}

#[test]
fn bad_files_are_named_errors() {
    let path = tmp("bad.npy");
    std::fs::write(&path, b"not numpy at all").unwrap();
    let e = da::from_npy::<f64>(&path, 2).check().unwrap_err();
    assert!(
        matches!(e, ArrayError::Io { .. }) && e.to_string().contains("bad magic"),
        "{e}"
    );
    let good = tmp("good.npy");
    da::from_array(ArrayD::from_elem(IxDyn(&[4]), 2u8), 2)
        .to_npy(&good)
        .unwrap();
    let e = da::from_npy::<f64>(&good, 2)
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("uint8") && e.contains("float64"), "{e}");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let e = da::from_npy::<u8>(&path, 2)
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated"), "{e}");
    // A failed write leaves nothing behind.
    let dir = tmp("no-such-dir");
    assert!(da::ones::<f64>(3).to_npy(dir.join("x.npy")).is_err());
    assert!(!dir.join("x.npy").exists());
    std::fs::remove_file(path).ok();
    std::fs::remove_file(good).ok();
}

#[test]
fn npy_header_whose_shape_overflows_is_refused() {
    // A header declaring 2^40 × 2^40 float64s: the byte count overflows 64 bits.
    let path = tmp("overflow.npy");
    let dict = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}",
        1u64 << 40,
        1u64 << 40
    );
    let mut header = dict.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    std::fs::write(&path, &bytes).unwrap();
    let e = da::from_npy::<f64>(&path, 2)
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("too large") && e.contains("overflows"), "{e}");
    std::fs::remove_file(path).ok();
}

#[test]
fn npy_headers_parse_from_bytes_as_from_files() {
    let path = tmp("bytes.npy");
    da::from_array(data(&[6, 4]), (3, 2)).to_npy(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let from_file = da::read_npy_header(path.to_str().unwrap()).unwrap();
    assert_eq!(da::parse_npy_header(&bytes).unwrap(), from_file);
    assert_eq!(from_file.shape, vec![6, 4]);
    // Every truncation is an error, never a panic.
    for n in 0..bytes.len() {
        assert!(da::parse_npy_header(&bytes[..n]).is_err(), "{n} bytes");
    }
    std::fs::remove_file(path).ok();
}

#[test]
fn writing_streams_one_row_of_blocks_at_a_time() {
    // 64 MiB of random numbers in 8 row-blocks: written without computing the whole array.
    let x = da::random::RandomState::new(3)
        .random::<f64>((2048, 4096))
        .chunks((256, 4096));
    let path = tmp("stream.npy");
    x.to_npy(&path).unwrap();
    let back = da::from_npy::<f64>(&path, (512, 1024));
    let s1 = x.sum().compute_scalar().unwrap();
    let s2 = back
        .sum()
        .compute_with(&oxidask_local::Threaded::new(2))
        .unwrap()
        .iter()
        .next()
        .copied()
        .unwrap();
    assert!((s1 - s2).abs() < 1e-6 * s1.abs());
    std::fs::remove_file(path).ok();
}
