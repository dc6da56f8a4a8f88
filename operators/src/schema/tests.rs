use super::tables::{CANDLES, REJECTS, TRADES};
use super::*;
use crate::model::{Candle, Fixed, QuoteVolume, Symbol, Trade, Wide};
use crate::source::RejectRow;

fn candle() -> Candle {
    Candle {
        symbol: Symbol::new("ETHUSDT").expect("short"),
        window_ms: 1000,
        start_ms: 5000,
        open: Fixed(150_000_000),
        high: Fixed(200_000_000),
        low: Fixed(100_000_000),
        close: Fixed(120_000_000),
        volume: Wide(300_000_000),
        quote_volume: Some(QuoteVolume::parse(b"4.5").expect("decimal")),
        vwap: Some(Fixed(150_000_000)),
        trades: Some(3),
    }
}

/// Whether `value` may stand in a column of type `ty`.
fn fits(value: &Value, column: &Column) -> bool {
    match (value, column.ty) {
        (Value::Null, _) => column.nullable,
        (Value::Int(i), Type::Int32) => i32::try_from(*i).is_ok(),
        (Value::Int(_), Type::Int64) => true,
        (Value::Bool(_), Type::Bool) => true,
        (Value::Text(_), Type::Text) => true,
        (Value::Decimal(d), Type::Decimal) => {
            Fixed::parse(d.as_bytes()).is_ok() || QuoteVolume::parse(d.as_bytes()).is_ok()
        }
        (Value::Bytes(_), Type::Bytes) => true,
        _ => false,
    }
}

fn check(row: &Row) {
    let table = row.table();
    assert_eq!(row.values.len(), table.columns.len(), "{}", table.name);
    for (value, column) in row.values.iter().zip(table.columns) {
        assert!(
            fits(value, column),
            "{}.{}: {value:?}",
            table.name,
            column.name
        );
    }
}

#[test]
fn every_record_becomes_a_row_of_its_declared_shape() {
    let row = Row::from(candle());
    assert_eq!(row.table, CANDLES.id());
    check(&row);
    // The decimals as text, exactly.
    assert_eq!(row.values[3], Value::Decimal("1.5".to_owned()));
    assert_eq!(row.values[8], Value::Decimal("4.5".to_owned()));
    let trade = Trade {
        symbol: Symbol::new("BTCUSDT").expect("short"),
        id: 7,
        price: Fixed(1),
        qty: Fixed(2),
        time_ms: 9,
        buyer_maker: true,
        buyer: Symbol::new("alice"),
        seller: None,
    };
    let row = Row::from(trade);
    assert_eq!(row.table, TRADES.id());
    check(&row);
    assert_eq!(row.values[2], Value::Decimal("0.00000001".to_owned()));
    assert_eq!(row.values[6], Value::Text("alice".to_owned()));
    assert_eq!(row.values[7], Value::Null);
    let reject = RejectRow {
        source: "file:x".to_owned(),
        partition: 3,
        offset: 10,
        received_ms: 11,
        reason: "late".to_owned(),
        detail: "d".to_owned(),
        raw: vec![0xff, 0],
        symbol: None,
        trade: None,
        id: None,
    };
    let bytes = crate::sink::reject_bytes(&reject);
    let row = Row::from(reject);
    assert_eq!(row.table, REJECTS.id());
    check(&row);
    // The sources count a reject's bytes as the writer counts them off.
    assert_eq!(row.bytes(), bytes);
}

#[test]
fn declarations_are_consistent() {
    let mut names = std::collections::HashSet::new();
    for (i, table) in TABLES.iter().enumerate() {
        assert_eq!(table.id(), TableId(i as u8));
        assert!(names.insert(table.name), "{} declared twice", table.name);
        assert!((1..=VERSION).contains(&table.since), "{}", table.name);
        assert_eq!(
            table.key.is_empty(),
            table.write == Write::Append,
            "{}",
            table.name
        );
        for key in table.key {
            let column = &table.columns[table.column(key).expect("declared")];
            assert!(!column.nullable, "{}.{key} is in the key", table.name);
            assert_eq!(column.since, table.since, "{}.{key}", table.name);
        }
        for column in table.columns {
            assert!(
                (table.since..=VERSION).contains(&column.since),
                "{}.{}",
                table.name,
                column.name
            );
            // A column added later must accept the NULL of the rows that predate it.
            assert!(
                column.since == table.since || column.nullable,
                "{}.{}",
                table.name,
                column.name
            );
        }
        for index in table.indexes {
            assert!(names.insert(index.name), "{} declared twice", index.name);
            assert!(index.columns.iter().all(|c| table.column(c).is_some()));
        }
        if table.owner == Owner::Source {
            assert_eq!(table.columns[0].name, "source", "{}", table.name);
        }
    }
    for version in 1..=VERSION {
        assert!(!describe(version).is_empty(), "version {version}");
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            assert!(!migration(dialect, version).is_empty(), "version {version}");
        }
    }
}

#[test]
fn statements_are_rendered_per_dialect() {
    assert_eq!(
        TRADES.create(Dialect::Postgres, 2),
        "CREATE TABLE IF NOT EXISTS \"trades\" (\n    \"symbol\" TEXT NOT NULL,\n    \
         \"trade_id\" BIGINT NOT NULL,\n    \"price\" NUMERIC NOT NULL,\n    \
         \"qty\" NUMERIC NOT NULL,\n    \"time_ms\" BIGINT NOT NULL,\n    \
         \"buyer_maker\" BOOLEAN NOT NULL\n)"
    );
    assert_eq!(
        migration(Dialect::Postgres, 5)
            .into_iter()
            .filter(|s| matches!(s, Step::AddColumn { .. }))
            .count(),
        2
    );
    assert!(CANDLES
        .create(Dialect::Sqlite, 1)
        .contains("\"open\" TEXT NOT NULL"));
    assert!(REJECTS
        .create(Dialect::Sqlite, 1)
        .contains("PRIMARY KEY (\"source\", \"partition\", \"offset\")"));
    assert_eq!(
        REJECTS.insert(Dialect::Sqlite),
        "INSERT INTO \"rejects\" (\"source\", \"partition\", \"offset\", \"received_ms\", \
         \"reason\", \"detail\", \"raw\") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING"
    );
    assert!(CANDLES
        .insert(Dialect::Postgres)
        .ends_with("ON CONFLICT (\"symbol\", \"window_ms\", \"start_ms\") DO UPDATE SET \"open\" = excluded.\"open\", \"high\" = excluded.\"high\", \"low\" = excluded.\"low\", \"close\" = excluded.\"close\", \"volume\" = excluded.\"volume\", \"quote_volume\" = excluded.\"quote_volume\", \"vwap\" = excluded.\"vwap\", \"trades\" = excluded.\"trades\""));
    assert_eq!(
        CANDLES.select_by_key(Dialect::Postgres),
        "SELECT \"symbol\", \"window_ms\", \"start_ms\", \"open\", \"high\", \"low\", \"close\", \
         \"volume\", \"quote_volume\", \"vwap\", \"trades\" FROM \"candles\" WHERE \
         \"symbol\" = $1 AND \"window_ms\" = $2 AND \"start_ms\" = $3"
    );
}
