//! The declared tables and the records that become their rows.
//!
//! Result tables: `candles`, `rejects`, `trades`, `quality`, `alerts`, `wash_stats`,
//! `models`, `predictions`.
//! Bookkeeping, written by the commit path
//! itself in the same transaction as the results: `source_offsets`, `resume_frontier`,
//! `sink_commits`, `source_identity`.

use super::{Column, Due, Extra, Index, Merge, Owner, Row, Table, Type, Value, Write};
use crate::model::{Alert, Candle, DecimalError, Fixed, QuoteVolume, Symbol, Trade, Volume};
use crate::source::{PartitionProgress, RejectRow};

/// Every table, in a fixed order: a [`super::TableId`] is a position here. Append new tables
/// at the end.
pub static TABLES: &[&Table] = &[
    &CANDLES,
    &REJECTS,
    &TRADES,
    &SOURCE_OFFSETS,
    &RESUME_FRONTIER,
    &SINK_COMMITS,
    &SOURCE_IDENTITY,
    &QUALITY,
    &ALERTS,
    &WASH_STATS,
    &MODELS,
    &PREDICTIONS,
];

/// OHLCV candles and VWAP per symbol and window: `Candle`.
pub static CANDLES: Table = Table {
    name: "candles",
    columns: &[
        Column::required("symbol", Type::Text, 1),
        Column::required("window_ms", Type::Int64, 1),
        Column::required("start_ms", Type::Int64, 1),
        Column::required("open", Type::Decimal, 1),
        Column::required("high", Type::Decimal, 1),
        Column::required("low", Type::Decimal, 1),
        Column::required("close", Type::Decimal, 1),
        Column::required("volume", Type::Decimal, 1),
        Column::optional("quote_volume", Type::Decimal, 1),
        Column::optional("vwap", Type::Decimal, 1),
        Column::optional("trades", Type::Int64, 1),
    ],
    key: &["symbol", "window_ms", "start_ms"],
    // "The latest candles of every symbol" and roll-ups scan one window size by time.
    indexes: &[Index {
        name: "candles_by_window_start",
        columns: &["window_ms", "start_ms"],
        postgres_method: None,
        since: 1,
    }],
    write: Write::Upsert,
    due: Due::AtTime,
    owner: Owner::Shared,
    windowed: true,
    merge: Some(Merge {
        combine: merge_candle_values,
        postgres: MERGE_CANDLES,
    }),
    since: 1,
};

/// Records that became no result, with a reason: `RejectRow`.
pub static REJECTS: Table = Table {
    name: "rejects",
    columns: &[
        Column::required("source", Type::Text, 1),
        Column::required("partition", Type::Int32, 1),
        Column::required("offset", Type::Int64, 1),
        Column::required("received_ms", Type::Int64, 1),
        Column::required("reason", Type::Text, 1),
        Column::optional("detail", Type::Text, 1),
        Column::optional("raw", Type::Bytes, 1),
    ],
    key: &["source", "partition", "offset"],
    indexes: &[Index {
        name: "rejects_by_reason_time",
        columns: &["reason", "received_ms"],
        postgres_method: None,
        since: 1,
    }],
    write: Write::Ignore,
    due: Due::Eager,
    owner: Owner::Source,
    windowed: false,
    merge: None,
    since: 1,
};

/// The archive of valid trades (`--store-trades`): `Trade`.
pub static TRADES: Table = Table {
    name: "trades",
    columns: &[
        Column::required("symbol", Type::Text, 2),
        Column::required("trade_id", Type::Int64, 2),
        Column::required("price", Type::Decimal, 2),
        Column::required("qty", Type::Decimal, 2),
        Column::required("time_ms", Type::Int64, 2),
        Column::required("buyer_maker", Type::Bool, 2),
        Column::optional("buyer", Type::Text, 5),
        Column::optional("seller", Type::Text, 5),
    ],
    key: &[],
    // A BRIN index keeps bulk loads fast; trades arrive roughly in time order.
    indexes: &[Index {
        name: "trades_by_time",
        columns: &["time_ms"],
        postgres_method: Some("brin"),
        since: 2,
    }],
    write: Write::Append,
    due: Due::AtTime,
    owner: Owner::Shared,
    windowed: false,
    merge: None,
    since: 2,
};

/// Data quality per symbol and window of the largest size (`dataflows::quality`).
pub static QUALITY: Table = Table {
    name: "quality",
    columns: &[
        Column::required("symbol", Type::Text, 6),
        Column::required("window_ms", Type::Int64, 6),
        Column::required("start_ms", Type::Int64, 6),
        Column::required("total", Type::Int64, 6),
        Column::required("valid", Type::Int64, 6),
        Column::required("malformed", Type::Int64, 6),
        Column::required("invalid", Type::Int64, 6),
        Column::required("duplicate", Type::Int64, 6),
        Column::required("conflicting", Type::Int64, 6),
        Column::required("late", Type::Int64, 6),
        Column::required("gap", Type::Int64, 6),
        Column::required("score", Type::Decimal, 6),
    ],
    key: &["symbol", "window_ms", "start_ms"],
    indexes: &[Index {
        name: "quality_by_window_start",
        columns: &["window_ms", "start_ms"],
        postgres_method: None,
        since: 6,
    }],
    write: Write::Upsert,
    due: Due::AtTime,
    owner: Owner::Shared,
    windowed: true,
    merge: None,
    since: 6,
};

/// Findings of the market-abuse checks: `Alert`. The first row of an id is kept, so an
/// alert re-created by a resumed run keeps the detection time it was first written with.
pub static ALERTS: Table = Table {
    name: "alerts",
    columns: &[
        Column::required("alert_id", Type::Text, 6),
        Column::required("kind", Type::Text, 6),
        Column::required("symbol", Type::Text, 6),
        Column::optional("account", Type::Text, 6),
        Column::required("event_ms", Type::Int64, 6),
        Column::required("detected_ms", Type::Int64, 6),
        Column::required("severity", Type::Text, 6),
        Column::required("score", Type::Decimal, 6),
        Column::required("details", Type::Text, 6),
    ],
    key: &["alert_id"],
    indexes: &[
        Index {
            name: "alerts_by_time",
            columns: &["event_ms"],
            postgres_method: None,
            since: 6,
        },
        Index {
            name: "alerts_by_kind_time",
            columns: &["kind", "event_ms"],
            postgres_method: None,
            since: 6,
        },
    ],
    write: Write::Ignore,
    due: Due::AtTime,
    owner: Owner::Shared,
    windowed: false,
    merge: None,
    since: 6,
};

/// Account-free wash-trading indicators per symbol and window of the largest size
/// (`dataflows::market::WashStats`): first-digit counts of the trade sizes that are not
/// round and their deviation from Benford's law, and the share of round sizes against the
/// symbol's usual share.
pub static WASH_STATS: Table = Table {
    name: "wash_stats",
    columns: &[
        Column::required("symbol", Type::Text, 7),
        Column::required("window_ms", Type::Int64, 7),
        Column::required("start_ms", Type::Int64, 7),
        Column::required("trades", Type::Int64, 7),
        Column::required("d1", Type::Int64, 7),
        Column::required("d2", Type::Int64, 7),
        Column::required("d3", Type::Int64, 7),
        Column::required("d4", Type::Int64, 7),
        Column::required("d5", Type::Int64, 7),
        Column::required("d6", Type::Int64, 7),
        Column::required("d7", Type::Int64, 7),
        Column::required("d8", Type::Int64, 7),
        Column::required("d9", Type::Int64, 7),
        Column::required("chi2", Type::Decimal, 7),
        Column::required("mad", Type::Decimal, 7),
        Column::required("round", Type::Int64, 7),
        Column::required("round_share", Type::Decimal, 7),
        Column::optional("expected_share", Type::Decimal, 7),
        Column::optional("z", Type::Decimal, 7),
    ],
    key: &["symbol", "window_ms", "start_ms"],
    indexes: &[Index {
        name: "wash_stats_by_window_start",
        columns: &["window_ms", "start_ms"],
        postgres_method: None,
        since: 7,
    }],
    write: Write::Upsert,
    due: Due::AtTime,
    owner: Owner::Shared,
    windowed: true,
    merge: None,
    since: 7,
};

/// One row per version of each symbol's regression model (`dataflows::regression`). Real
/// numbers are the shortest decimal that reads back as the same `f64`; `features` and
/// `coefficients` are JSON arrays in the same order.
pub static MODELS: Table = Table {
    name: "models",
    columns: &[
        Column::required("symbol", Type::Text, 8),
        Column::required("window_ms", Type::Int64, 8),
        Column::required("version", Type::Int64, 8),
        Column::required("updated_ms", Type::Int64, 8),
        Column::required("horizon", Type::Int64, 8),
        Column::required("n", Type::Int64, 8),
        Column::required("features", Type::Text, 8),
        Column::required("coefficients", Type::Text, 8),
        Column::optional("intercept", Type::Decimal, 8),
        Column::optional("rmse", Type::Decimal, 8),
        Column::optional("r2", Type::Decimal, 8),
        Column::optional("baseline_rmse", Type::Decimal, 8),
        Column::optional("predictions", Type::Int64, 8),
        Column::optional("in_sample_rmse", Type::Decimal, 8),
        Column::optional("condition", Type::Decimal, 8),
        Column::required("status", Type::Text, 8),
    ],
    key: &["symbol", "window_ms", "version"],
    indexes: &[],
    write: Write::Upsert,
    due: Due::AtTime,
    owner: Owner::Shared,
    windowed: false,
    merge: None,
    since: 8,
};

/// Each candle's close as the model predicted it before the close was known, with the
/// persistence forecast of the same close (`dataflows::regression`).
pub static PREDICTIONS: Table = Table {
    name: "predictions",
    columns: &[
        Column::required("symbol", Type::Text, 8),
        Column::required("window_ms", Type::Int64, 8),
        Column::required("start_ms", Type::Int64, 8),
        Column::optional("model_version", Type::Int64, 8),
        Column::optional("predicted", Type::Decimal, 8),
        Column::required("actual", Type::Decimal, 8),
        Column::optional("baseline", Type::Decimal, 8),
    ],
    key: &["symbol", "window_ms", "start_ms"],
    indexes: &[],
    write: Write::Upsert,
    due: Due::AtTime,
    owner: Owner::Shared,
    windowed: false,
    merge: None,
    since: 8,
};

/// A finite `f64` as the shortest plain decimal that reads back as the same number (NULL
/// when not finite): how model values are stored.
pub fn real_value(x: Option<f64>) -> Value {
    match x {
        Some(x) if x.is_finite() => Value::Decimal(format!("{x}")),
        _ => Value::Null,
    }
}

impl From<Alert> for Row {
    fn from(a: Alert) -> Row {
        Row {
            table: ALERTS.id(),
            values: vec![
                Value::Text(a.alert_id()),
                a.kind.as_str().into(),
                a.symbol.as_str().into(),
                a.account.map_or(Value::Null, |acct| acct.as_str().into()),
                a.event_ms.into(),
                a.detected_ms.into(),
                a.severity.as_str().into(),
                Value::Decimal(decimal_text(a.score)),
                Value::Text(a.details),
            ],
        }
    }
}

/// A finite `f64` as a decimal with 6 fractional digits (0 for NaN, clamped to ±1e18): how
/// statistics are stored.
pub fn decimal_text(x: f64) -> String {
    let x = if x.is_finite() {
        x.clamp(-1e18, 1e18)
    } else {
        0.0
    };
    format!("{x:.6}")
}

/// A table the commit path keeps for each source: one row per key, replaced by every commit
/// (written by [`crate::sink::Commit::bookkeeping`], not emitted by dataflows).
const fn bookkeeping(
    name: &'static str,
    columns: &'static [Column],
    key: &'static [&'static str],
    since: u32,
) -> Table {
    Table {
        name,
        columns,
        key,
        indexes: &[],
        write: Write::Upsert,
        due: Due::Eager,
        owner: Owner::Source,
        windowed: false,
        merge: None,
        since,
    }
}

/// Where each partition of each source resumes: `PartitionProgress`.
pub static SOURCE_OFFSETS: Table = bookkeeping(
    "source_offsets",
    &[
        Column::required("source", Type::Text, 1),
        Column::required("partition", Type::Int32, 1),
        Column::required("next_offset", Type::Int64, 1),
        Column::required("finished", Type::Bool, 1),
        Column::required("updated_ms", Type::Int64, 1),
        Column::optional("max_event_ms", Type::Int64, 1),
    ],
    &["source", "partition"],
    1,
);

/// Windows ending at or before `frontier_ms` are committed (NULL: the input ended).
pub static RESUME_FRONTIER: Table = bookkeeping(
    "resume_frontier",
    &[
        Column::required("source", Type::Text, 1),
        Column::optional("frontier_ms", Type::Int64, 1),
        Column::required("updated_ms", Type::Int64, 1),
    ],
    &["source"],
    1,
);

/// Each commit stores its source's next number in its own transaction: a writer that lost
/// the connection while `COMMIT` was in flight reads it back to learn whether it landed.
pub static SINK_COMMITS: Table = bookkeeping(
    "sink_commits",
    &[
        Column::required("source", Type::Text, 3),
        Column::required("seq", Type::Int64, 3),
        Column::required("committed_ms", Type::Int64, 3),
    ],
    &["source"],
    3,
);

/// What each source's stored results were made from (see `sink::Identity`).
pub static SOURCE_IDENTITY: Table = bookkeeping(
    "source_identity",
    &[
        Column::required("source", Type::Text, 4),
        Column::required("fingerprint", Type::Text, 4),
        Column::required("settings", Type::Text, 4),
        Column::required("updated_ms", Type::Int64, 4),
    ],
    &["source"],
    4,
);

/// Views, and what only one dialect needs.
pub static EXTRAS: &[Extra] = &[
    Extra {
        since: 1,
        // SQLite stores decimals as exact TEXT; this view casts them for arithmetic.
        sqlite: Some(
            "CREATE VIEW IF NOT EXISTS candles_real AS
SELECT symbol, window_ms, start_ms,
       CAST(open AS REAL) AS open, CAST(high AS REAL) AS high, CAST(low AS REAL) AS low,
       CAST(close AS REAL) AS close, CAST(volume AS REAL) AS volume,
       CAST(quote_volume AS REAL) AS quote_volume, CAST(vwap AS REAL) AS vwap, trades
FROM candles",
        ),
        postgres: Some(
            "CREATE OR REPLACE VIEW candles_at AS
SELECT symbol, window_ms, to_timestamp(start_ms / 1000.0) AS start_at,
       to_timestamp((start_ms + window_ms) / 1000.0) AS end_at,
       open, high, low, close, volume, quote_volume, vwap, trades
FROM candles",
        ),
    },
    Extra {
        since: 1,
        sqlite: None,
        postgres: Some(
            "CREATE OR REPLACE VIEW rejects_at AS
SELECT source, partition, \"offset\", to_timestamp(received_ms / 1000.0) AS received_at,
       reason, detail, encode(raw, 'escape') AS raw_text
FROM rejects",
        ),
    },
    Extra {
        since: 5,
        // SQLite databases made before versioned migrations indexed rejects by reason only;
        // `rejects_by_reason_time` serves the same queries.
        sqlite: Some("DROP INDEX IF EXISTS rejects_by_reason"),
        postgres: None,
    },
];

impl From<Candle> for Row {
    fn from(c: Candle) -> Row {
        Row {
            table: CANDLES.id(),
            values: vec![
                c.symbol.as_str().into(),
                c.window_ms.into(),
                c.start_ms.into(),
                Value::Decimal(c.open.to_string()),
                Value::Decimal(c.high.to_string()),
                Value::Decimal(c.low.to_string()),
                Value::Decimal(c.close.to_string()),
                Value::Decimal(c.volume.to_string()),
                c.quote_volume
                    .map_or(Value::Null, |q| Value::Decimal(q.to_string())),
                c.vwap
                    .map_or(Value::Null, |v| Value::Decimal(v.to_string())),
                c.trades.into(),
            ],
        }
    }
}

impl From<RejectRow> for Row {
    fn from(r: RejectRow) -> Row {
        Row {
            table: REJECTS.id(),
            values: vec![
                Value::Text(r.source),
                r.partition.into(),
                r.offset.into(),
                r.received_ms.into(),
                Value::Text(r.reason),
                Value::Text(r.detail),
                Value::Bytes(r.raw),
            ],
        }
    }
}

impl From<Trade> for Row {
    fn from(t: Trade) -> Row {
        Row {
            table: TRADES.id(),
            values: vec![
                t.symbol.as_str().into(),
                t.id.into(),
                Value::Decimal(t.price.to_string()),
                Value::Decimal(t.qty.to_string()),
                t.time_ms.into(),
                t.buyer_maker.into(),
                t.buyer.map(|a| a.as_str().to_owned()).into(),
                t.seller.map(|a| a.as_str().to_owned()).into(),
            ],
        }
    }
}

impl PartitionProgress {
    /// This progress as a `source_offsets` row, stored at `now_ms`.
    pub fn to_row(&self, now_ms: u64) -> Row {
        Row {
            table: SOURCE_OFFSETS.id(),
            values: vec![
                self.source.as_str().into(),
                self.partition.into(),
                self.next_offset.into(),
                self.finished.into(),
                now_ms.into(),
                self.max_event_ms.into(),
            ],
        }
    }
}

/// The candle in a `candles` row's values.
fn candle_from_values(values: &[Value]) -> Result<Candle, String> {
    fn decimal<T>(
        values: &[Value],
        index: usize,
        parse: fn(&[u8]) -> Result<T, DecimalError>,
    ) -> Result<Option<T>, String> {
        match &values[index] {
            Value::Null => Ok(None),
            value => {
                let text = value.as_str().unwrap_or_default();
                parse(text.as_bytes())
                    .map(Some)
                    .map_err(|e| format!("a stored candle holds {text:?}: {e}"))
            }
        }
    }
    fn required<T>(name: &str, value: Option<T>) -> Result<T, String> {
        value.ok_or_else(|| format!("a stored candle has no {name}"))
    }
    fn int(values: &[Value], index: usize) -> Result<Option<u64>, String> {
        match &values[index] {
            Value::Null => Ok(None),
            Value::Int(i) => u64::try_from(*i)
                .map(Some)
                .map_err(|_| format!("a stored candle holds {i} in column {index}")),
            other => Err(format!("a stored candle holds {other:?} in column {index}")),
        }
    }
    if values.len() != CANDLES.columns.len() {
        return Err(format!(
            "a candle row has {} values, not {}",
            values.len(),
            CANDLES.columns.len()
        ));
    }
    let symbol = values[0].as_str().unwrap_or_default();
    Ok(Candle {
        symbol: Symbol::new(symbol)
            .ok_or_else(|| format!("a stored candle's symbol {symbol:?} is too long"))?,
        window_ms: required("window_ms", int(values, 1)?)?,
        start_ms: required("start_ms", int(values, 2)?)?,
        open: required("open", decimal(values, 3, Fixed::parse)?)?,
        high: required("high", decimal(values, 4, Fixed::parse)?)?,
        low: required("low", decimal(values, 5, Fixed::parse)?)?,
        close: required("close", decimal(values, 6, Fixed::parse)?)?,
        volume: required("volume", decimal(values, 7, Volume::parse)?)?,
        quote_volume: decimal(values, 8, QuoteVolume::parse)?,
        // Recomputed from the sums when merging.
        vwap: None,
        trades: int(values, 10)?,
    })
}

/// [`Merge::combine`] of `candles`: [`merge_candle`] on rows.
fn merge_candle_values(earlier: &[Value], later: &[Value]) -> Result<Option<Vec<Value>>, String> {
    let merged = merge_candle(&candle_from_values(earlier)?, &candle_from_values(later)?)?;
    Ok(merged.map(|c| Row::from(c).values))
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
pub fn merge_candle(earlier: &Candle, later: &Candle) -> Result<Option<Candle>, String> {
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

/// [`Merge::postgres`] of `candles`: the rule of [`merge_candle`] in SQL, on the staged
/// candles of a source that cannot resume; what it merged leaves the stage (the rest is
/// upserted as usual).
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
