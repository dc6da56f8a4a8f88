//! Data quality: exact deduplication, trade-id gaps, and a quality row per symbol and window.
//!
//! ```text
//!  source trades (Sourced, at coarsened event time) ─┐  Exchange by symbol   ┌─▶ trades, each once
//!                                                    ├──▶ [Quality] ─────────┼─▶ rejects (+ duplicate)
//!  source rejects (at their partition's clock)   ────┘                       └─▶ quality rows
//! ```
//!
//! **Times.** Everything is decided per timely time `X`, in time order, once the input
//! frontier has passed `X`: an on-time trade travels at its coarsened event time, a refused
//! record at the coarsened clock its partition had reached when it arrived (see
//! [`RejectRow`]). Both depend only on the input, so every decision below does too, whatever
//! the workers, processes, partitions or restarts. A refused record that carries no trade is
//! the exception: nothing about it depends on the other records of its time, so it is
//! counted and passed on as it comes, and a flood of them never waits for a frontier.
//!
//! **Dedup horizon `H`.** A trade `(symbol, id)` is remembered from the time it is seen until
//! `coarsen(event time) + H` ("its settle time"). A copy seen at a time before that is a
//! *duplicate*: dropped, with a `rejects` row of reason `duplicate` (so input records =
//! contributions + rejects still holds); it is *conflicting* as well when its price,
//! quantity, time, side or accounts differ from the copy kept. Among copies on time at the
//! same time the one with the least content hash survives (the same whatever the
//! partitioning), then the least `(partition, offset)`; a copy that arrives late never
//! replaces one already counted. A late record whose settle time has already passed is
//! counted late and not remembered.
//!
//! **Gaps.** Trade ids are consecutive per symbol on Binance. At its settle time each id is
//! compared with the greatest id settled before it: the ids in between are missing. An id
//! that settles later below the greatest fills its place; `H/2` after they were found, the
//! ids still missing count one gap each. Ids that settle together are taken in ascending
//! order. A late record within the horizon settles with its neighbours
//! and so fills its gap; one that arrives even later is late, and its id was a gap. A refused
//! record whose symbol and id can still be read (a negative price, say) was received too: its
//! id settles `H` after its arrival and is no gap.
//!
//! **Windows.** Quality rows are per symbol and window of the largest configured size,
//! final when the frontier passes the window's end. A record counts in the window of the
//! time it is decided at: an on-time trade in its own window, a late, duplicate or unreadable
//! record in the window of its partition's clock on arrival (always still open), a gap in
//! the window of its confirmation time (`1.5 H` after the event time of the id after it). Records without a readable symbol count under the
//! empty symbol. Summed over all rows, each count equals the number of such records in the
//! input. `score = valid / (total + gap)` (1 when both are 0).

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use tickflow_operators::hash::stable_hash;
use tickflow_operators::model::{Symbol, Trade};
use tickflow_operators::schema::{tables, Row, Value};
use tickflow_operators::source::{now_ms, trade_line, Horizon, RejectRow, Sourced};
use tickflow_operators::window::{parse_duration, Windows};

/// The `rejects` reason of a dropped copy.
pub const DUPLICATE: &str = "duplicate";

/// In the `detail` of a duplicate, what marks a copy that was late too.
const LATE_COPY: &str = " (and late: ";

/// Whether a `rejects` row of the quality dataflow's output is a copy it dropped: `Some(true)`
/// for a late copy (which the source counted as late), `Some(false)` for a copy on time (which
/// the source passed on as a trade), `None` for any other row.
pub fn dropped_copy(row: &RejectRow) -> Option<bool> {
    (row.reason == DUPLICATE).then(|| row.detail.contains(LATE_COPY))
}

/// The quality settings (`[quality]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// Deduplicate, count gaps and write `quality` rows (default true). Off, trades pass
    /// through as they come, duplicates included.
    pub enabled: bool,
    /// How long a trade id is remembered after its event time (default 3 minutes), as a
    /// duration such as `"90s"` or `"5m"`.
    #[serde(deserialize_with = "duration_ms")]
    pub dedup_horizon: u64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            enabled: true,
            dedup_horizon: DEFAULT_DEDUP_HORIZON_MS,
        }
    }
}

/// The default dedup horizon: 3 minutes.
pub const DEFAULT_DEDUP_HORIZON_MS: u64 = 180_000;

fn duration_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// The event-time history the quality dataflow needs re-read after a restart: remembered ids
/// reach `H` back from any open window, and gap counting needs the ids settled before those.
pub fn horizon(config: &QualityConfig, windows: &Windows) -> Horizon {
    if !config.enabled {
        return Horizon::default();
    }
    Horizon {
        windows: vec![largest(windows)],
        history_ms: 3 * config.dedup_horizon + largest(windows),
    }
}

fn largest(windows: &Windows) -> u64 {
    windows.sizes().last().copied().unwrap_or(1)
}

/// Counts of one symbol in one window: a row of `quality`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct QualityRow {
    /// The symbol; empty for records without a readable one.
    pub symbol: String,
    /// Window size, ms.
    pub window_ms: u64,
    /// Window start, ms since the epoch.
    pub start_ms: u64,
    /// Every record counted here: valid + malformed + invalid + duplicate + late.
    pub total: u64,
    /// Trades that contributed to the aggregates.
    pub valid: u64,
    /// Records that cannot be read as a trade (bad JSON or CSV, missing fields, lost ranges).
    pub malformed: u64,
    /// Readable records with an impossible value (zero, negative, non-numeric, too precise,
    /// bad names, times far ahead).
    pub invalid: u64,
    /// Dropped copies of a trade already counted.
    pub duplicate: u64,
    /// Of those, copies that differ from the one kept.
    pub conflicting: u64,
    /// Records older than the watermark (not duplicates).
    pub late: u64,
    /// Trade ids missing between consecutive received ids.
    pub gap: u64,
}

impl QualityRow {
    /// `valid / (total + gap)`, 1 when nothing was expected.
    pub fn score(&self) -> f64 {
        let expected = self.total + self.gap;
        if expected == 0 {
            1.0
        } else {
            self.valid as f64 / expected as f64
        }
    }
}

impl From<QualityRow> for Row {
    fn from(q: QualityRow) -> Row {
        let score = format!("{:.6}", q.score());
        Row {
            table: tables::QUALITY.id(),
            values: vec![
                Value::Text(q.symbol),
                q.window_ms.into(),
                q.start_ms.into(),
                q.total.into(),
                q.valid.into(),
                q.malformed.into(),
                q.invalid.into(),
                q.duplicate.into(),
                q.conflicting.into(),
                q.late.into(),
                q.gap.into(),
                Value::Decimal(score),
            ],
        }
    }
}

/// The quality column a `rejects` reason counts in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// Cannot be read as a trade.
    Malformed,
    /// Readable, with an impossible value.
    Invalid,
    /// Older than the watermark.
    Late,
    /// A copy of a trade already counted.
    Duplicate,
}

impl Class {
    /// The column of a `rejects` reason code (see the parser's `RejectReason::CODES`).
    pub fn of(reason: &str) -> Class {
        match reason {
            "late" => Class::Late,
            DUPLICATE => Class::Duplicate,
            "line_too_long" | "invalid_utf8" | "malformed_json" | "missing_field"
            | "duplicate_field" | "wrong_type" | "column_count" | "data_loss" => Class::Malformed,
            _ => Class::Invalid,
        }
    }
}

/// What the quality dataflow produces.
#[derive(Debug)]
pub struct QualityStreams<'scope> {
    /// Every distinct trade once, at its coarsened event time.
    pub trades: Stream<'scope, u64, Vec<Trade>>,
    /// The same trades, only those that name both accounts: what the account rules judge.
    /// A public feed names none, so nothing is copied for rules that have nothing to judge.
    pub with_accounts: Stream<'scope, u64, Vec<Trade>>,
    /// The source's rejects, late copies relabelled `duplicate`, plus the dropped copies.
    pub rejects: Stream<'scope, u64, Vec<RejectRow>>,
    /// One row per symbol and window with records or gaps, final.
    pub quality: Stream<'scope, u64, Vec<QualityRow>>,
}

/// Hash of everything a copy of a trade may disagree on (no allocation: this runs per trade).
fn content(trade: &Trade) -> u64 {
    let mut bytes = [0u8; 80];
    bytes[..8].copy_from_slice(&trade.price.0.to_le_bytes());
    bytes[8..16].copy_from_slice(&trade.qty.0.to_le_bytes());
    bytes[16..24].copy_from_slice(&trade.time_ms.to_le_bytes());
    bytes[24] = u8::from(trade.buyer_maker);
    let mut at = 25;
    for account in [&trade.buyer, &trade.seller] {
        // Length-prefixed, 0xff for none: no two different pairs give the same bytes.
        let name = account.as_ref().map(|a| a.as_str().as_bytes());
        bytes[at] = name.map_or(0xff, |n| n.len() as u8);
        at += 1;
        if let Some(name) = name {
            bytes[at..at + name.len()].copy_from_slice(name);
            at += name.len();
        }
    }
    stable_hash(&bytes[..at])
}

/// A remembered trade id: the content hash of the copy kept, and the time it was decided at.
#[derive(Clone, Copy, Debug)]
struct Seen {
    content: u64,
    time: u64,
}

/// The trade ids of one symbol remembered for dedup.
///
/// Ids are consecutive on every venue that numbers trades, and are forgotten in about the
/// order they were seen: a ring of slots indexed by `id − base` holds them with sequential
/// memory access and 16 bytes an id. Ids far from that dense range (another numbering, a
/// hostile input) go to a hash map, so no input can make the ring large.
#[derive(Debug, Default)]
struct IdSet {
    base: u64,
    slots: VecDeque<Option<Seen>>,
    sparse: FxHashMap<u64, Seen>,
}

/// How far past the end of the ring an id may be and still extend it.
const RING_STRIDE: u64 = 4_096;

impl IdSet {
    /// The ring slot of `id`, if the ring spans it.
    fn slot(&self, id: u64) -> Option<usize> {
        id.checked_sub(self.base)
            .filter(|&at| at < self.slots.len() as u64)
            .map(|at| at as usize)
    }

    // An id is in the ring or in the map, never both; the ring may come to span an id the
    // map holds (it moves), so a miss in the ring still looks in the map.
    fn get(&self, id: u64) -> Option<Seen> {
        match self.slot(id).and_then(|at| self.slots[at]) {
            Some(seen) => Some(seen),
            None => self.sparse.get(&id).copied(),
        }
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Seen> {
        match self.slot(id) {
            Some(at) if self.slots[at].is_some() => self.slots[at].as_mut(),
            _ => self.sparse.get_mut(&id),
        }
    }

    fn insert(&mut self, id: u64, seen: Seen) {
        if let Some(held) = self.sparse.get_mut(&id) {
            *held = seen;
            return;
        }
        if self.slots.is_empty() {
            self.base = id;
        }
        match id.checked_sub(self.base) {
            Some(at) if at < self.slots.len() as u64 + RING_STRIDE => {
                let at = at as usize;
                if at == self.slots.len() {
                    // The next id: the usual case.
                    self.slots.push_back(Some(seen));
                } else {
                    if at > self.slots.len() {
                        self.slots.resize(at + 1, None);
                    }
                    self.slots[at] = Some(seen);
                }
            }
            _ => {
                self.sparse.insert(id, seen);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        match self.slot(id) {
            Some(at) if self.slots[at].is_some() => {
                self.slots[at] = None;
                while let Some(None) = self.slots.front() {
                    self.slots.pop_front();
                    self.base += 1;
                }
            }
            _ => {
                self.sparse.remove(&id);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.sparse.is_empty()
    }

    fn shrink(&mut self) {
        self.slots.shrink_to_fit();
        self.sparse.shrink_to(0);
    }
}

/// Counts of one symbol in one window, until its row goes out.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    valid: u64,
    malformed: u64,
    invalid: u64,
    duplicate: u64,
    conflicting: u64,
    late: u64,
    gap: u64,
}

#[derive(Default, Debug)]
struct SymbolState {
    seen: IdSet,
    /// Ids to settle by settle time.
    pending: BTreeMap<u64, Runs>,
    /// Ids kept at the time being decided, to settle a horizon later.
    fresh: Vec<u64>,
    /// Greatest settled id.
    last: Option<u64>,
    /// Ids found missing and not yet confirmed as gaps: ranges `lo → hi`, inclusive.
    missing: BTreeMap<u64, u64>,
}

/// Ids to settle at one time, as runs of consecutive ids, each with whether its ids are
/// remembered in `seen`. The ids a symbol keeps at one time mostly follow each other, so a
/// run or two holds what would otherwise take 16 bytes an id.
#[derive(Default, Debug)]
struct Runs(Vec<Run>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Run {
    lo: u64,
    hi: u64,
    remembered: bool,
}

impl Runs {
    fn push(&mut self, id: u64, remembered: bool) {
        match self.0.last_mut() {
            Some(run) if run.remembered == remembered && run.hi.checked_add(1) == Some(id) => {
                run.hi = id;
            }
            _ => self.0.push(Run {
                lo: id,
                hi: id,
                remembered,
            }),
        }
    }

    /// Each id with whether it is remembered, by ascending start of its run: an id above
    /// every one before it comes in ascending order, and an id met again (in runs that
    /// overlap, which only a hostile input makes) comes after the first.
    fn into_ids(mut self) -> impl Iterator<Item = (u64, bool)> {
        self.0.sort_unstable();
        self.0
            .into_iter()
            .flat_map(|run| (run.lo..=run.hi).map(move |id| (id, run.remembered)))
    }
}

#[derive(Default, Debug)]
struct Pending {
    /// Batches as they came (moved, not copied).
    trades: Vec<Vec<Sourced>>,
    rejects: Vec<RejectRow>,
}

/// One worker's share of the quality dataflow: the symbols routed to it.
struct State {
    source: String,
    horizon: u64,
    grace: u64,
    granule: u64,
    size: u64,
    symbols: FxHashMap<Symbol, SymbolState>,
    /// Symbols with ids to settle, by settle time.
    settle: BTreeMap<u64, Vec<Symbol>>,
    /// Missing ranges to confirm as gaps, by confirmation time.
    confirm: BTreeMap<u64, Vec<(Symbol, u64, u64)>>,
    /// Counts by window start, then symbol (the empty symbol for records without one).
    counts: BTreeMap<u64, FxHashMap<Symbol, Counts>>,
}

type Out<D> = timely::dataflow::channels::pushers::Output<u64, Vec<D>>;

/// Deduplicates trades, classifies rejects and counts quality per symbol and window.
///
/// With `config.enabled == false` the trades pass through (without their positions) and the
/// rejects unchanged, and there are no quality rows. `source` names the source in the
/// `rejects` rows of dropped copies.
pub fn quality<'scope>(
    trades: Stream<'scope, u64, Vec<Sourced>>,
    rejects: Stream<'scope, u64, Vec<RejectRow>>,
    source: &str,
    config: &QualityConfig,
    windows: &Windows,
) -> QualityStreams<'scope> {
    use timely::dataflow::operators::vec::{Filter, Map};
    if !config.enabled {
        let quality = timely::dataflow::operators::generic::operator::empty(trades.scope());
        let trades = trades.map(|s| s.trade);
        return QualityStreams {
            with_accounts: trades.clone().filter(names_accounts),
            trades,
            rejects,
            quality,
        };
    }
    let mut state = State {
        source: source.to_owned(),
        horizon: config.dedup_horizon,
        grace: (config.dedup_horizon / 2).max(1),
        granule: windows.granule(),
        size: largest(windows),
        symbols: FxHashMap::default(),
        settle: BTreeMap::new(),
        confirm: BTreeMap::new(),
        counts: BTreeMap::new(),
    };

    let mut builder = OperatorBuilder::new("Quality".to_owned(), trades.scope());
    let mut trades_in = builder.new_input(
        trades,
        Exchange::new(|s: &Sourced| s.trade.symbol.stable_hash()),
    );
    let mut rejects_in = builder.new_input(
        rejects,
        Exchange::new(|r: &RejectRow| r.symbol.map_or(EMPTY_HASH, |s| s.stable_hash())),
    );
    let (mut trades_out, trades) = builder.new_output::<Vec<Trade>>();
    let (mut rejects_out, rejects) = builder.new_output::<Vec<RejectRow>>();
    let (mut quality_out, quality) = builder.new_output::<Vec<QualityRow>>();
    let (mut accounts_out, with_accounts) = builder.new_output::<Vec<Trade>>();

    builder.build(move |capabilities| {
        // One capability per output, all at the same time: the least of the input frontier,
        // the times stashed, the settle and confirmation times pending and the last ms of
        // windows with counts (where their rows go out). Nothing is emitted before it.
        let mut caps: Option<Vec<Capability<u64>>> = Some(capabilities);
        let mut stash: BTreeMap<u64, Pending> = BTreeMap::new();
        move |frontiers| {
            trades_in.for_each_stamp(|cap, batches| {
                let Some(&time) = cap.least() else { return };
                let pending = stash.entry(time).or_default();
                for batch in batches {
                    pending.trades.push(std::mem::take(batch));
                }
            });
            let Some(held) = caps.as_mut() else {
                rejects_in.for_each_stamp(|_, _| {});
                return;
            };
            rejects_in.for_each_stamp(|cap, batches| {
                let Some(&time) = cap.least() else { return };
                // A refused record without a trade is decided as it comes: its counts and
                // gap bookkeeping depend on nothing else at its time, and its row must not
                // wait for a frontier that a flood of such records never moves. A late
                // trade waits for its time, to be checked against the ids kept by then.
                let mut forward = Vec::new();
                for batch in batches {
                    for reject in batch.drain(..) {
                        if reject.trade.is_some() {
                            stash.entry(time).or_default().rejects.push(reject);
                        } else {
                            state.refuse(time, &reject);
                            forward.push(reject);
                        }
                    }
                }
                if !forward.is_empty() {
                    // `held` is at most the input frontier, which is at most `time`.
                    rejects_out
                        .activate()
                        .give(&held[1].delayed(&time), &mut forward);
                }
            });
            // The least time any input may still bring (`None`: the inputs are done).
            let frontier = frontiers
                .iter()
                .filter_map(|f| f.frontier().first().copied())
                .min();
            let closed = |time: u64| frontier.is_none_or(|f| time < f);
            loop {
                // The next time to decide: stashed input, a settle or a confirmation time.
                let next = [
                    stash.keys().next(),
                    state.settle.keys().next(),
                    state.confirm.keys().next(),
                ]
                .into_iter()
                .flatten()
                .copied()
                .min();
                let Some(time) = next.filter(|&t| closed(t)) else {
                    break;
                };
                // Rows of windows that end at or before `time` are final.
                state.emit_rows(time, &held[2], &mut quality_out);
                state.settle_at(time);
                state.confirm_at(time);
                if let Some(pending) = stash.remove(&time) {
                    let (mut kept, mut refused) = state.decide(time, pending);
                    let mut named: Vec<Trade> =
                        kept.iter().filter(|t| names_accounts(t)).cloned().collect();
                    if !named.is_empty() {
                        accounts_out
                            .activate()
                            .give(&held[3].delayed(&time), &mut named);
                    }
                    if !kept.is_empty() {
                        trades_out
                            .activate()
                            .give(&held[0].delayed(&time), &mut kept);
                    }
                    if !refused.is_empty() {
                        rejects_out
                            .activate()
                            .give(&held[1].delayed(&time), &mut refused);
                    }
                }
            }
            state.emit_rows(frontier.unwrap_or(u64::MAX), &held[2], &mut quality_out);
            let least = [
                frontier,
                stash.keys().next().copied(),
                state.settle.keys().next().copied(),
                state.confirm.keys().next().copied(),
                state
                    .counts
                    .keys()
                    .next()
                    .map(|&start| state.end(start) - 1),
            ]
            .into_iter()
            .flatten()
            .min();
            match least {
                Some(least) => {
                    for cap in held.iter_mut() {
                        if *cap.time() < least {
                            cap.downgrade(&least);
                        }
                    }
                }
                None => caps = None,
            }
        }
    });

    QualityStreams {
        trades,
        with_accounts,
        rejects,
        quality,
    }
}

/// Whether a trade names both accounts, as every account rule needs.
fn names_accounts(trade: &Trade) -> bool {
    trade.buyer.is_some() && trade.seller.is_some()
}

/// The greatest time a quality row can start at: the largest timestamp SQL's BIGINT holds.
const LAST_MS: u64 = i64::MAX as u64;

/// The routing hash of records without a symbol.
const EMPTY_HASH: u64 = 0x2d06_8005_38d3_94c2;

impl State {
    /// The start of the window `time` counts in. Times beyond any event time (a file chunk
    /// without one readable trade has no clock, and its refused lines travel at the end of
    /// time) count in the last window a timestamp column holds.
    fn window(&self, time: u64) -> u64 {
        let time = time.min(LAST_MS);
        time - time % self.size
    }

    /// Where the window starting at `start` ends: the last window only when the input
    /// does, since records at the end of time still come after its own end.
    fn end(&self, start: u64) -> u64 {
        if start == self.window(LAST_MS) {
            u64::MAX
        } else {
            start + self.size
        }
    }

    fn counts(&mut self, time: u64, symbol: Option<Symbol>) -> &mut Counts {
        let window = self.window(time);
        let symbol = symbol.unwrap_or_else(empty_symbol);
        self.counts
            .entry(window)
            .or_default()
            .entry(symbol)
            .or_default()
    }

    /// Emits the rows of windows that end at or before `bound`, at the window's last ms (the
    /// capability is held at or before it while the window has counts).
    fn emit_rows(&mut self, bound: u64, cap: &Capability<u64>, out: &mut Out<QualityRow>) {
        while let Some((&start, _)) = self.counts.first_key_value() {
            let end = self.end(start);
            if end > bound {
                break;
            }
            let Some(entry) = self.counts.first_entry() else {
                break;
            };
            let size = self.size;
            let mut rows: Vec<QualityRow> = entry
                .remove()
                .into_iter()
                .map(|(symbol, c)| QualityRow {
                    symbol: symbol.as_str().to_owned(),
                    window_ms: size,
                    start_ms: start,
                    total: c.valid + c.malformed + c.invalid + c.duplicate + c.late,
                    valid: c.valid,
                    malformed: c.malformed,
                    invalid: c.invalid,
                    duplicate: c.duplicate,
                    conflicting: c.conflicting,
                    late: c.late,
                    gap: c.gap,
                })
                .collect();
            let at = (end - 1).max(*cap.time());
            out.activate().give(&cap.delayed(&at), &mut rows);
        }
    }

    /// Forgets the ids whose settle time has come and finds the ids missing before them, to
    /// be confirmed as gaps `grace` later unless filled meanwhile. An id below the greatest
    /// settled one fills its place in a range still unconfirmed.
    fn settle_at(&mut self, time: u64) {
        let Some(mut due) = self.settle.remove(&time) else {
            return;
        };
        due.sort_unstable_by_key(|s| s.stable_hash());
        due.dedup();
        let mut found = Vec::new();
        for symbol in due {
            let Some(state) = self.symbols.get_mut(&symbol) else {
                continue;
            };
            let Some(ids) = state.pending.remove(&time) else {
                continue;
            };
            for (id, remembered) in ids.into_ids() {
                if remembered {
                    state.seen.remove(id);
                }
                match state.last {
                    None => state.last = Some(id),
                    Some(last) if id > last => {
                        if id > last + 1 {
                            state.missing.insert(last + 1, id - 1);
                            found.push((symbol, last + 1, id - 1));
                        }
                        state.last = Some(id);
                    }
                    Some(_) => fill(&mut state.missing, id),
                }
            }
            if state.seen.is_empty() {
                // Keep `last`; the memory goes while the symbol is quiet.
                state.seen.shrink();
            }
        }
        if !found.is_empty() {
            self.confirm
                .entry(time.saturating_add(self.grace))
                .or_default()
                .extend(found);
        }
    }

    /// Counts the ids of the ranges due now that are still missing, one gap each.
    fn confirm_at(&mut self, time: u64) {
        let Some(ranges) = self.confirm.remove(&time) else {
            return;
        };
        for (symbol, lo, hi) in ranges {
            let Some(state) = self.symbols.get_mut(&symbol) else {
                continue;
            };
            let inside: Vec<(u64, u64)> = state
                .missing
                .range(lo..=hi)
                .map(|(&l, &h)| (l, h))
                .collect();
            let mut gaps = 0;
            for (l, h) in inside {
                state.missing.remove(&l);
                gaps += h - l + 1;
            }
            if gaps > 0 {
                self.counts(time, Some(symbol)).gap += gaps;
            }
        }
    }

    /// Remembers `id` of `symbol` for settling at `at`.
    fn pend(&mut self, symbol: Symbol, id: u64, remembered: bool, at: u64) {
        if let Some(state) = self.symbols.get_mut(&symbol) {
            state.pending.entry(at).or_default().push(id, remembered);
            self.settle.entry(at).or_default().push(symbol);
        }
    }

    /// Counts a refused record without a trade, at its partition's clock `time`. One whose
    /// symbol and id can be read was received: its id is no gap (it settles a horizon after
    /// its arrival, and is not remembered for dedup).
    fn refuse(&mut self, time: u64, reject: &RejectRow) {
        if let (Some(symbol), Some(id)) = (reject.symbol, reject.id) {
            self.symbols.entry(symbol).or_default();
            self.pend(symbol, id, false, time.saturating_add(self.horizon));
        }
        let counted = self.counts(time, reject.symbol);
        match Class::of(&reject.reason) {
            Class::Malformed => counted.malformed += 1,
            Class::Invalid => counted.invalid += 1,
            Class::Late => counted.late += 1,
            Class::Duplicate => counted.duplicate += 1,
        }
    }

    /// Decides the records of one time: the trades kept, and the rejects (the source's, late
    /// copies relabelled, and the copies dropped).
    fn decide(&mut self, time: u64, pending: Pending) -> (Vec<Trade>, Vec<RejectRow>) {
        let settles = time.saturating_add(self.horizon);
        let count = pending.trades.iter().map(Vec::len).sum();
        // The trades kept, and where each was read (to compare with a later copy).
        let mut kept: Vec<Trade> = Vec::with_capacity(count);
        let mut positions: Vec<(u32, u64)> = Vec::with_capacity(count);
        let mut dropped: Vec<Sourced> = Vec::new();
        // Where each kept trade sits in `kept`: built only once a second copy on time at
        // this same time shows up (rare), to compare the two.
        let mut index: Option<FxHashMap<(Symbol, u64), usize>> = None;
        let mut touched: Vec<Symbol> = Vec::new();
        let window = self.window(time);
        let counts = self.counts.entry(window).or_default();
        for sourced in pending.trades.into_iter().flatten() {
            let trade = &sourced.trade;
            let state = self.symbols.entry(trade.symbol).or_default();
            let hash = content(trade);
            match state.seen.get_mut(trade.id) {
                None => {
                    state.seen.insert(
                        trade.id,
                        Seen {
                            content: hash,
                            time,
                        },
                    );
                    if state.fresh.is_empty() {
                        touched.push(trade.symbol);
                    }
                    state.fresh.push(trade.id);
                    if let Some(index) = index.as_mut() {
                        index.insert((trade.symbol, trade.id), kept.len());
                    }
                    kept.push(sourced.trade);
                    positions.push((sourced.partition, sourced.offset));
                }
                Some(seen) if seen.time == time => {
                    // Two copies on time at the same time: the least (content, position) is
                    // kept, whatever the order they came in.
                    let index = index.get_or_insert_with(|| {
                        kept.iter()
                            .enumerate()
                            .map(|(i, t)| ((t.symbol, t.id), i))
                            .collect()
                    });
                    let at = index[&(trade.symbol, trade.id)];
                    let (partition, offset) = positions[at];
                    if (hash, sourced.partition, sourced.offset) < (seen.content, partition, offset)
                    {
                        seen.content = hash;
                        dropped.push(Sourced {
                            trade: std::mem::replace(&mut kept[at], sourced.trade),
                            partition,
                            offset,
                        });
                        positions[at] = (sourced.partition, sourced.offset);
                    } else {
                        dropped.push(sourced);
                    }
                }
                Some(_) => dropped.push(sourced),
            }
        }
        for symbol in touched {
            if let Some(state) = self.symbols.get_mut(&symbol) {
                counts.entry(symbol).or_default().valid += state.fresh.len() as u64;
                // Ascending, so that ids from several partitions make one run.
                state.fresh.sort_unstable();
                let runs = state.pending.entry(settles).or_default();
                for id in state.fresh.drain(..) {
                    runs.push(id, true);
                }
                self.settle.entry(settles).or_default().push(symbol);
            }
        }
        let mut rejects: Vec<RejectRow> = Vec::with_capacity(pending.rejects.len() + dropped.len());
        let received_ms = now_ms();
        for copy in dropped {
            let conflicting = self
                .symbols
                .get(&copy.trade.symbol)
                .and_then(|s| s.seen.get(copy.trade.id))
                .is_some_and(|seen| seen.content != content(&copy.trade));
            let counted = self.counts(time, Some(copy.trade.symbol));
            counted.duplicate += 1;
            counted.conflicting += u64::from(conflicting);
            rejects.push(RejectRow {
                source: self.source.clone(),
                partition: copy.partition,
                offset: copy.offset,
                received_ms,
                reason: DUPLICATE.to_owned(),
                detail: duplicate_detail(conflicting, copy.trade.id),
                raw: trade_line(&copy.trade),
                symbol: Some(copy.trade.symbol),
                trade: None,
                id: Some(copy.trade.id),
            });
        }
        // Then the refused records, in a deterministic order: late trades are checked against
        // the ids remembered, the others are counted by their reason.
        let mut refused = pending.rejects;
        refused.sort_by(|a, b| {
            (a.partition, a.offset, &a.source).cmp(&(b.partition, b.offset, &b.source))
        });
        for mut reject in refused {
            match reject.trade.take() {
                Some(trade) => {
                    let own =
                        (trade.time_ms - trade.time_ms % self.granule).saturating_add(self.horizon);
                    let hash = content(&trade);
                    let state = self.symbols.entry(trade.symbol).or_default();
                    let copy_of = state.seen.get(trade.id).map(|seen| seen.content);
                    if own <= time {
                        // Beyond the horizon: late, and its id no longer fills a gap.
                        self.counts(time, Some(trade.symbol)).late += 1;
                    } else if let Some(kept) = copy_of {
                        let conflicting = kept != hash;
                        let counted = self.counts(time, Some(trade.symbol));
                        counted.duplicate += 1;
                        counted.conflicting += u64::from(conflicting);
                        reject.reason = DUPLICATE.to_owned();
                        reject.detail = format!(
                            "{}{LATE_COPY}{})",
                            duplicate_detail(conflicting, trade.id),
                            reject.detail
                        );
                    } else {
                        state.seen.insert(
                            trade.id,
                            Seen {
                                content: hash,
                                time,
                            },
                        );
                        self.counts(time, Some(trade.symbol)).late += 1;
                        self.pend(trade.symbol, trade.id, true, own);
                    }
                }
                None => self.refuse(time, &reject),
            }
            rejects.push(reject);
        }
        (kept, rejects)
    }
}

/// Takes `id` out of the missing range holding it, if any.
fn fill(missing: &mut BTreeMap<u64, u64>, id: u64) {
    if let Some((&lo, &hi)) = missing.range(..=id).next_back() {
        if hi >= id {
            missing.remove(&lo);
            if lo < id {
                missing.insert(lo, id - 1);
            }
            if id < hi {
                missing.insert(id + 1, hi);
            }
        }
    }
}

fn empty_symbol() -> Symbol {
    Symbol::new("").expect("the empty string fits")
}

fn duplicate_detail(conflicting: bool, id: u64) -> String {
    if conflicting {
        format!("a conflicting copy of trade {id}: it differs from the copy kept")
    } else {
        format!("a copy of trade {id}, already counted")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The ring with its sparse fallback is a map: the same as a `HashMap` under any
        /// inserts and removes, dense or scattered ids alike.
        #[test]
        fn id_set_is_a_map(ops in proptest::collection::vec((0u8..3, 0u64..20_000, any::<bool>()), 1..400)) {
            let mut set = IdSet::default();
            let mut reference: HashMap<u64, u64> = HashMap::new();
            for (op, small, far) in ops {
                let id = if far { small.wrapping_mul(0x9e37_79b9_7f4a_7c15) } else { 1_000_000 + small % 300 };
                match op {
                    0 => {
                        set.insert(id, Seen { content: small, time: 0 });
                        reference.insert(id, small);
                    }
                    1 => {
                        set.remove(id);
                        reference.remove(&id);
                    }
                    _ => {}
                }
                prop_assert_eq!(set.get(id).map(|s| s.content), reference.get(&id).copied());
                prop_assert!(set.slots.len() as u64 <= 300 + RING_STRIDE);
            }
            for (id, content) in &reference {
                prop_assert_eq!(set.get(*id).map(|s| s.content), Some(*content));
            }
        }

        /// Runs give back every id pushed, with its flag, ascending: the same as sorting the
        /// pairs, when no id is pushed twice; an id pushed twice comes back twice.
        #[test]
        fn runs_give_back_the_ids_in_order(
            pushed in proptest::collection::vec((0u64..64, any::<bool>()), 0..200),
            near_the_end in any::<bool>(),
        ) {
            // Ids near u64::MAX too: a run must not wrap.
            let base = if near_the_end { u64::MAX - 63 } else { 1_000 };
            let mut runs = Runs::default();
            for &(id, remembered) in &pushed {
                runs.push(base + id, remembered);
            }
            let back: Vec<(u64, bool)> = runs.into_ids().collect();
            let mut expected: Vec<(u64, bool)> =
                pushed.iter().map(|&(id, remembered)| (base + id, remembered)).collect();
            let mut sorted_back = back.clone();
            sorted_back.sort_unstable();
            expected.sort_unstable();
            prop_assert_eq!(sorted_back, expected);
            // Each id above all before it comes in ascending order.
            let firsts: Vec<u64> = back
                .iter()
                .scan(None, |max: &mut Option<u64>, &(id, _)| {
                    let new = max.is_none_or(|m| id > m);
                    if new {
                        *max = Some(id);
                    }
                    Some(new.then_some(id))
                })
                .flatten()
                .collect();
            let mut distinct: Vec<u64> = pushed.iter().map(|&(id, _)| base + id).collect();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(firsts, distinct);
        }
    }

    #[test]
    fn consecutive_ids_make_one_run() {
        let mut runs = Runs::default();
        for id in 10..1_010 {
            runs.push(id, true);
        }
        runs.push(2_000, true);
        runs.push(2_001, false);
        assert_eq!(runs.0.len(), 3);
    }
}
