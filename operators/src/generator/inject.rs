//! Anomalies: market-abuse patterns injected into one symbol's trades, with their truth.
//!
//! Episodes run in two lanes per stream, one at a time in each: the market-shaping kinds
//! (bursts, pumps, windows; [`COOLDOWN_MS`] apart, as they would blur each other's
//! statistics) and, alongside them, the few-trade kinds (bad ticks, wash trades and rings,
//! velocity bursts; [`SHORT_COOLDOWN_MS`] apart). In each lane, the next episode starts after
//! a geometric number of trades with mean `1 / rate` once the cooldown has passed (and not
//! in the first [`WARMUP_MS`] of the market-shaping lane, [`COOLDOWN_MS`] of the other: a
//! rule that judges a symbol against its own recent trading has nothing to judge against
//! before it has traded a while), and kinds rotate (the k-th episode of partition i has kind
//! `i + k` of the lane), so every kind appears. Injected trades take their ids from the
//! symbol's consecutive sequence, are priced on the tick grid at the prevailing price (the
//! last delivered one, on a pump's path during a pump; a one-tick bid/ask bounce) and sized
//! on the lot grid like the others, unless the kind says otherwise. A finite stream starts
//! an episode only where its trades surely outlast it. All draws come from a random stream
//! of their own, seeded from (seed, symbol, "anomalies"): the trade process underneath draws
//! exactly as without anomalies.

use std::collections::VecDeque;

use rand::RngCore;
use rand_distr::StandardNormal;
use rand_pcg::Pcg64Mcg;
use serde_json::{json, Map};

use super::guard::CycleGuard;
use super::profile::splitmix64;
use super::stream::{account, Arrival, StreamParams, Tagged, TradeGen, QTY_SIGMA};
use super::truth::{Class, Injection};
use crate::model::{AlertKind, Fixed, Symbol, Trade};

/// Quiet event time before the first episode of the few-trade lane and after each of the
/// market-shaping kinds (bursts, pumps, windows), so that the rules' rolling statistics see
/// normal trading around each.
pub const COOLDOWN_MS: u64 = 10_000;
/// Normal trading before the first market-shaping episode of a stream: the rules' baselines
/// are the previous minute of seconds (bursts, pumps) and the usual round-size share of
/// three previous one-minute windows (`round_sizes`), so four minutes and the start of the
/// next window leave every default baseline complete.
pub const WARMUP_MS: u64 = 240_000;
/// The same after each of the few-trade kinds (bad ticks, wash trades and rings, velocity
/// bursts).
pub const SHORT_COOLDOWN_MS: u64 = 3_000;
/// The window of `round_sizes` and `benford` episodes: the engine's largest default window.
pub const ANOMALY_WINDOW_MS: u64 = 60_000;
/// Most event time from the start of an episode of `kind` at `time` to its end.
fn lasts_ms(kind: AlertKind, time: u64) -> u64 {
    match kind {
        AlertKind::RoundSizes | AlertKind::Benford => {
            (time / ANOMALY_WINDOW_MS + 2) * ANOMALY_WINDOW_MS - time
        }
        AlertKind::PumpAndDump => 91_000,
        AlertKind::VolumeBurst | AlertKind::VelocityBurst => 2_000,
        _ => 6_000,
    }
}

/// Share of a `round_sizes` window's trades whose size is rounded to one significant digit.
const ROUND_SHARE: f64 = 0.8;

/// Every kind: the market-shaping kinds, then the few-trade kinds.
pub const KINDS: [AlertKind; 8] = [
    AlertKind::VolumeBurst,
    AlertKind::RoundSizes,
    AlertKind::PumpAndDump,
    AlertKind::Benford,
    AlertKind::BadTick,
    AlertKind::WashTrade,
    AlertKind::WashRing,
    AlertKind::VelocityBurst,
];

/// The two lanes of episodes: the market-shaping kinds (one at a time, they would blur each
/// other's statistics) and, alongside them, the few-trade kinds (one at a time). The
/// account kinds are left out when trades carry no accounts.
/// Each lane: its kinds, its cooldown and its first quiet time.
const LANES: [(&[AlertKind], u64, u64); 2] = [
    (
        &[
            AlertKind::VolumeBurst,
            AlertKind::RoundSizes,
            AlertKind::PumpAndDump,
            AlertKind::Benford,
        ],
        COOLDOWN_MS,
        WARMUP_MS,
    ),
    (
        &[
            AlertKind::BadTick,
            AlertKind::WashTrade,
            AlertKind::WashRing,
            AlertKind::VelocityBurst,
        ],
        SHORT_COOLDOWN_MS,
        COOLDOWN_MS,
    ),
];

/// A random stream of the generator's own mappings (as in the trade process).
#[derive(Clone, Debug)]
pub(super) struct Draw(Pcg64Mcg);

impl Draw {
    /// The stream for `purpose` of `symbol` under `seed`: independent of the trade process's
    /// and of every other purpose's.
    pub(super) fn new(seed: u64, symbol: &Symbol, purpose: u64) -> Draw {
        let name = crate::hash::stable_hash(symbol.as_str().as_bytes());
        let high = splitmix64(seed ^ splitmix64(name ^ splitmix64(purpose)));
        let low = splitmix64(high ^ 0x2545_f491_4f6c_dd1d);
        Draw(Pcg64Mcg::new((u128::from(high) << 64) | u128::from(low)))
    }

    /// Uniform in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, n)` (0 when n is 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[low, high]`.
    pub(super) fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    pub(super) fn coin(&mut self) -> bool {
        self.0.next_u64() >> 63 == 1
    }

    pub(super) fn normal(&mut self) -> f64 {
        rand::Rng::sample(&mut self.0, StandardNormal)
    }

    /// Trials before the first success of probability `p` (geometric, mean `(1-p)/p`).
    pub(super) fn geometric(&mut self, p: f64) -> u64 {
        if p >= 1.0 {
            return 0;
        }
        let u = 1.0 - self.unit(); // (0, 1]
        (u.ln() / (-p).ln_1p()).floor().min(1e18) as u64
    }
}

/// The episode in progress.
#[derive(Clone, Debug)]
struct Episode {
    /// `[start, end)` of event time whose trades of the process the episode modifies
    /// (`round_sizes`, `benford`, `pump_and_dump`).
    window: Option<(u64, u64)>,
    /// A pump and dump's price path.
    pump: Option<Pump>,
    truth: Injection,
}

/// The price path of a pump and dump: up by `rise` linearly over `up_ms` from `start_ms`,
/// then back linearly over `down_ms`.
#[derive(Copy, Clone, Debug)]
struct Pump {
    start_ms: u64,
    up_ms: u64,
    down_ms: u64,
    rise: f64,
}

impl Pump {
    /// The price factor at `time`.
    fn factor(&self, time: u64) -> f64 {
        let Pump {
            start_ms,
            up_ms,
            down_ms,
            rise,
        } = *self;
        let since = time.saturating_sub(start_ms) as f64;
        if time < start_ms || since >= (up_ms + down_ms) as f64 {
            1.0
        } else if since < up_ms as f64 {
            1.0 + rise * since / up_ms as f64
        } else {
            1.0 + rise * (1.0 - (since - up_ms as f64) / down_ms as f64)
        }
    }
}

/// Trade-rate multiple and size multiple of a pump's rise, and the rate multiple of its fall.
const PUMP_RATE: f64 = 5.0;
const PUMP_SIZE: f64 = 3.0;
const DUMP_RATE: f64 = 3.0;

/// One lane of episodes.
#[derive(Clone, Debug)]
struct Lane {
    kinds: Vec<AlertKind>,
    cooldown_ms: u64,
    /// Episodes started so far.
    started: u64,
    /// Trades (at or after `resume_ms`) before the next episode starts.
    countdown: u64,
    resume_ms: u64,
    /// The injected trades of the episode, by event time, without ids yet.
    pending: VecDeque<Arrival>,
    episode: Option<Episode>,
}

/// The anomaly layer of one stream: merges injected trades into the trade process's
/// (event order), renumbers all consecutively, and modifies the trades of window episodes.
#[derive(Clone, Debug)]
pub(crate) struct Anomalies {
    draw: Draw,
    rate: f64,
    symbol: Symbol,
    index: usize,
    lanes: Vec<Lane>,
    next_id: u64,
    base_next: Option<Arrival>,
    base_done: bool,
    /// Price of the last trade of the process as delivered (on a pump's path, if one is
    /// under way): the prevailing price.
    last_price: Fixed,
    tick: i64,
    lot: i64,
    lot_value: f64,
    qty_mu: f64,
    /// Median size of the symbol, for the decade of `benford` windows.
    qty_median: f64,
    accounts: u64,
    ln_accounts_plus_one: f64,
    max_delay_ms: u64,
    /// Mean trades per second of event time.
    per_second: f64,
    /// Keeps chance wash-trade rings out of the market (with accounts).
    guard: Option<CycleGuard>,
}

impl Anomalies {
    pub(super) fn new(params: &StreamParams, base: &TradeGen) -> Anomalies {
        let mut draw = Draw::new(params.seed, &params.symbol, 1);
        let rate = params.anomalies.min(1.0);
        let lanes = LANES
            .iter()
            .map(|&(kinds, cooldown_ms, quiet_ms)| Lane {
                kinds: kinds
                    .iter()
                    .copied()
                    .filter(|kind| {
                        base.accounts > 0
                            || !matches!(
                                kind,
                                AlertKind::WashTrade
                                    | AlertKind::WashRing
                                    | AlertKind::VelocityBurst
                            )
                    })
                    .collect(),
                cooldown_ms,
                started: 0,
                countdown: draw.geometric(rate),
                resume_ms: params.start_ms.saturating_add(quiet_ms),
                pending: VecDeque::new(),
                episode: None,
            })
            .collect();
        Anomalies {
            draw,
            rate,
            symbol: params.symbol,
            index: params.index,
            lanes,
            next_id: 1_000_000 * (params.index as u64 + 1),
            base_next: None,
            base_done: false,
            last_price: Fixed(base.tick),
            tick: base.tick,
            lot: base.lot,
            lot_value: base.lot_value,
            qty_mu: base.qty_mu,
            qty_median: base.qty_mu.exp(),
            accounts: base.accounts,
            ln_accounts_plus_one: base.ln_accounts_plus_one,
            max_delay_ms: base.max_delay_ms,
            per_second: 1e9 / params.mean_gap_ns,
            guard: (base.accounts > 0).then(|| CycleGuard::new(base.accounts)),
        }
    }

    /// The next trade in event order, with its final id.
    pub(super) fn next(
        &mut self,
        base: &mut TradeGen,
        truth: &mut Option<Vec<Injection>>,
    ) -> Option<Tagged> {
        if self.base_next.is_none() && !self.base_done {
            self.base_next = base.next_trade();
            self.base_done = self.base_next.is_none();
        }
        for lane in 0..self.lanes.len() {
            let Lane {
                pending, episode, ..
            } = &self.lanes[lane];
            if let Some(Episode {
                window: Some((_, end)),
                ..
            }) = episode
            {
                if pending.is_empty() && self.base_next.is_none_or(|b| b.trade.time_ms >= *end) {
                    self.finish(lane, truth);
                }
            }
        }
        // The earliest of the process's next trade and each lane's (ties: the process, then
        // the first lane).
        let mut from = None;
        let mut earliest = self.base_next.map(|b| b.trade.time_ms);
        for (lane, Lane { pending, .. }) in self.lanes.iter().enumerate() {
            if let Some(next) = pending.front() {
                if earliest.is_none_or(|time| next.trade.time_ms < time) {
                    earliest = Some(next.trade.time_ms);
                    from = Some(lane);
                }
            }
        }
        if earliest.is_none() {
            for lane in 0..self.lanes.len() {
                self.finish(lane, truth);
            }
            return None;
        }
        if let Some(lane) = from {
            let Arrival {
                arrival_ms,
                mut trade,
            } = self.lanes[lane].pending.pop_front()?;
            trade.id = self.take_id();
            let kind = self.lanes[lane]
                .episode
                .as_ref()
                .map(|e| e.truth.kind.as_str());
            // The account patterns are the truth's own: left as injected.
            let pattern = matches!(kind, Some("wash_trade" | "wash_ring" | "velocity_burst"));
            if let Some(guard) = &mut self.guard {
                if pattern {
                    guard.remember(&trade);
                } else {
                    guard.check(&mut trade);
                }
            }
            self.note(lane, &trade);
            let Lane {
                pending, episode, ..
            } = &self.lanes[lane];
            if pending.is_empty() && episode.as_ref().is_some_and(|e| e.window.is_none()) {
                self.finish(lane, truth);
            }
            return Some(Tagged {
                arrival_ms,
                trade,
                anomalous: true,
            });
        }
        let Arrival {
            arrival_ms,
            mut trade,
        } = self.base_next.take()?;
        trade.id = self.take_id();
        let mut anomalous = false;
        if let Some(Episode {
            window: Some((start, end)),
            pump,
            truth: injection,
        }) = &self.lanes[0].episode
        {
            if (*start..*end).contains(&trade.time_ms) {
                anomalous = true;
                match (injection.kind.as_str(), pump) {
                    ("round_sizes", _) if self.draw.unit() < ROUND_SHARE => {
                        trade.qty = round_size(trade.qty);
                    }
                    ("benford", _) => trade.qty = self.flat_size(),
                    (_, Some(pump)) => {
                        let factor = pump.factor(trade.time_ms);
                        trade.price =
                            self.on_ticks(trade.price.to_f64() * factor, trade.buyer_maker);
                        trade.qty = self.on_lots(trade.qty.to_f64() * PUMP_SIZE);
                    }
                    _ => {}
                }
                self.note(0, &trade);
            }
        }
        if let Some(guard) = &mut self.guard {
            guard.check(&mut trade);
        }
        self.last_price = trade.price;
        for lane in 0..self.lanes.len() {
            // In a finite stream, an episode starts only where the trades surely outlast it.
            let Lane { kinds, started, .. } = &self.lanes[lane];
            let kind = kinds[(self.index + *started as usize) % kinds.len()];
            let needed_s = lasts_ms(kind, trade.time_ms) as f64 / 1e3;
            let enough = base
                .remaining
                .is_none_or(|left| left as f64 > 1.2 * self.per_second * needed_s + 100.0);
            if !enough {
                continue;
            }
            let Lane {
                episode,
                resume_ms,
                countdown,
                ..
            } = &mut self.lanes[lane];
            if episode.is_none() && trade.time_ms >= *resume_ms {
                if *countdown == 0 {
                    self.start(lane, &trade);
                } else {
                    *countdown -= 1;
                }
            }
        }
        Some(Tagged {
            arrival_ms,
            trade,
            anomalous,
        })
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Adds a trade to the truth of the lane's episode.
    fn note(&mut self, lane: usize, trade: &Trade) {
        if let Some(episode) = &mut self.lanes[lane].episode {
            let truth = &mut episode.truth;
            if truth.trade_ids.is_empty() {
                truth.first_ms = trade.time_ms;
                truth.order = (self.index, trade.id);
            }
            truth.trade_ids.push(trade.id);
            truth.first_ms = truth.first_ms.min(trade.time_ms);
            truth.last_ms = truth.last_ms.max(trade.time_ms);
        }
    }

    fn finish(&mut self, lane: usize, truth: &mut Option<Vec<Injection>>) {
        let rate = self.rate;
        let Lane {
            episode,
            resume_ms,
            countdown,
            cooldown_ms,
            ..
        } = &mut self.lanes[lane];
        let Some(Episode {
            window,
            truth: mut injection,
            ..
        }) = episode.take()
        else {
            return;
        };
        injection.count = injection.trade_ids.len() as u64;
        if let Some((start, _)) = window {
            injection.first_ms = injection.first_ms.max(start);
        }
        let end = window.map_or(injection.last_ms, |(_, end)| end);
        *resume_ms = end.saturating_add(*cooldown_ms);
        *countdown = self.draw.geometric(rate);
        if let Some(truth) = truth {
            if injection.count > 0 {
                truth.push(injection);
            }
        }
    }

    /// Starts the next episode right after `at` (a trade of the process, already numbered).
    fn start(&mut self, lane: usize, at: &Trade) {
        let Lane { kinds, started, .. } = &mut self.lanes[lane];
        let kind = kinds[(self.index + *started as usize) % kinds.len()];
        *started += 1;
        let t0 = at.time_ms;
        let mut window = None;
        let mut pump = None;
        let mut accounts = Vec::new();
        let mut params = Map::new();
        let prevailing = self.last_price;
        match kind {
            AlertKind::BadTick => {
                let u = 0.03 + 0.05 * self.draw.unit();
                let up = self.draw.coin();
                let factor = if up { 1.0 + u } else { 1.0 - u };
                let ticks = (prevailing.to_f64() * factor / (self.tick as f64 / 1e8)).round();
                let price = Fixed((ticks as i64).max(1) * self.tick);
                let time = t0 + self.draw.between(1, 100);
                let mut trade = self.trade(time, None);
                trade.price = price;
                self.push(lane, trade);
                params.insert("prevailing".into(), json!(prevailing.to_string()));
                params.insert("price".into(), json!(price.to_string()));
                let deviation = price.to_f64() / prevailing.to_f64() - 1.0;
                params.insert("deviation".into(), json!(round4(deviation)));
            }
            AlertKind::VolumeBurst => {
                let second = (t0 / 1000 + 1) * 1000;
                let n = (10.0 * self.per_second).ceil().max(20.0) as u64;
                let mut times: Vec<u64> = (0..n).map(|_| second + self.draw.below(1000)).collect();
                times.sort_unstable();
                for time in times {
                    let mut trade = self.trade(time, None);
                    let scale = 1.0 + 2.0 * self.draw.unit();
                    trade.qty = self.on_lots(trade.qty.to_f64() * scale);
                    self.push(lane, trade);
                }
                params.insert("second_ms".into(), json!(second));
                params.insert("trades".into(), json!(n));
                params.insert("mean_per_second".into(), json!(round4(self.per_second)));
            }
            AlertKind::WashTrade => {
                let who = self.zipf();
                let time = t0 + self.draw.between(1, 200);
                let mut trade = self.trade(time, None);
                trade.buyer = account(who);
                trade.seller = account(who);
                self.push(lane, trade);
                accounts.push(name(who));
            }
            AlertKind::WashRing => {
                let m = if self.draw.coin() { 3 } else { 2 }.min(self.accounts as usize);
                let mut ring: Vec<u64> = Vec::with_capacity(m);
                while ring.len() < m {
                    let who = self.draw.below(self.accounts);
                    if !ring.contains(&who) {
                        ring.push(who);
                    }
                }
                let span = self.draw.between(1_000, 5_000);
                let mut offsets: Vec<u64> = (1..m).map(|_| self.draw.below(span)).collect();
                offsets.push(0);
                offsets.sort_unstable();
                let qty = self.normal_qty();
                for (i, offset) in offsets.into_iter().enumerate() {
                    let mut trade = self.trade(t0 + 1 + offset, None);
                    trade.qty = qty;
                    trade.seller = account(ring[i]);
                    trade.buyer = account(ring[(i + 1) % m]);
                    self.push(lane, trade);
                }
                accounts.extend(ring.iter().map(|&r| name(r)));
                params.insert("ring".into(), json!(m));
                params.insert("qty".into(), json!(qty.to_string()));
                params.insert("span_ms".into(), json!(span));
            }
            AlertKind::VelocityBurst => {
                let half = self.accounts / 2;
                let who = half + self.draw.below(self.accounts - half);
                let n = self.draw.between(15, 30);
                let second = (t0 / 1000 + 1) * 1000;
                let mut times: Vec<u64> = (0..n).map(|_| second + self.draw.below(1000)).collect();
                times.sort_unstable();
                for time in times {
                    let mut trade = self.trade(time, Some(who));
                    if self.draw.coin() {
                        std::mem::swap(&mut trade.buyer, &mut trade.seller);
                    }
                    self.push(lane, trade);
                }
                accounts.push(name(who));
                params.insert("trades".into(), json!(n));
                params.insert("second_ms".into(), json!(second));
            }
            AlertKind::RoundSizes | AlertKind::Benford => {
                let start = (t0 / ANOMALY_WINDOW_MS + 1) * ANOMALY_WINDOW_MS;
                window = Some((start, start + ANOMALY_WINDOW_MS));
                params.insert("window_ms".into(), json!(ANOMALY_WINDOW_MS));
                params.insert("start_ms".into(), json!(start));
                if kind == AlertKind::RoundSizes {
                    params.insert("round_share".into(), json!(ROUND_SHARE));
                } else {
                    let decade = Fixed(self.decade_units());
                    params.insert("decade".into(), json!(decade.to_string()));
                    params.insert("distribution".into(), json!("uniform"));
                }
            }
            AlertKind::PumpAndDump => {
                let path = Pump {
                    start_ms: t0 + 1,
                    up_ms: self.draw.between(30_000, 60_000),
                    down_ms: self.draw.between(10_000, 30_000),
                    rise: 0.04 + 0.06 * self.draw.unit(),
                };
                let peak = path.start_ms + path.up_ms;
                let end = peak + path.down_ms;
                window = Some((path.start_ms, end));
                pump = Some(path);
                // The process's own trades continue (their prices on the path, sizes ×3);
                // these come on top, at (rate multiple - 1) × its rate.
                for (from, to, multiple) in
                    [(path.start_ms, peak, PUMP_RATE), (peak, end, DUMP_RATE)]
                {
                    let extra = (multiple - 1.0) * self.per_second * (to - from) as f64 / 1e3;
                    let n = extra.round() as u64;
                    let mut times: Vec<u64> =
                        (0..n).map(|_| from + self.draw.below(to - from)).collect();
                    times.sort_unstable();
                    for time in times {
                        let mut trade = self.trade(time, None);
                        let factor = path.factor(time);
                        trade.price =
                            self.on_ticks(prevailing.to_f64() * factor, trade.buyer_maker);
                        trade.qty = self.on_lots(trade.qty.to_f64() * PUMP_SIZE);
                        self.push(lane, trade);
                    }
                }
                params.insert("start_price".into(), json!(prevailing.to_string()));
                params.insert("rise".into(), json!(round4(path.rise)));
                params.insert("up_ms".into(), json!(path.up_ms));
                params.insert("down_ms".into(), json!(path.down_ms));
                params.insert("peak_ms".into(), json!(peak));
            }
        }
        self.lanes[lane].episode = Some(Episode {
            window,
            pump,
            truth: Injection {
                class: Class::Anomaly,
                kind: kind.as_str().to_owned(),
                quality: None,
                symbol: Some(self.symbol.as_str().to_owned()),
                accounts,
                trade_ids: Vec::new(),
                count: 0,
                first_ms: t0,
                last_ms: t0,
                params,
                order: (self.index, at.id + 1),
            },
        });
    }

    fn push(&mut self, lane: usize, trade: Trade) {
        let delay = self.draw.below(self.max_delay_ms.saturating_add(1));
        self.lanes[lane].pending.push_back(Arrival {
            arrival_ms: trade.time_ms.saturating_add(delay),
            trade,
        });
    }

    /// A normal-looking trade at `time` (id set when it is emitted): the prevailing price
    /// or one tick above (the side decides), a log-normal size, accounts from the pool
    /// (`with` as the buyer, when given).
    fn trade(&mut self, time_ms: u64, with: Option<u64>) -> Trade {
        let buyer_maker = self.draw.coin();
        let price = if buyer_maker {
            self.last_price
        } else {
            Fixed(self.last_price.0.saturating_add(self.tick))
        };
        let qty = self.normal_qty();
        let (buyer, seller) = if self.accounts == 0 {
            (None, None)
        } else {
            let buyer = with.unwrap_or_else(|| self.zipf());
            let mut seller = self.zipf();
            if seller == buyer {
                seller = (buyer + 1 + self.draw.below(self.accounts - 1)) % self.accounts;
            }
            (account(buyer), account(seller))
        };
        Trade {
            symbol: self.symbol,
            id: 0,
            price,
            qty,
            time_ms,
            buyer_maker,
            buyer,
            seller,
        }
    }

    fn normal_qty(&mut self) -> Fixed {
        let z = self.draw.normal();
        self.on_lots((self.qty_mu + QTY_SIGMA * z).exp())
    }

    /// A price on the tick grid near `value`: rounded down for a sell aggressor, up for a
    /// buy aggressor (as the process does), at least one tick.
    fn on_ticks(&self, value: f64, buyer_maker: bool) -> Fixed {
        let ticks = value.min(1e9) * 1e8 / self.tick as f64;
        let ticks = if buyer_maker {
            ticks.floor()
        } else {
            ticks.ceil()
        };
        Fixed((ticks as i64).max(1) * self.tick)
    }

    /// `value` rounded to the lot grid, at least one lot.
    fn on_lots(&self, value: f64) -> Fixed {
        let lots = (value.min(1e9) / self.lot_value).round();
        Fixed((lots as i64).max(1) * self.lot)
    }

    /// The power of ten (units of 10^-8) of the symbol's median size, at least one lot.
    fn decade_units(&self) -> i64 {
        let exponent = self.qty_median.log10().floor() as i32;
        let units = 10f64.powi(exponent + 8).round() as i64;
        units.max(self.lot)
    }

    /// A size uniform over one decade of the usual magnitude: flat first digits.
    fn flat_size(&mut self) -> Fixed {
        let decade = self.decade_units() as f64;
        let value = decade * (1.0 + 9.0 * self.draw.unit());
        let lots = (value / self.lot as f64).floor().max(1.0) as i64;
        Fixed(lots * self.lot)
    }

    /// Zipf-like account rank, as in the trade process.
    fn zipf(&mut self) -> u64 {
        let x = (self.draw.unit() * self.ln_accounts_plus_one).exp();
        (x as u64).saturating_sub(1).min(self.accounts - 1)
    }
}

fn name(rank: u64) -> String {
    account(rank).map(|a| a.to_string()).unwrap_or_default()
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// `qty` with one significant digit, the nearest of 1, 2, 5 or 10 times its power of ten
/// (which is a multiple of the lot, the lot being a power of ten not above `qty`).
pub(crate) fn round_size(qty: Fixed) -> Fixed {
    let units = qty.0;
    if units <= 0 {
        return qty;
    }
    let mut magnitude = 1i64;
    while magnitude <= units / 10 {
        magnitude *= 10;
    }
    let leading = units as f64 / magnitude as f64;
    let digit = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .min_by(|a, b| (leading - a).abs().total_cmp(&(leading - b).abs()))
        .unwrap_or(1.0);
    Fixed((digit as i64).saturating_mul(magnitude))
}

/// Whether `qty` has a single significant digit (1, 2, 5, 0.1, 0.5, 10, 300, …).
pub fn is_round(qty: Fixed) -> bool {
    let mut units = qty.0;
    if units <= 0 {
        return false;
    }
    while units % 10 == 0 {
        units /= 10;
    }
    units < 10
}
