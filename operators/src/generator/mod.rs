//! The deterministic market generator.
//!
//! ```text
//!  GeneratorConfig ──partitions()──▶ [SymbolStream 0] [SymbolStream 1] … (one per symbol)
//!                                        │ each: own RNG seeded from (seed, symbol name)
//!                                        ▼
//!          worker w takes partitions i with i % workers == w;  merged() = all, by arrival
//! ```
//!
//! **Model.** Each symbol trades on its own: a Poisson process in event time with intensity
//! `rate × weight / Σweights` (BTC busiest; [`NOMINAL_RATE`] when `rate` is 0), the first
//! trade at `start_ms`, times truncated to ms. The price follows a geometric Brownian motion
//! (annualized volatility 60–100 %, scaled by the time since the previous trade) from a
//! realistic level; a sell aggressor (`m = true`) trades at the walk rounded down to the
//! tick, a buy aggressor rounded up, so prices bounce within a one-tick spread and are never
//! below one tick; the aggressor side is sticky (it flips with probability 0.35).
//! Quantities are log-normal around a per-symbol median worth a few hundred USDT, rounded to
//! the lot step, at least one lot. With `accounts = n`, buyer and seller are drawn from
//! `acct-000000 … acct-{n-1}` with `P(k) ∝ ln((k+2)/(k+1))` (a few heavy accounts), never
//! the same. Each trade arrives `delay ∈ [0, max_delay_ms]` (uniform, i.i.d.) after its
//! event time; a stream yields its trades in arrival order (ties: trade id), so its event
//! times are out of order by at most `max_delay_ms`. Trade ids are consecutive per symbol
//! from `1_000_000 × (partition + 1)`.
//!
//! **Injection** (off by default). With `anomalies > 0`, market-abuse episodes are merged
//! into a symbol's trades (see `inject.rs`: bad ticks, volume bursts, pump and dump, wash
//! trades and rings, velocity bursts, round sizes, flat first digits), all trades then being
//! numbered consecutively; with `defects > 0`, trades are then dropped (id gaps), held back
//! (late), repeated (duplicates), or followed by a broken copy of their line (malformed,
//! missing field, invalid value, far-future time; see `defects.rs`), which the stream yields
//! as [`Generated::Line`]. With anomalies and accounts, no equal-quantity 2- or 3-cycle of
//! trades happens by chance (see `guard.rs`): every wash-trade ring is in the truth. Every injection is described by an [`Injection`], kept on request
//! ([`SymbolStream::record_truth`]) for the truth file. Each layer draws from its own random
//! stream seeded from (seed, symbol, layer), so the trade process draws as without
//! injection, and defects leave the anomalies as they are; with both off, the output is the
//! same as before injection existed.
//!
//! **Determinism.** A partition's output depends only on the config (seed, its symbol, its
//! index, its share of `events`, the rates), never on which other partitions are iterated,
//! by whom, or in what order: so the market is the same on any number of workers and
//! processes, and [`SymbolStream::skip_to`] resumes it exactly. The random streams are
//! PCG-64 (MCG) with our own integer and float mappings; the floating-point steps use
//! `exp`/`ln`/`powf` of the platform's libm, so bit-identical output across different
//! operating systems is not promised.

mod defects;
mod guard;
mod inject;
mod json;
mod profile;
mod stream;
#[cfg(test)]
mod tests;
mod truth;
#[cfg(test)]
mod truth_tests;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Deserializer};

use crate::model::{Symbol, Trade};

pub use defects::{quality_column, KINDS as DEFECT_KINDS, LATE_MARGIN_MS, MAX_LATE_MS};
pub use inject::{is_round, ANOMALY_WINDOW_MS, COOLDOWN_MS, KINDS as ANOMALY_KINDS, WARMUP_MS};
pub use json::write_json_line;
pub use profile::precision;
pub use stream::{Generated, SymbolStream};
pub use truth::{read_truth, sort_truth, Class, Injection, TruthError};

use profile::profile;
use stream::StreamParams;

/// Event-time rate (events/s over all symbols) when the configured rate is 0 ("as fast as
/// possible"): the market then looks as it would live at this rate.
pub const NOMINAL_RATE: f64 = 10_000.0;

/// 2023-11-14T22:13:20Z, the default event time of the first trade.
pub const DEFAULT_START_MS: u64 = 1_700_000_000_000;

/// Highest `defects` rate (defects per record).
pub const MAX_DEFECT_RATE: f64 = 0.5;
/// Highest `anomalies` rate (anomaly instances per trade).
pub const MAX_ANOMALY_RATE: f64 = 0.01;
/// The account pool when anomalies are injected into a market configured without accounts.
pub const ANOMALY_ACCOUNTS: u32 = 1_000;
/// Default `late_ms`: the engine's default allowed lateness.
pub const DEFAULT_LATE_MS: u64 = 2_000;

/// The generator's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Seed of every random stream (default 42).
    pub seed: u64,
    /// The traded symbols, one partition each, in this order (default: [`default_symbols`]).
    /// A repeated symbol is generated once, at its first place.
    #[serde(deserialize_with = "deserialize_symbols")]
    pub symbols: Vec<Symbol>,
    /// Total events over all symbols; `None` = infinite.
    pub events: Option<u64>,
    /// Events per second of event time over all symbols, also the pacing rate of real-time
    /// sources; 0 = as fast as possible, event time then advancing at [`NOMINAL_RATE`].
    /// Default [`NOMINAL_RATE`].
    pub rate: f64,
    /// Event time of the first trade (ms since the epoch; default [`DEFAULT_START_MS`]).
    pub start_ms: u64,
    /// Size of the account pool; 0 (default) = no `B`/`S` fields. 1 is treated as 2 (buyer
    /// and seller always differ).
    pub accounts: u32,
    /// Largest arrival delay (default 500 ms); keep it below the allowed lateness, or the
    /// engine will see late trades.
    pub max_delay_ms: u64,
    /// Expected injected defects per record (0 = none, the default; at most
    /// [`MAX_DEFECT_RATE`]): malformed and invalid lines, duplicates, late trades, id gaps.
    pub defects: f64,
    /// Expected injected anomaly instances per trade (0 = none, the default; at most
    /// [`MAX_ANOMALY_RATE`]). With `accounts` 0, a pool of [`ANOMALY_ACCOUNTS`] is used.
    pub anomalies: f64,
    /// The allowed lateness that injected late trades are behind by (plus
    /// [`LATE_MARGIN_MS`]): the engine's `--lateness` (default [`DEFAULT_LATE_MS`]; at most
    /// [`MAX_LATE_MS`] − [`LATE_MARGIN_MS`]).
    pub late_ms: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 42,
            symbols: default_symbols(),
            events: None,
            rate: NOMINAL_RATE,
            start_ms: DEFAULT_START_MS,
            accounts: 0,
            max_delay_ms: 500,
            defects: 0.0,
            anomalies: 0.0,
            late_ms: DEFAULT_LATE_MS,
        }
    }
}

/// What is wrong with a [`GeneratorConfig`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeneratorError {
    /// No symbol to generate.
    #[error("the generator needs at least one symbol")]
    NoSymbols,
    /// The same symbol twice.
    #[error("symbol {0} is listed twice")]
    DuplicateSymbol(Symbol),
    /// An empty symbol name.
    #[error("empty symbol name")]
    EmptySymbol,
    /// A rate that is negative or not finite.
    #[error("rate must be a finite number ≥ 0, not {0}")]
    Rate(f64),
    /// One account cannot trade with itself.
    #[error("accounts must be 0 (none) or at least 2")]
    Accounts,
    /// A defect rate out of range.
    #[error("defects must be a rate per record between 0 and {MAX_DEFECT_RATE}, not {0}")]
    Defects(f64),
    /// An anomaly rate out of range.
    #[error("anomalies must be a rate per trade between 0 and {MAX_ANOMALY_RATE}, not {0}")]
    Anomalies(f64),
    /// A lateness for late trades beyond what fits their longest delay.
    #[error("late_ms must be at most {max} ms, not {0}", max = MAX_LATE_MS - LATE_MARGIN_MS)]
    LateMs(u64),
}

impl GeneratorConfig {
    /// Checks what [`partitions`] would otherwise quietly repair (duplicates dropped, a bad
    /// rate read as 0, one account read as two).
    pub fn validate(&self) -> Result<(), GeneratorError> {
        let GeneratorConfig {
            symbols,
            rate,
            accounts,
            defects,
            anomalies,
            late_ms,
            ..
        } = self;
        if symbols.is_empty() {
            return Err(GeneratorError::NoSymbols);
        }
        for (i, symbol) in symbols.iter().enumerate() {
            if symbol.is_empty() {
                return Err(GeneratorError::EmptySymbol);
            }
            if symbols[..i].contains(symbol) {
                return Err(GeneratorError::DuplicateSymbol(*symbol));
            }
        }
        if !(rate.is_finite() && *rate >= 0.0) {
            return Err(GeneratorError::Rate(*rate));
        }
        if *accounts == 1 {
            return Err(GeneratorError::Accounts);
        }
        if !(defects.is_finite() && (0.0..=MAX_DEFECT_RATE).contains(defects)) {
            return Err(GeneratorError::Defects(*defects));
        }
        if !(anomalies.is_finite() && (0.0..=MAX_ANOMALY_RATE).contains(anomalies)) {
            return Err(GeneratorError::Anomalies(*anomalies));
        }
        if *late_ms > MAX_LATE_MS - LATE_MARGIN_MS {
            return Err(GeneratorError::LateMs(*late_ms));
        }
        Ok(())
    }

    /// The account pool size the streams use: `accounts`, or [`ANOMALY_ACCOUNTS`] when
    /// anomalies are injected into a market without accounts (the account kinds need them).
    pub fn effective_accounts(&self) -> u32 {
        if self.accounts == 0 && usable(self.anomalies) > 0.0 {
            ANOMALY_ACCOUNTS
        } else {
            self.accounts
        }
    }

    /// The rate that drives event time: `rate`, or [`NOMINAL_RATE`] when it is 0 (or not a
    /// usable number).
    pub fn event_rate(&self) -> f64 {
        if self.rate.is_finite() && self.rate > 0.0 {
            self.rate
        } else {
            NOMINAL_RATE
        }
    }
}

/// A rate as the streams use it: a negative or unusable one (which `validate` refuses)
/// reads as 0.
fn usable(rate: f64) -> f64 {
    if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        0.0
    }
}

fn deserialize_symbols<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Symbol>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    names
        .iter()
        .map(|name| {
            Symbol::new(name).ok_or_else(|| {
                serde::de::Error::custom(format_args!("symbol {name:?} is longer than 23 bytes"))
            })
        })
        .collect()
}

/// BTCUSDT ETHUSDT BNBUSDT SOLUSDT XRPUSDT ADAUSDT DOGEUSDT AVAXUSDT.
pub fn default_symbols() -> Vec<Symbol> {
    profile::KNOWN
        .iter()
        .filter_map(|(name, _)| Symbol::new(name))
        .collect()
}

/// Splits `total` by `weights` with the largest-remainder method (ties: lower index), so the
/// parts sum to exactly `total`.
fn split_by_weight(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<(u64, u128)> = weights
        .iter()
        .map(|&w| {
            let share = u128::from(total) * u128::from(w);
            // The quotient is at most `total`, so it fits.
            ((share / sum) as u64, share % sum)
        })
        .collect();
    let mut parts: Vec<u64> = exact.iter().map(|&(q, _)| q).collect();
    let left = total - parts.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| (Reverse(exact[i].1), i));
    for &i in order.iter().take(left as usize) {
        parts[i] += 1;
    }
    parts
}

/// The streams of all symbols; index `i` is partition `i` (the `i`-th distinct symbol of the
/// config). Each worker takes the partitions with `index % workers == worker`
/// ([`worker_partitions`]).
pub fn partitions(config: &GeneratorConfig) -> Vec<SymbolStream> {
    let GeneratorConfig {
        seed,
        symbols,
        events,
        rate: _,
        start_ms,
        accounts: _,
        max_delay_ms,
        defects,
        anomalies,
        late_ms,
    } = config;
    let accounts = config.effective_accounts();
    let mut distinct: Vec<Symbol> = Vec::with_capacity(symbols.len());
    for symbol in symbols {
        if !distinct.contains(symbol) {
            distinct.push(*symbol);
        }
    }
    let profiles: Vec<_> = distinct.iter().map(profile).collect();
    let weights: Vec<u64> = profiles.iter().map(|p| p.weight).collect();
    let total_weight: u64 = weights.iter().sum();
    let counts = events.map(|n| split_by_weight(n, &weights));
    let rate = config.event_rate();
    distinct
        .iter()
        .zip(&profiles)
        .enumerate()
        .map(|(index, (symbol, profile))| {
            let per_second = rate * profile.weight as f64 / total_weight as f64;
            SymbolStream::new(&StreamParams {
                symbol: *symbol,
                index,
                seed: *seed,
                profile: *profile,
                mean_gap_ns: 1e9 / per_second,
                events: counts.as_ref().map(|counts| counts[index]),
                start_ms: *start_ms,
                accounts,
                max_delay_ms: *max_delay_ms,
                anomalies: usable(*anomalies).min(MAX_ANOMALY_RATE),
                defects: usable(*defects).min(MAX_DEFECT_RATE),
                late_ms: (*late_ms).min(MAX_LATE_MS - LATE_MARGIN_MS),
            })
        })
        .collect()
}

/// The partitions of worker `worker` out of `workers` (index % workers == worker).
pub fn worker_partitions(
    config: &GeneratorConfig,
    worker: usize,
    workers: usize,
) -> Vec<SymbolStream> {
    partitions(config)
        .into_iter()
        .filter(|stream| stream.index() % workers.max(1) == worker)
        .collect()
}

/// Several streams merged by arrival time (ties: partition index), with arrival times.
#[derive(Debug)]
pub struct Merged {
    streams: Vec<SymbolStream>,
    /// `(arrival, partition index, slot)` of every unfinished stream's next trade.
    heads: BinaryHeap<Reverse<(u64, usize, usize)>>,
}

impl Merged {
    /// Merges `streams` (any subset of the partitions, for example one worker's).
    pub fn new(streams: Vec<SymbolStream>) -> Merged {
        let heads = streams
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| s.peek_arrival_ms().map(|a| Reverse((a, s.index(), slot))))
            .collect();
        Merged { streams, heads }
    }

    /// Arrival time of the next trade; `None` once every stream is finished.
    pub fn peek_arrival_ms(&self) -> Option<u64> {
        self.heads.peek().map(|Reverse((arrival, _, _))| *arrival)
    }

    /// The merged streams, for their positions.
    pub fn streams(&self) -> &[SymbolStream] {
        &self.streams
    }

    /// Keeps every stream's injections for [`Merged::take_truth`]; call it first.
    pub fn record_truth(&mut self) {
        for stream in &mut self.streams {
            stream.record_truth();
        }
    }

    /// The injections so far of all streams, in truth-file order (see [`sort_truth`]).
    pub fn take_truth(&mut self) -> Vec<Injection> {
        let mut all: Vec<Injection> = self
            .streams
            .iter_mut()
            .flat_map(SymbolStream::take_truth)
            .collect();
        sort_truth(&mut all);
        all
    }

    /// The next record of any stream, with its arrival time: trades and the raw lines of
    /// injected defects.
    pub fn next_record(&mut self) -> Option<(u64, Generated)> {
        self.next_with_symbol()
            .map(|(_, arrival, record)| (arrival, record))
    }

    /// [`Merged::next_record`] with the symbol of the stream it came from (which a raw line
    /// may not tell).
    pub fn next_with_symbol(&mut self) -> Option<(Symbol, u64, Generated)> {
        let Reverse((_, index, slot)) = self.heads.pop()?;
        let stream = &mut self.streams[slot];
        let item = stream.next_record();
        if let Some(arrival) = stream.peek_arrival_ms() {
            self.heads.push(Reverse((arrival, index, slot)));
        }
        item.map(|(arrival, record)| (stream.symbol(), arrival, record))
    }
}

/// The trades (raw lines skipped; see [`Merged::next_record`]).
impl Iterator for Merged {
    type Item = (u64, Trade);

    fn next(&mut self) -> Option<(u64, Trade)> {
        loop {
            if let (arrival, Generated::Trade(trade)) = self.next_record()? {
                return Some((arrival, trade));
            }
        }
    }
}

/// All partitions merged by arrival time (ties: partition index), with arrival times: what
/// `tickflow generate --out` writes with [`write_json_line`] (records of
/// [`Merged::next_record`]; the iterator yields the trades).
pub fn merged_with_arrival(config: &GeneratorConfig) -> Merged {
    Merged::new(partitions(config))
}

/// All partitions merged by arrival time (ties: partition index): exactly the stream
/// `tickflow generate --out` writes.
pub fn merged(config: &GeneratorConfig) -> impl Iterator<Item = Trade> {
    merged_with_arrival(config).map(|(_, trade)| trade)
}
