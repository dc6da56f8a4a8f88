//! The event-time clock of one partition: its watermark, what is late, what is a clock
//! outlier, and where a restart must resume to judge everything again the same way.
//!
//! A partition's clock is the greatest event time it has accepted. A record older than the
//! clock minus the lateness is late. A trade more than `max_jump` ahead of the clock is
//! *held*: it does not move the clock (one bad timestamp must not turn every good record
//! after it late) until the records after it decide:
//!
//! - if [`CONFIRM`] records in all (it included) arrive more than `max_jump` ahead of the
//!   clock and within `max_jump` of each other, before [`CONFIRM`] records at the old clock,
//!   the jump is real (a gap in the data, a feed back after an outage): the held records are
//!   released in arrival order and move the clock;
//! - if [`CONFIRM`] records at the old clock arrive first, it is an outlier: rejected
//!   (`time_outlier`);
//! - at the end of the partition (or when it goes idle) a held record that no record at the
//!   old clock followed is released, the others are rejected.
//!
//! A trade more than `max_jump` ahead of the wall clock cannot be right and is rejected at
//! once. Candle rows (a day apart in candle files) are exempt from the jump rule.
//!
//! Restarts: a resume point must be a place where nothing is held, so that re-reading from
//! it with the stored clock makes every decision again identically. While records are held,
//! the resume point is where the first of them arrived.

use std::collections::VecDeque;

use crate::parse::Record;
use crate::window::Windows;

/// Records that confirm (or refute) a jump of the clock.
pub const CONFIRM: u32 = 3;
/// Most records held at once; beyond it the oldest is rejected.
const MAX_HELD: usize = 64;

/// What became of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Passed on at this (coarsened) time.
    Accept(u64),
    /// Behind the watermark.
    Late(String),
    /// A clock outlier.
    Outlier(String),
}

/// A record waiting for the records after it to decide on its clock jump.
#[derive(Debug)]
struct Held {
    offset: u64,
    record: Record,
    raw: Vec<u8>,
    full_len: usize,
    time: u64,
    /// Records at the old clock that arrived after it.
    normal_after: u32,
}

/// One partition's clock and resume bookkeeping.
#[derive(Debug)]
pub(crate) struct Clock {
    lateness: u64,
    max_jump: u64,
    /// Greatest event time accepted (or the partition's start, known up front).
    pub(crate) max_seen: Option<u64>,
    /// `(coarsened time, restart offset, clock there)` each time the coarsened clock grew:
    /// re-reading from the restart offset with that clock covers every record at or after
    /// the time and decides everything as before.
    resume: VecDeque<(u64, u64, Option<u64>)>,
    held: VecDeque<Held>,
    /// Where the current run of held records began, and the clock then.
    episode: Option<(u64, Option<u64>)>,
}

impl Clock {
    pub(crate) fn new(lateness: u64, max_jump: u64, start: Option<u64>) -> Clock {
        Clock {
            lateness,
            max_jump,
            max_seen: start,
            resume: VecDeque::new(),
            held: VecDeque::new(),
            episode: None,
        }
    }

    pub(crate) fn watermark(&self) -> u64 {
        self.max_seen
            .map_or(0, |max| max.saturating_sub(self.lateness))
    }

    /// Judges one record arriving at `offset`; `emit` gets every record decided by it (the
    /// record itself and held ones), in order. `floor` is the least time the source may
    /// still send at; `now` the wall clock.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn observe<E>(
        &mut self,
        windows: &Windows,
        floor: u64,
        now: u64,
        offset: u64,
        record: Record,
        event_time: u64,
        raw: &[u8],
        full_len: usize,
        emit: &mut E,
    ) where
        E: FnMut(u64, &Record, &[u8], usize, Verdict),
    {
        let is_trade = matches!(record, Record::Trade(_));
        if is_trade && event_time > now.saturating_add(self.max_jump) {
            let detail = format!(
                "event time {event_time} is {} ms ahead of the wall clock",
                event_time - now
            );
            emit(offset, &record, raw, full_len, Verdict::Outlier(detail));
            return;
        }
        let jumped = self
            .max_seen
            .is_some_and(|max| event_time > max.saturating_add(self.max_jump));
        if is_trade && jumped {
            if self.held.is_empty() {
                self.episode = Some((offset, self.max_seen));
            }
            self.held.push_back(Held {
                offset,
                record,
                raw: raw.to_vec(),
                full_len,
                time: event_time,
                normal_after: 0,
            });
            let cluster = self
                .held
                .iter()
                .filter(|h| h.time.abs_diff(event_time) <= self.max_jump)
                .count();
            if cluster >= CONFIRM as usize {
                let jump = self.max_jump;
                self.release(
                    windows,
                    floor,
                    |h| h.time.abs_diff(event_time) <= jump,
                    emit,
                );
            } else if self.held.len() > MAX_HELD {
                if let Some(oldest) = self.held.pop_front() {
                    let detail = self.outlier_detail(&oldest, "too many held records");
                    emit(
                        oldest.offset,
                        &oldest.record,
                        &oldest.raw,
                        oldest.full_len,
                        Verdict::Outlier(detail),
                    );
                }
            }
        } else {
            // A record at the old clock: evidence against every held jump.
            for held in self.held.iter_mut() {
                held.normal_after += 1;
            }
            while let Some(position) = self.held.iter().position(|h| h.normal_after >= CONFIRM) {
                if let Some(refuted) = self.held.remove(position) {
                    let detail = self.outlier_detail(&refuted, "later records kept the old clock");
                    emit(
                        refuted.offset,
                        &refuted.record,
                        &refuted.raw,
                        refuted.full_len,
                        Verdict::Outlier(detail),
                    );
                }
            }
            let verdict = self.accept(windows, floor, offset, event_time);
            emit(offset, &record, raw, full_len, verdict);
        }
        if self.held.is_empty() {
            self.episode = None;
        }
    }

    /// Decides every held record at the end of the partition or when it goes idle: released
    /// if no record at the old clock followed it, rejected otherwise.
    pub(crate) fn settle<E>(&mut self, windows: &Windows, floor: u64, emit: &mut E)
    where
        E: FnMut(u64, &Record, &[u8], usize, Verdict),
    {
        let refuted: Vec<Held> = {
            let (keep, refuted): (VecDeque<Held>, VecDeque<Held>) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|h| h.normal_after == 0);
            self.held = keep;
            refuted.into_iter().collect()
        };
        for held in refuted {
            let detail = self.outlier_detail(&held, "a later record kept the old clock");
            emit(
                held.offset,
                &held.record,
                &held.raw,
                held.full_len,
                Verdict::Outlier(detail),
            );
        }
        self.release(windows, floor, |_| true, emit);
        self.episode = None;
    }

    /// Releases the held records that `pick` selects, in arrival order, letting them move
    /// the clock; the others stay held if still ahead of the (new) clock.
    fn release<E>(
        &mut self,
        windows: &Windows,
        floor: u64,
        pick: impl Fn(&Held) -> bool,
        emit: &mut E,
    ) where
        E: FnMut(u64, &Record, &[u8], usize, Verdict),
    {
        let (chosen, rest): (VecDeque<Held>, VecDeque<Held>) =
            std::mem::take(&mut self.held).into_iter().partition(pick);
        for held in chosen {
            let verdict = self.accept(windows, floor, held.offset, held.time);
            emit(held.offset, &held.record, &held.raw, held.full_len, verdict);
        }
        for held in rest {
            let still_ahead = self
                .max_seen
                .is_some_and(|max| held.time > max.saturating_add(self.max_jump));
            if still_ahead {
                self.held.push_back(held);
            } else {
                let verdict = self.accept(windows, floor, held.offset, held.time);
                emit(held.offset, &held.record, &held.raw, held.full_len, verdict);
            }
        }
        if self.held.is_empty() {
            self.episode = None;
        }
    }

    /// The lateness rule for a record the clock accepts to judge.
    #[inline]
    fn accept(&mut self, windows: &Windows, floor: u64, offset: u64, event_time: u64) -> Verdict {
        let max_before = self.max_seen;
        let max = *self.max_seen.get_or_insert(event_time);
        // Behind the partition's watermark, or (for a partition that was idle while the
        // others moved on) behind what the source has promised.
        if event_time < max.saturating_sub(self.lateness) || windows.coarsen(event_time) < floor {
            let watermark = max.saturating_sub(self.lateness).max(floor);
            return Verdict::Late(format!(
                "event time {event_time} is before the watermark {watermark}"
            ));
        }
        let time = windows.coarsen(event_time);
        if event_time > max || self.resume.is_empty() {
            self.max_seen = Some(max.max(event_time));
            if self.resume.back().is_none_or(|&(t, _, _)| t < time) {
                // While records are held, a restart must begin where the first of them came.
                let (restart, clock) = self.episode.unwrap_or((offset, max_before));
                self.resume.push_back((time, restart, clock));
            }
        }
        Verdict::Accept(time)
    }

    fn outlier_detail(&self, held: &Held, why: &str) -> String {
        format!(
            "event time {} is more than {} ms ahead of the partition's clock {}; {why}",
            held.time,
            self.max_jump,
            self.max_seen.unwrap_or(0)
        )
    }

    /// Forgets resume entries before `before`: they can never be asked for again.
    pub(crate) fn prune(&mut self, before: u64) {
        while self.resume.front().is_some_and(|&(t, _, _)| t < before) {
            self.resume.pop_front();
        }
    }

    /// Offset and clock from which re-reading covers every record at or after `frontier`
    /// and decides everything as this run did; `position` is the partition's next offset.
    pub(crate) fn resume_point(&self, frontier: u64, position: u64) -> (u64, Option<u64>) {
        let found = self
            .resume
            .iter()
            .find(|(time, _, _)| *time >= frontier)
            .map(|&(_, offset, clock)| (offset, clock));
        match (found, self.episode) {
            (Some(entry), Some(episode)) if episode.0 < entry.0 => episode,
            (Some(entry), _) => entry,
            (None, Some(episode)) => episode,
            (None, None) => (position, self.max_seen),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{Fixed, Symbol, Trade};

    const LATENESS: u64 = 2_000;
    const JUMP: u64 = 600_000;
    const NOW: u64 = 2_000_000_000_000;

    fn trade(time_ms: u64) -> Record {
        Record::Trade(Trade {
            symbol: Symbol::new("X").expect("short"),
            id: time_ms,
            price: Fixed(1),
            qty: Fixed(1),
            time_ms,
            buyer_maker: false,
            buyer: None,
            seller: None,
        })
    }

    /// Runs `times` (offset = index) through a clock starting at `start`; returns the
    /// verdicts by offset and the clock.
    fn judge(times: &[u64], from: usize, start: Option<u64>) -> (Vec<(u64, Verdict)>, Clock) {
        let windows = Windows::new(vec![1_000]).expect("windows");
        let mut clock = Clock::new(LATENESS, JUMP, start);
        let mut out = Vec::new();
        for (offset, &time) in times.iter().enumerate().skip(from) {
            let mut emit = |offset: u64, _: &Record, _: &[u8], _: usize, v: Verdict| {
                out.push((offset, v));
            };
            clock.observe(
                &windows,
                0,
                NOW,
                offset as u64,
                trade(time),
                time,
                b"",
                0,
                &mut emit,
            );
        }
        let mut emit = |offset: u64, _: &Record, _: &[u8], _: usize, v: Verdict| {
            out.push((offset, v));
        };
        clock.settle(&windows, 0, &mut emit);
        out.sort_by_key(|(offset, _)| *offset);
        (out, clock)
    }

    fn kinds(verdicts: &[(u64, Verdict)]) -> Vec<(u64, &'static str)> {
        verdicts
            .iter()
            .map(|(o, v)| {
                let kind = match v {
                    Verdict::Accept(_) => "accept",
                    Verdict::Late(_) => "late",
                    Verdict::Outlier(_) => "outlier",
                };
                (*o, kind)
            })
            .collect()
    }

    #[test]
    fn one_outlier_is_rejected_and_moves_nothing() {
        let base = 1_700_000_000_000;
        let mut times: Vec<u64> = (0..10).map(|i| base + i * 100).collect();
        times[4] = base + 11 * 86_400_000;
        let (verdicts, clock) = judge(&times, 0, Some(base));
        let outliers: Vec<u64> = kinds(&verdicts)
            .into_iter()
            .filter(|(_, k)| *k == "outlier")
            .map(|(o, _)| o)
            .collect();
        assert_eq!(outliers, vec![4]);
        assert!(verdicts
            .iter()
            .all(|(o, v)| *o == 4 || matches!(v, Verdict::Accept(_))));
        assert_eq!(clock.max_seen, Some(base + 900));
    }

    #[test]
    fn a_confirmed_jump_moves_the_clock_and_a_late_straggler_stays_accepted() {
        let base = 1_700_000_000_000;
        let later = base + 7_200_000;
        // The jump, a straggler at the old clock, then two more at the new one.
        let times = [
            base,
            base + 10,
            later,
            base + 20,
            later + 5,
            later + 9,
            later + 12,
        ];
        let (verdicts, clock) = judge(&times, 0, Some(base));
        assert!(
            verdicts
                .iter()
                .all(|(_, v)| matches!(v, Verdict::Accept(_))),
            "{verdicts:?}"
        );
        assert_eq!(clock.max_seen, Some(later + 12));
    }

    #[test]
    fn the_wall_clock_bounds_event_time() {
        let (verdicts, _) = judge(&[NOW - 1, NOW + JUMP + 1, NOW + JUMP], 0, None);
        assert_eq!(
            kinds(&verdicts),
            vec![(0, "accept"), (1, "outlier"), (2, "accept")]
        );
    }

    fn market() -> impl Strategy<Value = Vec<u64>> {
        let base = 1_700_000_000_000u64;
        // Mostly ordered with small disorder, some late records, some far-ahead outliers,
        // and real jumps of the clock.
        prop::collection::vec(
            prop_oneof![
                20 => (0u64..3_000).prop_map(|d| (0u64, d)),
                2 => (0u64..10_000).prop_map(|d| (1, d)),
                2 => (1u64..30).prop_map(|d| (2, d * 86_400_000)),
                1 => (1u64..5).prop_map(|d| (3, d * 3_600_000)),
            ],
            1..150,
        )
        .prop_map(move |steps| {
            let mut now = base;
            steps
                .into_iter()
                .map(|(kind, d)| match kind {
                    0 => {
                        now += d / 10;
                        now - d.min(now - base) / 3
                    }
                    1 => now.saturating_sub(d),
                    2 => now + d,
                    _ => {
                        now += d;
                        now
                    }
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// The restart guarantee: re-reading from the resume point given for any frontier,
        /// with the clock stored there, decides every record from there on as the
        /// uninterrupted run did.
        #[test]
        fn resuming_anywhere_decides_everything_again_the_same_way(
            times in market(),
            cut in any::<prop::sample::Index>(),
            back in 0u64..5_000,
        ) {
            let start = times.first().copied();
            let (all, _) = judge(&times, 0, start);
            // The state after reading a prefix, asked where to resume for a frontier at or
            // below its watermark (the sink only asks for frontiers it has reached).
            let upto = cut.index(times.len() + 1);
            let mut partial = Clock::new(LATENESS, JUMP, start);
            let windows = Windows::new(vec![1_000]).expect("windows");
            let mut decided = std::collections::BTreeSet::new();
            for (offset, &time) in times[..upto].iter().enumerate() {
                partial.observe(&windows, 0, NOW, offset as u64, trade(time), time, b"", 0,
                    &mut |o, _, _, _, _| { decided.insert(o); });
            }
            let frontier = windows.coarsen(partial.watermark().saturating_sub(back));
            let (restart, clock) = partial.resume_point(frontier, upto as u64);
            // Nothing read but undecided (held) may be skipped by the restart.
            let undecided = (0..upto as u64).find(|o| !decided.contains(o));
            prop_assert!(undecided.is_none_or(|o| restart <= o), "{:?} {}", undecided, restart);
            let (again, _) = judge(&times, restart as usize, clock);
            let expected: Vec<(u64, Verdict)> = all
                .into_iter()
                .filter(|(o, _)| *o >= restart)
                .collect();
            // What a resumed run must decide again as before: every record at or after the
            // frontier (earlier ones belong to committed windows, filtered by the sink) and
            // every record whose decision had not been made.
            let relevant = |v: &[(u64, Verdict)]| -> Vec<(u64, Verdict)> {
                v.iter()
                    .filter(|(o, _)| times[*o as usize] >= frontier || !decided.contains(o))
                    .cloned()
                    .collect()
            };
            prop_assert_eq!(relevant(&again), relevant(&expected));
        }
    }
}
