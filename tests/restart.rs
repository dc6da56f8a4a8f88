//! Restarts that must not mix two runs: the input replaced, or a setting that determines the
//! results changed, between a `kill -9` and the same command again. Each is refused with a
//! message naming what changed; `--fresh` then gives exactly the new run's tables.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Starts `tickflow ARGS`, kills it with -9 once it has stored progress, and checks that the
/// kill landed mid-run (it had not finished).
fn kill_mid_run(dir: &std::path::Path, args: &[&str], db: &std::path::Path) {
    let stored = || stored_offsets(db);
    let mut child = spawn_tickflow(dir, args);
    while stored() == 0 {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill runs");
    let status = child.wait().expect("ends");
    assert!(!status.success(), "killed mid-run, not finished");
}

#[test]
fn a_replaced_input_or_changed_windows_refuse_to_resume_and_fresh_starts_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let first = generate(dir, "first.jsonl", 1_000_000);
    let config = abuse_rules_off(dir);
    let file = path(dir, "t.jsonl");
    std::fs::copy(&first, &file).expect("copy");
    let db = path(dir, "r.db");
    let args = [
        "run",
        "--source",
        "file:t.jsonl",
        "--sink",
        "sqlite:r.db",
        "-w",
        "2",
        "--windows",
        "1s,10s",
        // Offsets then move every 10 s of this 100 s market (see end_to_end.rs).
        "--dedup-horizon",
        "1s",
        "--config",
        config,
    ];
    kill_mid_run(dir, &args, &db);

    // The same path now holds another market.
    let other = path(dir, "other.jsonl");
    tickflow(
        dir,
        &[
            "generate",
            "--out",
            "other.jsonl",
            "--events",
            "300000",
            "--seed",
            "7",
            "--defects",
            "0",
            "--anomalies",
            "0",
        ],
    );
    std::fs::copy(&other, &file).expect("replace");
    let refused = tickflow_unchecked(dir, &args);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("file.size: "), "{said}");
    assert!(said.contains("--fresh"), "{said}");

    // The windows changed (with the original file back).
    std::fs::copy(&first, &file).expect("restore");
    let mut changed = args.to_vec();
    changed[8] = "1s,5m";
    let refused = tickflow_unchecked(dir, &changed);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("windows: 1s,10s → 1s,5m"), "{said}");

    // --fresh with the new windows: exactly an uninterrupted run's tables.
    std::fs::copy(&other, &file).expect("replace again");
    let mut fresh = changed.clone();
    fresh.push("--fresh");
    tickflow(dir, &fresh);
    let mut clean = changed.clone();
    clean[4] = "sqlite:clean.db";
    tickflow(dir, &clean);
    assert_eq!(candles(&db), candles(&path(dir, "clean.db")));
    // And the unchanged command then resumes (finds nothing left to do).
    let again = tickflow(dir, &changed);
    assert!(String::from_utf8_lossy(&again.stdout).contains(" 0 events read"));
    assert_eq!(candles(&db), candles(&path(dir, "clean.db")));
}

#[test]
fn fresh_refuses_to_discard_results_that_other_sources_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    generate(dir, "a.jsonl", 20_000);
    generate(dir, "b.jsonl", 20_000);
    run(dir, "file:a.jsonl", "sqlite:s.db", &[]);
    run(dir, "file:b.jsonl", "sqlite:s.db", &[]);
    let before = candles(&path(dir, "s.db"));
    let out = tickflow_unchecked(
        dir,
        &[
            "run",
            "--source",
            "file:a.jsonl",
            "--sink",
            "sqlite:s.db",
            "--fresh",
        ],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("file:b.jsonl"), "{said}");
    assert_eq!(candles(&path(dir, "s.db")), before, "nothing was discarded");
}
