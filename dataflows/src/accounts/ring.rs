//! Wash-trade rings: 2- and 3-cycles of equal-quantity trades between accounts, found with
//! differential dataflow joins over a sliding window of edges.
//!
//! ```text
//!  trades ─▶ edges seller→buyer: +1 at the trade's time, −1 at its event time + window + 1
//!             │
//!             ├─ by (symbol, qty, seller, buyer) ⋈ by (symbol, qty, buyer, seller)  ─▶ A→B→A
//!             └─ by (symbol, qty, buyer) ⋈ by (symbol, qty, seller)  ─▶ paths A→B→C
//!                   by (symbol, qty, C, A) ⋈ by (symbol, qty, seller, buyer)          ─▶ A→B→C→A
//!  rings (+1 when the last trade enters) ─▶ stash by time ─▶ one alert each, once final
//! ```
//!
//! A ring's trades must follow the cycle in `(time, id)` order: the seller of each trade is
//! the buyer of the one before, the buyer of the last is the seller of the first. Starting
//! every cycle at its earliest trade makes each ring appear exactly once (no rotations), and
//! a 3-cycle's three accounts are distinct, so it never contains a 2-cycle.

use std::collections::BTreeMap;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tickflow_operators::model::{Account, Alert, AlertKind, Fixed, Severity, Symbol, Trade};
use tickflow_operators::source::now_ms;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Concatenate;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::json::Details;
use super::WashRingConfig;

/// One trade as an edge of the account graph, from seller to buyer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Edge {
    time_ms: u64,
    id: u64,
    seller: Account,
    buyer: Account,
    /// The timely time the edge entered the window: a ring appears when its last edge does.
    entered: u64,
}

impl Edge {
    fn before(&self, other: &Edge) -> bool {
        (self.time_ms, self.id) < (other.time_ms, other.id)
    }
}

/// Symbol and quantity: the part of a key all edges of one ring share.
type Lot = (Symbol, Fixed);

/// A cycle of trades in time order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ring {
    symbol: Symbol,
    qty: Fixed,
    edges: Vec<Edge>,
}

/// One alert per ring (see [`WashRingConfig`]), emitted at the timely time its last trade
/// entered, once the frontier has passed it.
pub fn wash_rings<'scope>(
    trades: Stream<'scope, u64, Vec<Trade>>,
    config: &WashRingConfig,
) -> Stream<'scope, u64, Vec<Alert>> {
    let window = config.window_ms;
    let scope = trades.scope();
    let edges: VecCollection<'scope, u64, (Lot, Edge)> = trades
        .unary::<CapacityContainerBuilder<Vec<((Lot, Edge), u64, isize)>>, _, _, _>(
            Pipeline,
            "RingEdges",
            move |_capability, _info| {
                move |input, output| {
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
                                seller,
                                buyer,
                                entered: time,
                            };
                            let lot = (trade.symbol, trade.qty);
                            // Present while a later trade within the window may close a ring
                            // with it: a trade at event time ≤ time_ms + window travels at a
                            // timely time ≤ that.
                            let leaves = time.max(trade.time_ms) + window + 1;
                            session.give(((lot, edge), time, 1));
                            session.give(((lot, edge), leaves, -1));
                        }
                    });
                }
            },
        )
        .as_collection();

    let forward = edges
        .clone()
        .map(|(lot, e)| ((lot, e.seller, e.buyer), e))
        .arrange_by_key();
    let backward = edges
        .clone()
        .map(|(lot, e)| ((lot, e.buyer, e.seller), e))
        .arrange_by_key();
    let two = forward
        .clone()
        .join_core(backward, move |&((symbol, qty), _, _), e1, e2| {
            (e1.before(e2) && e2.time_ms - e1.time_ms <= window).then(|| Ring {
                symbol,
                qty,
                edges: vec![*e1, *e2],
            })
        });
    let mut rings = vec![two.inner];
    if config.triangles {
        let into = edges
            .clone()
            .map(|(lot, e)| ((lot, e.buyer), e))
            .arrange_by_key();
        let out_of = edges.map(|(lot, e)| ((lot, e.seller), e)).arrange_by_key();
        let paths = into.join_core(out_of, move |&(lot, _), e1, e2| {
            (e1.before(e2) && e2.buyer != e1.seller && e2.time_ms - e1.time_ms <= window)
                .then(|| ((lot, e2.buyer, e1.seller), (*e1, *e2)))
        });
        let three = paths
            .arrange_by_key()
            .join_core(forward, move |&((symbol, qty), _, _), &(e1, e2), e3| {
                (e2.before(e3) && e3.time_ms - e1.time_ms <= window).then(|| Ring {
                    symbol,
                    qty,
                    edges: vec![e1, e2, *e3],
                })
            });
        rings.push(three.inner);
    }
    let rings = scope.concatenate(rings);
    emit_rings(rings, window)
}

/// Stashes ring updates by time and, once the frontier has passed a time, emits one alert
/// for every ring that appeared then: net positive, at the time its last edge entered.
fn emit_rings<'scope>(
    rings: Stream<'scope, u64, Vec<(Ring, u64, isize)>>,
    window: u64,
) -> Stream<'scope, u64, Vec<Alert>> {
    let pact = Exchange::new(|(ring, _, _): &(Ring, u64, isize)| {
        ring.edges.first().map_or(0, |e| e.id) ^ ring.symbol.stable_hash()
    });
    rings.unary_frontier::<CapacityContainerBuilder<Vec<Alert>>, _, _, _>(
        pact,
        "WashRings",
        move |_capability, _info| {
            type Slot = (Capability<u64>, FxHashMap<Ring, isize>);
            let mut stash: BTreeMap<u64, Slot> = BTreeMap::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each(|capability, batch| {
                    for (ring, time, diff) in batch.drain(..) {
                        let appears = ring.edges.iter().map(|e| e.entered).max() == Some(time);
                        if !appears {
                            continue;
                        }
                        // The update's time is at least the message's (differential's
                        // invariant), so the capability can be delayed to it; held until the
                        // frontier passes `time`, when every update of the ring at `time`
                        // has arrived.
                        let slot = stash
                            .entry(time)
                            .or_insert_with(|| (capability.delayed(&time, port), FxHashMap::default()));
                        *slot.1.entry(ring).or_insert(0) += diff;
                    }
                });
                while let Some(entry) = stash.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (capability, updates) = entry.remove();
                    let mut appeared: Vec<Ring> = updates
                        .into_iter()
                        .filter(|&(_, diff)| diff > 0)
                        .map(|(ring, _)| ring)
                        .collect();
                    appeared.sort_unstable();
                    let mut session = output.session(&capability);
                    session.give_iterator(appeared.iter().filter_map(|r| ring_alert(r, window)));
                }
            }
        },
    )
}

/// The alert of one ring: about the account that sold first, at the last trade's time.
fn ring_alert(ring: &Ring, window: u64) -> Option<Alert> {
    let (Some(first), Some(last)) = (ring.edges.first(), ring.edges.last()) else {
        return None;
    };
    let mut trade_ids: Vec<u64> = ring.edges.iter().map(|e| e.id).collect();
    trade_ids.sort_unstable();
    let span = last.time_ms - first.time_ms;
    let accounts: Vec<&str> = ring.edges.iter().map(|e| e.seller.as_str()).collect();
    let details = Details::new()
        .ids("trade_ids", &trade_ids)
        .strs("accounts", accounts)
        .raw("length", ring.edges.len())
        .str("qty", &ring.qty.to_string())
        .raw("span_ms", span)
        .raw("window_ms", window)
        .finish();
    Some(Alert {
        kind: AlertKind::WashRing,
        symbol: ring.symbol,
        account: Some(first.seller),
        event_ms: last.time_ms,
        detected_ms: now_ms(),
        severity: if ring.edges.len() > 2 {
            Severity::High
        } else {
            Severity::Medium
        },
        score: window.max(1) as f64 / span.max(1) as f64,
        details,
        trade_ids,
    })
}
