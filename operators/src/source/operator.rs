//! The source operator shared by every connector.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use super::clock::{Clock, Verdict};
use super::{now_ms, PartitionProgress, RejectRow, Sourced};
use crate::model::{Candle, Trade};
use crate::parse::{id_hint, symbol_hint, Format, Record, RejectReason, MAX_LINE};
use crate::window::Windows;

/// One readable partition of a source.
pub trait Partition: 'static {
    /// Index of the partition within its source (the same in every run and process).
    fn index(&self) -> u32;
    /// Event time of the partition's first record, when it can be known without consuming
    /// anything; it starts the partition's watermark. `Some(u64::MAX)` means the partition
    /// holds no usable record at all.
    fn first_time(&mut self) -> Option<u64>;
    /// Reads at most `budget` records, handing each to `emit`.
    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(Item<'_>)) -> Poll;
    /// Offset of the next record to read.
    fn position(&self) -> u64;
    /// Why the partition stopped early, if it did (an I/O error, say).
    fn error(&self) -> Option<String> {
        None
    }
    /// Whether the partition is idle: caught up and quiet for a while. An idle partition's
    /// watermark follows the wall clock (minus the lateness) rather than its last record, so
    /// it does not hold windows open; when it has data again, records behind the source's
    /// capability are late.
    fn idle(&self) -> bool {
        false
    }
    /// What an idle partition's watermark follows: the wall clock minus the lateness (a live
    /// feed whose event time is wall time, such as Kafka), or else (`false`) the end of the
    /// shortest window holding its greatest event time, which closes the shortest windows of
    /// everything it has delivered.
    fn idle_follows_wall_clock(&self) -> bool {
        true
    }
    /// Told that the results up to `offset` are durably committed by the sink (for copies
    /// of progress kept elsewhere, such as Kafka's group offsets for monitoring tools).
    fn committed(&mut self, _offset: u64) {}
}

/// One record as a partition delivers it.
#[derive(Debug)]
pub enum Item<'a> {
    /// A raw line to parse, at byte `offset`.
    Line {
        /// Offset of the line's first byte.
        offset: u64,
        /// The line without its terminator (perhaps cut at [`MAX_RAW`]).
        bytes: &'a [u8],
        /// The line's true length, when longer than `bytes`.
        full_len: usize,
    },
    /// Records that can never be read: the offsets `offset..end` were deleted before this
    /// source read them (Kafka retention). Recorded as one `data_loss` reject at `offset`
    /// whose detail says what was lost, never skipped silently.
    Lost {
        /// The first lost offset.
        offset: u64,
        /// One past the last lost offset.
        end: u64,
        /// What happened, for the reject's detail.
        detail: &'a str,
    },
    /// An already structured trade (the generator).
    Trade {
        /// Sequence number within the partition.
        offset: u64,
        /// The trade.
        trade: Trade,
    },
}

/// What a partition can do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// More is available now.
    Ready,
    /// Nothing is due for this long (rate limiting, an empty stream).
    Pending(Duration),
    /// The partition is exhausted.
    Finished,
}

/// Settings shared by all partitions of a source.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// Source name as it appears in `rejects` and `source_offsets`.
    pub name: String,
    /// How lines are parsed.
    pub format: Format,
    /// Window sizes; their granule coarsens timestamps.
    pub windows: Windows,
    /// What the dataflows need re-read after a restart (to tell which reported offsets the
    /// sink has committed).
    pub horizon: crate::source::Horizon,
    /// Allowed lateness, ms.
    pub lateness_ms: u64,
    /// Most event time the source may run ahead of the committed frontier, ms.
    pub max_lag_ms: u64,
    /// Most bytes of uncommitted rejects this process's sources may have in flight before they
    /// pause for the sink, so that a flood of bad records is committed as it comes with
    /// bounded memory; `None` where the sink is not on this process (only process 0 writes,
    /// and the counter is per process).
    pub reject_backlog: Option<u64>,
    /// A trade further ahead of its partition's clock than this is held until later records
    /// confirm the jump (see [`super::clock`]), ms.
    pub max_time_jump_ms: u64,
    /// Records read per activation before yielding.
    pub budget: usize,
    /// Read the partitions one after another, in index order, instead of side by side:
    /// for the chunks of a file, which follow each other in event time.
    pub sequential: bool,
    /// Whether a stop (SIGINT) should leave open windows open for a later run to resume
    /// (Kafka), rather than end the input and close them (files, the generator).
    pub resumable: bool,
    /// Set to end the input early (SIGINT/SIGTERM): partitions are finished where they are.
    pub shutdown: Arc<AtomicBool>,
    /// Process-wide counters for progress reports.
    pub counters: Arc<Counters>,
    /// This worker's slot in `counters.watermarks`.
    pub slot: usize,
}

/// Process-wide counters, read by the progress reporter.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read.
    pub records: AtomicU64,
    /// Trades passed on.
    pub trades: AtomicU64,
    /// Records rejected (any reason).
    pub rejected: AtomicU64,
    /// Each local worker's capability (its watermark); `u64::MAX` once it has finished.
    pub watermarks: Vec<AtomicU64>,
    /// Each local worker's recent watermark advances: `(new watermark, wall-clock ms)`.
    passages: Vec<Mutex<VecDeque<(u64, u64)>>>,
    /// Per alert kind, the decision delays noted by [`Counters::note_decision`].
    decisions: Mutex<BTreeMap<&'static str, Vec<u64>>>,
    /// Bytes of reject rows sent to the sink and not yet committed (on the process that
    /// writes; see [`SourceConfig::reject_backlog`]).
    pub uncommitted_reject_bytes: AtomicU64,
}

impl Counters {
    /// Counters for `workers` local workers.
    pub fn new(workers: usize) -> Counters {
        Counters {
            watermarks: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            passages: (0..workers).map(|_| Mutex::default()).collect(),
            ..Counters::default()
        }
    }

    /// The lowest watermark of the local workers, if any is still running.
    pub fn watermark(&self) -> Option<u64> {
        self.watermarks
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .min()
            .filter(|&w| w != u64::MAX)
    }

    /// Notes that worker `slot`'s watermark advanced to `watermark` now.
    fn note_passage(&self, slot: usize, watermark: u64) {
        if let Some(log) = self.passages.get(slot) {
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            if log.len() == MAX_PASSAGES {
                log.pop_front();
            }
            log.push_back((watermark, now_ms()));
        }
    }

    /// The wall-clock time at which every local worker's watermark had passed event time
    /// `event_ms` (the dataflow's frontier was beyond it), if all of them have and it is
    /// still in the log.
    pub fn passed_at(&self, event_ms: u64) -> Option<u64> {
        let mut latest = None;
        for log in &self.passages {
            let log = log.lock().unwrap_or_else(PoisonError::into_inner);
            let at = log.partition_point(|&(watermark, _)| watermark <= event_ms);
            let &(_, wall) = log.get(at)?;
            latest = latest.max(Some(wall));
        }
        latest
    }

    /// Notes an alert of `kind` about event time `event_ms`, decided at `detected_ms`: its
    /// delay after the watermark passed that time (alerts older than the log are left out,
    /// and so is every alert of a kind after its first [`MAX_DECISIONS`]).
    pub fn note_decision(&self, kind: &'static str, event_ms: u64, detected_ms: u64) {
        if let Some(passed) = self.passed_at(event_ms) {
            let mut decisions = self
                .decisions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let delays = decisions.entry(kind).or_default();
            if delays.len() < MAX_DECISIONS {
                delays.push(detected_ms.saturating_sub(passed));
            }
        }
    }

    /// The delays noted by [`Counters::note_decision`], per kind.
    pub fn decisions(&self) -> BTreeMap<&'static str, Vec<u64>> {
        self.decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Watermark advances each worker keeps for [`Counters::passed_at`]: with the default
/// 100 ms granule, almost 3 hours of them.
const MAX_PASSAGES: usize = 100_000;

/// Decision delays kept per alert kind: memory stays bounded on a run of any length.
const MAX_DECISIONS: usize = 1_000_000;

/// Per-worker totals for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Records read.
    pub records: u64,
    /// Trades passed on to the dataflows.
    pub trades: u64,
    /// Candle rows passed on (candle CSV input).
    pub candles: u64,
    /// Records of other event types, by type: at most [`Tally::SKIPPED_KINDS`] names, the
    /// rest counted under `"other"`, so invented names cannot grow it.
    pub skipped: BTreeMap<String, u64>,
    /// Rejected records, by reason code.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Partitions that stopped on an error, with the error.
    pub errors: Vec<String>,
    /// Late records found to be copies of a trade already counted (rejected here as late,
    /// written as duplicates by the quality dataflow).
    pub late_copies: u64,
    /// Trades passed on here and then dropped as copies by the quality dataflow.
    pub dropped_copies: u64,
}

impl Tally {
    /// Most event-type names kept apart in [`Tally::skipped`].
    pub const SKIPPED_KINDS: usize = 32;

    /// Counts `n` skipped records of event type `kind`.
    pub fn skip(&mut self, kind: &str, n: u64) {
        if let Some(count) = self.skipped.get_mut(kind) {
            *count += n;
        } else if self.skipped.len() < Self::SKIPPED_KINDS {
            self.skipped.insert(kind.to_owned(), n);
        } else {
            *self.skipped.entry("other".to_owned()).or_default() += n;
        }
    }

    /// Adds another worker's totals.
    pub fn merge(&mut self, other: &Tally) {
        self.records += other.records;
        self.trades += other.trades;
        self.candles += other.candles;
        for (kind, n) in &other.skipped {
            self.skip(kind, *n);
        }
        for (reason, n) in &other.rejected {
            *self.rejected.entry(reason).or_default() += n;
        }
        self.errors.extend(other.errors.iter().cloned());
        self.late_copies += other.late_copies;
        self.dropped_copies += other.dropped_copies;
    }

    /// The totals as the tables hold them: copies out of the trades and the late records,
    /// counted as rejected duplicates (`reason` is their reason code).
    pub fn with_copies_rejected(&self, reason: &'static str) -> Tally {
        let mut t = self.clone();
        t.trades = t.trades.saturating_sub(t.dropped_copies);
        if let Some(late) = t.rejected.get_mut("late") {
            *late = late.saturating_sub(t.late_copies);
        }
        t.rejected.retain(|_, n| *n > 0);
        let copies = t.late_copies + t.dropped_copies;
        if copies > 0 {
            *t.rejected.entry(reason).or_default() += copies;
        }
        t.late_copies = 0;
        t.dropped_copies = 0;
        t
    }
}

/// The streams a source produces.
#[derive(Debug)]
pub struct SourceStreams<'scope> {
    /// Valid trades at their coarsened event time, with where each was read.
    pub trades: Stream<'scope, u64, Vec<Sourced>>,
    /// Candle rows read from a candle file.
    pub candles: Stream<'scope, u64, Vec<Candle>>,
    /// Records that could not be used, each at its partition's clock (see [`RejectRow`]).
    pub rejects: Stream<'scope, u64, Vec<RejectRow>>,
    /// Resume offsets of partitions.
    pub progress: Stream<'scope, u64, Vec<PartitionProgress>>,
}

/// Watermark state and resume bookkeeping of one partition.
struct Tracked<P> {
    partition: P,
    /// The partition's event-time clock, held records and resume points.
    clock: Clock,
    reported: Option<u64>,
    /// `(time, offset)` of reports not yet known to be committed.
    unconfirmed: VecDeque<(u64, u64)>,
    finished: bool,
}

impl<P: Partition> Tracked<P> {
    /// Offset and clock from which re-reading covers every record at or after `frontier`.
    fn resume_point(&self, frontier: u64) -> (u64, Option<u64>) {
        self.clock.resume_point(frontier, self.partition.position())
    }
}

/// Where one partition's records go during an activation: the staged output and the
/// totals, with what its `rejects` rows carry besides the record.
struct Deliver<'a> {
    staged: &'a mut Staged,
    local: &'a mut Tally,
    source: &'a str,
    format: &'a Format,
    partition: u32,
    received_ms: u64,
}

impl<'a> Deliver<'a> {
    /// Stages an accepted trade at its coarsened time.
    #[inline]
    fn trade(&mut self, time: u64, offset: u64, trade: Trade) {
        self.local.trades += 1;
        self.staged.trade(
            time,
            Sourced {
                trade,
                partition: self.partition,
                offset,
            },
        );
    }

    /// Stages the `rejects` row of a record at time `at` (see [`RejectRow`]): offset, raw
    /// bytes, true length, reason, detail; the symbol is what [`symbol_hint`] reads in the
    /// raw bytes until the caller knows better.
    fn reject(
        &mut self,
        at: u64,
        offset: u64,
        raw: &[u8],
        full_len: usize,
        reason: RejectReason,
        detail: String,
    ) -> &mut RejectRow {
        *self.local.rejected.entry(reason.as_str()).or_default() += 1;
        let batch = self.staged.rejects.entry(at).or_default();
        batch.push(RejectRow {
            source: self.source.to_owned(),
            partition: self.partition,
            offset,
            received_ms: self.received_ms,
            reason: reason.as_str().to_owned(),
            detail: if full_len > raw.len() {
                format!("{detail} (raw cut to {} of {full_len} bytes)", raw.len())
            } else {
                detail
            },
            raw: raw.to_vec(),
            symbol: symbol_hint(self.format, raw),
            trade: None,
            id: id_hint(self.format, raw),
        });
        batch.last_mut().expect("just pushed")
    }

    /// Passes on what the clock decided about a record: accepted records to the trades or
    /// candles of their time, late records and outliers to the rejects (a late trade with
    /// its trade, for the quality dataflow to tell a late record from a late duplicate).
    #[inline]
    fn verdict(
        &mut self,
        offset: u64,
        record: &Record,
        raw: &[u8],
        full_len: usize,
        verdict: Verdict,
    ) {
        let (reason, detail, at) = match verdict {
            Verdict::Accept(time) => {
                match record {
                    Record::Trade(trade) => self.trade(time, offset, *trade),
                    Record::Candle(candle) => {
                        self.local.candles += 1;
                        self.staged.candles.entry(time).or_default().push(*candle);
                    }
                    _ => {}
                }
                return;
            }
            Verdict::Late(detail, at) => (RejectReason::Late, detail, at),
            Verdict::Outlier(detail, at) => (RejectReason::TimeOutlier, detail, at),
        };
        // A generated trade has no bytes of its own: it is kept as the JSON line it stands for.
        let rendered;
        let raw = match record {
            Record::Trade(trade) if raw.is_empty() => {
                rendered = trade_line(trade);
                &rendered[..]
            }
            _ => raw,
        };
        let full_len = full_len.max(raw.len());
        let row = self.reject(at, offset, raw, full_len, reason, detail);
        match record {
            Record::Trade(trade) => {
                row.symbol = Some(trade.symbol);
                row.id = Some(trade.id);
                row.trade = matches!(reason, RejectReason::Late).then_some(*trade);
            }
            Record::Candle(candle) => row.symbol = Some(candle.symbol),
            _ => {}
        }
    }

    /// [`Deliver::verdict`] as the clock's callback.
    fn emit(&mut self) -> impl FnMut(u64, &Record, &[u8], usize, Verdict) + use<'_, 'a> {
        |offset, record, raw, full_len, verdict| {
            self.verdict(offset, record, raw, full_len, verdict)
        }
    }
}

/// A trade as the Binance JSON line it stands for (its event time as `E`): the raw bytes of
/// a generated trade that ends in `rejects`.
pub fn trade_line(trade: &Trade) -> Vec<u8> {
    let mut line = Vec::with_capacity(160);
    crate::generator::write_json_line(&mut line, trade.time_ms, trade);
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    line
}

/// The room a new batch of staged trades starts with (128 bytes a trade).
const STAGED_BATCH: usize = 512;

/// Output buffers of one activation; flushed under capabilities delayed to each time.
#[derive(Default)]
struct Staged {
    /// Trades by time, in time order. The records of an activation span few times, but go
    /// back and forth across their boundaries: a binary search in a short vector finds a
    /// record's batch for less than a lookup in a map.
    trades: Vec<(u64, Vec<Sourced>)>,
    candles: BTreeMap<u64, Vec<Candle>>,
    rejects: BTreeMap<u64, Vec<RejectRow>>,
}

impl Staged {
    /// Stages a trade at `time`, after those staged there before.
    #[inline]
    fn trade(&mut self, time: u64, trade: Sourced) {
        match self.trades.binary_search_by_key(&time, |&(time, _)| time) {
            Ok(at) => self.trades[at].1.push(trade),
            Err(at) => {
                // An activation stages up to a few thousand trades a time: room for a good
                // share of them at once, instead of growing (and copying) from one.
                let mut batch = Vec::with_capacity(STAGED_BATCH);
                batch.push(trade);
                self.trades.insert(at, (time, batch));
            }
        }
    }
}

/// Finds partitions that appeared while the source runs (a Kafka topic can grow).
pub type Discover<P> = Box<dyn FnMut() -> Vec<P>>;

/// How often a live source asks its [`Discover`] for new partitions.
const DISCOVER_EVERY: Duration = Duration::from_secs(1);

/// Builds a source operator reading `partitions` (this worker's share).
///
/// The caller decides which partitions a worker owns; every worker must call this, even
/// with no partitions, so that the dataflows are the same on all workers.
///
/// With `discover` the source is live: it never ends for lack of partitions (a worker
/// without any holds its capability at the wall clock minus the lateness, like an idle
/// partition), and partitions found later join at the source's current watermark, so their
/// records from before it are late.
pub fn partitioned_source<'scope, P: Partition>(
    scope: Scope<'scope, u64>,
    config: SourceConfig,
    partitions: Vec<P>,
    mut discover: Option<Discover<P>>,
    committed: ProbeHandle<u64>,
    tally: Rc<RefCell<Tally>>,
) -> SourceStreams<'scope> {
    let mut builder = OperatorBuilder::new(format!("Source({})", config.name), scope);
    let info = builder.operator_info();
    let activator = scope.activator_for(Rc::clone(&info.address));
    let (mut trades_out, trades) = builder.new_output::<Vec<Sourced>>();
    let (mut candles_out, candles) = builder.new_output::<Vec<Candle>>();
    let (mut rejects_out, rejects) = builder.new_output::<Vec<RejectRow>>();
    let (mut progress_out, progress) = builder.new_output::<Vec<PartitionProgress>>();

    builder.build(move |capabilities| {
        let SourceConfig {
            name,
            format,
            windows,
            horizon,
            lateness_ms,
            max_lag_ms,
            max_time_jump_ms,
            reject_backlog,
            budget,
            sequential,
            resumable,
            shutdown,
            counters,
            slot,
        } = config;
        // One capability per output, always at the same time: the coarsened minimum
        // watermark of the unfinished partitions. Records are only ever sent at times at or
        // after it (a non-late record is at or after its partition's watermark), so holding
        // it is exactly the promise downstream operators need.
        let mut caps: Option<Vec<Capability<u64>>> = Some(capabilities);
        let track = move |mut partition: P, watermark: Option<u64>| {
            let first = partition.first_time();
            let start = first.or(watermark.map(|w| w.saturating_add(lateness_ms)));
            Tracked {
                partition,
                clock: Clock::new(lateness_ms, max_time_jump_ms, start),
                reported: None,
                unconfirmed: VecDeque::new(),
                finished: false,
            }
        };
        let mut parts: Vec<Tracked<P>> = partitions
            .into_iter()
            .map(|partition| track(partition, None))
            .collect();
        let mut discovered_at = std::time::Instant::now();
        let mut staged = Staged::default();
        let mut next_part = 0usize;
        let horizon = horizon.clone();

        move |_frontiers| {
            let Some(held) = caps.as_mut() else {
                return;
            };
            let stopping = shutdown.load(Ordering::Relaxed);
            if stopping && resumable {
                // Stop where we are without closing open windows: report, for each partition,
                // where a later run must resume to complete them, and the frontier reached.
                let at = *held[0].time();
                let mut reports: Vec<PartitionProgress> = parts
                    .iter()
                    .filter(|p| !p.finished)
                    .map(|p| {
                        let (next_offset, max_event_ms) = p.resume_point(at);
                        PartitionProgress {
                            source: name.clone(),
                            partition: p.partition.index(),
                            next_offset,
                            max_event_ms,
                            finished: false,
                            stopped_at: Some(at),
                        }
                    })
                    .collect();
                if !reports.is_empty() {
                    progress_out.activate().give(&held[3], &mut reports);
                }
                caps = None;
                return;
            }
            let now = now_ms();
            let mut local = Tally::default();
            let mut wake_after: Option<Duration> = None;
            let mut more = false;

            // Pass on which reported offsets the sink has committed (it stores the latest
            // report before `offsets_until` of its frontier; an empty frontier: all of them).
            let confirmed_until = committed.with_frontier(|f| {
                f.first()
                    .map_or(u64::MAX, |&c| crate::source::offsets_until(c, &horizon))
            });
            for part in parts.iter_mut() {
                let mut confirmed = None;
                while part
                    .unconfirmed
                    .front()
                    .is_some_and(|&(t, _)| t < confirmed_until)
                {
                    confirmed = part.unconfirmed.pop_front().map(|(_, offset)| offset);
                }
                if let Some(offset) = confirmed {
                    part.partition.committed(offset);
                }
            }

            // Back-pressure: wait for the committed frontier to catch up.
            let behind = committed.with_frontier(|f| {
                f.first()
                    .is_some_and(|&c| c.saturating_add(max_lag_ms) < *held[0].time())
            });
            // ... and for the sink to commit the rejects already sent.
            let flooded = reject_backlog.is_some_and(|limit| {
                counters.uncommitted_reject_bytes.load(Ordering::Relaxed) > limit
            });
            if (behind || flooded) && !stopping {
                activator.activate_after(Duration::from_millis(1));
                return;
            }

            let held_time = *held[0].time();
            if let Some(discover) = discover.as_mut() {
                if discovered_at.elapsed() >= DISCOVER_EVERY && !stopping {
                    discovered_at = std::time::Instant::now();
                    parts.extend(
                        discover()
                            .into_iter()
                            .map(|partition| track(partition, Some(held_time))),
                    );
                }
            }
            // Side by side: poll partitions round-robin so that none starves the others.
            // Sequential: only the first unfinished one.
            let count = parts.len();
            let first_open = parts.iter().position(|p| !p.finished);
            for step in 0..count {
                let at = if sequential {
                    match first_open {
                        Some(first) if step == 0 => first,
                        _ => break,
                    }
                } else {
                    (next_part + step) % count
                };
                let part = &mut parts[at];
                if part.finished {
                    continue;
                }
                if stopping {
                    part.finished = true;
                    continue;
                }
                let mut out = Deliver {
                    staged: &mut staged,
                    local: &mut local,
                    source: &name,
                    format: &format,
                    partition: part.partition.index(),
                    received_ms: now,
                };
                let status = {
                    let Tracked {
                        partition, clock, ..
                    } = part;
                    clock.open(&windows, held_time, now);
                    let mut ingest = |item: Item<'_>| {
                        out.local.records += 1;
                        let (offset, record, raw, full_len) = match item {
                            Item::Lost {
                                offset,
                                end,
                                detail,
                            } => {
                                let lost = if end > offset {
                                    format!("offsets {offset}..{end} ({} records)", end - offset)
                                } else {
                                    format!("an unknown number of records from offset {offset} on")
                                };
                                let detail = format!("{lost} were lost: {detail}");
                                let at = clock.arrival(&windows, held_time);
                                out.reject(at, offset, &[], 0, RejectReason::DataLoss, detail);
                                return;
                            }
                            Item::Trade { offset, trade } => {
                                (offset, Ok(Record::Trade(trade)), &[][..], 0)
                            }
                            Item::Line {
                                offset,
                                bytes,
                                full_len,
                            } => {
                                let record = if full_len > MAX_LINE {
                                    Err(RejectReason::LineTooLong)
                                } else {
                                    format.parse_line(bytes)
                                };
                                (offset, record, bytes, full_len)
                            }
                        };
                        let (record, event_time) = match record {
                            Ok(Record::Trade(trade)) => {
                                // The common trade: straight to the output.
                                if let Some(time) = clock.admit(&windows, offset, trade.time_ms) {
                                    out.trade(time, offset, trade);
                                    return;
                                }
                                (Record::Trade(trade), trade.time_ms)
                            }
                            Ok(Record::Candle(candle)) => (Record::Candle(candle), candle.start_ms),
                            Ok(Record::Skipped(kind)) => {
                                out.local.skip(kind.as_str(), 1);
                                return;
                            }
                            Ok(Record::Blank) | Ok(Record::Header) => return,
                            Err(reason) => {
                                let at = clock.arrival(&windows, held_time);
                                out.reject(at, offset, raw, full_len, reason, reason.to_string());
                                return;
                            }
                        };
                        clock.observe(
                            &windows,
                            held_time,
                            now,
                            offset,
                            record,
                            event_time,
                            raw,
                            full_len,
                            &mut out.emit(),
                        );
                    };
                    partition.poll(budget, &mut ingest)
                };
                match status {
                    Poll::Ready => more = true,
                    Poll::Pending(delay) => {
                        wake_after = Some(wake_after.map_or(delay, |d| d.min(delay)));
                    }
                    Poll::Finished => {
                        part.finished = true;
                        out.local.errors.extend(part.partition.error());
                    }
                }
                // Nothing more will come soon to decide on held records: decide now.
                if part.finished || part.partition.idle() {
                    part.clock.settle(&windows, held_time, &mut out.emit());
                }
            }
            next_part = next_part.wrapping_add(1);

            // Send what this activation produced, each batch under a capability for its time.
            for (time, mut batch) in std::mem::take(&mut staged.trades) {
                trades_out
                    .activate()
                    .give(&held[0].delayed(&time), &mut batch);
            }
            for (time, mut batch) in std::mem::take(&mut staged.candles) {
                candles_out
                    .activate()
                    .give(&held[1].delayed(&time), &mut batch);
            }
            for (time, mut batch) in std::mem::take(&mut staged.rejects) {
                let bytes: u64 = batch.iter().map(crate::sink::reject_bytes).sum();
                counters
                    .uncommitted_reject_bytes
                    .fetch_add(bytes, Ordering::Relaxed);
                // `time` is a partition's clock, or the capability's time when that is ahead.
                rejects_out
                    .activate()
                    .give(&held[2].delayed(&time), &mut batch);
            }

            // Advance the capability to the new minimum watermark and report progress.
            // An idle partition follows the wall clock instead of its last record: for a live
            // feed event time is wall time, and for historical data this takes the idle
            // partition out of the minimum. Either way it no longer holds windows open, and
            // what it reads later behind the capability is late.
            let wall = now.saturating_sub(lateness_ms);
            let low = parts
                .iter()
                .filter(|p| !p.finished)
                .map(|p| {
                    let own = p.clock.watermark();
                    let own =
                        match (p.partition.idle(), p.partition.idle_follows_wall_clock()) {
                            (false, _) => own,
                            (true, true) => own.max(wall),
                            // Past the end of the shortest window holding its last record.
                            (true, false) => own.max(p.clock.max_seen.map_or(0, |m| {
                                windows.coarsen(m).saturating_add(windows.granule())
                            })),
                        };
                    // Never behind the capability: a partition back from idle (or found
                    // late) reads records behind it as late, it does not hold it back.
                    windows.coarsen(own).max(*held[0].time())
                })
                .min()
                .or_else(|| (discover.is_some() && !stopping).then(|| windows.coarsen(wall)));
            let mut reports = Vec::new();
            for part in parts.iter_mut() {
                let frontier = low.unwrap_or(u64::MAX);
                // Entries before the capability can never be asked for again.
                part.clock.prune(frontier.min(*held[0].time()));
                // Also for a finished partition: windows still open may hold its records, and
                // a resumed run must read them again to complete those windows.
                let (offset, max_event_ms) = part.resume_point(frontier);
                if part.reported != Some(offset) {
                    part.reported = Some(offset);
                    // The report goes out at the capability's time after this activation.
                    let sent_at = low.map_or(*held[0].time(), |l| l.max(*held[0].time()));
                    part.unconfirmed.push_back((sent_at, offset));
                    reports.push(PartitionProgress {
                        source: name.clone(),
                        partition: part.partition.index(),
                        next_offset: offset,
                        max_event_ms,
                        finished: part.finished,
                        stopped_at: None,
                    });
                }
            }
            if let Some(low) = low.filter(|low| low > held[0].time()) {
                counters.note_passage(slot, low);
                for cap in held.iter_mut() {
                    cap.downgrade(&low);
                }
            }
            if !reports.is_empty() {
                progress_out.activate().give(&held[3], &mut reports);
            }
            counters.records.fetch_add(local.records, Ordering::Relaxed);
            counters.trades.fetch_add(local.trades, Ordering::Relaxed);
            let rejected: u64 = local.rejected.values().sum();
            counters.rejected.fetch_add(rejected, Ordering::Relaxed);
            if let Some(slot) = counters.watermarks.get(slot) {
                slot.store(low.unwrap_or(u64::MAX), Ordering::Relaxed);
            }
            tally.borrow_mut().merge(&local);

            if low.is_none() {
                // Every partition is finished: releasing the capabilities is the final
                // watermark, which closes every window downstream.
                caps = None;
            } else if more || stopping {
                activator.activate();
            } else if let Some(delay) = wake_after {
                activator.activate_after(delay);
            } else {
                activator.activate_after(Duration::from_millis(10));
            }
        }
    });

    SourceStreams {
        trades,
        candles,
        rejects,
        progress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_passed_when_every_worker_has_passed_it() {
        let counters = Counters::new(2);
        counters.note_passage(0, 2_000);
        assert_eq!(counters.passed_at(1_500), None, "worker 1 has not moved");
        counters.note_passage(1, 1_000);
        assert_eq!(counters.passed_at(1_500), None, "worker 1 is at 1000");
        let before = now_ms();
        counters.note_passage(1, 3_000);
        let at = counters.passed_at(1_500).expect("both are beyond 1500");
        assert!((before..=now_ms()).contains(&at), "{before} {at}");
        // Beyond 1999 needs a watermark of at least 2000 + 1: worker 0 is at 2000.
        assert_eq!(counters.passed_at(2_000), None);
        assert!(counters.passed_at(999).is_some());
        counters.note_decision("bad_tick", 1_500, at + 7);
        counters.note_decision("bad_tick", 2_500, at + 7); // not passed: left out
        assert_eq!(counters.decisions()["bad_tick"], vec![7]);
    }
}
