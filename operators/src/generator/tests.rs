use std::collections::BTreeMap;

use serde::de::value::{Error as ValueError, MapDeserializer, SeqDeserializer};

use super::*;
use crate::model::{Fixed, InlineStr};

fn config(events: u64) -> GeneratorConfig {
    GeneratorConfig {
        events: Some(events),
        ..GeneratorConfig::default()
    }
}

fn sym(name: &str) -> Symbol {
    InlineStr::new(name).expect("short symbol")
}

fn collect_partitions(config: &GeneratorConfig) -> Vec<Vec<(u64, Trade)>> {
    partitions(config)
        .into_iter()
        .map(Iterator::collect)
        .collect()
}

#[test]
fn same_config_same_market_other_seed_other_market() {
    let config = GeneratorConfig {
        accounts: 50,
        ..config(5_000)
    };
    let first = collect_partitions(&config);
    assert_eq!(first, collect_partitions(&config));
    assert_eq!(
        merged(&config).collect::<Vec<_>>(),
        merged(&config).collect::<Vec<_>>()
    );

    let other = collect_partitions(&GeneratorConfig {
        seed: 43,
        ..config.clone()
    });
    for (a, b) in first.iter().zip(&other) {
        assert_eq!(a.len(), b.len(), "the split does not depend on the seed");
        assert_ne!(a, b);
    }
}

#[test]
fn a_partition_does_not_depend_on_the_others() {
    let config = GeneratorConfig {
        accounts: 10,
        ..config(4_000)
    };
    let alone: Vec<Vec<(u64, Trade)>> = (0..8)
        .map(|i| partitions(&config).swap_remove(i).collect())
        .collect();
    // Interleave all partitions round-robin instead.
    let mut streams = partitions(&config);
    let mut together = vec![Vec::new(); streams.len()];
    loop {
        let mut progressed = false;
        for (i, stream) in streams.iter_mut().enumerate() {
            if let Some(item) = stream.next() {
                together[i].push(item);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    assert_eq!(alone, together);
    // Per worker, as the engine will take them.
    for workers in 1..=3 {
        for worker in 0..workers {
            for stream in worker_partitions(&config, worker, workers) {
                assert_eq!(stream.index() % workers, worker);
                let index = stream.index();
                assert_eq!(stream.collect::<Vec<_>>(), alone[index]);
            }
        }
    }
}

#[test]
fn merged_is_the_union_sorted_by_arrival() {
    let config = GeneratorConfig {
        max_delay_ms: 200,
        ..config(6_000)
    };
    let merged: Vec<(u64, Trade)> = merged_with_arrival(&config).collect();
    let index_of = |symbol: &Symbol| config.symbols.iter().position(|s| s == symbol);
    for pair in merged.windows(2) {
        let a = (pair[0].0, index_of(&pair[0].1.symbol));
        let b = (pair[1].0, index_of(&pair[1].1.symbol));
        assert!(a <= b, "{a:?} then {b:?}");
    }
    let mut union: Vec<(u64, Trade)> = collect_partitions(&config).concat();
    let mut sorted = merged.clone();
    let key = |(arrival, trade): &(u64, Trade)| (trade.symbol, trade.id, *arrival);
    union.sort_by_key(key);
    sorted.sort_by_key(key);
    assert_eq!(union, sorted);
    let plain: Vec<Trade> = super::merged(&config).collect();
    assert_eq!(plain, merged.iter().map(|(_, t)| *t).collect::<Vec<_>>());
}

#[test]
fn events_split_exactly_by_weight() {
    for n in [0, 1, 2, 5, 7, 8, 9, 99, 100, 1_001, 12_345] {
        let counts: Vec<usize> = partitions(&config(n))
            .into_iter()
            .map(Iterator::count)
            .collect();
        assert_eq!(counts.iter().sum::<usize>() as u64, n, "{counts:?}");
        // BTC is the busiest whenever there is anything to share.
        assert_eq!(
            counts[0],
            *counts.iter().max().expect("8 partitions"),
            "{counts:?}"
        );
    }
    assert_eq!(split_by_weight(10, &[1, 1, 1]), vec![4, 3, 3]);
    assert_eq!(
        split_by_weight(2, &[30, 20, 8, 12, 10, 6, 8, 6]),
        vec![1, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(split_by_weight(7, &[2, 1]), vec![5, 2]);
    assert_eq!(
        split_by_weight(10, &[1, 2]),
        vec![3, 7],
        "largest remainder, not first"
    );
    // 7 × weights / 100 = 2.1 1.4 0.56 0.84 0.7 0.42 0.56 0.42: the 4 left go to the largest
    // remainders, ties to the lower index.
    assert_eq!(
        split_by_weight(7, &[30, 20, 8, 12, 10, 6, 8, 6]),
        vec![2, 1, 1, 1, 1, 0, 1, 0]
    );
    assert_eq!(
        split_by_weight(u64::MAX, &[1, 1]),
        vec![u64::MAX / 2 + 1, u64::MAX / 2]
    );
    assert_eq!(split_by_weight(5, &[]), Vec::<u64>::new());
    let custom = GeneratorConfig {
        symbols: vec![sym("FOOUSDT"), sym("BTCUSDT"), sym("FOOUSDT")],
        ..config(1_000)
    };
    let counts: Vec<usize> = partitions(&custom)
        .into_iter()
        .map(Iterator::count)
        .collect();
    assert_eq!(counts, vec![143, 857], "5 : 30, duplicate dropped");
}

#[test]
fn trade_ids_are_consecutive_per_symbol() {
    for (index, stream) in collect_partitions(&config(3_000)).into_iter().enumerate() {
        let mut ids: Vec<u64> = stream.iter().map(|(_, t)| t.id).collect();
        ids.sort_unstable();
        let base = 1_000_000 * (index as u64 + 1);
        assert_eq!(ids, (base..base + ids.len() as u64).collect::<Vec<_>>());
    }
}

#[test]
fn streams_arrive_in_order_and_disorder_is_bounded() {
    for max_delay_ms in [0, 1, 37, 500] {
        let config = GeneratorConfig {
            max_delay_ms,
            ..config(20_000)
        };
        let mut disordered = 0;
        for stream in collect_partitions(&config) {
            let mut max_time = 0;
            let mut last = (0, 0);
            for (arrival, trade) in &stream {
                assert!(*arrival >= trade.time_ms && *arrival <= trade.time_ms + max_delay_ms);
                assert!((*arrival, trade.id) > last, "arrival order within a stream");
                last = (*arrival, trade.id);
                assert!(trade.time_ms + max_delay_ms >= max_time, "disorder bound");
                if trade.time_ms < max_time {
                    disordered += 1;
                }
                max_time = max_time.max(trade.time_ms);
            }
        }
        // The bound is worth testing: disorder really happens. (With a 1 ms bound it cannot:
        // equal arrivals are ordered by id, i.e. by event time.)
        assert_eq!(
            disordered == 0,
            max_delay_ms <= 1,
            "{max_delay_ms}: {disordered}"
        );
    }
}

#[test]
fn event_times_follow_the_rate_and_start() {
    let config = GeneratorConfig {
        rate: 1_000.0,
        start_ms: 5_000,
        ..config(40_000)
    };
    let partitions = collect_partitions(&config);
    for (stream, (_, profile)) in partitions.iter().zip(profile::KNOWN) {
        let first = stream.iter().map(|(_, t)| t.time_ms).min().expect("trades");
        let last = stream.iter().map(|(_, t)| t.time_ms).max().expect("trades");
        assert_eq!(first, 5_000);
        // n trades at 1000 × w/100 per second span about n / that seconds (±10 %).
        let expected_ms = stream.len() as f64 / (profile.weight as f64 * 10.0) * 1_000.0;
        let span = (last - first) as f64;
        assert!(
            (span / expected_ms - 1.0).abs() < 0.1,
            "{span} vs {expected_ms}"
        );
    }
    // rate 0 runs event time at the nominal rate.
    let fast = collect_partitions(&GeneratorConfig {
        rate: 0.0,
        ..config.clone()
    });
    let nominal = collect_partitions(&GeneratorConfig {
        rate: NOMINAL_RATE,
        ..config
    });
    assert_eq!(fast, nominal);
}

#[test]
fn prices_and_quantities_are_positive_multiples_of_tick_and_lot() {
    let symbols = vec![
        sym("BTCUSDT"),
        sym("XRPUSDT"),
        sym("DOGEUSDT"),
        sym("NEWCOIN"),
    ];
    let config = GeneratorConfig {
        symbols,
        ..config(40_000)
    };
    for stream in collect_partitions(&config) {
        let symbol = stream[0].1.symbol;
        let (price_decimals, qty_decimals) = precision(&symbol);
        let tick = 10i64.pow(8 - price_decimals);
        let lot = 10i64.pow(8 - qty_decimals);
        let mut distinct_prices = std::collections::BTreeSet::new();
        for (_, trade) in &stream {
            assert!(
                trade.price > Fixed::ZERO && trade.price.0 % tick == 0,
                "{trade:?}"
            );
            assert!(
                trade.qty > Fixed::ZERO && trade.qty.0 % lot == 0,
                "{trade:?}"
            );
            distinct_prices.insert(trade.price);
        }
        assert!(distinct_prices.len() > 3, "{symbol}: the price moves");
        let level = profile(&symbol).base_price;
        let last = stream.last().expect("trades").1.price.to_f64();
        assert!(
            last > level * 0.8 && last < level * 1.25,
            "{symbol}: {last} near {level}"
        );
    }
    // An unknown symbol's tick is about 10^-4 of its price level.
    let (decimals, lots) = precision(&sym("NEWCOIN"));
    let tick_share = 10f64.powi(-(decimals as i32)) / profile(&sym("NEWCOIN")).base_price;
    assert!((1e-5..=1e-3).contains(&tick_share), "{tick_share}");
    assert_eq!(lots, 3);
    assert_eq!(profile(&sym("NEWCOIN")), profile(&sym("NEWCOIN")));
    assert_ne!(
        profile(&sym("NEWCOIN")).base_price,
        profile(&sym("OLDCOIN")).base_price
    );
}

#[test]
fn tiny_ticks_never_reach_zero() {
    // A very volatile walk on a coarse tick must still clamp at one tick.
    let config = GeneratorConfig {
        symbols: vec![sym("DOGEUSDT")],
        rate: 0.001,
        ..config(2_000)
    };
    for (_, trade) in partitions(&config).remove(0) {
        assert!(trade.price.0 >= 1_000, "{trade:?}");
    }
}

#[test]
fn accounts_come_from_a_skewed_pool_and_never_self_trade() {
    let config = GeneratorConfig {
        accounts: 1_000,
        ..config(20_000)
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for trade in merged(&config) {
        let (buyer, seller) = (trade.buyer.expect("buyer"), trade.seller.expect("seller"));
        assert_ne!(buyer, seller);
        for account in [buyer, seller] {
            let text = account.as_str();
            assert_eq!(text.len(), 11, "{text}");
            let rank: u32 = text
                .strip_prefix("acct-")
                .expect("prefix")
                .parse()
                .expect("digits");
            assert!(rank < 1_000);
            *counts.entry(text.to_owned()).or_default() += 1;
        }
    }
    let heaviest = counts.iter().max_by_key(|(_, n)| **n).expect("accounts");
    assert_eq!(heaviest.0, "acct-000000");
    assert!(
        *heaviest.1 > 40_000 / 20,
        "a few accounts are heavy: {heaviest:?}"
    );
    assert!(counts.len() > 500, "but many trade: {}", counts.len());

    let two = GeneratorConfig {
        accounts: 1,
        ..config.clone()
    };
    assert_eq!(two.validate(), Err(GeneratorError::Accounts));
    for trade in merged(&two).take(1_000) {
        assert_ne!(trade.buyer, trade.seller);
        assert!(trade.buyer.is_some());
    }
    for trade in merged(&GeneratorConfig {
        accounts: 0,
        ..config
    })
    .take(1_000)
    {
        assert_eq!((trade.buyer, trade.seller), (None, None));
    }
}

#[test]
fn account_ids_are_padded() {
    let text = |rank| stream::account(rank).map(|a| a.to_string());
    assert_eq!(text(0).as_deref(), Some("acct-000000"));
    assert_eq!(text(42).as_deref(), Some("acct-000042"));
    assert_eq!(text(1_234_567).as_deref(), Some("acct-1234567"));
    assert_eq!(
        text(u64::from(u32::MAX)).as_deref(),
        Some("acct-4294967295")
    );
}

#[test]
fn skip_to_equals_dropping() {
    let config = GeneratorConfig {
        accounts: 7,
        ..config(3_000)
    };
    for index in [0, 4, 7] {
        let all: Vec<(u64, Trade)> = partitions(&config).swap_remove(index).collect();
        for k in [0, 1, 2, 17, 100, all.len() as u64, all.len() as u64 + 5] {
            let mut stream = partitions(&config).swap_remove(index);
            stream.skip_to(k);
            assert_eq!(stream.position(), k.min(all.len() as u64));
            let expected = &all[(k as usize).min(all.len())..];
            assert_eq!(stream.peek_arrival_ms(), expected.first().map(|(a, _)| *a));
            assert_eq!(stream.collect::<Vec<_>>(), expected);
        }
        // Backwards restarts.
        let mut stream = partitions(&config).swap_remove(index);
        stream.skip_to(50);
        stream.skip_to(10);
        assert_eq!(stream.collect::<Vec<_>>(), &all[10..]);
    }
}

#[test]
fn peek_tells_the_next_arrival_and_the_end() {
    let mut stream = partitions(&config(100)).swap_remove(0);
    let (lower, upper) = stream.size_hint();
    assert_eq!((lower, upper), (30, Some(30)));
    while let Some(arrival) = stream.peek_arrival_ms() {
        let position = stream.position();
        assert_eq!(stream.next().map(|(a, _)| a), Some(arrival));
        assert_eq!(stream.position(), position + 1);
    }
    assert_eq!(stream.next(), None);
    assert_eq!(stream.position(), 30);
    // Infinite streams go on.
    let mut infinite = partitions(&GeneratorConfig::default()).swap_remove(7);
    assert_eq!(infinite.size_hint().1, None);
    assert!(infinite.nth(100_000).is_some());
    assert_eq!(infinite.position(), 100_001);
}

#[test]
fn json_line_exact_text() {
    let trade = Trade {
        symbol: sym("ETHUSDT"),
        id: 2_000_123,
        price: Fixed::parse(b"2301.5").expect("price"),
        qty: Fixed::parse(b"0.25").expect("qty"),
        time_ms: 1_700_000_000_123,
        buyer_maker: false,
        buyer: Some(sym("acct-000001")),
        seller: Some(sym("acct-000002")),
    };
    let mut out = Vec::new();
    write_json_line(&mut out, 1_700_000_000_125, &trade);
    assert_eq!(
        String::from_utf8(out.clone()).expect("utf8"),
        "{\"e\":\"trade\",\"E\":1700000000125,\"s\":\"ETHUSDT\",\"t\":2000123,\
         \"p\":\"2301.50\",\"q\":\"0.2500\",\"b\":4000247,\"a\":4000246,\
         \"T\":1700000000123,\"m\":false,\"B\":\"acct-000001\",\"S\":\"acct-000002\"}\n"
    );
    // Appends; a seller alone is written alone.
    write_json_line(
        &mut out,
        0,
        &Trade {
            buyer: None,
            buyer_maker: true,
            ..trade
        },
    );
    let text = String::from_utf8(out).expect("utf8");
    let second = text.lines().nth(1).expect("two lines");
    assert!(
        second.ends_with(",\"m\":true,\"S\":\"acct-000002\"}"),
        "{second}"
    );
    assert!(second.contains("\"b\":4000246,\"a\":4000247"), "{second}");
}

/// The value of `"key":` in a flat JSON line written by `write_json_line`.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
    let rest = &line[start..];
    let end = rest.find([',', '}']).expect("end of value");
    rest[..end].trim_matches('"')
}

#[test]
fn json_lines_of_generated_trades_carry_every_field() {
    let config = GeneratorConfig {
        accounts: 100,
        ..config(2_000)
    };
    let mut out = Vec::new();
    for (arrival, trade) in merged_with_arrival(&config) {
        out.clear();
        write_json_line(&mut out, arrival, &trade);
        let line = std::str::from_utf8(&out).expect("utf8");
        assert!(
            line.starts_with("{\"e\":\"trade\",") && line.ends_with("}\n"),
            "{line}"
        );
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(field(line, "E"), arrival.to_string());
        assert_eq!(field(line, "s"), trade.symbol.as_str());
        assert_eq!(field(line, "t"), trade.id.to_string());
        assert_eq!(field(line, "T"), trade.time_ms.to_string());
        assert_eq!(field(line, "m"), trade.buyer_maker.to_string());
        assert_eq!(field(line, "B"), trade.buyer.expect("buyer").as_str());
        assert_eq!(field(line, "S"), trade.seller.expect("seller").as_str());
        let (price_decimals, qty_decimals) = precision(&trade.symbol);
        for (key, value, decimals) in [
            ("p", trade.price, price_decimals),
            ("q", trade.qty, qty_decimals),
        ] {
            let text = field(line, key);
            assert_eq!(Fixed::parse(text.as_bytes()), Ok(value), "{line}");
            let written = text.split_once('.').map_or(0, |(_, frac)| frac.len());
            assert_eq!(written as u32, decimals, "{line}");
        }
        let (b, a): (u64, u64) = (
            field(line, "b").parse().expect("b"),
            field(line, "a").parse().expect("a"),
        );
        assert_eq!(b.abs_diff(a), 1);
        assert_eq!(b.min(a), trade.id * 2);
    }
}

#[test]
fn config_validates_and_deserializes() {
    assert_eq!(GeneratorConfig::default().validate(), Ok(()));
    assert_eq!(
        GeneratorConfig {
            symbols: vec![],
            ..Default::default()
        }
        .validate(),
        Err(GeneratorError::NoSymbols)
    );
    let twice = vec![sym("BTCUSDT"), sym("ETHUSDT"), sym("BTCUSDT")];
    assert_eq!(
        GeneratorConfig {
            symbols: twice,
            ..Default::default()
        }
        .validate(),
        Err(GeneratorError::DuplicateSymbol(sym("BTCUSDT")))
    );
    assert_eq!(
        GeneratorConfig {
            symbols: vec![sym("")],
            ..Default::default()
        }
        .validate(),
        Err(GeneratorError::EmptySymbol)
    );
    for rate in [-1.0, f64::NAN, f64::INFINITY] {
        let config = GeneratorConfig {
            rate,
            ..Default::default()
        };
        assert!(matches!(config.validate(), Err(GeneratorError::Rate(_))));
        assert_eq!(config.event_rate(), NOMINAL_RATE);
    }
    assert_eq!(
        partitions(&GeneratorConfig {
            symbols: vec![],
            ..config(10)
        })
        .len(),
        0
    );
    assert_eq!(
        merged(&GeneratorConfig {
            symbols: vec![],
            ..config(10)
        })
        .count(),
        0
    );

    let names = ["BTCUSDT", "FOO"];
    let symbols =
        deserialize_symbols(SeqDeserializer::<_, ValueError>::new(names.into_iter())).expect("ok");
    assert_eq!(symbols, vec![sym("BTCUSDT"), sym("FOO")]);
    let long = ["X".repeat(24)];
    assert!(deserialize_symbols(SeqDeserializer::<_, ValueError>::new(long.into_iter())).is_err());

    let fields =
        MapDeserializer::<_, ValueError>::new([("seed", 7u64), ("accounts", 3)].into_iter());
    let config = GeneratorConfig::deserialize(fields).expect("partial config");
    assert_eq!(
        (config.seed, config.accounts, config.max_delay_ms),
        (7, 3, 500)
    );
    assert_eq!(config.symbols, default_symbols());
    let unknown = MapDeserializer::<_, ValueError>::new([("sead", 7u64)].into_iter());
    assert!(GeneratorConfig::deserialize(unknown).is_err());
}

#[test]
fn default_symbols_are_the_eight() {
    let names: Vec<String> = default_symbols().iter().map(|s| s.to_string()).collect();
    assert_eq!(
        names,
        [
            "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT",
            "AVAXUSDT"
        ]
    );
}

/// A partition's trades in event order.
fn event_order(mut stream: Vec<(u64, Trade)>) -> Vec<Trade> {
    stream.sort_by_key(|(_, t)| (t.time_ms, t.id));
    stream.into_iter().map(|(_, t)| t).collect()
}

#[test]
fn realized_volatility_matches_the_profile() {
    let two = vec![sym("BTCUSDT"), sym("ETHUSDT")];
    let config = GeneratorConfig {
        symbols: two,
        ..config(400_000)
    };
    for stream in collect_partitions(&config) {
        let trades = event_order(stream);
        let symbol = trades[0].symbol;
        // The last price of every 50 ms: sampling keeps the one-tick bid/ask bounce out of
        // the estimate.
        let mut samples: Vec<f64> = Vec::new();
        for pair in trades.windows(2) {
            if pair[1].time_ms / 50 != pair[0].time_ms / 50 {
                samples.push(pair[0].price.to_f64());
            }
        }
        let squares: f64 = samples.windows(2).map(|w| (w[1] / w[0]).ln().powi(2)).sum();
        let years = (samples.len() - 1) as f64 * 0.05 / (365.25 * 86_400.0);
        let realized = (squares / years).sqrt();
        let expected = profile(&symbol).volatility;
        assert!(
            (realized / expected - 1.0).abs() < 0.2,
            "{symbol}: {realized} vs {expected}"
        );
    }
}

#[test]
fn aggressor_side_is_balanced_and_sticky() {
    for stream in collect_partitions(&config(50_000)) {
        let trades = event_order(stream);
        let n = trades.len() as f64;
        let sells = trades.iter().filter(|t| t.buyer_maker).count() as f64;
        let repeats = trades
            .windows(2)
            .filter(|w| w[0].buyer_maker == w[1].buyer_maker)
            .count();
        assert!((sells / n - 0.5).abs() < 0.05, "{sells} of {n}");
        assert!(
            (repeats as f64 / (n - 1.0) - 0.65).abs() < 0.05,
            "{repeats} of {n}"
        );
    }
}
