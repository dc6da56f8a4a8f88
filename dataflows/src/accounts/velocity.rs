//! Velocity bursts: one account in far more trades of one symbol within a short window than
//! its own recent rate explains.

use std::collections::{BTreeMap, VecDeque};
use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tickflow_operators::model::{Account, Alert, AlertKind, Severity, Symbol, Trade};
use tickflow_operators::source::now_ms;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::json::Details;
use super::VelocityConfig;

/// One side of a trade: the account, and what it traded when.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Touch {
    time_ms: u64,
    id: u64,
    symbol: Symbol,
    account: Account,
}

/// How far back a decision's inputs reach (see [`super::horizon`]).
pub(crate) fn history_ms(config: &VelocityConfig) -> u64 {
    2 * config.baseline_ms + 4 * config.window_ms + 2_000
}

/// Inactivity after which an account's state for a symbol starts afresh (and may be freed).
fn reset_gap_ms(config: &VelocityConfig) -> u64 {
    config.baseline_ms + 2 * config.window_ms + 1_000
}

/// One alert per burst episode of an account in a symbol (see [`VelocityConfig`]).
///
/// Each trade with both accounts becomes one touch per distinct account, exchanged by the
/// account's stable hash; each worker stashes its touches by time and, once the frontier
/// has passed a time, runs them through the per-(account, symbol) state in `(time, id)`
/// order.
pub fn velocity_bursts<'scope>(
    trades: Stream<'scope, u64, Vec<Trade>>,
    config: &VelocityConfig,
) -> Stream<'scope, u64, Vec<Alert>> {
    let config = config.clone();
    let touches = trades.unary::<CapacityContainerBuilder<Vec<Touch>>, _, _, _>(
        Pipeline,
        "VelocityTouches",
        |_capability, _info| {
            move |input, output| {
                input.for_each(|capability, batch| {
                    let mut session = output.session(&capability);
                    for trade in batch.iter() {
                        let (Some(buyer), Some(seller)) = (trade.buyer, trade.seller) else {
                            continue;
                        };
                        let touch = |account| Touch {
                            time_ms: trade.time_ms,
                            id: trade.id,
                            symbol: trade.symbol,
                            account,
                        };
                        session.give(touch(buyer));
                        if seller != buyer {
                            session.give(touch(seller));
                        }
                    }
                });
            }
        },
    );
    let pact = Exchange::new(|touch: &Touch| touch.account.stable_hash());
    touches.unary_frontier::<CapacityContainerBuilder<Vec<Alert>>, _, _, _>(
        pact,
        "VelocityBursts",
        move |_capability, _info| {
            let mut stash: BTreeMap<u64, (Capability<u64>, Vec<Touch>)> = BTreeMap::new();
            let mut state = Bursts::new(config);
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each_stamp(|capability, batches| {
                    let Some(&time) = capability.least() else {
                        return;
                    };
                    // Held until the frontier passes `time`: alerts decided then are emitted
                    // at `time` itself, the time of their last trade.
                    let slot = stash
                        .entry(time)
                        .or_insert_with(|| (capability.delayed(&time, port), Vec::new()));
                    for batch in batches {
                        slot.1.append(batch);
                    }
                });
                while let Some(entry) = stash.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let time = *entry.key();
                    let (capability, mut touches) = entry.remove();
                    // Keys are independent and a key never sees one (time, id) twice, so this
                    // order decides everything (and compares no text).
                    touches.sort_unstable_by_key(|touch| (touch.time_ms, touch.id));
                    let mut session = output.session(&capability);
                    for touch in touches {
                        if let Some(alert) = state.touch(touch) {
                            session.give(alert);
                        }
                    }
                    state.expire(time);
                }
            }
        },
    )
}

/// The state of one account in one symbol, over its current activity run.
#[derive(Debug, Default)]
struct KeyState {
    /// First trade of the run: the baseline covers at most the time since.
    run_start_ms: u64,
    last_ms: u64,
    /// The latest trade that was above threshold.
    last_above_ms: Option<u64>,
    /// `(time, id)` of the trades in the trailing window.
    window: VecDeque<(u64, u64)>,
    /// Trades per second (`(second, count)`), back to the oldest baseline second.
    seconds: VecDeque<(u64, u32)>,
}

/// Per-(account, symbol) states of one worker.
struct Bursts {
    config: VelocityConfig,
    keys: FxHashMap<(Account, Symbol), KeyState>,
}

impl Bursts {
    fn new(config: VelocityConfig) -> Bursts {
        Bursts {
            config,
            keys: FxHashMap::default(),
        }
    }

    /// Frees the state of every key that a later touch would start afresh anyway.
    fn expire(&mut self, time: u64) {
        let gap = reset_gap_ms(&self.config);
        self.keys.retain(|_, key| key.last_ms + gap > time);
    }

    /// Adds one touch, in `(time, id)` order per key; the alert if it starts an episode.
    fn touch(&mut self, touch: Touch) -> Option<Alert> {
        let VelocityConfig {
            enabled: _,
            window_ms,
            baseline_ms,
            min_baseline_ms,
            min_trades,
            max_p_value,
        } = self.config;
        let gap = reset_gap_ms(&self.config);
        let Touch {
            time_ms,
            id,
            symbol,
            account,
        } = touch;
        let key = self.keys.entry((account, symbol)).or_default();
        if key.window.is_empty() && key.seconds.is_empty() || time_ms >= key.last_ms + gap {
            *key = KeyState {
                run_start_ms: time_ms,
                ..KeyState::default()
            };
        }
        key.last_ms = time_ms;
        let window_start = time_ms.saturating_sub(window_ms);
        key.window.push_back((time_ms, id));
        while key
            .window
            .front()
            .is_some_and(|&(t, _)| t + window_ms <= time_ms)
        {
            key.window.pop_front();
        }
        let second = time_ms / 1_000;
        match key.seconds.back_mut() {
            Some((s, count)) if *s == second => *count += 1,
            _ => key.seconds.push_back((second, 1)),
        }
        // Baseline: the whole seconds before the one holding the window's start.
        let baseline_end = window_start / 1_000;
        let baseline_start = baseline_end.saturating_sub(baseline_ms / 1_000);
        while key
            .seconds
            .front()
            .is_some_and(|&(s, _)| s < baseline_start)
        {
            key.seconds.pop_front();
        }
        let count = key.window.len() as u64;
        if count < u64::from(min_trades) {
            return None;
        }
        // The baseline holds only this run's trades: average over the time it covers.
        let covered_ms = (baseline_end * 1_000)
            .saturating_sub(key.run_start_ms)
            .min(baseline_ms);
        if covered_ms < min_baseline_ms.max(1) {
            return None;
        }
        let baseline: u64 = key
            .seconds
            .iter()
            .take_while(|&&(s, _)| s < baseline_end)
            .map(|&(_, c)| u64::from(c))
            .sum();
        let expected = (baseline + 1) as f64 * window_ms as f64 / covered_ms as f64;
        // Below λ + 3√λ the tail is far above any sensible threshold: skip the sum.
        if (count as f64) < expected + 3.0 * expected.sqrt() && max_p_value <= 1e-4 {
            return None;
        }
        let p_value = poisson_tail(count, expected);
        if p_value > max_p_value {
            return None;
        }
        let starts_episode = key
            .last_above_ms
            .is_none_or(|above| above + window_ms <= time_ms);
        key.last_above_ms = Some(time_ms);
        if !starts_episode {
            return None;
        }
        let mut trade_ids: Vec<u64> = key.window.iter().map(|&(_, id)| id).collect();
        trade_ids.sort_unstable();
        let p = p_value.max(f64::MIN_POSITIVE);
        let score = (p.log10() / max_p_value.log10()).max(1.0);
        let details = Details::new()
            .ids("trade_ids", &trade_ids)
            .str("account", account.as_str())
            .raw("window_ms", window_ms)
            .raw("trades", count)
            .raw("min_trades", min_trades)
            .raw("baseline_trades", baseline)
            .raw("baseline_ms", covered_ms)
            .float("expected", expected)
            .float("p_value", p_value)
            .float("max_p_value", max_p_value)
            .finish();
        Some(Alert {
            kind: AlertKind::VelocityBurst,
            symbol,
            account: Some(account),
            event_ms: time_ms,
            detected_ms: now_ms(),
            severity: if p_value <= max_p_value * max_p_value {
                Severity::High
            } else {
                Severity::Medium
            },
            score,
            details,
            trade_ids,
        })
    }
}

/// `ln k!` for small k, exact sums of logs; Stirling's series beyond.
fn ln_factorial(k: u64) -> f64 {
    const TABLE: usize = 1_024;
    static LN_FACT: OnceLock<Vec<f64>> = OnceLock::new();
    let table = LN_FACT.get_or_init(|| {
        let mut table = Vec::with_capacity(TABLE);
        let mut sum = 0.0f64;
        table.push(0.0);
        for i in 1..TABLE {
            sum += (i as f64).ln();
            table.push(sum);
        }
        table
    });
    match table.get(k as usize) {
        Some(&value) => value,
        None => {
            let k = k as f64;
            k * k.ln() - k + 0.5 * (2.0 * std::f64::consts::PI * k).ln() + 1.0 / (12.0 * k)
                - 1.0 / (360.0 * k * k * k)
        }
    }
}

/// `P(N ≥ k)` for `N ~ Poisson(λ)`; 1 when `k ≤ λ` (never significant there).
///
/// ```
/// use tickflow_dataflows::accounts::poisson_tail;
/// // P(N ≥ 1 | λ = 1) = 1 − e^-1
/// assert!((poisson_tail(2, 1.0) - (1.0 - 2.0 * (-1.0f64).exp())).abs() < 1e-12);
/// assert!(poisson_tail(20, 2.0) < 1e-11);
/// ```
pub fn poisson_tail(k: u64, lambda: f64) -> f64 {
    if k == 0 || (k as f64) <= lambda {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    let mut term = (-lambda + k as f64 * lambda.ln() - ln_factorial(k)).exp();
    let mut sum = 0.0;
    let mut j = k;
    // Terms fall at least geometrically once past λ.
    while term > sum * 1e-17 && j < k + 100_000 {
        sum += term;
        j += 1;
        term *= lambda / j as f64;
    }
    sum.min(1.0)
}
