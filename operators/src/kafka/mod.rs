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
//! zero timeout and a bounded budget.
//!
//! Lost records: an offset that is no longer on the broker (deleted by retention while the
//! run was stopped or fell behind, or a topic deleted and recreated) is never skipped
//! silently. librdkafka reports it (`auto.offset.reset=error`); the partition looks up the
//! watermarks on a thread of its own, records the gap as one `data_loss` reject with the lost
//! range (and a warning), and is assigned again at the first offset there is. Stored
//! progress past the end listed at start is looked into the same way.
//!
//! Ends and idleness: every consumer reports librdkafka statistics each second; from them come
//! the high watermarks of fetch responses (used for catching up and, confirmed by one fetch
//! at start, for `--exit-at-end`) and the broker connection state ([`KafkaHealth`]). A high
//! watermark counts as current only while the partition's broker is UP and answering
//! fetches; an idle partition (caught up with a current high watermark and quiet for
//! `idle_timeout`) stops holding the watermark back until it has data again, and stops being
//! idle as soon as its high watermark is no longer current, so an outage never turns the
//! records written meanwhile into late ones. Transaction markers (control records) take
//! offsets but are never delivered: a drained partition short of its end takes the
//! consumer's position, which librdkafka moves past them.
//!
//! Growth: a live run reads the topic's metadata every second; partitions added while it
//! runs are assigned to their workers and join at the source's current watermark.
//!
//! Retries and logs: librdkafka reconnects by itself with capped backoff
//! (`reconnect.backoff.*`); while the broker is away partitions simply have no data. Only a
//! topic that does not exist after the start-up timeout is an error of the run.
//! librdkafka's own lines and errors go through `tracing`, each distinct one at most once per
//! 30 s, the next saying how often it repeated ([`Repeats`]).

mod config;
mod log;
mod produce;
mod source;

pub use config::{KafkaError, KafkaSpec};
pub use log::{Repeats, REPEAT_WINDOW};
pub use produce::{ProduceReport, TradeProducer};
pub use source::{KafkaContext, KafkaHealth, KafkaPartition, KafkaSource, Resume};
