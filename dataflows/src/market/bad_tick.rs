//! `bad_tick`: one trade far from the prevailing price.
//!
//! The prevailing price is the median of the symbol's recent trade prices: the last
//! [`BadTickConfig::trades`] trades no older than [`BadTickConfig::max_age_ms`], as they stood
//! at the start of the trade's second of event time (statistics are taken once per second,
//! not per trade, and not per timely time: so decisions do not depend on the timestamp
//! granule).
//! A trade is a bad tick when
//!
//! ```text
//! |price − median| > k · max(1.4826 · MAD, tick, relative_floor · median)
//! ```
//!
//! where `tick` is the finest decimal step of the window's prices (a one-tick floor: a
//! window of equal prices has MAD 0) and the relative floor keeps tight books from flagging
//! ordinary moves.
//!
//! Bad ticks must not poison the statistics, yet excluding the trades this rule flags would
//! make every decision depend on every earlier one (unbounded history, impossible to replay).
//! So two windows are kept: a *raw* window of all trades, and a *clean* window of the trades
//! that the raw window's statistics did not flag. Decisions use the clean window. A raw flag
//! depends on `max_age` of history, a decision on twice that: the horizon is `2 · max_age`.

use std::collections::VecDeque;

use serde::Deserialize;
use tickflow_operators::model::{Alert, AlertKind, Severity};

use super::Tick as Trade;

use super::stats::{median_mad, Details, MAD_TO_SIGMA};

/// Settings of the `bad_tick` rule (`[market.bad_tick]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BadTickConfig {
    /// Run the rule. Default `true`.
    pub enabled: bool,
    /// Size of the rolling window, in trades. Default 100.
    pub trades: usize,
    /// Oldest trade the window holds, ms before the batch's time. Default 60 000 (1 min).
    pub max_age_ms: u64,
    /// Fewest trades in the window for a decision (warm-up). Default 20.
    pub min_trades: usize,
    /// Multiple `k` of the robust scale a trade must stray beyond. Default 12.
    pub k: f64,
    /// Smallest scale, as a fraction of the median price. Default 0.001 (so, with `k`, no
    /// move under 1.2 % is ever flagged).
    pub relative_floor: f64,
}

impl Default for BadTickConfig {
    fn default() -> Self {
        BadTickConfig {
            enabled: true,
            trades: 100,
            max_age_ms: 60_000,
            min_trades: 20,
            k: 12.0,
            relative_floor: 0.001,
        }
    }
}

impl BadTickConfig {
    /// How far back the rule's state reaches.
    pub(crate) fn history_ms(&self) -> u64 {
        2 * self.max_age_ms
    }
}

/// One window of `(event time, price)`, oldest first.
#[derive(Debug, Default)]
struct Window {
    prices: VecDeque<(u64, f64, i64)>,
}

/// The statistics of a window, taken once per second.
#[derive(Debug, Clone, Copy)]
struct Stats {
    n: usize,
    median: f64,
    mad: f64,
    tick: f64,
    threshold: f64,
}

impl Window {
    fn evict_older_than(&mut self, oldest_ms: u64) {
        while self.prices.front().is_some_and(|&(t, _, _)| t < oldest_ms) {
            self.prices.pop_front();
        }
    }

    fn push(&mut self, capacity: usize, time_ms: u64, price: f64, units: i64) {
        self.prices.push_back((time_ms, price, units));
        while self.prices.len() > capacity {
            self.prices.pop_front();
        }
    }

    fn stats(
        &self,
        config: &BadTickConfig,
        values: &mut Vec<f64>,
        scratch: &mut Vec<f64>,
    ) -> Stats {
        values.clear();
        values.extend(self.prices.iter().map(|&(_, p, _)| p));
        let (median, mad) = median_mad(values, scratch);
        let tick = self
            .prices
            .iter()
            .map(|&(_, _, units)| decimal_step(units))
            .min()
            .map_or(0.0, |step| step as f64 / 1e8);
        let scale = (MAD_TO_SIGMA * mad)
            .max(tick)
            .max(config.relative_floor * median);
        Stats {
            n: self.prices.len(),
            median,
            mad,
            tick,
            threshold: config.k * scale,
        }
    }
}

/// The largest power of ten (in units of 10^-8) dividing `units`: the finest decimal step the
/// price is quoted in.
fn decimal_step(units: i64) -> i64 {
    if units == 0 {
        return 1;
    }
    let mut step = 1i64;
    while step < 10_000_000_000_000_000 && units % (step * 10) == 0 {
        step *= 10;
    }
    step
}

/// The `bad_tick` state of one symbol.
#[derive(Debug, Default)]
pub(crate) struct BadTick {
    raw: Window,
    clean: Window,
    values: Vec<f64>,
    scratch: Vec<f64>,
    /// The second (its start, ms) the statistics below were taken at, and the raw and
    /// clean windows' statistics then.
    taken: Option<(u64, Stats, Stats)>,
}

/// How often the statistics are taken: at the start of each second of event time.
const STATS_MS: u64 = 1_000;

impl BadTick {
    /// Checks one batch (the trades of one symbol at timely time `time`, in `(time_ms, id)`
    /// order; times in increasing order, none spanning two seconds) and sets `flags[i]` for
    /// every bad tick, with its alert in `alerts`.
    pub(crate) fn batch(
        &mut self,
        config: &BadTickConfig,
        time: u64,
        trades: &[Trade],
        flags: &mut Vec<bool>,
        alerts: &mut Vec<Alert>,
    ) {
        flags.clear();
        flags.resize(trades.len(), false);
        let second = time - time % STATS_MS;
        let (raw, clean) = match self.taken {
            Some((taken, raw, clean)) if taken == second => (raw, clean),
            _ => {
                // Every trade before this second is in the windows, none of it yet.
                let oldest = second.saturating_sub(config.max_age_ms);
                self.raw.evict_older_than(oldest);
                self.clean.evict_older_than(oldest);
                let raw = self.raw.stats(config, &mut self.values, &mut self.scratch);
                let clean = self
                    .clean
                    .stats(config, &mut self.values, &mut self.scratch);
                self.taken = Some((second, raw, clean));
                (raw, clean)
            }
        };
        for (trade, flag) in trades.iter().zip(flags.iter_mut()) {
            let price = trade.price.to_f64();
            let raw_flag = raw.n >= config.min_trades && (price - raw.median).abs() > raw.threshold;
            let deviation = (price - clean.median).abs();
            if clean.n >= config.min_trades && deviation > clean.threshold {
                *flag = true;
                alerts.push(alert(config, trade, &clean, deviation));
            }
            self.raw
                .push(config.trades, trade.time_ms, price, trade.price.0);
            if !raw_flag {
                self.clean
                    .push(config.trades, trade.time_ms, price, trade.price.0);
            }
        }
    }
}

fn alert(config: &BadTickConfig, trade: &Trade, stats: &Stats, deviation: f64) -> Alert {
    let score = deviation / stats.threshold;
    let details = Details::new()
        .ints("trade_ids", [trade.id])
        .decimal("price", trade.price)
        .num("median", stats.median)
        .num("mad", stats.mad)
        .num("tick", stats.tick)
        .num("k", config.k)
        .num("relative_floor", config.relative_floor)
        .num("threshold", stats.threshold)
        .num("deviation", deviation)
        .num("relative_deviation", deviation / stats.median)
        .int("window_trades", stats.n as u64)
        .finish();
    Alert {
        kind: AlertKind::BadTick,
        symbol: trade.symbol,
        account: None,
        event_ms: trade.time_ms,
        detected_ms: 0,
        severity: if score >= 2.0 {
            Severity::High
        } else {
            Severity::Medium
        },
        score,
        details,
        trade_ids: vec![trade.id],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_steps() {
        assert_eq!(decimal_step(4_325_010_000_000), 10_000_000);
        assert_eq!(decimal_step(4_325_012_000_000), 1_000_000);
        assert_eq!(decimal_step(1), 1);
        assert_eq!(decimal_step(100_000_000), 100_000_000);
    }
}
