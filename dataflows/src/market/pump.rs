//! `pump_and_dump`: a rise on a volume surge, then a reversal.
//!
//! Read on the per-second closing prices (the last trade of each second that is not a bad
//! tick, so one stray print makes no peak) each time a second with a price closes, at
//! second `e` with price `end`:
//!
//! - peak `p`: the highest close in the `max_fall_seconds` before `e` (earliest on ties);
//! - start `a`: the lowest close in the `max_rise_seconds` before `p` (earliest on ties);
//! - rise `(peak − start) / start ≥ min_rise`, lasting `p − a ≥ min_rise_seconds`;
//! - volume ratio: mean volume per second over `[a, p]` over the mean volume per second of
//!   the `baseline_seconds` before `a` (a bounded average, which must hold at least
//!   `min_baseline_trades` trades) `≥ volume_ratio`;
//! - reversal `(peak − end) / (peak − start) ≥ reversal`.
//!
//! The alert is emitted once, at the second where all hold for the first time, unless the
//! episode starts before the end of the last one reported (a finished dump stays "true" for
//! as long as its peak is in view). Evidence: start, peak and end prices, times and trade
//! ids, rise, reversal and volume ratio with their thresholds.

use std::collections::VecDeque;

use serde::Deserialize;
use tickflow_operators::model::{Alert, AlertKind, Fixed, Severity, Symbol};

use super::seconds::Summary;
use super::stats::Details;

/// Settings of the `pump_and_dump` rule (`[market.pump_and_dump]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PumpAndDumpConfig {
    /// Run the rule. Default `true`.
    pub enabled: bool,
    /// Smallest rise from start to peak, as a fraction of the start price. Default 0.03.
    pub min_rise: f64,
    /// Longest rise, seconds from start to peak. Default 90.
    pub max_rise_seconds: usize,
    /// Shortest rise, seconds (a single jump is a bad tick or news, not a pump). Default 10.
    pub min_rise_seconds: usize,
    /// Longest fall, seconds from peak to end. Default 45.
    pub max_fall_seconds: usize,
    /// Smallest reversal, as a fraction of the rise given back. Default 0.6.
    pub reversal: f64,
    /// Smallest ratio of the volume per second during the rise to the baseline's. Default 3.
    pub volume_ratio: f64,
    /// Seconds of baseline before the start. Default 60.
    pub baseline_seconds: usize,
    /// Fewest trades in the baseline for a decision. Default 20.
    pub min_baseline_trades: u64,
}

impl Default for PumpAndDumpConfig {
    fn default() -> Self {
        PumpAndDumpConfig {
            enabled: true,
            min_rise: 0.03,
            max_rise_seconds: 90,
            min_rise_seconds: 10,
            max_fall_seconds: 45,
            reversal: 0.6,
            volume_ratio: 3.0,
            baseline_seconds: 60,
            min_baseline_trades: 20,
        }
    }
}

impl PumpAndDumpConfig {
    /// Closed seconds the rule reads: baseline, rise, fall and the end.
    pub(crate) fn ring_seconds(&self) -> usize {
        self.baseline_seconds + self.max_rise_seconds + self.max_fall_seconds + 1
    }

    /// How far back the rule's state reaches: one episode's seconds, and the episode
    /// before it that may still suppress it.
    pub(crate) fn history_ms(&self) -> u64 {
        (self.ring_seconds() + self.max_rise_seconds + self.max_fall_seconds + 2) as u64 * 1000
    }
}

/// The `pump_and_dump` state of one symbol.
#[derive(Debug, Default)]
pub(crate) struct Pump {
    /// Second index of the end of the last episode reported.
    last_end: Option<u64>,
}

/// A point of an episode: price units, trade id, event time, second index.
#[derive(Debug, Clone, Copy)]
struct Point {
    units: i64,
    id: u64,
    time_ms: u64,
    second: u64,
}

impl Point {
    fn of(summary: &Summary) -> Option<Point> {
        summary.close.map(|(units, id, time_ms)| Point {
            units,
            id,
            time_ms,
            second: summary.second,
        })
    }

    fn price(&self) -> f64 {
        Fixed(self.units).to_f64()
    }
}

impl Pump {
    /// Takes the second just closed (the last of `ring`, dense seconds).
    pub(crate) fn on_close(
        &mut self,
        config: &PumpAndDumpConfig,
        symbol: Symbol,
        ring: &VecDeque<Summary>,
        alerts: &mut Vec<Alert>,
    ) {
        let n = ring.len();
        let Some(end) = ring.back().and_then(Point::of) else {
            return;
        };
        // Peak: highest close among the `max_fall_seconds` before the end.
        let fall_from = (n - 1).saturating_sub(config.max_fall_seconds);
        let mut peak: Option<(usize, Point)> = None;
        for (i, summary) in ring.iter().enumerate().take(n - 1).skip(fall_from) {
            if let Some(point) = Point::of(summary) {
                if peak.is_none_or(|(_, best)| point.units > best.units) {
                    peak = Some((i, point));
                }
            }
        }
        let Some((peak_index, peak)) = peak else {
            return;
        };
        // Start: lowest close among the `max_rise_seconds` before the peak.
        let rise_from = peak_index.saturating_sub(config.max_rise_seconds);
        let mut start: Option<(usize, Point)> = None;
        for (i, summary) in ring.iter().enumerate().take(peak_index).skip(rise_from) {
            if let Some(point) = Point::of(summary) {
                if start.is_none_or(|(_, best)| point.units < best.units) {
                    start = Some((i, point));
                }
            }
        }
        let Some((start_index, start)) = start else {
            return;
        };
        let rise = (peak.price() - start.price()) / start.price();
        if rise < config.min_rise || peak_index - start_index < config.min_rise_seconds {
            return;
        }
        let given_back = (peak.price() - end.price()) / (peak.price() - start.price());
        if given_back < config.reversal {
            return;
        }
        if self.last_end.is_some_and(|last| start.second < last) {
            return;
        }
        // The baseline must be in the ring in full.
        if start_index < config.baseline_seconds || config.baseline_seconds == 0 {
            return;
        }
        let baseline = ring.range(start_index - config.baseline_seconds..start_index);
        let (mut base_trades, mut base_volume) = (0u64, 0f64);
        for summary in baseline {
            base_trades += u64::from(summary.count);
            base_volume += summary.volume;
        }
        if base_trades < config.min_baseline_trades || base_volume <= 0.0 {
            return;
        }
        let surge_volume: f64 = ring
            .range(start_index..=peak_index)
            .map(|summary| summary.volume)
            .sum();
        let normal = base_volume / config.baseline_seconds as f64;
        let surge = surge_volume / (peak_index - start_index + 1) as f64;
        let volume_ratio = surge / normal;
        if volume_ratio < config.volume_ratio {
            return;
        }
        self.last_end = Some(end.second);
        let score = (rise / config.min_rise)
            .min(given_back / config.reversal)
            .min(volume_ratio / config.volume_ratio);
        let mut trade_ids = vec![start.id, peak.id, end.id];
        trade_ids.sort_unstable();
        trade_ids.dedup();
        let details = Details::new()
            .ints("trade_ids", trade_ids.iter().copied())
            .decimal("start_price", Fixed(start.units))
            .int("start_ms", start.time_ms)
            .decimal("peak_price", Fixed(peak.units))
            .int("peak_ms", peak.time_ms)
            .decimal("end_price", Fixed(end.units))
            .int("end_ms", end.time_ms)
            .num("rise", rise)
            .num("min_rise", config.min_rise)
            .num("given_back", given_back)
            .num("reversal", config.reversal)
            .num("volume_ratio", volume_ratio)
            .num("min_volume_ratio", config.volume_ratio)
            .num("baseline_volume_per_second", normal)
            .finish();
        alerts.push(Alert {
            kind: AlertKind::PumpAndDump,
            symbol,
            account: None,
            event_ms: end.time_ms,
            detected_ms: 0,
            severity: Severity::High,
            score,
            details,
            trade_ids,
        });
    }
}
