//! Wash-trade rings: 2- and 3-cycles of equal-quantity trades between accounts, found with
//! differential dataflow joins over a sliding window of edges.
//!
//! ```text
//!  trades ─▶ edges seller→buyer: +1 at the trade's time, −1 at its event time + window + 1
//!            (the −1 sent once the frontier reaches that time)
//!             │
//!             └─ by (symbol, qty, buyer) ⋈ by (symbol, qty, seller)  ─▶ A→B→A, or a path A→B→C
//!                   paths by (symbol, qty, C, A) ⋈ by (symbol, qty, seller, buyer)   ─▶ A→B→C→A
//!  rings (+1 when the last trade enters; retractions dropped) ─▶ stash by time
//!        ─▶ one alert each, once final
//! ```
//!
//! Accounts are keyed by their pinned hash and compared as text inside the joins, so a hash
//! collision costs a wasted candidate, never a wrong or missed ring.
//!
//! ```text
//! ```
//!
//! A ring's trades must follow the cycle in `(time, id)` order: the seller of each trade is
//! the buyer of the one before, the buyer of the last is the seller of the first. Starting
//! every cycle at its earliest trade makes each ring appear exactly once (no rotations), and
//! a 3-cycle's three accounts are distinct, so it never contains a 2-cycle.

use std::collections::{BTreeMap, VecDeque};

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tickflow_operators::model::{Account, Alert, AlertKind, Fixed, InlineStr, Severity, Trade};
use tickflow_operators::source::now_ms;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::json::Details;
use super::WashRingConfig;

/// A symbol or account as the joins key it: the pinned hash first, so that ordering two
/// (which arrangements do all the time) compares integers, not text, nearly always.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Name {
    hash: u64,
    text: InlineStr,
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Equal hashes are nearly always equal names: check that byte-wise before the text
        // comparison (which validates UTF-8 on every call).
        self.hash.cmp(&other.hash).then_with(|| {
            if self.text == other.text {
                std::cmp::Ordering::Equal
            } else {
                self.text.cmp(&other.text)
            }
        })
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Name {
    fn new(text: InlineStr) -> Name {
        Name {
            hash: text.stable_hash(),
            text,
        }
    }
}

/// One trade as an edge of the account graph, from seller to buyer. The accounts' hashes
/// key the joins; their texts make every match exact (equal hashes are checked byte-wise).
/// Field order puts the nearly unique `(time_ms, id)` first, so comparisons end early.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Edge {
    time_ms: u64,
    id: u64,
    /// The timely time the edge entered the window: a ring appears when its last edge does.
    entered: u64,
    seller_hash: u64,
    buyer_hash: u64,
    seller: Account,
    buyer: Account,
}

impl Edge {
    fn before(&self, other: &Edge) -> bool {
        (self.time_ms, self.id) < (other.time_ms, other.id)
    }
}

/// Symbol and quantity: what all edges of one ring share.
type Lot = (Name, Fixed);
/// The edges leaving the window at one time, with the capability to retract them then.
type Leaving = (Capability<u64>, Vec<(Lot, Edge)>);
/// Symbol, quantity, seller's and buyer's hash: an edge by both its accounts.
type Leg = (Name, Fixed, u64, u64);

/// A cycle of 2 or 3 trades in time order (a 2-cycle leaves `edges[2]` a copy of its last).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ring {
    symbol: Name,
    qty: Fixed,
    len: u8,
    edges: [Edge; 3],
}

impl Ring {
    fn new(symbol: Name, qty: Fixed, edges: &[Edge]) -> Ring {
        let last = edges[edges.len() - 1];
        Ring {
            symbol,
            qty,
            len: edges.len() as u8,
            edges: [edges[0], edges[1], edges.get(2).copied().unwrap_or(last)],
        }
    }

    fn edges(&self) -> &[Edge] {
        &self.edges[..usize::from(self.len)]
    }
}

/// What the join of an edge into an account with an edge out of it finds: a 2-cycle, or a
/// path A→B→C (keyed to meet the edge C→A that would close it).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Step {
    Two(Ring),
    Path(Leg, (Edge, Edge)),
}

/// One alert per ring (see [`WashRingConfig`]), emitted at the timely time its last trade
/// entered, once the frontier has passed it.
pub fn wash_rings<'scope>(
    trades: Stream<'scope, u64, Vec<Trade>>,
    config: &WashRingConfig,
) -> Stream<'scope, u64, Vec<Alert>> {
    let window = config.window_ms;
    let triangles = config.triangles;
    let trades_again = trades.clone();
    let edges: VecCollection<'scope, u64, (Lot, Edge)> = trades
        .unary_frontier::<CapacityContainerBuilder<Vec<((Lot, Edge), u64, isize)>>, _, _, _>(
            Pipeline,
            "RingEdges",
            move |_capability, _info| {
                // Retractions by the time they take effect, sent once the input frontier
                // reaches that time: the arrangements' batchers then never hold them.
                let mut leaving: BTreeMap<u64, Leaving> = BTreeMap::new();
                move |(input, frontier), output| {
                    let port = output.output_index();
                    input.for_each(|capability, batch| {
                        let Some(&time) = capability.least() else {
                            return;
                        };
                        let mut session = output.session(&capability);
                        for trade in batch.iter() {
                            let (Some(buyer), Some(seller)) = (trade.buyer, trade.seller) else {
                                continue;
                            };
                            if buyer == seller {
                                continue;
                            }
                            let edge = Edge {
                                time_ms: trade.time_ms,
                                id: trade.id,
                                entered: time,
                                seller_hash: seller.stable_hash(),
                                buyer_hash: buyer.stable_hash(),
                                seller,
                                buyer,
                            };
                            let lot = (Name::new(trade.symbol), trade.qty);
                            // Present while a later trade within the window may close a ring
                            // with it: a trade at event time ≤ time_ms + window travels at a
                            // timely time ≤ that.
                            // Rounded up to a whole second: far fewer distinct times for
                            // the arrangements to hold apart (the joins check exact spans).
                            let leaves =
                                (time.max(trade.time_ms) + window + 1).next_multiple_of(1_000);
                            session.give(((lot, edge), time, 1));
                            leaving
                                .entry(leaves)
                                .or_insert_with(|| (capability.delayed(&leaves, port), Vec::new()))
                                .1
                                .push((lot, edge));
                        }
                    });
                    while let Some(entry) = leaving.first_entry() {
                        let leaves = *entry.key();
                        if frontier.less_than(&leaves) {
                            break;
                        }
                        let (capability, gone) = entry.remove();
                        output
                            .session(&capability)
                            .give_iterator(gone.into_iter().map(|edge| (edge, leaves, -1)));
                    }
                }
            },
        )
        .as_collection();

    // Every ring's first two edges meet at the account that bought the first and sold the
    // second: an edge into B joined with an edge out of B.
    let into = edges
        .clone()
        .map(|((symbol, qty), e)| ((symbol, qty, e.buyer_hash), e))
        .arrange_by_key();
    let out_of = edges
        .clone()
        .map(|((symbol, qty), e)| ((symbol, qty, e.seller_hash), e))
        .arrange_by_key();
    let steps = into.join_core(out_of, move |&(symbol, qty, _), e1, e2| {
        if !(e1.before(e2) && e1.buyer == e2.seller && e2.time_ms - e1.time_ms <= window) {
            return None;
        }
        if e2.buyer == e1.seller {
            Some(Step::Two(Ring::new(symbol, qty, &[*e1, *e2])))
        } else if triangles {
            let closing = (symbol, qty, e2.buyer_hash, e1.seller_hash);
            Some(Step::Path(closing, (*e1, *e2)))
        } else {
            None
        }
    });
    let mut rings = steps.clone().flat_map(|step| match step {
        Step::Two(ring) => Some(ring),
        Step::Path(..) => None,
    });
    if triangles {
        let paths = steps.flat_map(|step| match step {
            Step::Two(_) => None,
            Step::Path(closing, pair) => Some((closing, pair)),
        });
        let forward = edges
            .map(|((symbol, qty), e)| ((symbol, qty, e.seller_hash, e.buyer_hash), e))
            .arrange_by_key();
        let three = paths.arrange_by_key().join_core(
            forward,
            move |&(symbol, qty, _, _), &(e1, e2), e3| {
                (e2.before(e3)
                    && e3.seller == e2.buyer
                    && e3.buyer == e1.seller
                    && e3.time_ms - e1.time_ms <= window)
                    .then(|| Ring::new(symbol, qty, &[e1, e2, *e3]))
            },
        );
        rings = rings.concat(three);
    }
    // Only a ring's appearance is judged: its retraction (when an edge leaves) and updates
    // at other times are dropped here, before they are exchanged.
    let appeared = rings.inner.filter(|(ring, time, diff)| {
        *diff > 0 && ring.edges().iter().map(|e| e.entered).max() == Some(*time)
    });
    judge_rings(appeared, trades_again, config.clone())
}

/// The trades of one symbol in the trailing window, counted by seller, buyer and quantity:
/// what a ring's chance statistic is computed from.
#[derive(Debug, Default)]
struct SymbolWindow {
    /// `(time, seller, buyer, qty)` in `(time, id)` order.
    trades: VecDeque<(u64, Account, Account, Fixed)>,
    sells: FxHashMap<Account, u32>,
    buys: FxHashMap<Account, u32>,
    sizes: FxHashMap<Fixed, u32>,
}

fn bump<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, u32>, key: K, up: bool) {
    if up {
        *map.entry(key).or_insert(0) += 1;
    } else if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

impl SymbolWindow {
    fn push(&mut self, time: u64, seller: Account, buyer: Account, qty: Fixed) {
        self.trades.push_back((time, seller, buyer, qty));
        bump(&mut self.sells, seller, true);
        bump(&mut self.buys, buyer, true);
        bump(&mut self.sizes, qty, true);
    }

    /// Drops the trades at or before `time`.
    fn expire(&mut self, time: u64) {
        while let Some(&(t, seller, buyer, qty)) = self.trades.front() {
            if t > time {
                break;
            }
            self.trades.pop_front();
            bump(&mut self.sells, seller, false);
            bump(&mut self.buys, buyer, false);
            bump(&mut self.sizes, qty, false);
        }
    }
}

/// How many rings like `ring` chance alone would produce (see [`WashRingConfig`]), from the
/// symbol's trades in the window ending at the ring's last trade: `(expected, window
/// trades, trades of the ring's quantity)`.
pub(crate) fn chance(
    edges: &[(u64, Account, Account)],
    trades: u32,
    sells: impl Fn(&Account) -> u32,
    buys: impl Fn(&Account) -> u32,
    of_qty: u32,
    window_ms: u64,
) -> f64 {
    let n = f64::from(trades.max(1));
    let share = f64::from(of_qty) / n;
    let mut expected = 1.0f64;
    for (_, seller, buyer) in edges {
        let pair = f64::from(sells(seller)) * f64::from(buys(buyer)) / n;
        expected *= pair * share;
    }
    let first = edges.first().map_or(0, |e| e.0);
    let last = edges.last().map_or(0, |e| e.0);
    let span = (last - first).max(1) as f64;
    expected * span / window_ms.max(1) as f64
}

/// What one timely time brings: ring updates (with the capability to alert at that time)
/// and the trades that feed the symbol windows.
struct Slot {
    capability: Option<Capability<u64>>,
    rings: FxHashMap<Ring, isize>,
    trades: Vec<(Name, u64, u64, Account, Account, Fixed)>,
}

/// Keeps the rings that appeared at a time and are unlikely by chance, once both inputs'
/// frontiers have passed that time; one alert each.
///
/// Rings and trades are exchanged by symbol. For each symbol the trades and the rings of a
/// time are merged in event-time order, so a ring is judged on exactly the trades of its
/// symbol in `(last − window, last]`, whatever the workers or arrival order.
fn judge_rings<'scope>(
    rings: Stream<'scope, u64, Vec<(Ring, u64, isize)>>,
    trades: Stream<'scope, u64, Vec<Trade>>,
    config: WashRingConfig,
) -> Stream<'scope, u64, Vec<Alert>> {
    let ring_pact = Exchange::new(|(ring, _, _): &(Ring, u64, isize)| ring.symbol.hash);
    let trade_pact = Exchange::new(|trade: &Trade| trade.symbol.stable_hash());
    rings.binary_frontier::<_, CapacityContainerBuilder<Vec<Alert>>, _, _, _, _>(
        trades,
        ring_pact,
        trade_pact,
        "WashRings",
        move |_capability, _info| {
            let mut stash: BTreeMap<u64, Slot> = BTreeMap::new();
            let mut windows: BTreeMap<Name, SymbolWindow> = BTreeMap::new();
            move |(rings, ring_frontier), (trades, trade_frontier), output| {
                let port = output.output_index();
                rings.for_each(|capability, batch| {
                    for (ring, time, diff) in batch.drain(..) {
                        let appears = ring.edges().iter().map(|e| e.entered).max() == Some(time);
                        if !appears {
                            continue;
                        }
                        let slot = stash.entry(time).or_insert_with(Slot::new);
                        // The update's time is at least the message's (differential's
                        // invariant), so the capability can be delayed to it; held until
                        // both frontiers pass `time`, when every update of the ring at
                        // `time` and every trade it is judged on have arrived.
                        if slot.capability.is_none() {
                            slot.capability = Some(capability.delayed(&time, port));
                        }
                        *slot.rings.entry(ring).or_insert(0) += diff;
                    }
                });
                trades.for_each(|capability, batch| {
                    let Some(&time) = capability.least() else {
                        return;
                    };
                    let slot = stash.entry(time).or_insert_with(Slot::new);
                    for trade in batch.drain(..) {
                        let (Some(buyer), Some(seller)) = (trade.buyer, trade.seller) else {
                            continue;
                        };
                        if buyer != seller {
                            slot.trades.push((
                                Name::new(trade.symbol),
                                trade.time_ms,
                                trade.id,
                                seller,
                                buyer,
                                trade.qty,
                            ));
                        }
                    }
                });
                while let Some(entry) = stash.first_entry() {
                    let time = *entry.key();
                    if ring_frontier.less_equal(&time) || trade_frontier.less_equal(&time) {
                        break;
                    }
                    let Slot {
                        capability,
                        rings,
                        mut trades,
                    } = entry.remove();
                    trades.sort_unstable_by_key(|&(symbol, t, id, ..)| (symbol, t, id));
                    let mut appeared: Vec<(Name, u64, Ring)> = rings
                        .into_iter()
                        .filter(|&(_, diff)| diff > 0)
                        .map(|(ring, _)| {
                            let last = ring.edges().last().map_or(0, |e| e.time_ms);
                            (ring.symbol, last, ring)
                        })
                        .collect();
                    appeared.sort_unstable();
                    let mut alerts = Vec::new();
                    let mut next_trade = 0;
                    for (symbol, last, ring) in appeared {
                        // Trades of symbols before this one, or of this one up to the ring's
                        // last trade, enter their windows first.
                        while let Some(&(s, t, _, seller, buyer, qty)) = trades.get(next_trade) {
                            if (s, t) > (symbol, last) {
                                break;
                            }
                            windows.entry(s).or_default().push(t, seller, buyer, qty);
                            next_trade += 1;
                        }
                        let window = windows.entry(symbol).or_default();
                        window.expire(last.saturating_sub(config.window_ms));
                        if let Some(alert) = judge(&ring, window, &config) {
                            alerts.push(alert);
                        }
                    }
                    for &(s, t, _, seller, buyer, qty) in &trades[next_trade..] {
                        windows.entry(s).or_default().push(t, seller, buyer, qty);
                    }
                    // Later rings end after `time`: what is this far back can never count.
                    windows.retain(|_, window| {
                        window.expire(time.saturating_sub(config.window_ms));
                        !window.trades.is_empty()
                    });
                    if let Some(capability) = capability {
                        output
                            .session(&capability)
                            .give_iterator(alerts.into_iter());
                    }
                }
            }
        },
    )
}

impl Slot {
    fn new() -> Slot {
        Slot {
            capability: None,
            rings: FxHashMap::default(),
            trades: Vec::new(),
        }
    }
}

/// The alert of a ring unlikely by chance: about the account that sold first, at the last
/// trade's time.
fn judge(ring: &Ring, window: &SymbolWindow, config: &WashRingConfig) -> Option<Alert> {
    let (Some(first), Some(last)) = (ring.edges().first(), ring.edges().last()) else {
        return None;
    };
    let trades = window.trades.len() as u32;
    let of_qty = window.sizes.get(&ring.qty).copied().unwrap_or(0);
    let edges: Vec<(u64, Account, Account)> = ring
        .edges()
        .iter()
        .map(|e| (e.time_ms, e.seller, e.buyer))
        .collect();
    let expected = chance(
        &edges,
        trades,
        |a| window.sells.get(a).copied().unwrap_or(0),
        |a| window.buys.get(a).copied().unwrap_or(0),
        of_qty,
        config.window_ms,
    );
    if expected > config.max_expected {
        return None;
    }
    let mut trade_ids: Vec<u64> = ring.edges().iter().map(|e| e.id).collect();
    trade_ids.sort_unstable();
    let span = last.time_ms - first.time_ms;
    let accounts: Vec<&str> = ring.edges().iter().map(|e| e.seller.as_str()).collect();
    let score = (expected.max(f64::MIN_POSITIVE).log10() / config.max_expected.log10()).max(1.0);
    let details = Details::new()
        .ids("trade_ids", &trade_ids)
        .strs("accounts", accounts)
        .raw("length", ring.edges().len())
        .str("qty", &ring.qty.to_string())
        .raw("span_ms", span)
        .raw("window_ms", config.window_ms)
        .raw("window_trades", trades)
        .raw("qty_trades", of_qty)
        .float("expected", expected)
        .float("max_expected", config.max_expected)
        .finish();
    Some(Alert {
        kind: AlertKind::WashRing,
        symbol: ring.symbol.text,
        account: Some(first.seller),
        event_ms: last.time_ms,
        detected_ms: now_ms(),
        severity: if ring.edges().len() > 2 {
            Severity::High
        } else {
            Severity::Medium
        },
        score,
        details,
        trade_ids,
    })
}
