//! The parse floor: how fast one thread can merely read and parse a trade file.
//!
//! Reads the file in 16 MiB blocks (from the page cache, after a warm-up read), splits lines
//! and calls `Format::parse_line` on each, one thread, nothing else: no timely, no windows,
//! no sink. Prints lines, trades, seconds and lines/s; it is the ceiling the whole pipeline
//! is compared with in benchmarks/README.md.
//!
//!     cargo run --release -p tickflow-benchmarks --bin parse-floor -- FILE

use std::fs::File;
use std::io::Read;
use std::time::Instant;

use tickflow_operators::parse::{detect_format, Record};

const BLOCK: usize = 16 << 20;

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: parse-floor FILE (JSON lines or CSV)")?;
    let mut file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut buffer = vec![0u8; BLOCK];
    let first_len = file.read(&mut buffer).map_err(|e| format!("{path}: {e}"))?;
    let first = buffer[..first_len]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or(&[]);
    let format = detect_format(&path, first, None)?;
    let mut file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;

    let started = Instant::now();
    let (mut lines, mut trades, mut checksum, mut bytes) = (0u64, 0u64, 0i64, 0usize);
    let mut carry = 0usize; // bytes of an unfinished line at the start of `buffer`
    loop {
        let read = file
            .read(&mut buffer[carry..])
            .map_err(|e| format!("{path}: {e}"))?;
        bytes += read;
        let filled = carry + read;
        let complete = if read == 0 {
            filled
        } else {
            match memchr_last(&buffer[..filled]) {
                Some(i) => i + 1,
                None if filled == buffer.len() => return Err("a line longer than 16 MiB".into()),
                None => 0,
            }
        };
        for line in buffer[..complete].split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            lines += 1;
            if let Ok(Record::Trade(trade)) = format.parse_line(line) {
                trades += 1;
                checksum = checksum.wrapping_add(trade.price.0 ^ trade.qty.0);
            }
        }
        if read == 0 {
            break;
        }
        buffer.copy_within(complete..filled, 0);
        carry = filled - complete;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "parse-floor: {lines} lines, {trades} trades in {seconds:.3}s: {:.0} lines/s, {:.0} MB/s (checksum {checksum})",
        lines as f64 / seconds,
        bytes as f64 / seconds / 1e6,
    );
    Ok(())
}

fn memchr_last(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|&b| b == b'\n')
}
