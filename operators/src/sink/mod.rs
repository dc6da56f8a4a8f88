//! Committing results: the sink operator and its writer thread.
//!
//! ```text
//!  rows (any declared table) ─┐  exchange   ┌──────────────┐  bounded   ┌──────────────┐
//!                             ├──to worker──▶ CommitSink op ├──channel──▶ writer thread ├──▶ SQLite / PostgreSQL
//!  offsets ───────────────────┘     0       └──────▲───────┘            └──────┬───────┘    / none
//!                                                  └────── acknowledgements ───┘
//! ```
//!
//! Dataflows emit [`Row`]s of the tables declared in [`crate::schema`]. The operator stashes
//! them by time. When its input frontier passes some times, everything before the frontier
//! is one [`Commit`]: the rows of those times (a table's [`Due`] rule says which), the latest
//! resume offset of every partition and the source's next commit sequence number, written
//! by the writer in one transaction ([`Commit::bookkeeping`]). The operator never
//! blocks: if the channel is full it keeps the batch and tries again on its next activation.
//!
//! Progress: the operator's output capability stays at the earliest time that is not yet
//! durably committed, so a probe on its output is the committed frontier; sources use it for
//! back-pressure. A writer that fails reports the error through [`SinkStatus`] and the
//! operator keeps its capability (claiming no progress it has not made); the binary then
//! stops the run with that error.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, Stream};
use timely::progress::frontier::AntichainRef;

use crate::schema::{tables, Due, Row, Table, Write};
use crate::source::{PartitionProgress, RejectRow};

mod identity;

pub use identity::{refuse_discard, Identity};

/// Everything to write in one transaction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The source whose results these are.
    pub source: String,
    /// All rows before this time are included; `None` for the final commit.
    pub frontier: Option<u64>,
    /// Every window ending at or before this time is committed, and the offsets resume the
    /// rest; `None` once the input has ended and every window is final.
    pub resume_frontier: Option<u64>,
    /// Result rows, grouped by table in [`TABLES`](crate::schema::TABLES) order; within a
    /// keyed table sorted by value and unique by key (the latest row of a key wins), within
    /// an append-only table in arrival order.
    pub rows: Vec<Row>,
    /// Resume offsets, one per partition that moved.
    pub offsets: Vec<PartitionProgress>,
    /// Whether rows of a table with a [`Merge`](crate::schema::Merge) rule combine with the
    /// rows an earlier run wrote for their keys rather than replacing them: for sources that
    /// cannot resume (a live feed), whose restarts contribute anew to the windows an earlier
    /// run already wrote (see [`SinkOptions::merge`]).
    pub merge: bool,
    /// The resume frontier stored for the source when this run read its progress at start
    /// (`None`: none, or NULL). A writer that can lock the stored frontier checks, in the
    /// commit's transaction, that nobody else moved it since (see the PostgreSQL sink).
    pub resumed_from: Option<u64>,
    /// The end of the window of each row of a [`windowed`](crate::schema::Table::windowed)
    /// table, for the latency from a window's end to its commit.
    pub window_ends: Vec<u64>,
}

impl Commit {
    /// The rows of each table that has some, in table order.
    pub fn tables(&self) -> impl Iterator<Item = (&'static Table, &[Row])> {
        self.rows
            .chunk_by(|a, b| a.table == b.table)
            .map(|rows| (rows[0].table(), rows))
    }

    /// How many rows of `table` the commit holds.
    pub fn count(&self, table: &Table) -> usize {
        self.tables()
            .filter(|(t, _)| std::ptr::eq(*t, table))
            .map(|(_, rows)| rows.len())
            .sum()
    }

    /// The bookkeeping rows every commit writes with its results, in the same transaction:
    /// the partitions' resume offsets, the source's resume frontier and its commit sequence
    /// number `seq`, stored at `now_ms`.
    pub fn bookkeeping(&self, seq: u64, now_ms: u64) -> Vec<Row> {
        let mut rows: Vec<Row> = self.offsets.iter().map(|o| o.to_row(now_ms)).collect();
        rows.push(Row {
            table: tables::RESUME_FRONTIER.id(),
            values: vec![
                self.source.as_str().into(),
                self.resume_frontier.into(),
                now_ms.into(),
            ],
        });
        rows.push(Row {
            table: tables::SINK_COMMITS.id(),
            values: vec![self.source.as_str().into(), seq.into(), now_ms.into()],
        });
        rows
    }
}

/// Where an earlier run left a source (read back from a durable sink).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredProgress {
    /// By partition: resume offset and the running maximum event time there.
    pub partitions: HashMap<u32, (u64, Option<u64>)>,
    /// Windows ending at or before this are committed.
    pub frontier: Option<u64>,
}

/// A destination for commits. Runs on the writer thread.
pub trait Writer: Send + 'static {
    /// Writes `commit` atomically, or not at all.
    fn write(&mut self, commit: &Commit) -> Result<(), String>;
}

/// The sink that writes nothing (`--sink none`).
#[derive(Debug, Default)]
pub struct NoneWriter;

impl Writer for NoneWriter {
    fn write(&mut self, _commit: &Commit) -> Result<(), String> {
        Ok(())
    }
}

/// What the sink has done, shared with the binary.
#[derive(Debug, Default)]
pub struct SinkStatus {
    /// Rows committed, by table name.
    pub rows: BTreeMap<&'static str, u64>,
    /// Seconds the writer spent writing commits (waiting for the database included).
    pub write_seconds: f64,
    /// Transactions committed.
    pub commits: u64,
    /// The writer's error, if it failed.
    pub error: Option<String>,
    /// For each committed row of a windowed table (a candle), wall-clock ms from its window's end to its commit (a
    /// latency when event time is wall time, as with the paced generator). At most
    /// [`MAX_LAG_SAMPLES`] are kept.
    pub window_lags_ms: Vec<u64>,
}

impl SinkStatus {
    /// Rows of `table` committed.
    pub fn rows(&self, table: &Table) -> u64 {
        self.rows.get(table.name).copied().unwrap_or(0)
    }
}

/// Most window lag samples kept in [`SinkStatus`].
pub const MAX_LAG_SAMPLES: usize = 1 << 20;

/// How the sink relates to earlier and later runs.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// The source's name, for the stored resume frontier.
    pub source: String,
    /// What the dataflows need re-read after a restart: offsets are stored valid for its
    /// start, so a resumed run rebuilds every open window and all other state.
    pub horizon: crate::source::Horizon,
    /// The frontier an earlier run committed up to: windows ending at or before it are
    /// already in the tables and are not written again (a resumed run recomputes them from
    /// partial input).
    pub resume_from: Option<u64>,
    /// The process's source counters, whose count of uncommitted reject bytes the writer
    /// lowers as it commits them (the sources of this process pause while it is high).
    pub counters: Option<Arc<crate::source::Counters>>,
    /// The source cannot resume (the paced generator, standard input, gzip): a restart's
    /// rows of a table with a merge rule (candles) add to the rows an earlier run wrote for
    /// the same keys instead of replacing them, so both runs' trades count.
    pub merge: bool,
}

/// Commits handed to the writer thread and not yet acknowledged, at most: while the writer
/// works on one, the next is taken and arranged, so that the writer never waits for worker
/// 0; the batch after them grows meanwhile.
const IN_FLIGHT: usize = 2;

/// The writer thread and its channels; lives on worker 0.
struct WriterThread {
    send: Option<SyncSender<Commit>>,
    acks: Receiver<Result<Option<u64>, String>>,
    thread: Option<JoinHandle<()>>,
}

impl WriterThread {
    fn start(
        mut writer: Box<dyn Writer>,
        status: Arc<Mutex<SinkStatus>>,
        activator: timely::scheduling::SyncActivator,
        counters: Option<Arc<crate::source::Counters>>,
    ) -> WriterThread {
        let (send, receive) = mpsc::sync_channel::<Commit>(IN_FLIGHT);
        let (ack_send, acks) = mpsc::channel();
        let failed_status = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name("tickflow-writer".into())
            .spawn(move || {
                for commit in receive {
                    let started = std::time::Instant::now();
                    // A panic in a writer is a failed commit like any other: reported, never
                    // a silent end of the thread that would leave the run waiting.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        writer.write(&commit)
                    }))
                    .unwrap_or_else(|panic| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown cause".to_owned());
                        Err(format!("the sink's writer failed unexpectedly: {what}"))
                    });
                    if let Ok(mut status) = status.lock() {
                        status.write_seconds += started.elapsed().as_secs_f64();
                        match &result {
                            Ok(()) => {
                                let now = crate::source::now_ms();
                                // The final commit closes windows by ending the input, not by
                                // time passing: it says nothing of latency.
                                let room = match commit.frontier {
                                    Some(_) => {
                                        MAX_LAG_SAMPLES.saturating_sub(status.window_lags_ms.len())
                                    }
                                    None => 0,
                                };
                                status.window_lags_ms.extend(
                                    commit
                                        .window_ends
                                        .iter()
                                        .take(room)
                                        .map(|&end| now.saturating_sub(end)),
                                );
                                for (table, rows) in commit.tables() {
                                    *status.rows.entry(table.name).or_default() +=
                                        rows.len() as u64;
                                }
                                status.commits += 1;
                            }
                            Err(error) => status.error = Some(error.clone()),
                        }
                    }
                    if let (Ok(()), Some(counters)) = (&result, counters.as_ref()) {
                        // What the sources count until it is committed: see `reject_bytes`.
                        let bytes: u64 = commit
                            .rows
                            .iter()
                            .filter(|r| r.table().due == Due::Eager)
                            .map(Row::bytes)
                            .sum();
                        counters.uncommitted_reject_bytes.fetch_sub(
                            bytes.min(counters.uncommitted_reject_bytes.load(Ordering::Relaxed)),
                            Ordering::Relaxed,
                        );
                    }
                    let failed = result.is_err();
                    let _ = ack_send.send(result.map(|()| commit.frontier));
                    let _ = activator.activate();
                    if failed {
                        break;
                    }
                }
            });
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(error) => {
                // Without a writer nothing can be committed: fail the run rather than wait.
                if let Ok(mut status) = failed_status.lock() {
                    status.error = Some(format!("cannot start the sink's writer thread: {error}"));
                }
                None
            }
        };
        WriterThread {
            send: Some(send),
            acks,
            thread,
        }
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        self.send = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Rows stashed by time until the frontier passes them.
#[derive(Default)]
struct Pending {
    /// Rows of [`Due::AtTime`] tables, by time.
    timed: BTreeMap<u64, Vec<Row>>,
    /// Rows of [`Due::Eager`] tables, in arrival order.
    eager: Vec<Row>,
    offsets: BTreeMap<u64, Vec<PartitionProgress>>,
    /// The least frontier at which a source reported stopping early.
    stopped_at: Option<u64>,
}

impl Pending {
    /// Stashes `rows` that arrived at `time`.
    fn add(&mut self, time: u64, rows: &mut Vec<Row>) {
        for row in rows.drain(..) {
            match row.table().due {
                Due::Eager => self.eager.push(row),
                Due::AtTime => self.timed.entry(time).or_default().push(row),
            }
        }
    }

    /// Whether a commit at `frontier` would write anything: rows before it, eager rows, or
    /// offsets that became due (offsets are due once the aligned frontier passes them).
    fn has_rows_before(&self, frontier: u64, options: &SinkOptions) -> bool {
        let before = |t: Option<&u64>| t.is_some_and(|&t| t < frontier);
        before(self.timed.keys().next())
            || !self.eager.is_empty()
            || self
                .offsets
                .keys()
                .next()
                .is_some_and(|&t| t < offsets_until(frontier, options))
    }

    /// Takes every row before `frontier` (all of them for `None`) as one commit.
    fn take_before(&mut self, frontier: Option<u64>, options: &SinkOptions) -> Commit {
        // What the stored offsets must cover: every window still open at the frontier,
        // the earliest of which starts at the frontier aligned down to the longest window.
        let resume_frontier = match frontier {
            Some(f) => Some(f),
            None => self.stopped_at,
        };
        let until = resume_frontier.map(|f| offsets_until(f, options));
        let already = options.resume_from.unwrap_or(0);
        // A resumed run starts behind the frontier the earlier run committed; what it stores
        // must not claim less than that, or a restart would write those windows' rows
        // again. (The offsets stored meanwhile are valid for the lower frontier, so they
        // re-read a little more than needed, which the frontier then filters.)
        let resume_frontier = resume_frontier.map(|f| f.max(already));
        // Rows at times before the earlier run's frontier are committed already (a window's
        // row is stamped with its last ms); after an early stop, those from the stop
        // frontier on are left for the next run.
        let later = match frontier.or(self.stopped_at) {
            Some(t) => self.timed.split_off(&t),
            None => BTreeMap::new(),
        };
        let mut window_ends = Vec::new();
        let mut rows = Vec::new();
        for (time, batch) in std::mem::replace(&mut self.timed, later) {
            if time < already {
                continue;
            }
            for row in batch {
                if row.table().windowed {
                    window_ends.push(time + 1);
                }
                rows.push(row);
            }
        }
        // Rejects belong to no window: they are committed as they come (their rows are keyed
        // by source offset, so writing one again changes nothing).
        rows.append(&mut self.eager);
        let rows = arrange(rows);
        // Latest report per partition wins: reports are made in time order.
        let mut offsets = BTreeMap::new();
        let mut due = Vec::new();
        for batch in split(&mut self.offsets, until) {
            due.extend(batch);
        }
        for report in due {
            offsets.insert((report.source.clone(), report.partition), report);
        }
        Commit {
            source: options.source.clone(),
            frontier,
            resume_frontier,
            rows,
            offsets: offsets.into_values().collect(),
            merge: options.merge,
            resumed_from: options.resume_from,
            window_ends,
        }
    }
}

/// The entries of `map` before `until` (all for `None`), taken out of it.
fn split<R>(map: &mut BTreeMap<u64, R>, until: Option<u64>) -> Vec<R> {
    let later = match until {
        Some(t) => map.split_off(&t),
        None => BTreeMap::new(),
    };
    std::mem::replace(map, later).into_values().collect()
}

/// `rows` (in time order) as a commit holds them: grouped by table; a keyed table's rows
/// sorted, so that every run writes them in the same order, and of several rows with one
/// key only the latest, as writing them one after another would leave.
fn arrange(rows: Vec<Row>) -> Vec<Row> {
    let mut latest: HashMap<(crate::schema::TableId, Vec<crate::schema::Value>), usize> =
        HashMap::new();
    let mut kept: Vec<Option<Row>> = Vec::with_capacity(rows.len());
    for row in rows {
        let table = row.table();
        if table.write == Write::Upsert {
            let key = table
                .key_columns()
                .into_iter()
                .map(|i| row.values[i].clone())
                .collect();
            if let Some(earlier) = latest.insert((row.table, key), kept.len()) {
                kept[earlier] = None;
            }
        }
        kept.push(Some(row));
    }
    let mut rows: Vec<Row> = kept.into_iter().flatten().collect();
    // Stable: an append-only table's rows keep their order.
    rows.sort_by(|a, b| {
        a.table.cmp(&b.table).then_with(|| match a.table().write {
            Write::Append => std::cmp::Ordering::Equal,
            Write::Upsert | Write::Ignore => a.values.cmp(&b.values),
        })
    });
    rows
}

fn offsets_until(frontier: u64, options: &SinkOptions) -> u64 {
    crate::source::offsets_until(frontier, &options.horizon)
}

/// Builds the sink. Every worker calls it; `rows` of every declared table and the sources'
/// `offsets` are exchanged to worker 0, which alone runs `writer` (the factory is called
/// there only). Returns a stream whose frontier is the committed frontier, for a probe.
pub fn commit_sink<'scope>(
    rows: Stream<'scope, u64, Vec<Row>>,
    offsets: Stream<'scope, u64, Vec<PartitionProgress>>,
    writer: impl FnOnce() -> Box<dyn Writer>,
    status: Arc<Mutex<SinkStatus>>,
    options: SinkOptions,
) -> Stream<'scope, u64, Vec<()>> {
    let scope: Scope<'scope, u64> = rows.scope();
    let mut builder = OperatorBuilder::new("CommitSink".to_owned(), scope);
    let info = builder.operator_info();
    let mut rows_in = builder.new_input(rows, Exchange::new(|_: &Row| 0));
    let mut offsets_in = builder.new_input(offsets, Exchange::new(|_: &PartitionProgress| 0));
    let (_output, committed) = builder.new_output::<Vec<()>>();

    let is_writer = scope.index() == 0;
    let writer_thread = is_writer.then(|| {
        let activator = scope.worker().sync_activator_for(info.address.to_vec());
        WriterThread::start(
            writer(),
            Arc::clone(&status),
            activator,
            options.counters.clone(),
        )
    });

    builder.build(move |mut capabilities| {
        // Held at the earliest uncommitted time; see the module docs.
        let mut cap: Option<Capability<u64>> = capabilities.pop();
        let mut pending = Pending::default();
        let mut queued: Option<Commit> = None;
        let mut sent_final = false;
        let mut in_flight = 0usize;
        let mut writer_thread = writer_thread;
        let status = status;
        move |frontiers| {
            let Some(thread) = writer_thread.as_mut() else {
                // Not the writer: nothing arrives here, and nothing needs holding.
                rows_in.for_each(|_, _| {});
                offsets_in.for_each(|_, _| {});
                cap = None;
                return;
            };
            rows_in.for_each(|time, data| {
                if let Some(&t) = time.least() {
                    pending.add(t, data);
                }
            });
            offsets_in.for_each(|time, data| {
                if let Some(&t) = time.least() {
                    for report in data.iter() {
                        if let Some(at) = report.stopped_at {
                            pending.stopped_at = Some(pending.stopped_at.map_or(at, |s| s.min(at)));
                        }
                    }
                    pending.offsets.entry(t).or_default().append(data);
                }
            });

            // Acknowledgements advance the committed frontier.
            loop {
                match thread.acks.try_recv() {
                    Ok(Ok(frontier)) => {
                        in_flight -= 1;
                        match (frontier, cap.as_mut()) {
                            (Some(f), Some(cap)) if f > *cap.time() => cap.downgrade(&f),
                            (Some(_), _) => {}
                            (None, _) => cap = None,
                        }
                    }
                    // Keep the capability: nothing after the failure is committed.
                    Ok(Err(_)) => return,
                    Err(TryRecvError::Disconnected) => {
                        if !(sent_final && in_flight == 0) {
                            writer_gone(&status);
                        }
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }

            // At most `IN_FLIGHT` commits at a time: while the writer works, the next batch
            // grows. Once a source has stopped early, nothing at or after its stop frontier is
            // complete, even if the frontier moves on (a worker that stopped dropped its
            // capabilities while another was further ahead).
            let frontier =
                min_frontier(frontiers).map(|f| pending.stopped_at.map_or(f, |stop| f.min(stop)));
            if queued.is_none() && in_flight < IN_FLIGHT && !sent_final {
                let has_rows = match frontier {
                    None => true,
                    Some(f) => pending.has_rows_before(f, &options),
                };
                if has_rows {
                    sent_final = frontier.is_none();
                    queued = Some(pending.take_before(frontier, &options));
                } else if let (Some(f), Some(cap), 0) = (frontier, cap.as_mut(), in_flight) {
                    // Nothing to write before `f` and nothing in flight: committed up to `f`.
                    if f > *cap.time() {
                        cap.downgrade(&f);
                    }
                }
            }
            if let Some(commit) = queued.take() {
                if let Some(send) = thread.send.as_ref() {
                    match send.try_send(commit) {
                        Ok(()) => in_flight += 1,
                        // The acknowledgement of the commit in the way reschedules us.
                        Err(TrySendError::Full(commit)) => queued = Some(commit),
                        Err(TrySendError::Disconnected(_)) => writer_gone(&status),
                    }
                }
            }
            if sent_final && queued.is_none() {
                // The writer thread exits once the channel closes after the final commit.
                thread.send = None;
            }
        }
    });
    committed
}

/// What a reject row costs in memory until it is committed, roughly: what [`Row::bytes`]
/// says of its row, by which the writer counts it off when committed.
pub fn reject_bytes(row: &RejectRow) -> u64 {
    (row.raw.len() + row.detail.len() + row.source.len() + row.reason.len() + 96) as u64
}

/// Records that the writer thread is gone while commits were still due: the run must end
/// with an error, not wait for acknowledgements that never come.
fn writer_gone(status: &Arc<Mutex<SinkStatus>>) {
    if let Ok(mut status) = status.lock() {
        status
            .error
            .get_or_insert_with(|| "the sink's writer thread ended unexpectedly".to_owned());
    }
}

fn min_frontier(frontiers: &[timely::progress::frontier::MutableAntichain<u64>]) -> Option<u64> {
    frontiers
        .iter()
        .filter_map(|f| {
            let f: AntichainRef<'_, u64> = f.frontier();
            f.first().copied()
        })
        .min()
}
