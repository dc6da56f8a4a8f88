//! The quality table end to end: a generated market with duplicates (next to the original
//! and minutes later), dropped ids, late trades and broken lines injected by this test,
//! whose counts it knows; on 1 and 2 workers, and killed and resumed.

mod common;

use std::process::Command;

use common::{path, rows, spawn_tickflow, stored_offsets, tickflow, ABUSE_RULES_OFF};

/// What was injected.
#[derive(Debug, Default, PartialEq, Eq)]
struct Injected {
    duplicate: u64,
    gap: u64,
    late: u64,
    malformed: u64,
    invalid: u64,
}

/// Copies `from` to `to` with defects at fixed positions, counting them. Lines of the
/// generated file are trades in arrival order; ids are consecutive per symbol.
fn inject(from: &std::path::Path, to: &std::path::Path) -> (Injected, Vec<(String, u64)>) {
    let text = std::fs::read_to_string(from).expect("generated file");
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 10_000);
    let mut injected = Injected::default();
    let mut late = Vec::new();
    // Trades held back to be delivered late: (deliver after line, line).
    let mut held: Vec<(usize, String)> = Vec::new();
    let last = lines.len() - 1_000;
    for (i, line) in lines.iter().enumerate() {
        while let Some(at) = held.iter().position(|(after, _)| *after == i) {
            out.push(held.remove(at).1);
        }
        let k = i % 1_000;
        if (1_000..last).contains(&i) {
            match k {
                // Dropped: an id gap.
                17 => {
                    injected.gap += 1;
                    continue;
                }
                // Held back 6 000 lines (3 s of event time): late, within the horizon.
                101 => {
                    held.push((i + 6_000, line.to_string()));
                    injected.late += 1;
                    late.push(key(line));
                    continue;
                }
                // A copy right after, and one 10 000 lines (5 s) later.
                222 => {
                    out.push(line.to_string());
                    injected.duplicate += 1;
                }
                333 => {
                    held.push((i + 10_000, line.to_string()));
                    injected.duplicate += 1;
                }
                444 => {
                    out.push(line.replace("\"p\":\"", "\"p\":\"-"));
                    injected.invalid += 1;
                    continue;
                }
                // A broken line of its own (no trade lost with it).
                555 => {
                    out.push(line[..16].to_string());
                    injected.malformed += 1;
                }
                _ => {}
            }
        }
        out.push(line.to_string());
    }
    for (_, line) in held {
        out.push(line);
    }
    std::fs::write(to, out.join("\n") + "\n").expect("write");
    (injected, late)
}

/// `(symbol, trade id)` of a trade line.
fn key(line: &str) -> (String, u64) {
    let value: serde_json::Value = serde_json::from_str(line).expect("a trade line");
    (
        value["s"].as_str().expect("symbol").to_owned(),
        value["t"].as_u64().expect("id"),
    )
}

const QUALITY: &str = "SELECT * FROM quality ORDER BY symbol, window_ms, start_ms";

#[test]
fn quality_counts_equal_the_injected_defects_on_any_workers_and_after_kills() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // 2 000 trades/s of event time: 200 s, so that a run stores resume offsets (10 s
    // windows, a 10 s dedup horizon) long before it ends.
    tickflow(
        dir,
        &[
            "generate",
            "--out",
            "clean.jsonl",
            "--events",
            "400000",
            "--rate",
            "2000",
            "--defects",
            "0",
            "--anomalies",
            "0",
        ],
    );
    let clean = path(dir, "clean.jsonl");
    let file = path(dir, "defects.jsonl");
    let (injected, late) = inject(&clean, &file);
    // Quality on (the default, made explicit); the abuse rules, whose history is longer
    // than this market, off (see `ABUSE_RULES_OFF`).
    std::fs::write(
        path(dir, "tickflow.toml"),
        format!("[quality]\nenabled = true\n{ABUSE_RULES_OFF}"),
    )
    .expect("config");
    let source = format!("file:{}", file.display());
    let mut summaries = Vec::new();
    for (db, workers) in [("w1.db", "1"), ("w2.db", "2")] {
        let sink = format!("sqlite:{db}");
        let args = [
            "run",
            "--source",
            &source,
            "--sink",
            &sink,
            "-w",
            workers,
            "--windows",
            "1s,10s",
            "--dedup-horizon",
            "10s",
            "--config",
            "tickflow.toml",
        ];
        let out = tickflow(dir, &[&args[..], &["--store-trades"]].concat());
        summaries.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    // A trade held back lands late unless its partition (a chunk of the file) starts near
    // it: then the partition's clock starts there and it is on time. Which did is in the
    // archive of valid trades.
    let archived: std::collections::BTreeSet<(String, u64)> =
        rows(&path(dir, "w1.db"), "SELECT symbol, trade_id FROM trades")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].parse().expect("id")))
            .collect();
    let on_time = late.iter().filter(|k| archived.contains(k)).count() as u64;
    assert!(
        on_time < injected.late / 10,
        "{on_time} of the held-back trades were on time"
    );
    let sums = rows(
        &path(dir, "w1.db"),
        "SELECT sum(duplicate), sum(gap), sum(late), sum(malformed), sum(invalid), \
         sum(total), sum(valid) FROM quality",
    );
    let sums: Vec<u64> = sums[0]
        .iter()
        .map(|v| v.parse().expect("integer"))
        .collect();
    assert_eq!(
        Injected {
            duplicate: sums[0],
            gap: sums[1],
            late: sums[2] + on_time,
            malformed: sums[3],
            invalid: sums[4],
        },
        injected
    );
    let lines = std::fs::read_to_string(&file)
        .expect("file")
        .lines()
        .count() as u64;
    assert_eq!(sums[5], lines, "every record counted once");
    let candle_trades = rows(
        &path(dir, "w1.db"),
        "SELECT sum(trades) FROM candles WHERE window_ms = 10000",
    );
    assert_eq!(candle_trades[0][0], sums[6].to_string(), "each trade once");
    // The summary line counts as the tables do: copies as duplicates, not as trades or late.
    for summary in &summaries {
        assert!(
            summary.contains(&format!(" {} trades,", sums[6]))
                && summary.contains(&format!("duplicate {}", sums[0]))
                && summary.contains(&format!("late {}", sums[2])),
            "{summary}"
        );
    }
    assert_eq!(
        rows(&path(dir, "w1.db"), QUALITY),
        rows(&path(dir, "w2.db"), QUALITY)
    );

    // Killed twice partway through, then resumed to the end.
    let args = [
        "run",
        "--source",
        &source,
        "--sink",
        "sqlite:killed.db",
        "-w",
        "2",
        "--windows",
        "1s,10s",
        "--dedup-horizon",
        "10s",
        "--config",
        "tickflow.toml",
        "--store-trades",
    ];
    let db = path(dir, "killed.db");
    let stored = || stored_offsets(&db);
    for delay_ms in [30, 120] {
        let before = stored();
        let mut child = spawn_tickflow(dir, &args);
        while stored() == before && child.try_wait().expect("wait").is_none() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .expect("kill runs");
        let out = child.wait_with_output().expect("ends");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("events read"),
            "the kill landed after the end"
        );
    }
    tickflow(dir, &args);
    assert_eq!(rows(&db, QUALITY), rows(&path(dir, "w1.db"), QUALITY));
    let rejects = "SELECT partition, \"offset\", reason FROM rejects ORDER BY 1, 2";
    assert_eq!(rows(&db, rejects), rows(&path(dir, "w1.db"), rejects));
}
