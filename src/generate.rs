//! `tickflow generate`: the generated market as a Binance JSON-lines file, and the ground
//! truth of what was injected into it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use tickflow_operators::generator::{
    merged_with_arrival, write_json_line, Generated, GeneratorConfig,
};

use crate::cli::GenerateArgs;
use crate::run::parse_symbols;

pub fn generate(args: GenerateArgs) -> Result<()> {
    let GenerateArgs {
        out,
        truth,
        defects,
        anomalies,
        late_ms,
        events,
        rate,
        seed,
        symbols,
        accounts,
        start_ms,
        quiet,
    } = args;
    let defaults = GeneratorConfig::default();
    let config = GeneratorConfig {
        seed,
        symbols: symbols
            .as_deref()
            .map_or(Ok(defaults.symbols.clone()), parse_symbols)?,
        events: Some(events),
        rate: rate.unwrap_or(0.0),
        start_ms: start_ms.unwrap_or(defaults.start_ms),
        accounts,
        defects,
        anomalies,
        late_ms,
        ..defaults
    };
    config.validate().context("generator settings")?;
    let injecting = defects > 0.0 || anomalies > 0.0;
    let truth = truth.or_else(|| (injecting && out != "-").then(|| truth_path(&out)));
    let sink: Box<dyn Write> = if out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        let file = File::create(&out).with_context(|| format!("creating {out}"))?;
        if out.ends_with(".gz") {
            Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::fast(),
            ))
        } else {
            Box::new(file)
        }
    };
    let mut sink = std::io::BufWriter::with_capacity(1 << 20, sink);
    let started = Instant::now();
    let mut line = Vec::with_capacity(256);
    let mut written = 0u64;
    let mut last_report = Instant::now();
    let mut merged = merged_with_arrival(&config);
    if truth.is_some() {
        merged.record_truth();
    }
    while let Some((arrival, record)) = merged.next_record() {
        line.clear();
        match record {
            Generated::Trade(trade) => write_json_line(&mut line, arrival, &trade),
            Generated::Line(bytes) => {
                line.extend_from_slice(&bytes);
                line.push(b'\n');
            }
        }
        sink.write_all(&line)
            .with_context(|| format!("writing {out}"))?;
        written += 1;
        if !quiet && written.is_multiple_of(65_536) && last_report.elapsed().as_secs() >= 2 {
            last_report = Instant::now();
            eprintln!("generate: {written} records written ({events} trades asked for)");
        }
    }
    sink.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|mut inner| inner.flush().map(|()| inner))
        .with_context(|| format!("writing {out}"))?;
    let mut kinds: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    if let Some(path) = &truth {
        let injections = merged.take_truth();
        let file = File::create(path).with_context(|| format!("creating {path}"))?;
        let mut file = std::io::BufWriter::new(file);
        for injection in &injections {
            injection
                .write_line(&mut file)
                .with_context(|| format!("writing {path}"))?;
            let class = format!("{:?}", injection.class).to_lowercase();
            let entry = kinds.entry((class, injection.kind.clone())).or_default();
            entry.0 += 1;
            entry.1 += injection.count;
        }
        file.flush().with_context(|| format!("writing {path}"))?;
    }
    if !quiet {
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "generate: {written} records written to {out} in {seconds:.1}s ({:.0}/s)",
            written as f64 / seconds.max(1e-9)
        );
        if let Some(path) = &truth {
            let total: u64 = kinds.values().map(|(n, _)| n).sum();
            eprintln!("generate: {total} injections written to {path}:");
            for ((class, kind), (n, count)) in &kinds {
                eprintln!("  {class:<8} {kind:<15} {n:>7} injections, count {count}");
            }
        }
    }
    Ok(())
}

/// `DIR/NAME.truth.jsonl` for `--out DIR/NAME.jsonl[.gz]` (any extension).
fn truth_path(out: &str) -> String {
    let path = std::path::Path::new(out);
    let mut stem = path
        .file_name()
        .map_or_else(|| "trades".to_owned(), |n| n.to_string_lossy().into_owned());
    for suffix in [".gz", ".jsonl", ".json"] {
        if let Some(s) = stem.strip_suffix(suffix) {
            stem = s.to_owned();
        }
    }
    path.with_file_name(format!("{stem}.truth.jsonl"))
        .to_string_lossy()
        .into_owned()
}
