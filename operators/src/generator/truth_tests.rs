//! The injected defects and anomalies against their truth, checked independently: the
//! generated records are written as lines and read back with the engine's parser.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;
use crate::parse::{Format, Record};

fn config(events: u64) -> GeneratorConfig {
    GeneratorConfig {
        events: Some(events),
        ..GeneratorConfig::default()
    }
}

fn injecting(events: u64) -> GeneratorConfig {
    GeneratorConfig {
        defects: 0.001,
        anomalies: 0.0002,
        ..config(events)
    }
}

/// The records of every partition, alone.
fn records(config: &GeneratorConfig) -> Vec<Vec<(u64, Generated)>> {
    partitions(config)
        .into_iter()
        .map(|mut stream| std::iter::from_fn(|| stream.next_record()).collect())
        .collect()
}

/// The file `tickflow generate` writes, and its truth.
fn file(config: &GeneratorConfig) -> (Vec<Vec<u8>>, Vec<Injection>) {
    let mut merged = merged_with_arrival(config);
    merged.record_truth();
    let mut lines = Vec::new();
    while let Some((arrival, record)) = merged.next_record() {
        lines.push(match record {
            Generated::Trade(trade) => {
                let mut line = Vec::new();
                write_json_line(&mut line, arrival, &trade);
                line.pop();
                line
            }
            Generated::Line(bytes) => bytes,
        });
    }
    (lines, merged.take_truth())
}

#[test]
fn off_is_bit_identical_to_before() {
    // Hashes of the files the generator wrote before injection existed (commit f30d0ba).
    let first = GeneratorConfig {
        accounts: 50,
        ..config(30_000)
    };
    let second = GeneratorConfig {
        max_delay_ms: 37,
        rate: 50.0,
        ..config(5_000)
    };
    for (c, expected) in [
        (first, (0x11a6_6816_06ee_57f2, 5_170_066)),
        (second, (0x018b_ee0c_c725_93ad, 681_088)),
    ] {
        let mut out = Vec::new();
        let mut merged = merged_with_arrival(&c);
        merged.record_truth();
        while let Some((arrival, record)) = merged.next_record() {
            let Generated::Trade(trade) = record else {
                panic!("a line with injection off");
            };
            write_json_line(&mut out, arrival, &trade);
        }
        assert_eq!((crate::hash::stable_hash(&out), out.len()), expected);
        assert!(merged.take_truth().is_empty());
    }
}

#[test]
fn config_checks_the_rates() {
    for defects in [-0.1, f64::NAN, f64::INFINITY, 0.6] {
        let c = GeneratorConfig {
            defects,
            ..Default::default()
        };
        assert!(
            matches!(c.validate(), Err(GeneratorError::Defects(_))),
            "{defects}"
        );
    }
    for anomalies in [-1e-9, f64::NAN, 0.02] {
        let c = GeneratorConfig {
            anomalies,
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(GeneratorError::Anomalies(_))));
    }
    let c = GeneratorConfig {
        late_ms: 59_001,
        ..Default::default()
    };
    assert_eq!(c.validate(), Err(GeneratorError::LateMs(59_001)));
    assert_eq!(injecting(1).validate(), Ok(()));
    assert_eq!(injecting(1).effective_accounts(), ANOMALY_ACCOUNTS);
    let c = GeneratorConfig {
        accounts: 7,
        ..injecting(1)
    };
    assert_eq!(c.effective_accounts(), 7);
    assert_eq!(config(1).effective_accounts(), 0);
    let text = GeneratorError::Defects(0.6).to_string();
    assert!(text.contains("between 0 and 0.5"), "{text}");
}

/// Far ahead of any wall clock this test may run at: the default `--max-time-jump` (10m)
/// ahead of now, with years to spare.
fn beyond_max_time_jump(time_ms: u64) -> bool {
    let now = crate::source::now_ms();
    time_ms > now + 10 * 60_000 + 5 * 365 * 86_400_000
}

#[test]
fn every_defect_line_is_rejected_with_its_reason() {
    let c = GeneratorConfig {
        defects: 0.05,
        ..config(40_000)
    };
    let (lines, truth) = file(&c);
    // What the engine's parser says of every line.
    let mut seen: BTreeMap<(String, Option<String>), u64> = BTreeMap::new();
    for line in &lines {
        let reason = match Format::BinanceJson.parse_line(line) {
            Ok(Record::Trade(trade)) if beyond_max_time_jump(trade.time_ms) => "time_outlier",
            Ok(Record::Trade(_)) => continue,
            Ok(other) => panic!("{other:?}"),
            Err(reason) => reason.as_str(),
        };
        // The symbol, when the line is JSON that has one.
        let symbol = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("s").and_then(|s| s.as_str()).map(str::to_owned));
        *seen.entry((reason.to_owned(), symbol)).or_default() += 1;
    }
    let mut told: BTreeMap<(String, Option<String>), u64> = BTreeMap::new();
    for injection in &truth {
        if ["duplicate", "late", "gap"].contains(&injection.kind.as_str()) {
            continue;
        }
        assert_eq!(
            injection.quality.as_deref(),
            Some(quality_column(&injection.kind))
        );
        *told
            .entry((injection.kind.clone(), injection.symbol.clone()))
            .or_default() += injection.count;
    }
    assert_eq!(seen, told);
    for kind in [
        "malformed_json",
        "missing_field",
        "non_positive",
        "bad_number",
        "time_outlier",
    ] {
        let n: u64 = seen
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|(_, n)| n)
            .sum();
        assert!(n >= 20, "{kind}: {n}");
    }
    // Every cut of a malformed line is malformed, and no cut shows the symbol.
    let mut line = Vec::new();
    let (_, trade) = merged_with_arrival(&config(1)).next().expect("a trade");
    write_json_line(&mut line, trade.time_ms, &trade);
    let before = line
        .windows(5)
        .position(|w| w == b",\"s\":")
        .expect("symbol");
    for cut in 1..=before {
        assert_eq!(
            Format::BinanceJson.parse_line(&line[..cut]).map(|_| ()),
            Err(crate::parse::RejectReason::MalformedJson),
            "{}",
            String::from_utf8_lossy(&line[..cut])
        );
    }
}

/// Independent tallies of a generated file.
#[derive(Default, Debug)]
struct Tally {
    /// (symbol, id) → trades delivered with it, in file order.
    copies: HashMap<(String, u64), Vec<Trade>>,
    /// Per symbol: trades in file order.
    trades: BTreeMap<String, Vec<Trade>>,
    /// Late per the rule of the contract: behind its symbol's newest by > late_ms + 1 s.
    late: BTreeSet<(String, u64)>,
    /// Behind the newest trade of the whole file by more than late_ms (the engine's rule
    /// on a one-partition file).
    behind_file: BTreeSet<(String, u64)>,
}

fn tally(lines: &[Vec<u8>], late_ms: u64) -> Tally {
    let mut tally = Tally::default();
    let mut newest: HashMap<String, u64> = HashMap::new();
    let mut newest_file = 0;
    for line in lines {
        let Ok(Record::Trade(trade)) = Format::BinanceJson.parse_line(line) else {
            continue;
        };
        if beyond_max_time_jump(trade.time_ms) {
            continue;
        }
        let symbol = trade.symbol.to_string();
        let key = (symbol.clone(), trade.id);
        let max = newest.entry(symbol.clone()).or_default();
        // A second copy is a duplicate, whatever its time.
        if *max > trade.time_ms + late_ms + LATE_MARGIN_MS && !tally.copies.contains_key(&key) {
            tally.late.insert(key.clone());
        }
        if newest_file > trade.time_ms + late_ms {
            tally.behind_file.insert(key.clone());
        }
        *max = (*max).max(trade.time_ms);
        newest_file = newest_file.max(trade.time_ms);
        tally.copies.entry(key).or_default().push(trade);
        tally.trades.entry(symbol).or_default().push(trade);
    }
    tally
}

fn ids_of(truth: &[Injection], kind: &str) -> BTreeSet<(String, u64)> {
    truth
        .iter()
        .filter(|i| i.kind == kind)
        .flat_map(|i| {
            let symbol = i.symbol.clone().unwrap_or_default();
            i.trade_ids.iter().map(move |&id| (symbol.clone(), id))
        })
        .collect()
}

#[test]
fn the_truth_is_what_the_stream_holds() {
    // 1000 s of event time, so that anomalies of every kind fit.
    let c = GeneratorConfig {
        rate: 200.0,
        ..injecting(200_000)
    };
    let (lines, truth) = file(&c);
    let tally = tally(&lines, c.late_ms);
    let mut per_kind: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for injection in &truth {
        let entry = per_kind.entry(injection.kind.as_str()).or_default();
        entry.0 += 1;
        entry.1 += injection.count;
    }
    eprintln!(
        "{} records; per kind (injections, count): {per_kind:?}",
        lines.len()
    );

    // Duplicates: (symbol, id) delivered twice, exactly the truth's.
    let twice: BTreeSet<(String, u64)> = tally
        .copies
        .iter()
        .filter(|(_, copies)| copies.len() > 1)
        .map(|(key, copies)| {
            assert_eq!(copies.len(), 2, "{key:?}");
            key.clone()
        })
        .collect();
    for key in twice.difference(&ids_of(&truth, "duplicate")) {
        eprintln!("{key:?}: {:?}", tally.copies[key]);
    }
    assert_eq!(twice, ids_of(&truth, "duplicate"));
    for injection in truth.iter().filter(|i| i.kind == "duplicate") {
        let key = (
            injection.symbol.clone().expect("symbol"),
            injection.trade_ids[0],
        );
        let copies = &tally.copies[&key];
        let conflicting = copies[0].price != copies[1].price;
        assert_eq!(
            injection.params["conflicting"].as_bool(),
            Some(conflicting),
            "{injection:?}"
        );
        assert_eq!(
            Trade {
                price: copies[0].price,
                ..copies[1]
            },
            copies[0]
        );
    }

    // Gaps: the ids missing between each symbol's least and greatest.
    let mut missing = BTreeSet::new();
    for (symbol, trades) in &tally.trades {
        let ids: BTreeSet<u64> = trades.iter().map(|t| t.id).collect();
        let (first, last) = (ids.first().copied(), ids.last().copied());
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        assert_eq!(
            first % 1_000_000,
            0,
            "{symbol}: the first id is never dropped"
        );
        for id in first..=last {
            if !ids.contains(&id) {
                missing.insert((symbol.clone(), id));
            }
        }
    }
    assert_eq!(missing, ids_of(&truth, "gap"));
    for injection in truth.iter().filter(|i| i.kind == "gap") {
        assert!((1..=5).contains(&injection.count), "{injection:?}");
        let ids = &injection.trade_ids;
        assert_eq!(ids.len() as u64, injection.count);
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "consecutive");
    }

    // Late: behind the symbol's newest by more than the lateness and a second, exactly
    // the truth's; and nothing else is behind the whole file's newest by the lateness
    // but the late trades and the duplicates' second copies.
    let late = ids_of(&truth, "late");
    assert_eq!(tally.late, late);
    let duplicates = ids_of(&truth, "duplicate");
    for key in &tally.behind_file {
        assert!(
            late.contains(key) || duplicates.contains(key),
            "{key:?} is late in the file but not in the truth"
        );
    }
    for injection in truth.iter().filter(|i| i.kind == "late") {
        let delay = injection.params["delay_ms"].as_u64().expect("delay");
        assert!(delay <= MAX_LATE_MS, "{injection:?}");
    }

    // Wash trades: buyer = seller, exactly the truth's.
    let wash: BTreeSet<(String, u64)> = tally
        .trades
        .iter()
        .flat_map(|(symbol, trades)| {
            trades
                .iter()
                .filter(|t| t.buyer.is_some() && t.buyer == t.seller)
                .map(move |t| (symbol.clone(), t.id))
        })
        .collect();
    assert_eq!(wash, ids_of(&truth, "wash_trade"));

    let by_id: HashMap<(String, u64), Trade> = tally
        .copies
        .iter()
        .map(|(key, copies)| (key.clone(), copies[0]))
        .collect();
    let trades_of = |injection: &Injection| -> Vec<Trade> {
        let symbol = injection.symbol.clone().expect("symbol");
        injection
            .trade_ids
            .iter()
            .map(|&id| by_id[&(symbol.clone(), id)])
            .collect()
    };

    // Bad ticks: far from the median of the symbol's neighbouring trades; every trade that
    // far is one.
    let mut far = BTreeSet::new();
    for (symbol, trades) in &tally.trades {
        let mut in_time = trades.clone();
        in_time.sort_by_key(|t| (t.time_ms, t.id));
        for (i, trade) in in_time.iter().enumerate() {
            let lo = i.saturating_sub(25);
            let hi = (i + 26).min(in_time.len());
            let mut prices: Vec<i64> = in_time[lo..hi].iter().map(|t| t.price.0).collect();
            prices.sort_unstable();
            let median = prices[prices.len() / 2] as f64;
            if (trade.price.0 as f64 / median - 1.0).abs() > 0.02 {
                far.insert((symbol.clone(), trade.id));
            }
        }
    }
    assert_eq!(far, ids_of(&truth, "bad_tick"));

    // The trades of the few-trade anomalies, which may fall into the windows of others.
    let others: BTreeSet<(String, u64)> = ["bad_tick", "wash_trade", "wash_ring", "velocity_burst"]
        .into_iter()
        .flat_map(|kind| ids_of(&truth, kind))
        .collect();
    for injection in &truth {
        let trades = || trades_of(injection);
        match injection.kind.as_str() {
            "wash_ring" => {
                let trades = trades();
                let m = trades.len();
                assert!(m == 2 || m == 3, "{injection:?}");
                for i in 0..m {
                    assert_eq!(trades[i].buyer, trades[(i + 1) % m].seller, "{injection:?}");
                    assert_eq!(trades[i].qty, trades[0].qty);
                }
                assert!(injection.last_ms - injection.first_ms <= 5_000);
                let accounts: Vec<String> = trades
                    .iter()
                    .map(|t| t.seller.expect("seller").to_string())
                    .collect();
                assert_eq!(accounts, injection.accounts);
            }
            "velocity_burst" => {
                let trades = trades();
                assert!((15..=30).contains(&trades.len()));
                let who = &injection.accounts[0];
                for trade in &trades {
                    let sides = [trade.buyer, trade.seller].map(|a| a.map(|a| a.to_string()));
                    assert!(sides.contains(&Some(who.clone())), "{injection:?}");
                }
                assert_eq!(injection.first_ms / 1000, injection.last_ms / 1000);
            }
            "volume_burst" => {
                // That second's volume is ≥ 10× the median of the 10 seconds before.
                let symbol = injection.symbol.clone().expect("symbol");
                let second = injection.params["second_ms"].as_u64().expect("second") / 1000;
                let mut volume: BTreeMap<u64, f64> = BTreeMap::new();
                for trade in &tally.trades[&symbol] {
                    *volume.entry(trade.time_ms / 1000).or_default() += trade.qty.to_f64();
                }
                let mut before: Vec<f64> = (second - 10..second)
                    .map(|s| volume.get(&s).copied().unwrap_or(0.0))
                    .collect();
                before.sort_by(f64::total_cmp);
                assert!(volume[&second] >= 10.0 * before[5], "{injection:?}");
            }
            "round_sizes" | "benford" => {
                let symbol = injection.symbol.clone().expect("symbol");
                let start = injection.params["start_ms"].as_u64().expect("start");
                let window: Vec<&Trade> = tally.trades[&symbol]
                    .iter()
                    .filter(|t| (start..start + ANOMALY_WINDOW_MS).contains(&t.time_ms))
                    .collect();
                let ids: BTreeSet<u64> = window
                    .iter()
                    .map(|t| t.id)
                    .filter(|&id| !others.contains(&(symbol.clone(), id)))
                    .collect();
                let told: BTreeSet<u64> = injection.trade_ids.iter().copied().collect();
                // The window's trades (but those of few-trade anomalies meanwhile), but those
                // the defects dropped or delayed.
                assert!(ids.is_subset(&told), "{injection:?}");
                let n = window.len() as f64;
                if injection.kind == "round_sizes" {
                    let round = window.iter().filter(|t| is_round(t.qty)).count() as f64;
                    assert!(round / n >= 0.6, "{} of {n}", round);
                } else {
                    let ones = window
                        .iter()
                        .filter(|t| {
                            t.qty
                                .to_string()
                                .trim_start_matches(['0', '.'])
                                .starts_with('1')
                        })
                        .count() as f64;
                    assert!(ones / n < 0.2, "first digit 1 in {ones} of {n}");
                }
            }
            "pump_and_dump" => {
                // Up by the rise at the peak, back at the start level at the end, the trade
                // rate ×5 on the way up.
                let symbol = injection.symbol.clone().expect("symbol");
                let number = |key: &str| injection.params[key].as_u64().expect(key);
                let (peak, up, down) = (number("peak_ms"), number("up_ms"), number("down_ms"));
                let start_price: f64 = injection.params["start_price"]
                    .as_str()
                    .and_then(|p| p.parse().ok())
                    .expect("start price");
                let rise = injection.params["rise"].as_f64().expect("rise");
                assert!((0.04..=0.1).contains(&rise) && (30_000..=60_000).contains(&up));
                assert!((10_000..=30_000).contains(&down));
                let all = &tally.trades[&symbol];
                let near = |at: u64| -> Vec<f64> {
                    all.iter()
                        .filter(|t| t.time_ms.abs_diff(at) < 500)
                        .map(|t| t.price.to_f64() / start_price - 1.0)
                        .collect()
                };
                let at_peak = near(peak - 250);
                let mean = at_peak.iter().sum::<f64>() / at_peak.len() as f64;
                assert!((mean / rise - 1.0).abs() < 0.1, "{mean} vs {rise}");
                let count = |from: u64, to: u64| {
                    all.iter()
                        .filter(|t| (from..to).contains(&t.time_ms))
                        .count() as f64
                };
                let before = count(peak - up - 10_000, peak - up);
                let during = count(peak - up, peak) * 10_000.0 / up as f64;
                assert!(during / before > 3.0, "{during} vs {before}");
                assert!(injection.last_ms <= peak + down);
            }
            _ => {}
        }
    }

    // Rates: defects per record about as asked (every kind present); anomalies of every
    // kind, their rate capped by one episode at a time per symbol.
    let defects: u64 = truth.iter().filter(|i| i.class == Class::Defect).count() as u64;
    let rate = defects as f64 / lines.len() as f64;
    assert!(
        (0.0007..0.0013).contains(&rate),
        "{defects} defects: {rate}"
    );
    for kind in DEFECT_KINDS {
        assert!(per_kind.contains_key(kind), "{kind}");
    }
    let trades = lines.len() as f64 - defects as f64;
    let anomalies = truth.len() as u64 - defects;
    let expected = c.anomalies * trades;
    assert!(
        (0.3..1.2).contains(&(anomalies as f64 / expected)),
        "{anomalies} anomalies, {expected} expected"
    );
}

#[test]
fn every_anomaly_kind_appears_on_a_long_market() {
    // 40 minutes of event time at 100 trades/s.
    let c = GeneratorConfig {
        rate: 100.0,
        ..injecting(240_000)
    };
    let mut merged = merged_with_arrival(&c);
    merged.record_truth();
    while merged.next_record().is_some() {}
    let truth = merged.take_truth();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for injection in truth.iter().filter(|i| i.class == Class::Anomaly) {
        *kinds.entry(injection.kind.clone()).or_default() += 1;
    }
    eprintln!("{kinds:?}");
    for kind in ANOMALY_KINDS {
        assert!(
            kinds.get(kind.as_str()).is_some_and(|&n| n >= 2),
            "{kind}: {kinds:?}"
        );
    }
}

#[test]
fn injection_is_deterministic_per_partition_and_resumes_exactly() {
    let c = GeneratorConfig {
        defects: 0.01,
        anomalies: 0.001,
        ..config(60_000)
    };
    let alone = records(&c);
    assert!(alone
        .iter()
        .flatten()
        .any(|(_, r)| matches!(r, Generated::Line(_))));
    let mut truth_alone: Vec<Vec<Injection>> = Vec::new();
    for mut stream in partitions(&c) {
        stream.record_truth();
        while stream.next_record().is_some() {}
        truth_alone.push(stream.take_truth());
    }
    for workers in 1..=3 {
        for worker in 0..workers {
            for mut stream in worker_partitions(&c, worker, workers) {
                let index = stream.index();
                stream.record_truth();
                let got: Vec<(u64, Generated)> =
                    std::iter::from_fn(|| stream.next_record()).collect();
                assert_eq!(got, alone[index]);
                assert_eq!(stream.take_truth(), truth_alone[index]);
            }
        }
    }
    // skip_to counts every record, lines included.
    for index in [0, 3] {
        let all = &alone[index];
        for k in [0, 1, 17, 999, 5_000, all.len() as u64 - 1, all.len() as u64] {
            let mut stream = partitions(&c).swap_remove(index);
            stream.skip_to(k);
            assert_eq!(stream.position(), k);
            let rest: Vec<(u64, Generated)> = std::iter::from_fn(|| stream.next_record()).collect();
            assert_eq!(rest, all[k as usize..]);
        }
        let mut stream = partitions(&c).swap_remove(index);
        stream.skip_to(4_000);
        stream.skip_to(100);
        let rest: Vec<(u64, Generated)> = std::iter::from_fn(|| stream.next_record()).collect();
        assert_eq!(rest, all[100..]);
    }
}

#[test]
fn defects_leave_the_anomalies_alone_and_the_market_underneath() {
    let anomalies = GeneratorConfig {
        anomalies: 0.001,
        rate: 200.0,
        ..config(100_000)
    };
    let both = GeneratorConfig {
        defects: 0.01,
        ..anomalies.clone()
    };
    let truth = |c: &GeneratorConfig| -> Vec<Injection> {
        let mut merged = merged_with_arrival(c);
        merged.record_truth();
        while merged.next_record().is_some() {}
        merged.take_truth()
    };
    let anomalies_only = truth(&anomalies);
    let with_defects: Vec<Injection> = truth(&both)
        .into_iter()
        .filter(|i| i.class == Class::Anomaly)
        .collect();
    assert!(anomalies_only.len() >= 8);
    assert_eq!(anomalies_only, with_defects);
    // Defects alone keep every trade of the market that they do not drop or hold, as it was.
    let slow = GeneratorConfig {
        rate: 500.0,
        ..config(30_000)
    };
    let plain: Vec<Trade> = merged(&slow).collect();
    let defective = GeneratorConfig {
        defects: 0.01,
        ..slow
    };
    let mut kept: Vec<Trade> = merged(&defective).collect();
    kept.sort_by_key(|t| (t.symbol, t.id));
    kept.dedup_by_key(|t| (t.symbol, t.id));
    let by_id: HashMap<(Symbol, u64), Trade> =
        plain.iter().map(|t| ((t.symbol, t.id), *t)).collect();
    for trade in &kept {
        let original = by_id[&(trade.symbol, trade.id)];
        assert_eq!(trade.qty, original.qty);
        assert_eq!(trade.time_ms, original.time_ms);
    }
    assert!(kept.len() < plain.len(), "gaps drop trades");
}

#[test]
fn a_generated_partition_emits_broken_lines_as_lines() {
    use crate::source::{GeneratedPartition, Item, Partition};
    let c = GeneratorConfig {
        defects: 0.05,
        ..config(5_000)
    };
    let expected = records(&c).swap_remove(0);
    let stream = partitions(&c).swap_remove(0);
    let mut partition =
        GeneratedPartition::new(stream, false, c.start_ms, std::time::Instant::now());
    let mut got: Vec<(u64, Generated)> = Vec::new();
    loop {
        let poll = partition.poll(100, &mut |item| match item {
            Item::Trade { offset, trade } => got.push((offset, Generated::Trade(trade))),
            Item::Line {
                offset,
                bytes,
                full_len,
            } => {
                assert_eq!(full_len, bytes.len());
                got.push((offset, Generated::Line(bytes.to_vec())));
            }
            Item::Lost { .. } => panic!("nothing is lost"),
        });
        if poll == crate::source::Poll::Finished {
            break;
        }
    }
    let offsets: Vec<u64> = got.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..expected.len() as u64).collect::<Vec<_>>());
    let records: Vec<Generated> = got.into_iter().map(|(_, r)| r).collect();
    let wanted: Vec<Generated> = expected.into_iter().map(|(_, r)| r).collect();
    assert_eq!(records, wanted);
    assert!(records.iter().any(|r| matches!(r, Generated::Line(_))));
}

#[test]
fn truth_files_read_back() {
    let (_, truth) = file(&injecting(50_000));
    assert!(!truth.is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("truth.jsonl");
    let mut out = Vec::new();
    for injection in &truth {
        injection.write_line(&mut out).expect("write");
    }
    out.extend_from_slice(b"\n");
    std::fs::write(&path, &out).expect("write");
    let back = read_truth(&path).expect("read");
    let strip = |list: &[Injection]| -> Vec<Injection> {
        list.iter()
            .cloned()
            .map(|mut i| {
                i.order = (0, 0);
                i
            })
            .collect()
    };
    assert_eq!(strip(&back), strip(&truth));
    let first =
        String::from_utf8(out[..out.iter().position(|&b| b == b'\n').expect("line")].to_vec())
            .expect("utf8");
    assert!(first.starts_with("{\"class\":"), "{first}");
    std::fs::write(&path, b"{\"class\":\"defect\"}\n").expect("write");
    let error = read_truth(&path).expect_err("not a truth line");
    assert!(error.to_string().contains(":1:"), "{error}");
}

#[test]
fn a_pool_of_two_accounts_still_rings() {
    let c = GeneratorConfig {
        accounts: 2,
        rate: 100.0,
        symbols: vec![crate::model::InlineStr::new("BTCUSDT").expect("symbol")],
        ..injecting(40_000)
    };
    let mut merged = merged_with_arrival(&c);
    merged.record_truth();
    while merged.next_record().is_some() {}
    let truth = merged.take_truth();
    let rings: Vec<&Injection> = truth.iter().filter(|i| i.kind == "wash_ring").collect();
    assert!(!rings.is_empty());
    assert!(rings.iter().all(|r| r.accounts.len() == 2), "{rings:?}");
}

#[test]
fn every_wash_ring_in_the_market_is_in_the_truth() {
    // Thirty busy accounts and a few hundred distinct sizes: the market underneath would
    // close equal-quantity cycles by chance all the time. Brute force over the trades: every
    // 2- or 3-cycle (seller to buyer, one quantity, in time order, within 5 s) must be made of
    // an injected ring's trades.
    let c = GeneratorConfig {
        accounts: 30,
        rate: 200.0,
        symbols: vec![crate::model::InlineStr::new("DOGEUSDT").expect("symbol")],
        ..injecting(60_000)
    };
    let mut merged = merged_with_arrival(&c);
    merged.record_truth();
    let mut trades = Vec::new();
    while let Some((_, record)) = merged.next_record() {
        if let Generated::Trade(trade) = record {
            trades.push(trade);
        }
    }
    let truth = merged.take_truth();
    let injected: BTreeSet<u64> = truth
        .iter()
        .filter(|i| i.kind == "wash_ring")
        .flat_map(|i| i.trade_ids.iter().copied())
        .collect();
    assert!(!injected.is_empty(), "no ring injected");
    let mut seen = BTreeSet::new();
    trades.retain(|t| seen.insert(t.id)); // duplicates delivered again
    trades.sort_by_key(|t| (t.time_ms, t.id));
    let mut by_qty: HashMap<i64, Vec<&Trade>> = HashMap::new();
    for t in &trades {
        by_qty.entry(t.qty.0).or_default().push(t);
    }
    let (mut cycles, mut chance) = (0, Vec::new());
    for same in by_qty.values() {
        for (i, a) in same.iter().enumerate() {
            let within = |t: &&&Trade| t.time_ms <= a.time_ms + 5_000;
            let later: Vec<&&Trade> = same[i + 1..].iter().take_while(within).collect();
            for (j, b) in later.iter().enumerate() {
                if b.seller != a.buyer {
                    continue;
                }
                let mut found = Vec::new();
                if b.buyer == a.seller {
                    found.push(vec![a.id, b.id]);
                }
                for c in &later[j + 1..] {
                    if c.seller == b.buyer && c.buyer == a.seller && b.buyer != a.seller {
                        found.push(vec![a.id, b.id, c.id]);
                    }
                }
                for ids in found {
                    cycles += 1;
                    if !ids.iter().all(|id| injected.contains(id)) {
                        chance.push(ids);
                    }
                }
            }
        }
    }
    assert!(cycles > 0, "the brute force found no cycle at all");
    assert!(chance.is_empty(), "cycles not injected: {chance:?}");
}
