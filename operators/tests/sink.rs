//! The commit sink operator on its own: what each commit holds (rows of completed times, the
//! latest resume offsets valid for the open windows, the resume frontier), what a resumed
//! or stopped run leaves out, and a writer that fails or panics ending the run with its
//! error instead of hanging or claiming progress.

use std::sync::{Arc, Mutex};

use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::{InputHandleVec as InputHandle, ProbeHandle};

use tickflow_operators::model::{Candle, Fixed, Symbol, Trade, Wide};
use tickflow_operators::schema::{tables, Row};
use tickflow_operators::sink::{commit_sink, Commit, SinkOptions, SinkStatus, Writer};
use tickflow_operators::source::{PartitionProgress, RejectRow};

/// Keeps every commit; panics on the commit numbered `panic_at` (1-based) if set.
struct Recording {
    commits: Arc<Mutex<Vec<Commit>>>,
    panic_at: Option<usize>,
}

impl Writer for Recording {
    fn write(&mut self, commit: &Commit) -> Result<(), String> {
        let count = self.commits.lock().expect("lock").len();
        if Some(count + 1) == self.panic_at {
            panic!("injected writer panic");
        }
        self.commits.lock().expect("lock").push(commit.clone());
        Ok(())
    }
}

fn candle(window_ms: u64, start_ms: u64) -> Candle {
    Candle {
        symbol: Symbol::new("BTCUSDT").expect("short"),
        window_ms,
        start_ms,
        open: Fixed(1),
        high: Fixed(1),
        low: Fixed(1),
        close: Fixed(1),
        volume: Wide(1),
        quote_volume: None,
        vwap: None,
        trades: Some(1),
    }
}

fn report(partition: u32, next_offset: u64, stopped_at: Option<u64>) -> PartitionProgress {
    PartitionProgress {
        source: "test".to_owned(),
        partition,
        next_offset,
        max_event_ms: Some(next_offset),
        finished: false,
        stopped_at,
    }
}

/// Inputs of the sink for one worker, a probe on its committed frontier, and the commits.
struct Harness {
    rows: InputHandle<u64, Row>,
    offsets: InputHandle<u64, PartitionProgress>,
    committed: ProbeHandle<u64>,
}

impl Harness {
    fn send(&mut self, row: impl Into<Row>) {
        self.rows.send(row.into());
    }
}

/// The candles a commit holds.
fn candles(commit: &Commit) -> Vec<Row> {
    commit
        .tables()
        .filter(|(t, _)| t.name == "candles")
        .flat_map(|(_, rows)| rows.to_vec())
        .collect()
}

/// The candles of all `commits`, in order.
fn all_candles(commits: &[Commit]) -> Vec<Row> {
    commits.iter().flat_map(candles).collect()
}

/// Runs `script` against a sink on one worker; returns the commits and the final status.
fn with_sink(
    options: SinkOptions,
    panic_at: Option<usize>,
    script: impl FnOnce(&mut Harness, &mut dyn FnMut(&mut Harness)) + Send + Sync + 'static,
) -> (Vec<Commit>, Option<String>) {
    let commits = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(Mutex::new(SinkStatus::default()));
    let (for_worker, status_for_worker) = (Arc::clone(&commits), Arc::clone(&status));
    timely::execute_directly(move |worker| {
        let mut harness = Harness {
            rows: InputHandle::new(),
            offsets: InputHandle::new(),
            committed: ProbeHandle::new(),
        };
        let status = Arc::clone(&status_for_worker);
        worker.dataflow::<u64, _, _>(|scope| {
            let rows = scope.input_from(&mut harness.rows);
            let offsets = scope.input_from(&mut harness.offsets);
            let recording = Recording {
                commits: for_worker,
                panic_at,
            };
            commit_sink(
                rows,
                offsets,
                move || Box::new(recording),
                Arc::clone(&status),
                options,
            )
            .probe_with(&harness.committed);
        });
        // Steps until the sink has committed everything before the inputs' time (or failed).
        let status_in_step = Arc::clone(&status_for_worker);
        let mut settle = move |h: &mut Harness| {
            let time = *h.rows.time();
            for _ in 0..10_000 {
                if status_in_step.lock().expect("lock").error.is_some() {
                    // As the binary does: a failed sink keeps its capability, so the dataflow
                    // could never complete.
                    for dataflow in worker.installed_dataflows() {
                        worker.drop_dataflow(dataflow);
                    }
                    break;
                }
                if !h.committed.less_than(&time) {
                    break;
                }
                worker.step_or_park(Some(std::time::Duration::from_millis(1)));
            }
        };
        script(&mut harness, &mut settle);
    });
    let error = status.lock().expect("lock").error.clone();
    let commits = commits.lock().expect("lock").clone();
    (commits, error)
}

fn advance(h: &mut Harness, to: u64) {
    h.rows.advance_to(to);
    h.offsets.advance_to(to);
}

#[test]
fn a_commit_holds_the_completed_rows_and_offsets_valid_for_the_open_windows() {
    let options = SinkOptions {
        source: "test".to_owned(),
        horizon: tickflow_operators::source::Horizon::windows(&[10]),
        resume_from: None,
        merge: false,
        counters: None,
    };
    let (commits, error) = with_sink(options, None, |h, settle| {
        // Reports at times 3 and 12 (offsets 30 and 120); a 10 ms candle of [0, 10) at 9.
        h.offsets.send(report(0, 30, None));
        advance(h, 9);
        h.send(candle(10, 0));
        advance(h, 12);
        h.offsets.send(report(0, 120, None));
        advance(h, 15);
        settle(h);
        // The window [10, 20) is open at 15: offsets must resume at or before 10, so the
        // report made at 12 is not yet due; the one made at time 0 is.
        h.send(candle(10, 10));
        advance(h, 25);
        settle(h);
    });
    assert_eq!(error, None);
    // When the candle of [0, 10) is committed, the stored offset (the latest committed up to
    // and with it) is the one made at time 0, not the one made at 12 inside [10, 20).
    let upto = commits
        .iter()
        .position(|c| !candles(c).is_empty())
        .expect("a commit with the first candle");
    assert_eq!(candles(&commits[upto]), vec![Row::from(candle(10, 0))]);
    let stored: Vec<u64> = commits[..=upto]
        .iter()
        .flat_map(|c| c.offsets.iter().map(|o| o.next_offset))
        .collect();
    assert_eq!(stored.last(), Some(&30));
    // The inputs closed at the end: the last commit is final.
    let last = commits.last().expect("commits");
    assert_eq!((last.frontier, last.resume_frontier), (None, None));
    assert_eq!(
        all_candles(&commits),
        vec![Row::from(candle(10, 0)), Row::from(candle(10, 10))]
    );
    // The report made at 12 is valid for the open window [20, 30) at frontier 25.
    let offsets: Vec<u64> = commits
        .iter()
        .flat_map(|c| c.offsets.iter().map(|o| o.next_offset))
        .collect();
    assert_eq!(offsets, vec![30, 120]);
    // Frontiers only grow.
    let frontiers: Vec<u64> = commits.iter().filter_map(|c| c.frontier).collect();
    assert!(frontiers.windows(2).all(|w| w[0] < w[1]), "{frontiers:?}");
}

#[test]
fn a_resumed_run_does_not_write_again_what_its_predecessor_committed() {
    let options = SinkOptions {
        source: "test".to_owned(),
        horizon: tickflow_operators::source::Horizon::windows(&[10]),
        resume_from: Some(20),
        merge: false,
        counters: None,
    };
    let (commits, error) = with_sink(options, None, |h, settle| {
        // Recomputed from partial input after a restart: [10, 20) ends at the old frontier.
        advance(h, 19);
        h.send(candle(10, 10));
        advance(h, 29);
        h.send(candle(10, 20));
        advance(h, 35);
        settle(h);
    });
    assert_eq!(error, None);
    assert_eq!(all_candles(&commits), vec![Row::from(candle(10, 20))]);
    // The stored frontier never goes back behind the one already stored.
    // (`None`: the input ended and every window is final.)
    assert!(commits
        .iter()
        .all(|c| c.resume_frontier.is_none_or(|f| f >= 20)));
}

#[test]
fn after_an_early_stop_nothing_at_or_past_the_stop_is_committed() {
    let options = SinkOptions {
        source: "test".to_owned(),
        horizon: tickflow_operators::source::Horizon::windows(&[10]),
        resume_from: None,
        merge: false,
        counters: None,
    };
    let (commits, error) = with_sink(options, None, |h, settle| {
        advance(h, 9);
        h.send(candle(10, 0));
        // A source stops (Ctrl-C) at 12 while another worker's rows go on to 19.
        advance(h, 12);
        h.offsets.send(report(0, 100, Some(12)));
        advance(h, 19);
        h.send(candle(10, 10));
        settle(h);
    });
    assert_eq!(error, None);
    assert_eq!(
        all_candles(&commits),
        vec![Row::from(candle(10, 0))],
        "the window [10, 20) is left open"
    );
    let last = commits.last().expect("a final commit");
    assert_eq!(last.resume_frontier, Some(12));
}

#[test]
fn a_writer_that_panics_ends_the_run_with_its_error_and_claims_nothing() {
    let options = SinkOptions {
        source: "test".to_owned(),
        horizon: tickflow_operators::source::Horizon::windows(&[10]),
        resume_from: None,
        merge: false,
        counters: None,
    };
    let (commits, error) = with_sink(options, Some(2), |h, settle| {
        advance(h, 9);
        h.send(candle(10, 0));
        advance(h, 15);
        settle(h);
        h.send(candle(10, 10));
        advance(h, 25);
        settle(h);
        // The committed frontier stayed before the failed commit's rows.
        assert!(h.committed.less_than(&20), "progress was claimed");
    });
    assert_eq!(commits.len(), 1);
    let error = error.expect("the failure is reported");
    assert!(error.contains("injected writer panic"), "{error}");
}

fn trade(id: u64, time_ms: u64) -> Trade {
    Trade {
        symbol: Symbol::new("BTCUSDT").expect("short"),
        id,
        price: Fixed(100),
        qty: Fixed(1),
        time_ms,
        buyer_maker: false,
        buyer: None,
        seller: None,
    }
}

fn reject(offset: u64) -> RejectRow {
    RejectRow {
        source: "test".to_owned(),
        partition: 0,
        offset,
        received_ms: 1,
        reason: "malformed_json".to_owned(),
        detail: String::new(),
        raw: b"{".to_vec(),
        symbol: None,
        trade: None,
        id: None,
    }
}

/// Rows of every kind through the one input: each table's rule decides when they are due.
/// Rejects go with the next commit whatever their time; archived trades (append-only) wait
/// for the frontier, keep their arrival order, and those before the earlier run's frontier
/// are not written again; a candle key sent twice is written once, the later row.
#[test]
fn each_table_is_committed_by_its_declared_rule() {
    let options = SinkOptions {
        source: "test".to_owned(),
        horizon: tickflow_operators::source::Horizon::windows(&[10]),
        resume_from: Some(10),
        merge: false,
        counters: None,
    };
    let mut replaced = candle(10, 10);
    replaced.trades = Some(2);
    let (commits, error) = with_sink(options, None, move |h, settle| {
        advance(h, 5);
        // Archived by the run that stopped at 10.
        h.send(trade(1, 5));
        advance(h, 12);
        h.send(trade(3, 12));
        h.send(trade(2, 12));
        // A reject stamped far ahead is still committed at once.
        h.send(reject(7));
        advance(h, 13);
        settle(h);
        // Nothing reached time 13 but the reject: the first commit holds only it.
        h.send(candle(10, 10));
        advance(h, 19);
        h.send(replaced);
        advance(h, 30);
        settle(h);
    });
    assert_eq!(error, None);
    let first = commits
        .iter()
        .find(|c| !c.rows.is_empty())
        .expect("a commit with rows");
    assert_eq!(first.rows, vec![Row::from(reject(7))]);
    let rows: Vec<Row> = commits.iter().flat_map(|c| c.rows.clone()).collect();
    assert_eq!(
        rows.iter()
            .filter(|r| r.table == tables::TRADES.id())
            .cloned()
            .collect::<Vec<_>>(),
        vec![Row::from(trade(3, 12)), Row::from(trade(2, 12))],
        "trades after the earlier run's frontier, in arrival order"
    );
    assert_eq!(all_candles(&commits), vec![Row::from(replaced)]);
    // Within a commit, tables in declaration order.
    for commit in &commits {
        let order: Vec<u8> = commit.rows.iter().map(|r| r.table.0).collect();
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    }
}
