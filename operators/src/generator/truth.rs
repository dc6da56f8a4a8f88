//! The generator's ground truth: one [`Injection`] per injected anomaly or defect, written
//! as one JSON line each (`tickflow generate --truth FILE`) and read back by [`read_truth`].
//!
//! ```text
//! {"class":"anomaly","kind":"wash_trade","symbol":"BTCUSDT","accounts":["acct-000417"],
//!  "trade_ids":[1004211],"count":1,"first_ms":…,"last_ms":…,"params":{…}}
//! {"class":"defect","kind":"gap","quality":"gap","symbol":"ETHUSDT","accounts":[],
//!  "trade_ids":[2000123,2000124],"count":2,"first_ms":…,"last_ms":…,"params":{…}}
//! ```

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Whether an injection is market abuse (for the alert rules) or bad data (for `quality`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A market-abuse pattern; `kind` is an [`crate::model::AlertKind`] code.
    Anomaly,
    /// A defective, duplicated, late or missing record; `quality` names its column.
    Defect,
}

/// One injected anomaly or defect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    /// Anomaly or defect.
    pub class: Class,
    /// `bad_tick`, `volume_burst`, … (anomalies: the alert kind codes); `malformed_json`,
    /// `missing_field`, `non_positive`, `bad_number`, `time_outlier`, `duplicate`, `late`,
    /// `gap` (defects).
    pub kind: String,
    /// Defects: the `quality` column that counts it (`malformed`, `invalid`, `duplicate`,
    /// `late`, `gap`); absent for anomalies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    /// The symbol, `null` when the record carries none that can be read.
    pub symbol: Option<String>,
    /// Accounts involved (anomalies with accounts), in role order.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Ids of the trades involved, ascending: the injected or modified trades of an anomaly;
    /// the duplicated, late or dropped trades of a defect; the id a defective line carries,
    /// if it carries a readable one.
    #[serde(default)]
    pub trade_ids: Vec<u64>,
    /// How many: trades of an anomaly; records a defect adds to its quality column (a gap:
    /// the number of dropped ids; otherwise 1).
    pub count: u64,
    /// Event time of the first and last trade involved (a defective line: the event time of
    /// the trade it was made from, which is where it sits in the stream).
    pub first_ms: u64,
    /// See `first_ms`.
    pub last_ms: u64,
    /// Kind-specific parameters, a small JSON object.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Partition index and the id of the trade the injection starts at: the order in which
    /// truth files list injections. Not written.
    #[serde(skip)]
    pub(crate) order: (usize, u64),
}

impl Injection {
    /// The injection as one JSON line, `\n` included.
    pub fn write_line(&self, out: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        out.write_all(b"\n")
    }
}

/// What went wrong reading a truth file.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not an injection.
    #[error("{path}:{line}: not a truth line: {source}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// Why.
        source: serde_json::Error,
    },
}

/// Reads a truth file written by `tickflow generate --truth` (blank lines are skipped).
pub fn read_truth(path: impl AsRef<Path>) -> Result<Vec<Injection>, TruthError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let io = |source| TruthError::Io {
        path: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut injections = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let injection = serde_json::from_str(&line).map_err(|source| TruthError::Parse {
            path: name.clone(),
            line: number + 1,
            source,
        })?;
        injections.push(injection);
    }
    Ok(injections)
}

/// Puts injections in truth-file order: by partition, then by the trade id they start at
/// (event order), whatever order the streams were read in.
pub fn sort_truth(injections: &mut [Injection]) {
    injections.sort_by_key(|injection| injection.order);
}
