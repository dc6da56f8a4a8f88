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
//!
//! Most records need none of this: nothing is held and the trade is neither late, nor a
//! jump, nor ahead of the wall clock. [`Clock::admit`] accepts those with two comparisons
//! against bounds kept up to date as the clock moves, and leaves every other record to
//! [`Clock::observe`], which decides it exactly as it would have.

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
    /// Behind the watermark; counted at the given time (see [`Clock::arrival`]).
    Late(String, u64),
    /// A clock outlier; counted at the given time.
    Outlier(String, u64),
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
    /// Least event time the source's floor lets through (the floor rounded up to the
    /// granule), and greatest the wall clock does, as of the last [`Clock::open`]; `None`
    /// before it, or when no event time can reach the floor.
    limits: Option<(u64, u64)>,
    /// The fast path's bounds: [`Clock::admit`] accepts a trade at `lo..=hi`. Recomputed by
    /// [`Clock::refresh`] whenever what they derive from changes; `lo > hi` while the fast
    /// path is closed (no clock yet, records held, no resume point).
    lo: u64,
    hi: u64,
    /// Coarsened time of the latest resume point, while the fast path is open: a record in
    /// its granule is at that time without a division, one after it starts a new point.
    latest: u64,
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
            limits: None,
            lo: u64::MAX,
            hi: 0,
            latest: 0,
        }
    }

    /// Sets the floor (the least time the source may still send at) and the wall clock that
    /// [`Clock::admit`] judges by until the next call: the same as given to
    /// [`Clock::observe`] meanwhile.
    pub(crate) fn open(&mut self, windows: &Windows, floor: u64, now: u64) {
        self.limits = floor
            .checked_next_multiple_of(windows.granule())
            .map(|least| (least, now.saturating_add(self.max_jump)));
        self.refresh();
    }

    /// The fast path of [`Clock::observe`]: accepts a trade at `event_time` arriving at
    /// `offset` when nothing is held and it is not late, not behind the floor, not a jump of
    /// the clock and not ahead of the wall clock, doing exactly what `observe` would (moving
    /// the clock, adding a resume point), and returns its coarsened time. `None`: nothing was
    /// done, the record is for `observe`.
    #[inline]
    pub(crate) fn admit(&mut self, windows: &Windows, offset: u64, event_time: u64) -> Option<u64> {
        if event_time < self.lo || event_time > self.hi {
            return None;
        }
        let time = if event_time.wrapping_sub(self.latest) < windows.granule() {
            self.latest
        } else {
            windows.coarsen(event_time)
        };
        // Open, so the clock is set and nothing held: no episode to restart at.
        let max = self.max_seen.unwrap_or(0);
        if event_time > max {
            if time > self.latest {
                self.resume.push_back((time, offset, self.max_seen));
            }
            self.max_seen = Some(event_time);
            self.refresh();
        }
        Some(time)
    }

    /// Recomputes the fast path's bounds: the record that `observe` would accept without
    /// touching anything but the clock and the resume points, given what is held, the clock,
    /// the latest resume point and the limits of [`Clock::open`].
    #[inline]
    fn refresh(&mut self) {
        match (self.max_seen, self.resume.back(), self.limits) {
            (Some(max), Some(&(latest, _, _)), Some((least, wall))) if self.held.is_empty() => {
                self.lo = max.saturating_sub(self.lateness).max(least);
                self.hi = max.saturating_add(self.max_jump).min(wall);
                self.latest = latest;
            }
            _ => {
                self.lo = u64::MAX;
                self.hi = 0;
            }
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
            let at = self.arrival(windows, floor);
            emit(offset, &record, raw, full_len, Verdict::Outlier(detail, at));
            return;
        }
        if self.max_seen.is_none() {
            // No start known (a new Kafka partition, standard input): the first records
            // decide where the clock starts, as the least time of the first few of a file
            // chunk does, so that a bad clock on the very first record cannot start it far
            // ahead. They wait, like held records (a restart re-reads them all).
            self.hold(offset, record, raw, full_len, event_time);
            if self.held.len() >= CONFIRM as usize {
                self.start_from_held(windows, floor, emit);
            }
            self.refresh();
            return;
        }
        self.judge(
            windows, floor, offset, record, event_time, raw, full_len, emit,
        );
        if self.held.is_empty() {
            self.episode = None;
        }
        self.refresh();
    }

    /// Starts the clock at the least time of the records that waited for a start, then
    /// judges them in arrival order: one far ahead of the others is held as a jump.
    fn start_from_held<E>(&mut self, windows: &Windows, floor: u64, emit: &mut E)
    where
        E: FnMut(u64, &Record, &[u8], usize, Verdict),
    {
        let waiting = std::mem::take(&mut self.held);
        self.max_seen = waiting.iter().map(|h| h.time).min();
        for h in waiting {
            self.judge(
                windows, floor, h.offset, h.record, h.time, &h.raw, h.full_len, emit,
            );
        }
        if self.held.is_empty() {
            self.episode = None;
        }
    }

    /// Holds a record; the first held opens an episode: a restart must begin at it, with the
    /// clock as it is now.
    fn hold(&mut self, offset: u64, record: Record, raw: &[u8], full_len: usize, time: u64) {
        if self.held.is_empty() {
            self.episode = Some((offset, self.max_seen));
        }
        self.held.push_back(Held {
            offset,
            record,
            raw: raw.to_vec(),
            full_len,
            time,
            normal_after: 0,
        });
    }

    /// [`Clock::observe`] once the clock has started.
    #[allow(clippy::too_many_arguments)]
    fn judge<E>(
        &mut self,
        windows: &Windows,
        floor: u64,
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
        let jumped = self
            .max_seen
            .is_some_and(|max| event_time > max.saturating_add(self.max_jump));
        if is_trade && jumped {
            self.hold(offset, record, raw, full_len, event_time);
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
                    let at = self.arrival(windows, floor);
                    emit(
                        oldest.offset,
                        &oldest.record,
                        &oldest.raw,
                        oldest.full_len,
                        Verdict::Outlier(detail, at),
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
                    let at = self.arrival(windows, floor);
                    emit(
                        refuted.offset,
                        &refuted.record,
                        &refuted.raw,
                        refuted.full_len,
                        Verdict::Outlier(detail, at),
                    );
                }
            }
            let verdict = self.accept(windows, floor, offset, event_time);
            emit(offset, &record, raw, full_len, verdict);
        }
    }

    /// Decides every held record at the end of the partition or when it goes idle: released
    /// if no record at the old clock followed it, rejected otherwise.
    pub(crate) fn settle<E>(&mut self, windows: &Windows, floor: u64, emit: &mut E)
    where
        E: FnMut(u64, &Record, &[u8], usize, Verdict),
    {
        if self.max_seen.is_none() && !self.held.is_empty() {
            // Fewer records than it takes to start the clock came before the end or a
            // quiet spell: they start it.
            self.start_from_held(windows, floor, emit);
        }
        let refuted: Vec<Held> = {
            let (keep, refuted): (VecDeque<Held>, VecDeque<Held>) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|h| h.normal_after == 0);
            self.held = keep;
            refuted.into_iter().collect()
        };
        for held in refuted {
            let detail = self.outlier_detail(&held, "a later record kept the old clock");
            let at = self.arrival(windows, floor);
            emit(
                held.offset,
                &held.record,
                &held.raw,
                held.full_len,
                Verdict::Outlier(detail, at),
            );
        }
        self.release(windows, floor, |_| true, emit);
        self.episode = None;
        self.refresh();
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
            return Verdict::Late(
                format!("event time {event_time} is before the watermark {watermark}"),
                self.arrival(windows, floor),
            );
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

    /// The time a record refused at this point is counted at: the coarsened clock (the
    /// greatest event time the partition has accepted), never behind `floor`, the least time
    /// the source may still send at. It depends only on the partition's records before it
    /// (but for a partition that was idle while the others moved on, whose records the floor
    /// overtakes), and the window holding it is still open: the watermark is behind it.
    pub(crate) fn arrival(&self, windows: &Windows, floor: u64) -> u64 {
        windows.coarsen(self.max_seen.unwrap_or(0)).max(floor)
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
        self.refresh();
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
                    Verdict::Late(..) => "late",
                    Verdict::Outlier(..) => "outlier",
                };
                (*o, kind)
            })
            .collect()
    }

    #[test]
    fn without_a_known_start_a_bad_clock_on_the_first_record_is_an_outlier() {
        let base = 1_700_000_000_000;
        let mut times: Vec<u64> = vec![base + 11 * 86_400_000];
        times.extend((0..2_000).map(|i| base + i * 100));
        let (verdicts, clock) = judge(&times, 0, None);
        let outliers: Vec<u64> = kinds(&verdicts)
            .into_iter()
            .filter(|(_, k)| *k != "accept")
            .map(|(o, _)| o)
            .collect();
        assert_eq!(
            outliers,
            vec![0],
            "only the bad clock is rejected, nothing is late"
        );
        assert_eq!(verdicts.len(), 2_001);
        assert_eq!(clock.max_seen, Some(base + 1_999 * 100));
        // Fewer records than it takes to start the clock: the end starts it.
        let (verdicts, _) = judge(&[base + 500, base], 0, None);
        assert_eq!(kinds(&verdicts), vec![(0, "accept"), (1, "accept")]);
        // The first records in disorder within the lateness are all accepted.
        let (verdicts, _) = judge(&[base + 1_500, base, base + 700, base + 800], 0, None);
        assert!(verdicts
            .iter()
            .all(|(_, v)| matches!(v, Verdict::Accept(_))));
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

    #[test]
    fn ordered_trades_take_the_fast_path_until_a_jump_is_held() {
        let windows = Windows::new(vec![1_000]).expect("windows");
        let base = 1_700_000_000_000;
        let mut clock = Clock::new(LATENESS, JUMP, Some(base));
        clock.open(&windows, 0, NOW);
        // No resume point yet: the first record goes the slow way.
        assert_eq!(clock.admit(&windows, 0, base), None);
        let mut emit = |_: u64, _: &Record, _: &[u8], _: usize, _: Verdict| {};
        clock.observe(&windows, 0, NOW, 0, trade(base), base, b"", 0, &mut emit);
        assert_eq!(clock.admit(&windows, 1, base + 1_500), Some(base + 1_000));
        assert_eq!(clock.admit(&windows, 2, base + 700), Some(base));
        // Late, a jump, ahead of the wall clock: not for the fast path.
        assert_eq!(clock.admit(&windows, 3, base - LATENESS), None);
        assert_eq!(clock.admit(&windows, 3, base + 1_501 + JUMP), None);
        clock.open(&windows, 0, base);
        assert_eq!(clock.admit(&windows, 3, base + JUMP + 1_000), None);
        // Behind the floor, which is rounded up to the granule.
        clock.open(&windows, base + 1, NOW);
        assert_eq!(clock.admit(&windows, 3, base + 999), None);
        assert_eq!(clock.admit(&windows, 3, base + 1_000), Some(base + 1_000));
        clock.open(&windows, 0, NOW);
        let jump = base + 2 * JUMP;
        clock.observe(&windows, 0, NOW, 3, trade(jump), jump, b"", 0, &mut emit);
        // Held: every record goes the slow way until the jump is decided.
        assert_eq!(clock.admit(&windows, 4, base + 1_600), None);
    }

    /// Everything a clock decides by: its clock, resume points, episode and held records.
    type State = (
        Option<u64>,
        Vec<(u64, u64, Option<u64>)>,
        Option<(u64, Option<u64>)>,
        Vec<(u64, u32)>,
    );

    fn state(clock: &Clock) -> State {
        (
            clock.max_seen,
            clock.resume.iter().copied().collect(),
            clock.episode,
            clock
                .held
                .iter()
                .map(|h| (h.offset, h.normal_after))
                .collect(),
        )
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
            known_start in any::<bool>(),
        ) {
            // A file chunk knows where its clock starts; a new Kafka partition does not.
            let start = times.first().copied().filter(|_| known_start);
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

        /// The fast path decides every record it takes as [`Clock::observe`] does and leaves
        /// the clock as `observe` would, whatever the floor, the wall clock, the pruning and
        /// the settling between activations: a clock that tries [`Clock::admit`] first
        /// decides a stream exactly as one that only observes.
        #[test]
        fn the_fast_path_decides_as_observe_does(
            times in market(),
            known_start in any::<bool>(),
            // Per activation: records read, the floor around the watermark, the wall clock
            // from the market's start, whether to prune and whether to settle after it.
            turns in prop::collection::vec(
                (1usize..20, 0u64..6_000, 0u64..40 * 86_400_000, any::<bool>(), any::<bool>()),
                1..20,
            ),
        ) {
            let windows = Windows::new(vec![1_000]).expect("windows");
            let start = times.first().copied().filter(|_| known_start);
            let mut slow = Clock::new(LATENESS, JUMP, start);
            let mut fast = Clock::new(LATENESS, JUMP, start);
            let mut at = 0;
            for (len, around, wall, prune, settle) in turns.iter().copied().cycle() {
                if at >= times.len() {
                    break;
                }
                let floor = (slow.watermark() + around).saturating_sub(3_000);
                let now = 1_700_000_000_000 + wall;
                slow.open(&windows, floor, now);
                fast.open(&windows, floor, now);
                for (offset, &time) in times.iter().enumerate().skip(at).take(len) {
                    let offset = offset as u64;
                    let mut expected = Vec::new();
                    slow.observe(&windows, floor, now, offset, trade(time), time, b"", 0,
                        &mut |o, _, _, _, v| expected.push((o, v)));
                    let mut got = Vec::new();
                    match fast.admit(&windows, offset, time) {
                        Some(time) => got.push((offset, Verdict::Accept(time))),
                        None => fast.observe(&windows, floor, now, offset, trade(time), time,
                            b"", 0, &mut |o, _, _, _, v| got.push((o, v))),
                    }
                    prop_assert_eq!(&got, &expected, "offset {} time {}", offset, time);
                    prop_assert_eq!(state(&fast), state(&slow));
                }
                at += len;
                if settle {
                    let mut expected = Vec::new();
                    slow.settle(&windows, floor, &mut |o, _, _, _, v| expected.push((o, v)));
                    let mut got = Vec::new();
                    fast.settle(&windows, floor, &mut |o, _, _, _, v| got.push((o, v)));
                    prop_assert_eq!(got, expected);
                }
                if prune {
                    slow.prune(windows.coarsen(floor));
                    fast.prune(windows.coarsen(floor));
                }
                prop_assert_eq!(state(&fast), state(&slow));
            }
        }
    }
}
