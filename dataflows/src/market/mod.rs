//! Symbol-level market-abuse rules: bad ticks, volume bursts, pump-and-dump, and the
//! account-free wash-trading indicators (Benford's law, round sizes).
//!
//! ```text
//! trades ──Exchange(symbol)──▶ MarketRules ─┬─▶ alerts
//!                                           └─▶ wash_stats
//! ```
//!
//! Every rule keeps per-symbol state, so trades are exchanged once by
//! `symbol.stable_hash()` (the key candles use) and all rules run in one operator. Trades
//! are stashed by timely time; a time is processed only once the input frontier has passed
//! it, its trades sorted by `(symbol, time_ms, id)`, so the result does not depend on the
//! number of workers or the arrival order. Statistics that are costly (medians, MADs) are
//! taken once per symbol per time, per second or per window, never per trade.
//!
//! Some decisions need time to pass without any trade of the symbol (the end of a second,
//! of a window). The operator keeps a capability for each such *wake-up* time, so an alert
//! is emitted at the timely time it is decided, and only then.
//!
//! Every rule's state is a function of a bounded event-time history before the current
//! time ([`horizon`]): a run resumed from `frontier − history_ms` re-creates exactly the
//! alerts it emits at times ≥ the frontier.
//!
//! Settings: [`MarketConfig`], `[market.*]` in the config file. Durations are integer
//! milliseconds in keys ending in `_ms`; lengths counted in one-second buckets end in
//! `_seconds`.

mod bad_tick;
mod burst;
mod pump;
mod seconds;
mod stats;
mod wash;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tickflow_operators::model::{Alert, Fixed, Symbol, Trade};
use tickflow_operators::source::{now_ms, Horizon};
use tickflow_operators::window::Windows;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::core::Map;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

pub use bad_tick::BadTickConfig;
pub use burst::VolumeBurstConfig;
pub use pump::PumpAndDumpConfig;
pub use wash::{BenfordConfig, RoundSizesConfig, WashStats};

use bad_tick::BadTick;
use burst::Burst;
use pump::Pump;
use seconds::Seconds;
use wash::{Wash, WashSettings};

/// Settings of the symbol-level rules: `[market.bad_tick]`, `[market.volume_burst]`,
/// `[market.pump_and_dump]`, `[market.benford]`, `[market.round_sizes]`. Every field has a
/// default; unknown keys are an error.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketConfig {
    /// One trade far from the rolling median price.
    pub bad_tick: BadTickConfig,
    /// A second with far more trades than the recent seconds.
    pub volume_burst: VolumeBurstConfig,
    /// A rise on a volume surge, then a reversal.
    pub pump_and_dump: PumpAndDumpConfig,
    /// First digits of a window's trade sizes against Benford's law.
    pub benford: BenfordConfig,
    /// Share of round trade sizes in a window against the symbol's usual share.
    pub round_sizes: RoundSizesConfig,
}

impl MarketConfig {
    /// Whether any rule runs: with none, [`market_alerts`] need not be built at all.
    pub fn any_enabled(&self) -> bool {
        let MarketConfig {
            bad_tick,
            volume_burst,
            pump_and_dump,
            benford,
            round_sizes,
        } = self;
        bad_tick.enabled
            || volume_burst.enabled
            || pump_and_dump.enabled
            || benford.enabled
            || round_sizes.enabled
    }

    fn wash_enabled(&self) -> bool {
        self.benford.enabled || self.round_sizes.enabled
    }

    fn seconds_capacity(&self) -> usize {
        let burst = if self.volume_burst.enabled {
            self.volume_burst.ring_seconds()
        } else {
            0
        };
        let pump = if self.pump_and_dump.enabled {
            self.pump_and_dump.ring_seconds()
        } else {
            0
        };
        burst.max(pump).max(1)
    }
}

/// The window size of the wash indicators: the largest configured.
fn wash_window_ms(windows: &Windows) -> u64 {
    windows.sizes().last().copied().unwrap_or(60_000)
}

/// The event-time history [`market_alerts`] needs re-read to rebuild its state after a
/// restart: the longest of the enabled rules' (bad ticks: twice the window age; bursts: the
/// baseline and the longest run; pump-and-dump: baseline, rise and fall, twice over for the
/// episode that may suppress the next; wash indicators: the open window and the previous
/// windows of the usual round share).
pub fn horizon(config: &MarketConfig, windows: &Windows) -> Horizon {
    let window_ms = wash_window_ms(windows);
    let mut history_ms = 0;
    if config.bad_tick.enabled {
        history_ms = history_ms.max(config.bad_tick.history_ms());
    }
    if config.volume_burst.enabled {
        history_ms = history_ms.max(config.volume_burst.history_ms());
    }
    if config.pump_and_dump.enabled {
        history_ms = history_ms.max(config.pump_and_dump.history_ms());
    }
    let mut sizes = Vec::new();
    if config.wash_enabled() {
        let settings = WashSettings {
            window_ms,
            benford: &config.benford,
            round: &config.round_sizes,
        };
        history_ms = history_ms.max(settings.history_ms());
        sizes.push(window_ms);
    }
    // Trades of a timely time are all read or none: the history must begin on a time.
    let granule = windows.granule();
    history_ms = history_ms.div_ceil(granule) * granule;
    Horizon {
        windows: sizes,
        history_ms,
    }
}

/// The outputs of [`market_alerts`].
#[derive(Debug)]
pub struct MarketStreams<'scope> {
    /// Every alert, at the timely time it was decided.
    pub alerts: Stream<'scope, u64, Vec<Alert>>,
    /// One row per symbol and window of the largest size with a trade, at the window's last
    /// time.
    pub wash_stats: Stream<'scope, u64, Vec<WashStats>>,
}

/// The trades of one timely time, by symbol.
type BySymbol = FxHashMap<Symbol, Vec<Tick>>;

/// What the rules read of a trade: half the bytes of a [`Trade`] to exchange (no accounts).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Tick {
    pub time_ms: u64,
    pub id: u64,
    pub price: Fixed,
    pub qty: Fixed,
    pub symbol: Symbol,
}

impl From<&Trade> for Tick {
    fn from(trade: &Trade) -> Tick {
        Tick {
            time_ms: trade.time_ms,
            id: trade.id,
            price: trade.price,
            qty: trade.qty,
            symbol: trade.symbol,
        }
    }
}

/// What the rules operator emits.
#[derive(Clone, Debug)]
enum Finding {
    Alert(Alert),
    Stats(WashStats),
}

/// The symbol-level market-abuse rules over `trades`, which must travel at their event time
/// coarsened by [`Windows::coarsen`], each trade once (deduplicated upstream).
///
/// ```
/// use tickflow_dataflows::market::{market_alerts, MarketConfig};
/// use tickflow_operators::model::{Fixed, Symbol, Trade};
/// use tickflow_operators::window::Windows;
/// use timely::dataflow::operators::capture::Event;
/// use timely::dataflow::operators::{Capture, ToStream};
///
/// let windows = Windows::parse("1s,1m").unwrap();
/// let config = MarketConfig::default();
/// let symbol = Symbol::new("BTCUSDT").unwrap();
/// // 30 trades at 100.00 and one at 107.00, all in one timely time: the statistics of a time
/// // come from earlier times only, so nothing is decided yet; the minute closes at the end.
/// let trades: Vec<Trade> = (0..31u64)
///     .map(|id| Trade {
///         symbol,
///         id,
///         price: Fixed(if id == 30 { 10_700_000_000 } else { 10_000_000_000 }),
///         qty: Fixed(12_345_678),
///         time_ms: 0,
///         buyer_maker: false,
///         buyer: None,
///         seller: None,
///     })
///     .collect();
/// let (alerts, rows) = timely::example(move |scope| {
///     let trades = trades.to_stream(scope).container::<Vec<_>>();
///     let streams = market_alerts(trades, &config, &windows);
///     (streams.alerts.capture(), streams.wash_stats.capture())
/// });
/// fn messages<D>(events: impl Iterator<Item = Event<u64, Vec<D>>>) -> Vec<D> {
///     events
///         .flat_map(|event| match event {
///             Event::Messages(_, data) => data,
///             Event::Progress(_) => Vec::new(),
///         })
///         .collect()
/// }
/// assert!(messages(alerts.try_iter()).is_empty());
/// let rows = messages(rows.try_iter());
/// assert_eq!((rows.len(), rows[0].trades, rows[0].first_digits[0]), (1, 31, 31));
/// ```
pub fn market_alerts<'scope>(
    trades: Stream<'scope, u64, Vec<Trade>>,
    config: &MarketConfig,
    windows: &Windows,
) -> MarketStreams<'scope> {
    let pact = Exchange::new(|tick: &Tick| tick.symbol.stable_hash());
    market_rules(trades, config, windows, pact)
}

/// [`market_alerts`] for trades that are already on the worker that
/// `Exchange::new(|t| t.symbol.stable_hash())` sends them to, as the trades out of
/// [`crate::quality::quality`] are when it is enabled: the same results without a second
/// exchange. Fed any other way, a symbol's trades would be judged apart on several workers.
pub fn market_alerts_by_symbol<'scope>(
    trades: Stream<'scope, u64, Vec<Trade>>,
    config: &MarketConfig,
    windows: &Windows,
) -> MarketStreams<'scope> {
    market_rules(trades, config, windows, Pipeline)
}

fn market_rules<'scope, P>(
    trades: Stream<'scope, u64, Vec<Trade>>,
    config: &MarketConfig,
    windows: &Windows,
    pact: P,
) -> MarketStreams<'scope>
where
    P: ParallelizationContract<u64, Vec<Tick>>,
{
    let mut rules = Rules {
        config: config.clone(),
        window_ms: wash_window_ms(windows),
        granule: windows.granule(),
        flags: Vec::new(),
    };
    let ticks: Stream<'scope, u64, Vec<Tick>> = trades.map(|trade| Tick::from(&trade));
    let findings: Stream<'scope, u64, Vec<Finding>> =
        ticks.unary_frontier(pact, "MarketRules", move |_capability, _info| {
            // Trades by timely time and symbol, with the capability to emit what they decide.
            let mut stash: BTreeMap<u64, (Capability<u64>, BySymbol)> = BTreeMap::new();
            // Symbols that must be told that time has passed, by the time they wait for.
            let mut wakes: BTreeMap<u64, (Capability<u64>, Vec<Symbol>)> = BTreeMap::new();
            let mut states: FxHashMap<Symbol, SymbolState> = FxHashMap::default();
            let mut alerts = Vec::new();
            let mut stats = Vec::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each_stamp(|capability, batches| {
                    let Some(&time) = capability.least() else {
                        return;
                    };
                    let (_, stashed) = stash
                        .entry(time)
                        .or_insert_with(|| (capability.delayed(&time, port), BySymbol::default()));
                    for trade in batches.flat_map(|batch| batch.drain(..)) {
                        stashed.entry(trade.symbol).or_default().push(trade);
                    }
                });
                loop {
                    let next = match (stash.keys().next(), wakes.keys().next()) {
                        (Some(&a), Some(&b)) => a.min(b),
                        (Some(&a), None) | (None, Some(&a)) => a,
                        (None, None) => break,
                    };
                    if frontier.frontier().less_equal(&next) {
                        break;
                    }
                    let stashed = stash.remove(&next);
                    let woken = wakes.remove(&next);
                    // `next` is a key of one of the two maps, so one of them has its capability.
                    let Some(capability) = stashed
                        .as_ref()
                        .map(|(capability, _)| capability)
                        .or(woken.as_ref().map(|(capability, _)| capability))
                        .cloned()
                    else {
                        break;
                    };
                    let mut groups: Vec<(Symbol, Vec<Tick>)> = stashed
                        .map(|(_, by_symbol)| by_symbol.into_iter().collect())
                        .unwrap_or_default();
                    // Symbols woken without trades of their own at this time.
                    for symbol in woken.map(|(_, symbols)| symbols).unwrap_or_default() {
                        groups.push((symbol, Vec::new()));
                    }
                    groups.sort_unstable_by_key(|(symbol, _)| *symbol);
                    groups.dedup_by(|later, first| {
                        // A symbol both woken and with trades is there twice, once without
                        // trades: one entry with all of them.
                        if later.0 == first.0 {
                            first.1.append(&mut later.1);
                            true
                        } else {
                            false
                        }
                    });
                    for (symbol, mut own) in groups {
                        // By `(time_ms, id)`, then the rest: a total order.
                        own.sort_unstable();
                        let own = &own[..];
                        let state = states
                            .entry(symbol)
                            .or_insert_with(|| SymbolState::new(&rules.config));
                        if let Some(wake) =
                            rules.step(state, symbol, next, own, &mut alerts, &mut stats)
                        {
                            // The wake-up time is after `next` (see `Rules::step`), so the
                            // capability may be delayed to it; it is dropped when it fires.
                            wakes
                                .entry(wake)
                                .or_insert_with(|| (capability.delayed(&wake), Vec::new()))
                                .1
                                .push(symbol);
                        }
                    }
                    if !alerts.is_empty() || !stats.is_empty() {
                        let detected_ms = now_ms();
                        let mut session = output.session(&capability);
                        session.give_iterator(alerts.drain(..).map(|mut alert| {
                            alert.detected_ms = detected_ms;
                            Finding::Alert(alert)
                        }));
                        session.give_iterator(stats.drain(..).map(Finding::Stats));
                    }
                }
            }
        });
    let alerts: Stream<'scope, u64, Vec<Alert>> =
        findings.clone().flat_map(|finding| match finding {
            Finding::Alert(alert) => Some(alert),
            Finding::Stats(_) => None,
        });
    let wash_stats: Stream<'scope, u64, Vec<WashStats>> =
        findings.flat_map(|finding| match finding {
            Finding::Alert(_) => None,
            Finding::Stats(stats) => Some(stats),
        });
    MarketStreams { alerts, wash_stats }
}

/// Everything the rules keep about one symbol.
#[derive(Debug)]
struct SymbolState {
    bad_tick: BadTick,
    seconds: Seconds,
    burst: Burst,
    pump: Pump,
    wash: Wash,
    /// The wake-up time registered for this symbol, if any.
    wake: Option<u64>,
}

impl SymbolState {
    fn new(config: &MarketConfig) -> SymbolState {
        SymbolState {
            bad_tick: BadTick::default(),
            seconds: Seconds::new(config.seconds_capacity()),
            burst: Burst::default(),
            pump: Pump::default(),
            wash: Wash::default(),
            wake: None,
        }
    }
}

/// Passes a second just closed to the rules that read seconds.
fn on_close(
    config: &MarketConfig,
    burst: &mut Burst,
    pump: &mut Pump,
    symbol: Symbol,
    closed: &Seconds,
    alerts: &mut Vec<Alert>,
) {
    if config.volume_burst.enabled {
        burst.on_close(
            &config.volume_burst,
            symbol,
            &closed.ring,
            &closed.open_ids,
            alerts,
        );
    }
    if config.pump_and_dump.enabled {
        pump.on_close(&config.pump_and_dump, symbol, &closed.ring, alerts);
    }
}

/// The rules' settings and scratch space.
#[derive(Debug)]
struct Rules {
    config: MarketConfig,
    window_ms: u64,
    granule: u64,
    flags: Vec<bool>,
}

impl Rules {
    /// Processes the trades of one symbol at timely time `time` (in `(time_ms, id)` order,
    /// possibly none), then everything that the input having passed `time` decides. Returns
    /// a new wake-up time to register, always later than `time`.
    fn step(
        &mut self,
        state: &mut SymbolState,
        symbol: Symbol,
        time: u64,
        trades: &[Tick],
        alerts: &mut Vec<Alert>,
        stats: &mut Vec<WashStats>,
    ) -> Option<u64> {
        let Rules {
            config,
            window_ms,
            granule,
            flags,
        } = self;
        if state.wake == Some(time) {
            state.wake = None;
        }
        let settings = WashSettings {
            window_ms: *window_ms,
            benford: &config.benford,
            round: &config.round_sizes,
        };
        let seconds_enabled = config.volume_burst.enabled || config.pump_and_dump.enabled;
        let SymbolState {
            bad_tick,
            seconds,
            burst,
            pump,
            wash,
            wake,
        } = state;
        if !trades.is_empty() {
            if config.bad_tick.enabled {
                bad_tick.batch(&config.bad_tick, time, trades, flags, alerts);
            } else {
                flags.clear();
                flags.resize(trades.len(), false);
            }
            for (trade, &flagged) in trades.iter().zip(flags.iter()) {
                if seconds_enabled {
                    seconds.add(trade, flagged, &mut |closed| {
                        on_close(config, burst, pump, symbol, closed, alerts)
                    });
                }
                if config.wash_enabled() {
                    wash.add(&settings, trade, stats, alerts);
                }
            }
        }
        // Every trade before `known` has been seen.
        let known = time + *granule;
        if seconds_enabled {
            seconds.close_until(known, &mut |closed| {
                on_close(config, burst, pump, symbol, closed, alerts)
            });
        }
        if config.wash_enabled() {
            wash.close_until(&settings, symbol, known, stats, alerts);
        }
        // The earliest end of something still open; it is after `known`, since everything
        // ending by then was just closed.
        let pending = [
            seconds_enabled.then(|| seconds.pending_end_ms()).flatten(),
            burst.pending().then(|| seconds.next_end_ms()).flatten(),
            wash.pending_end_ms(*window_ms),
        ]
        .into_iter()
        .flatten()
        .min()?;
        // The time whose processing makes `pending` known: the first with time + granule ≥
        // pending. It is > `time` because pending > known = time + granule.
        let wake_time = pending.saturating_sub(*granule).div_ceil(*granule) * *granule;
        if *wake == Some(wake_time) {
            return None;
        }
        *wake = Some(wake_time);
        Some(wake_time)
    }
}
