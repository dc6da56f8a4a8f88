//! Writing trades into a topic (`tickflow produce`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::log::Repeats;
use super::{KafkaError, KafkaSpec};

/// What a produce run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceReport {
    /// Messages handed to the client.
    pub sent: u64,
    /// Messages the broker acknowledged.
    pub delivered: u64,
}

/// Counts delivery reports; every message's report is checked.
#[derive(Debug, Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// librdkafka's lines and errors already logged.
    repeats: Repeats,
}

#[derive(Debug, Default, Clone)]
struct Context(Arc<Deliveries>);

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.0.repeats.log("produce", level, fac, log_message);
    }

    fn error(&self, error: ClientError, reason: &str) {
        self.0.repeats.error("produce", &error, reason);
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.0.first_error.lock() {
                    first.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
}

/// A producer of trade messages keyed by symbol, so that each symbol's trades stay in order
/// within one partition.
pub struct TradeProducer {
    spec: KafkaSpec,
    producer: BaseProducer<Context>,
    deliveries: Arc<Deliveries>,
    sent: u64,
}

impl std::fmt::Debug for TradeProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TradeProducer({}, sent {})",
            self.spec.source_name(),
            self.sent
        )
    }
}

impl TradeProducer {
    /// Connects, creating the topic with `partitions` partitions if it does not exist.
    pub fn new(spec: KafkaSpec, partitions: i32) -> Result<TradeProducer, KafkaError> {
        create_topic(&spec, partitions)?;
        let context = Context::default();
        let deliveries = Arc::clone(&context.0);
        let producer = spec
            .producer_config()
            .create_with_context(context)
            .map_err(|e| spec.client_error(e))?;
        Ok(TradeProducer {
            spec,
            producer,
            deliveries,
            sent: 0,
        })
    }

    /// Queues one message; when the client's queue is full, serves delivery reports until
    /// there is room (back-pressure), never dropping the message.
    pub fn send(&mut self, key: &[u8], payload: &[u8]) -> Result<(), KafkaError> {
        let mut record = BaseRecord::to(&self.spec.topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => return Err(self.spec.client_error(error)),
            }
        }
        self.sent += 1;
        if self.sent.is_multiple_of(4096) {
            self.producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.deliveries.delivered.load(Ordering::Relaxed)
    }

    /// Waits (up to `timeout`) until every message is acknowledged; fails if any was not.
    pub fn finish(self, timeout: Duration) -> Result<ProduceReport, KafkaError> {
        self.producer
            .flush(timeout)
            .map_err(|e| self.spec.client_error(e))?;
        let delivered = self.deliveries.delivered.load(Ordering::Relaxed);
        let failed = self.deliveries.failed.load(Ordering::Relaxed);
        if failed > 0 || delivered != self.sent {
            let first_error = self
                .deliveries
                .first_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "no delivery report".to_owned());
            return Err(KafkaError::Delivery {
                brokers: self.spec.brokers.clone(),
                sent: self.sent,
                failed: self.sent - delivered,
                first_error,
            });
        }
        Ok(ProduceReport {
            sent: self.sent,
            delivered,
        })
    }
}

/// Creates the topic unless it exists; grows an existing topic with fewer partitions (a
/// running `tickflow run` picks the new ones up).
fn create_topic(spec: &KafkaSpec, partitions: i32) -> Result<(), KafkaError> {
    let context = Context::default();
    let probe: BaseProducer<Context> = spec
        .producer_config()
        .create_with_context(context.clone())
        .map_err(|e| spec.client_error(e))?;
    let metadata = probe
        .client()
        .fetch_metadata(Some(&spec.topic), Duration::from_secs(10))
        .map_err(|e| spec.client_error(e))?;
    let existing = metadata
        .topics()
        .iter()
        .find(|t| t.name() == spec.topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    if existing >= partitions as usize {
        return Ok(());
    }
    let admin: AdminClient<Context> = spec
        .producer_config()
        .create_with_context(context)
        .map_err(|e| spec.client_error(e))?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = if existing == 0 {
        let topic = NewTopic::new(&spec.topic, partitions, TopicReplication::Fixed(1));
        futures_executor::block_on(admin.create_topics([&topic], &options))
    } else {
        tracing::info!(topic = %spec.topic, from = existing, to = partitions, "adding partitions");
        let grown = NewPartitions::new(&spec.topic, partitions as usize);
        futures_executor::block_on(admin.create_partitions([&grown], &options))
    }
    .map_err(|e| spec.client_error(e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(spec.client_error(ClientError::AdminOp(code)));
            }
        }
    }
    Ok(())
}
