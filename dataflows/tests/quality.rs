//! The quality dataflow against ground truth built into its input: a market with known
//! duplicates (on time in other partitions, conflicting, and late), dropped ids, late trades
//! and unreadable records, run on 1 and 3 workers in shuffled orders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::Inspect;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

use tickflow_dataflows::quality::{quality, QualityConfig, QualityRow, DUPLICATE};
use tickflow_operators::model::{Fixed, Symbol, Trade};
use tickflow_operators::source::{RejectRow, Sourced};
use tickflow_operators::window::Windows;

const H: u64 = 10_000;
const LATE_AT_MOST: u64 = 8_000;

/// One input record at the time it travels.
#[derive(Clone, Debug)]
enum Item {
    Trade(u64, Sourced),
    Reject(u64, RejectRow),
}

/// What the input holds, counted while it is built.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Truth {
    valid: u64,
    duplicate: u64,
    conflicting: u64,
    late: u64,
    malformed: u64,
    gap: u64,
    /// Distinct trades per (symbol, window start): valid counts per window.
    valid_by_window: BTreeMap<(String, u64), u64>,
}

fn trade(symbol: &str, id: u64, time_ms: u64, price: i64) -> Trade {
    Trade {
        symbol: Symbol::new(symbol).expect("short"),
        id,
        price: Fixed(price),
        qty: Fixed(100),
        time_ms,
        buyer_maker: id.is_multiple_of(2),
        buyer: None,
        seller: None,
    }
}

fn reject(partition: u32, offset: u64, reason: &str, symbol: Option<&str>) -> RejectRow {
    RejectRow {
        source: "test".to_owned(),
        partition,
        offset,
        received_ms: 0,
        reason: reason.to_owned(),
        detail: String::new(),
        raw: b"x".to_vec(),
        symbol: symbol.map(|s| Symbol::new(s).expect("short")),
        trade: None,
        id: None,
    }
}

/// A market of `n` trades per symbol, 5 ms apart, with defects injected by `seed`.
fn market(seed: u64, n: u64) -> (Vec<Item>, Truth) {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut items = Vec::new();
    let mut truth = Truth::default();
    let mut offsets = [0u64; 4];
    let mut next = |partition: usize| {
        offsets[partition] += 1;
        offsets[partition]
    };
    for symbol in ["AAA", "BBB"] {
        let base = 1_000_000u64;
        for k in 0..n {
            let id = base + k;
            let time = 1_000_000 + k * 5;
            let t = trade(symbol, id, time, 1_000 + (k % 7) as i64);
            // The first and last trades are never dropped, so every gap has two neighbours.
            let roll: f64 = rng.random();
            if k > 0 && k + 1 < n && roll < 0.02 {
                truth.gap += 1; // dropped
                continue;
            }
            let partition = rng.random_range(0..2usize);
            if k > 0 && k + 1 < n && roll < 0.04 {
                // Delivered late: after its partition's clock moved on, within the horizon.
                let delay = rng.random_range(3_000..LATE_AT_MOST);
                let mut row = reject(partition as u32, next(partition), "late", Some(symbol));
                row.trade = Some(t);
                items.push(Item::Reject(time + delay - (time + delay) % 1_000, row));
                truth.late += 1;
                continue;
            }
            items.push(Item::Trade(
                time - time % 1_000,
                Sourced {
                    trade: t,
                    partition: partition as u32,
                    offset: next(partition),
                },
            ));
            truth.valid += 1;
            *truth
                .valid_by_window
                .entry((symbol.to_owned(), time - time % 60_000))
                .or_default() += 1;
            if roll < 0.07 {
                // The same trade on time in the other partition, sometimes conflicting.
                let other = 1 - partition;
                let mut copy = t;
                if rng.random_bool(0.3) {
                    copy.price = Fixed(t.price.0 + 1);
                    truth.conflicting += 1;
                }
                items.push(Item::Trade(
                    time - time % 1_000,
                    Sourced {
                        trade: copy,
                        partition: other as u32,
                        offset: next(other),
                    },
                ));
                truth.duplicate += 1;
            } else if roll < 0.10 {
                // A late copy, within the horizon.
                let delay = rng.random_range(3_000..LATE_AT_MOST);
                let mut row = reject(2, next(2), "late", Some(symbol));
                row.trade = Some(t);
                items.push(Item::Reject(time + delay - (time + delay) % 1_000, row));
                truth.duplicate += 1;
            }
            if roll > 0.99 {
                items.push(Item::Reject(
                    time - time % 1_000,
                    reject(3, next(3), "malformed_json", None),
                ));
                truth.malformed += 1;
            }
        }
    }
    (items, truth)
}

/// Runs the quality dataflow on `workers` workers, feeding `items` from worker 0 in the
/// given order (times ascending between batches, any order within a time).
fn run(items: Vec<Item>, workers: usize) -> (Vec<QualityRow>, Vec<(String, u64)>, Vec<Trade>) {
    let items = Arc::new(items);
    let rows = Arc::new(Mutex::new(Vec::new()));
    let rejects = Arc::new(Mutex::new(Vec::new()));
    let trades = Arc::new(Mutex::new(Vec::new()));
    let (r, j, t) = (rows.clone(), rejects.clone(), trades.clone());
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut trades_in = InputHandle::<u64, CapacityContainerBuilder<Vec<Sourced>>>::new();
        let mut rejects_in = InputHandle::<u64, CapacityContainerBuilder<Vec<RejectRow>>>::new();
        let (r, j, t) = (r.clone(), j.clone(), t.clone());
        let probe = ProbeHandle::new();
        let windows = Windows::parse("1s,1m").expect("valid");
        worker.dataflow::<u64, _, _>(|scope| {
            let out = quality(
                scope.input_from(&mut trades_in),
                scope.input_from(&mut rejects_in),
                "test",
                &QualityConfig {
                    enabled: true,
                    dedup_horizon: H,
                },
                &windows,
            );
            out.quality
                .inspect(move |row| r.lock().expect("rows").push(row.clone()))
                .probe_with(&probe);
            out.rejects
                .inspect(move |row| {
                    j.lock()
                        .expect("rejects")
                        .push((row.reason.clone(), row.offset))
                })
                .probe_with(&probe);
            out.trades
                .inspect(move |trade| t.lock().expect("trades").push(*trade))
                .probe_with(&probe);
        });
        if worker.index() == 0 {
            let mut by_time: BTreeMap<u64, Vec<&Item>> = BTreeMap::new();
            for item in items.iter() {
                let time = match item {
                    Item::Trade(t, _) | Item::Reject(t, _) => *t,
                };
                by_time.entry(time).or_default().push(item);
            }
            for (time, batch) in by_time {
                trades_in.advance_to(time);
                rejects_in.advance_to(time);
                for item in batch {
                    match item {
                        Item::Trade(_, s) => trades_in.send(*s),
                        Item::Reject(_, r) => rejects_in.send(r.clone()),
                    }
                }
                worker.step();
            }
        }
        trades_in.close();
        rejects_in.close();
        while !probe.done() {
            worker.step();
        }
    })
    .expect("timely");
    let mut rows = std::mem::take(&mut *rows.lock().expect("rows"));
    rows.sort_by(|a, b| (&a.symbol, a.start_ms).cmp(&(&b.symbol, b.start_ms)));
    let mut rejects = std::mem::take(&mut *rejects.lock().expect("rejects"));
    rejects.sort();
    let mut trades = std::mem::take(&mut *trades.lock().expect("trades"));
    trades.sort_by_key(|t| (t.symbol.to_string(), t.id));
    (rows, rejects, trades)
}

fn sums(rows: &[QualityRow]) -> Truth {
    let mut t = Truth::default();
    for r in rows {
        assert_eq!(
            r.total,
            r.valid + r.malformed + r.invalid + r.duplicate + r.late,
            "{r:?}"
        );
        t.valid += r.valid;
        t.duplicate += r.duplicate;
        t.conflicting += r.conflicting;
        t.late += r.late;
        t.malformed += r.malformed;
        t.gap += r.gap;
        if r.valid > 0 {
            *t.valid_by_window
                .entry((r.symbol.clone(), r.start_ms))
                .or_default() += r.valid;
        }
    }
    t
}

#[test]
fn counts_equal_the_injected_defects_on_one_and_three_workers() {
    let (items, truth) = market(7, 4_000);
    assert!(truth.duplicate > 50 && truth.gap > 50 && truth.late > 50 && truth.conflicting > 5);
    let (rows, rejects, trades) = run(items.clone(), 1);
    assert_eq!(sums(&rows), truth);
    // Every input record is a contribution or a reject: the dropped copies are rejects.
    let inputs = items.len() as u64;
    assert_eq!(trades.len() as u64 + rejects.len() as u64, inputs);
    let dups = rejects.iter().filter(|(r, _)| r == DUPLICATE).count() as u64;
    assert_eq!(dups, truth.duplicate);
    // Each trade once.
    let distinct: BTreeSet<(String, u64)> = trades
        .iter()
        .map(|t| (t.symbol.to_string(), t.id))
        .collect();
    assert_eq!(distinct.len(), trades.len());

    let mut shuffled = items;
    shuffled.shuffle(&mut Pcg64Mcg::seed_from_u64(1));
    let three = run(shuffled, 3);
    assert_eq!(three, (rows, rejects, trades));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]
    #[test]
    fn any_market_any_order(seed in 0u64..1_000, n in 50u64..800) {
        let (items, truth) = market(seed, n);
        let one = run(items.clone(), 1);
        prop_assert_eq!(sums(&one.0), truth);
        let mut shuffled = items;
        shuffled.shuffle(&mut Pcg64Mcg::seed_from_u64(seed));
        prop_assert_eq!(run(shuffled, 2), one);
    }
}
