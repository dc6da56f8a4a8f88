//! Velocity bursts: one account in a far larger share of one symbol's trades within a short
//! window than its own recent share of that symbol explains.

use std::collections::{BTreeMap, VecDeque};
use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tickflow_operators::model::{Account, Alert, AlertKind, Severity, Symbol, Trade};
use tickflow_operators::source::now_ms;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Broadcast;
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

/// Trades (with both accounts) of one symbol at one millisecond, as counted by one worker.
type Tally = (Symbol, u64, u64);

/// How far back a decision's inputs reach (see [`super::horizon`]): the window and the whole
/// baseline seconds before it (`D + baseline + 1 s`), and the above-flags of the account's
/// trades in the window before it (another `D`), plus a second of slack.
pub(crate) fn history_ms(config: &VelocityConfig) -> u64 {
    config.baseline_ms + 2 * config.window_ms + 2_000
}

/// One alert per burst episode of an account in a symbol (see [`VelocityConfig`]).
///
/// Each trade with both accounts becomes one touch per distinct account, exchanged by the
/// account's stable hash, and one count of its symbol and millisecond, which every worker
/// receives (tallied per batch first, so the broadcast is far smaller than the trades). Each
/// worker stashes both by time and, once the frontiers have passed a time, runs the touches
/// through the per-(account, symbol) state in `(time, id)` order, with each symbol's counts
/// brought up to the touch's millisecond first.
pub fn velocity_bursts<'scope>(
    trades: Stream<'scope, u64, Vec<Trade>>,
    config: &VelocityConfig,
) -> Stream<'scope, u64, Vec<Alert>> {
    let config = config.clone();
    let touches = trades
        .clone()
        .unary::<CapacityContainerBuilder<Vec<Touch>>, _, _, _>(
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
    let tallies = trades
        .unary::<CapacityContainerBuilder<Vec<Tally>>, _, _, _>(
            Pipeline,
            "VelocityTallies",
            |_capability, _info| {
                let mut counts: FxHashMap<(Symbol, u64), u64> = FxHashMap::default();
                move |input, output| {
                    input.for_each(|capability, batch| {
                        for trade in batch.iter() {
                            if trade.buyer.is_some() && trade.seller.is_some() {
                                *counts.entry((trade.symbol, trade.time_ms)).or_default() += 1;
                            }
                        }
                        let mut session = output.session(&capability);
                        for ((symbol, time_ms), count) in counts.drain() {
                            session.give((symbol, time_ms, count));
                        }
                    });
                }
            },
        )
        .broadcast();
    let pact = Exchange::new(|touch: &Touch| touch.account.stable_hash());
    touches.binary_frontier::<_, CapacityContainerBuilder<Vec<Alert>>, _, _, _, _>(
        tallies,
        pact,
        Pipeline,
        "VelocityBursts",
        move |_capability, _info| {
            let mut stash: BTreeMap<u64, Batch> = BTreeMap::new();
            let mut state = Bursts::new(config);
            move |(touch_input, touch_frontier), (tally_input, tally_frontier), output| {
                let port = output.output_index();
                touch_input.for_each_stamp(|capability, batches| {
                    let Some(&time) = capability.least() else {
                        return;
                    };
                    let slot = stash.entry(time).or_default();
                    // Held until the frontiers pass `time`: alerts decided then are emitted
                    // at `time` itself, the time of their last trade.
                    if slot.capability.is_none() {
                        slot.capability = Some(capability.delayed(&time, port));
                    }
                    for batch in batches {
                        slot.touches.append(batch);
                    }
                });
                tally_input.for_each_stamp(|capability, batches| {
                    let Some(&time) = capability.least() else {
                        return;
                    };
                    let slot = stash.entry(time).or_default();
                    for batch in batches {
                        slot.tallies.append(batch);
                    }
                });
                while let Some(entry) = stash.first_entry() {
                    let time = *entry.key();
                    if touch_frontier.less_equal(&time) || tally_frontier.less_equal(&time) {
                        break;
                    }
                    let batch = entry.remove();
                    let alerts = state.run(time, batch.touches, batch.tallies);
                    if let Some(capability) = batch.capability {
                        output
                            .session(&capability)
                            .give_iterator(alerts.into_iter());
                    }
                }
            }
        },
    )
}

/// What one timely time brought: the touches of this worker's accounts, every worker's
/// symbol counts, and the capability to emit alerts at that time (if any touch came).
#[derive(Default)]
struct Batch {
    capability: Option<Capability<u64>>,
    touches: Vec<Touch>,
    tallies: Vec<Tally>,
}

/// Counts of trades in the trailing window `(t − D, t]` and in the baseline's whole seconds
/// `[b − baseline, b)`, `b = ⌊(t − D) / 1 s⌋`, for a clock `t` that only moves forward.
#[derive(Debug, Default)]
struct Rolling {
    /// `(ms, count)` in the window, oldest first.
    window: VecDeque<(u64, u64)>,
    in_window: u64,
    /// `(second, count)` from the baseline's first second on, oldest first.
    seconds: VecDeque<(u64, u64)>,
    /// How many leading `seconds` lie before the baseline's end (their sum: `in_baseline`).
    before_end: usize,
    in_baseline: u64,
}

impl Rolling {
    /// Adds `count` trades at `time_ms` (not before any earlier call's).
    fn add(&mut self, time_ms: u64, count: u64) {
        match self.window.back_mut() {
            Some((ms, c)) if *ms == time_ms => *c += count,
            _ => self.window.push_back((time_ms, count)),
        }
        self.in_window += count;
        let second = time_ms / 1_000;
        match self.seconds.back_mut() {
            Some((s, c)) if *s == second => *c += count,
            _ => self.seconds.push_back((second, count)),
        }
    }

    /// Moves the clock to `time_ms` (never back): drops what left the window and baseline.
    fn advance(&mut self, time_ms: u64, window_ms: u64, baseline_ms: u64) {
        while let Some(&(ms, count)) = self.window.front() {
            if ms + window_ms > time_ms {
                break;
            }
            self.window.pop_front();
            self.in_window -= count;
        }
        let end = time_ms.saturating_sub(window_ms) / 1_000;
        let start = end.saturating_sub(baseline_ms / 1_000);
        while let Some(&(second, count)) = self.seconds.front() {
            if second >= start {
                break;
            }
            self.seconds.pop_front();
            if self.before_end > 0 {
                self.before_end -= 1;
                self.in_baseline -= count;
            }
        }
        while let Some(&(second, count)) = self.seconds.get(self.before_end) {
            if second >= end {
                break;
            }
            self.before_end += 1;
            self.in_baseline += count;
        }
    }

    fn is_empty(&self) -> bool {
        self.window.is_empty() && self.seconds.is_empty()
    }
}

/// The state of one account in one symbol.
#[derive(Debug, Default)]
struct KeyState {
    counts: Rolling,
    /// `(time, id)` of the account's trades in the window.
    window: VecDeque<(u64, u64)>,
    /// The latest trade that was above threshold.
    last_above_ms: Option<u64>,
}

/// One symbol's counts, and those of its current batch not yet taken in.
#[derive(Debug, Default)]
struct SymbolState {
    counts: Rolling,
    /// `(ms, count)` of the current batch, in order, from `next` on not yet in `counts`.
    pending: Vec<(u64, u64)>,
    next: usize,
}

impl SymbolState {
    /// Takes in the pending counts up to `time_ms` and moves the clock there.
    fn catch_up(&mut self, time_ms: u64, config: &VelocityConfig) {
        while let Some(&(ms, count)) = self.pending.get(self.next) {
            if ms > time_ms {
                break;
            }
            self.counts.add(ms, count);
            self.next += 1;
        }
        self.counts
            .advance(time_ms, config.window_ms, config.baseline_ms);
    }
}

/// Per-(account, symbol) states of one worker's accounts, and every symbol's counts.
struct Bursts {
    config: VelocityConfig,
    keys: FxHashMap<(Account, Symbol), KeyState>,
    symbols: FxHashMap<Symbol, SymbolState>,
}

impl Bursts {
    fn new(config: VelocityConfig) -> Bursts {
        Bursts {
            config,
            keys: FxHashMap::default(),
            symbols: FxHashMap::default(),
        }
    }

    /// Runs one timely time (times in increasing order): the touches in `(time, id)` order,
    /// then the rest of the symbol counts; frees what has fully expired.
    fn run(&mut self, time: u64, mut touches: Vec<Touch>, mut tallies: Vec<Tally>) -> Vec<Alert> {
        tallies.sort_unstable();
        for (symbol, time_ms, count) in tallies {
            let state = self.symbols.entry(symbol).or_default();
            match state.pending.last_mut() {
                Some((ms, c)) if *ms == time_ms => *c += count,
                _ => state.pending.push((time_ms, count)),
            }
        }
        // Keys are independent and a key never sees one (time, id) twice, so this order
        // decides everything (and compares no text).
        touches.sort_unstable_by_key(|touch| (touch.time_ms, touch.id));
        let alerts = touches
            .into_iter()
            .filter_map(|touch| self.touch(touch))
            .collect();
        let config = &self.config;
        for state in self.symbols.values_mut() {
            if let Some(&(last, _)) = state.pending.last() {
                state.catch_up(last.max(time), config);
            } else {
                state.catch_up(time, config);
            }
            state.pending.clear();
            state.next = 0;
        }
        self.symbols.retain(|_, state| !state.counts.is_empty());
        let (window_ms, baseline_ms) = (config.window_ms, config.baseline_ms);
        self.keys.retain(|_, key| {
            key.counts.advance(time, window_ms, baseline_ms);
            !key.counts.is_empty()
        });
        alerts
    }

    /// Adds one touch, in `(time, id)` order; the alert if it starts an episode.
    fn touch(&mut self, touch: Touch) -> Option<Alert> {
        let VelocityConfig {
            enabled: _,
            window_ms,
            baseline_ms,
            min_trades,
            max_p_value,
        } = self.config;
        let Touch {
            time_ms,
            id,
            symbol,
            account,
        } = touch;
        let market = self.symbols.entry(symbol).or_default();
        market.catch_up(time_ms, &self.config);
        let key = self.keys.entry((account, symbol)).or_default();
        key.counts.add(time_ms, 1);
        key.counts.advance(time_ms, window_ms, baseline_ms);
        key.window.push_back((time_ms, id));
        while key
            .window
            .front()
            .is_some_and(|&(t, _)| t + window_ms <= time_ms)
        {
            key.window.pop_front();
        }
        let count = key.counts.in_window;
        if count < u64::from(min_trades) {
            return None;
        }
        let trades = market.counts.in_window;
        let baseline = key.counts.in_baseline;
        let baseline_symbol = market.counts.in_baseline;
        let (alpha, m, n) = (
            (baseline + 1) as f64,
            (baseline_symbol + 2) as f64,
            trades as f64,
        );
        let expected = n * alpha / m;
        let variance = n * alpha * (m - alpha) * (m + n) / (m * m * (m + 1.0));
        // Below mean + 3 sd the tail is far above any sensible threshold: skip the sum.
        if (count as f64) < expected + 3.0 * variance.sqrt() && max_p_value <= 1e-4 {
            return None;
        }
        let p_value = share_tail(count, trades, baseline, baseline_symbol);
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
            .raw("symbol_trades", trades)
            .raw("baseline_ms", baseline_ms)
            .raw("baseline_trades", baseline)
            .raw("baseline_symbol_trades", baseline_symbol)
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

/// `ln B(a, b)` for positive integers.
fn ln_beta(a: u64, b: u64) -> f64 {
    ln_factorial(a - 1) + ln_factorial(b - 1) - ln_factorial(a + b - 1)
}

/// `P(K ≥ k)` for an account in `k` of `n` trades when its baseline had `a` of `s`: `K`
/// beta-binomial, `K ~ Binomial(n, p)` with `p ~ Beta(a + 1, s − a + 1)` (the share's
/// posterior from a uniform prior, so a short or thin baseline is judged leniently).
///
/// 1 when `k` is at most the mean (never significant there).
///
/// ```
/// use tickflow_dataflows::accounts::share_tail;
/// // No baseline: the share is uniform, every k of n equally likely: P(K ≥ 7 of 9) = 3/10.
/// assert!((share_tail(7, 9, 0, 0) - 0.3).abs() < 1e-12);
/// // 30 of 1000 in the window for an account with 10 of 60000 before.
/// assert!(share_tail(30, 1_000, 10, 60_000) < 1e-20);
/// // A market-wide surge keeps the heavy account's share: nothing stands out.
/// assert!(share_tail(400, 2_000, 11_400, 60_000) > 0.01);
/// ```
pub fn share_tail(k: u64, n: u64, a: u64, s: u64) -> f64 {
    let a = a.min(s);
    let (alpha, beta) = (a + 1, s - a + 1);
    if k == 0 || (k as f64) <= n as f64 * alpha as f64 / (alpha + beta) as f64 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    let ln_term = ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
        + ln_beta(k + alpha, n - k + beta)
        - ln_beta(alpha, beta);
    let mut term = ln_term.exp();
    let mut sum = 0.0;
    let mut j = k;
    // Past the mean the terms fall, eventually at least geometrically.
    loop {
        sum += term;
        if j == n || term <= sum * 1e-17 {
            break;
        }
        term *= (n - j) as f64 / (j + 1) as f64 * (j + alpha) as f64 / (n - j - 1 + beta) as f64;
        j += 1;
    }
    sum.min(1.0)
}
