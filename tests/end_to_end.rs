//! The binary end to end: files in, SQLite out, compared with an independent reference.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
/// The candles of generated JSON lines by the oracle (serde_json and big integers, not
/// tickflow's parser or arithmetic), as rows of text like the sink's.
fn oracle_candles(text: &str, window_sizes: &[u64]) -> Vec<Vec<String>> {
    let trades = tickflow_oracle::trades_from_json_lines(text).expect("valid trade lines");
    let mut rows: Vec<Vec<String>> = tickflow_oracle::candles(&trades, window_sizes)
        .iter()
        .map(tickflow_oracle::Candle::row)
        .collect();
    rows.sort();
    rows
}

#[test]
fn candles_are_identical_on_one_two_workers_and_two_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let file = generate(dir, "trades.jsonl", 300_000);
    let source = format!("file:{}", file.display());
    let windows = "1s,1m,5m";

    run(
        dir,
        &source,
        "sqlite:w1.db",
        &["-w", "1", "--windows", windows],
    );
    run(
        dir,
        &source,
        "sqlite:w2.db",
        &["-w", "2", "--windows", windows],
    );

    run_cluster(
        dir,
        &[
            "--source",
            &source,
            "--sink",
            "sqlite:p2.db",
            "--windows",
            windows,
        ],
        2,
    );

    let one = candles(&path(dir, "w1.db"));
    assert!(
        one.len() > 8 * 30,
        "expected many candles, got {}",
        one.len()
    );
    assert_eq!(one, candles(&path(dir, "w2.db")), "-w 2 differs from -w 1");
    assert_eq!(
        one,
        candles(&path(dir, "p2.db")),
        "2 processes differ from -w 1"
    );

    // And all of them equal the definition, computed from an independent parse.
    let text = std::fs::read_to_string(&file).expect("read");
    let expected = oracle_candles(&text, &[1_000, 60_000, 300_000]);
    let mut got = one;
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn gzip_and_stdin_give_the_same_candles_as_the_plain_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let file = generate(dir, "t.jsonl", 50_000);
    let bytes = std::fs::read(&file).expect("read");
    let gz = path(dir, "t.jsonl.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::fast(),
    );
    encoder.write_all(&bytes).expect("compress");
    encoder.finish().expect("finish");

    tickflow(
        dir,
        &[
            "run",
            "--source",
            &format!("file:{}", file.display()),
            "--sink",
            "sqlite:plain.db",
        ],
    );
    tickflow(
        dir,
        &[
            "run",
            "--source",
            &format!("file:{}", gz.display()),
            "--sink",
            "sqlite:gz.db",
            "-w",
            "2",
        ],
    );
    let mut child = Command::new(BIN)
        .env("TICKFLOW_SERVE", "off")
        .args([
            "run",
            "--source",
            "file:-",
            "--sink",
            "sqlite:stdin.db",
            "--quiet",
        ])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("pipe");
    assert!(child.wait().expect("ends").success());

    let plain = candles(&path(dir, "plain.db"));
    assert!(!plain.is_empty());
    assert_eq!(plain, candles(&path(dir, "gz.db")));
    assert_eq!(plain, candles(&path(dir, "stdin.db")));
}

#[test]
fn combined_stream_with_other_event_types_counts_trades_and_skips_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let mut lines = Vec::new();
    for i in 0..300u64 {
        let t = 1_700_000_000_000 + i * 10;
        lines.push(format!(
            r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{},"s":"BTCUSDT","t":{},"p":"43250.{:02}","q":"0.00{}1","b":88,"a":50,"T":{t},"m":true,"M":true}}}}"#,
            t + 2, 1000 + i, i % 100, i % 9
        ));
        if i % 3 == 0 {
            lines.push(format!(
                r#"{{"stream":"btcusdt@depth","data":{{"e":"depthUpdate","E":{t},"s":"BTCUSDT","U":1,"u":2,"b":[["43250.00","1.0"]],"a":[["43251.00","0.5"]]}}}}"#
            ));
        }
        if i % 5 == 0 {
            lines.push(format!(
                r#"{{"stream":"btcusdt@bookTicker","data":{{"u":{i},"s":"BTCUSDT","b":"43250.00","B":"1.5","a":"43251.00","A":"2.0"}}}}"#
            ));
        }
        if i % 7 == 0 {
            lines.push(format!(
                r#"{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":{t},"s":"BTCUSDT","a":1,"p":"43250.00","q":"1.0","f":1,"l":2,"T":{t},"m":true,"M":true}}}}"#
            ));
        }
    }
    std::fs::write(path(dir, "capture.jsonl"), lines.join("\n") + "\n").expect("write");
    let out = run(dir, "file:capture.jsonl", "sqlite:c.db", &["-w", "2"]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("300 trades"), "{summary}");
    assert!(summary.contains("0 rejected"), "{summary}");
    assert!(summary.contains("depthUpdate 100"), "{summary}");
    assert!(summary.contains("bookTicker 60"), "{summary}");
    assert!(summary.contains("aggTrade 43"), "{summary}");
    let db = path(dir, "c.db");
    assert_eq!(rows(&db, "SELECT count(*) FROM rejects"), vec![vec!["0"]]);
    assert_eq!(
        rows(
            &db,
            "SELECT sum(trades) FROM candles WHERE window_ms = 1000"
        ),
        vec![vec!["300"]]
    );
}

#[test]
fn broken_lines_never_stop_the_run_and_each_is_dead_lettered_with_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let good = |t: u64, id: u64| {
        format!(
            r#"{{"e":"trade","E":{t},"s":"ETHUSDT","t":{id},"p":"2300.5","q":"0.1","b":1,"a":2,"T":{t},"m":false}}"#
        )
    };
    let base = 1_700_000_000_000u64;
    let mut file: Vec<u8> = Vec::new();
    let mut push = |line: &[u8]| {
        file.extend_from_slice(line);
        file.push(b'\n');
    };
    for i in 0..100 {
        push(good(base + i * 100, i).as_bytes());
    }
    let valid = good(base + 5_000, 500);
    // malformed_json: truncated at several places
    for cut in [1, 10, 40, valid.len() - 1] {
        push(&valid.as_bytes()[..cut]);
    }
    // wrong_type: price as an object, time as a string
    push(br#"{"e":"trade","E":1,"s":"ETHUSDT","t":1,"p":{"x":1},"q":"0.1","T":1700000005000,"m":false}"#);
    push(br#"{"e":"trade","E":1,"s":"ETHUSDT","t":1,"p":"1","q":"0.1","T":"soon","m":false}"#);
    // non_positive: zero and negative price/qty
    push(
        br#"{"e":"trade","E":1,"s":"ETHUSDT","t":2,"p":"0","q":"0.1","T":1700000005000,"m":false}"#,
    );
    push(br#"{"e":"trade","E":1,"s":"ETHUSDT","t":3,"p":"2300","q":"-0.1","T":1700000005000,"m":false}"#);
    // bad_number: non-numeric price
    push(br#"{"e":"trade","E":1,"s":"ETHUSDT","t":4,"p":"abc","q":"0.1","T":1700000005000,"m":false}"#);
    // missing_field: no price, no time
    push(br#"{"e":"trade","E":1,"s":"ETHUSDT","t":5,"q":"0.1","T":1700000005000,"m":false}"#);
    push(br#"{"e":"trade","E":1,"s":"ETHUSDT","t":6,"p":"1","q":"0.1","m":false}"#);
    // line_too_long: a 1 MB line
    let mut long = br#"{"e":"trade","pad":""#.to_vec();
    long.extend(std::iter::repeat_n(b'x', 1 << 20));
    long.extend_from_slice(
        br#"","s":"ETHUSDT","t":7,"p":"1","q":"1","T":1700000005000,"m":false}"#,
    );
    push(&long);
    // invalid_utf8
    push(b"{\"e\":\"trade\",\"s\":\"ETH\xff\xfeUSDT\",\"t\":8,\"p\":\"1\",\"q\":\"1\",\"T\":1700000005000,\"m\":false}");
    // late: 60 s behind the partition's maximum
    push(good(base + 9_000, 900).as_bytes());
    push(good(base + 9_100 - 60_000, 901).as_bytes());
    std::fs::write(path(dir, "broken.jsonl"), &file).expect("write");

    let out = run(dir, "file:broken.jsonl", "sqlite:b.db", &[]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("101 trades"), "{summary}");
    let db = path(dir, "b.db");
    let by_reason = rows(
        &db,
        "SELECT reason, count(*) FROM rejects GROUP BY reason ORDER BY reason",
    );
    let expected: Vec<Vec<String>> = [
        ("bad_number", 1),
        ("invalid_utf8", 1),
        ("late", 1),
        ("line_too_long", 1),
        ("malformed_json", 4),
        ("missing_field", 2),
        ("non_positive", 2),
        ("wrong_type", 2),
    ]
    .iter()
    .map(|(r, n)| vec![r.to_string(), n.to_string()])
    .collect();
    assert_eq!(by_reason, expected);
    // The raw text is kept (cut at 1 MiB for the long line, which says so).
    let late = rows(&db, "SELECT raw FROM rejects WHERE reason = 'late'");
    assert_eq!(late, vec![vec![good(base + 9_100 - 60_000, 901)]]);
    let long_row = rows(
        &db,
        "SELECT length(raw), detail FROM rejects WHERE reason = 'line_too_long'",
    );
    assert_eq!(long_row[0][0], (1 << 20).to_string());
    assert!(long_row[0][1].contains("cut"), "{:?}", long_row[0][1]);
    let binary = rows(
        &db,
        "SELECT typeof(raw) FROM rejects WHERE reason = 'invalid_utf8'",
    );
    assert_eq!(binary, vec![vec!["blob"]]);
    // Every line is accounted for: trades + rejects = lines.
    let lines = file
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let rejected: usize = expected
        .iter()
        .map(|r| r[1].parse::<usize>().unwrap_or(0))
        .sum();
    assert_eq!(101 + rejected, lines);
}

#[test]
fn candle_csv_feeds_the_candle_table_directly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    std::fs::write(
        path(dir, "coin_Bitcoin.csv"),
        "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap\n\
         1,Bitcoin,BTC,2013-04-29 23:59:59,147.48800659,134.0,134.44400024,144.5399932,0.0,1603768864.5\n\
         2,Bitcoin,BTC,2013-04-30 23:59:59,146.92999268,134.05000305,144.0,139.0,0.0,1542813125.0\n",
    )
    .expect("write");
    run(dir, "file:coin_Bitcoin.csv", "sqlite:k.db", &[]);
    let got = rows(
        &path(dir, "k.db"),
        "SELECT symbol, window_ms, start_ms, open, high, low, close, volume, vwap FROM candles ORDER BY start_ms",
    );
    assert_eq!(
        got,
        vec![
            vec![
                "BTC",
                "86400000",
                "1367193600000",
                "134.44400024",
                "147.48800659",
                "134",
                "144.5399932",
                "0",
                "NULL"
            ],
            vec![
                "BTC",
                "86400000",
                "1367280000000",
                "144",
                "146.92999268",
                "134.05000305",
                "139",
                "0",
                "NULL"
            ],
        ]
    );
}

#[test]
fn bad_input_gets_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    for (args, expected) in [
        (vec!["run", "--source", "file:nope.jsonl"], "nope.jsonl"),
        (vec!["run", "--windows", "1s,0s"], "window"),
        (vec!["run", "--lateness", "2 sec"], "--lateness"),
        (
            vec!["run", "--source", "ftp://x"],
            "expected generate, file:PATH or kafka://",
        ),
        (
            vec!["run", "--sink", "mysql://x"],
            "expected sqlite:PATH, postgres://USER@HOST[:PORT]/DB or none",
        ),
        (vec!["run", "-n", "2", "-p", "2"], "out of range"),
    ] {
        let out = tickflow_unchecked(dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn generator_source_ends_after_n_events_with_every_trade_in_the_candles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let out = tickflow(
        dir,
        &[
            "run",
            "--events",
            "20000",
            "--rate",
            "0",
            "-w",
            "2",
            "--sink",
            "sqlite:g.db",
        ],
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("20000 trades"), "{summary}");
    let db = path(dir, "g.db");
    for window in ["1000", "60000"] {
        assert_eq!(
            rows(
                &db,
                &format!("SELECT sum(trades) FROM candles WHERE window_ms = {window}")
            ),
            vec![vec!["20000"]]
        );
    }
    // The run command's market is the one `generate` writes.
    let file = generate(dir, "g.jsonl", 20_000);
    tickflow(
        dir,
        &[
            "run",
            "--source",
            &format!("file:{}", file.display()),
            "--sink",
            "sqlite:f.db",
        ],
    );
    assert_eq!(candles(&db), candles(&path(dir, "f.db")));
}

#[test]
fn an_interrupted_live_run_flushes_everything_it_read_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // The main job's shape: the paced generator, no --events, until SIGINT.
    let child = spawn_tickflow(
        dir,
        &[
            "run",
            "--rate",
            "4000",
            "-w",
            "2",
            "--sink",
            "sqlite:live.db",
            "--quiet",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let out = interrupt(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {}: {stderr}", out.status);
    let summary = String::from_utf8_lossy(&out.stdout);
    let trades: u64 = summary
        .split(" trades")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no trade count in {summary:?}"));
    assert!(trades > 1000, "{summary}");
    let db = path(dir, "live.db");
    for window in ["1000", "60000"] {
        let sum = rows(
            &db,
            &format!("SELECT sum(trades) FROM candles WHERE window_ms = {window}"),
        );
        assert_eq!(sum, vec![vec![trades.to_string()]], "window {window}");
    }
    // Every partition's offset says where it stopped, and they add up to what was read.
    let offsets = rows(
        &db,
        "SELECT sum(next_offset), min(finished) FROM source_offsets",
    );
    assert_eq!(offsets, vec![vec![trades.to_string(), "1".to_owned()]]);
}

#[test]
fn a_failing_sink_stops_the_run_with_its_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let file = generate(dir, "t.jsonl", 20_000);
    // Fault injection: the database refuses every candle.
    let db = path(dir, "bad.db");
    let connection = rusqlite::Connection::open(&db).expect("opens");
    connection
        .execute_batch(
            "CREATE TABLE candles (symbol TEXT NOT NULL, window_ms INTEGER NOT NULL, \
             start_ms INTEGER NOT NULL, open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, \
             close TEXT NOT NULL, volume TEXT NOT NULL, quote_volume TEXT, vwap TEXT, trades INTEGER, \
             PRIMARY KEY (symbol, window_ms, start_ms)) WITHOUT ROWID;
             CREATE TRIGGER refuse BEFORE INSERT ON candles BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .expect("schema");
    drop(connection);
    let out = tickflow_unchecked(
        dir,
        &[
            "run",
            "--source",
            &format!("file:{}", file.display()),
            "--sink",
            "sqlite:bad.db",
            "-w",
            "2",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("injected failure"), "{stderr}");
    // Nothing was claimed: no offsets recorded as committed.
    assert_eq!(
        rows(&db, "SELECT count(*) FROM source_offsets"),
        vec![vec!["0"]]
    );
}

#[test]
fn generator_and_file_runs_stopped_or_killed_resume_to_the_uninterrupted_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let file = generate(dir, "t.jsonl", 1_000_000);
    let file_source = format!("file:{}", file.display());
    let config = abuse_rules_off(dir);
    for (name, source) in [
        ("gen", vec!["--rate", "0", "--events", "1000000"]),
        ("file", vec!["--source", file_source.as_str()]),
    ] {
        // 10 s windows: stored offsets move on every 10 s of event time (a restart re-reads
        // from the start of the open windows).
        let (clean, resumed) = (
            format!("sqlite:{name}-clean.db"),
            format!("sqlite:{name}-resumed.db"),
        );
        let args_into = |sink: &str| -> Vec<String> {
            let mut args: Vec<String> = [
                "run",
                "-w",
                "2",
                "--windows",
                "1s,10s",
                // This market spans 100 s of event time: a short dedup horizon lets a run
                // store resume offsets every 10 s (the default 3m would hold them until
                // the end, for the replay of dedup state).
                "--dedup-horizon",
                "1s",
                // The abuse rules remember minutes: off, for the same reason.
                "--config",
                config,
                "--store-trades",
                "--sink",
                sink,
            ]
            .map(String::from)
            .to_vec();
            args.extend(source.iter().map(|a| a.to_string()));
            args
        };
        let clean_args = args_into(&clean);
        tickflow(
            dir,
            &clean_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let owned = args_into(&resumed);
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        // Ctrl-C twice, then kill -9 twice, each partway through; then to the end.
        // Each interruption lands after the run has stored new resume offsets (so that every
        // restart continues from progress of its own) and before it ends.
        let db = path(dir, &format!("{name}-resumed.db"));
        let stored = || stored_offsets(&db);
        for (delay_ms, signal) in [(100, "-INT"), (200, "-INT"), (50, "-KILL"), (150, "-KILL")] {
            let before = stored();
            let mut child = spawn_tickflow(dir, &args);
            while stored() == before && child.try_wait().expect("wait").is_none() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill runs");
            let out = child.wait_with_output().expect("ends");
            let said = String::from_utf8_lossy(&out.stdout);
            // Mid-run: killed, or stopped by Ctrl-C before reading everything.
            assert!(
                !said.contains("1000000 events read"),
                "{name}: the {signal} landed after the end: {said}"
            );
        }
        let last = tickflow(dir, &args);
        let said = String::from_utf8_lossy(&last.stdout);
        assert!(
            !said.contains("1000000 events read"),
            "{name}: the last run resumed rather than starting over: {said}"
        );
        assert_eq!(
            candles(&path(dir, &format!("{name}-resumed.db"))),
            candles(&path(dir, &format!("{name}-clean.db"))),
            "{name}"
        );
        let quality = "SELECT * FROM quality ORDER BY symbol, window_ms, start_ms";
        assert_eq!(
            rows(&path(dir, &format!("{name}-resumed.db")), quality),
            rows(&path(dir, &format!("{name}-clean.db")), quality),
            "{name}: quality"
        );
        // The models reach the same versions, fits and prequential errors: a resumed run
        // learns first from the candles the killed runs committed.
        for (table, query) in [
            (
                "models",
                "SELECT * FROM models ORDER BY symbol, window_ms, version",
            ),
            (
                "predictions",
                "SELECT * FROM predictions ORDER BY symbol, window_ms, start_ms",
            ),
        ] {
            let clean = rows(&path(dir, &format!("{name}-clean.db")), query);
            assert!(clean.len() > 500, "{name}: {} {table} rows", clean.len());
            assert!(
                rows(&path(dir, &format!("{name}-resumed.db")), query) == clean,
                "{name}: {table} differ from the uninterrupted run's"
            );
        }
        // Every trade archived exactly once, as the uninterrupted run archived it.
        let archive = "SELECT symbol, trade_id, price, qty, time_ms, buyer_maker FROM trades \
                       ORDER BY symbol, trade_id";
        let resumed_trades = rows(&path(dir, &format!("{name}-resumed.db")), archive);
        assert_eq!(resumed_trades.len(), 1_000_000, "{name}");
        assert!(
            resumed_trades.windows(2).all(|w| w[0][..2] != w[1][..2]),
            "{name}: a trade archived twice"
        );
        assert!(
            resumed_trades == rows(&path(dir, &format!("{name}-clean.db")), archive),
            "{name}: the archives differ"
        );
    }
}
