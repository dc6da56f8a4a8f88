//! `tickflow sql`: queries on the SQLite results without the sqlite3 CLI.

use std::io::Write;

use anyhow::{Context, Result};
use rusqlite::types::ValueRef;

use crate::cli::SqlArgs;

pub fn sql(args: SqlArgs) -> Result<()> {
    let SqlArgs { query, db } = args;
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
