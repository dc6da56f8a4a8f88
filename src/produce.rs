//! `tickflow produce`: generated or replayed trades into a Kafka topic.

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tickflow_operators::generator::{
    merged_with_arrival, write_json_line, Generated, DEFAULT_START_MS,
};
use tickflow_operators::kafka::{KafkaSpec, TradeProducer};
use tickflow_operators::parse::{Format, Record};

use crate::cli::ProduceArgs;
use crate::run::generator_config;

pub fn produce(args: ProduceArgs) -> Result<()> {
    let ProduceArgs {
        to,
        source,
        partitions,
        quiet,
        generator,
    } = args;
    if partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    let spec = KafkaSpec::parse(&to)?;
    let mut producer = TradeProducer::new(spec, partitions)?;
    let started = Instant::now();
    let mut pace = Pace::new(generator.rate.unwrap_or(0.0), quiet);
    match source.as_str() {
        "generate" => {
            let events = Some(generator.events.unwrap_or(1_000_000));
            let config = generator_config(&generator, events, 0.0, DEFAULT_START_MS)?;
            let mut line = Vec::with_capacity(256);
            let mut merged = merged_with_arrival(&config);
            while let Some((symbol, arrival, record)) = merged.next_with_symbol() {
                // A broken line goes out keyed by its stream's symbol, like its trades.
                let payload = match &record {
                    Generated::Trade(trade) => {
                        line.clear();
                        write_json_line(&mut line, arrival, trade);
                        line.pop();
                        &line[..]
                    }
                    Generated::Line(bytes) => &bytes[..],
                };
                producer.send(symbol.as_str().as_bytes(), payload)?;
                pace.tick(&producer);
            }
        }
        spec => {
            let Some(path) = spec.strip_prefix("file:") else {
                bail!("--source {spec:?}: expected generate or file:PATH");
            };
            let reader: Box<dyn BufRead> = if path == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
                if path.ends_with(".gz") {
                    Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
                        file,
                    )))
                } else {
                    Box::new(std::io::BufReader::with_capacity(1 << 20, file))
                }
            };
            // Lines go out unchanged (broken ones too: the engine dead-letters them); the key
            // is the symbol when the line is a trade, so a symbol's trades share a partition.
            let limit = generator.events.unwrap_or(u64::MAX);
            let mut sent = 0u64;
            for line in reader.split(b'\n') {
                if sent >= limit {
                    break;
                }
                let line = line.with_context(|| format!("reading {path}"))?;
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if line.is_empty() {
                    continue;
                }
                let key = match Format::BinanceJson.parse_line(line) {
                    Ok(Record::Trade(trade)) => Some(trade.symbol),
                    _ => None,
                };
                let key = key.as_ref().map_or(&b""[..], |s| s.as_str().as_bytes());
                producer.send(key, line)?;
                sent += 1;
                pace.tick(&producer);
            }
        }
    }
    let report = producer.finish(Duration::from_secs(120))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "tickflow: produced {} messages to {to}, all {} delivered, in {seconds:.2}s ({:.0} messages/s)",
        report.sent,
        report.delivered,
        report.sent as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// Rate limiting (`--rate`, 0 = none) and progress lines.
struct Pace {
    rate: f64,
    quiet: bool,
    started: Instant,
    sent: u64,
    last_report: Instant,
}

impl Pace {
    fn new(rate: f64, quiet: bool) -> Pace {
        Pace {
            rate,
            quiet,
            started: Instant::now(),
            sent: 0,
            last_report: Instant::now(),
        }
    }

    fn tick(&mut self, producer: &TradeProducer) {
        self.sent += 1;
        if self.rate > 0.0 {
            let due = Duration::from_secs_f64(self.sent as f64 / self.rate);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if !self.quiet
            && self.sent.is_multiple_of(1024)
            && self.last_report.elapsed().as_secs() >= 2
        {
            self.last_report = Instant::now();
            eprintln!(
                "produce: {} sent, {} delivered ({:.0}/s)",
                self.sent,
                producer.delivered(),
                self.sent as f64 / self.started.elapsed().as_secs_f64()
            );
        }
    }
}
