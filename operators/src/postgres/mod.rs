//! The PostgreSQL sink (`--sink postgres://USER[:PASSWORD]@HOST[:PORT]/DB`).
//!
//! ```text
//!  Commit ──▶ BEGIN
//!             COPY candles_stage FROM STDIN (binary)  ─▶ [merge into earlier rows,] INSERT INTO candles … ON CONFLICT DO UPDATE
//!             COPY rejects_stage FROM STDIN (binary)  ─▶ INSERT INTO rejects … ON CONFLICT DO NOTHING
//!             COPY trades        FROM STDIN (binary)     (--store-trades)
//!             upsert source_offsets, resume_frontier
//!             upsert sink_commits (source, seq + 1)
//!             COMMIT                                    (no reply? reconnect, read seq back)
//! ```
//!
//! Same contract as the SQLite sink: each [`Commit`] is one transaction with the resume
//! offsets that produced it, and replaying one changes nothing (upserts on the primary keys;
//! trades are never replayed, because the sink drops those an earlier run archived). The
//! candles of a source that cannot resume ([`Commit::merge_candles`]) add to the rows an
//! earlier run wrote for their windows instead (`MERGE_CANDLES`). Prices
//! and volumes are `NUMERIC`, sent exactly in NUMERIC's binary form ([`numeric`]).
//!
//! Schema: versioned migrations ([`MIGRATIONS`]) recorded in `schema_migrations`, applied at
//! start under an advisory lock, so several processes may start at once.
//!
//! Failures: a lost connection or a server that is shutting down or starting up is retried
//! with capped backoff (0.1 s doubling to 5 s) for up to [`RETRY_FOR`], at start (a database
//! not up yet; stderr says so every 2 s) as mid-run, where the sink holds its capability
//! meanwhile, the sources stop at their lag limit, and memory stays bounded. Any other error
//! (authentication, a missing database, a wrong statement) fails at once. A commit that
//! failed before its `COMMIT` was sent is re-run on a new connection. One whose connection
//! broke while `COMMIT` was in flight may have landed: every commit also stores its source's
//! next sequence number in `sink_commits`, so the writer reconnects, reads the number back
//! and re-runs the commit only if it is not there (re-running one that landed would archive
//! its trades twice). A password in the URL never appears in messages: they name the sink by
//! [`redact`]ed URL.

mod numeric;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Transaction};

pub use numeric::Numeric;

use crate::sink::{Commit, Identity, StoredProgress, Writer};

/// How long a lost database is retried before the run fails.
pub const RETRY_FOR: Duration = Duration::from_secs(600);

/// How long one attempt to reach the server may take, unless the URL says
/// (`?connect_timeout=SECONDS`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Lock id taken while migrating ("tickflow" in ASCII, truncated to 63 bits).
const MIGRATION_LOCK: i64 = 0x7469_636b_666c_6f77;

/// The schema, in order. Each runs once per database, in its own transaction; a database is
/// at version `n` when `schema_migrations` lists 1..=n. Never edit a released migration: add
/// one.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "candles, rejects, resume offsets; views with timestamptz",
        r#"
CREATE TABLE candles (
    symbol       TEXT    NOT NULL,
    window_ms    BIGINT  NOT NULL,
    start_ms     BIGINT  NOT NULL,
    open         NUMERIC NOT NULL,
    high         NUMERIC NOT NULL,
    low          NUMERIC NOT NULL,
    close        NUMERIC NOT NULL,
    volume       NUMERIC NOT NULL,
    quote_volume NUMERIC,
    vwap         NUMERIC,
    trades       BIGINT,
    PRIMARY KEY (symbol, window_ms, start_ms)
);
-- "The latest candles of every symbol" and roll-ups scan one window size by time.
CREATE INDEX candles_by_window_start ON candles (window_ms, start_ms);
CREATE TABLE rejects (
    source      TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    "offset"    BIGINT  NOT NULL,
    received_ms BIGINT  NOT NULL,
    reason      TEXT    NOT NULL,
    detail      TEXT,
    raw         BYTEA,
    PRIMARY KEY (source, partition, "offset")
);
CREATE INDEX rejects_by_reason_time ON rejects (reason, received_ms);
CREATE TABLE source_offsets (
    source       TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  BIGINT  NOT NULL,
    finished     BOOLEAN NOT NULL DEFAULT false,
    updated_ms   BIGINT  NOT NULL,
    max_event_ms BIGINT,
    PRIMARY KEY (source, partition)
);
CREATE TABLE resume_frontier (
    source      TEXT   NOT NULL PRIMARY KEY,
    frontier_ms BIGINT,
    updated_ms  BIGINT NOT NULL
);
CREATE VIEW candles_at AS
SELECT symbol, window_ms, to_timestamp(start_ms / 1000.0) AS start_at,
       to_timestamp((start_ms + window_ms) / 1000.0) AS end_at,
       open, high, low, close, volume, quote_volume, vwap, trades
FROM candles;
CREATE VIEW rejects_at AS
SELECT source, partition, "offset", to_timestamp(received_ms / 1000.0) AS received_at,
       reason, detail, encode(raw, 'escape') AS raw_text
FROM rejects;
"#,
    ),
    (
        2,
        "trades archive (--store-trades)",
        r#"
CREATE TABLE trades (
    symbol      TEXT    NOT NULL,
    trade_id    BIGINT  NOT NULL,
    price       NUMERIC NOT NULL,
    qty         NUMERIC NOT NULL,
    time_ms     BIGINT  NOT NULL,
    buyer_maker BOOLEAN NOT NULL
);
-- A BRIN index keeps bulk loads fast; trades arrive roughly in time order.
CREATE INDEX trades_by_time ON trades USING brin (time_ms);
"#,
    ),
    (
        3,
        "commit sequence numbers, to settle a COMMIT whose reply was lost",
        r#"
-- Each commit stores its source's next number in its own transaction: a writer that lost the
-- connection while COMMIT was in flight reads it back to learn whether the commit landed.
CREATE TABLE sink_commits (
    source       TEXT   NOT NULL PRIMARY KEY,
    seq          BIGINT NOT NULL,
    committed_ms BIGINT NOT NULL
);
"#,
    ),
    (
        4,
        "run identity: what each source's stored results were made from",
        r#"
-- A restart compares its source and settings with these before resuming (see README,
-- "Restarts"), so two different runs never mix in one table.
CREATE TABLE source_identity (
    source      TEXT   NOT NULL PRIMARY KEY,
    fingerprint TEXT   NOT NULL,
    settings    TEXT   NOT NULL,
    updated_ms  BIGINT NOT NULL
);
"#,
    ),
];

/// `url` with any password replaced by `***`, for messages and logs.
///
/// ```
/// use tickflow_operators::postgres::redact;
/// assert_eq!(redact("postgres://u:s3cret@h:5432/db"), "postgres://u:***@h:5432/db");
/// assert_eq!(redact("postgres://u@h/db?password=x&a=b"), "postgres://u@h/db?password=***&a=b");
/// assert_eq!(redact("postgres://h/db"), "postgres://h/db");
/// ```
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    if scheme.is_empty() {
        format!("{authority}{tail}")
    } else {
        format!("{scheme}://{authority}{tail}")
    }
}

/// Whether `error` means the connection or the server went away (retry on a new
/// connection) rather than that the statement is wrong.
fn is_transient(error: &postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(code)
        }
        // No SQLSTATE: an I/O error (refused, reset) or a failed connection attempt.
        None => error.as_db_error().is_none(),
    }
}

/// What went wrong, for a message: the server's own words when it answered (`FATAL: database
/// "x" does not exist`), else the error and its causes, each said once (`error connecting to
/// server: Connection refused (os error 111)`). Never contains a password: the client's
/// messages do not quote the connection string.
pub fn describe(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

/// The innermost cause of `error`, short and lower-case (`connection refused`), for the line
/// that says the database is awaited.
fn reason(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.message().to_owned();
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(inner) = innermost.source() {
        innermost = inner;
    }
    let text = innermost.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => text.as_str(),
    };
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        // "Connection refused" → "connection refused", but "TLS …" stays.
        (Some(first), Some(second)) if first.is_uppercase() && !second.is_uppercase() => first
            .to_lowercase()
            .chain(text[first.len_utf8()..].chars())
            .collect(),
        _ => text.to_owned(),
    }
}

/// Writes commits into a PostgreSQL database.
pub struct PostgresWriter {
    url: String,
    config: postgres::Config,
    client: Option<Client>,
    store_trades: bool,
    /// The last sequence number stored in `sink_commits`, by source, as read on (or written
    /// through) the current connection.
    seqs: HashMap<String, i64>,
    /// The resume frontier this writer's last commit stored, by source: what the next commit
    /// must find there (before the first, the one the run read at start).
    frontiers: HashMap<String, Option<i64>>,
}

/// A failed attempt at a commit.
struct Failure {
    error: postgres::Error,
    /// The sequence number the commit stores, when the error came while its `COMMIT` was in
    /// flight: it may have landed.
    in_doubt: Option<i64>,
}

impl From<postgres::Error> for Failure {
    fn from(error: postgres::Error) -> Failure {
        Failure {
            error,
            in_doubt: None,
        }
    }
}

impl std::fmt::Debug for PostgresWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresWriter({})", redact(&self.url))
    }
}

impl PostgresWriter {
    /// Connects to `url` and brings its schema up to date. With `store_trades`, every commit
    /// also archives its trades. A database that cannot be reached yet (refused, starting up)
    /// is awaited like one lost mid-run, saying so on stderr every 2 s (even with `--quiet`,
    /// like the warnings of an outage mid-run: nobody should wait on silence); any other error
    /// fails at once.
    pub fn open(url: &str, store_trades: bool) -> Result<PostgresWriter, String> {
        let mut config: postgres::Config =
            url.parse().map_err(|e| format!("{}: {e}", redact(url)))?;
        if config.get_connect_timeout().is_none() {
            // A host that drops packets would hold each attempt for the system's TCP timeout
            // (minutes), silently; this way it is retried and reported like a refusal.
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut writer = PostgresWriter {
            url: url.to_owned(),
            config,
            client: None,
            store_trades,
            seqs: HashMap::new(),
            frontiers: HashMap::new(),
        };
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut said: Option<Instant> = None;
        loop {
            match writer.client() {
                Ok(_) => return Ok(writer),
                Err(error) if is_transient(&error) && started.elapsed() < RETRY_FOR => {
                    tracing::debug!(
                        sink = %redact(url),
                        error = %describe(&error),
                        retry_in = ?backoff,
                        "database not reachable at start; retrying"
                    );
                    if said.is_none_or(|at| at.elapsed() >= Duration::from_secs(2)) {
                        eprintln!(
                            "tickflow: waiting for the database {} ({}); retrying",
                            redact(url),
                            reason(&error)
                        );
                        said = Some(Instant::now());
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(writer.fail(&error)),
            }
        }
    }

    /// Where an earlier run into the database at `url` left `source` (see
    /// [`StoredProgress`]); the schema is created if missing. Waits for the database as
    /// [`PostgresWriter::open`] does.
    pub fn stored_progress(url: &str, source: &str) -> Result<StoredProgress, String> {
        let mut writer = PostgresWriter::open(url, false)?;
        let read = |client: &mut Client| -> Result<StoredProgress, postgres::Error> {
            let mut progress = StoredProgress::default();
            for row in client.query(
                "SELECT partition, next_offset, max_event_ms FROM source_offsets WHERE source = $1",
                &[&source],
            )? {
                let partition: i32 = row.get(0);
                let next: i64 = row.get(1);
                let max: Option<i64> = row.get(2);
                progress
                    .partitions
                    .insert(partition as u32, (next as u64, max.map(|m| m as u64)));
            }
            let frontier = client.query_opt(
                "SELECT frontier_ms FROM resume_frontier WHERE source = $1",
                &[&source],
            )?;
            progress.frontier = frontier
                .and_then(|row| row.get::<_, Option<i64>>(0))
                .map(|f| f as u64);
            Ok(progress)
        };
        let progress = writer.client().and_then(read);
        progress.map_err(|e| writer.fail(&e))
    }

    /// The identity stored with `source`'s progress, if any.
    pub fn stored_identity(url: &str, source: &str) -> Result<Option<Identity>, String> {
        let mut writer = PostgresWriter::open(url, false)?;
        let read = |client: &mut Client| {
            client
                .query_opt(
                    "SELECT settings FROM source_identity WHERE source = $1",
                    &[&source],
                )
                .map(|row| row.map(|row| Identity::from_text(row.get::<_, &str>(0))))
        };
        let identity = writer.client().and_then(read);
        identity.map_err(|e| writer.fail(&e))
    }

    /// Stores `identity` as `source`'s.
    pub fn record_identity(url: &str, source: &str, identity: &Identity) -> Result<(), String> {
        let mut writer = PostgresWriter::open(url, false)?;
        let now = crate::source::now_ms() as i64;
        let write = |client: &mut Client| {
            client.execute(
                "INSERT INTO source_identity (source, fingerprint, settings, updated_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (source) DO UPDATE SET \
                 fingerprint = excluded.fingerprint, settings = excluded.settings, \
                 updated_ms = excluded.updated_ms",
                &[&source, &identity.fingerprint(), &identity.to_text(), &now],
            )
        };
        let written = writer.client().and_then(write);
        written.map(drop).map_err(|e| writer.fail(&e))
    }

    /// Discards `source`'s progress and results (`--fresh`), as
    /// [`crate::sqlite::SqliteWriter::discard`] does.
    pub fn discard(url: &str, source: &str) -> Result<(), String> {
        let mut writer = PostgresWriter::open(url, false)?;
        let shown = redact(url);
        let discard = |client: &mut Client| -> Result<Result<(), String>, postgres::Error> {
            let mut tx = client.transaction()?;
            let others: Vec<String> = tx
                .query(
                    "SELECT source FROM source_offsets WHERE source <> $1 \
                     UNION SELECT source FROM resume_frontier WHERE source <> $1 \
                     UNION SELECT source FROM source_identity WHERE source <> $1 ORDER BY 1",
                    &[&source],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            if !others.is_empty() {
                return Ok(Err(crate::sink::refuse_discard(&shown, source, &others)));
            }
            tx.batch_execute("DELETE FROM candles; DELETE FROM trades;")?;
            for table in [
                "rejects",
                "source_offsets",
                "resume_frontier",
                "source_identity",
                "sink_commits",
            ] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE source = $1"),
                    &[&source],
                )?;
            }
            tx.commit()?;
            Ok(Ok(()))
        };
        let done = writer.client().and_then(discard);
        done.map_err(|e| writer.fail(&e))?
    }

    fn fail(&self, error: &postgres::Error) -> String {
        format!("{}: {}", redact(&self.url), describe(error))
    }

    /// The connection, made (with the schema brought up to date) if there is none.
    fn client(&mut self) -> Result<&mut Client, postgres::Error> {
        let client = match self.client.take() {
            Some(client) => client,
            None => {
                // Sequence numbers are read again on the new connection.
                self.seqs.clear();
                let mut client = self.config.connect(NoTls)?;
                migrate(&mut client)?;
                // Per-connection staging tables for the upserts, emptied by every commit.
                client.batch_execute(
                    "CREATE TEMP TABLE candles_stage (LIKE candles) ON COMMIT DELETE ROWS;
                     CREATE TEMP TABLE rejects_stage (LIKE rejects) ON COMMIT DELETE ROWS;",
                )?;
                client
            }
        };
        Ok(self.client.insert(client))
    }

    /// The sequence number of `source`'s last commit in the database (0 before the first).
    fn stored_seq(&mut self, source: &str) -> Result<i64, postgres::Error> {
        // Connected first: a new connection forgets what an old one read.
        self.client()?;
        if let Some(&seq) = self.seqs.get(source) {
            return Ok(seq);
        }
        let stored = self
            .client()?
            .query_opt("SELECT seq FROM sink_commits WHERE source = $1", &[&source])?
            .map_or(0, |row| row.get::<_, i64>(0));
        self.seqs.insert(source.to_owned(), stored);
        Ok(stored)
    }

    /// Runs `commit` in one transaction. `Ok(Err(_))` when the source's stored progress is not
    /// what this run resumed from (or last stored): nothing is written then.
    fn write_commit(&mut self, commit: &Commit) -> Result<Result<(), String>, Failure> {
        let seq = self.stored_seq(&commit.source)? + 1;
        let store_trades = self.store_trades;
        let expected = match self.frontiers.get(&commit.source) {
            Some(&frontier) => frontier,
            None => commit.resumed_from.map(|f| f as i64),
        };
        let client = self.client()?;
        let mut tx = client.transaction()?;
        // The run filters what is already archived by the frontier it read at start. If that
        // changed since (a killed run's last COMMIT landed after this run read its progress,
        // or another run writes the same source), writing would archive trades twice: stop
        // instead, claiming nothing; a restart reads the progress as it now is. The row lock
        // also waits for a transaction of a killed run that is still settling.
        let stored: Option<i64> = tx
            .query_opt(
                "SELECT frontier_ms FROM resume_frontier WHERE source = $1 FOR UPDATE",
                &[&commit.source],
            )?
            .and_then(|row| row.get(0));
        if stored != expected {
            return Ok(Err(format!(
                "the stored progress of {} changed under this run (resume frontier {}, this \
                 run expected {}): another run is writing to this sink, or a killed run's last \
                 commit landed after this run read its progress; nothing of this commit was \
                 written. Start the same command again to resume from the stored progress",
                commit.source,
                stored.map_or("none".to_owned(), |f| f.to_string()),
                expected.map_or("none".to_owned(), |f| f.to_string()),
            )));
        }
        copy_candles(&mut tx, commit)?;
        copy_rejects(&mut tx, commit)?;
        if store_trades && !commit.trades.is_empty() {
            copy_trades(&mut tx, commit)?;
        }
        let now = crate::source::now_ms() as i64;
        if !commit.offsets.is_empty() {
            let upsert = tx.prepare(
                "INSERT INTO source_offsets (source, partition, next_offset, finished, updated_ms, \
                 max_event_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, partition) \
                 DO UPDATE SET next_offset = excluded.next_offset, finished = excluded.finished, \
                 updated_ms = excluded.updated_ms, max_event_ms = excluded.max_event_ms",
            )?;
            for o in &commit.offsets {
                tx.execute(
                    &upsert,
                    &[
                        &o.source,
                        &(o.partition as i32),
                        &(o.next_offset as i64),
                        &o.finished,
                        &now,
                        &o.max_event_ms.map(|m| m as i64),
                    ],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO resume_frontier (source, frontier_ms, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (source) DO UPDATE SET frontier_ms = excluded.frontier_ms, \
             updated_ms = excluded.updated_ms",
            &[
                &commit.source,
                &commit.resume_frontier.map(|f| f as i64),
                &now,
            ],
        )?;
        tx.execute(
            "INSERT INTO sink_commits (source, seq, committed_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (source) DO UPDATE SET seq = excluded.seq, \
             committed_ms = excluded.committed_ms",
            &[&commit.source, &seq, &now],
        )?;
        tx.commit().map_err(|error| Failure {
            error,
            in_doubt: Some(seq),
        })?;
        self.seqs.insert(commit.source.clone(), seq);
        self.committed(commit);
        Ok(Ok(()))
    }

    /// Records that `commit` is in the database.
    fn committed(&mut self, commit: &Commit) {
        self.frontiers.insert(
            commit.source.clone(),
            commit.resume_frontier.map(|f| f as i64),
        );
    }
}

impl Writer for PostgresWriter {
    fn write(&mut self, commit: &Commit) -> Result<(), String> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        // The sequence number of an attempt whose COMMIT got no reply.
        let mut in_doubt: Option<i64> = None;
        loop {
            let attempt = match in_doubt.take() {
                None => self.write_commit(commit),
                Some(seq) => match self.stored_seq(&commit.source) {
                    Ok(stored) if stored == seq => {
                        tracing::warn!(
                            sink = %redact(&self.url),
                            source = %commit.source,
                            seq,
                            "the commit whose reply was lost had landed; not running it again"
                        );
                        self.committed(commit);
                        return Ok(());
                    }
                    Ok(stored) => {
                        tracing::warn!(
                            sink = %redact(&self.url),
                            source = %commit.source,
                            seq,
                            stored,
                            "the commit whose reply was lost had not landed; running it again"
                        );
                        self.write_commit(commit)
                    }
                    Err(error) => Err(Failure {
                        error,
                        in_doubt: Some(seq),
                    }),
                },
            };
            let failure = match attempt {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(moved)) => return Err(format!("{}: {moved}", redact(&self.url))),
                Err(failure) => failure,
            };
            if !is_transient(&failure.error) || started.elapsed() >= RETRY_FOR {
                return Err(self.fail(&failure.error));
            }
            match failure.in_doubt {
                Some(seq) => tracing::warn!(
                    sink = %redact(&self.url),
                    error = %describe(&failure.error),
                    seq,
                    retry_in = ?backoff,
                    "database unavailable while COMMIT was in flight; retrying, then checking \
                     whether the commit landed"
                ),
                None => tracing::warn!(
                    sink = %redact(&self.url),
                    error = %describe(&failure.error),
                    retry_in = ?backoff,
                    "database unavailable; retrying the commit"
                ),
            }
            in_doubt = failure.in_doubt;
            self.client = None;
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Applies the migrations this database lacks, each in its own transaction, holding an
/// advisory lock so that concurrent starts apply each exactly once.
fn migrate(client: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     INTEGER     PRIMARY KEY,
             description TEXT        NOT NULL,
             applied_at  TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for &(version, description, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        tracing::info!(version, description, "migrating the database");
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
            &[&version, &description],
        )?;
    }
    tx.commit()
}

fn copy_rows(
    tx: &mut Transaction<'_>,
    statement: &str,
    types: &[Type],
    mut rows: impl FnMut(
        &mut dyn FnMut(&[&(dyn ToSql + Sync)]) -> Result<(), postgres::Error>,
    ) -> Result<(), postgres::Error>,
) -> Result<(), postgres::Error> {
    let sink = tx.copy_in(statement)?;
    let mut writer = BinaryCopyInWriter::new(sink, types);
    rows(&mut |row| writer.write(row))?;
    writer.finish()?;
    Ok(())
}

/// Adds the staged candles of a source that cannot resume ([`Commit::merge_candles`]) to the
/// rows an earlier run wrote for the same windows, and takes them out of the stage (the rest
/// are upserted as usual). The rule is the SQLite sink's (`merge_candle` there): sums add, high
/// is the greater, low the lesser, open stays the earlier run's, close becomes the later's,
/// and a row or candle without quote volume or trade count (a candle file's) is replaced.
///
/// Exactness: sums of NUMERICs are exact, and `trim_scale` only drops trailing zeros, so they
/// read as tickflow writes them. The VWAP is never a NUMERIC quotient (its scale is limited,
/// and rounding it again to 8 digits could round twice): with `Q` the quote volume (scale
/// ≤ 16) and `V` the volume (scale ≤ 8), `Q·10^8 / V` is the VWAP in units of 10^-8, and
/// `div` and `mod` give its integer quotient (truncated) and remainder exactly; the quotient
/// moves one unit away from zero when twice the remainder's magnitude reaches `|V|`, which
/// is `QuoteVolume::div_volume`'s rounding, half away from zero. `FOR UPDATE` keeps the rows
/// as read until the transaction ends.
const MERGE_CANDLES: &str = "\
WITH sums AS (
    SELECT s.symbol, s.window_ms, s.start_ms,
           c.volume + s.volume AS volume,
           c.quote_volume + s.quote_volume AS quote_volume,
           c.trades + s.trades AS trades
    FROM candles_stage s JOIN candles c USING (symbol, window_ms, start_ms)
    WHERE c.quote_volume IS NOT NULL AND c.trades IS NOT NULL
      AND s.quote_volume IS NOT NULL AND s.trades IS NOT NULL
    FOR UPDATE OF c
), merged AS (
    UPDATE candles c SET
        high = GREATEST(c.high, s.high),
        low = LEAST(c.low, s.low),
        close = s.close,
        volume = trim_scale(m.volume),
        quote_volume = trim_scale(m.quote_volume),
        trades = m.trades,
        vwap = CASE WHEN m.volume = 0 THEN NULL ELSE trim_scale(0.00000001 * (
            div(m.quote_volume * 100000000, m.volume)
            + CASE WHEN 2 * abs(mod(m.quote_volume * 100000000, m.volume)) >= abs(m.volume)
                   THEN sign(m.quote_volume) * sign(m.volume) ELSE 0 END)) END
    FROM candles_stage s JOIN sums m USING (symbol, window_ms, start_ms)
    WHERE (c.symbol, c.window_ms, c.start_ms) = (s.symbol, s.window_ms, s.start_ms)
    RETURNING c.symbol, c.window_ms, c.start_ms
)
DELETE FROM candles_stage s USING merged m
WHERE (s.symbol, s.window_ms, s.start_ms) = (m.symbol, m.window_ms, m.start_ms)";

fn copy_candles(tx: &mut Transaction<'_>, commit: &Commit) -> Result<(), postgres::Error> {
    if commit.candles.is_empty() {
        return Ok(());
    }
    use Type as T;
    copy_rows(
        tx,
        "COPY candles_stage (symbol, window_ms, start_ms, open, high, low, close, volume, \
         quote_volume, vwap, trades) FROM STDIN (FORMAT binary)",
        &[
            T::TEXT,
            T::INT8,
            T::INT8,
            T::NUMERIC,
            T::NUMERIC,
            T::NUMERIC,
            T::NUMERIC,
            T::NUMERIC,
            T::NUMERIC,
            T::NUMERIC,
            T::INT8,
        ],
        |write| {
            for c in &commit.candles {
                let (open, high, low, close, volume) = (
                    c.open.to_string(),
                    c.high.to_string(),
                    c.low.to_string(),
                    c.close.to_string(),
                    c.volume.to_string(),
                );
                let quote_volume = c.quote_volume.map(|q| q.to_string());
                let vwap = c.vwap.map(|v| v.to_string());
                write(&[
                    &c.symbol.as_str(),
                    &(c.window_ms as i64),
                    &(c.start_ms as i64),
                    &Numeric(&open),
                    &Numeric(&high),
                    &Numeric(&low),
                    &Numeric(&close),
                    &Numeric(&volume),
                    &quote_volume.as_deref().map(Numeric),
                    &vwap.as_deref().map(Numeric),
                    &c.trades.map(|t| t as i64),
                ])?;
            }
            Ok(())
        },
    )?;
    if commit.merge_candles {
        tx.execute(MERGE_CANDLES, &[])?;
    }
    tx.execute(
        "INSERT INTO candles SELECT * FROM candles_stage \
         ON CONFLICT (symbol, window_ms, start_ms) DO UPDATE SET open = excluded.open, \
         high = excluded.high, low = excluded.low, close = excluded.close, \
         volume = excluded.volume, quote_volume = excluded.quote_volume, \
         vwap = excluded.vwap, trades = excluded.trades",
        &[],
    )?;
    Ok(())
}

fn copy_rejects(tx: &mut Transaction<'_>, commit: &Commit) -> Result<(), postgres::Error> {
    if commit.rejects.is_empty() {
        return Ok(());
    }
    use Type as T;
    copy_rows(
        tx,
        "COPY rejects_stage (source, partition, \"offset\", received_ms, reason, detail, raw) \
         FROM STDIN (FORMAT binary)",
        &[
            T::TEXT,
            T::INT4,
            T::INT8,
            T::INT8,
            T::TEXT,
            T::TEXT,
            T::BYTEA,
        ],
        |write| {
            for r in &commit.rejects {
                write(&[
                    &r.source,
                    &(r.partition as i32),
                    &(r.offset as i64),
                    &(r.received_ms as i64),
                    &r.reason,
                    &r.detail,
                    &r.raw.as_slice(),
                ])?;
            }
            Ok(())
        },
    )?;
    tx.execute(
        "INSERT INTO rejects SELECT * FROM rejects_stage ON CONFLICT DO NOTHING",
        &[],
    )?;
    Ok(())
}

fn copy_trades(tx: &mut Transaction<'_>, commit: &Commit) -> Result<(), postgres::Error> {
    use Type as T;
    let mut price = String::new();
    let mut qty = String::new();
    copy_rows(
        tx,
        "COPY trades (symbol, trade_id, price, qty, time_ms, buyer_maker) FROM STDIN (FORMAT binary)",
        &[T::TEXT, T::INT8, T::NUMERIC, T::NUMERIC, T::INT8, T::BOOL],
        |write| {
            use std::fmt::Write as _;
            for t in &commit.trades {
                price.clear();
                qty.clear();
                let _ = write!(price, "{}", t.price);
                let _ = write!(qty, "{}", t.qty);
                write(&[
                    &t.symbol.as_str(),
                    &(t.id as i64),
                    &Numeric(&price),
                    &Numeric(&qty),
                    &(t.time_ms as i64),
                    &t.buyer_maker,
                ])?;
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_says_so_once() {
        // Nothing listens on port 1 of the loopback interface.
        let Err(error) = Client::connect("postgres://u:secret@127.0.0.1:1/db", NoTls) else {
            panic!("connected to port 1");
        };
        assert!(is_transient(&error));
        let said = describe(&error);
        assert!(
            said.starts_with("error connecting to server: Connection refused"),
            "{said}"
        );
        assert_eq!(said.matches("refused").count(), 1, "{said}");
        assert!(!said.contains("secret"), "{said}");
        assert_eq!(reason(&error), "connection refused");
    }
}
