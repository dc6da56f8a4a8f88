//! Restarts of sources that cannot resume (the paced generator, stdin, `.gz`): each run
//! starts afresh, and its candles add to the rows an earlier run wrote for the same windows
//! rather than replacing them, so no committed trade is lost. A resumable source is
//! unchanged: a rerun writes each window exactly once.
//!
//! The expected sums are computed here with plain integers from the decimal text, not with
//! tickflow's types. The PostgreSQL tests run when `TICKFLOW_TEST_POSTGRES` is set (as
//! `scripts/test.sh` does) and say so and pass otherwise.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{
    candles, fresh_pg_database as fresh_database, generate, interrupt, path, pg_candles, run,
    spawn_tickflow,
};
use tickflow_operators::model::{Candle, Fixed, QuoteVolume, Symbol, Wide};
use tickflow_operators::postgres::PostgresWriter;
use tickflow_operators::schema;
use tickflow_operators::sink::{Commit, Writer};
use tickflow_operators::sqlite::SqliteWriter;

/// The event time both live runs start at: a minute boundary in the past, so that both runs
/// write into the same 1 s and 1 m windows.
const START_MS: &str = "1699999980000";

/// A candle row as text: symbol, window_ms, start_ms, open, high, low, close, volume,
/// quote_volume, vwap, trades.
type Row = Vec<String>;

fn postgres_server() -> Option<String> {
    let server = std::env::var("TICKFLOW_TEST_POSTGRES").ok();
    if server.is_none() {
        eprintln!("TICKFLOW_TEST_POSTGRES is not set: skipping the PostgreSQL part");
    }
    server
}

/// `text` (a plain decimal) × 10^`digits`, exactly; panics on anything else.
fn scaled(text: &str, digits: usize) -> i128 {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let frac = frac.trim_end_matches('0');
    assert!(frac.len() <= digits, "{text}: more than {digits} digits");
    let digits_text = format!("{int}{frac:0<digits$}");
    let value: i128 = digits_text.parse().expect("a decimal");
    if negative {
        -value
    } else {
        value
    }
}

/// `units` × 10^-`digits` in canonical form (`43250.1`, `2`, `0.00000001`).
fn decimal(units: i128, digits: usize) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    let scale = 10u128.pow(digits as u32);
    let frac = format!("{:0digits$}", magnitude % scale);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{}", magnitude / scale)
    } else {
        format!("{sign}{}.{frac}", magnitude / scale)
    }
}

/// `quote / volume` in 10^-8 units (quote in 10^-16, volume in 10^-8), rounded half away
/// from zero.
fn vwap_units(quote: i128, volume: i128) -> i128 {
    let (q, r) = (quote / volume, quote % volume);
    if 2 * r.abs() >= volume.abs() {
        q + if (quote < 0) == (volume < 0) { 1 } else { -1 }
    } else {
        q
    }
}

/// Runs the paced generator from [`START_MS`] into `sink` for `running`, stops it with
/// SIGINT (checking it was still running, so the stop came mid-run) and returns the number
/// of trades its summary line reports.
fn live_run(dir: &Path, sink: &str, running: Duration) -> u64 {
    let mut child = spawn_tickflow(
        dir,
        &[
            "run",
            "--rate",
            "2000",
            "-w",
            "2",
            "--sink",
            sink,
            "--start-ms",
            START_MS,
            "--quiet",
        ],
    );
    std::thread::sleep(running);
    assert!(
        child.try_wait().expect("child status").is_none(),
        "the live run ended before it was interrupted"
    );
    let output = interrupt(child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let before = stdout
        .split(" trades,")
        .next()
        .expect("a summary line")
        .rsplit(' ')
        .next()
        .expect("a count");
    before
        .parse()
        .unwrap_or_else(|_| panic!("no trade count in {stdout:?}"))
}

/// Checks that every 1 m candle is exactly the sum of the 1 s candles of its minute and that
/// the 1 m candles count `trades` trades in all.
fn assert_minutes_add_up(rows: &[Row], trades: u64) {
    #[derive(Default)]
    struct Sum {
        trades: u64,
        volume: i128,
        quote: i128,
        high: Option<i128>,
        low: Option<i128>,
        open: Option<(u64, String)>,
        seconds: usize,
    }
    let mut seconds: BTreeMap<(String, u64), Sum> = BTreeMap::new();
    let mut minutes: BTreeMap<(String, u64), &Row> = BTreeMap::new();
    let mut total = 0;
    for row in rows {
        let window: u64 = row[1].parse().expect("window_ms");
        let start: u64 = row[2].parse().expect("start_ms");
        let count: u64 = row[10].parse().expect("trades");
        // The row is consistent in itself: its VWAP is its quote volume over its volume.
        let (volume, quote) = (scaled(&row[7], 8), scaled(&row[8], 16));
        assert_eq!(row[9], decimal(vwap_units(quote, volume), 8), "{row:?}");
        match window {
            1_000 => {
                let sum = seconds
                    .entry((row[0].clone(), start - start % 60_000))
                    .or_default();
                sum.trades += count;
                sum.volume += volume;
                sum.quote += quote;
                let (high, low) = (scaled(&row[4], 8), scaled(&row[5], 8));
                sum.high = Some(sum.high.map_or(high, |h| h.max(high)));
                sum.low = Some(sum.low.map_or(low, |l| l.min(low)));
                if sum.open.as_ref().is_none_or(|(at, _)| start < *at) {
                    sum.open = Some((start, row[3].clone()));
                }
                sum.seconds += 1;
            }
            60_000 => {
                total += count;
                minutes.insert((row[0].clone(), start), row);
            }
            other => panic!("unexpected window {other}: {row:?}"),
        }
    }
    assert!(!minutes.is_empty(), "no 1m candles");
    assert_eq!(
        minutes.keys().collect::<Vec<_>>(),
        seconds.keys().collect::<Vec<_>>(),
        "the minutes with 1m candles and with 1s candles differ"
    );
    for (key, minute) in &minutes {
        let sum = &seconds[key];
        let what = format!("{key:?}: 1m {minute:?}, {} 1s candles", sum.seconds);
        assert_eq!(minute[10], sum.trades.to_string(), "trades of {what}");
        assert_eq!(minute[7], decimal(sum.volume, 8), "volume of {what}");
        assert_eq!(minute[8], decimal(sum.quote, 16), "quote volume of {what}");
        assert_eq!(Some(scaled(&minute[4], 8)), sum.high, "high of {what}");
        assert_eq!(Some(scaled(&minute[5], 8)), sum.low, "low of {what}");
        assert_eq!(
            Some(&minute[3]),
            sum.open.as_ref().map(|(_, open)| open),
            "open of {what}"
        );
    }
    assert_eq!(total, trades, "trades in all 1m candles");
}

/// Two live runs into `sink`, the first longer, both interrupted mid-run within the same
/// minute of event time; returns their trade counts.
fn two_live_runs(dir: &Path, sink: &str) -> (u64, u64) {
    let first = live_run(dir, sink, Duration::from_millis(3000));
    let second = live_run(dir, sink, Duration::from_millis(1500));
    // Fewer trades the second time: a second run that replaced the first one's rows would
    // leave 1 s candles of the first run that its 1 m candles lack.
    assert!(first > second && second > 0, "{first} then {second} trades");
    (first, second)
}

#[test]
fn a_restarted_live_run_adds_to_the_minute_in_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, second) = two_live_runs(dir.path(), "sqlite:live.db");
    let rows = candles(&path(dir.path(), "live.db"));
    assert_minutes_add_up(&rows, first + second);
}

#[test]
fn a_restarted_live_run_adds_to_the_minute_in_postgres() {
    let Some(server) = postgres_server() else {
        return;
    };
    let url = fresh_database(&server, "tickflow_live_restart");
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, second) = two_live_runs(dir.path(), &url);
    assert_minutes_add_up(&pg_candles(&url), first + second);
}

#[test]
fn a_resumable_source_run_twice_writes_each_window_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), "trades.jsonl", 20_000);
    let db = path(dir.path(), "file.db");
    run(
        dir.path(),
        "file:trades.jsonl",
        "sqlite:file.db",
        &["-w", "2"],
    );
    let once = candles(&db);
    run(
        dir.path(),
        "file:trades.jsonl",
        "sqlite:file.db",
        &["-w", "2"],
    );
    assert_eq!(candles(&db), once);
    let trades: u64 = once
        .iter()
        .filter(|row| row[1] == "60000")
        .map(|row| row[10].parse::<u64>().expect("trades"))
        .sum();
    assert_eq!(trades, 20_000);
    if let Some(server) = postgres_server() {
        let url = fresh_database(&server, "tickflow_resumable_twice");
        run(dir.path(), "file:trades.jsonl", &url, &["-w", "2"]);
        run(dir.path(), "file:trades.jsonl", &url, &["-w", "2"]);
        assert_eq!(pg_candles(&url), once);
    }
}

/// A candle of `BTCUSDT` in the 1 m window at `start_ms`.
fn candle(
    start_ms: u64,
    [open, high, low, close]: [&str; 4],
    volume: &str,
    quote: Option<&str>,
    trades: Option<u64>,
) -> Candle {
    let fixed = |text: &str| Fixed::parse(text.as_bytes()).expect("a price");
    let volume = Wide::<8>::parse(volume.as_bytes()).expect("a volume");
    let quote = quote.map(|q| QuoteVolume::parse(q.as_bytes()).expect("a quote volume"));
    Candle {
        symbol: Symbol::new("BTCUSDT").expect("short"),
        window_ms: 60_000,
        start_ms,
        open: fixed(open),
        high: fixed(high),
        low: fixed(low),
        close: fixed(close),
        volume,
        quote_volume: quote,
        vwap: quote.and_then(|q| q.div_volume(volume)),
        trades,
    }
}

fn commit(candles: Vec<Candle>, merge: bool) -> Commit {
    Commit {
        source: "test".to_owned(),
        rows: candles.into_iter().map(schema::Row::from).collect(),
        merge,
        ..Commit::default()
    }
}

/// The merge rule, written through the writers directly, the same in both sinks: sums add,
/// open stays, close is the later run's, high/low widen, the VWAP is rounded half away from
/// zero from the exact sums (also where a NUMERIC quotient rounded again would round twice);
/// rows without sums, and commits of resumable sources, replace.
#[test]
fn both_writers_merge_by_the_same_rule() {
    // 0: an exact half unit of VWAP, rounded up. 60 000: just below a half unit (by
    // 1/(2·(10^15+1)) of a unit): rounded down, where a quotient at 16 digits rounded to 8
    // again would round up. 120 000: a candle-file row (no sums) is replaced. 180 000: merged
    // then replaced by a commit that does not merge.
    let n: i128 = 4_325_010_000_000; // 43250.1 in 10^-8 units
    let even: i128 = 2 * 10i128.pow(8); // volume 2
    let odd: i128 = 10i128.pow(15) + 1; // volume 10000000.00000001
    let half_up = n * even + even / 2; // quote in 10^-16 units
    let below_half = n * odd + (odd - 1) / 2;
    let split = |total_volume: i128, total_quote: i128| {
        let first_volume = total_volume / 2;
        let first_quote = n * first_volume;
        (
            (decimal(first_volume, 8), decimal(first_quote, 16)),
            (
                decimal(total_volume - first_volume, 8),
                decimal(total_quote - first_quote, 16),
            ),
        )
    };
    let ((v1, q1), (v2, q2)) = split(even, half_up);
    let ((v3, q3), (v4, q4)) = split(odd, below_half);
    let earlier = vec![
        candle(0, ["3", "4", "2", "3.5"], &v1, Some(&q1), Some(5)),
        candle(60_000, ["3", "4", "2", "3.5"], &v3, Some(&q3), Some(1)),
        candle(120_000, ["3", "4", "2", "3.5"], "7", None, None),
        candle(180_000, ["3", "4", "2", "3.5"], "1", Some("3"), Some(1)),
    ];
    let later = vec![
        candle(0, ["1", "5", "1.5", "2"], &v2, Some(&q2), Some(7)),
        candle(
            60_000,
            ["2.5", "3.9", "0.00000001", "3"],
            &v4,
            Some(&q4),
            Some(2),
        ),
        candle(120_000, ["1", "5", "1", "2"], "1", Some("2"), Some(1)),
        candle(180_000, ["1", "5", "1", "2"], "1", Some("2"), Some(1)),
    ];
    let replacing = vec![candle(
        180_000,
        ["6", "6", "6", "6"],
        "1",
        Some("6"),
        Some(1),
    )];
    let expected: Vec<Row> = [
        [
            "0",
            "3",
            "5",
            "1.5",
            "2",
            &decimal(even, 8),
            &decimal(half_up, 16),
            &decimal(n + 1, 8),
            "12",
        ],
        [
            "60000",
            "3",
            "4",
            "0.00000001",
            "3",
            &decimal(odd, 8),
            &decimal(below_half, 16),
            &decimal(n, 8),
            "3",
        ],
        ["120000", "1", "5", "1", "2", "1", "2", "2", "1"],
        ["180000", "6", "6", "6", "6", "1", "6", "6", "1"],
    ]
    .iter()
    .map(
        |[start, open, high, low, close, volume, quote, vwap, trades]| {
            [
                "BTCUSDT", "60000", start, open, high, low, close, volume, quote, vwap, trades,
            ]
            .map(str::to_owned)
            .to_vec()
        },
    )
    .collect();
    assert_eq!(expected[0][9], "43250.10000001");
    assert_eq!(expected[1][9], "43250.1");

    let write = |writer: &mut dyn Writer| {
        writer
            .write(&commit(earlier.clone(), true))
            .expect("first run");
        writer
            .write(&commit(later.clone(), true))
            .expect("second run");
        writer
            .write(&commit(replacing.clone(), false))
            .expect("a resumable run");
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let db = path(dir.path(), "merge.db");
    let mut sqlite = SqliteWriter::open(&db.display().to_string()).expect("opens");
    write(&mut sqlite);
    assert_eq!(candles(&db), expected);
    if let Some(server) = postgres_server() {
        let url = fresh_database(&server, "tickflow_merge_rule");
        let mut postgres = PostgresWriter::open(&url).expect("connects");
        write(&mut postgres);
        assert_eq!(pg_candles(&url), expected);
    }
}
