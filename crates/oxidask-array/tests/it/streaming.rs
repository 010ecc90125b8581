//! Larger than the blocks in flight: a reduction streams, holding only a few blocks.

use oxidask_array::random::RandomState;
use oxidask_core::Collection;
use oxidask_local::Threaded;

#[test]
fn a_reduction_holds_only_a_few_blocks_at_a_time() {
    // 512 MiB of random numbers in 64 blocks of 8 MiB.
    let x = RandomState::new(11)
        .random::<f64>((8192, 8192))
        .chunks((1024, 1024));
    let total = x.sum();
    let pool = Threaded::new(2).collect_stats(true);
    let (values, stats) = pool.run(total.graph(), &total.keys()).unwrap();
    let sum = total
        .finalize(values)
        .unwrap()
        .iter()
        .next()
        .copied()
        .unwrap();
    let n = 8192.0 * 8192.0;
    assert!((sum / n - 0.5).abs() < 1e-3, "mean {}", sum / n);
    let block = 1024 * 1024 * 8;
    assert!(
        stats.peak_live_bytes < 8 * block,
        "held {} MiB at once for a 512 MiB array",
        stats.peak_live_bytes >> 20
    );
}
