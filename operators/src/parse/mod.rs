//! Parsers for the input formats of SPEC.md.
//!
//! Parsing is the floor of the whole pipeline, so every parser here borrows from the input
//! line, allocates nothing per line and turns decimal strings straight into fixed-point
//! integers. A line that is not a usable record is data, not an error of the run: it comes
//! back as a [`RejectReason`] that the caller counts and dead-letters with the raw bytes.

mod binance_csv;
mod binance_json;
mod candle_csv;
mod civil;
mod csv;
mod detect;

pub use detect::detect_format;

use crate::model::{Candle, DecimalError, Fixed, InlineStr, Symbol, Trade};

/// Lines longer than this many bytes are rejected by the reader with
/// [`RejectReason::LineTooLong`] before they reach a parser.
pub const MAX_LINE: usize = 64 * 1024;

/// What one input line turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A trade.
    Trade(Trade),
    /// A candle (from a candle CSV).
    Candle(Candle),
    /// A well-formed message of another kind, such as `depthUpdate`: its event type, cut to
    /// [`crate::model::INLINE_CAPACITY`] bytes at a character boundary.
    Skipped(InlineStr),
    /// An empty or whitespace-only line (including a lone `"\r"`).
    Blank,
    /// A CSV header line.
    Header,
}

/// Why a line was refused.
///
/// [`RejectReason::as_str`] is the stable code stored in `rejects.reason`; several variants
/// may share a code, and the `Display` form adds the detail (which field, how many columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The event is older than the watermark (decided by the dataflow, not by a parser).
    #[error("late: older than the watermark")]
    Late,
    /// A trade time far ahead of its partition's clock that later records did not confirm,
    /// or ahead of the wall clock (decided by the source, see `--max-time-jump`).
    #[error("time outlier: far ahead of the partition's clock")]
    TimeOutlier,
    /// Records that can no longer be read: a range of offsets was deleted before it was read
    /// (Kafka retention). Reported by the partition, with the lost range in the detail.
    #[error("data loss: records deleted before they were read")]
    DataLoss,
    /// The line is longer than [`MAX_LINE`] bytes (decided by the reader).
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// The line is not UTF-8, or a `\u` escape encodes a lone surrogate.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// Not JSON: truncated, trailing garbage, bad escape, nesting deeper than 128, ...
    #[error("malformed or truncated JSON")]
    MalformedJson,
    /// Well-formed JSON whose top level is not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// A required field is absent.
    #[error("missing field \"{0}\"")]
    MissingField(&'static str),
    /// A field occurs twice in one object: its value would be ambiguous.
    #[error("duplicate field \"{0}\"")]
    DuplicateField(&'static str),
    /// A field holds the wrong JSON type (a number where a string is expected, a CSV boolean
    /// that is not `true`/`false`, ...).
    #[error("field \"{0}\" has the wrong type")]
    WrongType(&'static str),
    /// A field is not a number, or is out of range.
    #[error("field \"{0}\" is not a number in range")]
    BadNumber(&'static str),
    /// A price or quantity has more than 8 significant fractional digits.
    #[error("field \"{0}\" has more than 8 fractional digits")]
    TooPrecise(&'static str),
    /// A price or quantity is zero or negative (a candle volume: negative).
    #[error("field \"{0}\" is not positive")]
    NotPositive(&'static str),
    /// A symbol or account id is longer than [`crate::model::INLINE_CAPACITY`] bytes.
    #[error("field \"{0}\" is longer than 23 bytes")]
    TooLong(&'static str),
    /// A symbol is the empty string.
    #[error("field \"{0}\" is empty")]
    EmptyField(&'static str),
    /// A symbol or account id holds a control character, whitespace or an invisible
    /// formatting character (see [`printable`]).
    #[error("field \"{0}\" holds a control, blank or invisible character")]
    NonPrintable(&'static str),
    /// A CSV line has the wrong number of columns.
    #[error("expected {expected} columns, found {found}")]
    ColumnCount {
        /// What the format allows, such as `"6 or 7"`.
        expected: &'static str,
        /// How many the line has.
        found: usize,
    },
    /// A time or date is not an integer in range or not a valid date.
    #[error("field \"{0}\" is not a valid time")]
    BadTime(&'static str),
}

impl RejectReason {
    /// Every code [`RejectReason::as_str`] can return.
    pub const CODES: [&'static str; 17] = [
        "late",
        "time_outlier",
        "data_loss",
        "line_too_long",
        "invalid_utf8",
        "malformed_json",
        "missing_field",
        "duplicate_field",
        "wrong_type",
        "bad_number",
        "too_precise",
        "non_positive",
        "too_long",
        "empty_field",
        "non_printable",
        "column_count",
        "bad_time",
    ];

    /// The stable snake_case code of the reason, for `rejects.reason`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::Late => "late",
            RejectReason::DataLoss => "data_loss",
            RejectReason::TimeOutlier => "time_outlier",
            RejectReason::LineTooLong => "line_too_long",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::MalformedJson | RejectReason::NotAnObject => "malformed_json",
            RejectReason::MissingField(_) => "missing_field",
            RejectReason::DuplicateField(_) => "duplicate_field",
            RejectReason::WrongType(_) => "wrong_type",
            RejectReason::BadNumber(_) => "bad_number",
            RejectReason::TooPrecise(_) => "too_precise",
            RejectReason::NotPositive(_) => "non_positive",
            RejectReason::TooLong(_) => "too_long",
            RejectReason::EmptyField(_) => "empty_field",
            RejectReason::NonPrintable(_) => "non_printable",
            RejectReason::ColumnCount { .. } => "column_count",
            RejectReason::BadTime(_) => "bad_time",
        }
    }
}

/// An input format, with what a line of it does not say by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Binance trade-stream JSON, one object per line, bare or in the combined-stream
    /// wrapper `{"stream":...,"data":{...}}`.
    BinanceJson,
    /// Binance public-data trade CSV `id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match]`;
    /// the file does not name its symbol.
    BinanceCsv {
        /// The symbol of every trade in the file.
        symbol: Symbol,
    },
    /// Daily OHLCV candles as in the Kaggle "Cryptocurrency Price History" files.
    CandleCsv,
}

impl Format {
    /// Parses one line (without its `'\n'`; a trailing `'\r'` is tolerated).
    ///
    /// ```
    /// use tickflow_operators::parse::{Format, Record, RejectReason};
    /// let line = br#"{"e":"trade","s":"BTCUSDT","t":1,"p":"43250.10","q":"0.002","T":1700000000123,"m":true}"#;
    /// let Ok(Record::Trade(trade)) = Format::BinanceJson.parse_line(line) else { panic!() };
    /// assert_eq!(trade.price.to_string(), "43250.1");
    /// assert_eq!(
    ///     Format::BinanceJson.parse_line(br#"{"e":"trade""#),
    ///     Err(RejectReason::MalformedJson)
    /// );
    /// ```
    #[inline]
    pub fn parse_line(&self, line: &[u8]) -> Result<Record, RejectReason> {
        match self {
            Format::BinanceJson => binance_json::parse(line),
            Format::BinanceCsv { symbol } => binance_csv::parse(line, *symbol),
            Format::CandleCsv => candle_csv::parse(line),
        }
    }

    /// The window of the candles a file of this format holds (its records are candles,
    /// not trades): one day for the Kaggle files.
    pub fn candle_window_ms(&self) -> Option<u64> {
        match self {
            Format::CandleCsv => Some(candle_csv::DAY_MS),
            Format::BinanceJson | Format::BinanceCsv { .. } => None,
        }
    }
}

/// The symbol of a line the parser refused, when it can still be read: for Binance JSON the
/// first `"s"` string field whose value is a valid name (plain ASCII letters, digits, `-`,
/// `_`), for trade CSV the file's symbol. The quality dataflow counts a refused record under
/// it (under the empty symbol when there is none); never used for anything else.
///
/// ```
/// use tickflow_operators::parse::{symbol_hint, Format};
/// let hint = symbol_hint(&Format::BinanceJson, br#"{"e":"trade","s":"ETHUSDT","t":1,"p":"x"}"#);
/// assert_eq!(hint.map(|s| s.to_string()), Some("ETHUSDT".to_owned()));
/// assert_eq!(symbol_hint(&Format::BinanceJson, br#"{"e":"trade","s":"ETH USDT""#), None);
/// assert_eq!(symbol_hint(&Format::BinanceJson, b"garbage"), None);
/// ```
pub fn symbol_hint(format: &Format, line: &[u8]) -> Option<Symbol> {
    match format {
        Format::BinanceJson => {
            let at = memchr::memmem::find(line, br#""s":""#)? + 5;
            let rest = &line[at..];
            let end = memchr::memchr(b'"', rest)?;
            let bytes = &rest[..end];
            let plain = !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            plain.then(|| InlineStr::from_checked_utf8(bytes)).flatten()
        }
        Format::BinanceCsv { symbol } => Some(*symbol),
        Format::CandleCsv => None,
    }
}

/// The trade id of a line the parser refused, when it can still be read: for Binance JSON
/// the digits of the first `"t"` field, for trade CSV the first column. The quality dataflow
/// takes a refused record with a readable symbol and id as received, so its id is no gap.
///
/// ```
/// use tickflow_operators::parse::{id_hint, Format};
/// assert_eq!(id_hint(&Format::BinanceJson, br#"{"s":"X","t":12345,"p":"-1"}"#), Some(12345));
/// assert_eq!(id_hint(&Format::BinanceJson, br#"{"s":"X","t":"#), None);
/// ```
pub fn id_hint(format: &Format, line: &[u8]) -> Option<u64> {
    let digits = match format {
        Format::BinanceJson => {
            let at = memchr::memmem::find(line, br#""t":"#)? + 4;
            let rest = &line[at..];
            let end = rest
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(rest.len());
            // A number cut by the end of the line may be missing digits.
            if end == rest.len() {
                return None;
            }
            &rest[..end]
        }
        Format::BinanceCsv { .. } => {
            let end = memchr::memchr(b',', line)?;
            &line[..end]
        }
        Format::CandleCsv => return None,
    };
    parse_u64(digits)
}

/// The line without a leading UTF-8 byte order mark (spreadsheet exports write one).
#[inline]
fn strip_bom(line: &[u8]) -> &[u8] {
    line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
}

#[inline]
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[inline]
fn check_utf8(line: &[u8]) -> Result<(), RejectReason> {
    // `from_utf8` runs word-at-a-time over ASCII, which is nearly every line.
    match std::str::from_utf8(line) {
        Ok(_) => Ok(()),
        Err(_) => Err(RejectReason::InvalidUtf8),
    }
}

/// Whether `text` can name a symbol or an account: no control characters (`\0`, `\n`,
/// escape sequences...), no whitespace, and none of the invisible formatting characters that
/// make two names look alike or reorder a line when printed (zero-width characters,
/// bidirectional controls, the byte order mark, non-characters).
///
/// ```
/// use tickflow_operators::parse::printable;
/// assert!(printable("BTCUSDT") && printable("acct-42") && printable("ÉTH€"));
/// assert!(!printable("BTC\0X") && !printable("BTC USDT") && !printable("BTC\u{202e}X"));
/// ```
pub fn printable(text: &str) -> bool {
    text.chars().all(|c| {
        !(c.is_control()
            || c.is_whitespace()
            || matches!(c,
                '\u{200B}'..='\u{200F}' // zero-width space/joiners, directional marks
                | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
                | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
                | '\u{2066}'..='\u{2069}' // bidirectional isolates
                | '\u{FEFF}' // byte order mark
                | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
                | '\u{FFFE}' | '\u{FFFF}'))
    })
}

/// A symbol or account id from already-decoded UTF-8 bytes: at most
/// [`crate::model::INLINE_CAPACITY`] bytes and [`printable`].
#[inline]
fn name(bytes: &[u8], field: &'static str) -> Result<InlineStr, RejectReason> {
    if bytes.is_empty() {
        return Err(RejectReason::EmptyField(field));
    }
    // ASCII letters, digits, '-' and '_' are nearly every name: they are UTF-8 and printable
    // without decoding.
    let plain = bytes
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain {
        let text = std::str::from_utf8(bytes).map_err(|_| RejectReason::InvalidUtf8)?;
        if !printable(text) {
            return Err(RejectReason::NonPrintable(field));
        }
    }
    InlineStr::from_checked_utf8(bytes).ok_or(RejectReason::TooLong(field))
}

/// A non-negative integer written with ASCII digits only.
#[inline]
fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in text {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some(value)
}

/// Trade times `≥ 10^14` are microseconds (10^14 ms is the year 5138); times that are still
/// `≥ 10^14` ms after dividing by 1000 are refused rather than guessed at.
#[inline]
fn normalize_time(raw: u64) -> Option<u64> {
    const MICROS_FROM: u64 = 100_000_000_000_000;
    if raw < MICROS_FROM {
        Some(raw)
    } else {
        let ms = raw / 1000;
        (ms < MICROS_FROM).then_some(ms)
    }
}

#[inline]
fn decimal_error(error: DecimalError, field: &'static str) -> RejectReason {
    match error {
        DecimalError::Precision => RejectReason::TooPrecise(field),
        DecimalError::Syntax | DecimalError::Range => RejectReason::BadNumber(field),
    }
}

/// A trade price or quantity: exact and strictly positive.
#[inline]
fn positive_fixed(text: &[u8], field: &'static str) -> Result<Fixed, RejectReason> {
    let value = Fixed::parse(text).map_err(|e| decimal_error(e, field))?;
    if value.0 <= 0 {
        return Err(RejectReason::NotPositive(field));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_a_small_stable_snake_case_set() {
        use RejectReason::*;
        let all = [
            Late,
            DataLoss,
            TimeOutlier,
            LineTooLong,
            InvalidUtf8,
            MalformedJson,
            NotAnObject,
            MissingField("p"),
            DuplicateField("p"),
            WrongType("p"),
            BadNumber("p"),
            TooPrecise("p"),
            NotPositive("p"),
            TooLong("s"),
            EmptyField("s"),
            NonPrintable("s"),
            ColumnCount {
                expected: "10",
                found: 3,
            },
            BadTime("T"),
        ];
        for reason in all {
            let code = reason.as_str();
            assert!(RejectReason::CODES.contains(&code), "{code}");
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{code}"
            );
        }
        for code in RejectReason::CODES {
            assert!(all.iter().any(|r| r.as_str() == code), "{code} unused");
        }
        assert_eq!(MissingField("p").to_string(), "missing field \"p\"");
        assert_eq!(
            ColumnCount {
                expected: "6 or 7",
                found: 3
            }
            .to_string(),
            "expected 6 or 7 columns, found 3"
        );
        assert_eq!(LineTooLong.to_string(), "line longer than 65536 bytes");
    }

    #[test]
    fn times_switch_to_microseconds_at_1e14() {
        assert_eq!(normalize_time(1_700_000_000_123), Some(1_700_000_000_123));
        assert_eq!(normalize_time(99_999_999_999_999), Some(99_999_999_999_999));
        assert_eq!(normalize_time(100_000_000_000_000), Some(100_000_000_000));
        assert_eq!(
            normalize_time(1_700_000_000_123_456),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            normalize_time(99_999_999_999_999_999),
            Some(99_999_999_999_999)
        );
        assert_eq!(normalize_time(100_000_000_000_000_000), None);
        assert_eq!(normalize_time(u64::MAX), None);
    }

    #[test]
    fn integers_are_plain_digits() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"-1",
            b"+1",
            b"1.0",
            b"1e3",
            b" 1",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
    }
}

/// Throughput of the hot path; run with
/// `cargo test --release -p tickflow-operators parse::throughput -- --ignored --nocapture`.
#[cfg(test)]
mod throughput {
    use std::hint::black_box;
    use std::time::Instant;

    use super::*;

    fn measure(name: &str, format: Format, lines: &[String]) {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            let mut ok = 0u64;
            for line in lines {
                if let Ok(Record::Trade(_)) = format.parse_line(black_box(line.as_bytes())) {
                    ok += 1;
                }
            }
            best = best.min(start.elapsed().as_secs_f64());
            assert_eq!(ok, lines.len() as u64);
        }
        let bytes: usize = lines.iter().map(String::len).sum();
        println!(
            "{name}: {:.2} M lines/s, {:.0} MB/s ({} lines, {:.0} bytes/line)",
            lines.len() as f64 / best / 1e6,
            bytes as f64 / best / 1e6,
            lines.len(),
            bytes as f64 / lines.len() as f64
        );
    }

    #[test]
    #[ignore = "a measurement, not a check: run it in release mode"]
    fn trade_lines_per_second() {
        const SYMBOLS: [&str; 4] = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"];
        let n = 1_000_000u64;
        let json: Vec<String> = (0..n)
            .map(|i| {
                let price = 4_000_000 + (i * 7919) % 100_000;
                format!(
                    r#"{{"e":"trade","E":{},"s":"{}","t":{},"p":"{}.{:02}","q":"{}.{:05}","b":{},"a":{},"T":{},"m":{}}}"#,
                    1_700_000_000_125 + i * 3,
                    SYMBOLS[(i % 4) as usize],
                    123_456 + i,
                    price / 100,
                    price % 100,
                    i % 3,
                    (i * 31) % 100_000 + 1,
                    88 + i * 2,
                    50 + i * 2,
                    1_700_000_000_123 + i * 3,
                    i % 2 == 0
                )
            })
            .collect();
        measure("binance json", Format::BinanceJson, &json);
        let wrapped: Vec<String> = json
            .iter()
            .map(|l| format!(r#"{{"stream":"btcusdt@trade","data":{l}}}"#))
            .collect();
        measure(
            "binance json, combined stream",
            Format::BinanceJson,
            &wrapped,
        );
        let csv: Vec<String> = (0..n)
            .map(|i| {
                let price = 4_000_000 + (i * 7919) % 100_000;
                format!(
                    "{},{}.{:02},{}.{:05},123.45,{},{}",
                    123_456 + i,
                    price / 100,
                    price % 100,
                    i % 3,
                    (i * 31) % 100_000 + 1,
                    1_700_000_000_123 + i * 3,
                    if i % 2 == 0 { "True" } else { "False" }
                )
            })
            .collect();
        let symbol = InlineStr::new("BTCUSDT").expect("short");
        measure("binance csv", Format::BinanceCsv { symbol }, &csv);
    }
}
