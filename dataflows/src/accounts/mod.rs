//! Account-based market-abuse rules: wash trades, velocity bursts and wash-trade rings.
//!
//! ```text
//!              ┌──▶ wash_trade      (Pipeline: buyer == seller, stateless)
//!   trades ────┼──▶ velocity_burst  (Exchange by account: per (account, symbol) counts,
//!              │                     against per-symbol counts broadcast to every worker)
//!              └──▶ wash_ring       (differential: edges seller→buyer in a sliding window,
//!                                    joined on (symbol, qty, account) into 2- and 3-cycles)
//! ```
//!
//! Only trades that carry both a buyer and a seller account take part (the others are dropped
//! before the rules, where they arrive); public feeds carry none, so there these rules see
//! nothing and cost almost nothing.
//!
//! Determinism: every rule processes a timely time only once the frontier has passed it
//! (or, for wash trades, is a pure function of one trade), takes the trades of a time in
//! `(time_ms, id)` order, and emits each alert at the timely time it was decided under a
//! capability held for it. State reaches back a bounded stretch of event time, declared by
//! [`horizon`]: replaying the input from `frontier − history_ms` re-creates exactly the
//! alerts at times `≥ frontier`.
//!
//! Config: durations are integer milliseconds in keys ending in `_ms`.

mod json;
mod ring;
mod velocity;
mod wash_trade;

use serde::Deserialize;
use tickflow_operators::model::{Alert, Trade};
use tickflow_operators::source::Horizon;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::Concatenate;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

pub use ring::wash_rings;
pub use velocity::{share_tail, velocity_bursts};
pub use wash_trade::wash_trades;

/// Settings of the account rules: the `[accounts]` table of `tickflow.toml`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountConfig {
    /// `[accounts.wash_trade]`.
    pub wash_trade: WashTradeConfig,
    /// `[accounts.velocity_burst]`.
    pub velocity_burst: VelocityConfig,
    /// `[accounts.wash_ring]`.
    pub wash_ring: WashRingConfig,
}

impl AccountConfig {
    /// Whether any rule runs: with none, [`account_alerts`] need not be built at all.
    pub fn any_enabled(&self) -> bool {
        let AccountConfig {
            wash_trade,
            velocity_burst,
            wash_ring,
        } = self;
        wash_trade.enabled || velocity_burst.enabled || wash_ring.enabled
    }
}

/// A trade whose buyer and seller are the same account. No threshold: the fact is the
/// evidence.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WashTradeConfig {
    /// Default `true`.
    pub enabled: bool,
}

impl Default for WashTradeConfig {
    fn default() -> Self {
        WashTradeConfig { enabled: true }
    }
}

/// One account in a far larger share of one symbol's trades within `window_ms` than its
/// own recent share of that symbol explains.
///
/// For each trade of an account (as buyer or seller) at `t`: `trades` = the account's
/// trades of that symbol in the trailing window `(t − window_ms, t]`, `symbol_trades` =
/// all trades of the symbol (with both accounts) in the same window. The baseline is the
/// `baseline_ms` of whole seconds before the second holding the window's start:
/// `baseline_trades` of the account among `baseline_symbol_trades` of the symbol. The
/// account's share is judged, not its rate: under the null hypothesis the account is in each
/// trade of the window with its baseline share, a Beta(baseline_trades + 1,
/// baseline_symbol_trades − baseline_trades + 1) posterior (uniform prior), so `trades` is
/// beta-binomial over `symbol_trades`; `p_value` = its tail `P(K ≥ trades)` ([`share_tail`]).
/// The trade is *above* when `trades ≥ min_trades` and `p_value ≤ max_p_value`. An episode
/// starts at an above trade with no above trade of the same key in the window before it;
/// each episode gives one alert, at its first above trade, with the account's trades of its
/// window.
///
/// Why a share and not a rate: market-wide surges (volume bursts, pump-and-dump, busier
/// regimes) raise every account's count at once, and a Poisson test against each account's
/// own rate then fires on dozens of accounts in the same second (561 alerts for 19 injected
/// bursts at 800 trades/s). A surge leaves every account's share as it was; one account
/// trading on its own raises its share. With the generator's account weights the heaviest
/// account is in ~19 % of all trades, so a burst of 15–30 trades moves only light and
/// mid-weight accounts' shares measurably; the uniform prior keeps a thin or young baseline
/// (the start of the input) from looking certain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VelocityConfig {
    /// Default `true`.
    pub enabled: bool,
    /// The burst window D, ms. Default 1000.
    pub window_ms: u64,
    /// The baseline before the window, ms, a multiple of 1000. Default 60000.
    pub baseline_ms: u64,
    /// Fewest trades of the account in the window that can alert. Default 12.
    pub min_trades: u32,
    /// Largest tail probability that alerts. Default 1e-8.
    pub max_p_value: f64,
}

impl Default for VelocityConfig {
    fn default() -> Self {
        VelocityConfig {
            enabled: true,
            window_ms: 1_000,
            baseline_ms: 60_000,
            min_trades: 12,
            max_p_value: 1e-8,
        }
    }
}

/// Cycles of equal-quantity trades of one symbol between 2 or 3 accounts: A→B→A or
/// A→B→C→A (an edge runs from seller to buyer), in time order, all within `window_ms`, that
/// chance alone would rarely produce.
///
/// Busy accounts trade with each other all the time, and sizes on a lot grid repeat, so
/// equal-quantity cycles between heavy accounts happen by chance many times a second. Each
/// ring is therefore judged on the symbol's trades in the window ending at its last trade
/// (N trades, `n_q` of the ring's quantity, `sells(X)`/`buys(Y)` per account): the number of
/// such rings expected by chance is
/// `expected = Π over the ring's trades X→Y of (sells(X)·buys(Y)/N · n_q/N) · span/window`
/// (span ≥ 1 ms), and the ring alerts when `expected ≤ max_expected`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WashRingConfig {
    /// Default `true`.
    pub enabled: bool,
    /// Longest span from the first to the last trade of a ring, ms. Default 5000 (the
    /// injected rings span 1–5 s; every extra second admits more chance rings).
    pub window_ms: u64,
    /// Also look for 3-cycles. Default `true`.
    pub triangles: bool,
    /// Largest number of chance rings that still alerts. Default 1e-8.
    pub max_expected: f64,
}

impl Default for WashRingConfig {
    fn default() -> Self {
        WashRingConfig {
            enabled: true,
            window_ms: 5_000,
            triangles: true,
            max_expected: 1e-8,
        }
    }
}

/// The event-time history the account rules need re-read after a restart.
///
/// - wash_trade: none.
/// - wash_ring: the ring window (a ring decided at `t` holds trades back to `t − window`).
/// - velocity_burst: a decision at `t` reads the account's and the symbol's counts in the
///   window and the baseline seconds before it (`D + baseline + 1 s` of bucket alignment)
///   and the above-flags of the account's trades in the window before it (another `D`);
///   state that has left all of these is freed, so nothing older survives.
pub fn horizon(config: &AccountConfig) -> Horizon {
    let AccountConfig {
        wash_trade: _,
        velocity_burst,
        wash_ring,
    } = config;
    let mut history_ms = 0;
    if wash_ring.enabled {
        history_ms = history_ms.max(wash_ring.window_ms + 1);
    }
    if velocity_burst.enabled {
        history_ms = history_ms.max(velocity::history_ms(velocity_burst));
    }
    Horizon {
        windows: Vec::new(),
        history_ms,
    }
}

/// Every account-rule alert of `trades`, which must travel at their coarsened event time.
pub fn account_alerts<'scope>(
    trades: Stream<'scope, u64, Vec<Trade>>,
    config: &AccountConfig,
) -> Stream<'scope, u64, Vec<Alert>> {
    let scope = trades.scope();
    // Every rule ignores a trade without both accounts: dropped once here, where it arrives,
    // so a public feed (no accounts at all) is neither copied to each rule nor exchanged.
    let trades = trades.unary::<CapacityContainerBuilder<Vec<Trade>>, _, _, _>(
        Pipeline,
        "WithAccounts",
        |_capability, _info| {
            move |input, output| {
                input.for_each(|capability, batch| {
                    let with_accounts = batch
                        .drain(..)
                        .filter(|trade| trade.buyer.is_some() && trade.seller.is_some());
                    output.session(&capability).give_iterator(with_accounts);
                });
            }
        },
    );
    let mut outputs = Vec::new();
    if config.wash_trade.enabled {
        outputs.push(wash_trades(trades.clone()));
    }
    if config.velocity_burst.enabled {
        outputs.push(velocity_bursts(trades.clone(), &config.velocity_burst));
    }
    if config.wash_ring.enabled {
        outputs.push(wash_rings(trades, &config.wash_ring));
    }
    scope.concatenate(outputs)
}
