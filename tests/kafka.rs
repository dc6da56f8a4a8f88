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
    // But not once per poll of every partition: both outages fall within 30 s, and the
    // repeats are counted, not printed (one line from librdkafka's error callback, one from
    // the partitions' polls).
    let lines = reported
        .lines()
        .filter(|l| l.contains("All broker connections are down") && !l.starts_with("tickflow:"))
        .count();
    assert!((1..=2).contains(&lines), "{lines} lines:\n{reported}");
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
            .send(
                BaseRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(line),
            )
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
    produce_lines(
        &bootstrap,
        "kept",
        0,
        &trade_lines(1000..46_000, t0 + 20_000),
    );
    let (low, high) = watermarks(&bootstrap, "kept", 0);
    assert!(
        low > 1000,
        "retention deleted nothing (watermarks {low}..{high})"
    );
    assert_eq!(high, 46_000);

    let out = run(dir, &topic, "sqlite:k.db", &["--exit-at-end"]);
    let said = String::from_utf8_lossy(&out.stdout);
    let db = path(dir, "k.db");
    // The gap is recorded, with its range, …
    assert_eq!(
        rows(&db, "SELECT partition, \"offset\", reason FROM rejects"),
        vec![vec![
            "0".to_owned(),
            "1000".to_owned(),
            "data_loss".to_owned()
        ]],
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
        rows(
            &db,
            "SELECT sum(trades) FROM candles WHERE window_ms = 60000"
        ),
        vec![vec![(1000 + read).to_string()]]
    );
    assert_eq!(
        rows(&db, "SELECT next_offset FROM source_offsets"),
        vec![vec![high.to_string()]]
    );
}

/// CRC-32C (Castagnoli), the checksum of Kafka record batches.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Kafka's zigzag varint.
fn varint(out: &mut Vec<u8>, value: i64) {
    let mut z = ((value << 1) ^ (value >> 63)) as u64;
    while z >= 0x80 {
        out.push(z as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn kafka_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as i16).to_be_bytes());
    out.extend(s.as_bytes());
}

/// Appends a transaction's commit marker (a control record) to `topic`'s `partition`, as a
/// broker does when a transaction commits. librdkafka's mock cluster runs the transaction
/// protocol but writes no markers, so the marker is sent as a real broker writes it: one
/// control batch, in a Produce request (v3) of its own.
fn append_commit_marker(bootstrap: &str, topic: &str, partition: i32) {
    use std::io::{Read, Write};
    // Control record: key = (version 0, type 1 = commit), value = (version 0, epoch 0).
    let (key, value) = ([0u8, 0, 0, 1], [0u8; 6]);
    let mut record = vec![0u8]; // attributes
    varint(&mut record, 0); // timestamp delta
    varint(&mut record, 0); // offset delta
    varint(&mut record, key.len() as i64);
    record.extend(key);
    varint(&mut record, value.len() as i64);
    record.extend(value);
    varint(&mut record, 0); // headers
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // The batch from its attributes on (what the CRC covers).
    let mut covered = Vec::new();
    covered.extend(0x30i16.to_be_bytes()); // transactional | control
    covered.extend(0i32.to_be_bytes()); // last offset delta
    covered.extend(now.to_be_bytes()); // first timestamp
    covered.extend(now.to_be_bytes()); // max timestamp
    covered.extend(1000i64.to_be_bytes()); // producer id
    covered.extend(0i16.to_be_bytes()); // producer epoch
    covered.extend((-1i32).to_be_bytes()); // base sequence
    covered.extend(1i32.to_be_bytes()); // records
    varint(&mut covered, record.len() as i64);
    covered.extend(record);
    let mut batch = Vec::new();
    batch.extend(0i64.to_be_bytes()); // base offset (the broker assigns it)
    batch.extend(((4 + 1 + 4 + covered.len()) as i32).to_be_bytes());
    batch.extend((-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend(crc32c(&covered).to_be_bytes());
    batch.extend(covered);

    let mut request = Vec::new();
    request.extend(0i16.to_be_bytes()); // Produce
    request.extend(3i16.to_be_bytes()); // version 3
    request.extend(7i32.to_be_bytes()); // correlation id
    kafka_string(&mut request, "tickflow-test");
    request.extend((-1i16).to_be_bytes()); // no transactional id
    request.extend(1i16.to_be_bytes()); // acks
    request.extend(10_000i32.to_be_bytes()); // timeout ms
    request.extend(1i32.to_be_bytes()); // topics
    kafka_string(&mut request, topic);
    request.extend(1i32.to_be_bytes()); // partitions
    request.extend(partition.to_be_bytes());
    request.extend((batch.len() as i32).to_be_bytes());
    request.extend(batch);

    let address = bootstrap.split(',').next().expect("a broker");
    let mut stream = std::net::TcpStream::connect(address).expect("broker connects");
    stream
        .write_all(&(request.len() as i32).to_be_bytes())
        .and_then(|()| stream.write_all(&request))
        .expect("request sent");
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).expect("response");
    // correlation id, topics, topic name, partitions, partition, then the error code.
    let name_len = i16::from_be_bytes([response[8], response[9]]) as usize;
    let at = 10 + name_len + 4 + 4;
    let error = i16::from_be_bytes([response[at], response[at + 1]]);
    assert_eq!(error, 0, "the broker refused the commit marker");
}

#[test]
fn exit_at_end_ends_on_a_topic_whose_transactions_end_in_markers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let cluster = mock_cluster("txn", 2);
    let bootstrap = cluster.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "tickflow-test")
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(10))
        .expect("transactions start");
    let t0 = 1_700_000_000_000;
    for ids in [0..500u64, 500..1000, 1000..1500] {
        producer.begin_transaction().expect("begins");
        for (id, line) in ids
            .clone()
            .zip(trade_lines(ids.clone(), t0 + ids.start * 10))
        {
            producer
                .send(
                    BaseRecord::<(), _>::to("txn")
                        .partition((id % 2) as i32)
                        .payload(&line),
                )
                .expect("queued");
        }
        producer
            .commit_transaction(Duration::from_secs(10))
            .expect("commits");
        for partition in 0..2 {
            append_commit_marker(&bootstrap, "txn", partition);
        }
    }
    // Each partition: 750 trades and 3 markers, the last marker at its end.
    for partition in 0..2 {
        assert_eq!(watermarks(&bootstrap, "txn", partition), (0, 753));
    }

    let topic = format!("kafka://{bootstrap}/txn");
    let mut child = spawn_tickflow(
        dir,
        &[
            "run",
            "--source",
            &topic,
            "--exit-at-end",
            "--sink",
            "sqlite:t.db",
            "-w",
            "2",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("status").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ended = child.try_wait().expect("status").is_some();
    let out = if ended {
        child.wait_with_output().expect("output")
    } else {
        interrupt(child)
    };
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        ended,
        "--exit-at-end did not end within 30 s: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    assert!(said.contains("1500 trades"), "{said}");
    assert_eq!(
        rows(
            &path(dir, "t.db"),
            "SELECT count(*), sum(next_offset) FROM source_offsets"
        ),
        vec![vec!["2".to_owned(), "1506".to_owned()]]
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Writes trades `ids` at the wall-clock time, spread over `partitions` in turn.
fn produce_live(producer: &BaseProducer, topic: &str, partitions: u64, ids: std::ops::Range<u64>) {
    for id in ids {
        let line = &trade_lines(id..id + 1, now_ms())[0];
        producer
            .send(
                BaseRecord::<(), _>::to(topic)
                    .partition((id % partitions) as i32)
                    .payload(line),
            )
            .expect("queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

fn trades_committed(db: &std::path::Path) -> u64 {
    if !db.exists() {
        return 0;
    }
    rows(
        db,
        "SELECT coalesce(sum(trades), 0) FROM candles WHERE window_ms = 1000",
    )[0][0]
        .parse()
        .unwrap_or(0)
}

fn wait_for_trades(db: &std::path::Path, want: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let have = trades_committed(db);
        if have >= want || Instant::now() >= deadline {
            return have;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_unreachable_broker_never_makes_its_partitions_idle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let cluster = mock_cluster("live", 2);
    let bootstrap = cluster.bootstrap_servers();
    // acks=0: the producer never waits for the broker, whose answers are held back below.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "0")
        .create()
        .expect("producer");
    let topic = format!("kafka://{bootstrap}/live");
    let child = spawn_tickflow(
        dir,
        &[
            "run",
            "--source",
            &topic,
            "--idle-timeout",
            "1s",
            "--lateness",
            "5s",
            "--windows",
            "1s",
            "--sink",
            "sqlite:o.db",
            "-w",
            "2",
        ],
    );
    let db = path(dir, "o.db");
    // A live feed (event time = wall time), read and committed while the broker is there.
    produce_live(&producer, "live", 2, 0..50);
    assert_eq!(wait_for_trades(&db, 50, Duration::from_secs(30)), 50);

    // The outage: the broker stops answering (its answers are held back), trades keep being
    // written, and then it is unreachable for longer than the idle timeout.
    cluster
        .broker_round_trip_time(1, Duration::from_secs(60))
        .expect("rtt");
    produce_live(&producer, "live", 2, 50..100);
    std::thread::sleep(Duration::from_millis(300));
    cluster.broker_down(1).expect("broker down");
    std::thread::sleep(Duration::from_secs(8));
    // The run could not see the trades written during the outage.
    assert_eq!(
        trades_committed(&db),
        50,
        "trades were read during the outage"
    );
    cluster
        .broker_round_trip_time(1, Duration::ZERO)
        .expect("rtt");
    cluster.broker_up(1).expect("broker up");

    // Once it is back, they are read and counted: none is late.
    let committed = wait_for_trades(&db, 100, Duration::from_secs(40));
    let out = interrupt(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let late = rows(&db, "SELECT count(*) FROM rejects WHERE reason = 'late'")[0][0].clone();
    assert_eq!(
        (committed, late.as_str()),
        (100, "0"),
        "trades written while the broker was unreachable were judged late\n{stderr}"
    );
    assert!(stderr.contains("brokers are down"), "{stderr}");
}

#[test]
fn a_stored_offset_past_the_partitions_end_is_a_recorded_data_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let cluster = mock_cluster("again", 1);
    let bootstrap = cluster.bootstrap_servers();
    let topic = format!("kafka://{bootstrap}/again");
    let t0 = 1_700_000_000_000;
    produce_lines(&bootstrap, "again", 0, &trade_lines(0..100, t0));
    run(dir, &topic, "sqlite:r.db", &["--exit-at-end"]);
    // As if the topic had been deleted and recreated after a run that read 5000 records of
    // the old one: the stored offset lies past the new partition's end.
    let db = path(dir, "r.db");
    let changed = rusqlite::Connection::open(&db)
        .expect("database opens")
        .execute("UPDATE source_offsets SET next_offset = 5000", [])
        .expect("updated");
    assert_eq!(changed, 1);
    produce_lines(&bootstrap, "again", 0, &trade_lines(100..200, t0 + 5_000));

    let out = run(dir, &topic, "sqlite:r.db", &["--exit-at-end"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        rows(
            &db,
            "SELECT \"offset\", reason FROM rejects WHERE reason = 'data_loss'"
        ),
        vec![vec!["5000".to_owned(), "data_loss".to_owned()]],
        "{said}"
    );
    let detail = rows(&db, "SELECT detail FROM rejects WHERE reason = 'data_loss'")[0][0].clone();
    assert!(detail.contains("ends at offset 200"), "{detail}");
    // The partition is read again from its first offset, to its end.
    assert!(
        said.contains("200 trades") || said.contains("100 trades"),
        "{said}"
    );
    assert_eq!(
        rows(&db, "SELECT next_offset FROM source_offsets"),
        vec![vec!["200".to_owned()]]
    );
}

#[test]
fn records_deleted_while_a_live_run_cannot_reach_them_are_a_recorded_data_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let cluster = mock_cluster("behind", 1);
    let bootstrap = cluster.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "0")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let topic = format!("kafka://{bootstrap}/behind");
    let child = spawn_tickflow(
        dir,
        &[
            "run",
            "--source",
            &topic,
            "--idle-timeout",
            "1s",
            "--lateness",
            "5s",
            "--windows",
            "1s",
            "--sink",
            "sqlite:b.db",
            "-w",
            "1",
        ],
    );
    let db = path(dir, "b.db");
    produce_live(&producer, "behind", 1, 0..20);
    assert_eq!(wait_for_trades(&db, 20, Duration::from_secs(30)), 20);

    // The run cannot fetch (the broker holds its answers back) while so much is written that
    // retention deletes the offsets it would read next; then it loses the connection.
    cluster
        .broker_round_trip_time(1, Duration::from_secs(60))
        .expect("rtt");
    let start = now_ms();
    for id in 20..46_000u64 {
        let t = start + (id - 20) / 100;
        let line = format!(
            r#"{{"e":"trade","E":{t},"s":"BTCUSDT","t":{id},"p":"43000.5","q":"0.01","b":1,"a":2,"T":{t},"m":true}}"#
        );
        producer
            .send(
                BaseRecord::<(), _>::to("behind")
                    .partition(0)
                    .payload(&line),
            )
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
    std::thread::sleep(Duration::from_millis(500));
    cluster.broker_down(1).expect("broker down");
    std::thread::sleep(Duration::from_secs(2));
    cluster
        .broker_round_trip_time(1, Duration::ZERO)
        .expect("rtt");
    cluster.broker_up(1).expect("broker up");
    let (low, high) = watermarks(&bootstrap, "behind", 0);
    assert!(
        low > 20,
        "retention deleted nothing (watermarks {low}..{high})"
    );

    // The gap is recorded mid-run, and every record still there is read.
    let want = 20 + (high - low) as u64;
    let committed = wait_for_trades(&db, want, Duration::from_secs(40));
    let out = interrupt(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(committed, want, "{stderr}");
    assert_eq!(
        rows(&db, "SELECT \"offset\", reason, detail FROM rejects"),
        vec![vec![
            "20".to_owned(),
            "data_loss".to_owned(),
            format!(
                "offsets 20..{low} ({} records) were lost: deleted from the topic before they were read (retention, or the topic was recreated); reading on from offset {low}",
                low - 20
            )
        ]],
        "{stderr}"
    );
}
