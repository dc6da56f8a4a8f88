//! Per-symbol linear models over the candle stream, maintained exactly and incrementally in
//! differential dataflow, with prequential evaluation against a persistence baseline.
//!
//! ```text
//!  candles ─Exchange(symbol)─▶ [ModelSamples] ─┬─▶ (symbol, +Stats(sample)) at the time it enters,
//!                                              │   (symbol, −Stats(sample)) when N later ones have
//!                                              │        │
//!                                              │        ▼ count_total: (symbol, Σ Stats) per time
//!                                              └─▶ samples ──▶ [ModelEvaluate] ─┬─▶ models rows
//!                                                                              └─▶ predictions rows
//! ```
//!
//! **Samples.** Per symbol, the candles of one window size in start order; with horizon `h`,
//! the features of candle `t` and the close of candle `t + h` (the `h`-th candle after it
//! that exists: a window without trades has no candle) make a sample, entering at the
//! timely time candle `t + h` is decided. `h = 0` is a nowcast: a candle's open, high, low
//! and volume explain its own close. With `window = N` a sample leaves when the `N`-th
//! later one enters; without, every sample stays (all history).
//!
//! **Exact.** A sample enters as its [`Stats`] (integers at the decimals' scale) and leaves
//! as their negation, so `count_total` holds the exact statistics of the samples present at
//! every time, at a cost per sample that does not depend on `N`.
//!
//! **Versions.** A symbol's model changes at each time its statistics do; the version is
//! the start (ms) of the newest candle whose close is in them: increasing, and the same in
//! any run over the same input. `updated_ms` is that candle's end, event time too.
//!
//! **Prequential evaluation.** Each sample is first predicted with the model as it was
//! before the sample's time (its close is not known to that model), then learnt. Errors
//! accumulate per symbol over every prediction made: `rmse`, `r2 = 1 − SSE/SST` (SST
//! around the mean of the actual closes predicted), and the persistence baseline's
//! `baseline_rmse` over the same predictions: close(t+h) predicted as close(t) (`h ≥ 1`),
//! or as the previous candle's close (`h = 0`).

use std::collections::{BTreeMap, VecDeque};

use differential_dataflow::collection::AsCollection;
use differential_dataflow::difference::{IsZero, Semigroup};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tickflow_operators::model::{Candle, Fixed, Symbol, SCALE};
use tickflow_operators::regression::{fit, Fit, Stats, MAX_FEATURES};
use tickflow_operators::schema::tables::{self, real_value};
use tickflow_operators::schema::{Row, Value};
use tickflow_operators::window::{format_duration, parse_duration};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::Stream;

/// A model feature: a column of the candle.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// First price.
    Open,
    /// Highest price.
    High,
    /// Lowest price.
    Low,
    /// Last price (as a feature: with `h ≥ 1` it explains a later close).
    Close,
    /// `Σq`.
    Volume,
    /// Volume-weighted average price (unknown for candle-file rows: those samples are
    /// skipped).
    Vwap,
    /// Number of trades (unknown for candle-file rows).
    Trades,
}

impl Feature {
    /// Every feature, by name.
    pub const ALL: [Feature; 7] = [
        Feature::Open,
        Feature::High,
        Feature::Low,
        Feature::Close,
        Feature::Volume,
        Feature::Vwap,
        Feature::Trades,
    ];

    /// The name used on the command line and in the `models` table.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Open => "open",
            Feature::High => "high",
            Feature::Low => "low",
            Feature::Close => "close",
            Feature::Volume => "volume",
            Feature::Vwap => "vwap",
            Feature::Trades => "trades",
        }
    }

    /// The feature named `name`.
    pub fn parse(name: &str) -> Result<Feature, String> {
        Feature::ALL
            .into_iter()
            .find(|f| f.name() == name.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "unknown model feature {name:?} (one of {})",
                    names.join(", ")
                )
            })
    }

    /// The value in a candle at the decimals' fixed-point scale, when known.
    pub fn of(self, candle: &Candle) -> Option<i128> {
        match self {
            Feature::Open => Some(candle.open.0.into()),
            Feature::High => Some(candle.high.0.into()),
            Feature::Low => Some(candle.low.0.into()),
            Feature::Close => Some(candle.close.0.into()),
            Feature::Volume => Some(candle.volume.0),
            Feature::Vwap => candle.vwap.map(|v| v.0.into()),
            Feature::Trades => candle.trades.map(|t| i128::from(t) * i128::from(SCALE)),
        }
    }
}

/// The model settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// The candle window the model learns from, ms.
    pub window_ms: u64,
    /// Features, in order (default open, high, low, volume); the intercept is always fitted.
    pub features: Vec<Feature>,
    /// Features of candle `t` predict the close of candle `t + horizon`.
    pub horizon: usize,
    /// Train on the last `N` samples; `None`: all history.
    pub window: Option<usize>,
    /// Ridge penalty on standardized coefficients (0: ordinary least squares).
    pub ridge: f64,
}

impl ModelConfig {
    /// The default features.
    pub const DEFAULT_FEATURES: [Feature; 4] =
        [Feature::Open, Feature::High, Feature::Low, Feature::Volume];
}

/// The `[model]` section of the config file, which the `--model-*` flags override.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    /// Maintain the models (default true).
    pub enabled: bool,
    /// The candle window the model learns from, as a duration (`"1s"`, `"1m"`): one of the
    /// run's windows. Default: the shortest window; for a candle file, its own (1d).
    pub candles: Option<String>,
    /// Features (default open, high, low, volume); the intercept is always fitted.
    pub features: Vec<Feature>,
    /// Features of candle `t` predict the close of candle `t + horizon` (default 0).
    pub horizon: usize,
    /// Train on the last `N` samples (default: all history).
    pub window: Option<usize>,
    /// Ridge penalty on the standardized coefficients (default 0: least squares).
    pub ridge: f64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            enabled: true,
            candles: None,
            features: ModelConfig::DEFAULT_FEATURES.to_vec(),
            horizon: 0,
            window: None,
            ridge: 0.0,
        }
    }
}

/// The longest horizon accepted: the candles awaiting their target are held per symbol.
pub const MAX_HORIZON: usize = 100_000;

impl ModelSettings {
    /// The model to run over candles of the run's `windows` (ms) or, for a candle file,
    /// of `file_window` only; `None` when disabled. Errors name the setting.
    pub fn resolve(
        &self,
        windows: &[u64],
        file_window: Option<u64>,
    ) -> Result<Option<ModelConfig>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let available: Vec<u64> = match file_window {
            Some(window) => vec![window],
            None => windows.to_vec(),
        };
        let window_ms = match &self.candles {
            Some(text) => {
                let window = parse_duration(text).map_err(|e| format!("model candles: {e}"))?;
                if !available.contains(&window) {
                    let names: Vec<String> =
                        available.iter().map(|&w| format_duration(w)).collect();
                    return Err(format!(
                        "model candles {text:?}: the run has no candles of that window (it has {})",
                        names.join(", ")
                    ));
                }
                window
            }
            None => *available
                .iter()
                .min()
                .ok_or("model candles: the run has no windows")?,
        };
        let d = self.features.len();
        if d == 0 || d > MAX_FEATURES {
            return Err(format!(
                "model features: {d} given, the model takes 1 to {MAX_FEATURES}"
            ));
        }
        for (i, feature) in self.features.iter().enumerate() {
            if self.features[..i].contains(feature) {
                return Err(format!(
                    "model features: {} is named twice (the fit would be singular)",
                    feature.name()
                ));
            }
        }
        if self.horizon > MAX_HORIZON {
            return Err(format!(
                "model horizon {}: at most {MAX_HORIZON} candles",
                self.horizon
            ));
        }
        if let Some(n) = self.window {
            if n <= d {
                return Err(format!(
                    "model window {n}: a fit of {d} features and an intercept needs at least {} samples",
                    d + 1
                ));
            }
        }
        if !(self.ridge.is_finite() && self.ridge >= 0.0) {
            return Err(format!(
                "model ridge {}: must be a finite number ≥ 0",
                self.ridge
            ));
        }
        Ok(Some(ModelConfig {
            window_ms,
            features: self.features.clone(),
            horizon: self.horizon,
            window: self.window,
            ridge: self.ridge,
        }))
    }
}

/// One model version: a row of `models`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    /// Trading pair.
    pub symbol: String,
    /// The candle window the model learns from, ms.
    pub window_ms: u64,
    /// The start of the newest candle whose close the statistics hold.
    pub version: u64,
    /// That candle's end (event time).
    pub updated_ms: u64,
    /// Features of candle `t` predict the close of candle `t + horizon`.
    pub horizon: usize,
    /// Samples in the fit.
    pub n: u64,
    /// Feature names, in coefficient order.
    pub features: Vec<String>,
    /// One per feature; empty when not solved.
    pub coefficients: Vec<f64>,
    /// `None` when not solved.
    pub intercept: Option<f64>,
    /// Prequential RMSE of the model over every prediction so far (`None` before the first).
    pub rmse: Option<f64>,
    /// Prequential `1 − SSE/SST` over the same predictions.
    pub r2: Option<f64>,
    /// Prequential RMSE of the persistence forecast over the predictions it could make.
    pub baseline_rmse: Option<f64>,
    /// Predictions behind `rmse` and `r2`.
    pub predictions: u64,
    /// RMSE of the fit on its own samples.
    pub in_sample_rmse: Option<f64>,
    /// Condition estimate of the standardized normal equations.
    pub condition: Option<f64>,
    /// `ok`, `ill_conditioned`, `too_few`, `singular` or `overflow`.
    pub status: String,
}

/// One prediction, made before its actual was known: a row of `predictions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictionRow {
    /// Trading pair.
    pub symbol: String,
    /// Candle window, ms.
    pub window_ms: u64,
    /// Start of the predicted candle.
    pub start_ms: u64,
    /// The version that predicted it (`None`: no model yet, no prediction).
    pub model_version: Option<u64>,
    /// The model's prediction of the close.
    pub predicted: Option<f64>,
    /// The close.
    pub actual: f64,
    /// The persistence forecast of the same close, when there is one.
    pub baseline: Option<f64>,
}

impl From<ModelRow> for Row {
    fn from(m: ModelRow) -> Row {
        // The coefficients are finite by construction (the fit never returns NaN or an
        // infinity), so both arrays always serialize.
        Row {
            table: tables::MODELS.id(),
            values: vec![
                Value::Text(m.symbol),
                m.window_ms.into(),
                m.version.into(),
                m.updated_ms.into(),
                (m.horizon as u64).into(),
                m.n.into(),
                Value::Text(serde_json::to_string(&m.features).unwrap_or_default()),
                Value::Text(serde_json::to_string(&m.coefficients).unwrap_or_default()),
                real_value(m.intercept),
                real_value(m.rmse),
                real_value(m.r2),
                real_value(m.baseline_rmse),
                m.predictions.into(),
                real_value(m.in_sample_rmse),
                real_value(m.condition),
                Value::Text(m.status),
            ],
        }
    }
}

impl From<PredictionRow> for Row {
    fn from(p: PredictionRow) -> Row {
        Row {
            table: tables::PREDICTIONS.id(),
            values: vec![
                Value::Text(p.symbol),
                p.window_ms.into(),
                p.start_ms.into(),
                p.model_version.map_or(Value::Null, Value::from),
                real_value(p.predicted),
                real_value(Some(p.actual)),
                real_value(p.baseline),
            ],
        }
    }
}

/// A sample as the evaluation sees it, in real units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Sample {
    symbol: Symbol,
    /// Start of the candle whose close is the target.
    target_ms: u64,
    features: Vec<f64>,
    actual: f64,
    baseline: Option<f64>,
}

/// What the regression dataflow produces.
#[derive(Debug)]
pub struct RegressionStreams<'scope> {
    /// One row per model version.
    pub models: Stream<'scope, u64, Vec<ModelRow>>,
    /// One row per sample predicted.
    pub predictions: Stream<'scope, u64, Vec<PredictionRow>>,
}

fn real(value: i128) -> f64 {
    value as f64 / SCALE as f64
}

fn fixed_real(value: Fixed) -> f64 {
    real(value.0.into())
}

/// Per symbol: the candles awaiting their target, and the samples in the training window.
#[derive(Default)]
struct Pending {
    /// The last `h + 1` candles' features (when all known) and closes, oldest first.
    candles: VecDeque<(Option<Vec<i128>>, Fixed)>,
    /// The close of the candle before the oldest in `candles` (the `h = 0` baseline).
    before: Option<Fixed>,
    /// Samples in the window, oldest first, as features and target (a tenth of their
    /// statistics' size at 16 features: those are recomputed when the sample leaves).
    window: VecDeque<(Vec<i128>, i128)>,
}

/// The models of `config` over `candles` (each candle once, at the time it is decided; any
/// window sizes: only `config.window_ms` is used).
pub fn regression<'scope>(
    candles: Stream<'scope, u64, Vec<Candle>>,
    config: &ModelConfig,
) -> RegressionStreams<'scope> {
    let window_ms = config.window_ms;
    let candles = candles.filter(move |c| c.window_ms == window_ms);
    let (updates, samples) = model_samples(candles, config);
    let changes = updates.as_collection().consolidate_stream().inner;
    evaluate(changes, samples, config)
}

/// The candles a resumed run's models learn from: `stored`, the candles the earlier runs
/// committed (read back from the sink; worker 0 emits them, each at `time_of` it, the time
/// it had in those runs), then those of `candles` at or after `frontier`, the time up to
/// which the earlier runs committed: the ones before it are the replay of stored candles,
/// which the sink does not write again either. So the models see every candle once, in the
/// order an uninterrupted run gives them, and reach the same versions.
pub fn resumed<'scope>(
    candles: Stream<'scope, u64, Vec<Candle>>,
    stored: &[Candle],
    frontier: u64,
    time_of: impl Fn(&Candle) -> u64,
) -> Stream<'scope, u64, Vec<Candle>> {
    let scope = candles.scope();
    let mut by_time: BTreeMap<u64, Vec<Candle>> = BTreeMap::new();
    if scope.index() == 0 {
        for candle in stored {
            by_time.entry(time_of(candle)).or_default().push(*candle);
        }
    }
    let stored = source::<_, CapacityContainerBuilder<Vec<Candle>>, _, _>(
        scope,
        "StoredCandles",
        move |capability, _info| {
            let mut capability = Some(capability);
            move |output| {
                if let Some(capability) = capability.take() {
                    for (time, mut batch) in std::mem::take(&mut by_time) {
                        output
                            .session(&capability.delayed(&time))
                            .give_container(&mut batch);
                    }
                }
            }
        },
    );
    let new = candles.unary(Pipeline, "CandlesAfterFrontier", |_, _| {
        move |input, output| {
            input.for_each_stamp(|stamp, batch| {
                if stamp.least().is_some_and(|&time| time >= frontier) {
                    output.session(&stamp).give_containers(batch);
                }
            });
        }
    });
    stored.concat(new)
}

type Updates<'scope> = Stream<'scope, u64, Vec<(Symbol, u64, Stats)>>;

/// The changes of each symbol's statistics: `(symbol, time, Σ of the samples in − out)`.
type Changes<'scope> = Stream<'scope, u64, Vec<(Symbol, u64, Stats)>>;

/// Candles → sample statistics in and out of the window, and samples to evaluate.
fn model_samples<'scope>(
    candles: Stream<'scope, u64, Vec<Candle>>,
    config: &ModelConfig,
) -> (Updates<'scope>, Stream<'scope, u64, Vec<Sample>>) {
    let features = config.features.clone();
    let horizon = config.horizon;
    let limit = config.window;
    let mut builder = OperatorBuilder::new("ModelSamples".to_owned(), candles.scope());
    let mut input = builder.new_input(candles, Exchange::new(|c: &Candle| c.symbol.stable_hash()));
    let (mut updates_out, updates) = builder.new_output::<Vec<(Symbol, u64, Stats)>>();
    let (mut samples_out, samples) = builder.new_output::<Vec<Sample>>();
    builder.build(move |_capabilities| {
        let mut stash: BTreeMap<u64, (Vec<Capability<u64>>, Vec<Candle>)> = BTreeMap::new();
        let mut symbols: FxHashMap<Symbol, Pending> = FxHashMap::default();
        move |frontiers| {
            input.for_each(|capability, batch| {
                let Some(&time) = capability.least() else {
                    return;
                };
                stash
                    .entry(time)
                    .or_insert_with(|| {
                        // One capability per output, at the candles' time: what they decide
                        // is emitted at that time, once the frontier has passed it.
                        (
                            vec![capability.delayed(&time, 0), capability.delayed(&time, 1)],
                            Vec::new(),
                        )
                    })
                    .1
                    .append(batch);
            });
            let frontier = &frontiers[0];
            while let Some(entry) = stash.first_entry() {
                let time = *entry.key();
                if frontier.frontier().less_equal(&time) {
                    break;
                }
                let (capabilities, mut candles) = entry.remove();
                candles.sort_unstable_by_key(|c| (c.symbol, c.start_ms));
                let mut updates = Vec::new();
                let mut samples = Vec::new();
                for candle in candles {
                    let pending = symbols.entry(candle.symbol).or_default();
                    let x: Option<Vec<i128>> = features.iter().map(|f| f.of(&candle)).collect();
                    pending.candles.push_back((x, candle.close));
                    if pending.candles.len() <= horizon {
                        continue;
                    }
                    let Some((x, close)) = pending.candles.pop_front() else {
                        continue;
                    };
                    let baseline = if horizon == 0 {
                        pending.before
                    } else {
                        Some(close)
                    };
                    pending.before = Some(close);
                    // A sample with an unknown feature or a value beyond the statistics'
                    // range is left out (nothing a real candle holds).
                    let Some(x) = x else { continue };
                    let Ok(stats) = Stats::sample(&x, candle.close.0.into()) else {
                        continue;
                    };
                    updates.push((candle.symbol, time, stats));
                    let y = i128::from(candle.close.0);
                    if limit.is_some() {
                        pending.window.push_back((x.clone(), y));
                    }
                    if limit.is_some_and(|n| pending.window.len() > n) {
                        if let Some((x, y)) = pending.window.pop_front() {
                            // It entered, so it is in range.
                            if let Ok(mut leaving) = Stats::sample(&x, y) {
                                differential_dataflow::difference::Abelian::negate(&mut leaving);
                                updates.push((candle.symbol, time, leaving));
                            }
                        }
                    }
                    samples.push(Sample {
                        symbol: candle.symbol,
                        target_ms: candle.start_ms,
                        features: x.iter().map(|&v| real(v)).collect(),
                        actual: fixed_real(candle.close),
                        baseline: baseline.map(fixed_real),
                    });
                }
                if !updates.is_empty() {
                    updates_out.activate().give(&capabilities[0], &mut updates);
                }
                if !samples.is_empty() {
                    samples_out.activate().give(&capabilities[1], &mut samples);
                }
            }
        }
    });
    (updates, samples)
}

/// Prequential errors of one symbol so far.
#[derive(Default)]
struct Errors {
    count: u64,
    sse: f64,
    sum: f64,
    sum_sq: f64,
    baseline_count: u64,
    baseline_sse: f64,
}

impl Errors {
    fn rmse(&self) -> Option<f64> {
        (self.count > 0).then(|| (self.sse / self.count as f64).sqrt())
    }

    fn r2(&self) -> Option<f64> {
        let n = self.count as f64;
        let sst = self.sum_sq - self.sum * self.sum / n;
        (self.count > 1 && sst > 0.0).then(|| 1.0 - self.sse / sst)
    }

    fn baseline_rmse(&self) -> Option<f64> {
        (self.baseline_count > 0).then(|| (self.baseline_sse / self.baseline_count as f64).sqrt())
    }
}

#[derive(Default)]
struct Model {
    /// The statistics of the samples in the window.
    stats: Stats,
    fit: Option<(u64, Fit)>,
    errors: Errors,
}

/// What one time brings the evaluation: capabilities for both outputs, new totals, samples.
type Slot = (Vec<Capability<u64>>, Vec<(Symbol, Stats)>, Vec<Sample>);

/// The slot of `time`, with capabilities delayed to it. An update's time is at least its
/// message's (differential's invariant for the totals; the samples travel at their own
/// time), so the delay is allowed; they are held until both frontiers have passed `time`,
/// when its rows go out.
fn slot<'a>(
    stash: &'a mut BTreeMap<u64, Slot>,
    capability: &InputCapability<u64>,
    time: u64,
) -> &'a mut Slot {
    stash.entry(time).or_insert_with(|| {
        (
            vec![capability.delayed(&time, 0), capability.delayed(&time, 1)],
            Vec::new(),
            Vec::new(),
        )
    })
}

/// Per time: predicts each sample with the model before it, then refits from the totals.
fn evaluate<'scope>(
    changes: Changes<'scope>,
    samples: Stream<'scope, u64, Vec<Sample>>,
    config: &ModelConfig,
) -> RegressionStreams<'scope> {
    let window_ms = config.window_ms;
    let horizon = config.horizon;
    let ridge = config.ridge;
    let names: Vec<String> = config
        .features
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let mut builder = OperatorBuilder::new("ModelEvaluate".to_owned(), changes.scope());
    let mut changes_in = builder.new_input(
        changes,
        Exchange::new(|(symbol, _, _): &(Symbol, u64, Stats)| symbol.stable_hash()),
    );
    let mut samples_in =
        builder.new_input(samples, Exchange::new(|s: &Sample| s.symbol.stable_hash()));
    let (mut models_out, models) = builder.new_output::<Vec<ModelRow>>();
    let (mut predictions_out, predictions) = builder.new_output::<Vec<PredictionRow>>();
    builder.build(move |_capabilities| {
        let mut stash: BTreeMap<u64, Slot> = BTreeMap::new();
        let mut models: FxHashMap<Symbol, Model> = FxHashMap::default();
        move |frontiers| {
            changes_in.for_each(|capability, batch| {
                for (symbol, time, change) in batch.drain(..) {
                    slot(&mut stash, &capability, time).1.push((symbol, change));
                }
            });
            samples_in.for_each(|capability, batch| {
                let Some(&time) = capability.least() else {
                    return;
                };
                slot(&mut stash, &capability, time).2.append(batch);
            });
            let closed = |time: u64| frontiers.iter().all(|f| !f.frontier().less_equal(&time));
            while let Some(entry) = stash.first_entry() {
                let time = *entry.key();
                if !closed(time) {
                    break;
                }
                let (capabilities, mut changes, mut samples) = entry.remove();
                samples.sort_unstable_by_key(|s| (s.symbol, s.target_ms));
                changes.sort_unstable_by_key(|(symbol, _)| *symbol);
                let mut predictions = Vec::new();
                let mut newest: FxHashMap<Symbol, u64> = FxHashMap::default();
                for sample in &samples {
                    let model = models.entry(sample.symbol).or_default();
                    let solved = model.fit.as_ref().and_then(|(version, fit)| {
                        Some((*version, fit.predict(&sample.features)?))
                    });
                    if let Some((_, predicted)) = solved {
                        let e = &mut model.errors;
                        e.count += 1;
                        e.sse += (predicted - sample.actual).powi(2);
                        e.sum += sample.actual;
                        e.sum_sq += sample.actual * sample.actual;
                        if let Some(baseline) = sample.baseline {
                            e.baseline_count += 1;
                            e.baseline_sse += (baseline - sample.actual).powi(2);
                        }
                    }
                    let version = newest.entry(sample.symbol).or_insert(0);
                    *version = (*version).max(sample.target_ms);
                    predictions.push(PredictionRow {
                        symbol: sample.symbol.as_str().to_owned(),
                        window_ms,
                        start_ms: sample.target_ms,
                        model_version: solved.map(|(v, _)| v),
                        predicted: solved.map(|(_, p)| p),
                        actual: sample.actual,
                        baseline: sample.baseline,
                    });
                }
                // Each symbol's statistics: the sum of every change so far (what
                // `count_total` would hold in an arrangement nothing here reads again).
                let mut changed: Vec<(Symbol, Stats)> = Vec::new();
                for (symbol, change) in changes {
                    match changed.last_mut() {
                        Some((last, sum)) if *last == symbol => sum.plus_equals(&change),
                        _ => changed.push((symbol, change)),
                    }
                }
                let mut rows = Vec::new();
                for (symbol, change) in changed {
                    let model = models.entry(symbol).or_default();
                    model.stats.plus_equals(&change);
                    // Statistics change only when a sample enters (and not when the one
                    // leaving is equal to it).
                    let (Some(&version), false) = (newest.get(&symbol), change.is_zero()) else {
                        continue;
                    };
                    let fit = fit(&model.stats, ridge);
                    rows.push(ModelRow {
                        symbol: symbol.as_str().to_owned(),
                        window_ms,
                        version,
                        updated_ms: version + window_ms,
                        horizon,
                        n: fit.n,
                        features: names.clone(),
                        coefficients: fit.coefficients.clone(),
                        intercept: fit.intercept,
                        rmse: model.errors.rmse(),
                        r2: model.errors.r2(),
                        baseline_rmse: model.errors.baseline_rmse(),
                        predictions: model.errors.count,
                        in_sample_rmse: fit.in_sample_rmse,
                        condition: fit.condition,
                        status: fit.status.as_str().to_owned(),
                    });
                    model.fit = fit.status.solved().then_some((version, fit));
                }
                if !rows.is_empty() {
                    models_out.activate().give(&capabilities[0], &mut rows);
                }
                if !predictions.is_empty() {
                    predictions_out
                        .activate()
                        .give(&capabilities[1], &mut predictions);
                }
            }
        }
    });
    RegressionStreams {
        models,
        predictions,
    }
}
