//! Per-second buckets of one symbol's trades, shared by `volume_burst` and `pump_and_dump`.
//!
//! Seconds are `[k · 1000, (k + 1) · 1000)` of event time. A second closes once every trade
//! before its end is known: either a trade of a later second arrives, or the operator tells
//! that its input has passed the second's end ([`Seconds::close_until`]). Closed seconds are
//! kept densely (seconds without trades too) in a ring of bounded length, so the rules that
//! read them depend on a bounded history only.

use std::collections::VecDeque;

use super::Tick as Trade;

/// A closed second.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Summary {
    /// Index of the second (`start_ms / 1000`).
    pub second: u64,
    /// Trades in it.
    pub count: u32,
    /// Σ quantity, as a float (evidence and ratios only).
    pub volume: f64,
    /// Event time of its last trade.
    pub last_ms: u64,
    /// The most trades in any 1000 ms ending at one of its trades (a sliding second, which
    /// holds a burst whole even when the burst straddles two seconds).
    pub busiest: u32,
    /// Its last trade not flagged as a bad tick: `(price units, id, time_ms)`.
    pub close: Option<(i64, u64, u64)>,
}

/// The buckets of one symbol.
#[derive(Debug)]
pub(crate) struct Seconds {
    capacity: usize,
    /// Closed seconds, oldest first, at most `capacity`.
    pub ring: VecDeque<Summary>,
    /// The second being filled, if it has a trade.
    open: Option<Summary>,
    /// The first second not closed yet; `None` before the first trade.
    next: Option<u64>,
    /// Ids of the open second's trades.
    pub open_ids: Vec<u64>,
    /// Event times of the trades of the last 1000 ms.
    recent: VecDeque<u64>,
}

impl Seconds {
    pub(crate) fn new(capacity: usize) -> Seconds {
        Seconds {
            capacity: capacity.max(1),
            ring: VecDeque::new(),
            open: None,
            next: None,
            open_ids: Vec::new(),
            recent: VecDeque::new(),
        }
    }

    /// Adds a trade (trades come in `(time_ms, id)` order), first closing every second
    /// before the trade's own.
    pub(crate) fn add(&mut self, trade: &Trade, flagged: bool, on_close: &mut impl FnMut(&Self)) {
        let second = trade.time_ms / 1000;
        self.close_seconds_before(second, on_close);
        self.next.get_or_insert(second);
        let open = self.open.get_or_insert(Summary {
            second,
            ..Summary::default()
        });
        while self
            .recent
            .front()
            .is_some_and(|&t| t + 1000 <= trade.time_ms)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(trade.time_ms);
        open.busiest = open.busiest.max(self.recent.len() as u32);
        open.count += 1;
        open.volume += trade.qty.to_f64();
        open.last_ms = trade.time_ms;
        if !flagged {
            open.close = Some((trade.price.0, trade.id, trade.time_ms));
        }
        self.open_ids.push(trade.id);
    }

    /// Closes every second that ends at or before `end_ms`.
    pub(crate) fn close_until(&mut self, end_ms: u64, on_close: &mut impl FnMut(&Self)) {
        self.close_seconds_before(end_ms / 1000, on_close);
    }

    /// The event time at which this state next needs [`Seconds::close_until`]: the end of the
    /// open second. Without an open second nothing is pending: empty seconds are filled in
    /// lazily when the next trade arrives.
    pub(crate) fn pending_end_ms(&self) -> Option<u64> {
        self.open.map(|open| (open.second + 1) * 1000)
    }

    /// The end of the next second to close: the open one, or else the one after the last
    /// closed (for a rule that must see it close even if it stays empty).
    pub(crate) fn next_end_ms(&self) -> Option<u64> {
        self.pending_end_ms()
            .or_else(|| self.next.map(|next| (next + 1) * 1000))
    }

    /// Closes the open second and every empty second after it, up to (not including)
    /// `second`. Closing more than `capacity + 2` empty seconds in a row is the same as
    /// closing that many (the ring is then all empty), so a long silence costs O(capacity).
    fn close_seconds_before(&mut self, second: u64, on_close: &mut impl FnMut(&Self)) {
        let Some(next) = self.next else {
            return;
        };
        if next >= second {
            return;
        }
        // The open second, if any, is `next`: a trade closes every second before its own.
        let mut first_empty = next;
        if let Some(open) = self.open {
            self.push(open, on_close);
            self.open_ids.clear();
            self.open = None;
            first_empty = open.second + 1;
        }
        let first_empty = first_empty.max(second.saturating_sub(self.capacity as u64 + 2));
        for empty in first_empty..second {
            self.push(
                Summary {
                    second: empty,
                    ..Summary::default()
                },
                on_close,
            );
        }
        self.next = Some(second);
    }

    fn push(&mut self, summary: Summary, on_close: &mut impl FnMut(&Self)) {
        self.ring.push_back(summary);
        while self.ring.len() > self.capacity {
            self.ring.pop_front();
        }
        on_close(self);
    }
}
