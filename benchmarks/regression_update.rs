//! Model update cost per candle: what one new sample costs the exact incremental regression,
//! for `d` features and a training window of `N` samples, one worker.
//!
//! Each step is one timely time: a sample enters as its statistics (`Stats::sample`), the
//! sample `N` steps older leaves as their negation, and the model is solved from the
//! symbol's new totals (`fit`), on random features (the candle columns are only 7, so `d`
//! up to 32 needs synthetic ones). The totals come two ways, side by side: the path
//! `dataflows::regression` takes (differential's `consolidate_stream`, then a running sum
//! of the changes in time order), and differential's `count_total` (an arrangement of every
//! change, which nothing reads back). The window is filled first (untimed), so every timed
//! step both inserts and retracts.
//!
//!     cargo run --release -p tickflow-benchmarks --bin regression-update -- [STEPS] [D,...]
//!
//! Prints one markdown row per (d, N): µs per candle each way (median of 3 timed blocks).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::difference::{Abelian, Semigroup};
use differential_dataflow::operators::CountTotal;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::{Inspect, UnorderedInput};
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use tickflow_operators::regression::{fit, Stats, LIMIT};

/// A cheap deterministic generator (xorshift), so the benchmark needs no RNG crate.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> i128 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // Prices and volumes of real size: up to ~1e12 at scale 1e8 (1e4 real units).
        i128::from(self.0 % 1_000_000_000_000) + 1
    }
}

fn main() -> Result<(), String> {
    let steps: usize = match std::env::args().nth(1) {
        Some(text) => text.parse().map_err(|e| format!("STEPS {text:?}: {e}"))?,
        None => 20_000,
    };
    let features: Vec<usize> = match std::env::args().nth(2) {
        Some(list) => list
            .split(',')
            .map(|d| d.parse().map_err(|e| format!("D {d:?}: {e}")))
            .collect::<Result<_, _>>()?,
        None => vec![4, 8, 16, 32],
    };
    println!(
        "| d | N | µs per candle: running sum (the dataflow's path) | µs per candle: count_total | solved |"
    );
    println!("|---|---|---|---|---|");
    for &d in &features {
        for n in [100usize, 10_000, 1_000_000] {
            let (sum, solved) = measure(d, n, steps, false);
            let (arranged, _) = measure(d, n, steps, true);
            println!("| {d} | {n} | {sum:.2} | {arranged:.2} | {solved} |");
        }
    }
    Ok(())
}

/// Runs `fill + 3 · steps` steps; returns the median µs per step of the 3 timed blocks and
/// whether the last fit was solved.
fn measure(d: usize, n: usize, steps: usize, arranged: bool) -> (f64, bool) {
    let result = timely::execute_directly(move |worker| {
        let solved = Rc::new(RefCell::new(false));
        let seen = Rc::clone(&solved);
        let probe = ProbeHandle::new();
        let (mut input, mut capability) = worker.dataflow::<u64, _, _>(|scope| {
            let ((input, capability), updates) =
                scope.new_unordered_input::<CapacityContainerBuilder<Vec<(u8, u64, Stats)>>>();
            if arranged {
                updates
                    .as_collection()
                    .count_total()
                    .inner
                    .inspect(move |((_, stats), _, diff)| {
                        if *diff > 0 {
                            *seen.borrow_mut() = fit(stats, 0.0).status.solved();
                        }
                    })
                    .probe_with(&probe);
            } else {
                let mut total = Stats::default();
                updates
                    .as_collection()
                    .consolidate_stream()
                    .inner
                    .inspect(move |(_, _, change)| {
                        total.plus_equals(change);
                        *seen.borrow_mut() = fit(&total, 0.0).status.solved();
                    })
                    .probe_with(&probe);
            }
            (input, capability)
        });
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let mut window: VecDeque<(Vec<i128>, i128)> = VecDeque::with_capacity(n + 1);
        let mut time = 0u64;
        let mut step = |worker: &mut timely::worker::Worker| {
            let x: Vec<i128> = (0..d).map(|_| noise.next()).collect();
            let y = x.iter().sum::<i128>() / d as i128 + noise.next() % 1_000;
            debug_assert!(y < LIMIT);
            let mut updates = vec![(0u8, time, Stats::sample(&x, y).expect("in range"))];
            window.push_back((x, y));
            if window.len() > n {
                if let Some((x, y)) = window.pop_front() {
                    let mut leaving = Stats::sample(&x, y).expect("in range");
                    leaving.negate();
                    updates.push((0u8, time, leaving));
                }
            }
            input
                .activate()
                .session(&capability)
                .give_iterator(updates.into_iter());
            time += 1;
            capability.downgrade(&time);
            while probe.less_than(&time) {
                worker.step();
            }
        };
        // Fill the window without timing: from here on every step also retracts.
        for _ in 0..n {
            step(worker);
        }
        let mut blocks = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            for _ in 0..steps {
                step(worker);
            }
            blocks.push(started.elapsed().as_secs_f64() * 1e6 / steps as f64);
        }
        blocks.sort_by(f64::total_cmp);
        let solved = *solved.borrow();
        (blocks[1], solved)
    });
    result
}
