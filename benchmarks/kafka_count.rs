//! The Kafka floor: how fast plain rdkafka consumers can merely receive a topic's messages.
//!
//! `CONSUMERS` threads (default 1), each with its own `BaseConsumer` and the same settings as
//! tickflow's source (`KafkaSpec::consumer_config`), are assigned the partitions `p` with
//! `p mod CONSUMERS == i` from the beginning and count messages and payload bytes until
//! `EVENTS` messages have arrived in all. Nothing is parsed: it is the ceiling the Kafka path
//! of `tickflow run` is compared with in benchmarks/README.md.
//!
//!     cargo run --release -p tickflow-benchmarks --bin kafka-count -- kafka://HOST:PORT/TOPIC EVENTS [CONSUMERS]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tickflow_operators::kafka::KafkaSpec;

fn main() -> Result<(), String> {
    let usage = "usage: kafka-count kafka://HOST:PORT/TOPIC EVENTS [CONSUMERS]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec = KafkaSpec::parse(args.first().ok_or(usage)?).map_err(|e| e.to_string())?;
    let events: u64 = args.get(1).and_then(|n| n.parse().ok()).ok_or(usage)?;
    let consumers: usize = args
        .get(2)
        .map_or(Ok(1), |n| n.parse())
        .map_err(|_| usage)?;

    let probe: BaseConsumer = spec.consumer_config().create().map_err(|e| e.to_string())?;
    let metadata = probe
        .fetch_metadata(Some(&spec.topic), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("topic {} has no partitions", spec.topic));
    }

    let received = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..consumers)
        .map(|i| {
            let mine: Vec<i32> = partitions
                .iter()
                .copied()
                .filter(|p| *p as usize % consumers == i)
                .collect();
            let (spec, received, bytes) = (spec.clone(), Arc::clone(&received), Arc::clone(&bytes));
            std::thread::spawn(move || -> Result<(), String> {
                let consumer: BaseConsumer =
                    spec.consumer_config().create().map_err(|e| e.to_string())?;
                let mut assignment = TopicPartitionList::new();
                for p in mine {
                    assignment
                        .add_partition_offset(&spec.topic, p, Offset::Beginning)
                        .map_err(|e| e.to_string())?;
                }
                consumer.assign(&assignment).map_err(|e| e.to_string())?;
                while received.load(Ordering::Relaxed) < events {
                    if let Some(Ok(message)) = consumer.poll(Duration::from_millis(10)) {
                        received.fetch_add(1, Ordering::Relaxed);
                        let len = message.payload().map_or(0, <[u8]>::len);
                        bytes.fetch_add(len as u64, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a consumer panicked")??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let n = received.load(Ordering::Relaxed);
    println!(
        "{n} messages, {} MB of payload, {seconds:.2} s, {:.0} events/s with {consumers} consumer(s)",
        bytes.load(Ordering::Relaxed) >> 20,
        n as f64 / seconds
    );
    Ok(())
}
