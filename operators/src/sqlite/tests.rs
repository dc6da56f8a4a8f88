use super::*;
use crate::model::{Candle, Fixed, Symbol, Wide};
use crate::schema::tables::{CANDLES, REJECTS, SOURCE_OFFSETS, TRADES};
use crate::sink::Commit;
use crate::source::{PartitionProgress, RejectRow};

fn temp(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("tickflow-sqlite-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("t.db").to_string_lossy().into_owned()
}

/// `(name, declared type, not null, position in the primary key)` of each column of `table`.
fn columns(connection: &Connection, table: &str) -> Vec<(String, String, bool, u32)> {
    let mut statement = connection
        .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")
        .expect("pragma");
    let rows = statement
        .query_map([table], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// What the declaration says the columns should be, as [`columns`] reads them.
fn declared(table: &Table) -> Vec<(String, String, bool, u32)> {
    table
        .columns
        .iter()
        .map(|c| {
            let pk = table
                .key
                .iter()
                .position(|k| *k == c.name)
                .map_or(0, |i| i as u32 + 1);
            (
                c.name.to_owned(),
                c.ty.sql(Dialect::Sqlite).to_owned(),
                !c.nullable,
                pk,
            )
        })
        .collect()
}

fn indexes(connection: &Connection) -> Vec<String> {
    let mut statement = connection
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .expect("query");
    let rows = statement.query_map([], |r| r.get(0)).expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

#[test]
fn a_new_database_has_every_declared_table_column_and_index() {
    let path = temp("new");
    let writer = SqliteWriter::open(&path).expect("open");
    for table in schema::TABLES {
        assert_eq!(
            columns(&writer.connection, table.name),
            declared(table),
            "{}",
            table.name
        );
    }
    let mut expected: Vec<String> = schema::TABLES
        .iter()
        .flat_map(|t| t.indexes.iter().map(|i| i.name.to_owned()))
        .collect();
    expected.sort();
    assert_eq!(indexes(&writer.connection), expected);
    let versions: Vec<u32> = {
        let mut s = writer
            .connection
            .prepare("SELECT version FROM schema_migrations ORDER BY 1")
            .expect("q");
        let rows = s.query_map([], |r| r.get(0)).expect("q");
        rows.collect::<Result<_, _>>().expect("rows")
    };
    assert_eq!(versions, (1..=schema::VERSION).collect::<Vec<_>>());
    // Opening again changes nothing.
    drop(writer);
    SqliteWriter::open(&path).expect("open again");
}

/// The schema of the first SQLite sink, before migrations were versioned.
const LEGACY: &str = r#"
CREATE TABLE candles (
    symbol TEXT NOT NULL, window_ms INTEGER NOT NULL, start_ms INTEGER NOT NULL,
    open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL,
    volume TEXT NOT NULL, quote_volume TEXT, vwap TEXT, trades INTEGER,
    PRIMARY KEY (symbol, window_ms, start_ms)
) WITHOUT ROWID;
CREATE TABLE rejects (
    source TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    received_ms INTEGER NOT NULL, reason TEXT NOT NULL, detail TEXT, raw BLOB,
    PRIMARY KEY (source, partition, "offset")
);
CREATE INDEX rejects_by_reason ON rejects (reason);
CREATE TABLE source_offsets (
    source TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL,
    PRIMARY KEY (source, partition)
);
CREATE TABLE resume_frontier (
    source TEXT NOT NULL PRIMARY KEY, frontier_ms INTEGER, updated_ms INTEGER NOT NULL
);
INSERT INTO candles VALUES ('BTCUSDT', 1000, 0, '1', '2', '0.5', '1.5', '3', '4.5', '1.5', 3);
INSERT INTO source_offsets VALUES ('file:x', 0, 1234, 0, 1);
INSERT INTO resume_frontier VALUES ('file:x', 1000, 1);
"#;

#[test]
fn a_database_from_before_versioned_migrations_is_brought_up_to_date_in_place() {
    let path = temp("legacy");
    Connection::open(&path)
        .expect("open")
        .execute_batch(LEGACY)
        .expect("legacy schema");
    let writer = SqliteWriter::open(&path).expect("migrated");
    // The column the legacy table lacked is added; the rest are as they were.
    let offsets = columns(&writer.connection, SOURCE_OFFSETS.name);
    assert_eq!(
        offsets.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        SOURCE_OFFSETS
            .columns
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
    );
    assert_eq!(columns(&writer.connection, TRADES.name), declared(&TRADES));
    let names = indexes(&writer.connection);
    assert!(
        !names.contains(&"rejects_by_reason".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"rejects_by_reason_time".to_owned()),
        "{names:?}"
    );
    drop(writer);
    // The rows survive and read back as before.
    let progress = SqliteWriter::stored_progress(&path, "file:x").expect("progress");
    assert_eq!(progress.partitions.get(&0), Some(&(1234, None)));
    assert_eq!(progress.frontier, Some(1000));
    let connection = Connection::open(&path).expect("open");
    let close: String = connection
        .query_row("SELECT close FROM candles", [], |r| r.get(0))
        .expect("the candle");
    assert_eq!(close, "1.5");
}

#[test]
fn a_database_from_a_newer_tickflow_is_refused() {
    let path = temp("newer");
    drop(SqliteWriter::open(&path).expect("open"));
    Connection::open(&path)
        .expect("open")
        .execute(
            "INSERT INTO schema_migrations VALUES (99, 'from the future', 0)",
            [],
        )
        .expect("insert");
    let error = SqliteWriter::open(&path).expect_err("refused");
    assert!(error.contains("schema version 99"), "{error}");
    assert!(error.contains(&format!("sqlite:{path}")), "{error}");
}

fn candle(start_ms: u64, trades: u64) -> Candle {
    Candle {
        symbol: Symbol::new("BTCUSDT").expect("short"),
        window_ms: 1000,
        start_ms,
        open: Fixed(100),
        high: Fixed(100),
        low: Fixed(100),
        close: Fixed(100),
        volume: Wide(i128::from(trades)),
        quote_volume: None,
        vwap: None,
        trades: Some(trades),
    }
}

#[test]
fn a_commit_writes_every_table_with_its_offsets_and_sequence_number_and_replays_idempotently() {
    let path = temp("commit");
    let mut writer = SqliteWriter::open(&path).expect("open");
    let reject = RejectRow {
        source: "s".to_owned(),
        partition: 0,
        offset: 5,
        received_ms: 1,
        reason: "malformed_json".to_owned(),
        detail: "line 1".to_owned(),
        raw: vec![b'{', 0xff],
        symbol: None,
        trade: None,
        id: None,
    };
    let commit = Commit {
        source: "s".to_owned(),
        frontier: Some(2000),
        resume_frontier: Some(2000),
        rows: vec![Row::from(candle(0, 1)), Row::from(reject)],
        offsets: vec![PartitionProgress {
            source: "s".to_owned(),
            partition: 0,
            next_offset: 77,
            max_event_ms: Some(1999),
            finished: false,
            stopped_at: None,
        }],
        ..Commit::default()
    };
    writer.write(&commit).expect("first");
    writer.write(&commit).expect("replayed");
    let mut second = commit.clone();
    second.rows = vec![Row::from(candle(0, 2))];
    writer.write(&second).expect("upsert");
    let c = &writer.connection;
    let count = |table: &str| -> i64 {
        c.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
        .expect("count")
    };
    assert_eq!((count(CANDLES.name), count(REJECTS.name)), (1, 1));
    let trades: i64 = c
        .query_row("SELECT trades FROM candles", [], |r| r.get(0))
        .expect("row");
    assert_eq!(trades, 2, "the later candle replaced the earlier");
    // Bytes that are not UTF-8 stay bytes.
    let raw: Vec<u8> = c
        .query_row("SELECT raw FROM rejects", [], |r| r.get(0))
        .expect("row");
    assert_eq!(raw, vec![b'{', 0xff]);
    let seq: i64 = c
        .query_row("SELECT seq FROM sink_commits WHERE source = 's'", [], |r| {
            r.get(0)
        })
        .expect("seq");
    assert_eq!(seq, 3);
    let progress = SqliteWriter::stored_progress(&path, "s").expect("progress");
    assert_eq!(progress.partitions.get(&0), Some(&(77, Some(1999))));
    assert_eq!(progress.frontier, Some(2000));
}
