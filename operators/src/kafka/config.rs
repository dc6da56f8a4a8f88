//! `kafka://HOST:PORT[,HOST:PORT…]/TOPIC[?group=ID]` and the librdkafka settings.

use rdkafka::ClientConfig;

/// Why Kafka could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The `kafka://` spec is malformed.
    #[error("invalid Kafka spec {spec:?}: {why} (expected kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?group=ID])")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The client reported an error.
    #[error("Kafka at {brokers}: {source}")]
    Client {
        /// Bootstrap servers.
        brokers: String,
        /// The cause.
        source: rdkafka::error::KafkaError,
    },
    /// The topic did not appear in time.
    #[error("Kafka at {brokers}: topic {topic:?} does not exist (waited {waited_s} s; create it, or produce to it with `tickflow produce`)")]
    TopicMissing {
        /// Bootstrap servers.
        brokers: String,
        /// The topic.
        topic: String,
        /// Seconds waited.
        waited_s: u64,
    },
    /// Messages could not be delivered.
    #[error("Kafka at {brokers}: {failed} of {sent} messages were not delivered: {first_error}")]
    Delivery {
        /// Bootstrap servers.
        brokers: String,
        /// Messages sent.
        sent: u64,
        /// Messages that failed.
        failed: u64,
        /// The first failure.
        first_error: String,
    },
}

/// Where a topic lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSpec {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// Consumer group id, used only to commit offsets for monitoring tools.
    pub group: String,
}

impl KafkaSpec {
    /// Parses `kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?group=ID]`.
    ///
    /// ```
    /// use tickflow_operators::kafka::KafkaSpec;
    /// let spec = KafkaSpec::parse("kafka://a:9092,b:9092/trades?group=g1").unwrap();
    /// assert_eq!((spec.brokers.as_str(), spec.topic.as_str(), spec.group.as_str()), ("a:9092,b:9092", "trades", "g1"));
    /// assert!(KafkaSpec::parse("kafka://a:9092").is_err());
    /// ```
    pub fn parse(spec: &str) -> Result<KafkaSpec, KafkaError> {
        let fail = |why| KafkaError::Spec {
            spec: spec.to_owned(),
            why,
        };
        let rest = spec
            .strip_prefix("kafka://")
            .ok_or_else(|| fail("it must start with kafka://"))?;
        let (brokers, path) = rest.split_once('/').ok_or_else(|| fail("no /TOPIC"))?;
        let (topic, query) = path.split_once('?').unwrap_or((path, ""));
        if brokers.is_empty() || brokers.split(',').any(|b| !b.contains(':')) {
            return Err(fail("every broker needs HOST:PORT"));
        }
        let valid_topic = |t: &str| {
            !t.is_empty()
                && t.len() <= 249
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !valid_topic(topic) {
            return Err(fail("the topic must be 1-249 characters of [a-zA-Z0-9._-]"));
        }
        let mut group = "tickflow".to_owned();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("group", id)) if !id.is_empty() => group = id.to_owned(),
                _ => return Err(fail("the only query parameter is group=ID")),
            }
        }
        Ok(KafkaSpec {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            group,
        })
    }

    /// The source name used in `rejects` and `source_offsets`.
    pub fn source_name(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }

    pub(crate) fn client_error(&self, source: rdkafka::error::KafkaError) -> KafkaError {
        KafkaError::Client {
            brokers: self.brokers.clone(),
            source,
        }
    }

    /// Consumer settings: manual assignment, offsets owned by the sink.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "tickflow")
            // Needed to commit offsets for monitoring tools; partitions are assigned by hand,
            // so the group never rebalances them.
            .set("group.id", &self.group)
            // The truth about progress is `source_offsets`, written with the results.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Partitions are assigned at explicit offsets (stored ones, or the beginning). One
            // that is no longer on the broker (deleted by retention, or the topic was
            // recreated) is an error of that partition, which the source turns into a
            // recorded `data_loss` before reading on: never a silent jump.
            .set("auto.offset.reset", "error")
            // Only committed transactions' records (librdkafka's default, stated because the
            // results depend on it); markers and aborted records are skipped, and the
            // source reads the consumer's position to step over them.
            .set("isolation.level", "read_committed")
            // End of partition is learned from watermarks, not from EOF events.
            .set("enable.partition.eof", "false")
            // Prefetch up to 64 MiB per partition so workers rarely wait for a fetch.
            .set("queued.max.messages.kbytes", "65536")
            // Large fetches for throughput, but answer within 50 ms when little is new.
            .set("fetch.max.bytes", "52428800")
            .set("fetch.wait.max.ms", "50")
            // An unreachable broker is retried with capped exponential backoff.
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "5000")
            // Errors are logged through tracing by the caller, not by librdkafka to stderr.
            .set("log_level", "3");
        config
    }

    /// Producer settings: ordered, deduplicated, compressed batches.
    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "tickflow-produce")
            // Idempotence: retries never duplicate or reorder a partition's messages.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // lz4: cheap to compress, ~4x on trade JSON.
            .set("compression.type", "lz4")
            // Batch for throughput: wait up to 20 ms to fill batches of up to 1 MiB.
            .set("linger.ms", "20")
            .set("batch.size", "1048576")
            .set("batch.num.messages", "100000")
            // Room for 1 GiB of unsent messages before send() pushes back.
            .set("queue.buffering.max.kbytes", "1048576")
            .set("queue.buffering.max.messages", "2000000")
            .set("log_level", "3");
        config
    }
}
