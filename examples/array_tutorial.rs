//! The Dask tutorial's array section, line for line, in Rust.
//!
//! `cargo run --release -p oxidask-examples --example array_tutorial`

use ndarray::s;
use oxidask::array::{self as da, random::RandomState, Reduce};
use oxidask::prelude::*;

fn main() -> Result<(), oxidask::Error> {
    // shape = (1000, 4000); ones_np = np.ones(shape)
    let shape = (1000, 4000);
    let ones_np = ndarray::Array2::<f64>::ones(shape);
    println!("{:.1} MB", (ones_np.len() * 8) as f64 / 1e6);

    // ones = da.ones(shape, chunks=(1000, 1000)): a symbolic array, no data yet.
    let ones = da::ones::<f64>(shape).chunks((1000, 1000));
    println!("{ones}");

    // ones.compute(): the dask array becomes an ndarray.
    let dense = ones.compute()?;
    assert_eq!(dense.shape(), &[1000, 4000]);
    let picture = std::env::temp_dir().join("oxidask-ones.svg");
    match ones.visualize(&picture) {
        Ok(()) => println!("graph: {}", picture.display()),
        Err(e) => println!("(no picture: {e})"),
    }

    // sum_of_ones = ones.sum(): a tree reduction over the four chunks.
    let sum_of_ones = ones.sum();
    println!(
        "sum of ones: {} ({} tasks)",
        sum_of_ones.compute_scalar()?,
        sum_of_ones.ntasks()
    );

    // fancy_calculation = (ones * ones[::-1, ::-1]).mean()
    let fancy = (&ones * &ones.slice(s![..;-1, ..;-1])).mean();
    println!("fancy calculation: {}", fancy.compute_scalar()?);

    // The NumPy-parity slide: x + x.T - x.mean(axis=0), on a random array.
    let x = RandomState::new(42)
        .random::<f64>((4000, 4000))
        .chunks((1000, 1000));
    let x = x.persist()?; // keep x's blocks in memory: they are used three times below
    let y = (&(&x + &x.t()) - &x.mean_axis(0)).sum();
    println!(
        "(x + x.T - x.mean(axis=0)).sum() = {:.3}",
        y.compute_scalar()?
    );
    println!("x.std() = {:.6}", x.std(0).compute_scalar()?);
    println!(
        "x.sum(axis=(0, 1)) = {:.3}",
        x.sum_with(Reduce::axes([0, 1])).compute_scalar()?
    );

    // arccos and friends are elementwise and fuse into one task per block with what follows.
    let gnarl = (x.arccos() * 2.0).mean();
    println!("mean of 2·arccos(x) = {:.6}", gnarl.compute_scalar()?);

    // topk instead of sorting everything.
    let top = x.ravel().topk(3, 0).compute()?;
    println!("three largest: {top}");
    assert!(top[0] >= top[1] && top[1] >= top[2]);
    Ok(())
}
