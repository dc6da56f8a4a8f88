//! Kafka: the production source, and the producer behind `tickflow produce`.
//!
//! ```text
//!  topic partitions 0 1 2 3 …          partition p is read by global worker p mod W
//!       │  assign() at stored offsets  (every process computes the same assignment:
//!       ▼                               no consumer group, no rebalancing)
//!  BaseConsumer per worker ──split──▶ one queue per partition ──▶ Partition (source op)
//! ```
//!
//! Progress: each Kafka partition is a source partition with its own watermark; the offsets
//! of the next records to read are committed with the results in the sink's transaction
//! (`source_offsets`), and a restarted run assigns its partitions at those offsets, not at
//! Kafka's committed group offsets. Polling never blocks a worker: queues are polled with a
//! zero timeout and a bounded budget. An idle partition (caught up with its high watermark
//! and quiet for `idle_timeout`) stops holding the watermark back until it has data again.
//!
//! Ends and health: every consumer reports librdkafka statistics each second; from them come
//! the high watermarks of fetch responses (used for catching up and, confirmed by one fetch
//! at start, for `--exit-at-end`) and the broker connection state ([`KafkaHealth`]).
//!
//! Growth: a live run reads the topic's metadata every second; partitions added while it
//! runs are assigned to their workers and join at the source's current watermark.
//!
//! Retries: librdkafka reconnects by itself with capped backoff (`reconnect.backoff.*`);
//! while the broker is away partitions simply have no data. Only a topic that does not
//! exist after the start-up timeout is an error of the run.

mod config;
mod log;
mod produce;
mod source;

pub use config::{KafkaError, KafkaSpec};
pub use log::{Repeats, REPEAT_WINDOW};
pub use produce::{ProduceReport, TradeProducer};
pub use source::{KafkaContext, KafkaHealth, KafkaPartition, KafkaSource, Resume};
