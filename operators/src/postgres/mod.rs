//! The PostgreSQL sink (`--sink postgres://USER[:PASSWORD]@HOST[:PORT]/DB`).
//!
//! ```text
//!  Commit ──▶ BEGIN
//!             per keyed table:   COPY <table>_stage FROM STDIN (binary)
//!                                  ─▶ [merge rule,] INSERT INTO <table> … ON CONFLICT DO UPDATE / NOTHING
//!             per append table:  COPY <table> FROM STDIN (binary)       (trades, --store-trades)
//!             upsert source_offsets, resume_frontier
//!             upsert sink_commits (source, seq + 1)
//!             COMMIT                                    (no reply? reconnect, read seq back)
//! ```
//!
//! Same contract as the SQLite sink: each [`Commit`] is one transaction with the resume
//! offsets that produced it, and replaying one changes nothing (upserts on the primary keys;
//! append-only rows are never replayed, because the sink drops those an earlier run wrote).
//! Tables and statements are rendered from their declarations ([`crate::schema`]). The rows
//! of a source that cannot resume ([`Commit::merge`]) go through their table's merge rule
//! first (candles add to the rows an earlier run wrote for their windows). Decimals are
//! `NUMERIC`, sent exactly in NUMERIC's binary form ([`numeric`]).
//!
//! Schema: the versioned migrations of [`crate::schema::migration`], recorded in
//! `schema_migrations` and applied at start under an advisory lock, so several processes may
//! start at once; a database a newer tickflow migrated further is refused.
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

use crate::model::{Candle, StoredCandle};
use crate::schema::{self, Dialect, Owner, Row, Table, Value, Write};
use crate::sink::{Commit, Identity, StoredProgress, Writer};

/// How long a lost database is retried before the run fails.
pub const RETRY_FOR: Duration = Duration::from_secs(600);

/// How long one attempt to reach the server may take, unless the URL says
/// (`?connect_timeout=SECONDS`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Lock id taken while migrating ("tickflow" in ASCII, truncated to 63 bits).
const MIGRATION_LOCK: i64 = 0x7469_636b_666c_6f77;

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
    /// Connects to `url` and brings its schema up to date. A database that cannot be reached yet (refused, starting up)
    /// is awaited like one lost mid-run, saying so on stderr every 2 s (even with `--quiet`,
    /// like the warnings of an outage mid-run: nobody should wait on silence); any other error
    /// fails at once.
    pub fn open(url: &str) -> Result<PostgresWriter, String> {
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
        let mut writer = PostgresWriter::open(url)?;
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
        let mut writer = PostgresWriter::open(url)?;
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

    /// Every stored candle of `window_ms`, as
    /// [`crate::sqlite::SqliteWriter::stored_candles`] reads them.
    pub fn stored_candles(url: &str, window_ms: u64) -> Result<Vec<Candle>, String> {
        let mut writer = PostgresWriter::open(url)?;
        let read = |client: &mut Client| {
            client.query(
                "SELECT symbol, window_ms, start_ms, open::text, high::text, low::text, \
                 close::text, volume::text, quote_volume::text, vwap::text, trades \
                 FROM candles WHERE window_ms = $1 ORDER BY symbol, start_ms",
                &[&(window_ms as i64)],
            )
        };
        let rows = writer
            .client()
            .and_then(read)
            .map_err(|e| writer.fail(&e))?;
        rows.iter()
            .map(|row| {
                StoredCandle {
                    symbol: row.get(0),
                    window_ms: row.get(1),
                    start_ms: row.get(2),
                    prices: [row.get(3), row.get(4), row.get(5), row.get(6), row.get(7)],
                    quote_volume: row.get(8),
                    vwap: row.get(9),
                    trades: row.get(10),
                }
                .candle()
                .map_err(|e| format!("{}: {e}", redact(url)))
            })
            .collect()
    }

    /// Stores `identity` as `source`'s.
    pub fn record_identity(url: &str, source: &str, identity: &Identity) -> Result<(), String> {
        let mut writer = PostgresWriter::open(url)?;
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
        let mut writer = PostgresWriter::open(url)?;
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
            for table in schema::TABLES {
                match table.owner {
                    Owner::Shared => tx.execute(&format!("DELETE FROM \"{}\"", table.name), &[]),
                    Owner::Source => tx.execute(
                        &format!("DELETE FROM \"{}\" WHERE source = $1", table.name),
                        &[&source],
                    ),
                }?;
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
                // Per-connection staging tables for the keyed tables' upserts, emptied by
                // every commit.
                let stages: String = schema::TABLES
                    .iter()
                    .filter(|t| t.write != Write::Append)
                    .map(|t| {
                        format!(
                            "CREATE TEMP TABLE \"{0}_stage\" (LIKE \"{0}\") ON COMMIT DELETE ROWS;",
                            t.name
                        )
                    })
                    .collect();
                client.batch_execute(&stages)?;
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
        for (table, rows) in commit.tables() {
            copy_table(&mut tx, table, rows, commit.merge)?;
        }
        let bookkeeping = commit.bookkeeping(seq as u64, crate::source::now_ms());
        for row in &bookkeeping {
            let table = row.table();
            let cells: Vec<Cell<'_>> = row.values.iter().map(Cell).collect();
            let params: Vec<&(dyn ToSql + Sync)> =
                cells.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
            tx.execute(&table.insert(Dialect::Postgres), &params)?;
        }
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

/// Applies the migrations this database lacks ([`schema::migration`]), holding an advisory
/// lock so that concurrent starts apply each exactly once. A database that a newer tickflow
/// migrated further is refused with a server-side error naming the versions (not transient,
/// so the run fails at once with it).
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
    if let Some(&newest) = applied.iter().max() {
        if newest as u32 > schema::VERSION {
            tx.batch_execute(&format!(
                "DO $$ BEGIN RAISE EXCEPTION 'the database is at schema version {newest}, made \
                 by a newer tickflow; this one knows versions up to {}: upgrade tickflow or use \
                 another sink'; END $$",
                schema::VERSION
            ))?;
        }
    }
    for version in 1..=schema::VERSION {
        if applied.contains(&(version as i32)) {
            continue;
        }
        let description = schema::describe(version);
        tracing::info!(version, description, "migrating the database");
        for step in schema::migration(Dialect::Postgres, version) {
            match step {
                schema::Step::Sql(sql) | schema::Step::AddColumn { sql, .. } => {
                    tx.batch_execute(&sql)?
                }
            }
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
            &[&(version as i32), &description],
        )?;
    }
    tx.commit()
}

/// The PostgreSQL type of a column of type `ty`, for binary COPY.
fn pg_type(ty: schema::Type) -> Type {
    match ty {
        schema::Type::Text => Type::TEXT,
        schema::Type::Int32 => Type::INT4,
        schema::Type::Int64 => Type::INT8,
        schema::Type::Bool => Type::BOOL,
        schema::Type::Decimal => Type::NUMERIC,
        schema::Type::Bytes => Type::BYTEA,
    }
}

/// Writes `rows` of `table` by its declared rule: an append-only table's straight into it by
/// binary COPY; a keyed table's into its stage, then (with `merge`, through the table's
/// merge rule first) into the table with `INSERT … SELECT … ON CONFLICT`.
fn copy_table(
    tx: &mut Transaction<'_>,
    table: &Table,
    rows: &[Row],
    merge: bool,
) -> Result<(), postgres::Error> {
    let target = match table.write {
        Write::Append => format!("\"{}\"", table.name),
        Write::Upsert | Write::Ignore => format!("\"{}_stage\"", table.name),
    };
    let types: Vec<Type> = table.columns.iter().map(|c| pg_type(c.ty)).collect();
    let columns = table.column_list();
    let sink = tx.copy_in(&format!(
        "COPY {target} ({columns}) FROM STDIN (FORMAT binary)"
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    for row in rows {
        // Typed by the COPY's column types, as `write` would check them.
        writer.write_raw(row.values.iter().map(Cell))?;
    }
    writer.finish()?;
    if table.write == Write::Append {
        return Ok(());
    }
    if let (true, Some(rule)) = (merge, table.merge.as_ref()) {
        tx.execute(rule.postgres, &[])?;
    }
    tx.execute(
        &format!(
            "INSERT INTO \"{0}\" ({columns}) SELECT {columns} FROM {target}{1}",
            table.name,
            table.on_conflict()
        ),
        &[],
    )?;
    Ok(())
}

/// A [`Value`] as a PostgreSQL parameter of its column's type.
#[derive(Debug)]
struct Cell<'a>(&'a Value);

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Value::Null => Ok(postgres::types::IsNull::Yes),
            Value::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Bool(b) => b.to_sql(ty, out),
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Decimal(s) => Numeric(s).to_sql(ty, out),
            Value::Bytes(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::TEXT,
            Type::INT4,
            Type::INT8,
            Type::BOOL,
            Type::NUMERIC,
            Type::BYTEA,
        ]
        .contains(ty)
    }

    postgres::types::to_sql_checked!();
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
