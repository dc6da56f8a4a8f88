//! The regression dataflow against a plain sequential reference, on 1 and 3 workers: per
//! symbol, the samples the documented rules make (horizon, window), each version's
//! coefficients from the oracle's exact least squares (big integers, nothing shared with the
//! dataflow's solver), the prequential predictions made with the version before, and their
//! errors.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use tickflow_dataflows::regression::{regression, Feature, ModelConfig, ModelRow, PredictionRow};
use tickflow_operators::model::{Candle, Fixed, Symbol, Wide};
use tickflow_oracle::least_squares::reference;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::{Inspect, UnorderedInput};
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

const WINDOW_MS: u64 = 60_000;

/// Candle-like rows for `symbols` over `n` windows: a random walk with realistic highs,
/// lows and volumes; some windows of some symbols missing (no trades, no candle).
fn candles(seed: u64, symbols: &[&str], n: usize) -> Vec<Candle> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut out = Vec::new();
    for (s, name) in symbols.iter().enumerate() {
        let mut level: f64 = [89_000.0, 3_000.0, 0.12][s % 3];
        for i in 0..n {
            level *= 1.0 + rng.random_range(-0.01..0.01);
            if rng.random_bool(0.1) {
                continue;
            }
            let fixed = |v: f64| Fixed((v * 1e8).round() as i64);
            let open = level * (1.0 + rng.random_range(-0.002..0.002));
            let close = level * (1.0 + rng.random_range(-0.002..0.002));
            let high = open.max(close) * (1.0 + rng.random_range(0.0..0.004));
            let low = open.min(close) * (1.0 - rng.random_range(0.0..0.004));
            let volume: f64 = rng.random_range(1.0..5_000.0);
            out.push(Candle {
                symbol: Symbol::new(name).expect("short"),
                window_ms: WINDOW_MS,
                start_ms: 1_700_000_000_000 - 1_700_000_000_000 % WINDOW_MS + i as u64 * WINDOW_MS,
                open: fixed(open),
                high: fixed(high),
                low: fixed(low),
                close: fixed(close),
                volume: Wide((volume * 1e8).round() as i128),
                quote_volume: None,
                vwap: None,
                trades: Some(rng.random_range(1..500)),
            });
        }
    }
    out
}

/// Runs `candles` through the dataflow on `workers`, each at its window's last ms (as the
/// candle dataflow emits them), the frontier following in order.
fn run(
    candles: &[Candle],
    config: &ModelConfig,
    workers: usize,
) -> (Vec<ModelRow>, Vec<PredictionRow>) {
    let candles = candles.to_vec();
    let config = config.clone();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let models = Rc::new(RefCell::new(Vec::new()));
        let predictions = Rc::new(RefCell::new(Vec::new()));
        let (m, p) = (Rc::clone(&models), Rc::clone(&predictions));
        let probe = ProbeHandle::new();
        let (mut input, mut capability) = worker.dataflow::<u64, _, _>(|scope| {
            let ((input, capability), stream) =
                scope.new_unordered_input::<CapacityContainerBuilder<Vec<Candle>>>();
            let out = regression(stream, &config);
            out.models
                .inspect(move |row| m.borrow_mut().push(row.clone()))
                .probe_with(&probe);
            out.predictions
                .inspect(move |row| p.borrow_mut().push(row.clone()))
                .probe_with(&probe);
            (input, capability)
        });
        let mut by_time: BTreeMap<u64, Vec<Candle>> = BTreeMap::new();
        for candle in candles.iter().skip(index).step_by(peers) {
            by_time
                .entry(candle.start_ms + candle.window_ms - 1)
                .or_default()
                .push(*candle);
        }
        for (time, batch) in by_time {
            capability.downgrade(&time);
            input
                .activate()
                .session(&capability)
                .give_iterator(batch.into_iter());
            worker.step();
        }
        drop(capability);
        while !probe.done() {
            worker.step();
        }
        (models.take(), predictions.take())
    })
    .expect("timely starts");
    let mut models = Vec::new();
    let mut predictions = Vec::new();
    for result in guards.join() {
        let (m, p) = result.expect("worker finishes");
        models.extend(m);
        predictions.extend(p);
    }
    models.sort_by(|a, b| (&a.symbol, a.version).cmp(&(&b.symbol, b.version)));
    predictions.sort_by(|a, b| (&a.symbol, a.start_ms).cmp(&(&b.symbol, b.start_ms)));
    (models, predictions)
}

/// One version of the reference: the sample that made it, and its samples' exact fit.
struct Version {
    version: u64,
    n: usize,
    /// `[intercept, β…]` (the intercept at the fixed-point scale), or `None` when singular
    /// or too few.
    fit: Option<Vec<f64>>,
    /// The new sample's features, close and persistence forecast, in real units.
    x: Vec<f64>,
    actual: f64,
    baseline: Option<f64>,
}

/// The sequential reference: per symbol in start order, sample = (features of candle t,
/// close of candle t + h); the training set the last `window` samples (or all).
fn reference_models(candles: &[Candle], config: &ModelConfig) -> BTreeMap<String, Vec<Version>> {
    let mut by_symbol: BTreeMap<String, Vec<&Candle>> = BTreeMap::new();
    for c in candles {
        by_symbol
            .entry(c.symbol.as_str().to_owned())
            .or_default()
            .push(c);
    }
    let d = config.features.len();
    let value = |c: &Candle, f: Feature| -> i128 {
        match f {
            Feature::Open => c.open.0.into(),
            Feature::High => c.high.0.into(),
            Feature::Low => c.low.0.into(),
            Feature::Close => c.close.0.into(),
            Feature::Volume => c.volume.0,
            Feature::Trades => i128::from(c.trades.expect("known")) * 100_000_000,
            Feature::Vwap => c.vwap.expect("known").0.into(),
        }
    };
    let mut out = BTreeMap::new();
    for (symbol, mut list) in by_symbol {
        list.sort_by_key(|c| c.start_ms);
        let mut samples: Vec<(Vec<i128>, i128)> = Vec::new();
        let mut versions = Vec::new();
        for t in 0..list.len() {
            let Some(target) = list.get(t + config.horizon) else {
                break;
            };
            let x: Vec<i128> = config.features.iter().map(|&f| value(list[t], f)).collect();
            let y = i128::from(target.close.0);
            samples.push((x.clone(), y));
            let from = config.window.map_or(0, |n| samples.len().saturating_sub(n));
            let set = &samples[from..];
            let fit = if set.len() > d { reference(set) } else { None };
            let baseline = if config.horizon == 0 {
                t.checked_sub(1).map(|p| list[p].close.0 as f64 / 1e8)
            } else {
                Some(list[t].close.0 as f64 / 1e8)
            };
            versions.push(Version {
                version: target.start_ms,
                n: set.len(),
                fit,
                x: x.iter().map(|&v| v as f64 / 1e8).collect(),
                actual: y as f64 / 1e8,
                baseline,
            });
        }
        out.insert(symbol, versions);
    }
    out
}

fn near(got: f64, expected: f64, scale: f64, tolerance: f64) -> bool {
    (got - expected).abs() <= tolerance * scale.max(expected.abs()).max(1e-300)
}

fn check(candles: &[Candle], config: &ModelConfig) {
    let (models, predictions) = run(candles, config, 1);
    let (models3, predictions3) = run(candles, config, 3);
    assert_eq!(models, models3, "models differ between 1 and 3 workers");
    assert_eq!(
        predictions, predictions3,
        "predictions differ between 1 and 3 workers"
    );
    let expected = reference_models(candles, config);
    let mut rows = models.iter();
    let mut predicted = predictions.iter();
    for (symbol, versions) in &expected {
        // The reference's prequential errors, from its own fits.
        let (mut count, mut sse, mut sum, mut sum_sq) = (0u64, 0f64, 0f64, 0f64);
        let (mut b_count, mut b_sse) = (0u64, 0f64);
        // The version that predicts the next sample, its exact fit, and the tolerance its
        // condition allows.
        let mut previous: Option<(u64, Vec<f64>, f64)> = None;
        for version in versions {
            let (x, actual, baseline) = (&version.x, &version.actual, &version.baseline);
            let prediction = predicted.next().expect("a prediction row per sample");
            assert_eq!(
                (&prediction.symbol, prediction.start_ms),
                (symbol, version.version)
            );
            assert_eq!(prediction.actual, *actual);
            assert_eq!(prediction.baseline, *baseline);
            match &previous {
                Some((v, b, tolerance)) => {
                    let p = b[0] / 1e8 + b[1..].iter().zip(x).map(|(c, v)| c * v).sum::<f64>();
                    assert_eq!(prediction.model_version, Some(*v));
                    let got = prediction.predicted.expect("predicted");
                    // Relative to the price level, or to the prediction when a model of few
                    // samples extrapolates far from it.
                    assert!(
                        near(got, p, actual.abs(), *tolerance),
                        "{symbol} {}: {got} vs {p}",
                        version.version
                    );
                    count += 1;
                    sse += (p - actual).powi(2);
                    sum += actual;
                    sum_sq += actual * actual;
                    if let Some(b) = baseline {
                        b_count += 1;
                        b_sse += (b - actual).powi(2);
                    }
                }
                None => assert_eq!(prediction.predicted, None),
            }
            let row = rows.next().expect("a model row per version");
            assert_eq!(
                (&row.symbol, row.version, row.n),
                (symbol, version.version, version.n as u64)
            );
            assert_eq!(row.updated_ms, version.version + WINDOW_MS);
            match &version.fit {
                Some(b) => {
                    let size = b[1..].iter().fold(0f64, |m, v| m.max(v.abs()));
                    assert!(
                        matches!(row.status.as_str(), "ok" | "ill_conditioned"),
                        "{}",
                        row.status
                    );
                    // 1e-9 on well-conditioned data (the bound); past that, the
                    // f64 solve loses digits in proportion to the condition number.
                    let condition = row.condition.expect("solved fits have one");
                    let tolerance = if condition <= 1e4 {
                        1e-9
                    } else {
                        condition * 1e-13
                    };
                    for (got, want) in row.coefficients.iter().zip(&b[1..]) {
                        assert!(
                            near(*got, *want, size, tolerance),
                            "{symbol} {}: β {got} vs {want}",
                            row.version
                        );
                    }
                    // The intercept is the mean close less β·(mean features): its error
                    // is relative to the price level it is the difference of, not to
                    // its own size (which may be near 0).
                    let intercept = row.intercept.expect("intercept");
                    assert!(
                        near(intercept, b[0] / 1e8, actual.abs(), tolerance),
                        "{symbol}: intercept {intercept} vs {}",
                        b[0] / 1e8
                    );
                    previous = Some((version.version, b.clone(), tolerance));
                }
                None => {
                    assert!(
                        row.coefficients.is_empty() && row.intercept.is_none(),
                        "{row:?}"
                    );
                    previous = None;
                }
            }
            let rmse = (count > 0).then(|| (sse / count as f64).sqrt());
            match (row.rmse, rmse) {
                (Some(g), Some(w)) => assert!(near(g, w, 0.0, 1e-6), "rmse {g} vs {w}"),
                (g, w) => assert_eq!(g, w),
            }
            let base = (b_count > 0).then(|| (b_sse / b_count as f64).sqrt());
            match (row.baseline_rmse, base) {
                (Some(g), Some(w)) => assert!(near(g, w, 0.0, 1e-12), "baseline {g} vs {w}"),
                (g, w) => assert_eq!(g, w),
            }
            if count > 1 {
                let sst = sum_sq - sum * sum / count as f64;
                if let (Some(r2), true) = (row.r2, sst > 0.0) {
                    assert!(near(r2, 1.0 - sse / sst, 1.0, 1e-6));
                }
            }
        }
    }
    assert!(rows.next().is_none(), "model rows beyond the reference");
    assert!(
        predicted.next().is_none(),
        "predictions beyond the reference"
    );
}

fn config(horizon: usize, window: Option<usize>) -> ModelConfig {
    ModelConfig {
        window_ms: WINDOW_MS,
        features: ModelConfig::DEFAULT_FEATURES.to_vec(),
        horizon,
        window,
        ridge: 0.0,
    }
}

#[test]
fn all_history_nowcast_matches_the_reference() {
    check(
        &candles(1, &["BTCUSDT", "ETHUSDT", "DOGEUSDT"], 120),
        &config(0, None),
    );
}

#[test]
fn a_sliding_window_one_candle_ahead_matches_the_reference() {
    check(
        &candles(2, &["BTCUSDT", "SOLUSDT"], 150),
        &config(1, Some(20)),
    );
}

#[test]
fn other_features_and_a_longer_horizon_match_the_reference() {
    let mut config = config(3, Some(40));
    config.features = vec![Feature::Close, Feature::Volume, Feature::Trades];
    check(&candles(3, &["BTCUSDT", "XRPUSDT"], 100), &config);
}

#[test]
fn candles_of_other_windows_are_ignored() {
    let mut input = candles(4, &["BTCUSDT"], 60);
    let mut others = input.clone();
    for c in &mut others {
        c.window_ms = 1_000;
        c.close = Fixed(c.close.0 / 2);
    }
    let (expected, _) = run(&input, &config(0, Some(10)), 1);
    input.extend(others);
    let (got, _) = run(&input, &config(0, Some(10)), 2);
    assert_eq!(got, expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]
    #[test]
    fn random_windows_and_horizons_match_the_reference(
        seed in any::<u64>(),
        horizon in 0usize..3,
        window in prop_oneof![Just(None), (6usize..30).prop_map(Some)],
    ) {
        check(&candles(seed, &["BTCUSDT", "ETHUSDT"], 80), &config(horizon, window));
    }
}
