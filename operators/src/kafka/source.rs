//! The Kafka source: topic metadata at start, one [`KafkaPartition`] per assigned partition,
//! and partitions added to the topic while running.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::log::Repeats;
use super::{KafkaError, KafkaSpec};
use crate::source::{now_ms, Item, Partition, Poll, MAX_RAW};

type Queue = rdkafka::consumer::base_consumer::PartitionQueue<KafkaContext>;
type Client = BaseConsumer<KafkaContext>;

/// Where a partition starts: `(next offset, running max event time)` from stored progress.
pub type Resume = HashMap<u32, (u64, Option<u64>)>;

/// How often consumers report statistics (and with them fetch high watermarks and broker
/// states).
const STATS_INTERVAL_MS: &str = "1000";
/// How often the topic's metadata is read to find partitions added while running.
const DISCOVER_EVERY: Duration = Duration::from_secs(1);
/// How long a high watermark counts as fresh after statistics showed it current (two
/// statistics intervals): only a fresh one can make a partition idle.
const FRESH_FOR: Duration = Duration::from_secs(2);
/// How often a drained partition asks for the consumer's position, which moves past
/// transaction markers (control records) that are never delivered as messages.
const POSITION_EVERY: Duration = Duration::from_millis(100);

/// The connection state of a source's consumers, for progress lines and health checks.
#[derive(Debug, Default)]
pub struct KafkaHealth {
    /// Brokers whose connection is up, from the latest statistics (`usize::MAX`: unknown).
    brokers_up: AtomicUsize,
    /// Wall-clock ms of the latest client error, 0 if none.
    error_ms: AtomicU64,
    /// The latest client error.
    error: Mutex<String>,
    /// librdkafka's lines and errors already logged, shared by the source's consumers.
    repeats: Repeats,
}

impl KafkaHealth {
    fn new() -> KafkaHealth {
        KafkaHealth {
            brokers_up: AtomicUsize::new(usize::MAX),
            ..KafkaHealth::default()
        }
    }

    /// `None` while healthy; otherwise what is wrong: no broker connection, or a client
    /// error in the last 10 seconds.
    pub fn problem(&self) -> Option<String> {
        if self.brokers_up.load(Ordering::Relaxed) == 0 {
            let error = self.error.lock().map(|e| e.clone()).unwrap_or_default();
            return Some(format!("no broker connection ({error})"));
        }
        let at = self.error_ms.load(Ordering::Relaxed);
        if at > 0 && now_ms().saturating_sub(at) < 10_000 {
            return self.error.lock().ok().map(|e| e.clone());
        }
        None
    }
}

/// The client context of every consumer of a source: keeps the high watermarks that fetch
/// responses report (from librdkafka's statistics), whether they are fresh, and the
/// connection state; logs librdkafka's lines and errors without repeating them.
#[derive(Debug)]
pub struct KafkaContext {
    topic: String,
    /// The greatest high watermark reported per partition.
    highs: Mutex<HashMap<i32, i64>>,
    /// Per partition: the high watermark of the latest statistics that showed it current
    /// (see [`KafkaContext::stats`]), and when.
    fresh: Mutex<HashMap<i32, (Instant, i64)>>,
    /// Fetch requests sent to each broker as of the previous statistics.
    fetches: Mutex<HashMap<i32, i64>>,
    health: Arc<KafkaHealth>,
}

impl KafkaContext {
    fn high(&self, partition: i32) -> Option<i64> {
        self.highs.lock().ok()?.get(&partition).copied()
    }

    /// Logs a consumer error of `partition` unless it repeats one logged in the last 30 s:
    /// while a broker is away every poll of every partition reports it.
    fn warn(&self, partition: i32, what: &str, error: &ClientError) {
        let message = format!("{what} (partition {partition}): {error}");
        if let Some(text) = self.health.repeats.admit(&message, Instant::now()) {
            tracing::warn!(topic = %self.topic, "{text}");
        }
    }

    /// The partition's high watermark if statistics showed it current within `within`.
    fn fresh_high(&self, partition: i32, within: Duration) -> Option<i64> {
        let fresh = self.fresh.lock().ok()?;
        let &(at, high) = fresh.get(&partition)?;
        (at.elapsed() <= within).then_some(high)
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.health
            .repeats
            .log(&self.topic, level, fac, log_message);
    }

    /// Keeps the high watermarks and judges whether they are current. A statistics report
    /// repeats the last high watermark a fetch response brought, however old: while the
    /// broker is unreachable it goes stale as the topic grows. It counts as current only if
    /// the broker that fetches the partition is UP and was sent at least two Fetch requests
    /// since the previous report: librdkafka has one Fetch in flight per broker, so the
    /// second was sent after the first was answered, within this interval.
    fn stats(&self, statistics: Statistics) {
        // Reports queued while the worker was not polling describe the past.
        let current = (now_ms() / 1000).saturating_sub(statistics.time.max(0) as u64) <= 1;
        let mut answering = HashSet::new();
        if let Ok(mut fetches) = self.fetches.lock() {
            for broker in statistics.brokers.values().filter(|b| b.nodeid >= 0) {
                let sent = broker.req.get("Fetch").copied().unwrap_or(0);
                let before = fetches.insert(broker.nodeid, sent);
                if broker.state == "UP" && before.is_some_and(|before| sent >= before + 2) {
                    answering.insert(broker.nodeid);
                }
            }
        }
        if let Some(topic) = statistics.topics.get(&self.topic) {
            if let Ok(mut highs) = self.highs.lock() {
                for (&id, partition) in &topic.partitions {
                    if id >= 0 && partition.hi_offset >= 0 {
                        let high = highs.entry(id).or_insert(partition.hi_offset);
                        *high = (*high).max(partition.hi_offset);
                    }
                }
            }
            if let Ok(mut fresh) = self.fresh.lock() {
                let now = Instant::now();
                for (&id, partition) in &topic.partitions {
                    if current
                        && id >= 0
                        && partition.hi_offset >= 0
                        && partition.fetch_state == "active"
                        && answering.contains(&partition.broker)
                    {
                        fresh.insert(id, (now, partition.hi_offset));
                    }
                }
            }
        }
        // Bootstrap entries (node id -1) stand for the configured addresses, not brokers.
        let up = statistics
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0 && b.state == "UP")
            .count();
        self.health.brokers_up.store(up, Ordering::Relaxed);
    }

    fn error(&self, error: ClientError, reason: &str) {
        self.health.repeats.error(&self.topic, &error, reason);
        if let Ok(mut last) = self.health.error.lock() {
            *last = format!("{error}: {reason}");
        }
        self.health.error_ms.store(now_ms(), Ordering::Relaxed);
    }
}

impl ConsumerContext for KafkaContext {}

/// A topic as found at start: its partitions and their high watermarks then.
#[derive(Debug, Clone)]
pub struct KafkaSource {
    spec: KafkaSpec,
    /// `(partition, high watermark at start)`.
    partitions: Vec<(i32, i64)>,
    /// Every partition id the topic has now, refreshed while running (see
    /// [`KafkaSource::discoverer`]).
    known: Arc<Mutex<Vec<i32>>>,
    health: Arc<KafkaHealth>,
    /// The cluster's id from its metadata (brokers before Kafka 0.10 have none).
    cluster_id: Option<String>,
}

impl KafkaSource {
    /// Connects and waits up to `wait` for the topic to exist, retrying with capped backoff
    /// while the broker is unreachable; reads its partitions and their high watermarks.
    ///
    /// With `exit_at_end` the run stops at these high watermarks, so they are confirmed by
    /// fetching each partition's last batch (see [`confirm_high_watermarks`]). Otherwise the
    /// run is live, and a thread reads the topic's metadata every few seconds for partitions
    /// added while running (see [`KafkaSource::discoverer`]).
    pub fn open(
        spec: KafkaSpec,
        wait: Duration,
        exit_at_end: bool,
    ) -> Result<KafkaSource, KafkaError> {
        let health = Arc::new(KafkaHealth::new());
        let consumer = consumer(&spec, &health)?;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut said: Option<Instant> = None;
        let ids = loop {
            let last_error = match partition_ids(&consumer, &spec.topic) {
                Ok(Some(ids)) => break ids,
                Ok(None) => None,
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
            // A person waiting must see why, not 30 s of silence: say so every few seconds.
            if said.is_none_or(|at: Instant| at.elapsed() >= Duration::from_secs(3)) {
                said = Some(Instant::now());
                let why = match &last_error {
                    Some(e) => format!("{e}"),
                    None => "the topic does not exist yet".to_owned(),
                };
                tracing::warn!(
                    brokers = %spec.brokers,
                    topic = %spec.topic,
                    waited_s = started.elapsed().as_secs(),
                    of_s = wait.as_secs(),
                    "waiting for Kafka: {why}; retrying"
                );
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        };
        let mut partitions = Vec::with_capacity(ids.len());
        let mut empty = HashSet::new();
        for &id in &ids {
            let (low, high) = consumer
                .fetch_watermarks(&spec.topic, id, Duration::from_secs(10))
                .map_err(|e| spec.client_error(e))?;
            partitions.push((id, high));
            if low >= high {
                empty.insert(id);
            }
        }
        // The metadata read above brought the id, if the broker has one: no need to wait long.
        let cluster_id = consumer.client().fetch_cluster_id(Duration::from_secs(1));
        let known = Arc::new(Mutex::new(ids));
        if exit_at_end {
            confirm_high_watermarks(&spec, &health, &mut partitions, &empty)?;
        } else {
            watch_partitions(&spec, consumer, Arc::downgrade(&known))?;
        }
        Ok(KafkaSource {
            spec,
            partitions,
            known,
            health,
            cluster_id,
        })
    }

    /// The topic's spec.
    pub fn spec(&self) -> &KafkaSpec {
        &self.spec
    }

    /// The Kafka cluster's id (from its metadata, read at start), for the identity of a
    /// run's input: the same `kafka://host:port/topic` can name another cluster after a
    /// redeployment, whose offsets mean other records. `None` if the broker reports none.
    pub fn cluster_id(&self) -> Option<String> {
        self.cluster_id.clone()
    }

    /// The connection state of this source's consumers.
    pub fn health(&self) -> Arc<KafkaHealth> {
        Arc::clone(&self.health)
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
        resume: &Resume,
        exit_at_end: bool,
        idle_timeout: Duration,
    ) -> Result<Vec<KafkaPartition>, KafkaError> {
        let mine: Vec<(i32, Option<u64>)> = self
            .partitions
            .iter()
            .filter(|&&(id, _)| id as usize % workers == worker)
            .map(|&(id, high)| (id, exit_at_end.then_some(high.max(0) as u64)))
            .collect();
        self.assign(&mine, resume, idle_timeout)
    }

    /// Finds the partitions of global worker `worker` that were added to the topic since
    /// start (or since the last call), assigned at their beginning; for live runs (without
    /// `exit_at_end`).
    pub fn discoverer(
        &self,
        worker: usize,
        workers: usize,
        idle_timeout: Duration,
    ) -> impl FnMut() -> Vec<KafkaPartition> + 'static {
        let source = self.clone();
        let mut seen = self.partitions.len();
        move || {
            let ids = match source.known.lock() {
                Ok(known) if known.len() > seen => known[seen..].to_vec(),
                _ => return Vec::new(),
            };
            seen += ids.len();
            let mine: Vec<(i32, Option<u64>)> = ids
                .into_iter()
                .filter(|&id| id as usize % workers == worker)
                .map(|id| (id, None))
                .collect();
            if mine.is_empty() {
                return Vec::new();
            }
            tracing::info!(topic = %source.spec.topic, partitions = ?mine, "new partitions");
            source
                .assign(&mine, &Resume::new(), idle_timeout)
                .unwrap_or_else(|error| {
                    tracing::error!(%error, "assigning new partitions");
                    Vec::new()
                })
        }
    }

    /// One consumer for `partitions` (`(id, end)`), one queue per partition.
    fn assign(
        &self,
        partitions: &[(i32, Option<u64>)],
        resume: &Resume,
        idle_timeout: Duration,
    ) -> Result<Vec<KafkaPartition>, KafkaError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let spec = &self.spec;
        let consumer = Arc::new(consumer(spec, &self.health)?);
        let mut assignment = TopicPartitionList::new();
        for &(id, _) in partitions {
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
        let now = Instant::now();
        partitions
            .iter()
            .map(|&(id, end)| {
                // Split before the consumer is ever polled, so no message of this partition
                // can land in the consumer's main queue.
                let queue = consumer
                    .split_partition_queue(&spec.topic, id)
                    .ok_or_else(|| {
                        spec.client_error(rdkafka::error::KafkaError::Subscription(format!(
                            "no queue for partition {id}"
                        )))
                    })?;
                let next_offset = resume.get(&(id as u32)).map_or(0, |&(next, _)| next);
                Ok(KafkaPartition {
                    consumer: Arc::clone(&consumer),
                    queue,
                    topic: spec.topic.clone(),
                    partition: id,
                    next_offset,
                    end,
                    idle_timeout,
                    last_data: now,
                    idle: false,
                    position_at: now,
                    recovering: None,
                    end_checked: false,
                })
            })
            .collect()
    }
}

fn consumer(spec: &KafkaSpec, health: &Arc<KafkaHealth>) -> Result<Client, KafkaError> {
    let context = KafkaContext {
        topic: spec.topic.clone(),
        highs: Mutex::default(),
        fresh: Mutex::default(),
        fetches: Mutex::default(),
        health: Arc::clone(health),
    };
    spec.consumer_config()
        .set("statistics.interval.ms", STATS_INTERVAL_MS)
        .create_with_context(context)
        .map_err(|e| spec.client_error(e))
}

/// The topic's partition ids, sorted; `None` if the topic does not exist (yet).
fn partition_ids(
    consumer: &Client,
    topic: &str,
) -> Result<Option<Vec<i32>>, rdkafka::error::KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut ids: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    Ok((!ids.is_empty()).then_some(ids))
}

/// One assigned Kafka partition, polled without blocking.
pub struct KafkaPartition {
    consumer: Arc<Client>,
    queue: Queue,
    topic: String,
    partition: i32,
    next_offset: u64,
    end: Option<u64>,
    idle_timeout: Duration,
    last_data: Instant,
    idle: bool,
    /// When the consumer's position was last asked for.
    position_at: Instant,
    /// While the next offset is gone from the broker: the `(low, high)` watermarks being
    /// looked up on a thread of their own.
    recovering: Option<Receiver<Result<(i64, i64), ClientError>>>,
    /// Whether a next offset past the end listed at start was looked into.
    end_checked: bool,
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
    /// Caught up with a high watermark known to be current: stale knowledge (the broker
    /// unreachable, or not answering) never makes a partition idle, or it would declare the
    /// records written meanwhile late once they arrive.
    fn caught_up(&self) -> bool {
        self.consumer
            .context()
            .fresh_high(self.partition, FRESH_FOR)
            .is_some_and(|high| self.next_offset >= high.max(0) as u64)
    }

    fn at_end(&self) -> bool {
        self.end.is_some_and(|end| self.next_offset >= end)
    }

    /// A drained partition's next offset can lie past records that are never delivered:
    /// transaction markers (control records) and aborted transactions' records, which
    /// librdkafka skips while advancing the consumer's position. Without this a topic that
    /// ends with a commit marker would never reach its high watermark.
    fn skip_undelivered(&mut self) {
        if self.position_at.elapsed() < POSITION_EVERY {
            return;
        }
        self.position_at = Instant::now();
        let position = self.consumer.position().ok().and_then(|list| {
            list.find_partition(&self.topic, self.partition)
                .map(|e| e.offset())
        });
        if let Some(Offset::Offset(at)) = position {
            if at > 0 && at as u64 > self.next_offset {
                self.next_offset = at as u64;
            }
        }
    }

    /// The next offset is no longer on the broker (`auto.offset.reset=error`; fetching has
    /// stopped): looks up the watermarks on a thread of its own, so the worker never waits
    /// for the broker, retrying while it is unreachable.
    fn start_recovery(&mut self) {
        let (tx, rx) = std::sync::mpsc::channel();
        let consumer = Arc::clone(&self.consumer);
        let (topic, partition) = (self.topic.clone(), self.partition);
        let spawned = std::thread::Builder::new()
            .name("tickflow-kafka-watermarks".into())
            .spawn(move || {
                let mut backoff = Duration::from_millis(100);
                loop {
                    let result =
                        consumer.fetch_watermarks(&topic, partition, Duration::from_secs(5));
                    let done = result.is_ok();
                    if tx.send(result).is_err() || done {
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            });
        match spawned {
            Ok(_) => self.recovering = Some(rx),
            Err(error) => {
                tracing::error!(topic = %self.topic, partition = self.partition, %error, "starting the watermark lookup");
            }
        }
    }

    /// Once the watermarks are known: records the lost range and fetches again from the
    /// first offset there is. `None` while the lookup is under way.
    fn recover(&mut self, emit: &mut dyn FnMut(Item<'_>)) -> Option<()> {
        let rx = self.recovering.as_ref()?;
        let (low, high) = loop {
            match rx.try_recv() {
                Ok(Ok(watermarks)) => break watermarks,
                Ok(Err(error)) => {
                    let what = "looking up the watermarks of a partition whose next offset is gone";
                    self.consumer.context().warn(self.partition, what, &error);
                }
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => {
                    self.recovering = None;
                    self.start_recovery();
                    return None;
                }
            }
        };
        self.recovering = None;
        let (low, high) = (low.max(0) as u64, high.max(0) as u64);
        let next = self.next_offset;
        let resume_at = if next < low {
            let detail = format!(
                "deleted from the topic before they were read (retention, or the topic was recreated); reading on from offset {low}"
            );
            tracing::warn!(topic = %self.topic, partition = self.partition, from = next, to = low, "records lost: {detail}");
            emit(Item::Lost {
                offset: next,
                end: low,
                detail: &detail,
            });
            low
        } else if next > high {
            let detail = format!(
                "the partition now ends at offset {high}, before the stored next offset {next}: the topic was recreated or truncated, and the records after offset {next} in the old one cannot be read; reading again from offset {low}"
            );
            tracing::warn!(topic = %self.topic, partition = self.partition, from = next, low, high, "records lost: {detail}");
            emit(Item::Lost {
                offset: next,
                end: next,
                detail: &detail,
            });
            low
        } else {
            // In range again (the broker's log moved meanwhile): nothing was lost.
            next
        };
        self.next_offset = resume_at;
        // Fetching stopped with the error: assign the partition again at the new offset.
        // Its queue stays split (the split is the application's forwarding, kept across
        // assignments).
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topic, self.partition);
        let mut at = TopicPartitionList::new();
        let reassigned = at
            .add_partition_offset(
                &self.topic,
                self.partition,
                Offset::Offset(resume_at as i64),
            )
            .and_then(|()| self.consumer.incremental_unassign(&list))
            .and_then(|()| self.consumer.incremental_assign(&at));
        if let Err(error) = reassigned {
            tracing::error!(topic = %self.topic, partition = self.partition, %error, "assigning the partition again after lost records");
        }
        Some(())
    }
}

impl Partition for KafkaPartition {
    fn index(&self) -> u32 {
        self.partition as u32
    }

    fn first_time(&mut self) -> Option<u64> {
        // Unknown until the first record (a resumed partition's comes from `Resumed`).
        None
    }

    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(Item<'_>)) -> Poll {
        // Stored progress past the end listed at start: the log is not the one that progress
        // was made in (the topic was recreated or truncated). Checked once, like an offset
        // the broker reports gone, rather than taken for the end.
        if !self.end_checked && self.end.is_some_and(|end| self.next_offset > end) {
            self.end_checked = true;
            self.start_recovery();
        }
        if self.recovering.is_none() && self.at_end() {
            return Poll::Finished;
        }
        // Serves librdkafka's events (statistics, errors); the messages of split partitions
        // never come here.
        if let Some(Err(error)) = self.consumer.poll(Duration::ZERO) {
            self.consumer
                .context()
                .warn(self.partition, "kafka", &error);
        }
        if self.recovering.is_some() {
            if self.recover(emit).is_none() {
                return Poll::Pending(Duration::from_millis(20));
            }
            if self.at_end() {
                return Poll::Finished;
            }
        }
        let mut read = 0;
        let mut drained = false;
        while read < budget {
            match self.queue.poll(Duration::ZERO) {
                None => {
                    drained = true;
                    break;
                }
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
                Some(Err(ClientError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                    tracing::debug!(topic = %self.topic, partition = self.partition, next = self.next_offset, "the next offset is not on the broker");
                    self.start_recovery();
                    return Poll::Pending(Duration::from_millis(20));
                }
                Some(Err(error)) => {
                    // Transient (broker away, leader change): librdkafka retries.
                    self.consumer
                        .context()
                        .warn(self.partition, "kafka fetch", &error);
                    break;
                }
            }
        }
        if read > 0 {
            self.last_data = Instant::now();
            self.idle = false;
            return Poll::Ready;
        }
        let quiet = self.last_data.elapsed() >= self.idle_timeout;
        // Only a partition short of its end (or of its high watermark, when quiet) can have
        // markers to step over.
        let short = |end: u64| self.next_offset < end;
        let behind = self.end.is_some_and(short)
            || (quiet
                && self
                    .consumer
                    .context()
                    .high(self.partition)
                    .is_some_and(|high| short(high.max(0) as u64)));
        if drained && behind {
            self.skip_undelivered();
            if self.at_end() {
                return Poll::Finished;
            }
        }
        if quiet {
            let caught_up = self.caught_up();
            if !self.idle && caught_up {
                tracing::debug!(topic = %self.topic, partition = self.partition, "idle");
                self.idle = true;
            } else if self.idle && !caught_up {
                tracing::debug!(topic = %self.topic, partition = self.partition, "no longer idle: the broker's end is not known to be current");
                self.idle = false;
            }
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

/// Brokers answer ListOffsets from their log index, and some Kafka-compatible brokers get it
/// wrong for batched logs (tansu 0.x reports the last batch's first offset + 1). A fetch
/// response carries the high watermark of the partition's log itself, so this fetches the
/// last batch of every non-empty partition (from the offset before the listed end), waits
/// for the statistics that report the fetched high watermarks, and keeps the greater of the
/// two ends. Costs one small fetch per partition, once.
fn confirm_high_watermarks(
    spec: &KafkaSpec,
    health: &Arc<KafkaHealth>,
    partitions: &mut [(i32, i64)],
    empty: &HashSet<i32>,
) -> Result<(), KafkaError> {
    let consumer = consumer(spec, health)?;
    let mut assignment = TopicPartitionList::new();
    // A partition whose records are all deleted has no last batch to fetch.
    for &(id, high) in partitions
        .iter()
        .filter(|(id, high)| *high > 0 && !empty.contains(id))
    {
        assignment
            .add_partition_offset(&spec.topic, id, Offset::Offset(high - 1))
            .map_err(|e| spec.client_error(e))?;
    }
    if assignment.count() == 0 {
        return Ok(());
    }
    consumer
        .assign(&assignment)
        .map_err(|e| spec.client_error(e))?;
    let context = consumer.context();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let confirmed = partitions.iter().all(|&(id, high)| {
            high <= 0 || empty.contains(&id) || context.high(id).is_some_and(|h| h >= high)
        });
        if confirmed {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(topic = %spec.topic, "could not confirm the ends of the partitions by fetching; using ListOffsets");
            return Ok(());
        }
        if let Some(Err(error)) = consumer.poll(Duration::from_millis(100)) {
            tracing::debug!(topic = %spec.topic, %error, "confirming ends");
        }
    }
    for (id, high) in partitions.iter_mut() {
        if let Some(fetched) = context.high(*id).filter(|&fetched| fetched > *high) {
            tracing::info!(topic = %spec.topic, partition = *id, listed = *high, fetched, "the broker listed a lower end than it fetches; using the fetched one");
            *high = fetched;
        }
    }
    Ok(())
}

/// Reads the topic's partition ids every [`DISCOVER_EVERY`] on a thread of its own, for as
/// long as `known` lives.
fn watch_partitions(
    spec: &KafkaSpec,
    consumer: Client,
    known: Weak<Mutex<Vec<i32>>>,
) -> Result<(), KafkaError> {
    let topic = spec.topic.clone();
    std::thread::Builder::new()
        .name("tickflow-kafka-partitions".into())
        .spawn(move || loop {
            std::thread::sleep(DISCOVER_EVERY);
            let Some(known) = known.upgrade() else {
                return;
            };
            match partition_ids(&consumer, &topic) {
                Ok(Some(ids)) => {
                    if let Ok(mut known) = known.lock() {
                        // Keep the order of discovery: workers look at what follows the ids
                        // they have seen.
                        let fresh: Vec<i32> =
                            ids.into_iter().filter(|id| !known.contains(id)).collect();
                        known.extend(fresh);
                    }
                }
                Ok(None) => {
                    let repeats = &consumer.context().health.repeats;
                    if let Some(text) = repeats.admit("the topic has gone", Instant::now()) {
                        tracing::warn!(%topic, "{text}");
                    }
                }
                Err(error) => tracing::debug!(%topic, %error, "reading partitions"),
            }
        })
        .map(|_| ())
        .map_err(|e| {
            spec.client_error(rdkafka::error::KafkaError::Subscription(format!(
                "starting partition discovery: {e}"
            )))
        })
}
