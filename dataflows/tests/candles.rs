//! The candle dataflow against the independent oracle (tickflow-oracle: decimal strings and
//! big integers), on random inputs, on 1 and 4 workers: random disorder within the allowed
//! lateness, ties in time, several symbols, duplicates, conflicting copies of one trade, and
//! prices and quantities up to the largest value held.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use tickflow_dataflows::candles;
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

/// Prices and quantities in units of `10^-8`: mostly everyday values, some at the top of the
/// range (up to `i64::MAX` units, 92233720368.54775807), where sums outgrow 128 bits.
fn units() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 1i64..50_000_000,
        1 => (i64::MAX - 1_000)..=i64::MAX,
        1 => 1i64..=i64::MAX,
    ]
}

/// What follows a trade in the input, besides itself: nothing, or a second copy, arriving with
/// its own delay, that is exact, has another price, or has another quantity.
#[derive(Clone, Copy, Debug)]
enum Again {
    Same,
    OtherPrice(i64),
    OtherQty(i64),
}

fn copy() -> impl Strategy<Value = Option<(Again, u64)>> {
    let kind = prop_oneof![
        Just(Again::Same),
        units().prop_map(Again::OtherPrice),
        units().prop_map(Again::OtherQty),
    ];
    prop_oneof![6 => Just(None), 1 => (kind, 0u64..LATENESS).prop_map(Some)]
}

/// Trades of a few symbols with event times that tie often, some of them twice (exact
/// duplicates and conflicting copies: same symbol, id and time), in an arrival order that is
/// disordered by less than the lateness.
fn market() -> impl Strategy<Value = Vec<Trade>> {
    let trade = (0usize..3, 0u64..6, units(), units(), 0u64..LATENESS, copy());
    prop::collection::vec(trade, 1..300).prop_map(|rows| {
        let symbols = ["BTCUSDT", "ETHUSDT", "DOGEUSDT"].map(|s| Symbol::new(s).expect("short"));
        let mut time = 1_700_000_000_000u64;
        let mut ids = [0u64; 3];
        let mut arrivals: Vec<(u64, usize, Trade)> = Vec::new();
        for (seq, (symbol, step, price, qty, delay, copy)) in rows.into_iter().enumerate() {
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
            arrivals.push((time + delay, 2 * seq, trade));
            if let Some((kind, delay)) = copy {
                let copy = match kind {
                    Again::Same => trade,
                    Again::OtherPrice(price) => Trade {
                        price: Fixed(price),
                        ..trade
                    },
                    Again::OtherQty(qty) => Trade {
                        qty: Fixed(qty),
                        ..trade
                    },
                };
                arrivals.push((time + delay, 2 * seq + 1, copy));
            }
        }
        arrivals.sort_by_key(|&(arrival, seq, _)| (arrival, seq));
        arrivals.into_iter().map(|(_, _, trade)| trade).collect()
    })
}

/// The oracle's candles of `trades`, as rows of text. The trades reach the oracle as
/// decimal strings: it never sees tickflow's fixed-point values.
fn oracle(trades: &[Trade], sizes: &[u64]) -> Vec<Vec<String>> {
    let trades: Vec<tickflow_oracle::Trade> = trades
        .iter()
        .map(|t| {
            tickflow_oracle::Trade::new(
                t.symbol.as_str(),
                t.id,
                &t.price.to_string(),
                &t.qty.to_string(),
                t.time_ms,
            )
            .expect("a valid trade")
        })
        .collect();
    let mut rows: Vec<Vec<String>> = tickflow_oracle::candles(&trades, sizes)
        .iter()
        .map(tickflow_oracle::Candle::row)
        .collect();
    rows.sort();
    rows
}

/// The dataflow's candles as rows of text, in the oracle's column order.
fn rows(candles: &[Candle]) -> Vec<Vec<String>> {
    let null = || "NULL".to_string();
    let mut rows: Vec<Vec<String>> = candles
        .iter()
        .map(|c| {
            vec![
                c.symbol.to_string(),
                c.window_ms.to_string(),
                c.start_ms.to_string(),
                c.open.to_string(),
                c.high.to_string(),
                c.low.to_string(),
                c.close.to_string(),
                c.volume.to_string(),
                c.quote_volume.map_or_else(null, |q| q.to_string()),
                c.vwap.map_or_else(null, |v| v.to_string()),
                c.trades.map_or_else(null, |t| t.to_string()),
            ]
        })
        .collect();
    rows.sort();
    rows
}

fn window_sizes() -> impl Strategy<Value = Vec<u64>> {
    prop::sample::subsequence(vec![3u64, 5, 10, 20, 60], 1..=3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn candles_match_the_oracle_on_one_and_four_workers(
        trades in market(),
        sizes in window_sizes(),
    ) {
        let expected = oracle(&trades, &sizes);
        prop_assert_eq!(&rows(&run_dataflow(trades.clone(), sizes.clone(), 1)), &expected);
        prop_assert_eq!(&rows(&run_dataflow(trades, sizes, 4)), &expected);
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
