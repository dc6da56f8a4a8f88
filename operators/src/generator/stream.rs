//! One symbol's trades: generated in event-time order, released in arrival order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rand::{Rng, RngCore};
use rand_distr::{Exp1, StandardNormal};
use rand_pcg::Pcg64Mcg;

use super::defects::Defects;
use super::inject::Anomalies;
use super::profile::{splitmix64, Profile};
use super::truth::Injection;
use crate::model::{Account, Fixed, InlineStr, Symbol, Trade, SCALE};

/// Nanoseconds in a (Julian) year: volatility is annualized.
const NS_PER_YEAR: f64 = 365.25 * 86_400.0 * 1e9;
/// Highest price the walk may reach, so that prices and notionals stay far inside `Fixed`.
const MAX_PRICE: f64 = 1e9;
/// Highest quantity.
const MAX_QTY: f64 = 1e9;
/// Spread of the log-normal quantities (in log units).
pub(super) const QTY_SIGMA: f64 = 1.3;
/// Chance that the aggressor side flips from one trade to the next (order flow is sticky).
const SIDE_FLIP: f64 = 0.35;

/// One record of a stream: a trade, or a raw line (an injected defective record, which the
/// engine must parse and reject as it would a file's line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generated {
    /// A trade (an injected duplicate or late trade too).
    Trade(Trade),
    /// A raw line without its `'\n'`: malformed JSON, a missing field, an invalid value.
    Line(Vec<u8>),
}

/// Everything a [`TradeGen`] needs, computed once from the config.
#[derive(Copy, Clone, Debug)]
pub(crate) struct StreamParams {
    pub symbol: Symbol,
    pub index: usize,
    pub seed: u64,
    pub profile: Profile,
    /// Mean time between two trades of this symbol.
    pub mean_gap_ns: f64,
    /// Trades to produce; `None` = forever.
    pub events: Option<u64>,
    pub start_ms: u64,
    pub accounts: u32,
    pub max_delay_ms: u64,
    /// Expected anomaly instances per trade; 0 = none.
    pub anomalies: f64,
    /// Expected defects per record; 0 = none.
    pub defects: f64,
    /// The lateness late trades are delivered beyond (plus 1 s).
    pub late_ms: u64,
}

/// A generated trade and its arrival time.
#[derive(Copy, Clone, Debug)]
pub(super) struct Arrival {
    pub arrival_ms: u64,
    pub trade: Trade,
}

/// A trade in event order, after the anomalies, before the defects.
#[derive(Copy, Clone, Debug)]
pub(super) struct Tagged {
    pub arrival_ms: u64,
    pub trade: Trade,
    /// Injected or modified by an anomaly: defects leave it alone.
    pub anomalous: bool,
}

/// A record on its way into the reorder buffer, in generation order.
#[derive(Clone, Debug)]
pub(super) struct Staged {
    /// Event time of the generation step: never decreases from one record to the next, and
    /// never exceeds `arrival_ms`.
    pub order_ms: u64,
    pub arrival_ms: u64,
    pub record: Generated,
    /// Held long (a duplicate): kept out of the reorder ring so that the ring stays short.
    pub delayed: bool,
}

impl Staged {
    pub(super) fn trade(order_ms: u64, arrival_ms: u64, trade: Trade) -> Staged {
        Staged {
            order_ms,
            arrival_ms,
            record: Generated::Trade(trade),
            delayed: false,
        }
    }
}

/// The trade process of one symbol in event-time order.
#[derive(Clone, Debug)]
pub(super) struct TradeGen {
    rng: Pcg64Mcg,
    pub(super) symbol: Symbol,
    next_id: u64,
    pub(super) remaining: Option<u64>,
    started: bool,
    start_ms: u64,
    /// Event time since `start_ms`, in ns: integer so that it never drifts with the length
    /// of the run.
    elapsed_ns: u64,
    mean_gap_ns: f64,
    log_price: f64,
    /// `-σ²/2` per year: makes the expected price constant.
    drift: f64,
    volatility: f64,
    min_log_price: f64,
    max_log_price: f64,
    /// Tick and lot in units of 10^-8, and as `f64` prices.
    pub(super) tick: i64,
    tick_value: f64,
    pub(super) lot: i64,
    pub(super) lot_value: f64,
    pub(super) qty_mu: f64,
    buyer_maker: bool,
    /// Account pool size; 0 = no accounts.
    pub(super) accounts: u64,
    pub(super) ln_accounts_plus_one: f64,
    pub(super) max_delay_ms: u64,
}

impl TradeGen {
    fn new(params: &StreamParams) -> TradeGen {
        let StreamParams {
            symbol,
            index,
            seed,
            profile,
            mean_gap_ns,
            events,
            start_ms,
            accounts,
            max_delay_ms,
            ..
        } = *params;
        let Profile {
            base_price,
            price_decimals,
            qty_decimals,
            qty_median,
            volatility,
            ..
        } = profile;
        let tick = 10i64.pow(8 - price_decimals.min(8));
        let lot = 10i64.pow(8 - qty_decimals.min(8));
        let tick_value = tick as f64 / SCALE as f64;
        let lot_value = lot as f64 / SCALE as f64;
        // Seeded from (seed, name) only: a partition's trades depend on nothing else.
        let high =
            splitmix64(seed ^ splitmix64(crate::hash::stable_hash(symbol.as_str().as_bytes())));
        let low = splitmix64(high ^ 0x5851_f42d_4c95_7f2d);
        let rng = Pcg64Mcg::new((u128::from(high) << 64) | u128::from(low));
        let accounts = match accounts {
            0 => 0,
            // Buyer and seller must differ, so the smallest pool is two accounts.
            n => u64::from(n).max(2),
        };
        TradeGen {
            rng,
            symbol,
            next_id: 1_000_000 * (index as u64 + 1),
            remaining: events,
            started: false,
            start_ms,
            elapsed_ns: 0,
            mean_gap_ns,
            log_price: base_price.max(tick_value).ln(),
            drift: -0.5 * volatility * volatility,
            volatility,
            min_log_price: tick_value.ln(),
            max_log_price: MAX_PRICE.ln(),
            tick,
            tick_value,
            lot,
            lot_value,
            qty_mu: qty_median.max(lot_value).ln(),
            buyer_maker: false,
            accounts,
            ln_accounts_plus_one: ((accounts + 1) as f64).ln(),
            max_delay_ms,
        }
    }

    /// A uniform `f64` in `[0, 1)`, 53 bits.
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `[0, n)` by multiply-shift (the bias of at most n/2^64 is
    /// irrelevant here, and the mapping is ours, so it never changes under us).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.rng.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Zipf-like account rank: `P(k) ∝ ln((k+2)/(k+1))`, so account 0 is the heaviest.
    fn account_rank(&mut self) -> u64 {
        let x = (self.unit() * self.ln_accounts_plus_one).exp();
        (x as u64).saturating_sub(1).min(self.accounts - 1)
    }

    pub(super) fn next_trade(&mut self) -> Option<Arrival> {
        match &mut self.remaining {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None => {}
        }
        // The first trade is at `start_ms`; then Poisson arrivals.
        let gap_ns = if self.started {
            let gap: f64 = self.rng.sample(Exp1);
            (gap * self.mean_gap_ns).round() as u64
        } else {
            self.started = true;
            0
        };
        self.elapsed_ns = self.elapsed_ns.saturating_add(gap_ns);
        let time_ms = self.start_ms.saturating_add(self.elapsed_ns / 1_000_000);

        // Geometric Brownian motion over the gap.
        let z: f64 = self.rng.sample(StandardNormal);
        let dt = gap_ns as f64 / NS_PER_YEAR;
        self.log_price = (self.log_price + self.drift * dt + self.volatility * dt.sqrt() * z)
            .clamp(self.min_log_price, self.max_log_price);

        if self.unit() < SIDE_FLIP {
            self.buyer_maker = !self.buyer_maker;
        }
        // A sell aggressor (buyer is maker) hits the bid, a buy aggressor lifts the ask: the
        // price bounces within a one-tick spread around the walk.
        let ticks = self.log_price.exp() / self.tick_value;
        let ticks = if self.buyer_maker {
            ticks.floor()
        } else {
            ticks.ceil()
        };
        let price = Fixed((ticks as i64).max(1) * self.tick);

        let z: f64 = self.rng.sample(StandardNormal);
        let lots = ((self.qty_mu + QTY_SIGMA * z).exp().min(MAX_QTY) / self.lot_value).round();
        let qty = Fixed((lots as i64).max(1) * self.lot);

        let (buyer, seller) = if self.accounts == 0 {
            (None, None)
        } else {
            let buyer = self.account_rank();
            let mut seller = self.account_rank();
            if seller == buyer {
                seller = (buyer + 1 + self.below(self.accounts - 1)) % self.accounts;
            }
            (account(buyer), account(seller))
        };

        let delay = self.below(self.max_delay_ms.saturating_add(1));
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        Some(Arrival {
            arrival_ms: time_ms.saturating_add(delay),
            trade: Trade {
                symbol: self.symbol,
                id,
                price,
                qty,
                time_ms,
                buyer_maker: self.buyer_maker,
                buyer,
                seller,
            },
        })
    }
}

/// `acct-NNNNNN` (at least six digits) without a heap allocation; `None` is impossible for
/// ranks below 2^32 (at most 15 bytes), which is all a `u32` pool produces.
pub(super) fn account(rank: u64) -> Option<Account> {
    let mut digits = [0u8; 20];
    let mut n = rank;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    let width = len.max(6);
    let mut text = [b'0'; 25];
    text[..5].copy_from_slice(b"acct-");
    for (slot, digit) in text[5..5 + width].iter_mut().rev().zip(&digits[..len]) {
        *slot = *digit;
    }
    InlineStr::from_utf8(&text[..5 + width])
}

/// Records waiting for their arrival, released in `(arrival, sequence)` order, the sequence
/// numbering records as they were generated (so ties go to the earlier generated, which is
/// the smaller trade id).
///
/// The heap holds only the 16-byte keys; the records sit in a ring indexed by sequence
/// number, which spans about `rate × max_delay` records. Records held much longer (injected
/// duplicates, up to minutes) wait in a heap of their own and leave an empty slot.
#[derive(Clone, Debug, Default)]
struct ReorderBuffer {
    keys: BinaryHeap<Reverse<(u64, u64)>>,
    /// `slots[k]` holds record `first_seq + k` until it is released.
    slots: VecDeque<Option<Generated>>,
    first_seq: u64,
    next_seq: u64,
    delayed: BinaryHeap<Reverse<Delayed>>,
}

/// A long-held record, ordered by `(arrival, seq)` alone.
#[derive(Clone, Debug)]
struct Delayed {
    arrival_ms: u64,
    seq: u64,
    record: Generated,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.arrival_ms, self.seq) == (other.arrival_ms, other.seq)
    }
}

impl Eq for Delayed {}

impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.arrival_ms, self.seq).cmp(&(other.arrival_ms, other.seq))
    }
}

impl ReorderBuffer {
    fn push(&mut self, staged: Staged) {
        let Staged {
            arrival_ms,
            record,
            delayed,
            ..
        } = staged;
        let seq = self.next_seq;
        self.next_seq += 1;
        if delayed {
            if !self.slots.is_empty() {
                self.slots.push_back(None);
            }
            self.delayed.push(Reverse(Delayed {
                arrival_ms,
                seq,
                record,
            }));
            return;
        }
        if self.slots.is_empty() {
            self.first_seq = seq;
        }
        self.slots.push_back(Some(record));
        self.keys.push(Reverse((arrival_ms, seq)));
    }

    fn peek(&self) -> Option<(u64, u64)> {
        let ring = self.keys.peek().map(|Reverse(key)| *key);
        let delayed = self.delayed.peek().map(|Reverse(d)| (d.arrival_ms, d.seq));
        match (ring, delayed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn peek_arrival_ms(&self) -> Option<u64> {
        self.peek().map(|(arrival_ms, _)| arrival_ms)
    }

    fn pop(&mut self) -> Option<(u64, Generated)> {
        let from_ring = match (self.keys.peek(), self.delayed.peek()) {
            (Some(Reverse(key)), Some(Reverse(d))) => *key < (d.arrival_ms, d.seq),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if !from_ring {
            let Reverse(Delayed {
                arrival_ms, record, ..
            }) = self.delayed.pop()?;
            return Some((arrival_ms, record));
        }
        let Reverse((arrival_ms, seq)) = self.keys.pop()?;
        let index = usize::try_from(seq.wrapping_sub(self.first_seq)).ok()?;
        let record = self.slots.get_mut(index)?.take()?;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first_seq = self.first_seq.wrapping_add(1);
        }
        Some((arrival_ms, record))
    }

    fn len(&self) -> usize {
        self.keys.len() + self.delayed.len()
    }
}

/// The records of one symbol in generation (event) order: the trade process, then the
/// anomalies (extra and modified trades, taking ids from the consecutive sequence), then the
/// defects (dropped, held-back, repeated trades and broken lines), each layer drawing from
/// its own random stream.
#[derive(Clone, Debug)]
struct Sequencer {
    base: TradeGen,
    anomalies: Option<Box<Anomalies>>,
    defects: Option<Box<Defects>>,
    ready: VecDeque<Staged>,
    done: bool,
    /// What was injected, when asked for (see [`SymbolStream::record_truth`]).
    truth: Option<Vec<Injection>>,
}

impl Sequencer {
    fn new(params: &StreamParams) -> Sequencer {
        let base = TradeGen::new(params);
        let anomalies = (params.anomalies > 0.0).then(|| Box::new(Anomalies::new(params, &base)));
        let defects = (params.defects > 0.0).then(|| Box::new(Defects::new(params)));
        Sequencer {
            base,
            anomalies,
            defects,
            ready: VecDeque::new(),
            done: false,
            truth: None,
        }
    }

    fn injects(&self) -> bool {
        self.anomalies.is_some() || self.defects.is_some()
    }

    fn next(&mut self) -> Option<Staged> {
        if !self.injects() {
            // The plain market, straight through.
            return self.base.next_trade().map(|Arrival { arrival_ms, trade }| {
                Staged::trade(trade.time_ms, arrival_ms, trade)
            });
        }
        loop {
            if let Some(staged) = self.ready.pop_front() {
                return Some(staged);
            }
            if self.done {
                return None;
            }
            let tagged = match &mut self.anomalies {
                None => self
                    .base
                    .next_trade()
                    .map(|Arrival { arrival_ms, trade }| Tagged {
                        arrival_ms,
                        trade,
                        anomalous: false,
                    }),
                Some(anomalies) => anomalies.next(&mut self.base, &mut self.truth),
            };
            let remaining = self.base.remaining;
            match (tagged, &mut self.defects) {
                (Some(tagged), None) => self.ready.push_back(Staged::trade(
                    tagged.trade.time_ms,
                    tagged.arrival_ms,
                    tagged.trade,
                )),
                (Some(tagged), Some(defects)) => {
                    defects.process(tagged, remaining, &mut self.ready, &mut self.truth)
                }
                (None, defects) => {
                    self.done = true;
                    if let Some(defects) = defects {
                        defects.finish(&mut self.ready, &mut self.truth);
                    }
                }
            }
        }
    }
}

/// One symbol's stream, a partition of the generated market: records in arrival order.
///
/// Arrival is event time plus an i.i.d. delay in `[0, max_delay_ms]`. Records are generated
/// in event-time order into a small reorder buffer and released in `(arrival, sequence)`
/// order as soon as no later-generated record can arrive earlier; so within a stream the
/// event time of a trade is never more than `max_delay_ms` below the largest event time
/// released before it — injected late and duplicate trades excepted, which is their point.
///
/// As an [`Iterator`] it yields the trades (the raw lines of injected defects are skipped
/// but counted in [`SymbolStream::position`]); [`SymbolStream::next_record`] yields every
/// record.
#[derive(Clone, Debug)]
pub struct SymbolStream {
    index: usize,
    /// The state at position 0, to rewind [`SymbolStream::skip_to`].
    initial: Box<Sequencer>,
    generator: Sequencer,
    /// The next record in generation order, not yet buffered: every later record has an
    /// order time (hence an arrival) at least its order time.
    lookahead: Option<Staged>,
    buffer: ReorderBuffer,
    position: u64,
}

impl SymbolStream {
    pub(crate) fn new(params: &StreamParams) -> SymbolStream {
        let generator = Sequencer::new(params);
        let mut stream = SymbolStream {
            index: params.index,
            initial: Box::new(generator.clone()),
            generator,
            lookahead: None,
            buffer: ReorderBuffer::default(),
            position: 0,
        };
        stream.lookahead = stream.generator.next();
        stream.settle();
        stream
    }

    /// Generates until the head of the buffer is final (or the stream is exhausted): the
    /// invariant that makes [`SymbolStream::peek_arrival_ms`] exact.
    fn settle(&mut self) {
        while let Some(next) = self.lookahead.take() {
            if let Some(head_arrival_ms) = self.buffer.peek_arrival_ms() {
                // Every record not yet generated has an order time ≥ next's, and an arrival
                // at least that, and a larger sequence number: the head is final.
                if head_arrival_ms <= next.order_ms {
                    self.lookahead = Some(next);
                    return;
                }
            }
            self.buffer.push(next);
            self.lookahead = self.generator.next();
        }
    }

    /// The traded symbol.
    pub fn symbol(&self) -> Symbol {
        self.generator.base.symbol
    }

    /// The partition index (the symbol's place in the config's symbol list).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Records produced so far (trades and raw lines): the offset to resume from.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Arrival time of the next record; `None` once the stream is finished.
    pub fn peek_arrival_ms(&self) -> Option<u64> {
        self.buffer.peek_arrival_ms()
    }

    /// Keeps what is injected from now on (from the start, if called first), for
    /// [`SymbolStream::take_truth`]. Off by default: an endless run must not accumulate it.
    pub fn record_truth(&mut self) {
        self.initial.truth.get_or_insert_with(Vec::new);
        if self.position == 0 {
            // Generation runs ahead of what was released: start over, recording.
            self.generator = (*self.initial).clone();
            self.buffer = ReorderBuffer::default();
            self.lookahead = self.generator.next();
            self.settle();
        } else {
            self.generator.truth.get_or_insert_with(Vec::new);
        }
    }

    /// The injections generated so far (complete for everything released so far; all of
    /// them once the stream is finished), in generation order, and forgets them.
    pub fn take_truth(&mut self) -> Vec<Injection> {
        self.generator
            .truth
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The next record with its arrival time.
    pub fn next_record(&mut self) -> Option<(u64, Generated)> {
        let head = self.buffer.pop()?;
        self.position += 1;
        self.settle();
        Some(head)
    }

    /// Moves to `position` (records already produced), deterministically: afterwards the
    /// stream yields exactly what it would have yielded after `position` calls of
    /// [`SymbolStream::next_record`]. Going backwards restarts from the beginning.
    /// O(position).
    pub fn skip_to(&mut self, position: u64) {
        if position < self.position {
            self.generator = (*self.initial).clone();
            self.buffer = ReorderBuffer::default();
            self.position = 0;
            self.lookahead = self.generator.next();
            self.settle();
        }
        while self.position < position && self.next_record().is_some() {}
    }
}

impl Iterator for SymbolStream {
    type Item = (u64, Trade);

    fn next(&mut self) -> Option<(u64, Trade)> {
        loop {
            if let (arrival, Generated::Trade(trade)) = self.next_record()? {
                return Some((arrival, trade));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.generator.base.remaining {
            Some(remaining) if !self.generator.injects() => {
                let left = remaining
                    .saturating_add(self.buffer.len() as u64)
                    .saturating_add(u64::from(self.lookahead.is_some()));
                let left = usize::try_from(left).unwrap_or(usize::MAX);
                (left, Some(left))
            }
            Some(_) => (0, None),
            None => (usize::MAX, None),
        }
    }
}
