//! The embedded SQLite sink (`--sink sqlite:PATH`, the default).
//!
//! ```text
//!  Commit ──▶ BEGIN IMMEDIATE; per table: insert, upsert or merge its rows;
//!             upsert source_offsets, resume_frontier, sink_commits; COMMIT
//! ```
//!
//! Each [`Commit`] is one transaction, so results and the resume offsets that produced them
//! are durable together. Tables and statements are rendered from their declarations
//! ([`crate::schema`]); writes are idempotent on the primary keys, so replaying a commit
//! (after a crash between the write and the source learning of it) changes nothing. The
//! exception is a commit of a source that cannot resume ([`Commit::merge`]): such a source
//! never replays, and each of its rows of a table with a merge rule (candles) is combined
//! with the row an earlier run wrote for the same key (done here in Rust on the exactly
//! parsed TEXT), so a restart of a live feed within a window keeps both runs' trades.
//! Decimals are stored as exact TEXT (SQLite has no exact NUMERIC: its NUMERIC affinity
//! rounds to 15 digits); the `candles_real` view casts them for arithmetic.
//!
//! Schema: the versioned migrations of [`crate::schema::migration`], recorded in
//! `schema_migrations` and applied in one immediate transaction, so concurrent starts apply
//! each once. A database made before migrations were versioned is brought up to date in
//! place; one made by a newer tickflow is refused. A busy database (another connection
//! holding a lock) is retried for up to 60 s by SQLite itself; any other error fails the run
//! with the path in the message.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use crate::model::{Candle, StoredCandle};
use crate::schema::{self, Dialect, Owner, Row, Table, Type, Value};
pub use crate::sink::StoredProgress;
use crate::sink::{Commit, Identity, Writer};

/// Writes commits into a SQLite database file.
#[derive(Debug)]
pub struct SqliteWriter {
    path: String,
    /// Started by the first commit; stopped before the connection closes.
    checkpointer: Option<Checkpointer>,
    connection: Connection,
}

/// Moves the WAL into the database on a thread of its own, so that commits never wait for
/// it: SQLite's automatic checkpoint would run inside the commit that crosses its threshold,
/// on the writer thread, with its fsyncs.
///
/// Once commits have written about [`CHECKPOINT_AFTER`] since the last checkpoint, the
/// writer wakes the thread (never waiting for it), which runs a passive checkpoint (one that
/// never blocks the writer); once the WAL holds more than [`WAL_CAP`] it runs a restarting
/// one, which waits for the commit in progress and lets the next start the WAL over, so the
/// file stays bounded while commits come back to back. What is left when the run ends is
/// checkpointed as the last connection closes.
#[derive(Debug)]
struct Checkpointer {
    wake: Option<std::sync::mpsc::SyncSender<()>>,
    /// Row bytes committed since the thread was last woken.
    written: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Row bytes committed between checkpoints: about SQLite's own default (1000 pages).
const CHECKPOINT_AFTER: u64 = 8 << 20;

/// The WAL size past which the checkpointer restarts it.
const WAL_CAP: i64 = 256 << 20;

impl Checkpointer {
    fn start(path: &str, page_size: i64) -> Result<Checkpointer, String> {
        let fail = |e: rusqlite::Error| format!("sqlite:{path}: {e}");
        let connection = Connection::open(path).map_err(fail)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(60))
            .map_err(fail)?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let cap_frames = WAL_CAP / page_size.max(512);
        let thread = std::thread::Builder::new()
            .name("tickflow-checkpoint".into())
            .spawn(move || {
                let checkpoint = |mode: &str| -> rusqlite::Result<(i64, i64)> {
                    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                        Ok((r.get(1)?, r.get(2)?))
                    })
                };
                // Ends when the writer drops its end.
                for () in woken {
                    match checkpoint("PASSIVE") {
                        Ok((log, _)) if log > cap_frames => {
                            if let Err(error) = checkpoint("RESTART") {
                                tracing::debug!(%error, "WAL checkpoint (restart) failed");
                            }
                        }
                        Ok(_) => {}
                        Err(error) => tracing::debug!(%error, "WAL checkpoint failed"),
                    }
                }
            })
            .map_err(|e| format!("sqlite:{path}: cannot start the checkpoint thread: {e}"))?;
        Ok(Checkpointer {
            wake: Some(wake),
            written: 0,
            thread: Some(thread),
        })
    }

    /// Counts `bytes` committed; wakes the thread once enough were.
    fn wrote(&mut self, bytes: u64) {
        self.written += bytes;
        if self.written >= CHECKPOINT_AFTER {
            if let Some(wake) = &self.wake {
                // Full: a checkpoint is due already, which covers these bytes too.
                let _ = wake.try_send(());
            }
            self.written = 0;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl SqliteWriter {
    /// Opens (creating if needed) the database at `path` and its tables.
    pub fn open(path: &str) -> Result<SqliteWriter, String> {
        let fail = |e: rusqlite::Error| format!("sqlite:{path}: {e}");
        let connection = Connection::open(path).map_err(fail)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(60))
            .map_err(fail)?;
        // 16 KiB pages for a new database (an existing one keeps its size): a reject row
        // with its raw line is about 1 KiB, and 4 KiB pages held three of them, a quarter
        // wasted. WAL lets readers (`tickflow sql`, the HTTP endpoint) query while the run
        // writes; synchronous=NORMAL in WAL mode still never corrupts, and a crash loses at
        // most the last transactions, which the stored offsets make the run redo. A 32 MiB
        // page cache holds a commit's pages without spilling them into the WAL mid-way.
        connection
            .execute_batch(
                "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                 PRAGMA cache_size=-32768;",
            )
            .map_err(fail)?;
        migrate(&connection).map_err(|e| format!("sqlite:{path}: {e}"))?;
        Ok(SqliteWriter {
            path: path.to_owned(),
            checkpointer: None,
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
        let connection = SqliteWriter::open(path)?.connection;
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

    /// Every stored candle of `window_ms`, by symbol and start (none when the database
    /// does not exist): what a resumed run's models learn from before its replay.
    pub fn stored_candles(path: &str, window_ms: u64) -> Result<Vec<Candle>, String> {
        if !std::path::Path::new(path).exists() {
            return Ok(Vec::new());
        }
        let fail = |e: rusqlite::Error| format!("sqlite:{path}: reading candles: {e}");
        let connection = SqliteWriter::open(path)?.connection;
        let mut statement = connection
            .prepare(
                "SELECT symbol, window_ms, start_ms, open, high, low, close, volume, \
                 quote_volume, vwap, trades FROM candles WHERE window_ms = ?1 \
                 ORDER BY symbol, start_ms",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([window_ms as i64], |row| {
                Ok(StoredCandle {
                    symbol: row.get(0)?,
                    window_ms: row.get(1)?,
                    start_ms: row.get(2)?,
                    prices: [
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                        row.get(7)?,
                    ],
                    quote_volume: row.get(8)?,
                    vwap: row.get(9)?,
                    trades: row.get(10)?,
                })
            })
            .map_err(fail)?;
        let mut candles = Vec::new();
        for row in rows {
            candles.push(
                row.map_err(fail)?
                    .candle()
                    .map_err(|e| format!("sqlite:{path}: {e}"))?,
            );
        }
        Ok(candles)
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
        for table in schema::TABLES {
            match table.owner {
                Owner::Shared => tx.execute(&format!("DELETE FROM \"{}\"", table.name), []),
                Owner::Source => tx.execute(
                    &format!("DELETE FROM \"{}\" WHERE source = ?1", table.name),
                    [source],
                ),
            }
            .map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }

    fn write_commit(&mut self, commit: &Commit) -> rusqlite::Result<()> {
        // Immediate: the write lock is taken (or waited for) at BEGIN, so the rows that
        // merges read cannot change between reading and writing them.
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (table, rows) in commit.tables() {
            write_rows(&tx, table, rows, commit.merge)?;
        }
        let seq: Option<i64> = tx
            .query_row(
                "SELECT seq FROM sink_commits WHERE source = ?1",
                [&commit.source],
                |row| row.get(0),
            )
            .optional()?;
        let seq = seq.map_or(0, |s| s.max(0) as u64) + 1;
        let bookkeeping = commit.bookkeeping(seq, crate::source::now_ms());
        for rows in bookkeeping.chunk_by(|a, b| a.table == b.table) {
            write_rows(&tx, rows[0].table(), rows, false)?;
        }
        tx.commit()
    }
}

/// Writes `rows` of `table` by its declared rule; with `merge`, a table's merge rule first
/// combines each row with the one stored for its key.
fn write_rows(
    tx: &rusqlite::Transaction<'_>,
    table: &Table,
    rows: &[Row],
    merge: bool,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(&table.insert(Dialect::Sqlite))?;
    let rule = table.merge.as_ref().filter(|_| merge);
    let mut stored = match rule {
        Some(_) => Some(tx.prepare_cached(&table.select_by_key(Dialect::Sqlite))?),
        None => None,
    };
    let key = table.key_columns();
    for row in rows {
        let mut merged = None;
        if let (Some(rule), Some(stored)) = (rule, stored.as_mut()) {
            let earlier = stored
                .query_row(
                    params_from_iter(key.iter().map(|&i| Cell(&row.values[i]))),
                    |r| read_row(r, table),
                )
                .optional()?;
            if let Some(earlier) = earlier {
                merged = (rule.combine)(&earlier, &row.values)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
            }
        }
        let values = merged.as_deref().unwrap_or(&row.values);
        insert.execute(params_from_iter(values.iter().map(Cell)))?;
    }
    Ok(())
}

/// A stored row of `table`, all columns in order, as values of their declared types.
fn read_row(row: &rusqlite::Row<'_>, table: &Table) -> rusqlite::Result<Vec<Value>> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let value = row.get_ref(i)?;
            if value == ValueRef::Null {
                return Ok(Value::Null);
            }
            Ok(match column.ty {
                Type::Text => Value::Text(row.get(i)?),
                Type::Decimal => Value::Decimal(row.get(i)?),
                Type::Int32 | Type::Int64 => Value::Int(row.get(i)?),
                Type::Bool => Value::Bool(row.get(i)?),
                Type::Bytes => match value {
                    ValueRef::Text(b) | ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                    _ => Value::Text(row.get::<_, String>(i)?),
                },
            })
        })
        .collect()
}

/// A [`Value`] as an SQLite parameter.
struct Cell<'a>(&'a Value);

impl rusqlite::ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Bool(b) => ValueRef::Integer(i64::from(*b)),
            Value::Text(s) | Value::Decimal(s) => ValueRef::Text(s.as_bytes()),
            // Valid UTF-8 is kept as TEXT so it reads naturally; anything else as a BLOB.
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(_) => ValueRef::Text(b),
                Err(_) => ValueRef::Blob(b),
            },
        }))
    }
}

impl Writer for SqliteWriter {
    fn write(&mut self, commit: &Commit) -> Result<(), String> {
        if self.checkpointer.is_none() {
            let fail = |e: rusqlite::Error| format!("sqlite:{}: {e}", self.path);
            // The checkpointer takes over from here (see `Checkpointer`).
            self.connection
                .execute_batch("PRAGMA wal_autocheckpoint=0")
                .map_err(fail)?;
            let page_size: i64 = self
                .connection
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(fail)?;
            self.checkpointer = Some(Checkpointer::start(&self.path, page_size)?);
        }
        self.write_commit(commit)
            .map_err(|e| format!("sqlite:{}: {e}", self.path))?;
        if let Some(checkpointer) = self.checkpointer.as_mut() {
            checkpointer.wrote(commit.rows.iter().map(Row::bytes).sum());
        }
        Ok(())
    }
}

/// Brings the database to [`schema::VERSION`]: applies, in one immediate transaction, the
/// migrations `schema_migrations` does not list. A table that exists already (a database
/// made before migrations were versioned) gains the declared columns it lacks. A database
/// that a newer tickflow migrated further is refused.
fn migrate(connection: &Connection) -> Result<(), String> {
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version     INTEGER PRIMARY KEY,
                 description TEXT    NOT NULL,
                 applied_ms  INTEGER NOT NULL)",
        )
        .map_err(sql_error)?;
    let applied = |connection: &Connection| -> rusqlite::Result<Vec<u32>> {
        let mut statement = connection.prepare("SELECT version FROM schema_migrations")?;
        let versions = statement.query_map([], |row| row.get(0))?;
        versions.collect()
    };
    let known = applied(connection).map_err(sql_error)?;
    if let Some(&newest) = known.iter().max() {
        if newest > schema::VERSION {
            return Err(format!(
                "the database is at schema version {newest}, made by a newer tickflow; this \
                 one knows versions up to {}: upgrade tickflow or use another sink",
                schema::VERSION
            ));
        }
    }
    if (1..=schema::VERSION).all(|v| known.contains(&v)) {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(connection, TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    // Read again under the lock: another process may have migrated meanwhile.
    let known = applied(&tx).map_err(sql_error)?;
    for version in (1..=schema::VERSION).filter(|v| !known.contains(v)) {
        tracing::info!(version, "migrating the SQLite database");
        for step in schema::migration(Dialect::Sqlite, version) {
            match step {
                schema::Step::Sql(statement) => tx.execute_batch(&statement),
                schema::Step::AddColumn {
                    table,
                    column,
                    sql: statement,
                } => add_column(&tx, table, column, &statement),
            }
            .map_err(sql_error)?;
        }
        for table in schema::TABLES.iter().filter(|t| t.since <= version) {
            for column in table.columns.iter().filter(|c| c.since <= version) {
                let statement = format!(
                    "ALTER TABLE \"{}\" ADD COLUMN \"{}\" {}",
                    table.name,
                    column.name,
                    column.ty.sql(Dialect::Sqlite)
                );
                add_column(&tx, table.name, column.name, &statement).map_err(sql_error)?;
            }
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_ms) VALUES (?1, ?2, ?3)",
            params![
                version,
                schema::describe(version),
                crate::source::now_ms() as i64
            ],
        )
        .map_err(sql_error)?;
    }
    tx.commit().map_err(sql_error)
}

fn sql_error(e: rusqlite::Error) -> String {
    e.to_string()
}

/// Runs `sql` (which adds `column` to `table`) unless the column is there.
fn add_column(tx: &Connection, table: &str, column: &str, sql: &str) -> rusqlite::Result<()> {
    let present: bool = tx.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |row| row.get(0),
    )?;
    if !present {
        tx.execute_batch(sql)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
