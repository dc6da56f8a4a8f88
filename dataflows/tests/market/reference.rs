//! Plain sequential references of the market rules, written from their documented
//! definitions: whole-history recomputation per trade or per second, dense seconds, no
//! rings, no wake-ups, no timely. They return what identifies an alert (kind, symbol, event
//! time, trade ids), not its evidence text.

use std::collections::BTreeMap;

use tickflow_dataflows::market::MarketConfig;
use tickflow_operators::model::{AlertKind, Symbol, Trade};

/// What identifies an alert.
pub type Key = (AlertKind, Symbol, u64, Vec<u64>);

/// The trades of each symbol in `(time_ms, id)` order.
pub fn by_symbol(trades: &[Trade]) -> BTreeMap<Symbol, Vec<Trade>> {
    let mut map: BTreeMap<Symbol, Vec<Trade>> = BTreeMap::new();
    for trade in trades {
        map.entry(trade.symbol).or_default().push(*trade);
    }
    for list in map.values_mut() {
        list.sort_by_key(|t| (t.time_ms, t.id));
    }
    map
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The finest decimal step of a price, read from its decimal text.
fn step_of(trade: &Trade) -> f64 {
    let text = format!("{}", trade.price.0);
    let zeros = text.len() - text.trim_end_matches('0').len();
    10f64.powi(zeros as i32) / 1e8
}

/// `bad_tick` flags of one symbol's trades: `(raw flag, alert)` per trade, each judged on
/// the trades of the seconds before its own.
pub fn bad_tick_flags(config: &MarketConfig, trades: &[Trade]) -> Vec<(bool, bool)> {
    let c = &config.bad_tick;
    let batch = |t: &Trade| t.time_ms - t.time_ms % 1000;
    let check = |i: usize, eligible: &dyn Fn(usize) -> bool| -> bool {
        let b = batch(&trades[i]);
        // The previous seconds' trades, newest first, no older than `max_age`.
        let hi = trades.partition_point(|t| batch(t) < b);
        let mut window: Vec<usize> = (0..hi)
            .rev()
            .take_while(|&j| trades[j].time_ms >= b.saturating_sub(c.max_age_ms))
            .filter(|&j| eligible(j))
            .take(c.trades)
            .collect();
        window.reverse();
        if window.len() < c.min_trades {
            return false;
        }
        let prices: Vec<f64> = window.iter().map(|&j| trades[j].price.to_f64()).collect();
        let m = median(prices.clone());
        let mad = median(prices.iter().map(|p| (p - m).abs()).collect());
        let tick = window
            .iter()
            .map(|&j| step_of(&trades[j]))
            .fold(f64::INFINITY, f64::min);
        let scale = (1.4826 * mad).max(tick).max(c.relative_floor * m);
        (trades[i].price.to_f64() - m).abs() > c.k * scale
    };
    let raw: Vec<bool> = (0..trades.len()).map(|i| check(i, &|_| true)).collect();
    (0..trades.len())
        .map(|i| (raw[i], check(i, &|j| !raw[j])))
        .collect()
}

pub fn bad_ticks(config: &MarketConfig, trades: &[Trade]) -> Vec<Key> {
    let mut keys = Vec::new();
    for list in by_symbol(trades).values() {
        for (trade, (_, alert)) in list.iter().zip(bad_tick_flags(config, list)) {
            if alert {
                keys.push((
                    AlertKind::BadTick,
                    trade.symbol,
                    trade.time_ms,
                    vec![trade.id],
                ));
            }
        }
    }
    keys.sort();
    keys
}

/// Dense per-second view of one symbol, from its first second to `last + extra`.
struct Dense {
    first: u64,
    counts: Vec<u32>,
    volume: Vec<f64>,
    last_ms: Vec<u64>,
    /// Most trades within 1000 ms ending at one of the second's trades (earlier trades only).
    busiest: Vec<u32>,
    ids: Vec<Vec<u64>>,
    /// Last trade not flagged as a bad tick: (price units, id, time).
    close: Vec<Option<(i64, u64, u64)>>,
}

fn dense(list: &[Trade], flags: &[(bool, bool)], extra: u64) -> Dense {
    let first = list[0].time_ms / 1000;
    let last = list[list.len() - 1].time_ms / 1000;
    let n = (last - first + 1 + extra) as usize;
    let mut d = Dense {
        first,
        counts: vec![0; n],
        volume: vec![0.0; n],
        last_ms: vec![0; n],
        busiest: vec![0; n],
        ids: vec![Vec::new(); n],
        close: vec![None; n],
    };
    let mut oldest = 0;
    for (i, (trade, &(_, bad))) in list.iter().zip(flags).enumerate() {
        let s = (trade.time_ms / 1000 - first) as usize;
        while list[oldest].time_ms + 1000 <= trade.time_ms {
            oldest += 1;
        }
        d.busiest[s] = d.busiest[s].max((i + 1 - oldest) as u32);
        d.counts[s] += 1;
        d.volume[s] += trade.qty.to_f64();
        d.last_ms[s] = trade.time_ms;
        d.ids[s].push(trade.id);
        if !bad {
            d.close[s] = Some((trade.price.0, trade.id, trade.time_ms));
        }
    }
    d
}

pub fn bursts(config: &MarketConfig, trades: &[Trade]) -> Vec<Key> {
    let c = &config.volume_burst;
    let mut keys = Vec::new();
    for list in by_symbol(trades).values() {
        let none = vec![(false, false); list.len()];
        let d = dense(list, &none, (c.max_run_seconds + c.calm_seconds) as u64 + 2);
        let medians: Vec<Option<f64>> = (0..d.counts.len())
            .map(|s| {
                let baseline: Vec<f64> = (s.saturating_sub(c.baseline_seconds)..s)
                    .map(|b| f64::from(d.counts[b]))
                    .collect();
                (baseline.len() >= c.min_history_seconds.max(1)).then(|| median(baseline))
            })
            .collect();
        let hot: Vec<bool> = (0..d.counts.len())
            .map(|s| {
                medians[s].is_some_and(|m| {
                    f64::from(d.counts[s]) >= f64::from(c.min_trades).max(c.ratio * m)
                })
            })
            .collect();
        let mut s = 0;
        while s < hot.len() {
            if !hot[s] {
                s += 1;
                continue;
            }
            let start = s;
            while s < hot.len() && hot[s] {
                s += 1;
            }
            // A run is reported when a second that is not hot ends it.
            // The `calm_seconds` after the one that ends the run stay under the calm
            // threshold of the run's first baseline.
            let calm =
                (c.calm_ratio * medians[start].expect("hot")).max(f64::from(c.min_trades) / 2.0);
            let after = s + 1..s + 1 + c.calm_seconds;
            let busiest = (start..=s.min(hot.len() - 1))
                .map(|r| d.busiest[r])
                .max()
                .expect("a run");
            let needed = f64::from(c.min_trades).max(c.window_ratio * medians[start].expect("hot"));
            if s - start <= c.max_run_seconds
                && f64::from(busiest) >= needed
                && after.end <= hot.len()
                && after.clone().all(|a| f64::from(d.counts[a]) < calm)
            {
                let mut ids: Vec<u64> = (start..s).flat_map(|r| d.ids[r].clone()).collect();
                ids.sort_unstable();
                let event = (start..s).map(|r| d.last_ms[r]).max().expect("a run");
                keys.push((AlertKind::VolumeBurst, list[0].symbol, event, ids));
            }
        }
    }
    keys.sort();
    keys
}

pub fn pumps(config: &MarketConfig, trades: &[Trade]) -> Vec<Key> {
    let c = &config.pump_and_dump;
    let mut keys = Vec::new();
    for list in by_symbol(trades).values() {
        let flags = if config.bad_tick.enabled {
            bad_tick_flags(config, list)
        } else {
            vec![(false, false); list.len()]
        };
        let d = dense(list, &flags, 0);
        let mut last_end: Option<u64> = None;
        for e in 0..d.counts.len() {
            let Some(end) = d.close[e] else { continue };
            let mut peak: Option<(usize, (i64, u64, u64))> = None;
            for s in e.saturating_sub(c.max_fall_seconds)..e {
                if let Some(p) = d.close[s] {
                    if peak.is_none_or(|(_, q)| p.0 > q.0) {
                        peak = Some((s, p));
                    }
                }
            }
            let Some((p, peak)) = peak else { continue };
            let mut start: Option<(usize, (i64, u64, u64))> = None;
            for s in p.saturating_sub(c.max_rise_seconds)..p {
                if let Some(q) = d.close[s] {
                    if start.is_none_or(|(_, b)| q.0 < b.0) {
                        start = Some((s, q));
                    }
                }
            }
            let Some((a, start)) = start else { continue };
            let price = |u: i64| u as f64 / 1e8;
            let rise = (price(peak.0) - price(start.0)) / price(start.0);
            if rise < c.min_rise || p - a < c.min_rise_seconds {
                continue;
            }
            let back = (price(peak.0) - price(end.0)) / (price(peak.0) - price(start.0));
            if back < c.reversal {
                continue;
            }
            if last_end.is_some_and(|l| (a as u64) < l) {
                continue;
            }
            if a < c.baseline_seconds || c.baseline_seconds == 0 {
                continue;
            }
            let base_trades: u64 = (a - c.baseline_seconds..a)
                .map(|s| u64::from(d.counts[s]))
                .sum();
            let base_volume: f64 = (a - c.baseline_seconds..a).map(|s| d.volume[s]).sum();
            if base_trades < c.min_baseline_trades || base_volume <= 0.0 {
                continue;
            }
            let surge: f64 = (a..=p).map(|s| d.volume[s]).sum::<f64>() / (p - a + 1) as f64;
            if surge / (base_volume / c.baseline_seconds as f64) < c.volume_ratio {
                continue;
            }
            last_end = Some(e as u64);
            let mut ids = vec![start.1, peak.1, end.1];
            ids.sort_unstable();
            ids.dedup();
            keys.push((AlertKind::PumpAndDump, list[0].symbol, end.2, ids));
        }
        let _ = d.first;
    }
    keys.sort();
    keys
}

/// One window's counts: (trades, first digits, round).
pub type WindowCounts = (u64, [u64; 9], u64);

pub fn wash_windows(trades: &[Trade], window_ms: u64) -> BTreeMap<(Symbol, u64), WindowCounts> {
    let mut map: BTreeMap<(Symbol, u64), WindowCounts> = BTreeMap::new();
    for t in trades {
        let entry = map
            .entry((t.symbol, t.time_ms - t.time_ms % window_ms))
            .or_insert((0, [0; 9], 0));
        entry.0 += 1;
        let text = format!("{}", t.qty.0);
        let significant = text.trim_end_matches('0');
        let first = significant.as_bytes()[0] - b'0';
        if significant.len() == 1 {
            entry.2 += 1;
        } else {
            entry.1[usize::from(first) - 1] += 1;
        }
    }
    map
}

pub fn wash(config: &MarketConfig, window_ms: u64, trades: &[Trade]) -> Vec<Key> {
    let windows = wash_windows(trades, window_ms);
    let benford: Vec<f64> = (1..=9)
        .map(|d| (1.0 + 1.0 / f64::from(d)).log10())
        .collect();
    let mut keys = Vec::new();
    let rc = &config.round_sizes;
    let bc = &config.benford;
    for (&(symbol, start), &(n, digits, round)) in &windows {
        let in_window: Vec<&Trade> = trades
            .iter()
            .filter(|t| t.symbol == symbol && t.time_ms - t.time_ms % window_ms == start)
            .collect();
        let ids = {
            let mut ids = vec![
                in_window.iter().map(|t| t.id).min().expect("non-empty"),
                in_window.iter().map(|t| t.id).max().expect("non-empty"),
            ];
            ids.dedup();
            ids
        };
        let event = in_window
            .iter()
            .max_by_key(|t| (t.time_ms, t.id))
            .expect("non-empty")
            .time_ms;
        let total = digits.iter().sum::<u64>() as f64;
        let chi2: f64 = (0..9)
            .map(|d| (digits[d] as f64 - total * benford[d]).powi(2) / (total * benford[d]))
            .sum();
        let mad: f64 = (0..9)
            .map(|d| (digits[d] as f64 / total - benford[d]).abs())
            .sum::<f64>()
            / 9.0;
        if bc.enabled && total >= bc.min_trades as f64 && chi2 >= bc.chi2 && mad >= bc.mad {
            keys.push((AlertKind::Benford, symbol, event, ids.clone()));
        }
        let previous: Vec<f64> = windows
            .range(
                (
                    symbol,
                    start.saturating_sub(rc.previous_windows as u64 * window_ms),
                )..(symbol, start),
            )
            .filter(|(_, &(n, _, _))| n >= rc.min_trades)
            .map(|(_, &(n, _, r))| r as f64 / n as f64)
            .collect();
        if previous.len() < rc.min_previous_windows.max(1) {
            continue;
        }
        let usual = median(previous);
        let p = usual.max(rc.share_floor);
        let n = n as f64;
        let z = (round as f64 - n * p) / (n * p * (1.0 - p)).sqrt();
        let share = round as f64 / n;
        if rc.enabled && n >= rc.min_trades as f64 && z >= rc.z && share - usual >= rc.min_excess {
            keys.push((AlertKind::RoundSizes, symbol, event, ids));
        }
    }
    keys.sort();
    keys
}
