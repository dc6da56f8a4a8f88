//! The statistics against plain sums, and the solve against the oracle's exact least
//! squares (the raw normal equations in big integers), which shares nothing of [`fit`]'s
//! method.

use differential_dataflow::difference::{Abelian, Semigroup};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use tickflow_oracle::least_squares::reference;

use super::*;

fn stats_of(samples: &[(Vec<i128>, i128)]) -> Stats {
    let mut total = Stats::default();
    for (x, y) in samples {
        total.plus_equals(&Stats::sample(x, *y).expect("in range"));
    }
    total
}

/// Relative error against the reference, the scale being the largest reference value (a
/// coefficient near 0 is compared to the others' size).
fn close(fit: &Fit, expected: &[f64], tolerance: f64) -> Result<(), String> {
    let scale = SCALE as f64;
    let mut got = vec![fit.intercept.ok_or("no intercept")? * scale];
    got.extend(&fit.coefficients);
    let size = expected[1..].iter().fold(0f64, |m, v| m.max(v.abs()));
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let bound = if i == 0 {
            // The intercept's own size: it is a different unit from the coefficients.
            tolerance * e.abs().max(1.0)
        } else {
            tolerance * size.max(1e-300)
        };
        if (g - e).abs() > bound {
            return Err(format!("term {i}: got {g}, exact {e} (bound {bound})"));
        }
    }
    Ok(())
}

/// Candle-like samples: a random walk of prices (open, high, low at 8 decimals), a volume,
/// and the close a noisy linear function of them.
fn candles(rng: &mut Pcg64, n: usize, price: f64, volume: f64) -> Vec<(Vec<i128>, i128)> {
    let mut level = price;
    let fixed = |v: f64| (v * SCALE as f64).round() as i128;
    (0..n)
        .map(|_| {
            level *= 1.0 + rng.random_range(-0.02..0.02);
            let open = level;
            let high = open * (1.0 + rng.random_range(0.0..0.03));
            let low = open * (1.0 - rng.random_range(0.0..0.03));
            let vol = volume * rng.random_range(0.2..5.0);
            let close = 0.2 * open
                + 0.5 * high
                + 0.3 * low
                + 1e-9 * vol
                + level * rng.random_range(-0.01..0.01);
            (
                vec![fixed(open), fixed(high), fixed(low), fixed(vol)],
                fixed(close),
            )
        })
        .collect()
}

#[test]
fn fit_equals_the_exact_solution_on_candle_like_data() {
    let mut rng = Pcg64::seed_from_u64(7);
    // Bitcoin-like (prices ~9e4, volumes ~4e10) and penny-like (prices ~0.1, volumes ~1e6).
    for (price, volume) in [(89_000.0, 4.5e10), (0.12, 1e6), (3_000.0, 2e5)] {
        for n in [6, 50, 1_000] {
            let samples = candles(&mut rng, n, price, volume);
            let fit = fit(&stats_of(&samples), 0.0);
            assert!(fit.status.solved(), "{price} {n}: {:?}", fit.status);
            let expected = reference(&samples).expect("non-singular");
            close(&fit, &expected, 1e-9).unwrap_or_else(|e| panic!("{price} {n}: {e}"));
        }
    }
}

#[test]
fn a_constant_or_collinear_feature_is_singular_never_nan() {
    let mut rng = Pcg64::seed_from_u64(3);
    let base = candles(&mut rng, 40, 100.0, 1e6);
    // A constant feature.
    let constant: Vec<_> = base
        .iter()
        .map(|(x, y)| (vec![x[0], 7 * SCALE as i128, x[2]], *y))
        .collect();
    // An exact combination of two others.
    let collinear: Vec<_> = base
        .iter()
        .map(|(x, y)| (vec![x[0], x[1], 2 * x[0] - x[1]], *y))
        .collect();
    for samples in [constant, collinear] {
        let fit = fit(&stats_of(&samples), 0.0);
        assert_eq!(fit.status, Status::Singular);
        assert!(fit.coefficients.is_empty() && fit.intercept.is_none());
        assert!(fit.condition.is_none_or(|c| !c.is_nan()));
    }
    // Too few samples for 4 coefficients plus intercept.
    let fit = fit(&stats_of(&base[..4]), 0.0);
    assert_eq!(fit.status, Status::TooFew);
}

#[test]
fn nearly_collinear_features_are_flagged_with_a_finite_fit() {
    let mut rng = Pcg64::seed_from_u64(11);
    let samples: Vec<_> = candles(&mut rng, 200, 100.0, 1e6)
        .into_iter()
        .map(|(x, y)| {
            // The third feature is the first plus a wobble of 1e-6 relative: correlated
            // to 1 − 1e-12 or so, far past the threshold, not yet singular in f64.
            let wobble = rng.random_range(-1..=1) * (x[0] / 1_000_000).max(1);
            (vec![x[0], x[1], x[0] + wobble], y)
        })
        .collect();
    let fit = fit(&stats_of(&samples), 0.0);
    assert_eq!(fit.status, Status::IllConditioned, "{:?}", fit.condition);
    assert!(fit.condition.is_some_and(|c| c > ILL_CONDITIONED));
    assert!(fit.coefficients.iter().all(|b| b.is_finite()));
    // A copy of the first feature instead: singular, and still no NaN.
    let samples: Vec<_> = samples
        .iter()
        .map(|(x, y)| (vec![x[0], x[1], x[0]], *y))
        .collect();
    assert_eq!(fit_of(&samples).status, Status::Singular);
}

fn fit_of(samples: &[(Vec<i128>, i128)]) -> Fit {
    fit(&stats_of(samples), 0.0)
}

#[test]
fn ridge_shrinks_and_keeps_a_constant_feature_at_zero() {
    let mut rng = Pcg64::seed_from_u64(5);
    let samples: Vec<_> = candles(&mut rng, 100, 100.0, 1e6)
        .into_iter()
        .map(|(x, y)| (vec![x[0], x[1], 3 * SCALE as i128], y))
        .collect();
    let stats = stats_of(&samples);
    let plain = fit(&stats, 0.0);
    assert_eq!(plain.status, Status::Singular);
    let ridge = fit(&stats, 10.0);
    assert!(ridge.status.solved());
    assert_eq!(ridge.coefficients[2], 0.0);
    let loose = fit(&stats, 1e-9);
    let tight = fit(&stats, 1e6);
    let norm = |f: &Fit| f.coefficients.iter().map(|b| b * b).sum::<f64>();
    assert!(norm(&tight) < norm(&loose));
}

#[test]
fn a_million_inserts_and_retractions_return_the_sums_bit_for_bit() {
    let mut rng = Pcg64::seed_from_u64(1);
    let base = candles(&mut rng, 1_000, 89_000.0, 4.5e10);
    let start = stats_of(&base);
    let mut total = start.clone();
    let mut window = std::collections::VecDeque::new();
    for i in 0..1_000_000u64 {
        // Values up to the limit, of either sign, in a sliding window of 64.
        let x: Vec<i128> = (0..4)
            .map(|_| rng.random_range(-(LIMIT - 1)..LIMIT) >> rng.random_range(0..80))
            .collect();
        let y = rng.random_range(-(LIMIT - 1)..LIMIT);
        let sample = Stats::sample(&x, y).expect("in range");
        total.plus_equals(&sample);
        window.push_back(sample);
        if window.len() > 64 || i == 999_999 {
            while let Some(mut leaving) = window.pop_front() {
                leaving.negate();
                total.plus_equals(&leaving);
                if i != 999_999 {
                    break;
                }
            }
        }
    }
    assert_eq!(total, start);
    assert_eq!(total.sums(), start.sums());
}

#[test]
fn every_layout_knows_its_number_of_features() {
    for d in 1..=MAX_FEATURES {
        let x = vec![1i128; d];
        assert_eq!(Stats::sample(&x, 1).expect("in range").features(), d);
    }
    assert_eq!(Stats::default().features(), 0);
}

#[test]
fn values_beyond_the_range_are_refused() {
    assert_eq!(
        Stats::sample(&[LIMIT], 0),
        Err(SampleError::OutOfRange { value: LIMIT })
    );
    assert_eq!(
        Stats::sample(&[0], -LIMIT),
        Err(SampleError::OutOfRange { value: -LIMIT })
    );
    assert!(Stats::sample(&[LIMIT - 1], 1 - LIMIT).is_ok());
    assert_eq!(Stats::sample(&[], 0), Err(SampleError::Features(0)));
}

#[test]
fn the_largest_samples_in_a_large_window_still_solve_or_say_why() {
    // 100 000 samples at the top of the range: sums near 2^177, centring near 2^194.
    let big = LIMIT - 1;
    let mut total = Stats::default();
    for i in 0..100_000i128 {
        let x = [big - i * 7, big - (i % 13) * 1_000_003];
        total.plus_equals(&Stats::sample(&x, big - i * 3).expect("in range"));
    }
    let fit = fit(&total, 0.0);
    assert_ne!(fit.status, Status::Overflow);
    assert!(fit.coefficients.iter().all(|b| b.is_finite()));
}

#[test]
fn statistics_cross_workers_unchanged() {
    let mut rng = Pcg64::seed_from_u64(9);
    let stats = stats_of(&candles(&mut rng, 10, 89_000.0, 4.5e10));
    let bytes = bincode::serialize(&stats).expect("serialize");
    let back: Stats = bincode::deserialize(&bytes).expect("deserialize");
    assert_eq!(back, stats);
}

proptest! {
    /// Any order of the same samples, any grouping into partial sums, the same statistics:
    /// what lets differential consolidate updates in any order on any worker.
    #[test]
    fn sums_do_not_depend_on_order_or_grouping(
        samples in proptest::collection::vec(
            (proptest::collection::vec(-(1i128 << 79)..(1i128 << 79), 3), -(1i128 << 79)..(1i128 << 79)),
            1..40,
        ),
        split in 0usize..40,
    ) {
        let whole = stats_of(&samples);
        let split = split.min(samples.len());
        let mut parts = stats_of(&samples[split..]);
        parts.plus_equals(&stats_of(&samples[..split]));
        let mut reversed: Vec<_> = samples.clone();
        reversed.reverse();
        prop_assert_eq!(&parts, &whole);
        prop_assert_eq!(&stats_of(&reversed), &whole);
        // And the sums are the plain sums.
        let n = samples.len() as i128;
        prop_assert_eq!(whole.n(), ethnum::I256::from(n));
        let sum_y: i128 = samples.iter().map(|(_, y)| *y).sum();
        prop_assert_eq!(whole.sum_y(), ethnum::I256::from(sum_y));
        let x01 = samples.iter().fold(ethnum::I256::ZERO, |s, (x, _)| {
            s + ethnum::I256::from(x[0]) * ethnum::I256::from(x[1])
        });
        prop_assert_eq!(whole.sum_xx(1, 0), x01);
    }

    /// Random well-conditioned problems of 1 to 8 features against the exact solution.
    #[test]
    fn fit_matches_the_exact_reference(
        d in 1usize..9,
        n_extra in 0usize..60,
        seed in any::<u64>(),
    ) {
        let mut rng = Pcg64::seed_from_u64(seed);
        let n = d + 2 + n_extra;
        let beta: Vec<f64> = (0..d).map(|_| rng.random_range(-3.0..3.0)).collect();
        let samples: Vec<(Vec<i128>, i128)> = (0..n)
            .map(|_| {
                let x: Vec<f64> = (0..d).map(|_| rng.random_range(-1e4..1e4)).collect();
                let y = 5.0 + x.iter().zip(&beta).map(|(a, b)| a * b).sum::<f64>()
                    + rng.random_range(-50.0..50.0);
                let fixed = |v: f64| (v * 1e8).round() as i128;
                (x.into_iter().map(fixed).collect(), fixed(y))
            })
            .collect();
        let fit = fit(&stats_of(&samples), 0.0);
        let expected = reference(&samples);
        prop_assume!(expected.is_some());
        prop_assume!(fit.condition.is_some_and(|c| c < 1e6));
        prop_assert!(fit.status.solved());
        close(&fit, &expected.unwrap_or_default(), 1e-9).map_err(TestCaseError::fail)?;
    }
}
