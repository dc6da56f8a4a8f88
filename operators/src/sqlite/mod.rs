//! The embedded SQLite sink (`--sink sqlite:PATH`, the default).
//!
//! ```text
//!  Commit ──▶ BEGIN IMMEDIATE; upsert (or merge) candles; insert rejects; upsert source_offsets; COMMIT
//! ```
//!
//! Each [`Commit`] is one transaction, so results and the resume offsets that produced them
//! are durable together. Writes are idempotent on the primary keys: replaying a commit (after
//! a crash between the write and the source learning of it) changes nothing. The exception
//! is a commit of a source that cannot resume ([`Commit::merge_candles`]): such a source
//! never replays, and each of its candles is added to the row an earlier run wrote for the
//! same window (`merge_candle`, done here in Rust on the exactly parsed TEXT), so a restart
//! of a live feed within a window keeps both runs' trades. Prices and volumes are stored as
//! exact decimal TEXT (SQLite has no exact NUMERIC: its NUMERIC affinity rounds to 15
//! digits); the `candles_real` view casts them for arithmetic. A busy database (another
//! connection holding a lock) is retried for up to 60 s by SQLite itself;
//! any other error fails the run with the path in the message.

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::model::{Candle, DecimalError, Fixed, QuoteVolume, Volume};
pub use crate::sink::StoredProgress;
use crate::sink::{Commit, Identity, Writer};

/// The schema this issue's tables need; later components add theirs.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS candles (
    symbol       TEXT    NOT NULL,
    window_ms    INTEGER NOT NULL,
    start_ms     INTEGER NOT NULL,
    open         TEXT    NOT NULL,
    high         TEXT    NOT NULL,
    low          TEXT    NOT NULL,
    close        TEXT    NOT NULL,
    volume       TEXT    NOT NULL,
    quote_volume TEXT,
    vwap         TEXT,
    trades       INTEGER,
    PRIMARY KEY (symbol, window_ms, start_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejects (
    source      TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    detail      TEXT,
    raw         BLOB,
    PRIMARY KEY (source, partition, "offset")
);
CREATE INDEX IF NOT EXISTS rejects_by_reason ON rejects (reason);
CREATE TABLE IF NOT EXISTS source_offsets (
    source      TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    finished    INTEGER NOT NULL DEFAULT 0,
    updated_ms  INTEGER NOT NULL,
    max_event_ms INTEGER,
    PRIMARY KEY (source, partition)
);
CREATE TABLE IF NOT EXISTS source_identity (
    source      TEXT    NOT NULL PRIMARY KEY,
    fingerprint TEXT    NOT NULL,
    settings    TEXT    NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS resume_frontier (
    source      TEXT    NOT NULL PRIMARY KEY,
    frontier_ms INTEGER,
    updated_ms  INTEGER NOT NULL
);
CREATE VIEW IF NOT EXISTS candles_real AS
SELECT symbol, window_ms, start_ms,
       CAST(open AS REAL) AS open, CAST(high AS REAL) AS high, CAST(low AS REAL) AS low,
       CAST(close AS REAL) AS close, CAST(volume AS REAL) AS volume,
       CAST(quote_volume AS REAL) AS quote_volume, CAST(vwap AS REAL) AS vwap, trades
FROM candles;
"#;

/// Writes commits into a SQLite database file.
#[derive(Debug)]
pub struct SqliteWriter {
    path: String,
    connection: Connection,
}

impl SqliteWriter {
    /// Opens (creating if needed) the database at `path` and its tables.
    pub fn open(path: &str) -> Result<SqliteWriter, String> {
        let fail = |e: rusqlite::Error| format!("sqlite:{path}: {e}");
        let connection = Connection::open(path).map_err(fail)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(60))
            .map_err(fail)?;
        // WAL lets readers (`tickflow sql`, the HTTP endpoint) query while the run writes;
        // synchronous=NORMAL in WAL mode still never corrupts, and a crash loses at most the
        // last transactions, which the stored offsets make the run redo.
        connection
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(fail)?;
        connection.execute_batch(SCHEMA).map_err(fail)?;
        migrate(&connection).map_err(fail)?;
        Ok(SqliteWriter {
            path: path.to_owned(),
            connection,
        })
    }

    /// Where an earlier run into the database at `path` left `source`: each partition's
    /// resume offset and running maximum, and the frontier up to which windows are
    /// committed (`None` when there was no earlier run or its input ended).
    pub fn stored_progress(path: &str, source: &str) -> Result<StoredProgress, String> {
        if !std::path::Path::new(path).exists() {
            return Ok(StoredProgress::default());
        }
        let fail = |e: rusqlite::Error| format!("sqlite:{path}: {e}");
        let connection = Connection::open(path).map_err(fail)?;
        connection.execute_batch(SCHEMA).map_err(fail)?;
        migrate(&connection).map_err(fail)?;
        let mut statement = connection
            .prepare(
                "SELECT partition, next_offset, max_event_ms FROM source_offsets WHERE source = ?1",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([source], |row| {
                let max: Option<i64> = row.get(2)?;
                let offset: i64 = row.get(1)?;
                Ok((
                    row.get::<_, u32>(0)?,
                    (offset as u64, max.map(|m| m as u64)),
                ))
            })
            .map_err(fail)?;
        let partitions = rows.collect::<Result<_, _>>().map_err(fail)?;
        let frontier: Option<i64> = connection
            .query_row(
                "SELECT frontier_ms FROM resume_frontier WHERE source = ?1",
                [source],
                |row| row.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(fail(e)),
            })?;
        Ok(StoredProgress {
            partitions,
            frontier: frontier.map(|f| f as u64),
        })
    }

    /// The identity stored with `source`'s progress in the database at `path`, if any.
    pub fn stored_identity(path: &str, source: &str) -> Result<Option<Identity>, String> {
        if !std::path::Path::new(path).exists() {
            return Ok(None);
        }
        let fail = |e: rusqlite::Error| format!("sqlite:{path}: {e}");
        let connection = SqliteWriter::open(path)?.connection;
        connection
            .query_row(
                "SELECT settings FROM source_identity WHERE source = ?1",
                [source],
                |row| row.get::<_, String>(0),
            )
            .map(|text| Some(Identity::from_text(&text)))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(fail(e)),
            })
    }

    /// Stores `identity` as `source`'s.
    pub fn record_identity(path: &str, source: &str, identity: &Identity) -> Result<(), String> {
        let fail = |e: rusqlite::Error| format!("sqlite:{path}: {e}");
        let connection = SqliteWriter::open(path)?.connection;
        connection
            .execute(
                "INSERT INTO source_identity (source, fingerprint, settings, updated_ms) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (source) DO UPDATE SET \
                 fingerprint = excluded.fingerprint, settings = excluded.settings, \
                 updated_ms = excluded.updated_ms",
                params![
                    source,
                    identity.fingerprint(),
                    identity.to_text(),
                    crate::source::now_ms() as i64
                ],
            )
            .map(drop)
            .map_err(fail)
    }

    /// Discards `source`'s progress and results (`--fresh`): its offsets, identity and
    /// rejects, and the result tables, which it must then be the only source to have written.
    pub fn discard(path: &str, source: &str) -> Result<(), String> {
        if !std::path::Path::new(path).exists() {
            return Ok(());
        }
        let fail = |e: rusqlite::Error| format!("sqlite:{path}: {e}");
        let mut connection = SqliteWriter::open(path)?.connection;
        let tx = connection.transaction().map_err(fail)?;
        let others: Vec<String> = {
            let mut statement = tx
                .prepare(
                    "SELECT source FROM source_offsets WHERE source <> ?1 \
                     UNION SELECT source FROM resume_frontier WHERE source <> ?1 \
                     UNION SELECT source FROM source_identity WHERE source <> ?1 ORDER BY 1",
                )
                .map_err(fail)?;
            let rows = statement
                .query_map([source], |row| row.get(0))
                .map_err(fail)?;
            rows.collect::<Result<_, _>>().map_err(fail)?
        };
        if !others.is_empty() {
            return Err(crate::sink::refuse_discard(
                &format!("sqlite:{path}"),
                source,
                &others,
            ));
        }
        tx.execute_batch("DELETE FROM candles;").map_err(fail)?;
        for table in [
            "rejects",
            "source_offsets",
            "resume_frontier",
            "source_identity",
        ] {
            tx.execute(&format!("DELETE FROM {table} WHERE source = ?1"), [source])
                .map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }

    fn write_commit(&mut self, commit: &Commit) -> rusqlite::Result<()> {
        let now = crate::source::now_ms() as i64;
        // Immediate: the write lock is taken (or waited for) at BEGIN, so the rows that
        // candles merge into cannot change between reading and writing them.
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stored = tx.prepare_cached(
                "SELECT open, high, low, close, volume, quote_volume, trades FROM candles \
                 WHERE symbol = ?1 AND window_ms = ?2 AND start_ms = ?3",
            )?;
            let mut upsert = tx.prepare_cached(
                "INSERT INTO candles (symbol, window_ms, start_ms, open, high, low, close, \
                 volume, quote_volume, vwap, trades) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (symbol, window_ms, start_ms) DO UPDATE SET open = excluded.open, \
                 high = excluded.high, low = excluded.low, close = excluded.close, \
                 volume = excluded.volume, quote_volume = excluded.quote_volume, \
                 vwap = excluded.vwap, trades = excluded.trades",
            )?;
            for c in &commit.candles {
                let merged = if commit.merge_candles {
                    let key = params![c.symbol.as_str(), c.window_ms as i64, c.start_ms as i64];
                    match stored
                        .query_row(key, |row| stored_candle(row, c))
                        .optional()?
                    {
                        Some(earlier) => merge_candle(&earlier, c)
                            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
                        None => None,
                    }
                } else {
                    None
                };
                let c = merged.as_ref().unwrap_or(c);
                upsert.execute(params![
                    c.symbol.as_str(),
                    c.window_ms as i64,
                    c.start_ms as i64,
                    c.open.to_string(),
                    c.high.to_string(),
                    c.low.to_string(),
                    c.close.to_string(),
                    c.volume.to_string(),
                    c.quote_volume.map(|q| q.to_string()),
                    c.vwap.map(|v| v.to_string()),
                    c.trades.map(|t| t as i64),
                ])?;
            }
            let mut reject = tx.prepare_cached(
                "INSERT INTO rejects (source, partition, \"offset\", received_ms, reason, detail, raw) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )?;
            for r in &commit.rejects {
                // Valid UTF-8 is kept as TEXT so it reads naturally; anything else as a BLOB.
                let raw: rusqlite::types::Value = match std::str::from_utf8(&r.raw) {
                    Ok(text) => text.to_owned().into(),
                    Err(_) => r.raw.clone().into(),
                };
                reject.execute(params![
                    r.source,
                    r.partition,
                    r.offset as i64,
                    r.received_ms as i64,
                    r.reason,
                    r.detail,
                    raw,
                ])?;
            }
            let mut offset = tx.prepare_cached(
                "INSERT INTO source_offsets (source, partition, next_offset, finished, updated_ms, \
                 max_event_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (source, partition) \
                 DO UPDATE SET next_offset = excluded.next_offset, finished = excluded.finished, \
                 updated_ms = excluded.updated_ms, max_event_ms = excluded.max_event_ms",
            )?;
            for o in &commit.offsets {
                offset.execute(params![
                    o.source,
                    o.partition,
                    o.next_offset as i64,
                    o.finished,
                    now,
                    o.max_event_ms.map(|m| m as i64),
                ])?;
            }
            tx.execute(
                "INSERT INTO resume_frontier (source, frontier_ms, updated_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (source) DO UPDATE SET frontier_ms = excluded.frontier_ms, \
                 updated_ms = excluded.updated_ms",
                params![commit.source, commit.resume_frontier.map(|f| f as i64), now],
            )?;
        }
        tx.commit()
    }
}

impl Writer for SqliteWriter {
    fn write(&mut self, commit: &Commit) -> Result<(), String> {
        self.write_commit(commit)
            .map_err(|e| format!("sqlite:{}: {e}", self.path))
    }
}

/// The candle stored in `row` (`open, high, low, close, volume, quote_volume, trades`) for
/// the window of `key`, its decimals parsed exactly from their TEXT.
fn stored_candle(row: &Row<'_>, key: &Candle) -> rusqlite::Result<Candle> {
    fn decimal<T>(
        row: &Row<'_>,
        index: usize,
        parse: fn(&[u8]) -> Result<T, DecimalError>,
    ) -> rusqlite::Result<Option<T>> {
        let Some(text) = row.get::<_, Option<String>>(index)? else {
            return Ok(None);
        };
        parse(text.as_bytes()).map(Some).map_err(|e| {
            let what = format!("a stored candle holds {text:?}: {e}");
            rusqlite::Error::FromSqlConversionFailure(index, Type::Text, what.into())
        })
    }
    // The schema makes these NOT NULL.
    fn required<T>(index: usize, value: Option<T>) -> rusqlite::Result<T> {
        value.ok_or_else(|| rusqlite::Error::InvalidColumnType(index, "NULL".into(), Type::Null))
    }
    let trades = match row.get::<_, Option<i64>>(6)? {
        Some(t) => Some(u64::try_from(t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(6, Type::Integer, Box::new(e))
        })?),
        None => None,
    };
    Ok(Candle {
        symbol: key.symbol,
        window_ms: key.window_ms,
        start_ms: key.start_ms,
        open: required(0, decimal(row, 0, Fixed::parse)?)?,
        high: required(1, decimal(row, 1, Fixed::parse)?)?,
        low: required(2, decimal(row, 2, Fixed::parse)?)?,
        close: required(3, decimal(row, 3, Fixed::parse)?)?,
        volume: required(4, decimal(row, 4, Volume::parse)?)?,
        quote_volume: decimal(row, 5, QuoteVolume::parse)?,
        // Recomputed from the sums when merging.
        vwap: None,
        trades,
    })
}

/// `later` added to `earlier`, a candle an earlier run wrote for the same window: the run
/// that restarted a source that cannot resume contributes the trades it saw to the window.
///
/// Volume, quote volume and trade count add up exactly; high is the greater, low the lesser;
/// VWAP is the summed quote volume over the summed volume, rounded as every VWAP is
/// ([`QuoteVolume::div_volume`]). Open stays the earlier run's and close becomes the later
/// run's: a live feed's restart sees later trades, so in event time the earlier run's
/// contribution comes first. `None` (replace the row as before) when either candle lacks the
/// sums to add, as candles read from a candle file do. An error only when the trade count
/// overflows.
fn merge_candle(earlier: &Candle, later: &Candle) -> Result<Option<Candle>, String> {
    let (Some(earlier_quote), Some(earlier_trades), Some(later_quote), Some(later_trades)) = (
        earlier.quote_volume,
        earlier.trades,
        later.quote_volume,
        later.trades,
    ) else {
        return Ok(None);
    };
    let trades = earlier_trades
        .checked_add(later_trades)
        .filter(|&t| i64::try_from(t).is_ok())
        .ok_or_else(|| {
            format!(
                "{} {} ms window at {}: the trade count overflows when merging",
                later.symbol.as_str(),
                later.window_ms,
                later.start_ms
            )
        })?;
    // Both rows are sums of tickflow's own trades and together count fewer than 2^63, so
    // the sums cannot wrap (see `Volume` and `QuoteVolume`).
    let mut volume = earlier.volume;
    volume += later.volume;
    let mut quote_volume = earlier_quote;
    quote_volume += later_quote;
    Ok(Some(Candle {
        symbol: later.symbol,
        window_ms: later.window_ms,
        start_ms: later.start_ms,
        open: earlier.open,
        high: earlier.high.max(later.high),
        low: earlier.low.min(later.low),
        close: later.close,
        volume,
        quote_volume: Some(quote_volume),
        vwap: quote_volume.div_volume(volume),
        trades: Some(trades),
    }))
}

/// Brings a database made by an earlier version up to [`SCHEMA`].
fn migrate(connection: &Connection) -> rusqlite::Result<()> {
    let has_max: bool = connection.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('source_offsets') WHERE name = 'max_event_ms'",
        [],
        |row| row.get(0),
    )?;
    if !has_max {
        connection.execute_batch("ALTER TABLE source_offsets ADD COLUMN max_event_ms INTEGER")?;
    }
    Ok(())
}
