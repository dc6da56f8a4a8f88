//! `volume_burst`: far more trades in a second than the symbol's recent seconds.
//!
//! Statistic: the trade count of each closed second against the median (and MAD, as
//! evidence) of the counts of the previous [`VolumeBurstConfig::baseline_seconds`] seconds,
//! empty seconds included. A second is *hot* when
//!
//! ```text
//! count ≥ max(min_trades, ratio · median)
//! ```
//!
//! and at least `min_history_seconds` of baseline exist. Consecutive hot seconds are one
//! burst (a burst that straddles a second boundary is split between two). A burst is short
//! and the market is calm around it; a pump-and-dump's ×5 rate is sustained. So:
//!
//! - a run of more than `max_run_seconds` hot seconds is a sustained surge (a pump, a new
//!   regime), not a burst, and is not reported;
//! - after the second that ends a run (not checked: it may hold the tail of a burst that
//!   straddles), each of the next `calm_seconds` seconds must hold fewer than
//!   `max(calm_ratio · median, min_trades / 2)` trades (the median of the run's baseline);
//!   otherwise the run was a flicker within a surge and is not reported.
//!
//! - the busiest sliding second (1000 ms ending at a trade) among the run's seconds and the
//!   one ending it must hold at least `max(min_trades, window_ratio · median)` trades: a
//!   burst is whole in one sliding second, while a flicker of a surge is not much busier
//!   than the surge.
//!
//! The burst is reported once, when the last of those calm seconds closes (a decision
//! delay of `calm_seconds + 1` seconds after the burst).
//!
//! Counts rather than volumes: sizes are heavy-tailed (log-normal), so one large trade would
//! make a quiet second look like a burst; a count is what a flood of trades changes.

use std::collections::VecDeque;

use serde::Deserialize;
use tickflow_operators::model::{Alert, AlertKind, Severity, Symbol};

use super::seconds::Summary;
use super::stats::{median_mad, Details};

/// Settings of the `volume_burst` rule (`[market.volume_burst]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumeBurstConfig {
    /// Run the rule. Default `true`.
    pub enabled: bool,
    /// Seconds of baseline before each second. Default 60.
    pub baseline_seconds: usize,
    /// Fewest seconds of baseline for a decision (warm-up). Default 30.
    pub min_history_seconds: usize,
    /// Multiple of the baseline median count that makes a second hot. Default 4.
    pub ratio: f64,
    /// Fewest trades in a hot second, whatever the baseline. Default 12.
    pub min_trades: u32,
    /// Longest run of hot seconds still reported as a burst. Default 3.
    pub max_run_seconds: usize,
    /// Multiple of the baseline median count the busiest sliding second must reach.
    /// Default 8.
    pub window_ratio: f64,
    /// Calm seconds required after the second that ends a run. Default 2.
    pub calm_seconds: usize,
    /// Multiple of the baseline median count a calm second stays under. Default 3.
    pub calm_ratio: f64,
}

impl Default for VolumeBurstConfig {
    fn default() -> Self {
        VolumeBurstConfig {
            enabled: true,
            baseline_seconds: 60,
            min_history_seconds: 30,
            ratio: 4.0,
            min_trades: 12,
            max_run_seconds: 3,
            window_ratio: 8.0,
            calm_seconds: 2,
            calm_ratio: 3.0,
        }
    }
}

impl VolumeBurstConfig {
    /// Closed seconds the rule reads: the baseline and the second itself.
    pub(crate) fn ring_seconds(&self) -> usize {
        self.baseline_seconds + 1
    }

    /// How far back the rule's state reaches: a baseline before a run that may just have
    /// exceeded its longest length, and the second that ends it.
    pub(crate) fn history_ms(&self) -> u64 {
        (self.baseline_seconds + self.max_run_seconds + self.calm_seconds + 3) as u64 * 1000
    }
}

/// One hot second of a run.
#[derive(Debug, Clone, Copy)]
struct Hot {
    summary: Summary,
    median: f64,
    mad: f64,
    threshold: f64,
}

/// A run that has ended, waiting for its calm seconds.
#[derive(Debug)]
struct Ending {
    run: Vec<Hot>,
    ids: Vec<u64>,
    /// Calm seconds still to see.
    remaining: usize,
    /// Trades in the busiest sliding second.
    busiest: u32,
    /// A second with this many trades is not calm.
    calm_threshold: f64,
}

/// The `volume_burst` state of one symbol.
#[derive(Debug, Default)]
pub(crate) struct Burst {
    run: Vec<Hot>,
    ids: Vec<u64>,
    /// The current run is longer than `max_run_seconds`.
    sustained: bool,
    /// A run that has ended, waiting for its calm seconds.
    ending: Option<Ending>,
    counts: Vec<f64>,
    scratch: Vec<f64>,
}

impl Burst {
    /// Whether a run is open (its end must be decided even if no trade comes).
    pub(crate) fn pending(&self) -> bool {
        !self.run.is_empty() || self.sustained || self.ending.is_some()
    }

    /// Takes the second just closed (the last of `ring`) with the ids of its trades.
    pub(crate) fn on_close(
        &mut self,
        config: &VolumeBurstConfig,
        symbol: Symbol,
        ring: &VecDeque<Summary>,
        ids: &[u64],
        alerts: &mut Vec<Alert>,
    ) {
        let Some(&closed) = ring.back() else {
            return;
        };
        let baseline = ring
            .iter()
            .rev()
            .skip(1)
            .take(config.baseline_seconds)
            .map(|s| f64::from(s.count));
        self.counts.clear();
        self.counts.extend(baseline);
        let hot = if self.counts.len() >= config.min_history_seconds.max(1) {
            let (median, mad) = median_mad(&mut self.counts, &mut self.scratch);
            let threshold = f64::from(config.min_trades).max(config.ratio * median);
            (f64::from(closed.count) >= threshold).then_some(Hot {
                summary: closed,
                median,
                mad,
                threshold,
            })
        } else {
            None
        };
        if let Some(ending) = &mut self.ending {
            if f64::from(closed.count) >= ending.calm_threshold {
                self.ending = None;
            } else {
                ending.remaining -= 1;
                if ending.remaining == 0 {
                    if let Some(ending) = self.ending.take() {
                        alerts.push(alert(config, symbol, ending));
                    }
                }
            }
        }
        match hot {
            Some(hot) => {
                if self.sustained {
                    return;
                }
                self.run.push(hot);
                self.ids.extend_from_slice(ids);
                if self.run.len() > config.max_run_seconds {
                    self.sustained = true;
                    self.run.clear();
                    self.ids.clear();
                }
            }
            None => {
                let busiest = self
                    .run
                    .iter()
                    .map(|h| h.summary.busiest)
                    .chain([closed.busiest])
                    .max()
                    .unwrap_or_default();
                let median = self.run.first().map_or(0.0, |h| h.median);
                let massive = f64::from(busiest)
                    >= f64::from(config.min_trades).max(config.window_ratio * median);
                if !self.run.is_empty() && !self.sustained && massive {
                    let ending = Ending {
                        busiest,
                        run: std::mem::take(&mut self.run),
                        ids: std::mem::take(&mut self.ids),
                        remaining: config.calm_seconds,
                        calm_threshold: (config.calm_ratio * median)
                            .max(f64::from(config.min_trades) / 2.0),
                    };
                    if config.calm_seconds == 0 {
                        alerts.push(alert(config, symbol, ending));
                    } else {
                        self.ending = Some(ending);
                    }
                }
                self.run.clear();
                self.ids.clear();
                self.sustained = false;
            }
        }
    }
}

fn alert(config: &VolumeBurstConfig, symbol: Symbol, ending: Ending) -> Alert {
    let Ending {
        run,
        mut ids,
        busiest,
        ..
    } = ending;
    ids.sort_unstable();
    ids.dedup();
    let first = run[0];
    let trades: u64 = run.iter().map(|h| u64::from(h.summary.count)).sum();
    let volume: f64 = run.iter().map(|h| h.summary.volume).sum();
    let peak = run
        .iter()
        .map(|h| h.summary.count)
        .max()
        .unwrap_or_default();
    let score = run
        .iter()
        .map(|h| f64::from(h.summary.count) / h.threshold)
        .fold(1.0, f64::max);
    let event_ms = run
        .iter()
        .map(|h| h.summary.last_ms)
        .max()
        .unwrap_or_default();
    let details = Details::new()
        .ints("trade_ids", ids.iter().copied())
        .int("start_ms", first.summary.second * 1000)
        .int("seconds", run.len() as u64)
        .int("trades", trades)
        .num("volume", volume)
        .int("peak_trades", u64::from(peak))
        .num("baseline_median", first.median)
        .num("baseline_mad", first.mad)
        .num("ratio", config.ratio)
        .int("min_trades", u64::from(config.min_trades))
        .num("threshold", first.threshold)
        .num("observed_ratio", f64::from(peak) / first.median)
        .int("busiest_sliding_second", u64::from(busiest))
        .num("window_ratio", config.window_ratio)
        .int("calm_seconds", config.calm_seconds as u64)
        .num("calm_ratio", config.calm_ratio)
        .finish();
    Alert {
        kind: AlertKind::VolumeBurst,
        symbol,
        account: None,
        event_ms,
        detected_ms: 0,
        severity: if score >= 2.0 {
            Severity::High
        } else {
            Severity::Medium
        },
        score,
        details,
        trade_ids: ids,
    }
}
