//! The result tables, each declared once and rendered for SQLite and PostgreSQL.
//!
//! ```text
//!  Table (columns, key, indexes, write rule) ──▶ CREATE TABLE / INDEX      per dialect
//!                                            ──▶ INSERT … ON CONFLICT …    per dialect
//!  Candle, RejectRow, Trade ──Row::from──▶ Row { table, values } ──▶ one sink input
//! ```
//!
//! A dataflow emits typed records; each converts into a [`Row`] of its table ([`tables`]),
//! and every row travels through the one input of the commit sink
//! ([`crate::sink::commit_sink`]), which writes the rows of completed times, the source
//! offsets and a commit sequence number in one transaction. Adding a table is one
//! declaration in [`TABLES`] plus one `From<Record> for Row`.
//!
//! Migrations are versioned and derived from the declarations: every table, column and
//! index says the schema version that introduced it ([`Table::since`], [`Column::since`],
//! [`Index::since`]), and version `n` creates what is new in `n` (see [`migration`]). A
//! released declaration is never edited: a change is a new column or index at a new version.
//! Both sinks record the versions they applied in `schema_migrations`.

pub mod tables;

use serde::{Deserialize, Serialize};

pub use tables::TABLES;

/// The schema version this build writes.
pub const VERSION: u32 = 8;

/// What each schema version brought, for `schema_migrations`.
pub const VERSIONS: &[(u32, &str)] = &[
    (1, "candles, rejects, resume offsets; views"),
    (2, "trades archive (--store-trades)"),
    (
        3,
        "commit sequence numbers, to settle a COMMIT whose reply was lost",
    ),
    (
        4,
        "run identity: what each source's stored results were made from",
    ),
    (
        5,
        "trade accounts in the archive; one index on rejects by reason and time",
    ),
    (6, "quality and alerts"),
    (7, "wash-trading statistics (wash_stats)"),
    (8, "regression models and their predictions"),
];

/// An SQL dialect a sink speaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded default.
    Sqlite,
    /// `--sink postgres://…`.
    Postgres,
}

/// A column's logical type.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// UTF-8 text.
    Text,
    /// A 32-bit signed integer.
    Int32,
    /// A 64-bit signed integer (times in ms, ids, counts).
    Int64,
    /// A boolean (SQLite: 0 or 1).
    Bool,
    /// An exact decimal: `NUMERIC` in PostgreSQL, its decimal TEXT in SQLite, whose NUMERIC
    /// affinity would round it to 15 digits.
    Decimal,
    /// Bytes: `BYTEA` in PostgreSQL; in SQLite, TEXT when they are valid UTF-8 (so they read
    /// naturally) and a BLOB otherwise.
    Bytes,
}

impl Type {
    /// The column type in `dialect`.
    pub fn sql(self, dialect: Dialect) -> &'static str {
        match (dialect, self) {
            (Dialect::Sqlite, Type::Text | Type::Decimal) => "TEXT",
            (Dialect::Sqlite, Type::Int32 | Type::Int64 | Type::Bool) => "INTEGER",
            (Dialect::Sqlite, Type::Bytes) => "BLOB",
            (Dialect::Postgres, Type::Text) => "TEXT",
            (Dialect::Postgres, Type::Int32) => "INTEGER",
            (Dialect::Postgres, Type::Int64) => "BIGINT",
            (Dialect::Postgres, Type::Bool) => "BOOLEAN",
            (Dialect::Postgres, Type::Decimal) => "NUMERIC",
            (Dialect::Postgres, Type::Bytes) => "BYTEA",
        }
    }
}

/// One column of a [`Table`].
#[derive(Debug)]
pub struct Column {
    /// Name (lower case; always quoted in SQL, so keywords such as `offset` are fine).
    pub name: &'static str,
    /// Logical type.
    pub ty: Type,
    /// Whether the column may hold NULL.
    pub nullable: bool,
    /// The schema version that added it.
    pub since: u32,
}

impl Column {
    /// A column that may not hold NULL, present since the table's creation at `since`.
    pub const fn required(name: &'static str, ty: Type, since: u32) -> Column {
        Column {
            name,
            ty,
            nullable: false,
            since,
        }
    }

    /// A column that may hold NULL.
    pub const fn optional(name: &'static str, ty: Type, since: u32) -> Column {
        Column {
            name,
            ty,
            nullable: true,
            since,
        }
    }
}

/// A secondary index.
#[derive(Debug)]
pub struct Index {
    /// Name, unique in the database.
    pub name: &'static str,
    /// Indexed columns, in order.
    pub columns: &'static [&'static str],
    /// PostgreSQL's access method when not a B-tree (`brin` for append-mostly time columns);
    /// SQLite has B-trees only.
    pub postgres_method: Option<&'static str>,
    /// The schema version that added it.
    pub since: u32,
}

/// How a row is written when its key is already present.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Replace the stored row: results recomputed from the same input are the same row.
    Upsert,
    /// Keep the stored row: the key names one input record, written once.
    Ignore,
    /// No key: every row is new (the sink writes each exactly once; see [`Due`]).
    Append,
}

/// When the sink commits a table's rows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Due {
    /// Once the frontier passes the row's time: rows at times before the frontier an earlier
    /// run committed are not written again, and after an early stop those at or after the
    /// stop are left for the next run.
    AtTime,
    /// With the next commit, whatever its time: rows that belong to no window (rejects),
    /// idempotent on their key.
    Eager,
}

/// Whose rows a table holds, for `--fresh`, which discards one source's results.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Rows name their source in a `source` column.
    Source,
    /// Results of whichever sources write the sink: discarded whole (`--fresh` refuses
    /// while other sources have progress in the sink).
    Shared,
}

/// A merge rule in Rust: the stored row and the new one (values in column order) give the
/// row to write, or `None` to write the new row as it is.
pub type Combine = fn(&[Value], &[Value]) -> Result<Option<Vec<Value>>, String>;

/// How a table's rows from a source that cannot resume combine with the rows an earlier run
/// wrote for the same key (see [`crate::sink::SinkOptions::merge`]).
#[derive(Debug)]
pub struct Merge {
    /// Combines a stored row with a new one (values in column order); `None` keeps the
    /// upsert (the new row replaces the stored one).
    pub combine: Combine,
    /// The same rule in PostgreSQL: a statement that merges the rows of the staging table
    /// `<table>_stage` into the table and deletes from the stage the rows it merged; the rest
    /// are then upserted.
    pub postgres: &'static str,
}

/// One declared table.
#[derive(Debug)]
pub struct Table {
    /// Name.
    pub name: &'static str,
    /// Columns, in order: [`Row::values`] follow it.
    pub columns: &'static [Column],
    /// Primary key columns (empty for [`Write::Append`]).
    pub key: &'static [&'static str],
    /// Secondary indexes.
    pub indexes: &'static [Index],
    /// Conflict rule.
    pub write: Write,
    /// When rows are committed.
    pub due: Due,
    /// Whose rows these are.
    pub owner: Owner,
    /// Rows are window results stamped with their window's last ms: the sink measures the
    /// latency from the window's end to its commit on them.
    pub windowed: bool,
    /// How rows of a source that cannot resume merge into an earlier run's.
    pub merge: Option<Merge>,
    /// The schema version that created the table.
    pub since: u32,
}

fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

impl Table {
    /// This table's id in [`TABLES`].
    ///
    /// # Panics
    /// If the table is not in [`TABLES`], a programming error that every test run finds.
    pub fn id(&'static self) -> TableId {
        let index = TABLES
            .iter()
            .position(|t| std::ptr::eq(*t, self))
            .unwrap_or_else(|| panic!("table {} is not in schema::TABLES", self.name));
        TableId(index as u8)
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The indexes of the key's columns.
    pub fn key_columns(&self) -> Vec<usize> {
        self.key
            .iter()
            .map(|k| {
                self.column(k)
                    .unwrap_or_else(|| panic!("{}: key column {k} is not declared", self.name))
            })
            .collect()
    }

    /// `CREATE TABLE` with the columns of schema version `version`.
    pub fn create(&self, dialect: Dialect, version: u32) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .filter(|c| c.since <= version)
            .map(|c| column_sql(c, dialect))
            .collect();
        if !self.key.is_empty() {
            let key: Vec<String> = self.key.iter().map(|k| quote(k)).collect();
            parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n    {}\n)",
            quote(self.name),
            parts.join(",\n    ")
        )
    }

    /// The column list, quoted: `"a", "b"`.
    pub fn column_list(&self) -> String {
        let names: Vec<String> = self.columns.iter().map(|c| quote(c.name)).collect();
        names.join(", ")
    }

    /// What follows an `INSERT … VALUES (…)` or `INSERT … SELECT …` to apply [`Table::write`].
    pub fn on_conflict(&self) -> String {
        match self.write {
            Write::Append => String::new(),
            Write::Ignore => " ON CONFLICT DO NOTHING".to_owned(),
            Write::Upsert => {
                let key: Vec<String> = self.key.iter().map(|k| quote(k)).collect();
                let set: Vec<String> = self
                    .columns
                    .iter()
                    .filter(|c| !self.key.contains(&c.name))
                    .map(|c| format!("{0} = excluded.{0}", quote(c.name)))
                    .collect();
                if set.is_empty() {
                    format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "))
                } else {
                    format!(
                        " ON CONFLICT ({}) DO UPDATE SET {}",
                        key.join(", "),
                        set.join(", ")
                    )
                }
            }
        }
    }

    /// One row's `INSERT` with numbered parameters (`?1` in SQLite, `$1` in PostgreSQL).
    pub fn insert(&self, dialect: Dialect) -> String {
        let mark = match dialect {
            Dialect::Sqlite => '?',
            Dialect::Postgres => '$',
        };
        let params: Vec<String> = (1..=self.columns.len())
            .map(|i| format!("{mark}{i}"))
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({}){}",
            quote(self.name),
            self.column_list(),
            params.join(", "),
            self.on_conflict()
        )
    }

    /// The `SELECT` of the stored row with the key of a row (parameters: the key's values,
    /// in key order), all columns in order.
    pub fn select_by_key(&self, dialect: Dialect) -> String {
        let mark = match dialect {
            Dialect::Sqlite => '?',
            Dialect::Postgres => '$',
        };
        let clauses: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} = {mark}{}", quote(k), i + 1))
            .collect();
        format!(
            "SELECT {} FROM {} WHERE {}",
            self.column_list(),
            quote(self.name),
            clauses.join(" AND ")
        )
    }
}

fn column_sql(column: &Column, dialect: Dialect) -> String {
    format!(
        "{} {}{}",
        quote(column.name),
        column.ty.sql(dialect),
        if column.nullable { "" } else { " NOT NULL" }
    )
}

/// Dialect-specific statements of a schema version that are not tables: views.
#[derive(Debug)]
pub struct Extra {
    /// The schema version.
    pub since: u32,
    /// The statement in SQLite, if any.
    pub sqlite: Option<&'static str>,
    /// The statement in PostgreSQL, if any.
    pub postgres: Option<&'static str>,
}

/// A step of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run this statement.
    Sql(String),
    /// Add this column to this table unless it is there: SQLite databases made before
    /// migrations were versioned have some tables already, so a statement there may find
    /// its work done.
    AddColumn {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// `ALTER TABLE … ADD COLUMN …`.
        sql: String,
    },
}

/// The statements that bring a database at version `version - 1` to `version`: the tables,
/// columns and indexes declared `since` it, and its extras.
pub fn migration(dialect: Dialect, version: u32) -> Vec<Step> {
    let mut steps = Vec::new();
    for table in TABLES {
        if table.since == version {
            steps.push(Step::Sql(table.create(dialect, version)));
        }
        if table.since < version {
            for column in table.columns.iter().filter(|c| c.since == version) {
                steps.push(Step::AddColumn {
                    table: table.name,
                    column: column.name,
                    sql: format!(
                        "ALTER TABLE {} ADD COLUMN {}",
                        quote(table.name),
                        column_sql(column, dialect)
                    ),
                });
            }
        }
        for index in table.indexes.iter().filter(|i| i.since == version) {
            let columns: Vec<String> = index.columns.iter().map(|c| quote(c)).collect();
            let method = match (dialect, index.postgres_method) {
                (Dialect::Postgres, Some(method)) => format!(" USING {method}"),
                _ => String::new(),
            };
            steps.push(Step::Sql(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {}{method} ({})",
                quote(index.name),
                quote(table.name),
                columns.join(", ")
            )));
        }
    }
    for extra in tables::EXTRAS.iter().filter(|e| e.since == version) {
        let sql = match dialect {
            Dialect::Sqlite => extra.sqlite,
            Dialect::Postgres => extra.postgres,
        };
        steps.extend(sql.map(|s| Step::Sql(s.to_owned())));
    }
    steps
}

/// The description of schema version `version`.
pub fn describe(version: u32) -> &'static str {
    VERSIONS
        .iter()
        .find(|(v, _)| *v == version)
        .map_or("", |(_, d)| d)
}

/// A table's position in [`TABLES`]: what a [`Row`] carries across workers and processes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableId(pub u8);

impl TableId {
    /// The declaration.
    pub fn table(self) -> &'static Table {
        TABLES[self.0 as usize]
    }
}

/// One value of a row, typed by its column.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer column ([`Type::Int32`], [`Type::Int64`]).
    Int(i64),
    /// A [`Type::Bool`] column.
    Bool(bool),
    /// A [`Type::Text`] column.
    Text(String),
    /// A [`Type::Decimal`] column: the exact decimal as text (`-12.5`), as tickflow's
    /// decimal types print it.
    Decimal(String),
    /// A [`Type::Bytes`] column.
    Bytes(Vec<u8>),
}

impl Value {
    /// Bytes this value holds on the heap.
    fn heap_bytes(&self) -> usize {
        match self {
            Value::Text(s) | Value::Decimal(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Null | Value::Int(_) | Value::Bool(_) => 0,
        }
    }

    /// The text of a [`Value::Text`] or [`Value::Decimal`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Decimal(s) => Some(s),
            _ => None,
        }
    }

    /// The integer of a [`Value::Int`].
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl From<u64> for Value {
    /// Times, offsets, ids and counts are below 2^63 wherever tickflow makes them (parsing
    /// bounds them); one that is not saturates rather than wrapping negative.
    fn from(v: u64) -> Value {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(i64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// One row of a declared table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Row {
    /// Its table.
    pub table: TableId,
    /// Its values, one per column in declaration order.
    pub values: Vec<Value>,
}

impl Row {
    /// Roughly what the row costs in memory until it is committed.
    pub fn bytes(&self) -> u64 {
        (self.values.iter().map(Value::heap_bytes).sum::<usize>() + 96) as u64
    }

    /// The declaration of its table.
    pub fn table(&self) -> &'static Table {
        self.table.table()
    }
}

#[cfg(test)]
mod tests;
