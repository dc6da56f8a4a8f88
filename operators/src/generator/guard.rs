//! The cycle guard: with anomalies on, no wash-trade ring happens by chance.
//!
//! A `wash_ring` is an equal-quantity cycle of trades A→B→A or A→B→C→A (seller to buyer)
//! within seconds. Drawn at random, busy accounts close such cycles by chance now and then,
//! and a sized-on-a-lot-grid market repeats quantities; such a chance cycle meets the
//! definition as well as an injected ring does, yet the truth file would not list it. So
//! when anomalies are injected, every trade that is not itself part of an injected
//! account pattern passes this guard: if it would close an equal-quantity 2- or 3-cycle
//! with the trades of the last [`GUARD_MS`] (in any order), its seller becomes the next
//! account rank (skipping the buyer) until it does not. No random draw is taken, so the
//! process and the anomalies draw as without the guard. With anomalies off the market is
//! left as it is (chance cycles included: what the clean-input false-positive rate of
//! `wash_ring` measures).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::stream::account;
use crate::model::{Account, Trade};

/// How far back a cycle is looked for: twice the `wash_ring` rule's default window.
pub const GUARD_MS: u64 = 10_000;

/// Tries at most this many sellers; beyond (a pool of a few accounts, where every choice
/// closes a cycle) the trade is left as it was.
const MAX_TRIES: u64 = 64;

/// One recent trade as an edge: event time, quantity (units), seller, buyer.
type Edge = (u64, i64, Account, Account);

/// The recent edges, indexed by quantity and accounts, with their expiry order.
#[derive(Clone, Debug, Default)]
pub(super) struct CycleGuard {
    /// How many recent edges run `seller → buyer` with a quantity.
    pairs: FxHashMap<(i64, Account, Account), u32>,
    /// The buyers of each seller's recent edges of a quantity, with multiplicity.
    outs: FxHashMap<(i64, Account), FxHashMap<Account, u32>>,
    /// The recent edges in event-time order, for expiry.
    order: VecDeque<Edge>,
    accounts: u64,
}

impl CycleGuard {
    pub(super) fn new(accounts: u64) -> CycleGuard {
        CycleGuard {
            accounts,
            ..CycleGuard::default()
        }
    }

    /// Passes `trade` (trades come in event-time order): reassigns its seller if it would
    /// close a cycle, then remembers it.
    pub(super) fn check(&mut self, trade: &mut Trade) {
        self.expire(trade.time_ms);
        if let (Some(buyer), Some(seller)) = (trade.buyer, trade.seller) {
            if let Some(rank) = rank(&seller) {
                let qty = trade.qty.0;
                let pool = self.accounts.max(1);
                let mut seller = (rank, seller);
                let mut tries = 0;
                while self.closes(qty, seller.1, buyer) {
                    tries += 1;
                    if tries > MAX_TRIES.min(self.accounts) {
                        seller = (rank, trade.seller.unwrap_or(seller.1));
                        break;
                    }
                    let mut next = (seller.0 + 1) % pool;
                    if account(next) == Some(buyer) {
                        next = (next + 1) % pool;
                    }
                    match account(next) {
                        Some(name) => seller = (next, name),
                        None => break,
                    }
                }
                trade.seller = Some(seller.1);
            }
        }
        self.remember(trade);
    }

    /// Remembers `trade` without checking it (a trade of an injected pattern).
    pub(super) fn remember(&mut self, trade: &Trade) {
        self.expire(trade.time_ms);
        if let (Some(buyer), Some(seller)) = (trade.buyer, trade.seller) {
            let qty = trade.qty.0;
            *self.pairs.entry((qty, seller, buyer)).or_default() += 1;
            *self
                .outs
                .entry((qty, seller))
                .or_default()
                .entry(buyer)
                .or_default() += 1;
            self.order.push_back((trade.time_ms, qty, seller, buyer));
        }
    }

    /// Whether an edge `seller → buyer` of `qty` closes a 2-cycle (an edge buyer → seller)
    /// or a 3-cycle (edges buyer → c and c → seller) with the recent edges.
    fn closes(&self, qty: i64, seller: Account, buyer: Account) -> bool {
        self.pairs.contains_key(&(qty, buyer, seller))
            || self.outs.get(&(qty, buyer)).is_some_and(|next| {
                next.keys()
                    .any(|&c| c != buyer && self.pairs.contains_key(&(qty, c, seller)))
            })
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some(&(time, qty, seller, buyer)) = self.order.front() {
            if time.saturating_add(GUARD_MS) >= now_ms {
                break;
            }
            self.order.pop_front();
            if let Some(n) = self.pairs.get_mut(&(qty, seller, buyer)) {
                *n -= 1;
                if *n == 0 {
                    self.pairs.remove(&(qty, seller, buyer));
                }
            }
            if let Some(next) = self.outs.get_mut(&(qty, seller)) {
                if let Some(n) = next.get_mut(&buyer) {
                    *n -= 1;
                    if *n == 0 {
                        next.remove(&buyer);
                    }
                }
                if next.is_empty() {
                    self.outs.remove(&(qty, seller));
                }
            }
        }
    }
}

/// The rank of a generated account name (`acct-000417` → 417).
fn rank(name: &Account) -> Option<u64> {
    name.as_str().strip_prefix("acct-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Fixed, Symbol};

    fn trade(time_ms: u64, seller: u64, buyer: u64, qty: i64) -> Trade {
        Trade {
            symbol: Symbol::new("BTCUSDT").expect("symbol"),
            id: time_ms,
            price: Fixed(100),
            qty: Fixed(qty),
            time_ms,
            buyer_maker: false,
            buyer: account(buyer),
            seller: account(seller),
        }
    }

    /// Brute force over the kept trades: any equal-quantity 2- or 3-cycle among them.
    fn has_cycle(trades: &[Trade]) -> bool {
        let edge = |t: &Trade| {
            (
                t.seller.expect("seller"),
                t.buyer.expect("buyer"),
                t.qty,
                t.time_ms,
            )
        };
        for (i, a) in trades.iter().enumerate() {
            for (j, b) in trades.iter().enumerate() {
                let ((sa, ba, qa, ta), (sb, bb, qb, tb)) = (edge(a), edge(b));
                if i == j || qa != qb || ta.abs_diff(tb) > GUARD_MS {
                    continue;
                }
                if ba == sb && bb == sa {
                    return true;
                }
                for (k, c) in trades.iter().enumerate() {
                    let (sc, bc, qc, tc) = edge(c);
                    if k != i
                        && k != j
                        && qc == qa
                        && tc.abs_diff(ta) <= GUARD_MS
                        && tc.abs_diff(tb) <= GUARD_MS
                        && ba == sb
                        && bb == sc
                        && bc == sa
                    {
                        return true;
                    }
                }
            }
        }
        false
    }

    #[test]
    fn a_closing_trade_gets_another_seller() {
        let mut guard = CycleGuard::new(10);
        let mut first = trade(1_000, 3, 7, 5);
        guard.check(&mut first);
        let mut back = trade(2_000, 7, 3, 5);
        guard.check(&mut back);
        assert_eq!(back.seller, account(8), "7 → 3 would close 3 → 7 → 3");
        // Another quantity, or after the guard's window, is left alone.
        let mut other = trade(2_500, 7, 3, 6);
        guard.check(&mut other);
        assert_eq!(other.seller, account(7));
        let mut later = trade(1_000 + GUARD_MS + 1, 7, 3, 5);
        guard.check(&mut later);
        assert_eq!(later.seller, account(7));
    }

    #[test]
    fn no_chance_cycle_survives_a_busy_pool() {
        // Twenty accounts and two quantities, 200 trades in the guard's window: cycles
        // everywhere unless guarded.
        let mut guard = CycleGuard::new(20);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        let mut kept = Vec::new();
        let mut unguarded = Vec::new();
        for i in 0..300 {
            let buyer = next(20);
            let seller = (buyer + 1 + next(19)) % 20;
            let mut t = trade(i * 50, seller, buyer, 1 + next(2) as i64);
            unguarded.push(t);
            guard.check(&mut t);
            assert_ne!(t.seller, t.buyer);
            assert_eq!(
                (t.buyer, t.qty),
                (unguarded[i as usize].buyer, unguarded[i as usize].qty)
            );
            kept.push(t);
        }
        assert!(
            has_cycle(&unguarded),
            "the reference finds the chance cycles"
        );
        assert!(!has_cycle(&kept), "a cycle survived the guard");
    }
}
