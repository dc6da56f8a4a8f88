//! The market-abuse rules against plain sequential references (tests/market/reference.rs),
//! on 1 and 3 workers, with the input disordered within the lateness; replay from the
//! horizon; and, ignored by default (run them with `--release -- --ignored`), precision and
//! recall on synthetic injections and the cost next to candles.

mod reference;
mod synth;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use tickflow_dataflows::candles;
use tickflow_dataflows::market::{
    horizon, market_alerts, market_alerts_by_symbol, MarketConfig, WashStats,
};
use tickflow_operators::model::{Alert, AlertKind, Fixed, Symbol, Trade};
use tickflow_operators::window::Windows;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::{Exchange, Inspect, UnorderedInput};
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use reference::Key;
use synth::{Rng, SPECS};

/// Allowed disorder of the input, ms of event time.
const LATENESS: u64 = 3_000;

/// What the dataflow emitted, with the timely time of each item.
#[derive(Debug, Default, PartialEq)]
struct Output {
    alerts: Vec<(u64, Alert)>,
    stats: Vec<(u64, WashStats)>,
}

impl Output {
    /// Sorted, with `detected_ms` (the one wall-clock field) cleared.
    fn normalized(mut self) -> Output {
        for (_, alert) in &mut self.alerts {
            alert.detected_ms = 0;
        }
        self.alerts.sort_by(|(ta, a), (tb, b)| {
            (ta, a.kind, a.symbol, a.event_ms, &a.trade_ids, &a.details).cmp(&(
                tb,
                b.kind,
                b.symbol,
                b.event_ms,
                &b.trade_ids,
                &b.details,
            ))
        });
        self.stats
            .sort_by_key(|(t, s)| (*t, s.symbol, s.window_ms, s.start_ms));
        self
    }

    fn keys(&self, kind: AlertKind) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .alerts
            .iter()
            .filter(|(_, a)| a.kind == kind)
            .map(|(_, a)| (a.kind, a.symbol, a.event_ms, a.trade_ids.clone()))
            .collect();
        keys.sort();
        keys
    }
}

/// Runs `trades` through [`market_alerts`] on `workers` threads. With `disorder`, each trade
/// arrives up to [`LATENESS`] after its event time (a seeded shuffle); each worker plays one
/// source partition (every `workers`-th trade in arrival order) and holds its capability at
/// its watermark.
fn run(
    trades: &[Trade],
    config: &MarketConfig,
    windows: &str,
    workers: usize,
    disorder: Option<u64>,
) -> Output {
    run_routed(trades, config, windows, workers, disorder, false)
}

/// [`run`]; with `by_symbol`, the trades are exchanged by symbol first (as the quality
/// dataflow hands them out) and go through [`market_alerts_by_symbol`].
fn run_routed(
    trades: &[Trade],
    config: &MarketConfig,
    windows: &str,
    workers: usize,
    disorder: Option<u64>,
    by_symbol: bool,
) -> Output {
    let mut arrivals: Vec<(u64, u64, Trade)> = match disorder {
        Some(seed) => {
            let mut rng = Rng::new(seed);
            trades
                .iter()
                .map(|t| (t.time_ms + rng.below(LATENESS), rng.next_u64(), *t))
                .collect()
        }
        None => trades
            .iter()
            .enumerate()
            .map(|(i, t)| (t.time_ms, i as u64, *t))
            .collect(),
    };
    arrivals.sort_by_key(|&(arrival, tie, t)| (arrival, tie, t.id));
    let arrivals: Arc<Vec<Trade>> = Arc::new(arrivals.into_iter().map(|(_, _, t)| t).collect());
    let config = config.clone();
    let windows = windows.to_owned();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let windows = Windows::parse(&windows).expect("valid windows");
        let index = worker.index();
        let peers = worker.peers();
        let alerts = Rc::new(RefCell::new(Vec::new()));
        let stats = Rc::new(RefCell::new(Vec::new()));
        let probe = ProbeHandle::new();
        let (alert_sink, stats_sink) = (Rc::clone(&alerts), Rc::clone(&stats));
        let (mut input, mut capability) = worker.dataflow::<u64, _, _>(|scope| {
            let ((input, capability), trades) =
                scope.new_unordered_input::<CapacityContainerBuilder<Vec<Trade>>>();
            let streams = if by_symbol {
                let trades = trades.exchange(|t: &Trade| t.symbol.stable_hash());
                market_alerts_by_symbol(trades, &config, &windows)
            } else {
                market_alerts(trades, &config, &windows)
            };
            streams
                .alerts
                .inspect_core(move |event| {
                    if let Ok((stamp, batch)) = event {
                        let time = stamp.elements()[0];
                        let mut sink = alert_sink.borrow_mut();
                        sink.extend(batch.iter().map(|a: &Alert| (time, a.clone())));
                    }
                })
                .probe_with(&probe);
            streams
                .wash_stats
                .inspect_core(move |event| {
                    if let Ok((stamp, batch)) = event {
                        let time = stamp.elements()[0];
                        let mut sink = stats_sink.borrow_mut();
                        sink.extend(batch.iter().map(|s: &WashStats| (time, s.clone())));
                    }
                })
                .probe_with(&probe);
            (input, capability)
        });
        let mut max_seen = 0u64;
        for (n, trade) in arrivals.iter().skip(index).step_by(peers).enumerate() {
            let time = windows.coarsen(trade.time_ms);
            input
                .activate()
                .session(&capability.delayed(&time))
                .give(*trade);
            max_seen = max_seen.max(trade.time_ms);
            let watermark = windows.coarsen(max_seen.saturating_sub(LATENESS));
            if watermark > *capability.time() {
                capability.downgrade(&watermark);
            }
            if n % 256 == 0 {
                worker.step();
            }
        }
        drop(capability);
        while !probe.done() {
            worker.step();
        }
        (alerts.take(), stats.take())
    })
    .expect("timely starts");
    let mut output = Output::default();
    for result in guards.join() {
        let (alerts, stats) = result.expect("worker finishes");
        output.alerts.extend(alerts);
        output.stats.extend(stats);
    }
    output.normalized()
}

/// Four symbols (20 down to 4 trades per second), 12 slots of 3 minutes with anomalies.
fn small_market(seed: u64) -> (Vec<Trade>, Vec<synth::Truth>) {
    synth::market(seed, &SPECS[2..], 12, true)
}

#[test]
fn every_rule_matches_its_sequential_reference_on_1_and_3_workers() {
    let (trades, _) = small_market(7);
    let config = MarketConfig::default();
    let one = run(&trades, &config, "1s,1m", 1, None);
    assert_eq!(
        one.keys(AlertKind::BadTick),
        reference::bad_ticks(&config, &trades)
    );
    assert_eq!(
        one.keys(AlertKind::VolumeBurst),
        reference::bursts(&config, &trades)
    );
    assert_eq!(
        one.keys(AlertKind::PumpAndDump),
        reference::pumps(&config, &trades)
    );
    let mut wash = one.keys(AlertKind::Benford);
    wash.extend(one.keys(AlertKind::RoundSizes));
    wash.sort();
    assert_eq!(wash, reference::wash(&config, 60_000, &trades));
    // Every kind fired at least once, so the comparison above is not vacuous.
    for kind in synth::KINDS {
        assert!(!one.keys(kind).is_empty(), "no {kind} alert");
    }
    // The wash rows: one per symbol and minute with a trade, counts as the reference's.
    let windows = reference::wash_windows(&trades, 60_000);
    assert_eq!(one.stats.len(), windows.len());
    for (_, row) in &one.stats {
        let (n, digits, round) = windows[&(row.symbol, row.start_ms)];
        assert_eq!(
            (row.trades, row.first_digits, row.round),
            (n, digits, round)
        );
    }
    for (time, row) in &one.stats {
        assert_eq!(*time, row.time_of_close());
    }

    let three = run(&trades, &config, "1s,1m", 3, Some(11));
    assert_eq!(one, three);
    // Trades already partitioned by symbol need no exchange of the rules' own.
    let by_symbol = run_routed(&trades, &config, "1s,1m", 3, Some(11), true);
    assert_eq!(one, by_symbol);
    let shuffled = run(&trades, &config, "1s,1m", 1, Some(12));
    assert_eq!(one, shuffled);
}

trait CloseTime {
    fn time_of_close(&self) -> u64;
}

impl CloseTime for WashStats {
    /// The last timely time of the window (granule 1 s).
    fn time_of_close(&self) -> u64 {
        self.start_ms + self.window_ms - 1000
    }
}

#[test]
fn a_finer_granule_gives_the_same_alerts_and_rows() {
    // With windows 250ms,1m timely times are 250 ms apart: seconds and windows then close
    // on wake-ups between trades, and every alert must still be the same.
    let (trades, _) = synth::market(3, &SPECS[3..5], 6, true);
    let config = MarketConfig::default();
    let coarse = run(&trades, &config, "1s,1m", 1, None);
    let fine = run(&trades, &config, "250ms,1m", 2, Some(5));
    let strip = |o: &Output| -> Vec<(AlertKind, Symbol, u64, Vec<u64>, String)> {
        let mut v: Vec<_> = o
            .alerts
            .iter()
            .map(|(_, a)| {
                (
                    a.kind,
                    a.symbol,
                    a.event_ms,
                    a.trade_ids.clone(),
                    a.details.clone(),
                )
            })
            .collect();
        v.sort();
        v
    };
    // Everything is read per second or per window (bad ticks take their statistics at the
    // start of each second), so nothing may differ.
    assert!(
        !coarse.keys(AlertKind::BadTick).is_empty(),
        "no bad tick to compare"
    );
    assert_eq!(strip(&coarse), strip(&fine));
    assert_eq!(
        reference::bad_ticks(&config, &trades),
        fine.keys(AlertKind::BadTick)
    );
}

#[test]
fn a_run_resumed_from_the_horizon_emits_the_same_alerts_from_its_frontier_on() {
    let (trades, _) = small_market(21);
    let config = MarketConfig::default();
    let windows = Windows::parse("1s,1m").expect("valid");
    let full = run(&trades, &config, "1s,1m", 2, Some(1));
    let horizon = horizon(&config, &windows);
    assert!(horizon.history_ms >= 600_000, "{horizon:?}");
    let mut checked = 0;
    for minutes in [13u64, 22, 29] {
        let frontier = synth::T0 + minutes * 60_000 + 17_000;
        let from = horizon.replay_from(frontier);
        let suffix: Vec<Trade> = trades
            .iter()
            .filter(|t| t.time_ms >= from)
            .copied()
            .collect();
        let resumed = run(&suffix, &config, "1s,1m", 3, Some(minutes));
        let later = |o: &Output| Output {
            alerts: o
                .alerts
                .iter()
                .filter(|(t, _)| *t >= frontier)
                .cloned()
                .collect(),
            stats: o
                .stats
                .iter()
                .filter(|(t, _)| *t >= frontier)
                .cloned()
                .collect(),
        };
        let expected = later(&full);
        checked += expected.alerts.len();
        assert_eq!(later(&resumed), expected, "resumed at {frontier}");
    }
    assert!(checked > 10, "only {checked} alerts after the frontiers");
}

#[test]
fn rules_switched_off_stay_silent() {
    let (trades, _) = synth::market(5, &SPECS[3..5], 6, true);
    let mut config = MarketConfig::default();
    config.bad_tick.enabled = false;
    config.volume_burst.enabled = false;
    config.benford.enabled = false;
    let output = run(&trades, &config, "1s,1m", 1, None);
    let kinds: BTreeSet<AlertKind> = output.alerts.iter().map(|(_, a)| a.kind).collect();
    assert!(kinds.is_subset(&[AlertKind::PumpAndDump, AlertKind::RoundSizes].into()));
    assert!(!output.stats.is_empty());
    // Without bad-tick flags the pump rule reads every price; it still agrees with the
    // reference given the same switch.
    assert_eq!(
        output.keys(AlertKind::PumpAndDump),
        reference::pumps(&config, &trades)
    );
}

/// Small random markets for the property test: a random walk in ticks with spikes,
/// floods and pauses, sizes with many round values, over a few minutes.
fn random_market() -> impl Strategy<Value = Vec<Trade>> {
    let step = (0u64..1500, -3i64..=3, 1i64..400, 0u8..40);
    prop::collection::vec((0usize..2, step), 50..800).prop_map(|rows| {
        let symbols = ["AAA", "BBB"].map(|s| Symbol::new(s).expect("short"));
        let mut time = [synth::T0; 2];
        let mut price = [100_000i64; 2];
        let mut id = [0u64; 2];
        let mut trades = Vec::new();
        for (s, (gap, move_ticks, lots, event)) in rows {
            price[s] = (price[s] + move_ticks).max(10);
            let (gap, spike) = match event {
                0 => (gap * 30, 0),         // a pause
                1 => (gap, price[s] / 10),  // a spike up
                2 => (gap, -price[s] / 10), // a spike down
                3..=12 => (gap % 20, 0),    // a flood
                13 => (gap, price[s] / 40), // a step up
                _ => (gap, 0),
            };
            if event == 13 {
                price[s] += spike;
            }
            time[s] += gap;
            id[s] += 1;
            let p = if event == 1 || event == 2 {
                price[s] + spike
            } else {
                price[s]
            };
            trades.push(Trade {
                symbol: symbols[s],
                id: id[s],
                price: Fixed(p * 1_000_000),
                qty: Fixed(lots * 1_000_000),
                time_ms: time[s],
                buyer_maker: event % 2 == 0,
                buyer: None,
                seller: None,
            });
        }
        trades
    })
}

/// Thresholds small enough for small random inputs to cross them.
fn sensitive() -> MarketConfig {
    let mut config = MarketConfig::default();
    config.bad_tick.min_trades = 5;
    config.bad_tick.trades = 20;
    config.bad_tick.max_age_ms = 20_000;
    config.bad_tick.k = 4.0;
    config.volume_burst.baseline_seconds = 10;
    config.volume_burst.min_history_seconds = 5;
    config.volume_burst.min_trades = 4;
    config.pump_and_dump.baseline_seconds = 5;
    config.pump_and_dump.min_baseline_trades = 2;
    config.pump_and_dump.min_rise_seconds = 2;
    config.pump_and_dump.max_rise_seconds = 20;
    config.pump_and_dump.max_fall_seconds = 10;
    config.pump_and_dump.min_rise = 0.02;
    config.pump_and_dump.volume_ratio = 1.0;
    config.benford.min_trades = 20;
    config.benford.chi2 = 10.0;
    config.round_sizes.min_trades = 5;
    config.round_sizes.min_previous_windows = 1;
    config.round_sizes.z = 1.0;
    config.round_sizes.min_excess = 0.05;
    config
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn random_markets_match_the_references(trades in random_market()) {
        let config = sensitive();
        let windows = "1s,10s";
        let one = run(&trades, &config, windows, 1, None);
        prop_assert_eq!(one.keys(AlertKind::BadTick), reference::bad_ticks(&config, &trades));
        prop_assert_eq!(one.keys(AlertKind::VolumeBurst), reference::bursts(&config, &trades));
        prop_assert_eq!(one.keys(AlertKind::PumpAndDump), reference::pumps(&config, &trades));
        let mut wash = one.keys(AlertKind::Benford);
        wash.extend(one.keys(AlertKind::RoundSizes));
        wash.sort();
        prop_assert_eq!(wash, reference::wash(&config, 10_000, &trades));
        let three = run(&trades, &config, windows, 3, Some(trades.len() as u64));
        prop_assert_eq!(one, three);
    }
}

/// Whether `alert` matches `truth` (the contract's rule: same kind and symbol, and trade ids
/// that intersect, or for the window kinds the same window).
fn matches(alert: &Alert, truth: &synth::Truth) -> bool {
    if alert.kind != truth.kind || alert.symbol != truth.symbol {
        return false;
    }
    match truth.window_start {
        Some(start) => alert.event_ms - alert.event_ms % 60_000 == start,
        None => alert
            .trade_ids
            .iter()
            .any(|id| truth.ids.binary_search(id).is_ok()),
    }
}

#[test]
#[ignore = "long: run with --release -- --ignored"]
fn precision_and_recall_on_synthetic_injections() {
    let config = MarketConfig::default();
    let (trades, mut truths) = synth::market(2026, &SPECS, 100, true);
    for truth in &mut truths {
        truth.ids.sort_unstable();
    }
    let output = run(&trades, &config, "1s,1m", 2, Some(9));
    println!("{} trades, {} injections", trades.len(), truths.len());
    println!(
        "{:<14} {:>6} {:>6} {:>9} {:>9}",
        "kind", "truth", "alerts", "recall", "precision"
    );
    for kind in synth::KINDS {
        let kind_truths: Vec<&synth::Truth> = truths.iter().filter(|t| t.kind == kind).collect();
        let alerts: Vec<&Alert> = output
            .alerts
            .iter()
            .map(|(_, a)| a)
            .filter(|a| a.kind == kind)
            .collect();
        let found = kind_truths
            .iter()
            .filter(|t| alerts.iter().any(|a| matches(a, t)))
            .count();
        let right = alerts
            .iter()
            .filter(|a| kind_truths.iter().any(|t| matches(a, t)))
            .count();
        // The margin: how far past its threshold the weakest true alert is (score ≥ 1).
        let weakest = alerts
            .iter()
            .filter(|a| kind_truths.iter().any(|t| matches(a, t)))
            .map(|a| a.score)
            .fold(f64::INFINITY, f64::min);
        println!(
            "{:<14} weakest true alert: score {weakest:.2}",
            kind.as_str()
        );
        let recall = found as f64 / kind_truths.len() as f64;
        let precision = right as f64 / alerts.len().max(1) as f64;
        println!(
            "{:<14} {:>6} {:>6} {:>9.4} {:>9.4}",
            kind.as_str(),
            kind_truths.len(),
            alerts.len(),
            recall,
            precision
        );
        for a in alerts
            .iter()
            .filter(|a| !kind_truths.iter().any(|t| matches(a, t)))
            .take(3)
        {
            println!(
                "  unmatched: {} {} {}",
                a.symbol,
                a.event_ms,
                a.details.chars().take(300).collect::<String>()
            );
        }
        assert!(
            recall >= 0.99 && precision >= 0.99,
            "{kind}: recall {recall}, precision {precision}"
        );
    }

    let (clean, _) = synth::market(4242, &SPECS, 100, false);
    let output = run(&clean, &config, "1s,1m", 2, Some(10));
    let per_million = output.alerts.len() as f64 * 1e6 / clean.len() as f64;
    println!(
        "clean: {} trades, {} alerts, {per_million:.2} per million trades",
        clean.len(),
        output.alerts.len()
    );
    for (_, a) in output.alerts.iter().take(5) {
        println!(
            "  {} {} {}",
            a.kind,
            a.symbol,
            a.details.chars().take(200).collect::<String>()
        );
    }
}

/// Trades per second through one dataflow on 2 workers, input pre-built and spread over
/// the workers in time order.
fn throughput(trades: &Arc<Vec<Trade>>, market: bool) -> f64 {
    let trades = Arc::clone(trades);
    let start = Instant::now();
    let n = trades.len();
    timely::execute(timely::Config::process(2), move |worker| {
        let windows = Windows::parse("1s,1m").expect("valid");
        let config = MarketConfig::default();
        let index = worker.index();
        let peers = worker.peers();
        let probe = ProbeHandle::new();
        let (mut input, mut capability) = worker.dataflow::<u64, _, _>(|scope| {
            let ((input, capability), stream) =
                scope.new_unordered_input::<CapacityContainerBuilder<Vec<Trade>>>();
            if market {
                let streams = market_alerts(stream, &config, &windows);
                streams.alerts.probe_with(&probe);
                streams.wash_stats.probe_with(&probe);
            } else {
                candles(stream, &windows).probe_with(&probe);
            }
            (input, capability)
        });
        let chunk = 1024;
        let mine: Vec<Trade> = trades.iter().skip(index).step_by(peers).copied().collect();
        for batch in mine.chunks(chunk) {
            let time = windows.coarsen(batch[0].time_ms);
            if time > *capability.time() {
                capability.downgrade(&time);
            }
            let mut rest = batch;
            while let Some(first) = rest.first() {
                let time = windows.coarsen(first.time_ms);
                let same = rest
                    .iter()
                    .take_while(|t| windows.coarsen(t.time_ms) == time)
                    .count();
                input
                    .activate()
                    .session(&capability.delayed(&time))
                    .give_iterator(rest[..same].iter().copied());
                rest = &rest[same..];
            }
            worker.step();
        }
        drop(capability);
        while !probe.done() {
            worker.step();
        }
    })
    .expect("timely starts")
    .join();
    n as f64 / start.elapsed().as_secs_f64()
}

#[test]
#[ignore = "a speed check: run with --release -- --ignored --nocapture"]
fn cost_next_to_candles() {
    // Clean trades in time order across all symbols, at the generator's rates ×10.
    let mut specs = SPECS;
    for spec in &mut specs {
        spec.rate *= 10.0;
    }
    let (mut trades, _) = synth::market(1, &specs, 10, false);
    trades.sort_by_key(|t| (t.time_ms, t.symbol, t.id));
    let trades = Arc::new(trades);
    let _warm = throughput(&trades, false);
    let candles = throughput(&trades, false);
    let market = throughput(&trades, true);
    println!(
        "{} trades: candles {:.0} trades/s, market {:.0} trades/s, market/candles {:.2}",
        trades.len(),
        candles,
        market,
        market / candles
    );
}
