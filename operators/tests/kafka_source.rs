//! The Kafka source against librdkafka's mock cluster, below the binary.

#![cfg(feature = "kafka")]

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use tickflow_operators::kafka::{KafkaSource, KafkaSpec};

#[test]
fn the_source_knows_its_clusters_id() {
    let cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext> =
        MockCluster::new(1).expect("mock cluster starts");
    cluster.create_topic("ids", 1, 1).expect("topic");
    let spec =
        KafkaSpec::parse(&format!("kafka://{}/ids", cluster.bootstrap_servers())).expect("spec");
    let source = KafkaSource::open(spec.clone(), Duration::from_secs(10), true).expect("opens");
    let id = source.cluster_id().expect("the mock cluster has an id");
    assert!(!id.is_empty());
    // The same cluster, the same id; another cluster (same topic name), another id.
    let again = KafkaSource::open(spec, Duration::from_secs(10), true).expect("opens");
    assert_eq!(again.cluster_id(), Some(id.clone()));
    let other: MockCluster<'static, rdkafka::producer::DefaultProducerContext> =
        MockCluster::new(1).expect("mock cluster starts");
    other.create_topic("ids", 1, 1).expect("topic");
    let spec =
        KafkaSpec::parse(&format!("kafka://{}/ids", other.bootstrap_servers())).expect("spec");
    let elsewhere = KafkaSource::open(spec, Duration::from_secs(10), true).expect("opens");
    assert_ne!(elsewhere.cluster_id(), Some(id));
}
