//! A small deterministic synthetic market with injected anomalies and their ground truth,
//! shaped as the shared generator contract describes them (issue 9): a geometric random walk
//! with Poisson arrivals, prices on a tick grid bouncing within a one-tick spread, log-normal
//! sizes on a lot grid, several symbols with different rates.

use tickflow_operators::model::{AlertKind, Fixed, Symbol, Trade};

/// splitmix64: small, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    pub fn exp(&mut self) -> f64 {
        -(1.0 - self.unit()).ln()
    }
}

/// How one symbol trades.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub name: &'static str,
    /// Mean trades per second.
    pub rate: f64,
    pub price: f64,
    pub tick_decimals: u32,
    pub lot_decimals: u32,
    pub qty_median: f64,
    /// Annualized volatility.
    pub volatility: f64,
}

/// Symbols with rates from 4 to 60 trades per second and very different price levels.
pub const SPECS: [Spec; 6] = [
    Spec {
        name: "BTCUSDT",
        rate: 60.0,
        price: 43_000.0,
        tick_decimals: 2,
        lot_decimals: 5,
        qty_median: 0.005,
        volatility: 0.6,
    },
    Spec {
        name: "ETHUSDT",
        rate: 35.0,
        price: 2_300.0,
        tick_decimals: 2,
        lot_decimals: 4,
        qty_median: 0.08,
        volatility: 0.7,
    },
    Spec {
        name: "SOLUSDT",
        rate: 20.0,
        price: 100.0,
        tick_decimals: 2,
        lot_decimals: 2,
        qty_median: 2.0,
        volatility: 0.95,
    },
    Spec {
        name: "XRPUSDT",
        rate: 12.0,
        price: 0.62,
        tick_decimals: 4,
        lot_decimals: 0,
        qty_median: 300.0,
        volatility: 0.8,
    },
    Spec {
        name: "DOGEUSDT",
        rate: 7.0,
        price: 0.085,
        tick_decimals: 5,
        lot_decimals: 0,
        qty_median: 2_000.0,
        volatility: 1.0,
    },
    Spec {
        name: "AVAXUSDT",
        rate: 4.0,
        price: 37.0,
        tick_decimals: 2,
        lot_decimals: 2,
        qty_median: 5.0,
        volatility: 0.95,
    },
];

/// One injection.
#[derive(Clone, Debug)]
pub struct Truth {
    pub kind: AlertKind,
    pub symbol: Symbol,
    /// Injected trades (for the window kinds: none; they match by window).
    pub ids: Vec<u64>,
    /// For `benford` and `round_sizes`: the start of the injected window.
    pub window_start: Option<u64>,
}

/// The first event time: a whole minute.
pub const T0: u64 = 1_700_000_040_000;
/// Length of one injection slot; each holds at most one anomaly, at least 60 s clean before.
pub const SLOT_MS: u64 = 180_000;
const MINUTE: u64 = 60_000;
const SECONDS_PER_YEAR: f64 = 31_557_600.0;

/// The kinds injected, rotating per slot and symbol.
pub const KINDS: [AlertKind; 5] = [
    AlertKind::BadTick,
    AlertKind::VolumeBurst,
    AlertKind::PumpAndDump,
    AlertKind::RoundSizes,
    AlertKind::Benford,
];

/// What a generated event is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tag {
    Normal,
    BurstExtra,
    BadTick(f64),
}

/// A pump-and-dump episode: price offset in log units as a function of time.
#[derive(Clone, Copy, Debug)]
struct Pump {
    start: f64,
    peak: f64,
    end: f64,
    rise: f64,
}

impl Pump {
    fn offset(&self, t: f64) -> f64 {
        let top = (1.0 + self.rise).ln();
        if t < self.start || t >= self.end {
            0.0
        } else if t < self.peak {
            top * (t - self.start) / (self.peak - self.start)
        } else {
            top * (1.0 - (t - self.peak) / (self.end - self.peak))
        }
    }

    fn rate(&self, t: f64) -> f64 {
        if t >= self.start && t < self.peak {
            5.0
        } else if t >= self.peak && t < self.end {
            3.0
        } else {
            1.0
        }
    }
}

/// Trades of every symbol over `slots` slots (sorted by symbol, then time and id), and the
/// truth of the injections (none when `inject` is false). Slot 0 of each symbol is clean
/// (warm-up).
pub fn market(seed: u64, specs: &[Spec], slots: u64, inject: bool) -> (Vec<Trade>, Vec<Truth>) {
    let mut trades = Vec::new();
    let mut truths = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let mut rng = Rng::new(seed.wrapping_mul(1000).wrapping_add(index as u64));
        symbol_market(
            &mut rng,
            index,
            spec,
            slots,
            inject,
            &mut trades,
            &mut truths,
        );
    }
    (trades, truths)
}

fn symbol_market(
    rng: &mut Rng,
    index: usize,
    spec: &Spec,
    slots: u64,
    inject: bool,
    trades: &mut Vec<Trade>,
    truths: &mut Vec<Truth>,
) {
    let symbol = Symbol::new(spec.name).expect("short");
    let end_ms = T0 + slots * SLOT_MS;
    // The plan of injections.
    let mut pumps: Vec<Pump> = Vec::new();
    let mut extras: Vec<(f64, Tag)> = Vec::new();
    let mut windows: Vec<(AlertKind, u64)> = Vec::new();
    let mut burst_slots: Vec<u64> = Vec::new();
    if inject {
        for slot in 1..slots {
            let base = (T0 + slot * SLOT_MS) as f64;
            let kind = KINDS[(slot as usize + index) % KINDS.len()];
            match kind {
                AlertKind::BadTick => {
                    let u = rng.range(0.03, 0.08);
                    let sign = if rng.unit() < 0.5 { -1.0 } else { 1.0 };
                    let t = base + 90_000.0 + rng.range(0.0, 30_000.0);
                    extras.push((t, Tag::BadTick(sign * u)));
                }
                AlertKind::VolumeBurst => {
                    let n = (10.0 * spec.rate).ceil().max(20.0) as usize;
                    let t = base + 90_000.0 + rng.range(0.0, 30_000.0);
                    for _ in 0..n {
                        extras.push((t + rng.range(0.0, 999.0), Tag::BurstExtra));
                    }
                    burst_slots.push(slot);
                }
                AlertKind::PumpAndDump => {
                    let start = base + 65_000.0 + rng.range(0.0, 5_000.0);
                    let peak = start + rng.range(30_000.0, 60_000.0);
                    let end = peak + rng.range(10_000.0, 30_000.0);
                    pumps.push(Pump {
                        start,
                        peak,
                        end,
                        rise: rng.range(0.04, 0.10),
                    });
                }
                kind => windows.push((kind, T0 + slot * SLOT_MS + MINUTE)),
            }
        }
    }
    // Arrival times: Poisson at up to 5× the rate, thinned by the pump's rate multiple.
    let mut events: Vec<(f64, Tag)> = Vec::new();
    let mut t = T0 as f64;
    let top = 5.0 * spec.rate;
    loop {
        t += rng.exp() * 1000.0 / top;
        if t >= end_ms as f64 {
            break;
        }
        let multiple = pumps.iter().map(|p| p.rate(t)).fold(1.0, f64::max);
        if rng.unit() * 5.0 < multiple {
            events.push((t, Tag::Normal));
        }
    }
    events.extend(extras);
    events.sort_by(|a, b| a.0.total_cmp(&b.0));

    let tick = 10f64.powi(-(spec.tick_decimals as i32));
    let lot = 10f64.powi(-(spec.lot_decimals as i32));
    let tick_units = 10i64.pow(8 - spec.tick_decimals);
    let lot_units = 10i64.pow(8 - spec.lot_decimals);
    let sigma = spec.volatility / SECONDS_PER_YEAR.sqrt();
    let magnitude = 10f64.powf(spec.qty_median.log10().floor());
    let first_id = 1_000_000 * (index as u64 + 1);
    let mut walk = spec.price.ln();
    let mut last_t = T0 as f64;
    let mut buyer_maker = false;
    let mut burst_ids: Vec<u64> = Vec::new();
    let mut pump_ids: Vec<Vec<u64>> = vec![Vec::new(); pumps.len()];
    for (seq, &(t, tag)) in events.iter().enumerate() {
        let id = first_id + seq as u64;
        let time_ms = t as u64;
        let dt = (t - last_t).max(0.0) / 1000.0;
        last_t = t;
        walk += sigma * dt.sqrt() * rng.normal() - 0.5 * sigma * sigma * dt;
        let offset: f64 = pumps.iter().map(|p| p.offset(t)).sum();
        let prevailing = (walk + offset).exp();
        if rng.unit() < 0.35 {
            buyer_maker = !buyer_maker;
        }
        let ticks = match tag {
            Tag::BadTick(u) => (prevailing * (1.0 + u) / tick).round(),
            _ if buyer_maker => (prevailing / tick).floor(),
            _ => (prevailing / tick).ceil(),
        };
        let mut size = (spec.qty_median.ln() + 1.3 * rng.normal()).exp();
        let in_pump = pumps.iter().position(|p| t >= p.start && t < p.end);
        if let Some(p) = in_pump {
            if t < pumps[p].peak {
                size *= 3.0;
            }
            pump_ids[p].push(id);
        }
        match tag {
            Tag::BurstExtra => {
                size *= rng.range(1.0, 3.0);
                burst_ids.push(id);
            }
            Tag::BadTick(_) => truths.push(Truth {
                kind: AlertKind::BadTick,
                symbol,
                ids: vec![id],
                window_start: None,
            }),
            Tag::Normal => {}
        }
        let window = windows
            .iter()
            .find(|&&(_, start)| time_ms >= start && time_ms < start + MINUTE);
        match window {
            Some((AlertKind::RoundSizes, _)) if rng.unit() < 0.75 => {
                let digits = 10f64.powf(size.log10().floor());
                size = ((size / digits).round().clamp(1.0, 9.0)) * digits;
            }
            Some((AlertKind::Benford, _)) => size = rng.range(1.0, 10.0) * magnitude,
            _ => {}
        }
        let lots = ((size / lot).round() as i64).max(1);
        trades.push(Trade {
            symbol,
            id,
            price: Fixed((ticks as i64).max(1) * tick_units),
            qty: Fixed(lots * lot_units),
            time_ms,
            buyer_maker,
            buyer: None,
            seller: None,
        });
    }
    // Burst extras, per slot (they are far apart).
    let mut extra_times: Vec<(u64, u64)> = trades
        .iter()
        .filter(|t| t.symbol == symbol && burst_ids.binary_search(&t.id).is_ok())
        .map(|t| (t.time_ms, t.id))
        .collect();
    extra_times.sort_unstable();
    for slot in burst_slots {
        let from = T0 + slot * SLOT_MS;
        let ids: Vec<u64> = extra_times
            .iter()
            .filter(|&&(t, _)| t >= from && t < from + SLOT_MS)
            .map(|&(_, id)| id)
            .collect();
        truths.push(Truth {
            kind: AlertKind::VolumeBurst,
            symbol,
            ids,
            window_start: None,
        });
    }
    for ids in pump_ids {
        truths.push(Truth {
            kind: AlertKind::PumpAndDump,
            symbol,
            ids,
            window_start: None,
        });
    }
    for (kind, start) in windows {
        truths.push(Truth {
            kind,
            symbol,
            ids: Vec::new(),
            window_start: Some(start),
        });
    }
}
