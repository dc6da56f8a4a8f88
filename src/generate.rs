//! `tickflow generate`: the generated market as a Binance JSON-lines file.

use std::fs::File;
use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use tickflow_operators::generator::{merged_with_arrival, write_json_line, GeneratorConfig};

use crate::cli::GenerateArgs;
use crate::run::parse_symbols;

pub fn generate(args: GenerateArgs) -> Result<()> {
    let GenerateArgs {
        out,
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
        ..defaults
    };
    config.validate().context("generator settings")?;
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
    for (arrival, trade) in merged_with_arrival(&config) {
        line.clear();
        write_json_line(&mut line, arrival, &trade);
        sink.write_all(&line)
            .with_context(|| format!("writing {out}"))?;
        written += 1;
        if !quiet && written.is_multiple_of(65_536) && last_report.elapsed().as_secs() >= 2 {
            last_report = Instant::now();
            eprintln!("generate: {written}/{events} trades written");
        }
    }
    sink.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|mut inner| inner.flush().map(|()| inner))
        .with_context(|| format!("writing {out}"))?;
    if !quiet {
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "generate: {written} trades written to {out} in {seconds:.1}s ({:.0}/s)",
            written as f64 / seconds.max(1e-9)
        );
    }
    Ok(())
}
