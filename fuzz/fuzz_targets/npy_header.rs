//! `.npy` headers: the start of a file of `data.len()` bytes must parse to a header that
//! fits the file, or to an error; never a panic or an arithmetic overflow.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(h) = oxidask_array::parse_npy_header(data) {
        let bytes = h
            .shape
            .iter()
            .try_fold(h.dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
            .expect("an accepted header's byte count fits in 64 bits");
        assert!(
            h.data_offset + bytes <= data.len() as u64,
            "{h:?} does not fit the file"
        );
    }
});
