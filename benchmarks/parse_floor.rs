//! The parse floor: how fast one thread can merely read and parse a trade file.
//!
//! Measures mmap + line splitting + `Format::parse_line` on every line, one thread, nothing
//! else (no timely, no windows, no sink), and prints `lines, trades, seconds, lines/s`.
//! It is the ceiling the whole pipeline is compared with in benchmarks/README.md.
//!
//!     cargo run --release -p tickflow-benchmarks --bin parse-floor -- FILE

use std::time::Instant;

use tickflow_operators::parse::{detect_format, Record};

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: parse-floor FILE (JSON lines or CSV)")?;
    let started = Instant::now();
    let data = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let read_seconds = started.elapsed().as_secs_f64();
    let first = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let format = detect_format(&path, first, None)?;
    let started = Instant::now();
    let (mut lines, mut trades, mut checksum) = (0u64, 0u64, 0i64);
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        lines += 1;
        if let Ok(Record::Trade(trade)) = format.parse_line(line) {
            trades += 1;
            checksum = checksum.wrapping_add(trade.price.0 ^ trade.qty.0);
        }
    }
    let parse_seconds = started.elapsed().as_secs_f64();
    let seconds = read_seconds + parse_seconds;
    println!(
        "parse-floor: {lines} lines, {trades} trades; read+parse {seconds:.3}s = {:.0} lines/s ({:.0} MB/s); parse alone {:.0} lines/s (checksum {checksum})",
        lines as f64 / seconds,
        data.len() as f64 / seconds / 1e6,
        lines as f64 / parse_seconds,
    );
    Ok(())
}
