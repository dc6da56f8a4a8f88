//! The candle dataflow against the sequential reference, on random inputs, on 1 and 4
//! workers: random disorder within the allowed lateness, ties in time, several symbols.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use tickflow_dataflows::{candles, reference};
use tickflow_operators::model::{Candle, Fixed, Symbol, Trade};
use tickflow_operators::window::Windows;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::Inspect;
use timely::dataflow::operators::core::UnorderedInput;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

const LATENESS: u64 = 40;

/// Runs `trades` (in arrival order) through the candle dataflow on `workers` threads. Each
/// worker plays one source partition: it takes every `workers`-th trade, stamps it with its
/// coarsened event time, and holds its capability at its watermark (max seen − lateness).
fn run_dataflow(trades: Vec<Trade>, sizes: Vec<u64>, workers: usize) -> Vec<Candle> {
    let config = timely::Config::process(workers);
    let guards = timely::execute(config, move |worker| {
        let windows = Windows::new(sizes.clone()).expect("valid windows");
        let index = worker.index();
        let peers = worker.peers();
        let output = Rc::new(RefCell::new(Vec::new()));
        let probe = ProbeHandle::new();
        let sink = Rc::clone(&output);
        let (mut input, mut capability) = worker.dataflow::<u64, _, _>(|scope| {
            let ((input, capability), trades) =
                scope.new_unordered_input::<CapacityContainerBuilder<Vec<Trade>>>();
            candles(trades, &windows)
                .inspect(move |candle| sink.borrow_mut().push(*candle))
                .probe_with(&probe);
            (input, capability)
        });
        let mut max_seen = 0u64;
        for trade in trades.iter().skip(index).step_by(peers) {
            let time = windows.coarsen(trade.time_ms);
            assert!(time >= *capability.time(), "generated input is never late");
            input
                .activate()
                .session(&capability.delayed(&time))
                .give(*trade);
            max_seen = max_seen.max(trade.time_ms);
            let watermark = windows.coarsen(max_seen.saturating_sub(LATENESS));
            if watermark > *capability.time() {
                capability.downgrade(&watermark);
            }
            worker.step();
        }
        drop(capability);
        while !probe.done() {
            worker.step();
        }
        output.take()
    })
    .expect("timely starts");
    let mut rows: Vec<Candle> = guards
        .join()
        .into_iter()
        .flat_map(|result| result.expect("worker finishes"))
        .collect();
    rows.sort();
    rows
}

/// Trades of a few symbols with event times that tie often, in an arrival order that is
/// disordered by less than the lateness.
fn market() -> impl Strategy<Value = Vec<Trade>> {
    let trade = (
        0usize..3,
        0u64..6,
        1i64..2_000_000,
        1i64..50_000_000,
        0u64..LATENESS,
    );
    prop::collection::vec(trade, 1..300).prop_map(|rows| {
        let symbols = ["BTCUSDT", "ETHUSDT", "DOGEUSDT"].map(|s| Symbol::new(s).expect("short"));
        let mut time = 1_700_000_000_000u64;
        let mut ids = [0u64; 3];
        let mut arrivals: Vec<(u64, usize, Trade)> = rows
            .into_iter()
            .enumerate()
            .map(|(seq, (symbol, step, price, qty, delay))| {
                time += step;
                ids[symbol] += 1;
                let trade = Trade {
                    symbol: symbols[symbol],
                    id: ids[symbol],
                    price: Fixed(price),
                    qty: Fixed(qty),
                    time_ms: time,
                    buyer_maker: seq % 2 == 0,
                    buyer: None,
                    seller: None,
                };
                (time + delay, seq, trade)
            })
            .collect();
        arrivals.sort_by_key(|&(arrival, seq, _)| (arrival, seq));
        arrivals.into_iter().map(|(_, _, trade)| trade).collect()
    })
}

fn window_sizes() -> impl Strategy<Value = Vec<u64>> {
    prop::sample::subsequence(vec![3u64, 5, 10, 20, 60], 1..=3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn candles_match_the_reference_on_one_and_four_workers(
        trades in market(),
        sizes in window_sizes(),
    ) {
        let expected = reference::candles(&trades, &sizes);
        prop_assert_eq!(&run_dataflow(trades.clone(), sizes.clone(), 1), &expected);
        prop_assert_eq!(&run_dataflow(trades, sizes, 4), &expected);
    }
}

#[test]
fn ties_in_time_are_broken_by_trade_id() {
    let symbol = Symbol::new("BTCUSDT").expect("short");
    let trade = |id, price| Trade {
        symbol,
        id,
        price: Fixed(price),
        qty: Fixed(100_000_000),
        time_ms: 5,
        buyer_maker: false,
        buyer: None,
        seller: None,
    };
    // Arrival order puts the largest id first; open must still be id 1 and close id 3.
    let rows = run_dataflow(vec![trade(3, 30), trade(1, 10), trade(2, 20)], vec![10], 2);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].open, rows[0].close), (Fixed(10), Fixed(30)));
    assert_eq!(
        (rows[0].high, rows[0].low, rows[0].trades),
        (Fixed(30), Fixed(10), Some(3))
    );
}
