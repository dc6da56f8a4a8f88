//! `tickflow sql`: queries on the results (SQLite file or PostgreSQL URL) without a client.

use std::io::Write;

use anyhow::{Context, Result};
use rusqlite::types::ValueRef;

use crate::cli::SqlArgs;

pub fn sql(args: SqlArgs) -> Result<()> {
    let SqlArgs { query, db } = args;
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
    let mut statement = connection
        .prepare(&query)
        .with_context(|| format!("preparing {query:?}"))?;
    let columns = statement.column_count();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "{}", statement.column_names().join("\t"))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The same for a PostgreSQL database: text output as PostgreSQL renders each value, in a
/// read-only session. Messages name the database without its password.
fn postgres(url: &str, query: &str) -> Result<()> {
    use postgres::SimpleQueryMessage;
    let shown = tickflow_operators::postgres::redact(url);
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    client
        .batch_execute("SET default_transaction_read_only = on")
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let messages = client
        .simple_query(query)
        .map_err(|e| anyhow::anyhow!("{shown}: {query:?}: {}", db_message(&e)))?;
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

fn db_message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => error.to_string(),
    }
}
