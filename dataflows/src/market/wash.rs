//! Account-free wash-trading indicators per symbol and window (Cong et al., "Crypto Wash
//! Trading"): the first significant digits of trade sizes against Benford's law, and the
//! share of round sizes against the symbol's usual share.
//!
//! Windows are the tumbling windows of the largest configured size. For each window with a
//! trade, once it is final, one [`WashStats`] row:
//!
//! - **Benford.** Counts `n_d` of first significant digits `d = 1..9` of the sizes that are
//!   not round (round sizes are the other indicator's; left in, a window of round sizes would
//!   fail Benford's law too and one anomaly would raise two alerts), against
//!   `p_d = log10(1 + 1/d)`: Pearson's `chi2 = Σ (n_d − n·p_d)² / (n·p_d)` (8 degrees of
//!   freedom) and Nigrini's `mad = (1/9) Σ |n_d/n − p_d|` (first-digit conformity: above 0.015
//!   is nonconformity). Alert `benford` when `Σ n_d ≥ min_trades`, `chi2 ≥ chi2` and
//!   `mad ≥ mad` (the chi-square alone flags any tiny deviation in a large window, the MAD
//!   alone any small window).
//! - **Round sizes.** A size is round when it has one significant digit (1, 2, 5, 0.1, 0.5,
//!   10, …). The expected share is the median share of the previous `previous_windows`
//!   windows of the symbol that held at least `min_trades` trades (at least
//!   `min_previous_windows` of them), floored at `share_floor`; `z = (round − n·p) /
//!   √(n·p·(1 − p))` is the binomial z-score. Alert `round_sizes` when `trades ≥ min_trades`,
//!   `z ≥ z` and `share − expected ≥ min_excess`.
//!
//! The alerts name the window by its lowest and highest trade id (`trade_ids`), its start and
//! size in `details`.

use std::collections::VecDeque;

use serde::Deserialize;
use tickflow_operators::model::{Alert, AlertKind, Severity, Symbol};
use tickflow_operators::schema::tables::{self, decimal_text};
use tickflow_operators::schema::{Row, Value};

use super::Tick as Trade;

use super::stats::{median_sorted, Details};

/// Settings of the `benford` alert (`[market.benford]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BenfordConfig {
    /// Run the rule. Default `true`.
    pub enabled: bool,
    /// Fewest sizes that are not round in the window. Default 200.
    pub min_trades: u64,
    /// Smallest chi-square statistic (8 degrees of freedom; 35 is a p-value of ~3·10⁻⁵).
    /// Default 35.
    pub chi2: f64,
    /// Smallest mean absolute deviation of the digit shares (Nigrini's nonconformity
    /// threshold for first digits). Default 0.015.
    pub mad: f64,
}

impl Default for BenfordConfig {
    fn default() -> Self {
        BenfordConfig {
            enabled: true,
            min_trades: 200,
            chi2: 35.0,
            mad: 0.015,
        }
    }
}

/// Settings of the `round_sizes` alert (`[market.round_sizes]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoundSizesConfig {
    /// Run the rule. Default `true`.
    pub enabled: bool,
    /// Fewest trades in the window, and in each previous window counted. Default 50.
    pub min_trades: u64,
    /// Previous windows the usual share is taken from. Default 10.
    pub previous_windows: usize,
    /// Fewest previous windows for a decision (warm-up). Default 3.
    pub min_previous_windows: usize,
    /// Smallest binomial z-score. Default 6.
    pub z: f64,
    /// Smallest excess of the share over the usual share. Default 0.2.
    pub min_excess: f64,
    /// Smallest usual share the z-score is taken against. Default 0.005.
    pub share_floor: f64,
}

impl Default for RoundSizesConfig {
    fn default() -> Self {
        RoundSizesConfig {
            enabled: true,
            min_trades: 50,
            previous_windows: 10,
            min_previous_windows: 3,
            z: 6.0,
            min_excess: 0.2,
            share_floor: 0.005,
        }
    }
}

/// The wash-trading indicators of one symbol in one window: a row of `wash_stats`.
#[derive(Clone, Debug, PartialEq)]
pub struct WashStats {
    /// The symbol.
    pub symbol: Symbol,
    /// Window size, ms (the largest configured).
    pub window_ms: u64,
    /// Window start, ms since the epoch.
    pub start_ms: u64,
    /// Trades in the window.
    pub trades: u64,
    /// How many sizes that are not round have first significant digit 1, 2, …, 9
    /// (`trades = round + Σ first_digits`).
    pub first_digits: [u64; 9],
    /// Pearson's chi-square of `first_digits` against Benford's law (8 degrees of freedom).
    pub chi2: f64,
    /// Nigrini's mean absolute deviation of the first-digit shares from Benford's.
    pub mad: f64,
    /// Sizes with one significant digit.
    pub round: u64,
    /// `round / trades`.
    pub round_share: f64,
    /// The symbol's usual round share (median of previous windows); `None` during warm-up.
    pub expected_share: Option<f64>,
    /// Binomial z-score of `round` against `expected_share` (floored); `None` with it.
    pub z: Option<f64>,
}

impl From<WashStats> for Row {
    fn from(w: WashStats) -> Row {
        let WashStats {
            symbol,
            window_ms,
            start_ms,
            trades,
            first_digits,
            chi2,
            mad,
            round,
            round_share,
            expected_share,
            z,
        } = w;
        let mut values = Vec::with_capacity(tables::WASH_STATS.columns.len());
        values.extend([symbol.as_str().into(), window_ms.into(), start_ms.into()]);
        values.push(trades.into());
        values.extend(first_digits.map(Value::from));
        values.extend([
            Value::Decimal(decimal_text(chi2)),
            Value::Decimal(decimal_text(mad)),
            round.into(),
            Value::Decimal(decimal_text(round_share)),
            expected_share.map_or(Value::Null, |p| Value::Decimal(decimal_text(p))),
            z.map_or(Value::Null, |z| Value::Decimal(decimal_text(z))),
        ]);
        Row {
            table: tables::WASH_STATS.id(),
            values,
        }
    }
}

/// Benford's first-digit probabilities, `log10(1 + 1/d)` for `d = 1..9`.
fn benford() -> [f64; 9] {
    std::array::from_fn(|i| (1.0 + 1.0 / (i as f64 + 1.0)).log10())
}

/// First significant digit and whether it is the only one, of a positive decimal.
fn digits(units: i64) -> Option<(usize, bool)> {
    if units <= 0 {
        return None;
    }
    // Divisions by constants compile to multiplications; a few steps strip the zeros.
    let mut u = units as u64;
    while u.is_multiple_of(100_000_000) {
        u /= 100_000_000;
    }
    for step in [10_000, 100, 10] {
        if u.is_multiple_of(step) {
            u /= step;
        }
    }
    let round = u < 10;
    let first = u / 10u64.pow(u.ilog10());
    Some((first as usize, round))
}

/// The window being filled.
#[derive(Debug, Clone, Copy)]
struct Open {
    start_ms: u64,
    trades: u64,
    first_digits: [u64; 9],
    round: u64,
    min_id: u64,
    max_id: u64,
    last_ms: u64,
}

/// The wash-indicator state of one symbol.
#[derive(Debug, Default)]
pub(crate) struct Wash {
    open: Option<Open>,
    /// `(start_ms, round share)` of previous windows with enough trades, oldest first.
    previous: VecDeque<(u64, f64)>,
}

/// What the two rules need to know.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WashSettings<'a> {
    pub window_ms: u64,
    pub benford: &'a BenfordConfig,
    pub round: &'a RoundSizesConfig,
}

impl WashSettings<'_> {
    pub(crate) fn history_ms(&self) -> u64 {
        (self.round.previous_windows as u64 + 1) * self.window_ms
    }
}

impl Wash {
    pub(crate) fn add(
        &mut self,
        settings: &WashSettings<'_>,
        trade: &Trade,
        stats: &mut Vec<WashStats>,
        alerts: &mut Vec<Alert>,
    ) {
        let start_ms = trade.time_ms - trade.time_ms % settings.window_ms;
        self.close_until(settings, trade.symbol, start_ms, stats, alerts);
        let open = self.open.get_or_insert(Open {
            start_ms,
            trades: 0,
            first_digits: [0; 9],
            round: 0,
            min_id: trade.id,
            max_id: trade.id,
            last_ms: trade.time_ms,
        });
        open.trades += 1;
        if let Some((digit, round)) = digits(trade.qty.0) {
            if round {
                open.round += 1;
            } else {
                open.first_digits[digit - 1] += 1;
            }
        }
        open.min_id = open.min_id.min(trade.id);
        open.max_id = open.max_id.max(trade.id);
        open.last_ms = trade.time_ms;
    }

    /// The end of the open window, when one is open.
    pub(crate) fn pending_end_ms(&self, window_ms: u64) -> Option<u64> {
        self.open.map(|open| open.start_ms + window_ms)
    }

    /// Closes the open window if it ends at or before `end_ms`.
    pub(crate) fn close_until(
        &mut self,
        settings: &WashSettings<'_>,
        symbol: Symbol,
        end_ms: u64,
        stats: &mut Vec<WashStats>,
        alerts: &mut Vec<Alert>,
    ) {
        let Some(open) = self.open else {
            return;
        };
        if open.start_ms + settings.window_ms > end_ms {
            return;
        }
        self.open = None;
        self.close(settings, symbol, open, stats, alerts);
    }

    fn close(
        &mut self,
        settings: &WashSettings<'_>,
        symbol: Symbol,
        open: Open,
        stats: &mut Vec<WashStats>,
        alerts: &mut Vec<Alert>,
    ) {
        let WashSettings {
            window_ms,
            benford: benford_config,
            round: round_config,
        } = *settings;
        let n = open.trades as f64;
        let expected = benford();
        let digit_total: u64 = open.first_digits.iter().sum();
        let (mut chi2, mut mad) = (0.0, 0.0);
        if digit_total > 0 {
            let total = digit_total as f64;
            for (&count, &p) in open.first_digits.iter().zip(&expected) {
                let e = total * p;
                chi2 += (count as f64 - e).powi(2) / e;
                mad += (count as f64 / total - p).abs();
            }
            mad /= 9.0;
        }
        let round_share = open.round as f64 / n;
        // The usual share: previous windows within `previous_windows` sizes of this one.
        let oldest = open
            .start_ms
            .saturating_sub(round_config.previous_windows as u64 * window_ms);
        while self.previous.front().is_some_and(|&(s, _)| s < oldest) {
            self.previous.pop_front();
        }
        let usual = (self.previous.len() >= round_config.min_previous_windows.max(1)).then(|| {
            let mut shares: Vec<f64> = self.previous.iter().map(|&(_, share)| share).collect();
            shares.sort_unstable_by(f64::total_cmp);
            median_sorted(&shares)
        });
        let z = usual.map(|usual| {
            let p = usual.max(round_config.share_floor).min(1.0 - 1e-9);
            (open.round as f64 - n * p) / (n * p * (1.0 - p)).sqrt()
        });
        if open.trades >= round_config.min_trades {
            self.previous.push_back((open.start_ms, round_share));
        }
        let row = WashStats {
            symbol,
            window_ms,
            start_ms: open.start_ms,
            trades: open.trades,
            first_digits: open.first_digits,
            chi2,
            mad,
            round: open.round,
            round_share,
            expected_share: usual,
            z,
        };
        let mut ids = vec![open.min_id, open.max_id];
        ids.dedup();
        if benford_config.enabled
            && digit_total >= benford_config.min_trades
            && chi2 >= benford_config.chi2
            && mad >= benford_config.mad
        {
            let details = Details::new()
                .ints("trade_ids", ids.iter().copied())
                .int("window_ms", window_ms)
                .int("start_ms", open.start_ms)
                .int("trades", open.trades)
                .ints("first_digits", open.first_digits)
                .num("chi2", chi2)
                .num("chi2_threshold", benford_config.chi2)
                .num("mad", mad)
                .num("mad_threshold", benford_config.mad)
                .int("min_trades", benford_config.min_trades)
                .finish();
            alerts.push(Alert {
                kind: AlertKind::Benford,
                symbol,
                account: None,
                event_ms: open.last_ms,
                detected_ms: 0,
                severity: Severity::Medium,
                score: (chi2 / benford_config.chi2).min(mad / benford_config.mad),
                details,
                trade_ids: ids.clone(),
            });
        }
        if let (true, Some(usual), Some(z)) = (round_config.enabled, usual, z) {
            let excess = round_share - usual;
            if open.trades >= round_config.min_trades
                && z >= round_config.z
                && excess >= round_config.min_excess
            {
                let details = Details::new()
                    .ints("trade_ids", ids.iter().copied())
                    .int("window_ms", window_ms)
                    .int("start_ms", open.start_ms)
                    .int("trades", open.trades)
                    .int("round", open.round)
                    .num("share", round_share)
                    .num("expected_share", usual)
                    .num("z", z)
                    .num("z_threshold", round_config.z)
                    .num("min_excess", round_config.min_excess)
                    .finish();
                alerts.push(Alert {
                    kind: AlertKind::RoundSizes,
                    symbol,
                    account: None,
                    event_ms: open.last_ms,
                    detected_ms: 0,
                    severity: Severity::Medium,
                    score: (z / round_config.z).min(excess / round_config.min_excess),
                    details,
                    trade_ids: ids,
                });
            }
        }
        stats.push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_digits_and_round_sizes() {
        assert_eq!(digits(50_000_000), Some((5, true))); // 0.5
        assert_eq!(digits(1_000_000_000), Some((1, true))); // 10
        assert_eq!(digits(123_000_000), Some((1, false))); // 1.23
        assert_eq!(digits(9), Some((9, true))); // 0.00000009
        assert_eq!(digits(0), None);
        assert_eq!(digits(i64::MAX), Some((9, false)));
        assert_eq!(digits(7_000_000_000_000_000_000), Some((7, true)));
        assert_eq!(digits(120_000_000_000_000_000), Some((1, false)));
        let p = benford();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_wash_stats_row_has_the_declared_columns() {
        let stats = WashStats {
            symbol: Symbol::new("BTCUSDT").expect("short"),
            window_ms: 60_000,
            start_ms: 120_000,
            trades: 10,
            first_digits: [1, 2, 0, 0, 0, 0, 0, 0, 3],
            chi2: 1.5,
            mad: 0.25,
            round: 4,
            round_share: 0.4,
            expected_share: None,
            z: Some(-2.0),
        };
        let row = Row::from(stats);
        assert_eq!(row.table, tables::WASH_STATS.id());
        let names: Vec<&str> = tables::WASH_STATS.columns.iter().map(|c| c.name).collect();
        assert_eq!(row.values.len(), names.len());
        let value = |name: &str| &row.values[names.iter().position(|n| *n == name).expect(name)];
        assert_eq!(value("symbol"), &Value::Text("BTCUSDT".to_owned()));
        assert_eq!(value("d1"), &Value::from(1u64));
        assert_eq!(value("d9"), &Value::from(3u64));
        assert_eq!(value("chi2"), &Value::Decimal("1.500000".to_owned()));
        assert_eq!(value("round"), &Value::from(4u64));
        assert_eq!(value("expected_share"), &Value::Null);
        assert_eq!(value("z"), &Value::Decimal("-2.000000".to_owned()));
    }
}
