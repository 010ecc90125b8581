//! Counter-based random numbers: the value at a global position depends only on the seed
//! and the position, so an array's values are the same however it is chunked (and blocks
//! can be generated in any order, on any worker).
//!
//! The generator is SplitMix64 indexed directly: element `i` is the SplitMix64 output for
//! state `seed + (i + 1) · γ`, the same stream SplitMix64 produces sequentially.

/// SplitMix64's output for the `i`-th state after `seed`.
#[inline]
pub fn bits(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1) with 53 random bits.
#[inline]
pub fn uniform(seed: u64, i: u64) -> f64 {
    (bits(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal (Box–Muller over two independent uniforms at this position).
#[inline]
pub fn normal(seed: u64, i: u64) -> f64 {
    let u1 = 1.0 - uniform(seed, 2 * i); // (0, 1]: ln is finite
    let u2 = uniform(seed ^ 0x5DEE_CE66_D1CE_4E5B, 2 * i + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Uniform integer in [low, high) (high > low), by the multiply-shift method.
#[inline]
pub fn integer(seed: u64, i: u64, low: i64, high: i64) -> i64 {
    let range = high.wrapping_sub(low) as u64;
    let r = ((bits(seed, i) as u128 * range as u128) >> 64) as u64;
    low.wrapping_add(r as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_moments_are_right() {
        let n = 200_000u64;
        let xs: Vec<f64> = (0..n).map(|i| uniform(7, i)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.002, "{var}");
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn normal_moments_are_right() {
        let n = 200_000u64;
        let xs: Vec<f64> = (0..n).map(|i| normal(3, i)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }

    #[test]
    fn integers_stay_in_range_and_cover_it() {
        let mut seen = [false; 10];
        for i in 0..10_000 {
            let v = integer(1, i, -3, 7);
            assert!((-3..7).contains(&v));
            seen[(v + 3) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
