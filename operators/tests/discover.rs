//! A live source picks up partitions that appear while it runs (a Kafka topic that grows):
//! the new partition joins at the source's watermark, its records from before it are late
//! (dead-lettered, not lost), the rest pass, and the source stays live after its first
//! partitions are exhausted.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::ProbeHandle;

use tickflow_operators::generator::{partitions, GeneratorConfig};
use tickflow_operators::model::Symbol;
use tickflow_operators::parse::Format;
use tickflow_operators::source::{
    now_ms, partitioned_source, Counters, Discover, GeneratedPartition, SourceConfig, Tally,
};
use tickflow_operators::window::Windows;

const EVENTS: u64 = 12_000;

#[test]
fn a_partition_found_while_running_joins_at_the_watermark() {
    let start_ms = now_ms();
    let config = GeneratorConfig {
        symbols: ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
            .iter()
            .map(|s| Symbol::new(s).expect("symbol"))
            .collect(),
        events: Some(EVENTS),
        // 6 s of event time from now, read at once: the first partitions are exhausted at
        // once, the source follows the wall clock, and the third joins about a second later.
        rate: 2_000.0,
        start_ms,
        // Within the lateness: only the partition that joins late has late records.
        max_delay_ms: 100,
        ..GeneratorConfig::default()
    };
    let (trades, tally, live_after_input) = timely::execute_directly(move |worker| {
        let started = Instant::now();
        let mut streams = partitions(&config);
        let late_one = streams.pop().expect("three streams");
        let first: Vec<GeneratedPartition> = streams
            .into_iter()
            .map(|s| GeneratedPartition::new(s, false, start_ms, started))
            .collect();
        let mut pending = Some(late_one);
        let discover: Discover<GeneratedPartition> = Box::new(move || {
            pending
                .take()
                .map(|s| GeneratedPartition::new(s, false, start_ms, started))
                .into_iter()
                .collect()
        });
        let shutdown = Arc::new(AtomicBool::new(false));
        let tally = Rc::new(RefCell::new(Tally::default()));
        let trades = Rc::new(RefCell::new(Vec::new()));
        let probe = ProbeHandle::new();
        let source_config = SourceConfig {
            name: "test".to_owned(),
            format: Format::BinanceJson,
            windows: Windows::new(vec![1000]).expect("windows"),
            lateness_ms: 200,
            max_lag_ms: u64::MAX / 2,
            max_time_jump_ms: 600_000,
            horizon: tickflow_operators::source::Horizon::default(),
            reject_backlog: None,
            budget: 1000,
            sequential: false,
            resumable: false,
            shutdown: Arc::clone(&shutdown),
            counters: Arc::new(Counters::new(1)),
            slot: 0,
        };
        worker.dataflow::<u64, _, _>(|scope| {
            let sink = Rc::clone(&trades);
            partitioned_source(
                scope,
                source_config,
                first,
                Some(discover),
                probe.clone(),
                Rc::clone(&tally),
            )
            .trades
            .inspect(move |trade| sink.borrow_mut().push(*trade))
            .probe_with(&probe);
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while tally.borrow().records < EVENTS && Instant::now() < deadline {
            worker.step_or_park(Some(Duration::from_millis(5)));
        }
        // Every partition is exhausted, but the source is live: it waits for more.
        for _ in 0..50 {
            worker.step_or_park(Some(Duration::from_millis(2)));
        }
        let live_after_input = !probe.done();
        shutdown.store(true, Ordering::Relaxed);
        while !probe.done() {
            worker.step_or_park(Some(Duration::from_millis(5)));
        }
        let trades = trades.take();
        let tally = tally.take();
        (trades, tally, live_after_input)
    });

    assert_eq!(
        tally.records, EVENTS,
        "every record of the three partitions is read"
    );
    let late = tally.rejected.get("late").copied().unwrap_or(0);
    assert_eq!(
        tally.rejected.values().sum::<u64>(),
        late,
        "only late rejects: {:?}",
        tally.rejected
    );
    assert_eq!(tally.trades + late, EVENTS, "nothing lost");
    assert_eq!(trades.len() as u64, tally.trades);
    let third = Symbol::new("CCCUSDT").expect("symbol");
    let from_new = trades.iter().filter(|t| t.trade.symbol == third).count() as u64;
    assert!(
        from_new > 0,
        "the partition found while running contributes trades"
    );
    assert!(
        late > 0,
        "records of the new partition from before it joined are late"
    );
    assert!(
        live_after_input,
        "a live source does not end with its input"
    );
}
