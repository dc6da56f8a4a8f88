//! Helpers for the end-to-end tests: run the real binary, read the real database. The
//! runs they start have no HTTP endpoint (`TICKFLOW_SERVE=off`: tests run side by side)
//! unless a test passes `--serve`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rusqlite::types::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tickflow");

/// Runs `tickflow ARGS` in `dir` and returns its output; panics with stderr on failure.
pub fn tickflow(dir: &Path, args: &[&str]) -> Output {
    let output = tickflow_unchecked(dir, args);
    assert!(
        output.status.success(),
        "tickflow {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn tickflow_unchecked(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env("TICKFLOW_SERVE", "off")
        .args(args)
        .arg("--quiet")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("tickflow runs")
}

/// All rows of `query`, every value rendered as text (BLOBs as lossy text).
pub fn rows(db: &Path, query: &str) -> Vec<Vec<String>> {
    let connection = rusqlite::Connection::open(db).expect("database opens");
    let mut statement = connection.prepare(query).expect("query prepares");
    let columns = statement.column_count();
    let mut rows = statement.query([]).expect("query runs");
    let mut out = Vec::new();
    while let Some(row) = rows.next().expect("row") {
        out.push(
            (0..columns)
                .map(|i| match row.get::<_, Value>(i).expect("value") {
                    Value::Null => "NULL".to_owned(),
                    Value::Integer(v) => v.to_string(),
                    Value::Real(v) => v.to_string(),
                    Value::Text(t) => t,
                    Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
                })
                .collect(),
        );
    }
    out
}

pub fn candles(db: &Path) -> Vec<Vec<String>> {
    rows(
        db,
        "SELECT * FROM candles ORDER BY symbol, window_ms, start_ms",
    )
}

pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Writes generated trades with `tickflow generate`, clean (no injected defects or
/// anomalies).
pub fn generate(dir: &Path, name: &str, events: u64) -> PathBuf {
    let events = events.to_string();
    tickflow(
        dir,
        &[
            "generate",
            "--out",
            name,
            "--events",
            &events,
            "--defects",
            "0",
            "--anomalies",
            "0",
        ],
    );
    dir.join(name)
}

/// A free localhost TCP port (racy in principle; fine for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs `tickflow run ARGS` as a cluster of `processes` local processes with 1 worker each;
/// panics if any fails.
pub fn run_cluster(dir: &Path, args: &[&str], processes: usize) {
    let hostfile = dir.join(format!("hosts-{}.txt", free_port()));
    let hosts: String = (0..processes)
        .map(|_| format!("127.0.0.1:{}\n", free_port()))
        .collect();
    std::fs::write(&hostfile, hosts).expect("hostfile");
    let hostfile = hostfile.display().to_string();
    let n = processes.to_string();
    let children: Vec<_> = (0..processes)
        .map(|p| {
            Command::new(BIN)
                .env("TICKFLOW_SERVE", "off")
                .arg("run")
                .args(args)
                .args([
                    "-w",
                    "1",
                    "-n",
                    &n,
                    "-p",
                    &p.to_string(),
                    "--hostfile",
                    &hostfile,
                    "--quiet",
                ])
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("process starts")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("process ends");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Starts `tickflow ARGS` in `dir` in the background (stdout and stderr captured).
pub fn spawn_tickflow(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .env("TICKFLOW_SERVE", "off")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tickflow starts")
}

/// Sends SIGINT (Ctrl-C) to `child` and waits for it to end.
pub fn interrupt(child: std::process::Child) -> Output {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGINT could not be sent");
    child.wait_with_output().expect("tickflow ends")
}

/// `tickflow run --source SOURCE --sink SINK EXTRA…` in `dir`; panics with stderr on failure.
pub fn run(dir: &Path, source: &str, sink: &str, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--source", source, "--sink", sink];
    args.extend_from_slice(extra);
    tickflow(dir, &args)
}

/// A new, empty database on the PostgreSQL `server` (a URL); returns its URL.
pub fn fresh_pg_database(server: &str, name: &str) -> String {
    let mut client = postgres::Client::connect(server, postgres::NoTls).expect("server reachable");
    // One statement per call: multi-statement strings run as one transaction block.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .expect("database dropped");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("database created");
    let base = server.rsplit_once('/').expect("URL with a database").0;
    format!("{base}/{name}")
}

/// All rows of `query` on the PostgreSQL database at `url`, each value as text (`NULL`
/// for NULL); the query must return text columns.
pub fn pg_rows(url: &str, query: &str) -> Vec<Vec<String>> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("database reachable");
    client
        .query(query, &[])
        .expect("query runs")
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    row.get::<_, Option<String>>(i)
                        .unwrap_or_else(|| "NULL".to_owned())
                })
                .collect()
        })
        .collect()
}

/// Every candle in PostgreSQL, each value as PostgreSQL prints it (NUMERIC keeps the scale
/// it was given, so exact decimals print as the SQLite sink stores them), in key order (the
/// table's columns: the text ones of the output would sort as text).
pub fn pg_candles(url: &str) -> Vec<Vec<String>> {
    pg_rows(
        url,
        "SELECT symbol, window_ms::text, start_ms::text, open::text, high::text, low::text, \
         close::text, volume::text, quote_volume::text, vwap::text, trades::text \
         FROM candles c ORDER BY c.symbol, c.window_ms, c.start_ms",
    )
}

/// The sum of the stored resume offsets in an SQLite sink another process may be writing
/// (0 while it has none): grows each time a run stores new progress.
pub fn stored_offsets(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT coalesce(sum(next_offset), 0) FROM source_offsets",
                [],
                |row| row.get(0),
            )
        })
        .unwrap_or(0)
}

/// Config text that switches every market-abuse rule off. Their state reaches minutes of
/// event time back (README, "Market abuse"), longer than the short markets the restart tests
/// of candles and quality use, so with them on a run would store no resume offsets before
/// its end; `tests/alerts.rs` kills and resumes runs with every rule on.
pub const ABUSE_RULES_OFF: &str = "\
[market.bad_tick]\nenabled = false\n\
[market.volume_burst]\nenabled = false\n\
[market.pump_and_dump]\nenabled = false\n\
[market.benford]\nenabled = false\n\
[market.round_sizes]\nenabled = false\n\
[accounts.wash_trade]\nenabled = false\n\
[accounts.velocity_burst]\nenabled = false\n\
[accounts.wash_ring]\nenabled = false\n";

/// Writes [`ABUSE_RULES_OFF`] to `rules-off.toml` in `dir`; returns the file name, for
/// `--config`.
pub fn abuse_rules_off(dir: &Path) -> &'static str {
    std::fs::write(dir.join("rules-off.toml"), ABUSE_RULES_OFF).expect("config written");
    "rules-off.toml"
}
