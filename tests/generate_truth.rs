//! `tickflow generate` writes a truth file that says what the engine then rejects.

mod common;

use std::collections::BTreeMap;

use common::*;
use tickflow_operators::generator::read_truth;

#[test]
fn the_engine_rejects_what_the_truth_file_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // Defaults of generate: defects 0.001, anomalies 0.0002; 300 s of event time.
    tickflow(
        dir,
        &[
            "generate", "--out", "g.jsonl", "--events", "60000", "--rate", "200",
        ],
    );
    let truth = read_truth(path(dir, "g.truth.jsonl")).expect("the truth file next to --out");
    let mut told: BTreeMap<String, u64> = BTreeMap::new();
    for injection in &truth {
        *told.entry(injection.kind.clone()).or_default() += injection.count;
    }
    for kind in [
        "malformed_json",
        "missing_field",
        "non_positive",
        "bad_number",
    ] {
        assert!(told.get(kind).is_some_and(|&n| n > 0), "{kind}: {told:?}");
    }
    assert!(
        told.keys().any(|k| k == "wash_trade" || k == "bad_tick"),
        "{told:?}"
    );

    tickflow(
        dir,
        &["run", "--source", "file:g.jsonl", "--sink", "sqlite:r.db"],
    );
    let rejected: BTreeMap<String, u64> = rows(
        &path(dir, "r.db"),
        "SELECT reason, count(*) FROM rejects GROUP BY reason",
    )
    .into_iter()
    .map(|row| (row[0].clone(), row[1].parse().expect("count")))
    .collect();
    let count = |map: &BTreeMap<String, u64>, key: &str| map.get(key).copied().unwrap_or(0);
    for kind in [
        "malformed_json",
        "missing_field",
        "non_positive",
        "bad_number",
        "time_outlier",
    ] {
        assert_eq!(count(&rejected, kind), count(&told, kind), "{kind}");
    }
    // Late trades are late; so are the duplicates that come more than the lateness after
    // their original (until the quality dataflow tells them apart).
    let late = count(&rejected, "late");
    assert!(late >= count(&told, "late"), "{rejected:?} {told:?}");
    assert!(late <= count(&told, "late") + count(&told, "duplicate"));
    assert_eq!(
        rejected.keys().filter(|k| !told.contains_key(*k)).count(),
        0,
        "{rejected:?}"
    );

    // Off: the clean market, no truth file.
    tickflow(
        dir,
        &[
            "generate",
            "--out",
            "c.jsonl",
            "--events",
            "1000",
            "--defects",
            "0",
            "--anomalies",
            "0",
        ],
    );
    assert!(!path(dir, "c.truth.jsonl").exists());
}
