//! Least squares, exactly: the normal equations of the raw samples (a leading column of
//! ones for the intercept, nothing centred or scaled) in big integers, solved by
//! fraction-free Gaussian elimination. Slow and certain.

use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};

/// Exact least squares of `y ≈ b0 + b·x` over integer samples: `[b0, b_1, …, b_d]` as
/// `f64` (in the samples' units), or `None` when the normal equations are singular.
pub fn reference(samples: &[(Vec<i128>, i128)]) -> Option<Vec<f64>> {
    let d = samples[0].0.len() + 1;
    // Augmented normal equations [XᵀX | Xᵀy], X with a leading column of ones.
    let mut m = vec![vec![BigInt::zero(); d + 1]; d];
    for (x, y) in samples {
        let row: Vec<BigInt> = std::iter::once(BigInt::from(1))
            .chain(x.iter().map(|&v| BigInt::from(v)))
            .collect();
        for i in 0..d {
            for j in 0..d {
                m[i][j] += &row[i] * &row[j];
            }
            m[i][d] += &row[i] * BigInt::from(*y);
        }
    }
    // Bareiss elimination: every intermediate is an exact integer.
    let mut previous = BigInt::from(1);
    for k in 0..d {
        let pivot = (k..d).find(|&r| !m[r][k].is_zero())?;
        m.swap(k, pivot);
        for i in k + 1..d {
            for j in k + 1..=d {
                let v = (&m[i][j] * &m[k][k] - &m[i][k] * &m[k][j]) / &previous;
                m[i][j] = v;
            }
            m[i][k] = BigInt::zero();
        }
        previous = m[k][k].clone();
    }
    // Back substitution in rationals (numerator, common denominator = det = m[d-1][d-1]).
    let det = m[d - 1][d - 1].clone();
    if det.is_zero() {
        return None;
    }
    let mut numerators = vec![BigInt::zero(); d];
    for i in (0..d).rev() {
        // m[i][i]·x_i = m[i][d] − Σ_{j>i} m[i][j]·x_j, with x_j = numerators[j] / det.
        let mut v = &m[i][d] * &det;
        for j in i + 1..d {
            v -= &m[i][j] * &numerators[j];
        }
        numerators[i] = v / &m[i][i];
    }
    Some(numerators.iter().map(|n| ratio(n, &det)).collect())
}

/// `a / b` rounded to an `f64`, for integers of any size.
pub fn ratio(a: &BigInt, b: &BigInt) -> f64 {
    let shift = a.bits() as i64 - b.bits() as i64 - 64;
    let (a, b) = if shift > 0 {
        (a.clone(), b << shift as usize)
    } else {
        (a << (-shift) as usize, b.clone())
    };
    let sign = if a.is_negative() != b.is_negative() {
        -1.0
    } else {
        1.0
    };
    let q = (a.abs() / b.abs()).to_f64().unwrap_or(f64::NAN);
    sign * q * 2f64.powi(shift as i32)
}
