//! Partitioned, watermarked sources.
//!
//! ```text
//!   partitions owned by this worker ──poll──▶ parse ──▶ late? ──yes──▶ rejects (reason "late")
//!   (file chunks, generator symbols, …)                   │no
//!                                                         ▼
//!                                  trades / candles at coarsen(event time)
//! ```
//!
//! Every partition keeps its own watermark, `max event time seen − lateness`, from its first
//! record on; a record older than its partition's watermark is late. The worker's
//! capability is the minimum watermark over its unfinished partitions (coarsened), so the
//! timely frontier is the global watermark and a window closes exactly when every partition
//! has passed its end. Late records are never dropped: they go to the rejects stream with
//! their raw bytes, like every other record that cannot be used.
//!
//! Progress: whenever the capability advances to `t`, each partition that moved reports
//! its resume offset for `t`: the offset of its first record with a time `≥ t`. Re-reading a
//! partition from there reproduces everything a commit at frontier `t` has not yet covered.
//!
//! Back-pressure: a source stops polling while its capability is more than `max_lag_ms` of
//! event time ahead of the committed frontier (the probe at the sink), so memory is bounded
//! by open windows and in-flight batches, never by input size. Work per activation is
//! bounded by a record budget; the operator reschedules itself.

mod clock;
mod generated;
mod operator;

pub use clock::CONFIRM;

pub use generated::GeneratedPartition;

pub use operator::{
    partitioned_source, trade_line, Counters, Discover, Item, Partition, Poll, SourceConfig,
    SourceStreams, Tally,
};

use serde::{Deserialize, Serialize};

use crate::model::{Symbol, Trade};

/// A valid trade as a source delivers it: the trade and where it was read, so that a copy
/// dropped as a duplicate can be named in `rejects`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sourced {
    /// The trade.
    pub trade: Trade,
    /// Partition within the source.
    pub partition: u32,
    /// Offset of the record within the partition.
    pub offset: u64,
}

/// A record that could not be used, with the reason and its raw bytes: a row of `rejects`.
///
/// A source sends it at the coarsened time its partition's clock had reached when the
/// record arrived (never behind the source's capability): a time that depends only on the
/// partition's records, so the quality dataflow can count it in a window deterministically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectRow {
    /// Source name, e.g. `file:trades.jsonl`.
    pub source: String,
    /// Partition within the source.
    pub partition: u32,
    /// Offset of the record within the partition (byte offset for files, sequence number for
    /// the generator).
    pub offset: u64,
    /// Wall-clock time the record was read, ms since the epoch.
    pub received_ms: u64,
    /// Stable reason code, e.g. `late`, `malformed_json`.
    pub reason: String,
    /// Human-readable detail.
    pub detail: String,
    /// The raw bytes of the record (at most [`MAX_RAW`] of them).
    pub raw: Vec<u8>,
    /// The record's symbol, when it can be read (see [`crate::parse::symbol_hint`]).
    pub symbol: Option<Symbol>,
    /// A late record's trade: the quality dataflow may find it a duplicate instead.
    pub trade: Option<Trade>,
    /// The trade id of a refused record, when it can be read (see
    /// [`crate::parse::id_hint`]): it then counts as received, not as a gap.
    pub id: Option<u64>,
}

/// Longest raw record kept in `rejects`; longer ones are cut and say so in `detail`.
pub const MAX_RAW: usize = 1 << 20;

/// Where a partition can be resumed from: a row of `source_offsets`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// Source name.
    pub source: String,
    /// Partition within the source.
    pub partition: u32,
    /// Re-reading from this offset reproduces everything not yet committed.
    pub next_offset: u64,
    /// The greatest event time of the records before `next_offset`: restoring it restores
    /// the partition's watermark, so a resumed run judges lateness as the first run did.
    pub max_event_ms: Option<u64>,
    /// Whether the partition has been read to its end.
    pub finished: bool,
    /// Set when the source stopped early (SIGINT) at this frontier without closing its open
    /// windows: the sink then commits only windows that ended before it, and a later run
    /// resumes them.
    pub stopped_at: Option<u64>,
}

/// A partition that continues where an earlier run stopped reading it (the caller has
/// already positioned it): the running maximum event time stored there restores its
/// watermark, so lateness is judged as in the earlier run.
#[derive(Debug)]
pub struct Resumed<P> {
    partition: P,
    max_event_ms: Option<u64>,
}

impl<P: Partition> Resumed<P> {
    /// Wraps `partition`, positioned where the stored progress says; `max_event_ms` is the
    /// stored running maximum (`None` for a partition without stored progress).
    pub fn new(partition: P, max_event_ms: Option<u64>) -> Resumed<P> {
        Resumed {
            partition,
            max_event_ms,
        }
    }
}

impl<P: Partition> Partition for Resumed<P> {
    fn index(&self) -> u32 {
        self.partition.index()
    }
    fn first_time(&mut self) -> Option<u64> {
        self.max_event_ms.or_else(|| self.partition.first_time())
    }
    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(Item<'_>)) -> Poll {
        self.partition.poll(budget, emit)
    }
    fn position(&self) -> u64 {
        self.partition.position()
    }
    fn error(&self) -> Option<String> {
        self.partition.error()
    }
    fn idle(&self) -> bool {
        self.partition.idle()
    }
    fn idle_follows_wall_clock(&self) -> bool {
        self.partition.idle_follows_wall_clock()
    }
    fn committed(&mut self, offset: u64) {
        self.partition.committed(offset);
    }
}

/// The event-time history the dataflows need to rebuild their state exactly after a restart:
/// the start of every window still open at the committed frontier, and (for state that
/// reaches further back, such as a dedup horizon or rolling statistics) `history_ms` before
/// it. Each dataflow declares its own; [`Horizon::max`] combines them, and the source's
/// resume offsets are taken valid for [`Horizon::replay_from`] of the frontier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Horizon {
    /// Sizes of the tumbling windows with open state.
    pub windows: Vec<u64>,
    /// Event time before the frontier that state depends on, ms.
    pub history_ms: u64,
}

impl Horizon {
    /// The history of tumbling windows of these sizes.
    pub fn windows(sizes: &[u64]) -> Horizon {
        Horizon {
            windows: sizes.to_vec(),
            history_ms: 0,
        }
    }

    /// What both `self` and `other` need.
    pub fn max(mut self, other: &Horizon) -> Horizon {
        self.windows.extend_from_slice(&other.windows);
        self.history_ms = self.history_ms.max(other.history_ms);
        self
    }

    /// The earliest event time a resumed run must re-read when results are committed up to
    /// `frontier`: the earliest start of a window still open (for each size, the window
    /// holding `frontier`; with sizes that do not divide each other the shorter one may
    /// start first), or `history_ms` before the frontier, whichever is earlier.
    ///
    /// ```
    /// use tickflow_operators::source::Horizon;
    /// // 40 and 45: at 95 the open windows are [80, 120) and [90, 135).
    /// assert_eq!(Horizon::windows(&[40, 45]).replay_from(95), 80);
    /// assert_eq!(Horizon::windows(&[1_000, 60_000]).replay_from(61_500), 60_000);
    /// let dedup = Horizon { windows: vec![], history_ms: 5_000 };
    /// assert_eq!(Horizon::windows(&[1_000]).max(&dedup).replay_from(61_500), 56_500);
    /// ```
    pub fn replay_from(&self, frontier: u64) -> u64 {
        let open = self
            .windows
            .iter()
            .map(|&size| frontier - frontier % size.max(1))
            .min()
            .unwrap_or(frontier);
        open.min(frontier.saturating_sub(self.history_ms))
    }
}

/// Reports made before this time are the ones a commit at `frontier` stores: a report is
/// valid for its own time, and the stored offsets must cover the whole replay horizon.
pub fn offsets_until(frontier: u64, horizon: &Horizon) -> u64 {
    horizon
        .replay_from(frontier)
        .min(frontier.saturating_sub(1))
        + 1
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
