//! `tickflow sql` on a SQLite file written by a real run: results as text, and a mistake in
//! the query reported in SQLite's words alone. (PostgreSQL: tests/postgres.rs.)

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::tickflow;

fn sql(dir: &Path, query: &str) -> Output {
    Command::new(common::BIN)
        .args(["sql", "--db", "r.db", query])
        .current_dir(dir)
        .output()
        .expect("tickflow sql runs")
}

/// A failed `tickflow sql`'s whole stderr.
fn error(dir: &Path, query: &str) -> String {
    let out = sql(dir, query);
    assert!(!out.status.success(), "{query:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_mistake_in_the_query_is_said_once_without_the_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    tickflow(
        dir,
        &[
            "run",
            "--rate",
            "0",
            "--events",
            "20000",
            "--sink",
            "sqlite:r.db",
        ],
    );
    let ok = sql(
        dir,
        "SELECT count(*) AS n FROM candles WHERE window_ms = 60000",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).starts_with("n\n"),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    for (query, said) in [
        ("SELECT * FROM nope", "no such table: nope"),
        ("SELECT * FROMM candles", "near \"FROMM\": syntax error"),
        ("SELECT vwapp FROM candles", "no such column: vwapp"),
        // The file is opened read-only.
        (
            "DELETE FROM candles",
            "attempt to write a readonly database",
        ),
        ("   ", "the query is empty"),
    ] {
        assert_eq!(error(dir, query), format!("tickflow: error: {said}\n"));
    }
    let missing = Command::new(common::BIN)
        .args(["sql", "--db", "missing.db", "SELECT 1"])
        .current_dir(dir)
        .output()
        .expect("tickflow sql runs");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("missing.db: no such database"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
