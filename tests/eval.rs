//! `tickflow eval` end to end: the real binary on a generated market, its truth file and the
//! database a run wrote; alerts written into that database by the test, whose recall and
//! precision it works out by hand.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{path, tickflow, BIN};
use tickflow_operators::generator::{read_truth, Class};

/// `tickflow eval ARGS` in `dir` (no `--quiet`: eval has no progress to silence).
fn eval(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env("TICKFLOW_SERVE", "off")
        .arg("eval")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("tickflow runs")
}

/// A number of eval's JSON is `expected` (serde_json's parser may be one ulp off).
#[track_caller]
fn assert_near(value: &serde_json::Value, expected: f64) {
    let v = value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is no number"));
    assert!((v - expected).abs() < 1e-12, "{v} != {expected}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn quality_counts_match_the_truth_until_a_row_is_tampered_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    tickflow(
        dir,
        &[
            "generate",
            "--events",
            "200000",
            "--defects",
            "0.002",
            "--anomalies",
            "0",
            "--out",
            "f.jsonl",
            "--truth",
            "t.jsonl",
        ],
    );
    tickflow(
        dir,
        &["run", "--source", "file:f.jsonl", "--sink", "sqlite:r.db"],
    );
    let args = ["--truth", "t.jsonl", "--results", "sqlite:r.db"];
    let out = eval(dir, &args);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("every quality count matches the injected count"),
        "{stdout}"
    );
    // Something of every column was injected, so "match" is not 0 = 0.
    let truth = read_truth(path(dir, "t.jsonl")).expect("truth");
    for column in [
        "malformed",
        "invalid",
        "duplicate",
        "conflicting",
        "late",
        "gap",
    ] {
        let injected: u64 = truth
            .iter()
            .filter(|i| match column {
                "conflicting" => i.params.get("conflicting") == Some(&serde_json::json!(true)),
                _ => i.quality.as_deref() == Some(column),
            })
            .map(|i| i.count)
            .sum();
        assert!(injected > 0, "{column}");
        let all = stdout
            .lines()
            .find(|l| l.starts_with("(all)"))
            .expect("(all) row");
        assert!(all.contains(&format!(" {injected}/{injected} ")), "{all}");
    }

    let connection = rusqlite::Connection::open(path(dir, "r.db")).expect("db");
    connection
        .execute(
            "UPDATE quality SET gap = gap + 1 WHERE rowid = \
             (SELECT min(rowid) FROM quality WHERE symbol = 'ETHUSDT')",
            [],
        )
        .expect("tamper");
    drop(connection);
    let out = eval(dir, &args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("DIFFERS: gap"), "{stdout}");
    assert!(stderr.contains("quality.gap: counted"), "{stderr}");
    assert!(stderr.contains("quality.gap of ETHUSDT"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_slice(&eval(dir, &[&args[..], &["--json"]].concat()).stdout)
            .expect("--json prints JSON");
    assert_eq!(json["quality"]["match"], false);
    assert_eq!(json["quality"]["columns"]["gap"]["match"], false);
    assert_eq!(json["quality"]["columns"]["late"]["match"], true);
    assert_eq!(json["pass"], false);
}

#[test]
fn recall_and_precision_of_alerts_written_by_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // 400 s of event time: every anomaly kind is injected (the market-shaping ones after
    // the generator's 4-minute warm-up).
    tickflow(
        dir,
        &[
            "generate",
            "--events",
            "200000",
            "--rate",
            "500",
            "--defects",
            "0",
            "--anomalies",
            "0.001",
            "--out",
            "a.jsonl",
            "--truth",
            "t.jsonl",
        ],
    );
    tickflow(
        dir,
        &["run", "--source", "file:a.jsonl", "--sink", "sqlite:r.db"],
    );
    let truth = read_truth(path(dir, "t.jsonl")).expect("truth");
    let anomalies: Vec<_> = truth.iter().filter(|i| i.class == Class::Anomaly).collect();
    let count = |kind: &str| anomalies.iter().filter(|i| i.kind == kind).count();
    let (bad_ticks, washes) = (count("bad_tick"), count("wash_trade"));
    assert!(bad_ticks >= 2 && washes >= 1, "{anomalies:?}");
    let kinds: std::collections::BTreeSet<&str> =
        anomalies.iter().map(|i| i.kind.as_str()).collect();
    assert!(kinds.contains("benford") || kinds.contains("round_sizes"));
    let last_bad_tick = anomalies
        .iter()
        .rposition(|i| i.kind == "bad_tick")
        .expect("a bad tick");

    // Whatever the rules wrote, these alerts are the ones evaluated: one per injection
    // (detected 2.5 s after its last trade) but the last bad tick, and a wash trade with the
    // right trade but the wrong account.
    let connection = rusqlite::Connection::open(path(dir, "r.db")).expect("db");
    connection.execute("DELETE FROM alerts", []).expect("clear");
    let insert = |id: String,
                  kind: &str,
                  symbol: &str,
                  account: Option<&str>,
                  event: u64,
                  details: String| {
        connection
            .execute(
                "INSERT INTO alerts (alert_id, kind, symbol, account, event_ms, detected_ms, \
                 severity, score, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'high', '2.0', ?7)",
                rusqlite::params![
                    id,
                    kind,
                    symbol,
                    account,
                    event as i64,
                    event as i64 + 2_500,
                    details
                ],
            )
            .expect("insert");
    };
    for (n, injection) in anomalies.iter().enumerate() {
        if n == last_bad_tick {
            continue;
        }
        let details = match injection.kind.as_str() {
            "benford" | "round_sizes" => {
                let start = injection.first_ms - injection.first_ms % 60_000;
                format!(r#"{{"start_ms":{start},"window_ms":60000,"trade_ids":[]}}"#)
            }
            _ => format!(
                r#"{{"threshold":3,"trade_ids":[{}]}}"#,
                injection.trade_ids[0]
            ),
        };
        insert(
            format!("a{n}"),
            &injection.kind,
            injection.symbol.as_deref().expect("a symbol"),
            injection.accounts.first().map(String::as_str),
            injection.last_ms,
            details,
        );
    }
    let wash = anomalies
        .iter()
        .find(|i| i.kind == "wash_trade")
        .expect("a wash trade");
    insert(
        "false".to_owned(),
        "wash_trade",
        wash.symbol.as_deref().expect("a symbol"),
        Some("acct-nobody"),
        wash.last_ms,
        format!(r#"{{"trade_ids":[{}]}}"#, wash.trade_ids[0]),
    );
    drop(connection);

    let args = ["--truth", "t.jsonl", "--results", "sqlite:r.db"];
    let out = eval(dir, &[&args[..], &["--json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let kind = |name: &str| {
        json["kinds"]
            .as_array()
            .expect("kinds")
            .iter()
            .find(|k| k["kind"] == name)
            .unwrap_or_else(|| panic!("{name} in {json}"))
            .clone()
    };
    let recall = (bad_ticks - 1) as f64 / bad_ticks as f64;
    let precision = washes as f64 / (washes + 1) as f64;
    let bad_tick = kind("bad_tick");
    assert_eq!(bad_tick["injected"], bad_ticks);
    assert_eq!(bad_tick["found"], bad_ticks - 1);
    assert_near(&bad_tick["recall"], recall);
    assert_near(&bad_tick["precision"], 1.0);
    let wash_trade = kind("wash_trade");
    assert_eq!(wash_trade["alerts"], washes + 1);
    assert_eq!(wash_trade["matched"], washes);
    assert_near(&wash_trade["recall"], 1.0);
    assert_near(&wash_trade["precision"], precision);
    for name in &kinds {
        if *name != "bad_tick" {
            assert_near(&kind(name)["recall"], 1.0);
        }
    }
    let valid = json["valid_trades"].as_f64().expect("valid trades");
    assert_eq!(json["all"]["false_positives"], 1);
    assert_near(&json["all"]["false_positives_per_trade"], 1.0 / valid);
    assert_eq!(json["all"]["latency_ms"]["p50"], 2_500);
    assert_eq!(json["all"]["latency_ms"]["p99"], 2_500);
    assert_eq!(json["all"]["after_watermark_ms"]["max"], 500);
    assert_near(
        &json["all"]["recall"],
        (anomalies.len() - 1) as f64 / anomalies.len() as f64,
    );

    // The table says the same.
    let out = eval(dir, &args);
    let stdout = text(&out.stdout);
    let row = |name: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} row in {stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        row("bad_tick")[1..7],
        [
            bad_ticks.to_string(),
            (bad_ticks - 1).to_string(),
            (bad_ticks - 1).to_string(),
            (bad_ticks - 1).to_string(),
            format!("{recall:.4}"),
            "1.0000".to_owned(),
        ]
    );
    assert_eq!(row("wash_trade")[6], format!("{precision:.4}"));
    assert_eq!(row("wash_trade")[9..13], ["2500", "2500", "500", "500"]);
    assert!(stdout.contains("PASS"), "{stdout}");

    // Thresholds: just below the hand-computed values passes, above fails naming the kind.
    let code = |extra: &[&str]| {
        let out = eval(dir, &[&args[..], extra].concat());
        (out.status.code(), text(&out.stderr))
    };
    let below = |v: f64| format!("{}", v - 1e-9);
    assert_eq!(code(&["--min-recall", &below(recall)]).0, Some(0));
    assert_eq!(code(&["--min-precision", &below(precision)]).0, Some(0));
    let (status, stderr) = code(&["--min-recall", &format!("{}", recall + 1e-9)]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("bad_tick: recall"), "{stderr}");
    assert!(!stderr.contains("wash_trade"), "{stderr}");
    let (status, stderr) = code(&["--min-precision", &format!("{}", precision + 1e-9)]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("wash_trade: precision"), "{stderr}");
    assert!(!stderr.contains("bad_tick"), "{stderr}");
}

#[test]
fn unreadable_truth_or_results_exit_2_naming_what() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    std::fs::write(
        path(dir, "t.jsonl"),
        r#"{"class":"defect","kind":"gap","quality":"gap","symbol":"BTCUSDT","trade_ids":[5],"count":1,"first_ms":1,"last_ms":1}"#,
    )
    .expect("truth");
    let connection = rusqlite::Connection::open(path(dir, "r.db")).expect("db");
    connection
        .execute_batch(
            "CREATE TABLE quality (symbol TEXT, window_ms INTEGER, start_ms INTEGER, \
             total INTEGER, valid INTEGER, malformed INTEGER, invalid INTEGER, \
             duplicate INTEGER, conflicting INTEGER, late INTEGER, gap INTEGER, score TEXT);",
        )
        .expect("schema");
    let check = |args: &[&str], says: &str| {
        let out = eval(dir, args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    check(
        &["--truth", "missing.jsonl", "--results", "sqlite:r.db"],
        "missing.jsonl",
    );
    check(
        &["--truth", "t.jsonl", "--results", "sqlite:none.db"],
        "none.db: no such database file",
    );
    check(
        &["--truth", "t.jsonl", "--results", "mysql://x"],
        "expected sqlite:PATH or postgres://",
    );
    check(
        &["--truth", "t.jsonl", "--results", "sqlite:r.db"],
        "table quality is empty",
    );
    let connection = rusqlite::Connection::open(path(dir, "r.db")).expect("db");
    connection
        .execute(
            "INSERT INTO quality VALUES ('BTCUSDT', 60000, 0, 10, 9, 0, 0, 0, 0, 0, 1, '0.9')",
            [],
        )
        .expect("row");
    drop(connection);
    check(
        &["--truth", "t.jsonl", "--results", "sqlite:r.db"],
        "there is no table alerts",
    );
    std::fs::write(path(dir, "bad.jsonl"), "{\"class\":\"defect\"}\n").expect("bad truth");
    check(
        &["--truth", "bad.jsonl", "--results", "sqlite:r.db"],
        "bad.jsonl:1: not a truth line",
    );
}
