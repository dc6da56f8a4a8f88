//! The PostgreSQL sink against a real server: `scripts/test.sh` starts a throwaway cluster
//! (`scripts/pg.sh`) and passes its URL in `TICKFLOW_TEST_POSTGRES`; each test works in a
//! database of its own. The outage tests start a cluster of their own, which they stop and
//! start. The lost-COMMIT tests put a TCP proxy of their own ([`CommitCutter`]) between
//! tickflow and the server, which cuts the connection at a chosen COMMIT.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    candles, fresh_pg_database, generate, path, pg_candles, pg_rows, rows, run, spawn_tickflow,
    tickflow, tickflow_unchecked,
};
use postgres::{Client, NoTls};
use rand::{Rng, SeedableRng};

fn server() -> String {
    std::env::var("TICKFLOW_TEST_POSTGRES").expect(
        "TICKFLOW_TEST_POSTGRES is not set: run the suite with `bash scripts/test.sh`, which \
         starts a throwaway PostgreSQL (or point it at a server where databases may be created)",
    )
}

/// A new, empty database for one test; returns its URL.
fn fresh_database(name: &str) -> String {
    fresh_pg_database(&server(), name)
}

/// The sequence number of the last commit into the database at `url`: 0 before the first,
/// or while the schema is not there yet, or the server is down.
fn last_commit_seq(url: &str) -> i64 {
    Client::connect(url, NoTls)
        .ok()
        .and_then(|mut client| {
            client
                .query_one("SELECT coalesce(max(seq), 0) FROM sink_commits", &[])
                .ok()
        })
        .map_or(0, |row| row.get(0))
}

fn pg_count(url: &str, query: &str) -> i64 {
    let mut client = Client::connect(url, NoTls).expect("database reachable");
    client.query_one(query, &[]).expect("query runs").get(0)
}

/// `file:` spec of `events` generated trades followed by the lines `extra`.
fn trades_and(dir: &Path, events: u64, extra: &[u8]) -> String {
    let file = generate(dir, "t.jsonl", events);
    let mut text = std::fs::read(&file).expect("read");
    text.extend_from_slice(extra);
    std::fs::write(&file, text).expect("write");
    format!("file:{}", file.display())
}

/// The file's candles through the SQLite sink: the reference for the PostgreSQL runs.
fn reference(dir: &Path, source: &str) -> Vec<Vec<String>> {
    run(dir, source, "sqlite:ref.db", &["-w", "2"]);
    candles(&path(dir, "ref.db"))
}

#[test]
fn postgres_gets_the_sqlite_tables_and_the_schema_is_versioned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // Some broken lines, to fill `rejects`.
    let source = trades_and(
        dir,
        50_000,
        b"{\"e\":\"trade\",\"s\":\"BTCUSDT\"\nnot json\n\xff\xfe\n",
    );
    let expected = reference(dir, &source);
    let url = fresh_database("tf_tables");
    run(dir, &source, &url, &["-w", "2"]);
    assert_eq!(pg_candles(&url), expected);
    assert_eq!(
        pg_count(&url, "SELECT count(*) FROM rejects"),
        3,
        "every broken line is dead-lettered"
    );
    assert_eq!(
        pg_rows(
            &url,
            "SELECT version::text FROM schema_migrations ORDER BY version"
        ),
        (1..=tickflow_operators::schema::VERSION)
            .map(|v| vec![v.to_string()])
            .collect::<Vec<_>>()
    );
    assert_schema_is_declared(&url);
    // Prices are NUMERIC, and the views give timestamps.
    assert_eq!(
        pg_rows(
            &url,
            "SELECT data_type FROM information_schema.columns \
             WHERE table_name = 'candles' AND column_name = 'vwap'"
        ),
        vec![vec!["numeric".to_owned()]]
    );
    assert!(
        pg_count(
            &url,
            "SELECT count(*) FROM candles_at WHERE end_at > start_at"
        ) > 0
    );
    // The same command again: everything is already there, nothing changes.
    run(dir, &source, &url, &["-w", "1"]);
    assert_eq!(pg_candles(&url), expected);
    assert_eq!(pg_count(&url, "SELECT count(*) FROM rejects"), 3);
}

/// Each declared table has its declared columns (name, type, nullability, in order), its
/// primary key and its indexes, as PostgreSQL's catalog reports them.
fn assert_schema_is_declared(url: &str) {
    use tickflow_operators::schema::{Dialect, TABLES};
    for table in TABLES {
        let found = pg_rows(
            url,
            &format!(
                "SELECT column_name::text, upper(data_type::text), is_nullable::text FROM \
                 information_schema.columns WHERE table_schema = 'public' AND table_name = '{}' \
                 ORDER BY ordinal_position",
                table.name
            ),
        );
        let declared: Vec<Vec<String>> = table
            .columns
            .iter()
            .map(|c| {
                vec![
                    c.name.to_owned(),
                    c.ty.sql(Dialect::Postgres).to_owned(),
                    if c.nullable { "YES" } else { "NO" }.to_owned(),
                ]
            })
            .collect();
        assert_eq!(found, declared, "{}", table.name);
        let key = pg_rows(
            url,
            &format!(
                "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON \
                 a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indisprimary \
                 AND i.indrelid = 'public.{}'::regclass ORDER BY array_position(i.indkey, a.attnum)",
                table.name
            ),
        );
        let declared_key: Vec<Vec<String>> =
            table.key.iter().map(|k| vec![(*k).to_owned()]).collect();
        assert_eq!(key, declared_key, "{}", table.name);
        for index in table.indexes {
            assert_eq!(
                pg_count(
                    url,
                    &format!(
                        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND \
                         tablename = '{}' AND indexname = '{}'",
                        table.name, index.name
                    )
                ),
                1,
                "{}",
                index.name
            );
        }
    }
}

/// A database that the hand-written migrations of an earlier tickflow brought to version 4
/// is migrated to the declared schema, keeping its rows; one migrated by a newer tickflow is
/// refused with a message that says so.
#[test]
fn an_older_database_is_migrated_and_a_newer_one_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let url = fresh_database("tf_upgrade");
    Client::connect(&url, NoTls)
        .expect("connects")
        .batch_execute(include_str!("fixtures/postgres_v4.sql"))
        .expect("the version 4 schema");
    let source = trades_and(dir, 2_000, b"");
    run(dir, &source, &url, &["-w", "1", "--store-trades"]);
    assert_schema_is_declared(&url);
    // The earlier trade is still there, without accounts; the run archived its own.
    assert_eq!(
        pg_rows(
            &url,
            "SELECT price::text, buyer FROM trades WHERE trade_id = 1 AND time_ms = 1000"
        ),
        vec![vec!["100.5".to_owned(), "NULL".to_owned()]]
    );
    assert_eq!(pg_count(&url, "SELECT count(*) FROM trades"), 2_001);

    let newer = fresh_database("tf_newer");
    Client::connect(&newer, NoTls)
        .expect("connects")
        .batch_execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT \
             NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now()); \
             INSERT INTO schema_migrations (version, description) VALUES (99, 'future')",
        )
        .expect("a newer schema");
    let out = tickflow_unchecked(dir, &["run", "--source", &source, "--sink", &newer]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("schema version 99"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn the_sql_examples_run_and_return_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // With the generator's anomalies (and so accounts), for `alerts_by_kind.sql`.
    tickflow(
        dir,
        &[
            "generate",
            "--out",
            "t.jsonl",
            "--events",
            "200000",
            "--defects",
            "0",
            "--anomalies",
            "0.0002",
        ],
    );
    let file = path(dir, "t.jsonl");
    let mut text = std::fs::read(&file).expect("read");
    text.extend_from_slice(b"not json\n");
    std::fs::write(&file, text).expect("write");
    let source = format!("file:{}", file.display());
    let url = fresh_database("tf_examples");
    // Quality on (the default, explicit here), for `quality_trend.sql`.
    std::fs::write(dir.join("tickflow.toml"), "[quality]\nenabled = true\n").expect("config");
    run(
        dir,
        &source,
        &url,
        &["--windows", "1m,1h", "--config", "tickflow.toml"],
    );
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sql");
    let mut ran = 0;
    for entry in std::fs::read_dir(&examples).expect("scripts/sql") {
        let file = entry.expect("entry").path();
        if file.extension().is_none_or(|e| e != "sql") {
            continue;
        }
        let query = std::fs::read_to_string(&file).expect("read");
        let mut client = Client::connect(&url, NoTls).expect("database reachable");
        let rows = client
            .query(query.trim().trim_end_matches(';'), &[])
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!rows.is_empty(), "{} returns no rows", file.display());
        ran += 1;
    }
    assert!(ran >= 6, "only {ran} examples found");
    // `tickflow sql` queries PostgreSQL too, printing values as PostgreSQL renders them.
    let sql = |query: &str| {
        Command::new(common::BIN)
            .args(["sql", "--db", &url, query])
            .output()
            .expect("runs")
    };
    let out = sql("SELECT count(*) AS n, min(vwap) FROM candles");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let expected = pg_rows(&url, "SELECT count(*)::text, min(vwap)::text FROM candles");
    assert_eq!(
        printed,
        format!("n\tmin\n{}\t{}\n", expected[0][0], expected[0][1])
    );
    let refused = sql("DELETE FROM candles");
    assert!(
        !refused.status.success(),
        "tickflow sql is read-only: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
    // A mistake in the query: the server's message and where, not the query again.
    let wrong = sql("SELECT vwapp FROM candles");
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.starts_with("tickflow: error: column \"vwapp\" does not exist (at character 8)"),
        "{said}"
    );
    assert!(!said.contains("SELECT"), "{said}");
}

#[test]
fn killed_at_random_points_and_restarted_gives_the_clean_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let file = generate(dir, "t.jsonl", 1_500_000);
    let source = format!("file:{}", file.display());
    // 10 s windows: offsets are stored valid for the start of the open windows, so with
    // 1 s,10 s they move on every 10 s of event time (15 times in this file).
    run(
        dir,
        &source,
        "sqlite:ref.db",
        &["-w", "2", "--windows", "1s,10s"],
    );
    let expected = candles(&path(dir, "ref.db"));
    let url = fresh_database("tf_crash");
    let config = common::abuse_rules_off(dir);
    // A new seed each run (set TICKFLOW_TEST_SEED to repeat one).
    let seed: u64 = std::env::var("TICKFLOW_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(tickflow_operators::source::now_ms);
    eprintln!("kill points from seed {seed}");
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let args = [
        "run",
        "--source",
        &source,
        "--sink",
        &url,
        "-w",
        "2",
        "--windows",
        "1s,10s",
        // A short dedup horizon: offsets then move every 10 s of this 150 s market. The
        // abuse rules remember minutes: off, for the same reason.
        "--dedup-horizon",
        "1s",
        "--config",
        config,
        "--store-trades",
        "--quiet",
    ];
    let mut killed_mid_run = 0;
    // Each kill falls at a random point after the run has stored new resume offsets (so
    // that every restart continues from progress of its own), unless the run ends first.
    let last_commit = || -> i64 {
        // The tables appear with the first run.
        let mut client = Client::connect(&url, NoTls).expect("database reachable");
        client
            .query_one(
                "SELECT coalesce(max(updated_ms), 0) FROM source_offsets",
                &[],
            )
            .map_or(0, |row| row.get(0))
    };
    for _ in 0..8 {
        if killed_mid_run == 3 {
            break;
        }
        let before = last_commit();
        let mut child = spawn_tickflow(dir, &args);
        while last_commit() == before && child.try_wait().expect("wait").is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..800)));
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill runs");
        let out = child.wait_with_output().expect("ends");
        if !out.status.success() {
            killed_mid_run += 1;
        }
    }
    assert!(
        killed_mid_run >= 3,
        "only {killed_mid_run} runs were killed before they ended"
    );
    tickflow(dir, &args[..args.len() - 1]);
    // Every trade archived exactly once.
    assert_eq!(
        pg_rows(
            &url,
            "SELECT count(*)::text, count(DISTINCT (symbol, trade_id))::text FROM trades"
        ),
        vec![vec!["1500000".to_owned(), "1500000".to_owned()]],
        "seed {seed}"
    );
    let got = pg_candles(&url);
    assert_eq!(got.len(), expected.len(), "candle count (seed {seed})");
    assert!(
        got == expected,
        "candles differ from the clean run (seed {seed})"
    );
    // The models, which a resumed run rebuilds from the candles stored in PostgreSQL, reach
    // the clean run's versions, fits and prequential errors.
    let columns = "symbol, window_ms, version, updated_ms, horizon, n, features, coefficients, \
                   intercept, rmse, r2, baseline_rmse, predictions, in_sample_rmse, condition, status";
    let text: Vec<String> = columns
        .split(", ")
        .map(|c| format!("{}::text", c.trim()))
        .collect();
    let expected = rows(
        &path(dir, "ref.db"),
        &format!("SELECT {columns} FROM models ORDER BY symbol, version"),
    );
    let got = pg_rows(
        &url,
        &format!(
            "SELECT {} FROM models ORDER BY symbol, version",
            text.join(", ")
        ),
    );
    assert!(expected.len() > 500, "{} models", expected.len());
    assert_eq!(got.len(), expected.len(), "model versions (seed {seed})");
    assert!(
        got == expected,
        "models differ from the clean run (seed {seed})"
    );
}

/// The reported scenario: the generator (`--rate 0 --events N --store-trades`, default windows
/// 1s,1m) killed with -9 at random moments early in each run, before or just after its first
/// commits, restarted with the same command each time, then run to the end. Every kill is
/// checked to have landed mid-run (the process was still running, and the run's final commit,
/// which stores a NULL resume frontier, had not happened).
#[test]
fn generator_killed_early_in_each_run_archives_every_trade_once() {
    const EVENTS: u64 = 600_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let events = EVENTS.to_string();
    let generator = ["--rate", "0", "--events", &events, "-w", "2"];
    let mut reference_args = vec!["run", "--sink", "sqlite:ref.db"];
    reference_args.extend_from_slice(&generator);
    tickflow(dir, &reference_args);
    let expected = candles(&path(dir, "ref.db"));
    let url = fresh_database("tf_crash_generated");
    let seed: u64 = std::env::var("TICKFLOW_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(tickflow_operators::source::now_ms);
    eprintln!("kill points from seed {seed}");
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut args = vec!["run", "--sink", &url, "--store-trades"];
    args.extend_from_slice(&generator);
    args.push("--quiet");
    let finished = || -> bool {
        Client::connect(&url, NoTls)
            .ok()
            .and_then(|mut client| {
                client
                    .query_opt("SELECT frontier_ms FROM resume_frontier", &[])
                    .ok()
            })
            .flatten()
            .is_some_and(|row| row.get::<_, Option<i64>>(0).is_none())
    };
    let mut killed_mid_run = 0;
    for _ in 0..10 {
        if killed_mid_run == 4 {
            break;
        }
        let before = last_commit_seq(&url);
        let mut child = spawn_tickflow(dir, &args);
        // Half the kills at a fixed moment after the start (often before the first commit),
        // half just after this run's first commit.
        if rng.random_bool(0.5) {
            std::thread::sleep(Duration::from_millis(rng.random_range(200..900)));
        } else {
            while last_commit_seq(&url) == before && child.try_wait().expect("wait").is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        }
        let running = child.try_wait().expect("wait").is_none();
        Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .expect("kill runs");
        let out = child.wait_with_output().expect("ends");
        if running && !out.status.success() && !finished() {
            killed_mid_run += 1;
        }
    }
    assert!(
        killed_mid_run >= 4,
        "only {killed_mid_run} runs were killed before they ended (seed {seed})"
    );
    tickflow(dir, &args[..args.len() - 1]);
    assert_eq!(
        pg_rows(
            &url,
            "SELECT count(*)::text, count(DISTINCT (symbol, trade_id))::text FROM trades"
        ),
        vec![vec![events.clone(), events.clone()]],
        "every trade archived exactly once (seed {seed})"
    );
    let got = pg_candles(&url);
    assert_eq!(got.len(), expected.len(), "candle count (seed {seed})");
    assert!(
        got == expected,
        "candles differ from the clean run (seed {seed})"
    );
}

/// A run whose stored progress moves under it (here a second run of the same source, started
/// after the first had committed; the same happens when a killed run's last COMMIT lands after
/// its successor read the progress) stops with a message instead of archiving trades twice.
#[test]
fn progress_moved_under_a_run_stops_it_instead_of_archiving_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let url = fresh_database("tf_moved");
    let args = [
        "run",
        "--sink",
        &url,
        "--store-trades",
        "--rate",
        "0",
        "--events",
        "300000",
        "-w",
        "2",
        "--quiet",
    ];
    let mut first = spawn_tickflow(dir, &args);
    while last_commit_seq(&url) == 0 && first.try_wait().expect("wait").is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = spawn_tickflow(dir, &args).wait_with_output().expect("ends");
    let first = first.wait_with_output().expect("ends");
    let said = String::from_utf8_lossy(&second.stderr);
    let first_said = String::from_utf8_lossy(&first.stderr);
    // One of the two (usually the second) finds the frontier moved and stops.
    assert!(
        !(first.status.success() && second.status.success()),
        "both runs wrote the same source"
    );
    assert!(
        said.contains("changed under this run") || first_said.contains("changed under this run"),
        "{said}{first_said}"
    );
    tickflow(dir, &args[..args.len() - 1]);
    assert_eq!(
        pg_rows(
            &url,
            "SELECT count(*)::text, count(DISTINCT (symbol, trade_id))::text FROM trades"
        ),
        vec![vec!["300000".to_owned(), "300000".to_owned()]],
    );
}

/// A PostgreSQL cluster of its own (`scripts/pg.sh`), removed when dropped: the outage test
/// stops and restarts it without disturbing the tests that share the suite's server.
struct OwnCluster {
    dir: std::path::PathBuf,
}

impl OwnCluster {
    fn pg(&self, command: &str) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(command)
            .arg(&self.dir)
            .output()
            .expect("pg.sh runs");
        assert!(
            out.status.success(),
            "pg.sh {command} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.pg("remove");
    }
}

#[test]
fn a_database_outage_mid_run_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let cluster = OwnCluster {
        dir: dir.join("pg"),
    };
    let url = cluster.pg("start");
    // 300 s of event time, and the sources may run at most 20 s ahead of the committed
    // results: the run cannot finish while the database is down, and its memory is bounded.
    let args = [
        "run",
        "--rate",
        "0",
        "--events",
        "3000000",
        "--sink",
        &url,
        "-w",
        "2",
        "--max-lag",
        "20s",
    ];
    let reference_args = [
        "run",
        "--rate",
        "0",
        "--events",
        "3000000",
        "--sink",
        "sqlite:ref.db",
        "-w",
        "2",
    ];
    tickflow(dir, &reference_args);
    let mut child = spawn_tickflow(dir, &args);
    // The outage falls mid-run: after the first commit of results, before the last.
    let mut before = 0;
    while before == 0 && child.try_wait().expect("wait").is_none() {
        std::thread::sleep(Duration::from_millis(20));
        before = last_commit_seq(&url);
    }
    cluster.pg("stop");
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the run ended before the outage"
    );
    std::thread::sleep(Duration::from_secs(3));
    cluster.pg("start");
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        last_commit_seq(&url) > before,
        "no commit followed the outage"
    );
    // Reported either way: the outage may cut a commit before or during its COMMIT.
    assert!(
        stderr.contains("database unavailable; retrying")
            || stderr.contains("database unavailable while COMMIT was in flight; retrying"),
        "the outage is reported: {stderr}"
    );
    assert_eq!(pg_candles(&url), candles(&path(dir, "ref.db")));
}

#[test]
fn a_password_never_appears_in_output_or_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let url = fresh_database("tf_secret");
    // The throwaway server trusts local connections, so any password is accepted.
    let with_password = url.replacen("postgres@", "postgres:Sw0rdf1sh@", 1);
    let ok = Command::new(common::BIN)
        .args([
            "run",
            "--rate",
            "0",
            "--events",
            "20000",
            "--sink",
            &with_password,
        ])
        .current_dir(dir)
        .output()
        .expect("runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let unreachable = "postgres://postgres:Sw0rdf1sh@127.0.0.1:1/nothing";
    // A database that is not there is awaited: the line saying so names it without the
    // password.
    let waiting = stderr_until(
        dir,
        &["run", "--rate", "0", "--sink", unreachable, "--quiet"],
        "waiting for the database",
    );
    assert!(
        waiting.contains("postgres:***@127.0.0.1:1/nothing"),
        "{waiting}"
    );
    let missing = with_password.replace("/tf_secret", "/tf_secret_missing");
    let failed = tickflow_unchecked(dir, &["run", "--rate", "0", "--sink", &missing]);
    assert!(!failed.status.success());
    let bad_spec = tickflow_unchecked(dir, &["run", "--sink", "postgre://u:Sw0rdf1sh@h/db"]);
    let sql = Command::new(common::BIN)
        .args(["sql", "--db", unreachable, "SELECT 1"])
        .output()
        .expect("runs");
    assert!(!sql.status.success());
    let mut said = vec![waiting];
    for out in [&ok, &failed, &bad_spec, &sql] {
        said.push(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for all in &said {
        assert!(!all.contains("Sw0rdf1sh"), "password leaked: {all}");
    }
    let failed = String::from_utf8_lossy(&failed.stderr);
    assert!(failed.contains("postgres:***@"), "{failed}");
}

/// Starts `tickflow ARGS` in `dir`, waits (at most 60 s) until a line of its stderr contains
/// `needle`, checks that it is still running, kills it and returns its stderr.
fn stderr_until(dir: &Path, args: &[&str], needle: &str) -> String {
    use std::io::BufRead;
    let mut child = spawn_tickflow(dir, args);
    let stderr = child.stderr.take().expect("stderr piped");
    let (send, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut said = String::new();
    while !said.contains(needle) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                said.push_str(&line);
                said.push('\n');
            }
            Err(_) => break,
        }
    }
    let running = child.try_wait().expect("wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    said.extend(lines.try_iter().map(|line| line + "\n"));
    assert!(said.contains(needle), "no {needle:?} in: {said}");
    assert!(running, "tickflow ended instead of waiting: {said}");
    said
}

#[test]
fn a_database_down_at_start_is_awaited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let cluster = OwnCluster {
        dir: dir.join("pg"),
    };
    let url = cluster.pg("start");
    cluster.pg("stop");
    let events = ["--rate", "0", "--events", "200000", "-w", "2"];
    let mut reference = vec!["run", "--sink", "sqlite:ref.db"];
    reference.extend(events);
    tickflow(dir, &reference);
    let mut args = vec!["run", "--sink", &url];
    args.extend(events);
    let mut child = spawn_tickflow(dir, &args);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "tickflow gave up on a database that is not up yet"
    );
    cluster.pg("start");
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "tickflow: waiting for the database {url} (connection refused); retrying"
        )),
        "the wait is reported: {stderr}"
    );
    assert_eq!(pg_candles(&url), candles(&path(dir, "ref.db")));
}

#[test]
fn connection_errors_keep_their_cause_and_fail_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let sql = |db: &str| {
        let out = Command::new(common::BIN)
            .args(["sql", "--db", db, "SELECT 1"])
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{db}: succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let refused = sql(&format!(
        "postgres://postgres@127.0.0.1:{}/x",
        common::free_port()
    ));
    assert!(refused.contains("Connection refused"), "{refused}");
    assert_eq!(
        refused.matches("error connecting to server").count(),
        1,
        "{refused}"
    );
    // Wrong database or user: no use waiting, the run fails at once and says why.
    let base = server()
        .rsplit_once('/')
        .expect("URL with a database")
        .0
        .to_owned();
    let missing = format!("{base}/tf_there_is_no_such_database");
    let nobody = missing.replacen("postgres@", "nobody@", 1);
    for (url, why) in [
        (
            &missing,
            "database \"tf_there_is_no_such_database\" does not exist",
        ),
        (&nobody, "role \"nobody\" does not exist"),
    ] {
        assert!(sql(url).contains(why), "tickflow sql --db {url}: {why}");
        let started = std::time::Instant::now();
        let run = tickflow_unchecked(dir, &["run", "--rate", "0", "--sink", url]);
        let said = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(said.contains(why), "{said}");
        assert!(!said.contains("waiting"), "{said}");
        assert!(started.elapsed() < Duration::from_secs(10), "{said}");
    }
}

/// A TCP proxy between tickflow and a PostgreSQL server that loses one COMMIT's reply: at the
/// `cut_at`-th COMMIT the client sends (counted over all connections, from 1) it closes both
/// sides, either after letting the server apply it ([`Cut::Applied`]) or without forwarding
/// it ([`Cut::NotSent`]). The client cannot tell which.
struct CommitCutter {
    /// The server's URL, pointing at the proxy.
    url: String,
    /// COMMITs forwarded so far.
    commits: Arc<AtomicUsize>,
    /// Whether the cut has happened.
    cut: Arc<AtomicBool>,
}

/// `COMMIT` as the client sends it (`Transaction::commit` is a simple query): message type
/// 'Q', length 11 (itself and the string), "COMMIT" and its NUL.
const COMMIT_MESSAGE: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

/// What happens to the COMMIT that is cut.
#[derive(Clone, Copy)]
enum Cut {
    /// The server gets it and applies it; its reply is lost.
    Applied,
    /// The server never gets it and rolls the transaction back.
    NotSent,
}

impl CommitCutter {
    fn start(upstream_url: &str, cut_at: usize, how: Cut) -> CommitCutter {
        let (user, rest) = upstream_url.split_once('@').expect("URL with user@");
        let (upstream, database) = rest.split_once('/').expect("URL with a database");
        let upstream = upstream.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listens");
        let port = listener.local_addr().expect("proxy address").port();
        let commits = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let (counted, done) = (Arc::clone(&commits), Arc::clone(&cut));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let server = TcpStream::connect(&upstream).expect("server reachable");
                // Set before the chosen COMMIT goes out: its reply must not come back.
                let hold = Arc::new(AtomicBool::new(false));
                let (c, s, h) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                    Arc::clone(&hold),
                );
                std::thread::spawn(move || server_to_client(s, c, &h));
                let (counted, done) = (Arc::clone(&counted), Arc::clone(&done));
                std::thread::spawn(move || {
                    client_to_server(client, server, &hold, &counted, &done, (cut_at, how))
                });
            }
        });
        CommitCutter {
            url: format!("{user}@127.0.0.1:{port}/{database}"),
            commits,
            cut,
        }
    }
}

fn client_to_server(
    mut client: TcpStream,
    mut server: TcpStream,
    hold: &AtomicBool,
    commits: &AtomicUsize,
    cut: &AtomicBool,
    (cut_at, how): (usize, Cut),
) {
    let mut buffer = vec![0; 64 * 1024];
    // The end of the previous read, for a COMMIT split across two reads.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match client.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buffer[..n];
        let mut seen = std::mem::take(&mut carry);
        seen.extend_from_slice(chunk);
        let found = seen
            .windows(COMMIT_MESSAGE.len())
            .filter(|w| *w == COMMIT_MESSAGE)
            .count();
        carry = seen[seen.len().saturating_sub(COMMIT_MESSAGE.len() - 1)..].to_vec();
        let before = commits.fetch_add(found, Ordering::SeqCst);
        let cut_here = before < cut_at && before + found >= cut_at;
        if cut_here {
            // The client waits for the reply after COMMIT, so it ends this read.
            hold.store(true, Ordering::SeqCst);
        }
        if cut_here && matches!(how, Cut::NotSent) {
            // Everything before the COMMIT goes through: it is the last message of the read.
            let at = chunk.len() - COMMIT_MESSAGE.len().min(chunk.len());
            let _ = server.write_all(&chunk[..at]);
            std::thread::sleep(Duration::from_millis(100));
            cut.store(true, Ordering::SeqCst);
            break;
        }
        if server.write_all(chunk).is_err() {
            break;
        }
        if cut_here {
            // Time for the server to apply the commit; then the connection is gone.
            std::thread::sleep(Duration::from_millis(100));
            cut.store(true, Ordering::SeqCst);
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

fn server_to_client(mut server: TcpStream, mut client: TcpStream, hold: &AtomicBool) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match server.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hold.load(Ordering::SeqCst) || client.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

#[test]
fn a_commit_whose_reply_is_lost_is_applied_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let events = ["--rate", "0", "--events", "1000000", "-w", "2"];
    let windows = ["--windows", "1s,10s"];
    let mut reference = vec!["run", "--sink", "sqlite:ref.db"];
    reference.extend(events.iter().chain(&windows));
    tickflow(dir, &reference);
    let url = fresh_database("tf_lost_commit");
    // COMMITs 1 to 4 end the schema migrations of the four connections made at start (the
    // identity check and record, the resume check, then the writer's); the 7th is the third
    // commit of results.
    let proxy = CommitCutter::start(&url, 7, Cut::Applied);
    let mut args = vec!["run", "--store-trades", "--sink", &proxy.url];
    args.extend(events.iter().chain(&windows));
    let out = spawn_tickflow(dir, &args).wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(proxy.cut.load(Ordering::SeqCst), "no COMMIT was cut");
    // Mid-run: commits of results followed the one cut (it stored sequence number 3).
    let last = last_commit_seq(&url);
    assert!(
        last > 3,
        "the cut fell on the last commit ({last} commits, {} COMMITs)",
        proxy.commits.load(Ordering::SeqCst)
    );
    assert_eq!(
        pg_rows(
            &url,
            "SELECT count(*)::text, count(DISTINCT (symbol, trade_id))::text FROM trades"
        ),
        vec![vec!["1000000".to_owned(), "1000000".to_owned()]],
        "every trade archived exactly once"
    );
    assert_eq!(pg_candles(&url), candles(&path(dir, "ref.db")));
    assert!(
        stderr.contains("while COMMIT was in flight")
            && stderr.contains("had landed; not running it again"),
        "the lost reply and its outcome are reported: {stderr}"
    );
}

#[test]
fn a_commit_cut_before_the_server_got_it_is_run_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let events = ["--rate", "0", "--events", "400000", "-w", "2"];
    let windows = ["--windows", "1s,10s"];
    let mut reference = vec!["run", "--sink", "sqlite:ref.db"];
    reference.extend(events.iter().chain(&windows));
    tickflow(dir, &reference);
    let url = fresh_database("tf_unsent_commit");
    // COMMITs 1 to 4 end the migrations at start; the 6th is the second commit of results.
    let proxy = CommitCutter::start(&url, 6, Cut::NotSent);
    let mut args = vec!["run", "--store-trades", "--sink", &proxy.url];
    args.extend(events.iter().chain(&windows));
    let out = spawn_tickflow(dir, &args).wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(proxy.cut.load(Ordering::SeqCst), "no COMMIT was cut");
    let last = last_commit_seq(&url);
    assert!(last > 2, "the cut fell on the last commit ({last} commits)");
    assert_eq!(
        pg_rows(
            &url,
            "SELECT count(*)::text, count(DISTINCT (symbol, trade_id))::text FROM trades"
        ),
        vec![vec!["400000".to_owned(), "400000".to_owned()]],
        "every trade archived exactly once"
    );
    assert_eq!(pg_candles(&url), candles(&path(dir, "ref.db")));
    assert!(
        stderr.contains("had not landed; running it again"),
        "the outcome is reported: {stderr}"
    );
}
