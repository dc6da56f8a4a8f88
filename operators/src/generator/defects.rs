//! Defects: bad records injected into one symbol's stream, with their truth.
//!
//! A defect strikes a trade after a geometric number of trades with mean `1 / rate`; the
//! kinds rotate (the k-th defect of partition i has kind `i + k` of [`KINDS`]) so every kind
//! appears, except that a trade an anomaly injected or modified is never duplicated, held
//! back or dropped: it gets one of the five broken lines instead, in a rotation of their own.
//!
//! | kind | record | `quality` |
//! |---|---|---|
//! | `malformed_json` | an extra line: the trade's line cut before its symbol | malformed |
//! | `missing_field` | an extra line: the trade's line without one of s t p q T m | malformed |
//! | `non_positive` | an extra line: p or q zero or negative | invalid |
//! | `bad_number` | an extra line: p or q `NaN`, `abc`, `1.2.3` or empty | invalid |
//! | `time_outlier` | an extra line: T 10–100 years ahead | invalid |
//! | `duplicate` | the same trade again 1–120 s (arrival) later; ¼ with a price 1–3 ticks off | duplicate |
//! | `late` | the trade held back until a trade `late_ms` + 1–3 s newer was delivered | late |
//! | `gap` | the trade and up to 4 following ones dropped (consecutive ids) | gap |
//!
//! The extra lines are copies of the struck trade (which is delivered too): no trade id
//! goes missing except by a gap. All draws come from a random stream of their own.

use std::collections::VecDeque;

use serde_json::{json, Map};

use super::inject::Draw;
use super::json::write_json_line;
use super::stream::{Generated, Staged, StreamParams, Tagged};
use super::truth::{Class, Injection};
use crate::model::{Fixed, Symbol, Trade};

/// The rotation of kinds.
pub const KINDS: [&str; 8] = [
    "malformed_json",
    "missing_field",
    "non_positive",
    "bad_number",
    "time_outlier",
    "duplicate",
    "late",
    "gap",
];

/// The `quality` column that counts a defect kind.
pub fn quality_column(kind: &str) -> &'static str {
    match kind {
        "malformed_json" | "missing_field" => "malformed",
        "non_positive" | "bad_number" | "time_outlier" => "invalid",
        "duplicate" => "duplicate",
        "late" => "late",
        _ => "gap",
    }
}

/// Margin beyond the lateness by which a late trade is behind: a trade 1 s older than the
/// watermark is late whatever the engine's time granule.
pub const LATE_MARGIN_MS: u64 = 1_000;
/// Longest delay of a late trade (event time to delivery) at normal trade rates.
pub const MAX_LATE_MS: u64 = 60_000;
/// Most a late trade is held beyond `late_ms` + [`LATE_MARGIN_MS`] (uniform).
const LATE_EXTRA_MS: u64 = 2_000;
/// Event time between a trade and its duplicate's arrival.
const DUPLICATE_DELAY_MS: (u64, u64) = (1_000, 120_000);
/// Ms in a Julian year, for time outliers.
const YEAR_MS: u64 = 31_557_600_000;

/// A trade held back to be delivered late.
#[derive(Clone, Debug)]
struct Held {
    trade: Trade,
    /// Deliver after the first trade at least this new.
    until_ms: u64,
}

/// The defect layer of one stream.
#[derive(Clone, Debug)]
pub(crate) struct Defects {
    draw: Draw,
    rate: f64,
    symbol: Symbol,
    index: usize,
    late_ms: u64,
    /// Defects so far, in the rotation.
    struck: u64,
    /// Broken lines struck beside anomalies instead of the rotation's duplicate, late or gap.
    instead: u64,
    /// Eligible trades before the next defect.
    countdown: u64,
    /// Whether a trade was delivered: a stream's first id is never dropped.
    delivered: bool,
    /// Trades of the process that must follow a late pick or a gap in a finite stream, so
    /// that a newer trade delivers the late one and a later id reveals the gap.
    guard: u64,
    /// The open gap and how many more ids it drops.
    gap: Option<(Injection, u64)>,
    held: VecDeque<Held>,
    /// Greatest event time delivered, and the arrival of that delivery.
    newest: (u64, u64),
    line: Vec<u8>,
}

impl Defects {
    pub(super) fn new(params: &StreamParams) -> Defects {
        let mut draw = Draw::new(params.seed, &params.symbol, 2);
        let rate = params.defects.min(1.0);
        let countdown = draw.geometric(rate);
        // Trades expected over the longest hold and a second more, ×1.5: that they span less
        // event time is a Poisson tail of no practical chance.
        let window_ms = params.late_ms + LATE_MARGIN_MS + LATE_EXTRA_MS + 1_000;
        let guard =
            ((window_ms as f64 * 1e6 / params.mean_gap_ns * 1.5).ceil() as u64).saturating_add(64);
        Defects {
            draw,
            rate,
            symbol: params.symbol,
            index: params.index,
            late_ms: params.late_ms,
            struck: 0,
            instead: 0,
            countdown,
            delivered: false,
            guard,
            gap: None,
            held: VecDeque::new(),
            newest: (0, 0),
            line: Vec::with_capacity(256),
        }
    }

    /// Passes on (or drops, holds, repeats, accompanies) the next trade in event order.
    pub(super) fn process(
        &mut self,
        tagged: Tagged,
        remaining: Option<u64>,
        out: &mut VecDeque<Staged>,
        truth: &mut Option<Vec<Injection>>,
    ) {
        let Tagged {
            arrival_ms,
            trade,
            anomalous,
        } = tagged;
        if let Some((injection, left)) = &mut self.gap {
            if !anomalous && *left > 0 {
                injection.trade_ids.push(trade.id);
                injection.last_ms = trade.time_ms;
                *left -= 1;
                if *left == 0 {
                    self.close_gap(truth);
                }
                return;
            }
            self.close_gap(truth);
        }
        let plenty = remaining.is_none_or(|r| r > self.guard);
        let mut kind = None;
        if self.delivered {
            if self.countdown == 0 {
                loop {
                    let next = KINDS[(self.index + self.struck as usize) % KINDS.len()];
                    let moves = matches!(next, "duplicate" | "late" | "gap");
                    if moves && anomalous {
                        // Anomalies keep their trades where they are: a broken line instead
                        // (the rotation waits), so that the rate holds beside long anomalies.
                        kind = Some(KINDS[(self.index + self.instead as usize) % 5]);
                        self.instead += 1;
                        self.countdown = self.draw.geometric(self.rate);
                        break;
                    }
                    self.struck += 1;
                    // Near the end of a finite stream, late and gap lose their turn: a late
                    // trade needs newer trades to be late behind, a gap a later id to show.
                    if plenty || !matches!(next, "late" | "gap") {
                        kind = Some(next);
                        self.countdown = self.draw.geometric(self.rate);
                        break;
                    }
                }
            } else {
                self.countdown -= 1;
            }
        }
        match kind {
            Some("gap") => {
                let k = self.draw.between(1, 5);
                let mut injection = self.injection("gap", Some(&trade), vec![trade.id]);
                injection.params.insert("ids".into(), json!(k));
                self.gap = Some((injection, k - 1));
                if k == 1 {
                    self.close_gap(truth);
                }
                return;
            }
            Some("late") => {
                let extra = self
                    .draw
                    .below((MAX_LATE_MS - self.late_ms - LATE_MARGIN_MS).min(LATE_EXTRA_MS) + 1);
                self.held.push_back(Held {
                    trade,
                    until_ms: trade.time_ms + self.late_ms + LATE_MARGIN_MS + extra,
                });
                return;
            }
            _ => {}
        }
        out.push_back(Staged::trade(trade.time_ms, arrival_ms, trade));
        self.delivered = true;
        if trade.time_ms >= self.newest.0 {
            self.newest = (trade.time_ms, arrival_ms);
        }
        // Held trades go right after the first delivery new enough (same arrival, later in
        // the sequence): delivered after it, whatever the interleaving downstream.
        while let Some(held) = self.held.front() {
            if trade.time_ms < held.until_ms {
                break;
            }
            let Some(Held { trade: late, .. }) = self.held.pop_front() else {
                break;
            };
            self.release(late, trade.time_ms, arrival_ms, out, truth);
        }
        let Some(kind) = kind else {
            return;
        };
        if kind == "duplicate" {
            let delay = self
                .draw
                .between(DUPLICATE_DELAY_MS.0, DUPLICATE_DELAY_MS.1);
            let mut copy = trade;
            let conflicting = self.draw.below(4) == 0;
            if conflicting {
                let tick = super::profile::profile(&trade.symbol).price_decimals;
                let tick = 10i64.pow(8 - tick.min(8));
                let ticks = self.draw.between(1, 3) as i64;
                let up = self.draw.coin() || copy.price.0 <= ticks * tick;
                copy.price = Fixed(copy.price.0 + if up { ticks } else { -ticks } * tick);
            }
            out.push_back(Staged {
                order_ms: trade.time_ms,
                arrival_ms: arrival_ms.saturating_add(delay),
                record: Generated::Trade(copy),
                delayed: true,
            });
            let mut injection = self.injection(kind, Some(&trade), vec![trade.id]);
            injection.params.insert("delay_ms".into(), json!(delay));
            injection
                .params
                .insert("conflicting".into(), json!(conflicting));
            if conflicting {
                injection
                    .params
                    .insert("price".into(), json!(copy.price.to_string()));
            }
            push(truth, injection);
            return;
        }
        // A broken copy of the trade's line, right after it.
        self.line.clear();
        write_json_line(&mut self.line, arrival_ms, &trade);
        self.line.pop(); // '\n'
        let mut params = Map::new();
        let mut symbol = Some(&trade);
        let mut ids = vec![trade.id];
        let bytes = match kind {
            "malformed_json" => {
                // Cut before the symbol, so that no reader can tell it.
                let before = find(&self.line, b",\"s\":").unwrap_or(1);
                let cut = self.draw.between(1, before as u64) as usize;
                params.insert("cut".into(), json!(cut));
                symbol = None;
                ids.clear();
                self.line[..cut].to_vec()
            }
            "missing_field" => {
                let field = ["s", "t", "p", "q", "T", "m"][self.draw.below(6) as usize];
                params.insert("field".into(), json!(field));
                if field == "s" {
                    symbol = None;
                }
                if field == "t" {
                    ids.clear();
                }
                without_field(&self.line, field)
            }
            "non_positive" | "bad_number" => {
                let field = if self.draw.coin() { "p" } else { "q" };
                let value = if kind == "non_positive" {
                    let original = if field == "p" { trade.price } else { trade.qty };
                    match self.draw.below(3) {
                        0 => "0".to_owned(),
                        1 => "0.00000000".to_owned(),
                        _ => format!("-{original}"),
                    }
                } else {
                    ["NaN", "abc", "1.2.3", ""][self.draw.below(4) as usize].to_owned()
                };
                params.insert("field".into(), json!(field));
                params.insert("value".into(), json!(value));
                with_field(&self.line, field, format!("\"{value}\"").as_bytes())
            }
            _ => {
                // time_outlier
                let years = self.draw.between(10, 100);
                let time = trade.time_ms + years * YEAR_MS;
                params.insert("T".into(), json!(time));
                params.insert("years".into(), json!(years));
                with_field(&self.line, "T", time.to_string().as_bytes())
            }
        };
        out.push_back(Staged {
            order_ms: trade.time_ms,
            arrival_ms,
            record: Generated::Line(bytes),
            delayed: false,
        });
        let mut injection = self.injection(kind, symbol, ids);
        injection.first_ms = trade.time_ms;
        injection.last_ms = trade.time_ms;
        injection.order = (self.index, trade.id);
        injection.params.extend(params);
        push(truth, injection);
    }

    /// The end of the trades: what is still held goes out after everything.
    pub(super) fn finish(
        &mut self,
        out: &mut VecDeque<Staged>,
        truth: &mut Option<Vec<Injection>>,
    ) {
        if self.gap.is_some() {
            self.close_gap(truth);
        }
        let (time, arrival) = self.newest;
        while let Some(Held { trade, until_ms }) = self.held.pop_front() {
            // Late only if a new enough trade was delivered, which the guard all but
            // guarantees; else it is merely out of order, and not a defect.
            if time >= until_ms {
                self.release(trade, time, arrival, out, truth);
            } else {
                out.push_back(Staged::trade(time, arrival.max(trade.time_ms), trade));
            }
        }
    }

    /// Delivers a held trade right after a delivery at `after_ms` (event time) that
    /// arrived at `arrival_ms`.
    fn release(
        &mut self,
        late: Trade,
        after_ms: u64,
        arrival_ms: u64,
        out: &mut VecDeque<Staged>,
        truth: &mut Option<Vec<Injection>>,
    ) {
        out.push_back(Staged::trade(after_ms, arrival_ms, late));
        let mut injection = self.injection("late", Some(&late), vec![late.id]);
        injection
            .params
            .insert("delay_ms".into(), json!(arrival_ms - late.time_ms));
        injection
            .params
            .insert("behind_ms".into(), json!(after_ms - late.time_ms));
        injection
            .params
            .insert("late_ms".into(), json!(self.late_ms));
        push(truth, injection);
    }

    fn close_gap(&mut self, truth: &mut Option<Vec<Injection>>) {
        if let Some((mut injection, _)) = self.gap.take() {
            injection.count = injection.trade_ids.len() as u64;
            push(truth, injection);
        }
    }

    fn injection(&self, kind: &str, trade: Option<&Trade>, trade_ids: Vec<u64>) -> Injection {
        let time = trade.map_or(0, |t| t.time_ms);
        Injection {
            class: Class::Defect,
            kind: kind.to_owned(),
            quality: Some(quality_column(kind).to_owned()),
            symbol: trade.map(|_| self.symbol.as_str().to_owned()),
            accounts: Vec::new(),
            count: 1,
            order: (self.index, trade.map_or(0, |t| t.id)),
            trade_ids,
            first_ms: time,
            last_ms: time,
            params: Map::new(),
        }
    }
}

fn push(truth: &mut Option<Vec<Injection>>, injection: Injection) {
    if let Some(truth) = truth {
        truth.push(injection);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where `,"field":value` sits in a line written by `write_json_line`.
fn field_span(line: &[u8], field: &str) -> Option<(usize, usize, usize)> {
    let key = format!(",\"{field}\":");
    let start = find(line, key.as_bytes())?;
    let value = start + key.len();
    let mut end = value;
    let quoted = line.get(value) == Some(&b'"');
    if quoted {
        end += 1;
        while end < line.len() && line[end] != b'"' {
            end += 1;
        }
        end += 1;
    } else {
        while end < line.len() && line[end] != b',' && line[end] != b'}' {
            end += 1;
        }
    }
    Some((start, value, end.min(line.len())))
}

fn without_field(line: &[u8], field: &str) -> Vec<u8> {
    match field_span(line, field) {
        Some((start, _, end)) => [&line[..start], &line[end..]].concat(),
        None => line.to_vec(),
    }
}

fn with_field(line: &[u8], field: &str, value: &[u8]) -> Vec<u8> {
    match field_span(line, field) {
        Some((_, at, end)) => [&line[..at], value, &line[end..]].concat(),
        None => line.to_vec(),
    }
}
