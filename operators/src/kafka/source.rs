//! The Kafka source: topic metadata at start, one [`KafkaPartition`] per assigned partition.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, DefaultConsumerContext};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{KafkaError, KafkaSpec};
use crate::source::{Item, Partition, Poll, MAX_RAW};

type Queue = rdkafka::consumer::base_consumer::PartitionQueue<DefaultConsumerContext>;

/// A topic as found at start: its partitions and their high watermarks then.
#[derive(Debug, Clone)]
pub struct KafkaSource {
    spec: KafkaSpec,
    /// `(partition, high watermark at start)`.
    partitions: Vec<(i32, i64)>,
}

impl KafkaSource {
    /// Connects and waits up to `wait` for the topic to exist, retrying with capped backoff
    /// while the broker is unreachable; reads its partitions and their high watermarks.
    pub fn open(spec: KafkaSpec, wait: Duration) -> Result<KafkaSource, KafkaError> {
        let consumer: BaseConsumer = spec
            .consumer_config()
            .create()
            .map_err(|e| spec.client_error(e))?;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let ids: Vec<i32> = loop {
            let attempt = consumer.fetch_metadata(Some(&spec.topic), Duration::from_secs(5));
            let last_error = match attempt {
                Ok(metadata) => {
                    let found = metadata
                        .topics()
                        .iter()
                        .find(|t| t.name() == spec.topic && t.error().is_none())
                        .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>());
                    match found {
                        Some(ids) if !ids.is_empty() => break ids,
                        _ => None,
                    }
                }
                Err(e) => Some(e),
            };
            if started.elapsed() >= wait {
                return Err(match last_error {
                    Some(e) => spec.client_error(e),
                    None => KafkaError::TopicMissing {
                        brokers: spec.brokers.clone(),
                        topic: spec.topic.clone(),
                        waited_s: wait.as_secs(),
                    },
                });
            }
            tracing::info!(topic = %spec.topic, ?backoff, "waiting for the topic");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        };
        let mut partitions = Vec::with_capacity(ids.len());
        for id in ids {
            let (_, high) = consumer
                .fetch_watermarks(&spec.topic, id, Duration::from_secs(10))
                .map_err(|e| spec.client_error(e))?;
            partitions.push((id, high));
        }
        partitions.sort_unstable();
        Ok(KafkaSource { spec, partitions })
    }

    /// The topic's spec.
    pub fn spec(&self) -> &KafkaSpec {
        &self.spec
    }

    /// Number of partitions found at start.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Messages in the topic at start (sum of high watermarks; an upper bound of what
    /// `exit_at_end` reads when the low watermarks are 0).
    pub fn high_watermark_total(&self) -> u64 {
        self.partitions
            .iter()
            .map(|&(_, high)| high.max(0) as u64)
            .sum()
    }

    /// The partitions of global worker `worker` of `workers` (partition `p` goes to worker
    /// `p mod workers`), assigned at the `resume` offsets where known and at the beginning
    /// otherwise. With `exit_at_end` each partition finishes at its high watermark at start.
    pub fn partitions(
        &self,
        worker: usize,
        workers: usize,
        resume: &HashMap<u32, (u64, Option<u64>)>,
        exit_at_end: bool,
        idle_timeout: Duration,
    ) -> Result<Vec<KafkaPartition>, KafkaError> {
        let mine: Vec<(i32, i64)> = self
            .partitions
            .iter()
            .copied()
            .filter(|&(id, _)| id as usize % workers == worker)
            .collect();
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        let spec = &self.spec;
        let consumer: Arc<BaseConsumer> = Arc::new(
            spec.consumer_config()
                .create()
                .map_err(|e| spec.client_error(e))?,
        );
        let mut assignment = TopicPartitionList::new();
        for &(id, _) in &mine {
            let offset = match resume.get(&(id as u32)) {
                Some(&(next, _)) => Offset::Offset(next as i64),
                None => Offset::Beginning,
            };
            assignment
                .add_partition_offset(&spec.topic, id, offset)
                .map_err(|e| spec.client_error(e))?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| spec.client_error(e))?;
        let highs: Vec<Arc<AtomicI64>> = mine
            .iter()
            .map(|&(_, high)| Arc::new(AtomicI64::new(high)))
            .collect();
        watch_high_watermarks(
            spec,
            mine.iter()
                .map(|&(id, _)| id)
                .zip(highs.iter().map(Arc::downgrade))
                .collect(),
        )?;
        let now = Instant::now();
        mine.into_iter()
            .zip(highs)
            .map(|((id, high), latest_high)| {
                // Split before the consumer is ever polled, so no message of this partition
                // can land in the consumer's main queue.
                let queue = consumer
                    .split_partition_queue(&spec.topic, id)
                    .ok_or_else(|| {
                        spec.client_error(rdkafka::error::KafkaError::Subscription(format!(
                            "no queue for partition {id}"
                        )))
                    })?;
                let (next_offset, resumed_max) =
                    resume.get(&(id as u32)).copied().unwrap_or((0, None));
                Ok(KafkaPartition {
                    consumer: Arc::clone(&consumer),
                    queue,
                    topic: spec.topic.clone(),
                    partition: id,
                    next_offset,
                    end: exit_at_end.then_some(high.max(0) as u64),
                    idle_timeout,
                    last_data: now,
                    idle: false,
                    latest_high,
                    resumed_max,
                })
            })
            .collect()
    }
}

/// One assigned Kafka partition, polled without blocking.
pub struct KafkaPartition {
    consumer: Arc<BaseConsumer>,
    queue: Queue,
    topic: String,
    partition: i32,
    next_offset: u64,
    end: Option<u64>,
    idle_timeout: Duration,
    last_data: Instant,
    idle: bool,
    /// The partition's high watermark, refreshed by [`watch_high_watermarks`].
    latest_high: Arc<AtomicI64>,
    /// The running maximum event time where an earlier run left off.
    resumed_max: Option<u64>,
}

impl std::fmt::Debug for KafkaPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KafkaPartition({}/{}@{})",
            self.topic, self.partition, self.next_offset
        )
    }
}

impl KafkaPartition {
    fn caught_up(&self) -> bool {
        self.next_offset >= self.latest_high.load(Ordering::Relaxed).max(0) as u64
    }

    fn at_end(&self) -> bool {
        self.end.is_some_and(|end| self.next_offset >= end)
    }
}

impl Partition for KafkaPartition {
    fn index(&self) -> u32 {
        self.partition as u32
    }

    fn first_time(&mut self) -> Option<u64> {
        // Resuming restores the watermark the earlier run had here; a fresh partition's is
        // unknown until its first record.
        self.resumed_max
    }

    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(Item<'_>)) -> Poll {
        if self.at_end() {
            return Poll::Finished;
        }
        // Serves librdkafka's events; the messages of split partitions never come here.
        if let Some(Err(error)) = self.consumer.poll(Duration::ZERO) {
            tracing::warn!(topic = %self.topic, partition = self.partition, %error, "kafka");
        }
        let mut read = 0;
        while read < budget {
            match self.queue.poll(Duration::ZERO) {
                None => break,
                Some(Ok(message)) => {
                    let payload = message.payload().unwrap_or_default();
                    emit(Item::Line {
                        offset: message.offset() as u64,
                        bytes: &payload[..payload.len().min(MAX_RAW)],
                        full_len: payload.len(),
                    });
                    self.next_offset = message.offset() as u64 + 1;
                    read += 1;
                    if self.at_end() {
                        return Poll::Finished;
                    }
                }
                Some(Err(error)) => {
                    // Transient (broker away, leader change): librdkafka retries.
                    tracing::warn!(topic = %self.topic, partition = self.partition, %error, "kafka fetch");
                    break;
                }
            }
        }
        if read > 0 {
            self.last_data = Instant::now();
            self.idle = false;
            return Poll::Ready;
        }
        if !self.idle && self.last_data.elapsed() >= self.idle_timeout && self.caught_up() {
            tracing::debug!(topic = %self.topic, partition = self.partition, "idle");
            self.idle = true;
        }
        Poll::Pending(Duration::from_millis(5))
    }

    fn position(&self) -> u64 {
        self.next_offset
    }

    fn idle(&self) -> bool {
        self.idle
    }

    fn committed(&mut self, offset: u64) {
        // For monitoring tools only (lag dashboards): the run itself resumes from the offsets
        // stored with its results. Asynchronous, so the worker does not wait for the broker.
        let mut offsets = TopicPartitionList::new();
        let result = offsets
            .add_partition_offset(&self.topic, self.partition, Offset::Offset(offset as i64))
            .and_then(|()| self.consumer.commit(&offsets, CommitMode::Async));
        if let Err(error) = result {
            tracing::debug!(topic = %self.topic, partition = self.partition, %error, "group offset commit");
        }
    }
}

/// Refreshes the high watermarks of `partitions` once a second on a thread of its own (the
/// request is a network round trip a worker must not wait for). The thread ends when the
/// partitions are dropped.
fn watch_high_watermarks(
    spec: &KafkaSpec,
    partitions: Vec<(i32, Weak<AtomicI64>)>,
) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = spec
        .consumer_config()
        .create()
        .map_err(|e| spec.client_error(e))?;
    let topic = spec.topic.clone();
    std::thread::Builder::new()
        .name("tickflow-kafka-watermarks".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let mut alive = false;
            for (id, slot) in &partitions {
                let Some(slot) = slot.upgrade() else {
                    continue;
                };
                alive = true;
                match consumer.fetch_watermarks(&topic, *id, Duration::from_secs(5)) {
                    Ok((_, high)) => slot.store(high, Ordering::Relaxed),
                    Err(error) => tracing::debug!(%topic, partition = id, %error, "watermarks"),
                }
            }
            if !alive {
                return;
            }
        })
        .map(|_| ())
        .map_err(|e| {
            spec.client_error(rdkafka::error::KafkaError::Subscription(format!(
                "starting the watermark thread: {e}"
            )))
        })
}
