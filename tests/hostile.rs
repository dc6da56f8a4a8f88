//! Hostile and awkward input end to end: a quiet pipe, a Ctrl-C while the input says nothing,
//! names with invisible characters, values at the numeric bounds, conflicting copies of a
//! trade. Each ends in an exact table, a dead-lettered record with its reason, or a clear
//! refusal; none stops, stalls or corrupts the run.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn trade_line(symbol: &str, id: u64, price: &str, qty: &str, time_ms: u64) -> String {
    format!(
        r#"{{"e":"trade","E":{time_ms},"s":"{symbol}","t":{id},"p":"{price}","q":"{qty}","T":{time_ms},"m":false}}"#
    )
}

/// `tickflow run --source file:- …` with a pipe as its standard input.
fn spawn_on_stdin(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .env("TICKFLOW_SERVE", "off")
        .args(["run", "--source", "file:-", "--quiet"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tickflow starts")
}

fn signal(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// Waits for `child` to end, at most `limit`; the time it took.
fn ends_within(child: &mut std::process::Child, limit: Duration) -> Duration {
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(started.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

#[test]
fn a_quiet_pipe_closes_its_windows_and_ctrl_c_ends_the_run_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let mut child = spawn_on_stdin(dir, &["--sink", "sqlite:pipe.db", "--idle-timeout", "1s"]);
    let mut stdin = child.stdin.take().expect("stdin");
    // 3 s of trades, one every 10 ms, then the pipe stays open and says nothing.
    let base = 1_700_000_000_000u64;
    let mut text = String::new();
    for i in 0..300u64 {
        text.push_str(&trade_line("BTCUSDT", i, "43250.1", "0.5", base + i * 10));
        text.push('\n');
    }
    stdin.write_all(text.as_bytes()).expect("pipe");
    stdin.flush().expect("flush");
    // While the pipe is quiet, every 1 s window of what it sent is committed: after the idle
    // timeout, not at the end of the input, which never comes.
    let db = path(dir, "pipe.db");
    let started = Instant::now();
    let committed = loop {
        // The database and its tables appear while the run starts.
        let got = rusqlite::Connection::open(&db).and_then(|c| {
            c.query_row(
                "SELECT count(*), coalesce(sum(trades), 0) FROM candles WHERE window_ms = 1000",
                [],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
            )
        });
        if got.ok() == Some((3, 300)) {
            break true;
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(committed, "the windows of a quiet pipe were not committed");
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the run is still live"
    );
    // Ctrl-C while the input neither sends nor ends: the run ends within a second.
    signal(&child, "-INT");
    let took = ends_within(&mut child, Duration::from_secs(1));
    let out = child.wait_with_output().expect("ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("300 trades"), "{summary}");
    drop(stdin);
}

#[test]
fn ctrl_c_before_the_first_line_ends_the_run_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let mut child = spawn_on_stdin(dir, &["--sink", "sqlite:empty.db"]);
    let stdin = child.stdin.take().expect("stdin");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "waiting for input"
    );
    signal(&child, "-INT");
    let took = ends_within(&mut child, Duration::from_secs(1));
    let out = child.wait_with_output().expect("ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    drop(stdin);
}

#[test]
fn names_with_invisible_characters_are_dead_lettered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let base = 1_700_000_000_000u64;
    let mut lines = vec![trade_line("BTCUSDT", 1, "1", "1", base)];
    // NUL, a newline escape, a right-to-left override, a zero-width space, a space.
    for (i, symbol) in [
        "BTC\\u0000X",
        "BTC\\nX",
        "BTC\\u202eX",
        "BTC\\u200bX",
        "BTC X",
    ]
    .iter()
    .enumerate()
    {
        lines.push(trade_line(symbol, 10 + i as u64, "1", "1", base + 1));
    }
    // Accounts too.
    lines.push(
        r#"{"e":"trade","s":"BTCUSDT","t":20,"p":"1","q":"1","T":1700000000002,"m":false,"B":"acct\u0007","S":"b"}"#
            .to_owned(),
    );
    lines.push(trade_line("BTCUSDT", 2, "1", "1", base + 3));
    std::fs::write(path(dir, "names.jsonl"), lines.join("\n") + "\n").expect("write");
    run(dir, "file:names.jsonl", "sqlite:n.db", &[]);
    let db = path(dir, "n.db");
    assert_eq!(
        rows(&db, "SELECT reason, count(*) FROM rejects GROUP BY reason"),
        vec![vec!["non_printable".to_owned(), "6".to_owned()]]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT symbol, trades FROM candles WHERE window_ms = 1000"
        ),
        vec![vec!["BTCUSDT".to_owned(), "2".to_owned()]]
    );
}

#[test]
fn sums_at_the_numeric_bounds_are_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let max = "92233720368.54775807";
    let base = 1_700_000_000_000u64;
    let lines: Vec<String> = (0..3)
        .map(|i| trade_line("BTCUSDT", i, max, max, base + i))
        .collect();
    std::fs::write(path(dir, "max.jsonl"), lines.join("\n") + "\n").expect("write");
    run(dir, "file:max.jsonl", "sqlite:m.db", &[]);
    // Σp·q = 3 · (2^63 − 1)² · 10^-16 and Σq = 3 · (2^63 − 1) · 10^-8, by Python's integers.
    assert_eq!(
        rows(
            &path(dir, "m.db"),
            "SELECT volume, quote_volume, vwap, trades FROM candles WHERE window_ms = 1000"
        ),
        vec![vec![
            "276701161105.64327421".to_owned(),
            "25521177519070384754219.0723352697503747".to_owned(),
            max.to_owned(),
            "3".to_owned()
        ]]
    );
}

#[test]
fn conflicting_copies_of_a_trade_give_the_same_candles_in_any_order_and_parallelism() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let base = 1_700_000_000_000u64;
    let first = trade_line("ETHUSDT", 7, "2300.5", "1", base);
    let second = trade_line("ETHUSDT", 7, "2299.5", "2", base);
    let last_a = trade_line("ETHUSDT", 9, "2301", "1", base + 999);
    let last_b = trade_line("ETHUSDT", 9, "2302", "1", base + 999);
    let middle = trade_line("ETHUSDT", 8, "2305", "1", base + 500);
    let orders = [
        vec![&first, &second, &middle, &last_a, &last_b],
        vec![&last_b, &second, &middle, &first, &last_a],
    ];
    std::fs::write(path(dir, "off.toml"), "[quality]\nenabled = false\n").expect("config");
    // Without the quality dataflow both copies count; with it (the default) one copy of
    // each survives, the same one whatever the order and parallelism.
    for quality in [false, true] {
        let mut tables = Vec::new();
        for (i, order) in orders.iter().enumerate() {
            let text: String = order.iter().map(|l| format!("{l}\n")).collect();
            let name = format!("c{i}.jsonl");
            std::fs::write(path(dir, &name), text).expect("write");
            for workers in ["1", "2"] {
                let db = format!("c{i}-{workers}-{quality}.db");
                let mut extra = vec!["-w", workers];
                if !quality {
                    extra.extend(["--config", "off.toml"]);
                }
                run(
                    dir,
                    &format!("file:{name}"),
                    &format!("sqlite:{db}"),
                    &extra,
                );
                tables.push(candles(&path(dir, &db)));
            }
        }
        assert!(tables.iter().all(|t| *t == tables[0]), "{tables:?}");
        let one_second: Vec<&Vec<String>> = tables[0].iter().filter(|r| r[1] == "1000").collect();
        let trades = one_second[0].last().expect("columns");
        if quality {
            assert_eq!(trades, "3", "{one_second:?}");
        } else {
            // open: the lower price of the two copies of trade 7; close: the higher of 9.
            assert_eq!(one_second[0][3], "2299.5");
            assert_eq!(one_second[0][6], "2302");
            assert_eq!(trades, "5", "{one_second:?}");
        }
    }
}

/// `n` trades of one symbol, 10 ms apart from `base`.
fn ordered(symbol: &str, n: u64, base: u64) -> Vec<String> {
    (0..n)
        .map(|i| trade_line(symbol, 1_000 + i, "100.5", "0.25", base + i * 10))
        .collect()
}

#[test]
fn a_clock_far_ahead_is_held_and_rejected_not_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let base = 1_700_000_000_000u64;
    let eleven_days = 11 * 86_400_000;
    // 2,000 ordered trades; the 1,400th is stamped 11 days ahead; a second file has its
    // very first line 11 days ahead.
    let mut middle = ordered("BTCUSDT", 2_000, base);
    middle[1_400] = trade_line("BTCUSDT", 2_400, "100.5", "0.25", base + eleven_days);
    let mut first = ordered("BTCUSDT", 2_000, base);
    first[0] = trade_line("BTCUSDT", 999, "100.5", "0.25", base + eleven_days);
    // The same through standard input, whose clock has no known start: its first records
    // decide it.
    let mut child = spawn_on_stdin(dir, &["--sink", "sqlite:first-stdin.db"]);
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all((first.join("\n") + "\n").as_bytes())
            .expect("written");
    }
    assert!(child.wait().expect("ends").success());
    let db = path(dir, "first-stdin.db");
    assert_eq!(
        rows(
            &db,
            "SELECT reason, \"offset\", count(*) FROM rejects GROUP BY reason"
        ),
        vec![vec![
            "time_outlier".to_owned(),
            "0".to_owned(),
            "1".to_owned()
        ]],
    );
    assert_eq!(
        rows(
            &db,
            "SELECT sum(trades) FROM candles WHERE window_ms = 1000"
        ),
        vec![vec!["1999".to_owned()]],
    );
    for (name, lines) in [("middle", middle), ("first", first)] {
        std::fs::write(path(dir, &format!("{name}.jsonl")), lines.join("\n") + "\n")
            .expect("write");
        let db = format!("{name}.db");
        run(
            dir,
            &format!("file:{name}.jsonl"),
            &format!("sqlite:{db}"),
            &[],
        );
        let db = path(dir, &db);
        assert_eq!(
            rows(&db, "SELECT reason, count(*) FROM rejects GROUP BY reason"),
            vec![vec!["time_outlier".to_owned(), "1".to_owned()]],
            "{name}"
        );
        assert_eq!(
            rows(
                &db,
                "SELECT sum(trades) FROM candles WHERE window_ms = 1000"
            ),
            vec![vec!["1999".to_owned()]],
            "{name}"
        );
    }
}

#[test]
fn a_real_jump_of_the_clock_is_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let base = 1_700_000_000_000u64;
    // Trading stops for two hours and resumes: every trade counts, none is late.
    let mut lines = ordered("BTCUSDT", 500, base);
    lines.extend(ordered("BTCUSDT", 500, base + 2 * 3_600_000));
    std::fs::write(path(dir, "gap.jsonl"), lines.join("\n") + "\n").expect("write");
    run(dir, "file:gap.jsonl", "sqlite:gap.db", &[]);
    let db = path(dir, "gap.db");
    assert_eq!(rows(&db, "SELECT count(*) FROM rejects"), vec![vec!["0"]]);
    assert_eq!(
        rows(
            &db,
            "SELECT sum(trades) FROM candles WHERE window_ms = 1000"
        ),
        vec![vec!["1000".to_owned()]]
    );
}

#[test]
fn a_trade_from_the_future_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let now = tickflow_operators::source::now_ms();
    let mut lines = ordered("BTCUSDT", 100, now - 60_000);
    // A day ahead of the wall clock, with two more such trades to "confirm" it.
    for i in 0..3 {
        lines.push(trade_line(
            "BTCUSDT",
            5_000 + i,
            "1",
            "1",
            now + 86_400_000 + i,
        ));
    }
    std::fs::write(path(dir, "future.jsonl"), lines.join("\n") + "\n").expect("write");
    run(dir, "file:future.jsonl", "sqlite:future.db", &[]);
    assert_eq!(
        rows(
            &path(dir, "future.db"),
            "SELECT reason, count(*) FROM rejects GROUP BY reason"
        ),
        vec![vec!["time_outlier".to_owned(), "3".to_owned()]]
    );
}

#[test]
fn a_flood_of_garbage_is_committed_as_it_comes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // 50,000 malformed lines of ~900 bytes and not one trade: no watermark ever moves, yet
    // the rejects must not wait for the end of the input to be written.
    let pad = "x".repeat(860);
    let text: String = (0..50_000)
        .map(|i| {
            format!("{{\"e\":\"trade\",\"s\":\"BTCUSDT\",\"t\":{i},\"p\":\"1\",\"pad\":\"{pad}\"\n")
        })
        .collect();
    std::fs::write(path(dir, "flood.jsonl"), text).expect("write");
    let out = run(dir, "file:flood.jsonl", "sqlite:flood.db", &["-w", "2"]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("50000 rejected (malformed_json 50000)"),
        "{summary}"
    );
    let commits: u64 = summary
        .split(" commits")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no commit count in {summary:?}"));
    assert!(
        commits >= 3,
        "the rejects were held until the end: {summary}"
    );
    assert_eq!(
        rows(&path(dir, "flood.db"), "SELECT count(*) FROM rejects"),
        vec![vec!["50000".to_owned()]]
    );
    // No chunk has a clock, so the lines count in the last window (README), all of them.
    assert_eq!(
        rows(
            &path(dir, "flood.db"),
            "SELECT symbol, sum(total), sum(malformed), sum(valid) FROM quality GROUP BY symbol"
        ),
        vec![vec![
            "BTCUSDT".to_owned(),
            "50000".to_owned(),
            "50000".to_owned(),
            "0".to_owned()
        ]]
    );
}
