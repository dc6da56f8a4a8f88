//! The two stages of windowed aggregation.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;
use timely::progress::frontier::MutableAntichain;
use timely::ExchangeData;

use super::Windows;

/// A key within one window.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowKey<K> {
    /// The grouping key (a symbol, say).
    pub key: K,
    /// Window size.
    pub window_ms: u64,
    /// Window start; the window is `[start_ms, start_ms + window_ms)`.
    pub start_ms: u64,
}

impl<K> WindowKey<K> {
    /// Exclusive end of the window.
    pub fn end_ms(&self) -> u64 {
        self.start_ms + self.window_ms
    }
}

/// Open windows of one operator, by end time, each with the capability to emit it.
///
/// The capability of a slot is held at `end - 1`, the largest time a record of the window
/// can carry. Holding it is what tells downstream operators that this window may still be
/// emitted; it is released the moment the window is, so state and capabilities are freed
/// together.
struct Stash<K, A> {
    slots: BTreeMap<u64, Slot<K, A>>,
}

/// The capability and the accumulators of one window end.
type Slot<K, A> = (Capability<u64>, FxHashMap<WindowKey<K>, A>);

impl<K, A> Stash<K, A> {
    fn new() -> Self {
        Stash {
            slots: BTreeMap::new(),
        }
    }

    /// The accumulators of the window ending at `end`, created with `capability` if new.
    fn slot(
        &mut self,
        end: u64,
        capability: impl FnOnce() -> Capability<u64>,
    ) -> &mut FxHashMap<WindowKey<K>, A> {
        &mut self
            .slots
            .entry(end)
            .or_insert_with(|| (capability(), FxHashMap::default()))
            .1
    }

    /// Removes and passes on every window that the frontier has passed, earliest first.
    fn drain_closed(
        &mut self,
        frontier: &MutableAntichain<u64>,
        mut emit: impl FnMut(&Capability<u64>, FxHashMap<WindowKey<K>, A>),
    ) {
        while let Some(entry) = self.slots.first_entry() {
            if frontier.frontier().less_than(entry.key()) {
                break;
            }
            let (capability, accumulators) = entry.remove();
            emit(&capability, accumulators);
        }
    }
}

/// Pre-aggregates records into per-window, per-key accumulators inside each worker.
pub trait AggregateWindows<'scope, D>: Sized {
    /// For every record and every window size, adds the record to the accumulator of its key
    /// in the window containing the record's timestamp; emits `(WindowKey, accumulator)` for
    /// each window once the input frontier passes its end, at time `end - 1`.
    ///
    /// ```
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Extract;
    /// use tickflow_operators::window::{AggregateWindows, Windows};
    ///
    /// let windows = Windows::parse("2ms").unwrap();
    /// let captured = timely::example(move |scope| {
    ///     // Records timestamped by themselves: (key, value) at time value.
    ///     timely::dataflow::operators::ToStream::to_stream(vec![0u64, 1, 2, 3, 3], scope)
    ///         .container::<Vec<u64>>()
    ///         .aggregate_windows(&windows, |x| x % 2, |sum: &mut u64, x| *sum += x)
    ///         .capture()
    /// });
    /// let mut sums: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// sums.sort();
    /// // ToStream sends everything at time 0, so all five land in the window [0, 2).
    /// assert_eq!(sums.iter().map(|(k, s)| (k.key, *s)).collect::<Vec<_>>(), vec![(0, 2), (1, 7)]);
    /// ```
    fn aggregate_windows<K, A, KF, AF>(
        self,
        windows: &Windows,
        key: KF,
        add: AF,
    ) -> Stream<'scope, u64, Vec<(WindowKey<K>, A)>>
    where
        K: Hash + Eq + Clone + 'static,
        A: Default + 'static,
        KF: Fn(&D) -> K + 'static,
        AF: Fn(&mut A, &D) + 'static,
    {
        self.aggregate_windows_named("AggregateWindows", windows, key, add)
    }

    /// [`AggregateWindows::aggregate_windows`] with an operator name.
    fn aggregate_windows_named<K, A, KF, AF>(
        self,
        name: &str,
        windows: &Windows,
        key: KF,
        add: AF,
    ) -> Stream<'scope, u64, Vec<(WindowKey<K>, A)>>
    where
        K: Hash + Eq + Clone + 'static,
        A: Default + 'static,
        KF: Fn(&D) -> K + 'static,
        AF: Fn(&mut A, &D) + 'static;
}

impl<'scope, D: 'static> AggregateWindows<'scope, D> for Stream<'scope, u64, Vec<D>> {
    fn aggregate_windows_named<K, A, KF, AF>(
        self,
        name: &str,
        windows: &Windows,
        key: KF,
        add: AF,
    ) -> Stream<'scope, u64, Vec<(WindowKey<K>, A)>>
    where
        K: Hash + Eq + Clone + 'static,
        A: Default + 'static,
        KF: Fn(&D) -> K + 'static,
        AF: Fn(&mut A, &D) + 'static,
    {
        let sizes = windows.sizes().to_vec();
        self.unary_frontier(Pipeline, name, move |_capability, _info| {
            let mut stash = Stash::<K, A>::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each_stamp(|capability, batches| {
                    let Some(&time) = capability.least() else {
                        return;
                    };
                    let batches: Vec<&mut Vec<D>> = batches.collect();
                    for &size in &sizes {
                        let start = time - time % size;
                        let end = start + size;
                        // `time <= end - 1` because `time` lies in `[start, end)`.
                        let slot = stash.slot(end, || capability.delayed(&(end - 1), port));
                        for record in batches.iter().flat_map(|batch| batch.iter()) {
                            let window_key = WindowKey {
                                key: key(record),
                                window_ms: size,
                                start_ms: start,
                            };
                            add(slot.entry(window_key).or_default(), record);
                        }
                    }
                    for batch in batches {
                        batch.clear();
                    }
                });
                stash.drain_closed(frontier, |capability, accumulators| {
                    output
                        .session(capability)
                        .give_iterator(accumulators.into_iter());
                });
            }
        })
    }
}

/// Merges partial window aggregates from all workers and emits each window once, final.
pub trait MergeWindows<'scope, K, A>: Sized {
    /// Exchanges `(WindowKey, partial)` pairs by `hash` of the key, merges the partials of
    /// each window with `merge`, and once the frontier passes the window's end emits
    /// `finish(key, total)` (dropping `None`s). Inputs must travel at a time before their
    /// window's end, as [`AggregateWindows`] emits them.
    ///
    /// ```
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Extract;
    /// use tickflow_operators::window::{MergeWindows, WindowKey};
    ///
    /// let captured = timely::example(|scope| {
    ///     let key = WindowKey { key: 7u32, window_ms: 10, start_ms: 0 };
    ///     vec![(key, 1u64), (key, 2)]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .merge_windows(|k| u64::from(*k), |a, b| *a += b, |k, total| Some((k.key, total)))
    ///         .capture()
    /// });
    /// let rows: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// assert_eq!(rows, vec![(7, 3)]);
    /// ```
    fn merge_windows<R, H, M, F>(self, hash: H, merge: M, finish: F) -> Stream<'scope, u64, Vec<R>>
    where
        R: 'static,
        H: Fn(&K) -> u64 + 'static,
        M: Fn(&mut A, &A) + 'static,
        F: Fn(WindowKey<K>, A) -> Option<R> + 'static,
    {
        self.merge_windows_named("MergeWindows", hash, merge, finish)
    }

    /// [`MergeWindows::merge_windows`] with an operator name.
    fn merge_windows_named<R, H, M, F>(
        self,
        name: &str,
        hash: H,
        merge: M,
        finish: F,
    ) -> Stream<'scope, u64, Vec<R>>
    where
        R: 'static,
        H: Fn(&K) -> u64 + 'static,
        M: Fn(&mut A, &A) + 'static,
        F: Fn(WindowKey<K>, A) -> Option<R> + 'static;
}

impl<'scope, K, A> MergeWindows<'scope, K, A> for Stream<'scope, u64, Vec<(WindowKey<K>, A)>>
where
    K: ExchangeData + Hash + Eq + Clone,
    A: ExchangeData,
{
    fn merge_windows_named<R, H, M, F>(
        self,
        name: &str,
        hash: H,
        merge: M,
        finish: F,
    ) -> Stream<'scope, u64, Vec<R>>
    where
        R: 'static,
        H: Fn(&K) -> u64 + 'static,
        M: Fn(&mut A, &A) + 'static,
        F: Fn(WindowKey<K>, A) -> Option<R> + 'static,
    {
        let pact = Exchange::new(move |(window_key, _): &(WindowKey<K>, A)| hash(&window_key.key));
        self.unary_frontier(pact, name, move |_capability, _info| {
            let mut stash = Stash::<K, A>::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each_stamp(|capability, batches| {
                    let Some(&time) = capability.least() else {
                        return;
                    };
                    for (window_key, partial) in batches.flat_map(|batch| batch.drain(..)) {
                        let end = window_key.end_ms();
                        // A partial travels before its window's end; should one arrive later
                        // its window is held open until the frontier passes its own time.
                        let hold = time.max(end - 1);
                        let slot = stash.slot(end, || capability.delayed(&hold, port));
                        match slot.get_mut(&window_key) {
                            Some(total) => merge(total, &partial),
                            None => {
                                slot.insert(window_key, partial);
                            }
                        }
                    }
                });
                stash.drain_closed(frontier, |capability, totals| {
                    let mut session = output.session(capability);
                    for (window_key, total) in totals {
                        if let Some(row) = finish(window_key, total) {
                            session.give(row);
                        }
                    }
                });
            }
        })
    }
}
