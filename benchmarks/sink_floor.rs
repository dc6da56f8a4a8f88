//! The sink floor: how fast tickflow's SQLite writer alone stores reject rows.
//!
//! Reads FILE (the flood of benchmarks/hardening.sh: one malformed line per reject), makes
//! one `malformed_json` reject row per line, and hands them to the same writer the engine
//! uses (`SqliteWriter`, with its pragmas, indexes and checkpoint thread) in commits of
//! BATCH rows (default 20000), one thread, nothing else: no parsing, no timely, no
//! back-pressure. Prints rows, seconds and lines/s: the ceiling the flood through the whole
//! engine is compared with. DB is created fresh (`:memory:` measures without the disk).
//!
//!     cargo run --release -p tickflow-benchmarks --bin sink-floor -- FILE DB [BATCH]

use std::io::BufRead;
use std::time::Instant;

use tickflow_operators::schema::Row;
use tickflow_operators::sink::{Commit, Writer};
use tickflow_operators::source::RejectRow;
use tickflow_operators::sqlite::SqliteWriter;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sink-floor FILE DB [BATCH]";
    let path = args.next().ok_or(usage)?;
    let db = args.next().ok_or(usage)?;
    let batch: usize = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("BATCH {n:?}: {e}"))?,
        None => 20_000,
    };
    let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    if db != ":memory:" {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{db}{suffix}"));
        }
    }
    let mut writer = SqliteWriter::open(&db)?;
    let source = format!("file:{path}");
    let started = Instant::now();
    let mut rows = Vec::with_capacity(batch);
    let mut count = 0u64;
    let mut offset = 0u64;
    let mut commit = |rows: &mut Vec<Row>| -> Result<(), String> {
        writer.write(&Commit {
            source: source.clone(),
            rows: std::mem::take(rows),
            ..Commit::default()
        })
    };
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| format!("{path}: {e}"))?;
        if line.is_empty() {
            continue;
        }
        let len = line.len() as u64;
        rows.push(Row::from(RejectRow {
            source: source.clone(),
            partition: 0,
            offset,
            received_ms: 1_764_633_600_000,
            reason: "malformed_json".to_owned(),
            detail: format!("line {}: EOF while parsing an object", count + 1),
            raw: line,
            symbol: None,
            trade: None,
            id: None,
        }));
        offset += len + 1;
        count += 1;
        if rows.len() == batch {
            commit(&mut rows)?;
        }
    }
    commit(&mut rows)?;
    drop(writer);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "sink floor: {count} rejects into sqlite:{db} in {seconds:.2}s, {:.0} lines/s",
        count as f64 / seconds
    );
    Ok(())
}
