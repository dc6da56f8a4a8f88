//! `tickflow eval`: a run's `quality` and `alerts` tables against the generator's ground
//! truth (`tickflow generate --truth FILE`).
//!
//! Quality: each count column summed over all rows must equal the injected count, overall
//! and per symbol. Alerts, per kind: an alert matches an injection of its kind and symbol
//! when their trade ids intersect (`benford`, `round_sizes`: when the alert's window
//! overlaps the injection's `[first_ms, last_ms]`), and for `wash_trade` and
//! `velocity_burst` the alert's account is one of the injection's. Recall counts
//! injections found, precision alerts that found something.
//!
//! Exit codes: 0 all good, 1 a threshold missed or a quality count differs, 2 the truth file
//! or the results could not be read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value as Json};
use tickflow_operators::generator::{read_truth, Class, Injection};
use tickflow_operators::model::AlertKind;
use tickflow_operators::window::parse_duration;

use crate::cli::EvalArgs;

/// The `quality` columns the generator's defects count in, in table order. `conflicting`
/// counts the duplicates whose truth line says `"params":{"conflicting":true}`.
const QUALITY_COLUMNS: [&str; 6] = [
    "malformed",
    "invalid",
    "duplicate",
    "conflicting",
    "late",
    "gap",
];

/// Runs `tickflow eval` and says how it went as the exit code (see the module docs).
pub fn eval(args: EvalArgs) -> ExitCode {
    match evaluate(&args) {
        Ok(report) => {
            let text = if args.json {
                format!("{:#}\n", report.to_json())
            } else {
                report.render()
            };
            print!("{text}");
            if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                for failure in &report.failures {
                    eprintln!("tickflow eval: {failure}");
                }
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("tickflow: error: {}", crate::render_error(&error));
            ExitCode::from(2)
        }
    }
}

/// One alert row, as far as evaluation needs it.
#[derive(Debug)]
struct AlertRow {
    kind: String,
    symbol: String,
    account: Option<String>,
    event_ms: i64,
    detected_ms: i64,
    /// From `details`: ascending.
    trade_ids: Vec<u64>,
    /// From `details`: `[start_ms, start_ms + window_ms)`, when it says.
    window: Option<(i64, i64)>,
}

/// Per-kind results.
#[derive(Debug, Default)]
struct KindReport {
    kind: String,
    injected: usize,
    /// Injections matched by at least one alert.
    found: usize,
    alerts: usize,
    /// Alerts matching at least one injection.
    matched: usize,
    /// detected_ms − event_ms of matched alerts, ascending.
    latencies: Vec<i64>,
}

impl KindReport {
    fn recall(&self) -> Option<f64> {
        (self.injected > 0).then(|| self.found as f64 / self.injected as f64)
    }

    fn precision(&self) -> Option<f64> {
        (self.alerts > 0).then(|| self.matched as f64 / self.alerts as f64)
    }

    fn false_positives(&self) -> usize {
        self.alerts - self.matched
    }
}

/// One quality count: counted in the table against injected.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Count {
    counted: i64,
    injected: i64,
}

#[derive(Debug)]
struct Report {
    truth: String,
    results: String,
    lateness_ms: i64,
    valid_trades: i64,
    /// Per quality column, over all rows.
    quality: BTreeMap<&'static str, Count>,
    /// Per symbol ("" = no readable symbol) and column.
    quality_by_symbol: BTreeMap<String, BTreeMap<&'static str, Count>>,
    kinds: Vec<KindReport>,
    failures: Vec<String>,
}

fn evaluate(args: &EvalArgs) -> Result<Report> {
    let lateness_ms = parse_duration(&args.lateness).context("--lateness")? as i64;
    for (name, value) in [
        ("--min-recall", args.min_recall),
        ("--min-precision", args.min_precision),
    ] {
        if let Some(v) = value.filter(|v| !(0.0..=1.0).contains(v)) {
            bail!("{name} {v}: expected a number from 0 to 1");
        }
    }
    let truth = read_truth(&args.truth).with_context(|| format!("--truth {}", args.truth))?;
    let mut results = Results::open(&args.results)?;
    let quality_rows = results.query(
        "quality",
        "SELECT symbol, sum(valid), sum(malformed), sum(invalid), sum(duplicate), \
         sum(conflicting), sum(late), sum(gap), count(*) FROM quality GROUP BY symbol",
    )?;
    if quality_rows.is_empty() {
        bail!(
            "{}: table quality is empty (no run has written results there)",
            results.name
        );
    }
    let alert_rows = results.query(
        "alerts",
        "SELECT kind, symbol, account, event_ms, detected_ms, details FROM alerts",
    )?;

    let mut valid_trades = 0;
    let mut quality = BTreeMap::new();
    let mut quality_by_symbol: BTreeMap<String, BTreeMap<&'static str, Count>> = BTreeMap::new();
    for row in &quality_rows {
        let symbol = row[0].clone().unwrap_or_default();
        valid_trades += int(&row[1], "quality.valid")?;
        for (i, column) in QUALITY_COLUMNS.into_iter().enumerate() {
            let n = int(&row[i + 2], column)?;
            quality.entry(column).or_insert_with(Count::default).counted += n;
            if n != 0 {
                let counts = quality_by_symbol.entry(symbol.clone()).or_default();
                counts.entry(column).or_default().counted += n;
            }
        }
    }
    for injection in truth.iter().filter(|i| i.class == Class::Defect) {
        let Some(column) = injection
            .quality
            .as_deref()
            .and_then(|q| QUALITY_COLUMNS.into_iter().find(|c| *c == q))
        else {
            continue;
        };
        let n = injection.count as i64;
        let conflicting = injection.params.get("conflicting") == Some(&Json::Bool(true));
        let symbol = injection.symbol.clone().unwrap_or_default();
        let counts = quality_by_symbol.entry(symbol).or_default();
        for column in std::iter::once(column).chain(conflicting.then_some("conflicting")) {
            quality
                .entry(column)
                .or_insert_with(Count::default)
                .injected += n;
            counts.entry(column).or_default().injected += n;
        }
    }
    for column in QUALITY_COLUMNS {
        quality.entry(column).or_default();
    }

    let alerts = alert_rows
        .iter()
        .map(|row| alert_row(row))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("{}: table alerts", results.name))?;
    let kinds = match_alerts(&truth, &alerts);

    let mut failures = Vec::new();
    for (column, count) in &quality {
        if count.counted != count.injected {
            failures.push(format!(
                "quality.{column}: counted {} but {} injected",
                count.counted, count.injected
            ));
        }
    }
    for (symbol, counts) in &quality_by_symbol {
        for (column, count) in counts {
            if count.counted != count.injected {
                failures.push(format!(
                    "quality.{column} of {}: counted {} but {} injected",
                    symbol_label(symbol),
                    count.counted,
                    count.injected
                ));
            }
        }
    }
    for kind in &kinds {
        if let (Some(min), Some(recall)) = (args.min_recall, kind.recall()) {
            if recall < min {
                failures.push(format!(
                    "{}: recall {recall:.4} is below --min-recall {min}",
                    kind.kind
                ));
            }
        }
        if let (Some(min), Some(precision)) = (args.min_precision, kind.precision()) {
            if precision < min {
                failures.push(format!(
                    "{}: precision {precision:.4} is below --min-precision {min}",
                    kind.kind
                ));
            }
        }
    }
    Ok(Report {
        truth: args.truth.clone(),
        results: results.name.clone(),
        lateness_ms,
        valid_trades,
        quality,
        quality_by_symbol,
        kinds,
        failures,
    })
}

fn symbol_label(symbol: &str) -> &str {
    if symbol.is_empty() {
        "(no symbol)"
    } else {
        symbol
    }
}

fn int(value: &Option<String>, what: &str) -> Result<i64> {
    match value {
        None => Ok(0),
        // PostgreSQL renders sum(bigint) as NUMERIC; it is still an integer.
        Some(text) => text
            .trim_end_matches(".0")
            .parse()
            .map_err(|_| anyhow!("{what}: {text:?} is not an integer")),
    }
}

fn alert_row(row: &[Option<String>]) -> Result<AlertRow> {
    let text = |i: usize, what: &str| {
        row[i]
            .clone()
            .ok_or_else(|| anyhow!("an alert without {what}"))
    };
    let details = text(5, "details")?;
    let json: Json = serde_json::from_str(&details)
        .map_err(|e| anyhow!("details {details:?} is not JSON: {e}"))?;
    let mut trade_ids: Vec<u64> = json
        .get("trade_ids")
        .and_then(Json::as_array)
        .map(|ids| ids.iter().filter_map(Json::as_u64).collect())
        .unwrap_or_default();
    trade_ids.sort_unstable();
    let field = |key: &str| json.get(key).and_then(Json::as_i64);
    let window = field("start_ms")
        .zip(field("window_ms"))
        .map(|(start, size)| (start, start + size));
    Ok(AlertRow {
        kind: text(0, "kind")?,
        symbol: text(1, "symbol")?,
        account: row[2].clone(),
        event_ms: int(&row[3], "alerts.event_ms")?,
        detected_ms: int(&row[4], "alerts.detected_ms")?,
        trade_ids,
        window,
    })
}

/// Whether `alert` finds `injection` (the module docs give the rule).
fn matches(alert: &AlertRow, injection: &Injection) -> bool {
    if injection.kind != alert.kind || injection.symbol.as_deref() != Some(alert.symbol.as_str()) {
        return false;
    }
    let (first, last) = (injection.first_ms as i64, injection.last_ms as i64);
    let found = match AlertKind::parse(&alert.kind) {
        Some(AlertKind::Benford | AlertKind::RoundSizes) => match alert.window {
            Some((start, end)) => start <= last && first < end,
            None => (first..=last).contains(&alert.event_ms),
        },
        _ => intersect(&alert.trade_ids, &injection.trade_ids),
    };
    let account_ok = match AlertKind::parse(&alert.kind) {
        Some(AlertKind::WashTrade | AlertKind::VelocityBurst) => alert
            .account
            .as_ref()
            .is_some_and(|a| injection.accounts.contains(a)),
        _ => true,
    };
    found && account_ok
}

/// Whether two ascending lists share an element.
fn intersect(a: &[u64], b: &[u64]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// Per kind: every [`AlertKind`] in code order, then any other kind the alerts or the truth
/// name; kinds absent from both are left out.
fn match_alerts(truth: &[Injection], alerts: &[AlertRow]) -> Vec<KindReport> {
    // Injections by (kind, symbol), trade ids ascending, each with whether it was found.
    let mut by_key: BTreeMap<(String, String), Vec<(Injection, bool)>> = BTreeMap::new();
    let mut reports: BTreeMap<String, KindReport> = BTreeMap::new();
    for injection in truth.iter().filter(|i| i.class == Class::Anomaly) {
        let mut injection = injection.clone();
        injection.trade_ids.sort_unstable();
        reports.entry(injection.kind.clone()).or_default().injected += 1;
        let key = (
            injection.kind.clone(),
            injection.symbol.clone().unwrap_or_default(),
        );
        by_key.entry(key).or_default().push((injection, false));
    }
    for alert in alerts {
        let report = reports.entry(alert.kind.clone()).or_default();
        report.alerts += 1;
        let mut hit = false;
        if let Some(injections) = by_key.get_mut(&(alert.kind.clone(), alert.symbol.clone())) {
            for (injection, found) in injections.iter_mut() {
                if matches(alert, injection) {
                    hit = true;
                    *found = true;
                }
            }
        }
        if hit {
            report.matched += 1;
            report.latencies.push(alert.detected_ms - alert.event_ms);
        }
    }
    for ((kind, _), injections) in &by_key {
        if let Some(report) = reports.get_mut(kind) {
            report.found += injections.iter().filter(|(_, found)| *found).count();
        }
    }
    let order = |kind: &str| {
        AlertKind::parse(kind).map_or((AlertKind::ALL.len(), kind.to_owned()), |k| {
            (k as usize, String::new())
        })
    };
    let mut reports: Vec<KindReport> = reports
        .into_iter()
        .map(|(kind, mut report)| {
            report.kind = kind;
            report.latencies.sort_unstable();
            report
        })
        .collect();
    reports.sort_by_key(|r| order(&r.kind));
    reports
}

/// Nearest-rank percentile of an ascending list.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Report {
    fn per_million(&self, n: usize) -> Option<f64> {
        (self.valid_trades > 0).then(|| n as f64 * 1e6 / self.valid_trades as f64)
    }

    /// Every kind together.
    fn total(&self) -> KindReport {
        let mut all = KindReport {
            kind: "all".to_owned(),
            ..KindReport::default()
        };
        for k in &self.kinds {
            all.injected += k.injected;
            all.found += k.found;
            all.alerts += k.alerts;
            all.matched += k.matched;
            all.latencies.extend(&k.latencies);
        }
        all.latencies.sort_unstable();
        all
    }

    fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "truth {}; results {}; {} valid trades; lateness {} ms",
            self.truth, self.results, self.valid_trades, self.lateness_ms
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "quality: counted (sum over the quality table) / injected (truth file)"
        );
        let mut header = format!("{:<14}", "symbol");
        for column in QUALITY_COLUMNS {
            let _ = write!(header, " {column:>13}");
        }
        let _ = writeln!(out, "{header}  verdict");
        let mut line = |label: &str, counts: &BTreeMap<&'static str, Count>| {
            let mut text = format!("{label:<14}");
            let mut differs = Vec::new();
            for column in QUALITY_COLUMNS {
                let c = counts.get(column).copied().unwrap_or_default();
                let _ = write!(text, " {:>13}", format!("{}/{}", c.counted, c.injected));
                if c.counted != c.injected {
                    differs.push(column);
                }
            }
            if differs.is_empty() {
                let _ = writeln!(out, "{text}  match");
            } else {
                let _ = writeln!(out, "{text}  DIFFERS: {}", differs.join(", "));
            }
        };
        line("(all)", &self.quality);
        for (symbol, counts) in &self.quality_by_symbol {
            line(symbol_label(symbol), counts);
        }
        let quality_ok = self.quality.values().all(|c| c.counted == c.injected)
            && self
                .quality_by_symbol
                .values()
                .flat_map(|c| c.values())
                .all(|c| c.counted == c.injected);
        let _ = writeln!(
            out,
            "{}",
            if quality_ok {
                "every quality count matches the injected count"
            } else {
                "some quality counts differ from the injected counts"
            }
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "alerts: found = injections matched by an alert, matched = alerts matching an \
             injection, per 1M = per million valid trades;\n        latency (ms) = \
             detected_ms - event_ms of matched alerts, wm = latency - lateness (after the \
             watermark passed the last trade)"
        );
        let _ = writeln!(
            out,
            "{:<15} {:>8} {:>6} {:>7} {:>7} {:>7} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "kind",
            "injected",
            "found",
            "alerts",
            "matched",
            "recall",
            "precision",
            "alerts/1M",
            "fp/1M",
            "lat p50",
            "lat p99",
            "wm p50",
            "wm p99"
        );
        let opt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
        };
        let ms = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let total = self.total();
        for k in self.kinds.iter().chain([&total]) {
            let p50 = percentile(&k.latencies, 50.0);
            let p99 = percentile(&k.latencies, 99.0);
            let _ = writeln!(
                out,
                "{:<15} {:>8} {:>6} {:>7} {:>7} {:>7} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                k.kind,
                k.injected,
                k.found,
                k.alerts,
                k.matched,
                opt(k.recall(), 4),
                opt(k.precision(), 4),
                opt(self.per_million(k.alerts), 2),
                opt(self.per_million(k.false_positives()), 2),
                ms(p50),
                ms(p99),
                ms(p50.map(|v| v - self.lateness_ms)),
                ms(p99.map(|v| v - self.lateness_ms)),
            );
        }
        let fp = total.false_positives();
        let _ = writeln!(
            out,
            "false positives: {fp} unmatched alerts = {} per trade ({} per million trades); \
             latency max {} ms ({} ms after the watermark)",
            opt(
                (self.valid_trades > 0).then(|| fp as f64 / self.valid_trades as f64),
                9
            ),
            opt(self.per_million(fp), 2),
            ms(total.latencies.last().copied()),
            ms(total.latencies.last().map(|v| v - self.lateness_ms)),
        );
        let _ = writeln!(out);
        if self.failures.is_empty() {
            let _ = writeln!(out, "PASS");
        } else {
            for failure in &self.failures {
                let _ = writeln!(out, "FAIL {failure}");
            }
        }
        out
    }

    fn to_json(&self) -> Json {
        let counts = |counts: &BTreeMap<&'static str, Count>| {
            let mut object = serde_json::Map::new();
            for column in QUALITY_COLUMNS {
                let c = counts.get(column).copied().unwrap_or_default();
                object.insert(
                    column.to_owned(),
                    json!({"counted": c.counted, "injected": c.injected,
                           "match": c.counted == c.injected}),
                );
            }
            Json::Object(object)
        };
        let latency = |sorted: &[i64], minus: i64| {
            json!({
                "p50": percentile(sorted, 50.0).map(|v| v - minus),
                "p99": percentile(sorted, 99.0).map(|v| v - minus),
                "max": sorted.last().map(|v| v - minus),
            })
        };
        let kind = |k: &KindReport| {
            let fp = k.false_positives();
            json!({
                "kind": k.kind,
                "injected": k.injected,
                "found": k.found,
                "alerts": k.alerts,
                "matched": k.matched,
                "recall": k.recall(),
                "precision": k.precision(),
                "false_positives": fp,
                "false_positives_per_trade":
                    (self.valid_trades > 0).then(|| fp as f64 / self.valid_trades as f64),
                "false_positives_per_million_trades": self.per_million(fp),
                "alerts_per_million_trades": self.per_million(k.alerts),
                "latency_ms": latency(&k.latencies, 0),
                "after_watermark_ms": latency(&k.latencies, self.lateness_ms),
            })
        };
        let by_symbol: serde_json::Map<String, Json> = self
            .quality_by_symbol
            .iter()
            .map(|(symbol, c)| (symbol.clone(), counts(c)))
            .collect();
        json!({
            "truth": self.truth,
            "results": self.results,
            "valid_trades": self.valid_trades,
            "lateness_ms": self.lateness_ms,
            "quality": {
                "match": self.failures.iter().all(|f| !f.starts_with("quality.")),
                "columns": counts(&self.quality),
                "symbols": by_symbol,
            },
            "kinds": self.kinds.iter().map(kind).collect::<Vec<_>>(),
            "all": kind(&self.total()),
            "failures": self.failures,
            "pass": self.failures.is_empty(),
        })
    }
}

/// The results database: a SQLite file or a PostgreSQL URL, read only.
struct Results {
    /// As the user gave it, password redacted.
    name: String,
    backend: Backend,
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

impl Results {
    fn open(spec: &str) -> Result<Results> {
        use tickflow_operators::postgres::{describe, redact};
        let name = redact(spec);
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            let mut client = postgres::Client::connect(spec, postgres::NoTls)
                .map_err(|e| anyhow!("--results {name}: {}", describe(&e)))?;
            client
                .batch_execute("SET default_transaction_read_only = on")
                .map_err(|e| anyhow!("--results {name}: {}", describe(&e)))?;
            return Ok(Results {
                name,
                backend: Backend::Postgres(Box::new(client)),
            });
        }
        let Some(path) = spec.strip_prefix("sqlite:").filter(|p| !p.is_empty()) else {
            bail!("--results {name:?}: expected sqlite:PATH or postgres://USER@HOST[:PORT]/DB");
        };
        if !std::path::Path::new(path).exists() {
            bail!("--results {name}: {path}: no such database file");
        }
        let connection =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .with_context(|| format!("--results {name}: opening {path}"))?;
        Ok(Results {
            name,
            backend: Backend::Sqlite(connection),
        })
    }

    /// The rows of `query` on `table`, every value as text (NULL as `None`); a missing table
    /// is an error that names it.
    fn query(&mut self, table: &str, query: &str) -> Result<Vec<Vec<Option<String>>>> {
        let name = self.name.clone();
        match &mut self.backend {
            Backend::Sqlite(connection) => {
                let exists: bool = connection
                    .query_row(
                        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                        [table],
                        |row| row.get(0),
                    )
                    .with_context(|| format!("{name}: reading the schema"))?;
                if !exists {
                    bail!("{name}: there is no table {table}");
                }
                let read = || -> rusqlite::Result<Vec<Vec<Option<String>>>> {
                    let mut statement = connection.prepare(query)?;
                    let columns = statement.column_count();
                    let mut rows = statement.query([])?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next()? {
                        let mut values = Vec::with_capacity(columns);
                        for i in 0..columns {
                            use rusqlite::types::ValueRef;
                            values.push(match row.get_ref(i)? {
                                ValueRef::Null => None,
                                ValueRef::Integer(v) => Some(v.to_string()),
                                ValueRef::Real(v) => Some(v.to_string()),
                                ValueRef::Text(t) | ValueRef::Blob(t) => {
                                    Some(String::from_utf8_lossy(t).into_owned())
                                }
                            });
                        }
                        out.push(values);
                    }
                    Ok(out)
                };
                read().with_context(|| format!("{name}: reading table {table}"))
            }
            Backend::Postgres(client) => postgres_query(&name, client, table, query),
        }
    }
}

fn postgres_query(
    name: &str,
    client: &mut postgres::Client,
    table: &str,
    query: &str,
) -> Result<Vec<Vec<Option<String>>>> {
    use postgres::SimpleQueryMessage;
    let describe = |e: &postgres::Error| tickflow_operators::postgres::describe(e);
    let exists = client
        .simple_query(&format!("SELECT to_regclass('{table}') IS NOT NULL"))
        .map_err(|e| anyhow!("{}: {}", name, describe(&e)))?;
    let present = exists.iter().any(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0) == Some("t"),
        _ => false,
    });
    if !present {
        bail!("{name}: there is no table {table}");
    }
    let messages = client
        .simple_query(query)
        .map_err(|e| anyhow!("{}: reading table {table}: {}", name, describe(&e)))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn injection(kind: &str, accounts: &[&str], ids: &[u64], first: u64, last: u64) -> Injection {
        serde_json::from_value(json!({
            "class": "anomaly", "kind": kind, "symbol": "BTCUSDT", "accounts": accounts,
            "trade_ids": ids, "count": ids.len(), "first_ms": first, "last_ms": last,
        }))
        .expect("an injection")
    }

    fn alert(kind: &str, account: Option<&str>, event_ms: i64, details: Json) -> AlertRow {
        let row = [
            Some(kind.to_owned()),
            Some("BTCUSDT".to_owned()),
            account.map(str::to_owned),
            Some(event_ms.to_string()),
            Some((event_ms + 10).to_string()),
            Some(details.to_string()),
        ];
        alert_row(&row).expect("an alert row")
    }

    #[test]
    fn trade_ids_windows_and_accounts_decide_a_match() {
        let tick = injection("bad_tick", &[], &[5, 9], 100, 200);
        assert!(matches(
            &alert("bad_tick", None, 0, json!({"trade_ids": [9, 1]})),
            &tick
        ));
        assert!(!matches(
            &alert("bad_tick", None, 150, json!({"trade_ids": [6]})),
            &tick
        ));
        assert!(!matches(
            &alert("volume_burst", None, 0, json!({"trade_ids": [5]})),
            &tick
        ));
        let mut other = alert("bad_tick", None, 0, json!({"trade_ids": [5]}));
        other.symbol = "ETHUSDT".to_owned();
        assert!(!matches(&other, &tick));

        let wash = injection("wash_trade", &["a"], &[7], 100, 100);
        assert!(matches(
            &alert("wash_trade", Some("a"), 100, json!({"trade_ids": [7]})),
            &wash
        ));
        assert!(!matches(
            &alert("wash_trade", Some("b"), 100, json!({"trade_ids": [7]})),
            &wash
        ));
        assert!(!matches(
            &alert("wash_trade", None, 100, json!({"trade_ids": [7]})),
            &wash
        ));
        // A ring's account is not checked: an alert names one of its accounts, or none.
        let ring = injection("wash_ring", &["a", "b"], &[7, 8], 100, 900);
        assert!(matches(
            &alert("wash_ring", Some("z"), 900, json!({"trade_ids": [8]})),
            &ring
        ));

        let window = injection("benford", &[], &[], 60_000, 119_999);
        let at = |start: i64| json!({"start_ms": start, "window_ms": 60_000, "trade_ids": []});
        assert!(matches(&alert("benford", None, 0, at(60_000)), &window));
        assert!(matches(&alert("benford", None, 0, at(119_999)), &window));
        assert!(!matches(&alert("benford", None, 0, at(0)), &window));
        assert!(!matches(&alert("benford", None, 0, at(120_000)), &window));
        // Without a window in the details: the event time within the injection.
        assert!(matches(
            &alert("benford", None, 119_999, json!({})),
            &window
        ));
        assert!(!matches(
            &alert("benford", None, 120_000, json!({})),
            &window
        ));
    }

    #[test]
    fn recall_counts_injections_and_precision_alerts() {
        let truth = [
            injection("bad_tick", &[], &[1], 0, 0),
            injection("bad_tick", &[], &[2], 0, 0),
        ];
        // Two alerts on the first injection, one on nothing; the second injection missed.
        let alerts = [
            alert("bad_tick", None, 0, json!({"trade_ids": [1]})),
            alert("bad_tick", None, 0, json!({"trade_ids": [1]})),
            alert("bad_tick", None, 0, json!({"trade_ids": [3]})),
            alert("pump_and_dump", None, 0, json!({"trade_ids": [1]})),
        ];
        let reports = match_alerts(&truth, &alerts);
        assert_eq!(reports.len(), 2);
        let tick = &reports[0];
        assert_eq!(tick.kind, "bad_tick");
        assert_eq!(
            (tick.injected, tick.found, tick.alerts, tick.matched),
            (2, 1, 3, 2)
        );
        assert_eq!(tick.recall(), Some(0.5));
        assert_eq!(tick.precision(), Some(2.0 / 3.0));
        assert_eq!(tick.latencies, [10, 10]);
        let pump = &reports[1];
        assert_eq!(pump.kind, "pump_and_dump");
        assert_eq!((pump.recall(), pump.precision()), (None, Some(0.0)));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<i64> = (1..=200).collect();
        assert_eq!(percentile(&values, 50.0), Some(100));
        assert_eq!(percentile(&values, 99.0), Some(198));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert!(intersect(&[1, 4, 9], &[2, 3, 9]));
        assert!(!intersect(&[1, 4, 9], &[2, 3, 10]));
        assert!(!intersect(&[], &[1]));
    }
}
