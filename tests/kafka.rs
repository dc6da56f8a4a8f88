//! Kafka ingress against librdkafka's mock cluster (the real wire protocol, in-process, on
//! a localhost port the tickflow binary connects to).

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

fn mock_cluster(
    topic: &str,
    partitions: i32,
) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster starts");
    cluster.create_topic(topic, partitions, 1).expect("topic");
    cluster
}

#[test]
fn a_partitioned_topic_read_by_two_workers_gives_the_file_candles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let file = generate(dir, "t.jsonl", 100_000);
    let cluster = mock_cluster("trades", 4);
    let topic = format!("kafka://{}/trades", cluster.bootstrap_servers());
    let source = format!("file:{}", file.display());

    let out = tickflow(dir, &["produce", "--to", &topic, "--source", &source]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("produced 100000 messages"), "{said}");

    run(dir, &source, "sqlite:file.db", &["-w", "1"]);
    let out = tickflow(
        dir,
        &[
            "run",
            "--source",
            &topic,
            "--exit-at-end",
            "--sink",
            "sqlite:kafka.db",
            "-w",
            "2",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("100000 trades"), "{said}");
    let expected = candles(&path(dir, "file.db"));
    assert!(expected.len() > 50);
    assert_eq!(candles(&path(dir, "kafka.db")), expected);
    // The consumer group's offsets follow the committed results (for monitoring tools),
    // while a live run goes (1s windows, so 10 s of data completes windows as it is read).
    let live = spawn_tickflow(
        dir,
        &[
            "run",
            "--source",
            &format!("{topic}?group=monitor"),
            "--windows",
            "1s",
            "--sink",
            "sqlite:k1s.db",
            "-w",
            "2",
            "--quiet",
        ],
    );
    let group: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "monitor")
        .create()
        .expect("consumer");
    let mut partitions = rdkafka::TopicPartitionList::new();
    for p in 0..4 {
        partitions.add_partition("trades", p);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut total = 0;
    while total == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let committed = rdkafka::consumer::Consumer::committed_offsets(
            &group,
            partitions.clone(),
            Duration::from_secs(5),
        )
        .expect("committed offsets");
        total = committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => Some(o),
                _ => None,
            })
            .sum::<i64>();
    }
    assert!(interrupt(live).status.success());
    assert!(
        total > 0 && total <= 100_000,
        "group offsets sum to {total}"
    );
    // And as a cluster of 2 processes × 1 worker.
    run_cluster(
        dir,
        &[
            "--source",
            &topic,
            "--exit-at-end",
            "--sink",
            "sqlite:cluster.db",
        ],
        2,
    );
    assert_eq!(candles(&path(dir, "cluster.db")), expected);
    // Every partition's resume offset is its end.
    assert_eq!(
        rows(
            &path(dir, "kafka.db"),
            "SELECT count(*), sum(next_offset) FROM source_offsets"
        ),
        vec![vec!["4".to_owned(), "100000".to_owned()]]
    );
}

#[test]
fn an_idle_partition_does_not_stall_the_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let cluster = mock_cluster("quiet", 2);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .expect("producer");
    // Ten seconds of trades, all in partition 0; partition 1 stays empty.
    for i in 0..1000u64 {
        let t = 1_700_000_000_000 + i * 10;
        let line = format!(
            r#"{{"e":"trade","E":{t},"s":"BTCUSDT","t":{i},"p":"43000.5","q":"0.01","b":1,"a":2,"T":{t},"m":true}}"#
        );
        producer
            .send(BaseRecord::<(), _>::to("quiet").partition(0).payload(&line))
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");

    let topic = format!("kafka://{}/quiet", cluster.bootstrap_servers());
    let mut child = spawn_tickflow(
        dir,
        &[
            "run",
            "--source",
            &topic,
            "--idle-timeout",
            "1s",
            "--sink",
            "sqlite:idle.db",
            "-w",
            "2",
            "--quiet",
        ],
    );
    // Without idleness the empty partition would hold the watermark at 0 and nothing would
    // be written before the run ends; with it, closed windows are committed while it runs.
    let db = path(dir, "idle.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut written = 0;
    while Instant::now() < deadline {
        if db.exists() {
            written = rows(&db, "SELECT count(*) FROM candles WHERE window_ms = 1000")[0][0]
                .parse::<u32>()
                .unwrap_or(0);
            if written >= 7 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let still_running = child.try_wait().expect("status").is_none();
    assert!(interrupt(child).status.success());
    assert!(still_running, "the run ended by itself");
    // Windows up to the watermark (max 9.99 s − 2 s lateness) closed while running.
    assert!(
        written >= 7,
        "only {written} one-second windows were committed while running"
    );
}

#[test]
fn a_missing_topic_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = mock_cluster("exists", 1);
    let topic = format!("kafka://{}/absent", cluster.bootstrap_servers());
    let out = tickflow_unchecked(
        dir.path(),
        &[
            "run",
            "--source",
            &topic,
            "--topic-wait",
            "2s",
            "--sink",
            "none",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("topic \"absent\" does not exist"),
        "{stderr}"
    );
}

#[test]
fn stopping_in_the_middle_and_resuming_gives_the_uninterrupted_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let file = generate(dir, "t.jsonl", 200_000);
    let cluster = mock_cluster("trades", 4);
    let topic = format!("kafka://{}/trades", cluster.bootstrap_servers());
    tickflow(
        dir,
        &[
            "produce",
            "--to",
            &topic,
            "--source",
            &format!("file:{}", file.display()),
        ],
    );
    let windows = "1s,1m";

    tickflow(
        dir,
        &[
            "run",
            "--source",
            &topic,
            "--exit-at-end",
            "--sink",
            "sqlite:whole.db",
            "-w",
            "2",
            "--windows",
            windows,
        ],
    );

    // Three runs stopped with SIGINT part-way, each resuming where the last stopped.
    let mut first_read = None;
    for stop_after_ms in [400u64, 700, 500] {
        let child = spawn_tickflow(
            dir,
            &[
                "run",
                "--source",
                &topic,
                "--sink",
                "sqlite:parts.db",
                "-w",
                "2",
                "--windows",
                windows,
                "--quiet",
            ],
        );
        std::thread::sleep(Duration::from_millis(stop_after_ms));
        let out = interrupt(child);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        first_read.get_or_insert(said);
    }
    tickflow(
        dir,
        &[
            "run",
            "--source",
            &topic,
            "--exit-at-end",
            "--sink",
            "sqlite:parts.db",
            "-w",
            "2",
            "--windows",
            windows,
        ],
    );

    let whole = candles(&path(dir, "whole.db"));
    assert!(whole.len() > 100);
    assert_eq!(candles(&path(dir, "parts.db")), whole);
    assert_eq!(
        rows(&path(dir, "parts.db"), "SELECT count(*) FROM rejects"),
        vec![vec!["0"]]
    );
    // The first run really stopped part-way (otherwise this test would prove little).
    let first = first_read.unwrap_or_default();
    assert!(
        !first.contains("200000 trades"),
        "the first run read everything: {first}"
    );
}

#[test]
fn a_broker_outage_at_start_and_mid_run_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let file = generate(dir, "t.jsonl", 100_000);
    let source = format!("file:{}", file.display());
    let cluster = mock_cluster("trades", 4);
    let topic = format!("kafka://{}/trades", cluster.bootstrap_servers());
    tickflow(dir, &["produce", "--to", &topic, "--source", &source]);
    run(dir, &source, "sqlite:file.db", &["-w", "1"]);

    cluster.broker_down(1).expect("broker down");
    let child = spawn_tickflow(
        dir,
        &[
            "run",
            "--source",
            &topic,
            "--exit-at-end",
            "--sink",
            "sqlite:k.db",
            "-w",
            "2",
        ],
    );
    // Down at start: the run waits (retrying) for the broker…
    std::thread::sleep(Duration::from_millis(1500));
    cluster.broker_up(1).expect("broker up");
    // …and down again while it reads.
    std::thread::sleep(Duration::from_millis(300));
    cluster.broker_down(1).expect("broker down");
    std::thread::sleep(Duration::from_millis(1500));
    cluster.broker_up(1).expect("broker up");
    let out = child.wait_with_output().expect("ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("100000 trades"), "{said}");
    // The outage is reported on stderr as it happens.
    let reported = String::from_utf8_lossy(&out.stderr);
    assert!(
        reported.contains("All broker connections are down"),
        "{reported}"
    );
    assert_eq!(candles(&path(dir, "k.db")), candles(&path(dir, "file.db")));
}

/// Binance trade lines for trade ids `ids`, at `start_ms + 10 ms × (id − first id)`.
fn trade_lines(ids: std::ops::Range<u64>, start_ms: u64) -> Vec<String> {
    let first = ids.start;
    ids.map(|i| {
        let t = start_ms + (i - first) * 10;
        format!(
            r#"{{"e":"trade","E":{t},"s":"BTCUSDT","t":{i},"p":"43000.5","q":"0.01","b":1,"a":2,"T":{t},"m":true}}"#
        )
    })
    .collect()
}

/// Writes `lines` into `topic`'s `partition` and waits for every delivery.
fn produce_lines(bootstrap: &str, topic: &str, partition: i32, lines: &[String]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for line in lines {
        producer
            .send(BaseRecord::<(), _>::to(topic).partition(partition).payload(line))
            .expect("queued");
    }
    producer.flush(Duration::from_secs(30)).expect("flushed");
}

fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    rdkafka::consumer::Consumer::fetch_watermarks(
        &consumer,
        topic,
        partition,
        Duration::from_secs(10),
    )
    .expect("watermarks")
}

#[test]
fn records_deleted_before_they_were_read_are_a_recorded_data_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let cluster = mock_cluster("kept", 1);
    let bootstrap = cluster.bootstrap_servers();
    let topic = format!("kafka://{bootstrap}/kept");
    let t0 = 1_700_000_000_000;
    produce_lines(&bootstrap, "kept", 0, &trade_lines(0..1000, t0));
    let out = run(dir, &topic, "sqlite:k.db", &["--exit-at-end"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1000 trades"));

    // Later trades overflow the mock broker's retention (5 MiB per partition): the oldest
    // batches, with the offsets the next run would resume at, are deleted.
    produce_lines(&bootstrap, "kept", 0, &trade_lines(1000..46_000, t0 + 20_000));
    let (low, high) = watermarks(&bootstrap, "kept", 0);
    assert!(low > 1000, "retention deleted nothing (watermarks {low}..{high})");
    assert_eq!(high, 46_000);

    let out = run(dir, &topic, "sqlite:k.db", &["--exit-at-end"]);
    let said = String::from_utf8_lossy(&out.stdout);
    let db = path(dir, "k.db");
    // The gap is recorded, with its range, …
    assert_eq!(
        rows(&db, "SELECT partition, \"offset\", reason FROM rejects"),
        vec![vec!["0".to_owned(), "1000".to_owned(), "data_loss".to_owned()]],
        "{said}"
    );
    let detail = rows(&db, "SELECT detail FROM rejects")[0][0].clone();
    assert!(
        detail.contains(&format!("offsets 1000..{low} ({} records)", low - 1000)),
        "{detail}"
    );
    // … reported as it happens, …
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("records lost"), "{stderr}");
    // … and every record still there is read.
    let read = high - low;
    assert!(said.contains(&format!("{read} trades")), "{said}");
    assert_eq!(
        rows(&db, "SELECT sum(trades) FROM candles WHERE window_ms = 60000"),
        vec![vec![(1000 + read).to_string()]]
    );
    assert_eq!(
        rows(&db, "SELECT next_offset FROM source_offsets"),
        vec![vec![high.to_string()]]
    );
}
