//! Least squares from exact statistics: centred exactly in integers, then standardized and
//! solved in `f64` by Cholesky (no BLAS, no LAPACK: `d` is small).
//!
//! With `S = n·Σxxᵀ − Σx·Σxᵀ` (the centred scatter times `n`, exact), `s = n·Σxy − Σx·Σy`
//! and `D = diag(S)^½`, the coefficients solve `(R + λ/n·I)·g = D⁻¹·s` with `R = D⁻¹·S·D⁻¹`
//! (the features' correlation matrix, unit diagonal) and `β = D⁻¹·g`; the intercept is
//! `(Σy − βᵀ·Σx) / n`. Centring in integers removes the cancellation that makes the normal
//! equations of raw prices ill-conditioned; standardizing makes the Cholesky pivots and the
//! condition estimate independent of the features' units. `λ` (ridge) penalizes
//! `λ·Σ(β_j·σ_j)²`: the coefficients of standardized features.

use ethnum::I256;
use serde::Serialize;

use super::stats::{Stats, SCALE};

/// Condition number of the standardized normal equations above which a fit is reported as
/// ill-conditioned: about half the digits of an `f64` are lost there.
pub const ILL_CONDITIONED: f64 = 1e8;

/// What became of a fit.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Solved, well-conditioned.
    Ok,
    /// Solved, but the condition estimate is beyond [`ILL_CONDITIONED`]: the coefficients
    /// are finite and exact for these samples, but small changes move them a lot.
    IllConditioned,
    /// Fewer samples than coefficients (intercept included), without ridge.
    TooFew,
    /// A feature is constant, or features are exactly or nearly collinear: no unique fit.
    Singular,
    /// The exact centring overflowed 256 bits (beyond `2^40` samples): not solved.
    Overflow,
}

impl Status {
    /// The name stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::IllConditioned => "ill_conditioned",
            Status::TooFew => "too_few",
            Status::Singular => "singular",
            Status::Overflow => "overflow",
        }
    }

    /// Whether the fit has coefficients.
    pub fn solved(self) -> bool {
        matches!(self, Status::Ok | Status::IllConditioned)
    }
}

/// A fitted linear model in real units (not fixed-point).
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// Samples in the fit.
    pub n: u64,
    /// One per feature; empty unless [`Status::solved`].
    pub coefficients: Vec<f64>,
    /// `None` unless solved.
    pub intercept: Option<f64>,
    /// Root mean squared error of the fit on its own samples; `None` unless solved.
    pub in_sample_rmse: Option<f64>,
    /// Estimated 2-norm condition number of the standardized normal equations (with ridge);
    /// `None` when not computed (too few samples, a constant feature, overflow).
    pub condition: Option<f64>,
    /// What became of it.
    pub status: Status,
}

impl Fit {
    /// `intercept + β·x` for features `x` in real units; `None` unless solved or when `x`
    /// has the wrong length.
    pub fn predict(&self, x: &[f64]) -> Option<f64> {
        let intercept = self.intercept?;
        (x.len() == self.coefficients.len()).then(|| {
            intercept
                + self
                    .coefficients
                    .iter()
                    .zip(x)
                    .map(|(b, v)| b * v)
                    .sum::<f64>()
        })
    }

    fn unsolved(n: u64, status: Status, condition: Option<f64>) -> Fit {
        Fit {
            n,
            coefficients: Vec::new(),
            intercept: None,
            in_sample_rmse: None,
            condition,
            status,
        }
    }
}

/// Fits `y ≈ intercept + β·x` to the samples `stats` sums up, with ridge `lambda ≥ 0`.
pub fn fit(stats: &Stats, lambda: f64) -> Fit {
    let d = stats.features();
    let n_exact = stats.n();
    let n = u64::try_from(n_exact.max(I256::ZERO)).unwrap_or(u64::MAX);
    let lambda = if lambda.is_finite() && lambda > 0.0 {
        lambda
    } else {
        0.0
    };
    if d == 0 || n < 2 || (lambda == 0.0 && n < d as u64 + 1) {
        return Fit::unsolved(n, Status::TooFew, None);
    }
    // Exact centring: every entry is n times the centred sum of products.
    let centred = |sum: I256, a: I256, b: I256| -> Option<f64> {
        let scaled = n_exact.checked_mul(sum)?;
        let cross = a.checked_mul(b)?;
        Some(scaled.checked_sub(cross)?.as_f64())
    };
    let mut scatter = vec![0.0; d * d];
    let mut sxy = vec![0.0; d];
    for i in 0..d {
        for j in i..d {
            let Some(v) = centred(stats.sum_xx(i, j), stats.sum_x(i), stats.sum_x(j)) else {
                return Fit::unsolved(n, Status::Overflow, None);
            };
            scatter[i * d + j] = v;
            scatter[j * d + i] = v;
        }
        let Some(v) = centred(stats.sum_xy(i), stats.sum_x(i), stats.sum_y()) else {
            return Fit::unsolved(n, Status::Overflow, None);
        };
        sxy[i] = v;
    }
    let Some(syy) = centred(stats.sum_yy(), stats.sum_y(), stats.sum_y()) else {
        return Fit::unsolved(n, Status::Overflow, None);
    };
    // Standardize. A constant feature has no scale: without ridge the fit is not unique;
    // with ridge its coefficient is 0 (the penalty's minimum), so it is left out.
    let scale: Vec<f64> = (0..d).map(|i| scatter[i * d + i].max(0.0).sqrt()).collect();
    let active: Vec<usize> = (0..d).filter(|&i| scale[i] > 0.0).collect();
    if active.len() < d && lambda == 0.0 {
        return Fit::unsolved(n, Status::Singular, None);
    }
    let k = active.len();
    let mut r = vec![0.0; k * k];
    let mut rhs = vec![0.0; k];
    for (a, &i) in active.iter().enumerate() {
        for (b, &j) in active.iter().enumerate() {
            r[a * k + b] = scatter[i * d + j] / (scale[i] * scale[j]);
        }
        r[a * k + a] = 1.0 + lambda / n as f64;
        rhs[a] = sxy[i] / scale[i];
    }
    let Some(lower) = cholesky(&r, k) else {
        return Fit::unsolved(n, Status::Singular, None);
    };
    let condition = condition(&r, &lower, k);
    let g = cholesky_solve(&lower, k, &rhs);
    let mut beta = vec![0.0; d];
    for (a, &i) in active.iter().enumerate() {
        beta[i] = g[a] / scale[i];
    }
    if beta.iter().any(|b| !b.is_finite()) {
        return Fit::unsolved(n, Status::Singular, Some(condition));
    }
    // Intercept and in-sample error, back in real units. `Σx` and `Σy` are at scale 1e8;
    // the coefficients are ratios of two such values, so scale-free.
    let scale_f = SCALE as f64;
    let mean = |sum: I256| sum.as_f64() / n as f64;
    let intercept = (mean(stats.sum_y())
        - (0..d).map(|i| beta[i] * mean(stats.sum_x(i))).sum::<f64>())
        / scale_f;
    // n·SSE = syy − 2βᵀs + βᵀSβ (all of them n times centred sums).
    let bs: f64 = (0..d).map(|i| beta[i] * sxy[i]).sum();
    let bsb: f64 = (0..d)
        .map(|i| {
            (0..d)
                .map(|j| beta[i] * scatter[i * d + j] * beta[j])
                .sum::<f64>()
        })
        .sum();
    let sse = ((syy - 2.0 * bs + bsb) / n as f64).max(0.0);
    let rmse = (sse / n as f64).sqrt() / scale_f;
    let status = if condition > ILL_CONDITIONED {
        Status::IllConditioned
    } else {
        Status::Ok
    };
    Fit {
        n,
        coefficients: beta,
        intercept: Some(intercept),
        in_sample_rmse: Some(rmse),
        condition: Some(condition),
        status,
    }
}

/// Smallest pivot (relative to a unit diagonal) that counts as positive: below it the
/// matrix is singular to working precision.
const MIN_PIVOT: f64 = 1e-13;

/// The lower Cholesky factor of the `k × k` symmetric matrix `a` (row-major), or `None`
/// when it is not (numerically) positive definite.
fn cholesky(a: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; k * k];
    for j in 0..k {
        let mut pivot = a[j * k + j];
        for p in 0..j {
            pivot -= l[j * k + p] * l[j * k + p];
        }
        // NaN fails this test too.
        let positive = pivot > MIN_PIVOT * a[j * k + j].max(1.0);
        if !positive {
            return None;
        }
        let root = pivot.sqrt();
        l[j * k + j] = root;
        for i in j + 1..k {
            let mut v = a[i * k + j];
            for p in 0..j {
                v -= l[i * k + p] * l[j * k + p];
            }
            l[i * k + j] = v / root;
        }
    }
    Some(l)
}

/// Solves `L·Lᵀ·x = b`.
fn cholesky_solve(l: &[f64], k: usize, b: &[f64]) -> Vec<f64> {
    let mut y = b.to_vec();
    for i in 0..k {
        for p in 0..i {
            y[i] -= l[i * k + p] * y[p];
        }
        y[i] /= l[i * k + i];
    }
    for i in (0..k).rev() {
        for p in i + 1..k {
            y[i] -= l[p * k + i] * y[p];
        }
        y[i] /= l[i * k + i];
    }
    y
}

/// Power iterations for the 2-norm condition number of the symmetric positive definite
/// `a`: its largest eigenvalue over its smallest (the largest of `a⁻¹`, through the
/// Cholesky factor). An estimate, from below; enough to tell 1e3 from 1e12. Each iteration
/// stops once its eigenvalue moves by less than 0.1 % (or after 40 steps).
fn condition(a: &[f64], l: &[f64], k: usize) -> f64 {
    const ITERATIONS: usize = 40;
    const SETTLED: f64 = 1e-3;
    let largest = |apply: &dyn Fn(&[f64]) -> Vec<f64>| {
        // A start with every component, so that no eigenvector is missed by symmetry.
        let mut v: Vec<f64> = (0..k).map(|i| 1.0 + i as f64 / k as f64).collect();
        let mut value: f64 = 0.0;
        for _ in 0..ITERATIONS {
            let w = apply(&v);
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            let usable = norm > 0.0 && norm.is_finite();
            if !usable {
                break;
            }
            let next = norm / v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v = w.into_iter().map(|x| x / norm).collect();
            let settled = (next - value).abs() <= SETTLED * next;
            value = next;
            if settled {
                break;
            }
        }
        value
    };
    let times = |v: &[f64]| -> Vec<f64> {
        (0..k)
            .map(|i| (0..k).map(|j| a[i * k + j] * v[j]).sum())
            .collect()
    };
    let solve = |v: &[f64]| cholesky_solve(l, k, v);
    let max = largest(&times);
    let inverse_max = largest(&solve);
    (max * inverse_max).max(1.0)
}
