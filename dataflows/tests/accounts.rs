//! The account rules (wash trades, velocity bursts, wash-trade rings) against plain
//! sequential references written here (brute-force counts and cycle search), through timely
//! with 1 and 3 workers and shuffled arrival within a time; the replay of an input suffix
//! from the horizon; detection quality on a synthetic market with injected anomalies; and
//! (ignored) throughput next to the candles.
//!
//! The synthetic market follows the generator's contract: accounts drawn from a pool of
//! 1000 with `P(k) ∝ ln((k+2)/(k+1))`, Poisson arrivals, log-normal sizes (σ = 1.3) on each
//! symbol's lot grid, the generator's eight symbols and weights; injected wash trades,
//! velocity bursts (15–30 trades of one account within one second) and 2-/3-rings (a fixed
//! quantity around a cycle within 1–5 s).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Instant;

use proptest::prelude::*;
use tickflow_dataflows::accounts::{account_alerts, horizon, share_tail, AccountConfig};
use tickflow_operators::model::{Account, Alert, AlertKind, Fixed, Symbol, Trade};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::{Inspect, UnorderedInput};
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

const START_MS: u64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------
// A deterministic synthetic market.

/// SplitMix64: small, seeded, ours.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn exp(&mut self) -> f64 {
        -(1.0 - self.unit()).ln()
    }
}

/// The generator's symbols: (name, price, price decimals, qty decimals, median qty, weight).
const PROFILES: [(&str, f64, u32, u32, f64, u64); 8] = [
    ("BTCUSDT", 43_000.0, 2, 5, 0.005, 30),
    ("ETHUSDT", 2_300.0, 2, 4, 0.08, 20),
    ("BNBUSDT", 310.0, 1, 3, 0.5, 8),
    ("SOLUSDT", 100.0, 2, 2, 2.0, 12),
    ("XRPUSDT", 0.62, 4, 0, 300.0, 10),
    ("ADAUSDT", 0.55, 4, 1, 350.0, 6),
    ("DOGEUSDT", 0.085, 5, 0, 2_000.0, 8),
    ("AVAXUSDT", 37.0, 2, 2, 5.0, 6),
];

fn account(k: u64) -> Account {
    Account::new(&format!("acct-{k:06}")).expect("short")
}

#[derive(Clone, Debug)]
struct Truth {
    kind: AlertKind,
    symbol: Symbol,
    account: Option<Account>,
    trade_ids: Vec<u64>,
}

#[derive(Clone, Debug)]
struct Spec {
    seed: u64,
    /// Clean trades.
    trades: usize,
    /// Trades per second of event time, all symbols.
    rate: f64,
    /// Account pool.
    pool: u64,
    wash: usize,
    bursts: usize,
    rings: usize,
    /// Injected accounts drawn uniformly from the pool (else with the pool's own weights).
    uniform_accounts: bool,
    /// Multiplies every median size (a small value makes equal sizes common).
    size_scale: f64,
}

/// A trade before ids: symbol index, event time, lots, buyer, seller, injection index.
struct Proto {
    symbol: usize,
    time_ms: u64,
    lots: i64,
    buyer: u64,
    seller: u64,
    tag: Option<usize>,
}

struct Market {
    trades: Vec<Trade>,
    truth: Vec<Truth>,
}

fn market(spec: &Spec) -> Market {
    let mut rng = Rng(spec.seed);
    let ln_pool = ((spec.pool + 1) as f64).ln();
    let weights: u64 = PROFILES.iter().map(|p| p.5).sum();
    let rank = |rng: &mut Rng| {
        let x = (rng.unit() * ln_pool).exp();
        (x as u64).saturating_sub(1).min(spec.pool - 1)
    };
    let pick = |rng: &mut Rng| {
        if spec.uniform_accounts {
            rng.below(spec.pool)
        } else {
            rank(rng)
        }
    };
    let other = |rng: &mut Rng, a: u64| (a + 1 + rng.below(spec.pool - 1)) % spec.pool;
    let symbol = |rng: &mut Rng| {
        let mut x = rng.below(weights);
        PROFILES
            .iter()
            .position(|p| {
                let hit = x < p.5;
                x = x.saturating_sub(p.5);
                hit
            })
            .unwrap_or(0)
    };
    let lots = |rng: &mut Rng, s: usize| {
        let (_, _, _, qty_decimals, median, _) = PROFILES[s];
        let lot = 10f64.powi(-(qty_decimals as i32));
        let mu = (median * spec.size_scale / lot).max(1.0).ln();
        ((mu + 1.3 * rng.normal()).exp().round() as i64).clamp(1, 1_000_000_000)
    };
    let mut protos = Vec::with_capacity(spec.trades);
    let mut t = 0.0f64;
    for _ in 0..spec.trades {
        t += rng.exp() * 1_000.0 / spec.rate;
        let s = symbol(&mut rng);
        let buyer = rank(&mut rng);
        let mut seller = rank(&mut rng);
        if seller == buyer {
            seller = other(&mut rng, buyer);
        }
        let lots = lots(&mut rng, s);
        protos.push(Proto {
            symbol: s,
            time_ms: START_MS + t as u64,
            lots,
            buyer,
            seller,
            tag: None,
        });
    }
    let span = (t as u64).max(20_000);
    let mut truth = Vec::new();
    let mut injected = |rng: &mut Rng, kind: AlertKind, s: usize, acct: Option<u64>| {
        truth.push(Truth {
            kind,
            symbol: Symbol::new(PROFILES[s].0).expect("short"),
            account: acct.map(account),
            trade_ids: Vec::new(),
        });
        let _ = rng;
        truth.len() - 1
    };
    let when = |rng: &mut Rng| START_MS + 5_000 + rng.below(span - 12_000);
    for _ in 0..spec.wash {
        let s = symbol(&mut rng);
        let a = pick(&mut rng);
        let tag = injected(&mut rng, AlertKind::WashTrade, s, Some(a));
        let lots = lots(&mut rng, s);
        protos.push(Proto {
            symbol: s,
            time_ms: when(&mut rng),
            lots,
            buyer: a,
            seller: a,
            tag: Some(tag),
        });
    }
    for _ in 0..spec.bursts {
        let s = symbol(&mut rng);
        let a = pick(&mut rng);
        let tag = injected(&mut rng, AlertKind::VelocityBurst, s, Some(a));
        let t0 = when(&mut rng);
        for _ in 0..15 + rng.below(16) {
            let b = other(&mut rng, a);
            let (buyer, seller) = if rng.below(2) == 0 { (a, b) } else { (b, a) };
            let lots = lots(&mut rng, s);
            protos.push(Proto {
                symbol: s,
                time_ms: t0 + rng.below(1_000),
                lots,
                buyer,
                seller,
                tag: Some(tag),
            });
        }
    }
    for i in 0..spec.rings {
        let s = symbol(&mut rng);
        let length = 2 + (i % 2) as u64;
        let mut members = Vec::new();
        while (members.len() as u64) < length {
            let a = pick(&mut rng);
            if !members.contains(&a) {
                members.push(a);
            }
        }
        let tag = injected(&mut rng, AlertKind::WashRing, s, Some(members[0]));
        let lots = lots(&mut rng, s);
        let t0 = when(&mut rng);
        let span = 1_000 + rng.below(4_001);
        for k in 0..length {
            protos.push(Proto {
                symbol: s,
                time_ms: t0 + span * k / (length - 1),
                lots,
                buyer: members[((k + 1) % length) as usize],
                seller: members[k as usize],
                tag: Some(tag),
            });
        }
    }
    // Ids consecutive per symbol in event-time order, injected trades included.
    protos.sort_by_key(|p| (p.symbol, p.time_ms));
    let mut next_id = [0u64; 8];
    for (i, id) in next_id.iter_mut().enumerate() {
        *id = 1_000_000 * (i as u64 + 1);
    }
    let mut trades = Vec::with_capacity(protos.len());
    for p in &protos {
        let (name, price, price_decimals, qty_decimals, _, _) = PROFILES[p.symbol];
        let id = next_id[p.symbol];
        next_id[p.symbol] += 1;
        let tick = 10i64.pow(8 - price_decimals);
        let ticks = (price / (tick as f64 / 1e8)) as i64 + (id % 7) as i64;
        trades.push(Trade {
            symbol: Symbol::new(name).expect("short"),
            id,
            price: Fixed(ticks * tick),
            qty: Fixed(p.lots * 10i64.pow(8 - qty_decimals)),
            time_ms: p.time_ms,
            buyer_maker: id % 2 == 0,
            buyer: Some(account(p.buyer)),
            seller: Some(account(p.seller)),
        });
        if let Some(tag) = p.tag {
            truth[tag].trade_ids.push(id);
        }
    }
    trades.sort_by_key(|t| (t.time_ms, t.symbol, t.id));
    Market { trades, truth }
}

// ---------------------------------------------------------------------------------------
// Running the dataflow.

/// Alerts with the timely time they were emitted at, `detected_ms` zeroed, in a fixed order.
type Emitted = Vec<(u64, Alert)>;

fn sorted(mut alerts: Emitted) -> Emitted {
    for (_, alert) in alerts.iter_mut() {
        alert.detected_ms = 0;
    }
    alerts.sort_by(|(t1, a1), (t2, a2)| {
        (t1, a1.alert_id(), &a1.details).cmp(&(t2, a2.alert_id(), &a2.details))
    });
    alerts
}

/// Runs `trades` through [`account_alerts`] on `workers` threads. Trades travel at their
/// event time coarsened to `granule`; within each time the arrival order is shuffled by
/// `shuffle`, and worker `w` feeds every `workers`-th trade, holding its capability at the
/// time of its next trade (a source that is never late).
fn run(
    trades: &[Trade],
    config: &AccountConfig,
    granule: u64,
    workers: usize,
    shuffle: u64,
) -> Emitted {
    let mut arrivals: Vec<(u64, u64, Trade)> = {
        let mut rng = Rng(shuffle);
        trades
            .iter()
            .map(|t| (t.time_ms - t.time_ms % granule, rng.next(), *t))
            .collect()
    };
    arrivals.sort_by_key(|&(time, key, _)| (time, key));
    let arrivals: Vec<(u64, Trade)> = arrivals
        .into_iter()
        .map(|(t, _, trade)| (t, trade))
        .collect();
    let arrivals = std::sync::Arc::new(arrivals);
    let config = config.clone();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let output = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&output);
        let probe = ProbeHandle::new();
        let config = config.clone();
        let (mut input, mut capability) = worker.dataflow::<u64, _, _>(|scope| {
            let ((input, capability), trades) =
                scope.new_unordered_input::<CapacityContainerBuilder<Vec<Trade>>>();
            account_alerts(trades, &config)
                .inspect_core(move |event| {
                    if let Ok((stamp, alerts)) = event {
                        let time = *stamp.least().expect("alerts travel at a time");
                        let alerts: &Vec<Alert> = alerts;
                        for alert in alerts {
                            sink.borrow_mut().push((time, alert.clone()));
                        }
                    }
                })
                .probe_with(&probe);
            (input, capability)
        });
        for (n, (time, trade)) in arrivals.iter().skip(index).step_by(peers).enumerate() {
            if *time > *capability.time() {
                capability.downgrade(time);
            }
            input
                .activate()
                .session(&capability.delayed(time))
                .give(*trade);
            if n % 64 == 0 {
                worker.step();
            }
        }
        drop(capability);
        while !probe.done() {
            worker.step();
        }
        output.take()
    })
    .expect("timely starts");
    let alerts: Emitted = guards
        .join()
        .into_iter()
        .flat_map(|result| result.expect("worker finishes"))
        .collect();
    sorted(alerts)
}

// ---------------------------------------------------------------------------------------
// Sequential references.

/// What every rule's alert is identified by: emission time, kind, symbol, account, event
/// time of the last trade, trade ids.
type Finding = (u64, AlertKind, Symbol, Option<Account>, u64, Vec<u64>);

fn findings(alerts: &Emitted) -> Vec<Finding> {
    let mut out: Vec<Finding> = alerts
        .iter()
        .map(|(time, a)| {
            (
                *time,
                a.kind,
                a.symbol,
                a.account,
                a.event_ms,
                a.trade_ids.clone(),
            )
        })
        .collect();
    out.sort();
    out
}

fn with_accounts(trades: &[Trade]) -> impl Iterator<Item = (&Trade, Account, Account)> {
    trades.iter().filter_map(|t| Some((t, t.buyer?, t.seller?)))
}

fn reference_wash(trades: &[Trade], granule: u64) -> Vec<Finding> {
    with_accounts(trades)
        .filter(|(_, b, s)| b == s)
        .map(|(t, b, _)| {
            let time = t.time_ms - t.time_ms % granule;
            (
                time,
                AlertKind::WashTrade,
                t.symbol,
                Some(b),
                t.time_ms,
                vec![t.id],
            )
        })
        .collect()
}

/// Brute force over each account's touches of a symbol, straight from the rule's words:
/// counts by binary search over the sorted times of the account's and the symbol's trades.
fn reference_velocity(trades: &[Trade], config: &AccountConfig, granule: u64) -> Vec<Finding> {
    let c = &config.velocity_burst;
    let (d, h) = (c.window_ms, c.baseline_ms);
    let mut keys: BTreeMap<(Account, Symbol), Vec<(u64, u64)>> = BTreeMap::new();
    let mut market: BTreeMap<Symbol, Vec<u64>> = BTreeMap::new();
    for (t, b, s) in with_accounts(trades) {
        market.entry(t.symbol).or_default().push(t.time_ms);
        keys.entry((b, t.symbol))
            .or_default()
            .push((t.time_ms, t.id));
        if s != b {
            keys.entry((s, t.symbol))
                .or_default()
                .push((t.time_ms, t.id));
        }
    }
    for times in market.values_mut() {
        times.sort();
    }
    // Trades of a sorted list with time in [from, to).
    let between = |times: &[u64], from: u64, to: u64| {
        times.partition_point(|&t| t < to) - times.partition_point(|&t| t < from)
    };
    let mut out = Vec::new();
    for ((account, symbol), mut touches) in keys {
        touches.sort();
        let times: Vec<u64> = touches.iter().map(|&(t, _)| t).collect();
        let symbol_times = &market[&symbol];
        let mut above = vec![false; touches.len()];
        for i in 0..touches.len() {
            let (tau, _) = touches[i];
            // The account's touches so far ((time, id) order) within (tau - d, tau].
            let window: Vec<usize> = (0..=i).filter(|&j| times[j] + d > tau).collect();
            let count = window.len() as u64;
            if count < u64::from(c.min_trades) {
                continue;
            }
            let symbol_count = between(symbol_times, (tau + 1).saturating_sub(d), tau + 1) as u64;
            let end = tau.saturating_sub(d) / 1_000 * 1_000;
            let start = end.saturating_sub(h);
            let baseline = between(&times, start, end) as u64;
            let baseline_symbol = between(symbol_times, start, end) as u64;
            if share_tail(count, symbol_count, baseline, baseline_symbol) > c.max_p_value {
                continue;
            }
            above[i] = true;
            let quiet = (0..i).all(|j| !(above[j] && times[j] + d > tau));
            if quiet {
                let mut ids: Vec<u64> = window.iter().map(|&j| touches[j].1).collect();
                ids.sort();
                let time = tau - tau % granule;
                out.push((
                    time,
                    AlertKind::VelocityBurst,
                    symbol,
                    Some(account),
                    tau,
                    ids,
                ));
            }
        }
    }
    out
}

/// Every 2- and 3-cycle by brute force over the trades of equal symbol and quantity, kept
/// when its chance statistic, counted afresh over the symbol's trades in the window ending
/// at its last trade, is at most the threshold.
fn reference_rings(trades: &[Trade], config: &AccountConfig, granule: u64) -> Vec<Finding> {
    let w = config.wash_ring.window_ms;
    let mut groups: HashMap<(Symbol, Fixed), Vec<&Trade>> = HashMap::new();
    let mut by_symbol: HashMap<Symbol, Vec<&Trade>> = HashMap::new();
    for (t, b, s) in with_accounts(trades) {
        if b != s {
            groups.entry((t.symbol, t.qty)).or_default().push(t);
            by_symbol.entry(t.symbol).or_default().push(t);
        }
    }
    for list in by_symbol.values_mut() {
        list.sort_by_key(|t| (t.time_ms, t.id));
    }
    let unlikely = |ring: &[&Trade]| {
        let last = ring[ring.len() - 1].time_ms;
        let all = &by_symbol[&ring[0].symbol];
        let window: Vec<&&Trade> = all
            .iter()
            .filter(|t| t.time_ms + w > last && t.time_ms <= last)
            .collect();
        let n = (window.len() as u32).max(1) as f64;
        let of_qty = window.iter().filter(|t| t.qty == ring[0].qty).count() as f64;
        let share = of_qty / n;
        let mut expected = 1.0f64;
        for edge in ring {
            let sells = window.iter().filter(|t| t.seller == edge.seller).count() as f64;
            let buys = window.iter().filter(|t| t.buyer == edge.buyer).count() as f64;
            expected *= sells * buys / n * share;
        }
        let span = (last - ring[0].time_ms).max(1) as f64;
        expected * span / w.max(1) as f64 <= config.wash_ring.max_expected
    };
    let mut out = Vec::new();
    let mut found = |ring: &[&Trade]| {
        if unlikely(ring) {
            let mut ids: Vec<u64> = ring.iter().map(|t| t.id).collect();
            ids.sort();
            let last = ring[ring.len() - 1].time_ms;
            let (symbol, seller) = (ring[0].symbol, ring[0].seller);
            out.push((
                last - last % granule,
                AlertKind::WashRing,
                symbol,
                seller,
                last,
                ids,
            ));
        }
    };
    for (_, mut group) in groups {
        group.sort_by_key(|t| (t.time_ms, t.id));
        let n = group.len();
        for i in 0..n {
            let a = group[i];
            for j in i + 1..n {
                let b = group[j];
                if b.time_ms - a.time_ms > w {
                    break;
                }
                if b.seller != a.buyer {
                    continue;
                }
                if b.buyer == a.seller {
                    found(&[a, b]);
                    continue;
                }
                if !config.wash_ring.triangles {
                    continue;
                }
                for &c in &group[j + 1..] {
                    if c.time_ms - a.time_ms > w {
                        break;
                    }
                    if c.seller == b.buyer && c.buyer == a.seller {
                        found(&[a, b, c]);
                    }
                }
            }
        }
    }
    out
}

fn reference(trades: &[Trade], config: &AccountConfig, granule: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    if config.wash_trade.enabled {
        out.extend(reference_wash(trades, granule));
    }
    if config.velocity_burst.enabled {
        out.extend(reference_velocity(trades, config, granule));
    }
    if config.wash_ring.enabled {
        out.extend(reference_rings(trades, config, granule));
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// Tests.

/// A short busy market where rings happen by chance too (a small pool, few distinct sizes),
/// with scaled-down velocity windows so every branch of every rule is taken.
fn busy_spec(seed: u64) -> Spec {
    Spec {
        seed,
        trades: 20_000,
        rate: 1_000.0,
        pool: 12,
        wash: 5,
        bursts: 5,
        rings: 6,
        uniform_accounts: true,
        size_scale: 0.05,
    }
}

fn busy_config() -> AccountConfig {
    let mut config = AccountConfig::default();
    config.velocity_burst.baseline_ms = 5_000;
    config.velocity_burst.min_trades = 6;
    // Every account of the small pool has a ~1/12 share, so a burst moves it only so far.
    config.velocity_burst.max_p_value = 1e-3;
    config.wash_ring.window_ms = 2_000;
    // Chance rings abound in the busy market: let some of them through, not all.
    config.wash_ring.max_expected = 1e-2;
    config
}

#[test]
fn rules_match_references_on_1_and_3_workers_in_any_arrival_order() {
    let market = market(&busy_spec(7));
    let config = busy_config();
    let expected = reference(&market.trades, &config, 1_000);
    for kind in [
        AlertKind::WashTrade,
        AlertKind::VelocityBurst,
        AlertKind::WashRing,
    ] {
        let n = expected.iter().filter(|f| f.1 == kind).count();
        println!("{kind}: {n}");
        assert!(n >= 5, "the test market exercises {kind}: {n} findings");
    }
    let one = run(&market.trades, &config, 1_000, 1, 1);
    assert_eq!(findings(&one), expected);
    let three = run(&market.trades, &config, 1_000, 3, 2);
    assert_eq!(
        one, three,
        "identical alerts, details and scores on 1 and 3 workers"
    );
}

#[test]
fn default_rules_match_references_on_a_realistic_market() {
    let spec = Spec {
        seed: 11,
        trades: 80_000,
        rate: 10_000.0,
        pool: 1_000,
        wash: 10,
        bursts: 10,
        rings: 10,
        uniform_accounts: true,
        size_scale: 1.0,
    };
    let market = market(&spec);
    let config = AccountConfig::default();
    let expected = reference(&market.trades, &config, 1_000);
    let three = run(&market.trades, &config, 1_000, 3, 5);
    assert_eq!(findings(&three), expected);
}

#[test]
fn replaying_from_the_horizon_reproduces_every_later_alert() {
    let mut spec = busy_spec(21);
    spec.trades = 40_000;
    let market = market(&spec);
    let config = busy_config();
    let full = run(&market.trades, &config, 1_000, 2, 3);
    let horizon = horizon(&config);
    let last = market.trades.last().expect("trades").time_ms;
    for frontier in [
        START_MS + 12_000,
        START_MS + 23_000,
        last - last % 1_000 - 4_000,
    ] {
        let from = horizon.replay_from(frontier);
        let suffix: Vec<Trade> = market
            .trades
            .iter()
            .filter(|t| t.time_ms >= from)
            .copied()
            .collect();
        let replayed = run(&suffix, &config, 1_000, 3, frontier);
        let after = |alerts: &Emitted| -> Emitted {
            alerts
                .iter()
                .filter(|(t, _)| *t >= frontier)
                .cloned()
                .collect()
        };
        assert!(!after(&full).is_empty());
        assert_eq!(after(&replayed), after(&full), "frontier {frontier}");
    }
}

#[test]
fn trades_without_accounts_raise_nothing() {
    let mut market = market(&busy_spec(3));
    for trade in &mut market.trades {
        trade.buyer = None;
    }
    assert!(run(&market.trades, &AccountConfig::default(), 1_000, 2, 1).is_empty());
}

#[test]
fn every_rule_can_be_switched_off() {
    let market = market(&busy_spec(5));
    let mut config = busy_config();
    config.wash_trade.enabled = false;
    config.wash_ring.enabled = false;
    let alerts = run(&market.trades, &config, 1_000, 1, 1);
    assert!(!alerts.is_empty());
    assert!(alerts
        .iter()
        .all(|(_, a)| a.kind == AlertKind::VelocityBurst));
    config.velocity_burst.enabled = false;
    assert!(run(&market.trades, &config, 1_000, 1, 1).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random tiny markets (a handful of accounts and sizes, so rings and bursts abound),
    /// random granules and window sizes: the dataflow on 1 and 3 workers equals the
    /// references.
    #[test]
    fn random_markets_match_the_references(
        seed in any::<u64>(),
        pool in 3u64..8,
        granule in prop::sample::select(vec![1u64, 10, 100, 1_000]),
        window in 50u64..3_000,
        triangles in any::<bool>(),
    ) {
        let spec = Spec {
            seed,
            trades: 1_500,
            rate: 200.0,
            pool,
            wash: 3,
            bursts: 2,
            rings: 3,
            uniform_accounts: true,
            size_scale: 0.0005,
        };
        let market = market(&spec);
        let mut config = busy_config();
        config.wash_ring.window_ms = window;
        config.wash_ring.triangles = triangles;
        config.velocity_burst.baseline_ms = 3_000;
        config.velocity_burst.window_ms = window.min(1_500);
        let expected = reference(&market.trades, &config, granule);
        let one = run(&market.trades, &config, granule, 1, seed);
        prop_assert_eq!(findings(&one), expected);
        let three = run(&market.trades, &config, granule, 3, seed ^ 1);
        prop_assert_eq!(one, three);
    }
}

// ---------------------------------------------------------------------------------------
// Detection quality.

struct Quality {
    kind: AlertKind,
    truths: usize,
    found: usize,
    alerts: usize,
    true_alerts: usize,
}

/// The contract's matching: kind and symbol equal, trade ids intersect, and for wash trades
/// and velocity bursts the account too.
fn quality(alerts: &Emitted, truth: &[Truth]) -> Vec<Quality> {
    let matches = |a: &Alert, t: &Truth| {
        a.kind == t.kind
            && a.symbol == t.symbol
            && (t.kind == AlertKind::WashRing || a.account == t.account)
            && a.trade_ids.iter().any(|id| t.trade_ids.contains(id))
    };
    [
        AlertKind::WashTrade,
        AlertKind::VelocityBurst,
        AlertKind::WashRing,
    ]
    .into_iter()
    .map(|kind| {
        let truths: Vec<&Truth> = truth.iter().filter(|t| t.kind == kind).collect();
        let of_kind: Vec<&Alert> = alerts
            .iter()
            .map(|(_, a)| a)
            .filter(|a| a.kind == kind)
            .collect();
        Quality {
            kind,
            truths: truths.len(),
            found: truths
                .iter()
                .filter(|t| of_kind.iter().any(|a| matches(a, t)))
                .count(),
            alerts: of_kind.len(),
            true_alerts: of_kind
                .iter()
                .filter(|a| truths.iter().any(|t| matches(a, t)))
                .count(),
        }
    })
    .collect()
}

fn report(label: &str, spec: &Spec, alerts: &Emitted, truth: &[Truth]) -> Vec<Quality> {
    let q = quality(alerts, truth);
    for q in &q {
        let false_alerts = q.alerts - q.true_alerts;
        println!(
            "{label}: {:>14} truths {:>5} found {:>5} recall {:.4}  alerts {:>5} true {:>5} precision {:.4}  false per M clean trades {:.2}",
            q.kind.as_str(),
            q.truths,
            q.found,
            q.found as f64 / q.truths.max(1) as f64,
            q.alerts,
            q.true_alerts,
            q.true_alerts as f64 / q.alerts.max(1) as f64,
            false_alerts as f64 * 1e6 / spec.trades as f64,
        );
    }
    q
}

/// The generator's default market (10k trades/s, 1000 accounts) with injections, at the
/// defaults: wash trades exactly; bursts and rings at the recall and precision this market
/// allows (see `measure_detection_quality` for why not 0.99 both: a 15-trade burst of a
/// mid-rate account and a 2-ring between mid-rate accounts also happen by chance).
#[test]
fn defaults_find_injected_anomalies() {
    let spec = Spec {
        seed: 2_026,
        trades: 100_000,
        rate: 10_000.0,
        pool: 1_000,
        wash: 40,
        bursts: 40,
        rings: 40,
        uniform_accounts: true,
        size_scale: 1.0,
    };
    let market = market(&spec);
    let alerts = run(&market.trades, &AccountConfig::default(), 1_000, 2, 9);
    for q in report("defaults", &spec, &alerts, &market.truth) {
        let (recall, precision) = match q.kind {
            AlertKind::WashTrade => (100, 100),
            // 40 injections each: this guards against regressions, it does not measure.
            // Velocity bursts measure 0.93–0.96 in `measure_detection_quality`. This
            // market's background closes equal-quantity 2-cycles between mid-rate accounts
            // by chance (the generator's does not), and at the default `max_expected = 1e-8`
            // a few pass for rings: 36 of 40 alerts true here (1e-10 gives fewer chance
            // rings and misses more of the injected ones between busy accounts).
            AlertKind::WashRing => (75, 85),
            _ => (75, 95),
        };
        assert!(q.found * 100 >= q.truths * recall, "{} recall", q.kind);
        assert!(
            q.true_alerts * 100 >= q.alerts * precision,
            "{} precision",
            q.kind
        );
    }
}

/// Clean markets, larger: false alerts per million trades, and the injected accounts drawn
/// with the pool's own weights (heavy accounts included) as a second recall measurement.
#[test]
#[ignore = "slow: run with --release -- --ignored --nocapture"]
fn measure_detection_quality() {
    for (label, uniform, trades) in [("uniform", true, 2_000_000), ("weighted", false, 1_000_000)] {
        let spec = Spec {
            seed: 99,
            trades,
            rate: 10_000.0,
            pool: 1_000,
            wash: 200,
            bursts: 200,
            rings: 200,
            uniform_accounts: uniform,
            size_scale: 1.0,
        };
        let market = market(&spec);
        let alerts = run(&market.trades, &AccountConfig::default(), 1_000, 2, 9);
        report(label, &spec, &alerts, &market.truth);
        if uniform {
            for ring_length in [2, 3] {
                let truth: Vec<Truth> = market
                    .truth
                    .iter()
                    .filter(|t| t.kind == AlertKind::WashRing && t.trade_ids.len() == ring_length)
                    .cloned()
                    .collect();
                let found = truth
                    .iter()
                    .filter(|t| {
                        alerts.iter().any(|(_, a)| {
                            a.kind == AlertKind::WashRing
                                && a.trade_ids.iter().any(|id| t.trade_ids.contains(id))
                        })
                    })
                    .count();
                println!(
                    "{label}: {ring_length}-rings found {found} of {}",
                    truth.len()
                );
            }
            for max_p_value in [1e-7, 1e-11] {
                let mut config = AccountConfig::default();
                config.wash_trade.enabled = false;
                config.wash_ring.enabled = false;
                config.velocity_burst.max_p_value = max_p_value;
                let alerts = run(&market.trades, &config, 1_000, 2, 9);
                report(
                    &format!("{label} max_p_value {max_p_value:e}"),
                    &spec,
                    &alerts,
                    &market.truth,
                );
            }
        }
    }
    let clean = Spec {
        seed: 5,
        trades: 2_000_000,
        rate: 10_000.0,
        pool: 1_000,
        wash: 0,
        bursts: 0,
        rings: 0,
        uniform_accounts: true,
        size_scale: 1.0,
    };
    let market = market(&clean);
    let alerts = run(&market.trades, &AccountConfig::default(), 1_000, 2, 9);
    report("clean", &clean, &alerts, &market.truth);
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, a) in &alerts {
        *by_kind.entry(a.kind.as_str()).or_default() += 1;
    }
    println!("clean: alerts by kind {by_kind:?}");
    let rings: BTreeSet<String> = alerts
        .iter()
        .filter(|(_, a)| a.kind == AlertKind::WashRing)
        .take(5)
        .map(|(_, a)| a.details.clone())
        .collect();
    println!("clean: example rings {rings:?}");
}

/// Throughput of `account_alerts` next to the candles alone, one worker, same input.
#[test]
#[ignore = "slow: run with --release -- --ignored --nocapture"]
fn measure_throughput_against_candles() {
    let spec = Spec {
        seed: 1,
        trades: 1_000_000,
        rate: 10_000.0,
        pool: 1_000,
        wash: 0,
        bursts: 0,
        rings: 0,
        uniform_accounts: true,
        size_scale: 1.0,
    };
    let market = market(&spec);
    let trades = std::sync::Arc::new(market.trades);
    let timed = |label: &str, accounts: Option<AccountConfig>| {
        let trades = std::sync::Arc::clone(&trades);
        let n = trades.len();
        let started = Instant::now();
        timely::execute(timely::Config::process(1), move |worker| {
            let accounts = accounts.clone();
            let windows = tickflow_operators::window::Windows::parse("1s,1m").expect("windows");
            let probe = ProbeHandle::new();
            let (mut input, mut capability) = worker.dataflow::<u64, _, _>(|scope| {
                let ((input, capability), stream) =
                    scope.new_unordered_input::<CapacityContainerBuilder<Vec<Trade>>>();
                if let Some(config) = &accounts {
                    account_alerts(stream, config).probe_with(&probe);
                } else {
                    tickflow_dataflows::candles(stream, &windows).probe_with(&probe);
                }
                (input, capability)
            });
            for chunk in
                trades.chunk_by(|a, b| windows.coarsen(a.time_ms) == windows.coarsen(b.time_ms))
            {
                let time = windows.coarsen(chunk[0].time_ms);
                capability.downgrade(&time);
                input
                    .activate()
                    .session(&capability)
                    .give_iterator(chunk.iter().copied());
                while probe.less_than(&time.saturating_sub(2_000)) {
                    worker.step();
                }
            }
            drop(capability);
            while !probe.done() {
                worker.step();
            }
        })
        .expect("timely")
        .join();
        let secs = started.elapsed().as_secs_f64();
        let rate = n as f64 / secs;
        println!("{label}: {n} trades in {secs:.2} s = {rate:.0} trades/s");
        rate
    };
    let candles = timed("candles alone", None);
    println!("peak RSS after candles: {} kB", peak_rss_kb());
    let only = |rule: &str| {
        let mut config = AccountConfig::default();
        config.wash_trade.enabled = rule == "wash_trade";
        config.velocity_burst.enabled = rule == "velocity_burst";
        config.wash_ring.enabled = rule == "wash_ring";
        Some(config)
    };
    for rule in ["wash_trade", "velocity_burst", "wash_ring"] {
        let rate = timed(rule, only(rule));
        println!("ratio {rule} alone / candles = {:.3}", rate / candles);
    }
    let mut pairs_only = only("wash_ring");
    if let Some(config) = pairs_only.as_mut() {
        config.wash_ring.triangles = false;
    }
    let rate = timed("wash_ring without triangles", pairs_only);
    println!(
        "ratio wash_ring without triangles / candles = {:.3}",
        rate / candles
    );
    let accounts = timed("account_alerts", Some(AccountConfig::default()));
    println!("peak RSS after account_alerts: {} kB", peak_rss_kb());
    println!("ratio account_alerts / candles = {:.3}", accounts / candles);
}

/// A number in an alert's `details`.
fn field(details: &str, key: &str) -> f64 {
    let pattern = format!("\"{key}\":");
    let start = details.find(&pattern).expect("key present") + pattern.len();
    let rest = &details[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].parse().expect("a number")
}

/// Recall and precision of the ring and burst rules over a range of thresholds, from one
/// permissive run (the statistic of each alert is in its details).
#[test]
#[ignore = "slow: run with --release -- --ignored --nocapture"]
fn calibrate_thresholds() {
    let spec = Spec {
        seed: 4_242,
        trades: 2_000_000,
        rate: 10_000.0,
        pool: 1_000,
        wash: 0,
        bursts: 400,
        rings: 400,
        uniform_accounts: true,
        size_scale: 1.0,
    };
    let market = market(&spec);
    let mut config = AccountConfig::default();
    config.wash_ring.max_expected = 1e-4;
    config.velocity_burst.max_p_value = 1e-5;
    config.velocity_burst.min_trades = 8;
    let alerts = run(&market.trades, &config, 1_000, 2, 9);
    for (kind, key, thresholds) in [
        (
            AlertKind::WashRing,
            "expected",
            vec![1e-4, 1e-6, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13],
        ),
        (
            AlertKind::VelocityBurst,
            "p_value",
            vec![1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-12],
        ),
    ] {
        for threshold in thresholds {
            let kept: Emitted = alerts
                .iter()
                .filter(|(_, a)| a.kind == kind && field(&a.details, key) <= threshold)
                .cloned()
                .collect();
            let q = quality(&kept, &market.truth);
            let q = q.iter().find(|q| q.kind == kind).expect("kind");
            println!(
                "{kind} {key} <= {threshold:e}: recall {:.4} precision {:.4} false per M trades {:.2} (alerts {})",
                q.found as f64 / q.truths.max(1) as f64,
                q.true_alerts as f64 / q.alerts.max(1) as f64,
                (q.alerts - q.true_alerts) as f64 * 1e6 / spec.trades as f64,
                q.alerts,
            );
        }
    }
}

/// The process's peak resident set (Linux), kB; 0 elsewhere.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}
