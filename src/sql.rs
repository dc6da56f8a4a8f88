//! `tickflow sql`: queries on the results (SQLite file or PostgreSQL URL) without a client.

use std::io::Write;

use anyhow::{Context, Result};
use rusqlite::types::ValueRef;

use crate::cli::SqlArgs;

pub fn sql(args: SqlArgs) -> Result<()> {
    let SqlArgs { query, db } = args;
    if query.trim().is_empty() {
        anyhow::bail!("the query is empty");
    }
    if let Some(url) = db
        .to_str()
        .filter(|d| d.starts_with("postgres://") || d.starts_with("postgresql://"))
    {
        return postgres(url, &query);
    }
    if !db.exists() {
        anyhow::bail!(
            "{}: no such database (run `tickflow run` first)",
            db.display()
        );
    }
    let connection =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db.display()))?;
    // A mistake in the query is reported as SQLite words it, without the query again (the
    // user just typed it).
    let mut statement = connection.prepare(&query).map_err(sqlite_error)?;
    let columns = statement.column_count();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "{}", statement.column_names().join("\t"))?;
    let mut rows = statement.query([]).map_err(sqlite_error)?;
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        for i in 0..columns {
            if i > 0 {
                out.write_all(b"\t")?;
            }
            match row.get_ref(i)? {
                ValueRef::Null => out.write_all(b"NULL")?,
                ValueRef::Integer(v) => write!(out, "{v}")?,
                ValueRef::Real(v) => write!(out, "{v}")?,
                ValueRef::Text(t) => out.write_all(t)?,
                ValueRef::Blob(b) => write!(out, "x'{}'", hex(b))?,
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// SQLite's message alone: rusqlite adds the query and a byte offset to errors that point
/// into it (`… in SELECT * FROM nope at offset 14`), and its source is the generic text of
/// the error code (`Error code 1: SQL error or missing database`).
fn sqlite_error(error: rusqlite::Error) -> anyhow::Error {
    match error {
        rusqlite::Error::SqlInputError { msg, .. }
        | rusqlite::Error::SqliteFailure(_, Some(msg)) => anyhow::anyhow!(msg),
        error => anyhow::anyhow!(error.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The same for a PostgreSQL database: text output as PostgreSQL renders each value, in a
/// read-only session. Connection errors name the database without its password; a mistake
/// in the query is the server's message alone.
fn postgres(url: &str, query: &str) -> Result<()> {
    use postgres::SimpleQueryMessage;
    use tickflow_operators::postgres::{describe, redact};
    let shown = redact(url);
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| anyhow::anyhow!("{shown}: {}", describe(&e)))?;
    client
        .batch_execute("SET default_transaction_read_only = on")
        .map_err(|e| anyhow::anyhow!("{shown}: {}", describe(&e)))?;
    let messages = client
        .simple_query(query)
        .map_err(|e| anyhow::anyhow!(query_error(&e)))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut header = false;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) if !header => {
                let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
                writeln!(out, "{}", names.join("\t"))?;
                header = true;
            }
            SimpleQueryMessage::Row(row) => {
                if !header {
                    let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
                    writeln!(out, "{}", names.join("\t"))?;
                    header = true;
                }
                let values: Vec<&str> = (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL"))
                    .collect();
                writeln!(out, "{}", values.join("\t"))?;
            }
            _ => {}
        }
    }
    out.flush()?;
    Ok(())
}

/// What the server said of the query, and where (`syntax error at or near "FROMM" (at
/// character 10)`); the query itself is not repeated.
fn query_error(error: &postgres::Error) -> String {
    use postgres::error::ErrorPosition;
    let Some(db) = error.as_db_error() else {
        return tickflow_operators::postgres::describe(error);
    };
    let mut text = db.message().to_owned();
    if let Some(ErrorPosition::Original(at)) = db.position() {
        text.push_str(&format!(" (at character {at})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    text
}
