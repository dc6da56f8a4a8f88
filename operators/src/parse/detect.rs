//! Choosing the format of a file from its name and first line.

use crate::model::{InlineStr, Symbol, INLINE_CAPACITY};

use super::binance_csv::parse_bool;
use super::csv::split;
use super::{civil, strip_bom, Format};

const CANDLE_HEADER: [&str; 10] = [
    "SNo",
    "Name",
    "Symbol",
    "Date",
    "High",
    "Low",
    "Open",
    "Close",
    "Volume",
    "Marketcap",
];
const BINANCE_HEADER: [&str; 7] = [
    "id",
    "price",
    "qty",
    "quote_qty",
    "time",
    "is_buyer_maker",
    "is_best_match",
];

/// Decides the format from a file name (may be "-" for stdin) and its first non-blank line;
/// `symbol` is the --symbol override.
///
/// A name ending in `.jsonl` or `.json` (optionally `.gz`), or a first line starting with
/// `{`, means Binance JSON. The Kaggle header, or ten columns with a date in the fourth,
/// means candles. The Binance CSV header, or six or seven columns of which the first five
/// are numbers and the sixth a boolean, means a Binance trade CSV, whose symbol comes from
/// `symbol` or else from a file name like `BTCUSDT-trades-2024-01.csv`. `symbol` does not
/// apply to the other formats, whose lines name their symbol.
///
/// ```
/// use tickflow_operators::parse::{detect_format, Format};
/// let format = detect_format("data/BTCUSDT-trades-2024-01.csv.gz", b"1,42000.5,0.1,4200.05,1704067200000,true", None);
/// assert!(matches!(format, Ok(Format::BinanceCsv { symbol }) if symbol.as_str() == "BTCUSDT"));
/// assert!(detect_format("-", b"1,42000.5,0.1,4200.05,1704067200000,true", None).is_err());
/// ```
pub fn detect_format(
    file_name: &str,
    first_line: &[u8],
    symbol: Option<Symbol>,
) -> Result<Format, String> {
    let shown = if file_name == "-" {
        "standard input"
    } else {
        file_name
    };
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let lower = base.to_ascii_lowercase();
    let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
    let line = strip_bom(first_line).trim_ascii();
    if stem.ends_with(".jsonl") || stem.ends_with(".json") || line.first() == Some(&b'{') {
        return Ok(Format::BinanceJson);
    }
    if line.is_empty() {
        return Err(format!(
            "{shown}: no data line to tell the format from, and the name does not end in \
             .jsonl or .json"
        ));
    }
    let mut cols = [&b""[..]; 10];
    let found = split(line, &mut cols);
    let cols = &cols[..found.min(cols.len())];
    if is_header(cols, &CANDLE_HEADER) || (found == 10 && civil::day_start_ms(cols[3]).is_some()) {
        return Ok(Format::CandleCsv);
    }
    if is_header(cols, &BINANCE_HEADER[..found.clamp(6, 7)]) || is_binance_row(cols) {
        return match symbol.or_else(|| symbol_from_name(base)) {
            Some(symbol) => Ok(Format::BinanceCsv { symbol }),
            None => Err(format!(
                "{shown}: a Binance trade CSV does not name its symbol; pass --symbol SYMBOL \
                 or name the file like BTCUSDT-trades-2024-01.csv"
            )),
        };
    }
    let preview = String::from_utf8_lossy(&line[..line.len().min(80)]);
    Err(format!(
        "{shown}: unknown input format (first line {preview:?}); expected Binance trade JSON \
         lines (.jsonl), a Binance trade CSV (id,price,qty,quote_qty,time,is_buyer_maker\
         [,is_best_match]) or a Kaggle candle CSV (SNo,Name,Symbol,Date,High,Low,Open,Close,\
         Volume,Marketcap)"
    ))
}

fn is_header(cols: &[&[u8]], names: &[&str]) -> bool {
    cols.len() == names.len()
        && cols
            .iter()
            .zip(names)
            .all(|(col, name)| col.eq_ignore_ascii_case(name.as_bytes()))
}

fn is_binance_row(cols: &[&[u8]]) -> bool {
    let numeric = |col: &&[u8]| {
        !col.is_empty()
            && col.iter().any(u8::is_ascii_digit)
            && col
                .iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    };
    (6..=7).contains(&cols.len()) && cols[..5].iter().all(numeric) && parse_bool(cols[5]).is_some()
}

/// `BTCUSDT` from `BTCUSDT-trades-2024-01.csv` (Binance's public-data naming).
fn symbol_from_name(base: &str) -> Option<Symbol> {
    let end = base.find("-trades-").or_else(|| base.find("-trades."))?;
    let name = &base[..end];
    let plausible = !name.is_empty()
        && name.len() <= INLINE_CAPACITY
        && name.bytes().all(|b| b.is_ascii_alphanumeric());
    plausible.then(|| InlineStr::new(name)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BINANCE_ROW: &[u8] = b"123456,43250.10,0.00210,90.825,1700000000123,True,True";
    const KAGGLE_HEADER: &[u8] = b"SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap";
    const KAGGLE_ROW: &[u8] =
        b"1,Bitcoin,BTC,2013-04-29 23:59:59,147.48800659,134.0,134.44400024,144.5399932,0.0,1603768864.5";

    fn sym(text: &str) -> Symbol {
        InlineStr::new(text).expect("short")
    }

    #[test]
    fn json_by_name_or_first_byte() {
        for (name, line) in [
            ("trades.jsonl", &b"anything"[..]),
            ("dir/TRADES.JSON.GZ", b""),
            ("-", b"  {\"e\":\"trade\"}"),
            ("data.csv", b"{\"stream\":\"x\"}"),
            ("x.txt", b"\xEF\xBB\xBF{"),
        ] {
            assert_eq!(
                detect_format(name, line, None),
                Ok(Format::BinanceJson),
                "{name}"
            );
        }
    }

    #[test]
    fn candles_by_header_or_dated_row() {
        for line in [
            KAGGLE_HEADER,
            KAGGLE_ROW,
            b"sno,name,symbol,date,high,low,open,close,volume,marketcap\r",
        ] {
            assert_eq!(
                detect_format("coin_Bitcoin.csv", line, Some(sym("IGNORED"))),
                Ok(Format::CandleCsv)
            );
        }
    }

    #[test]
    fn binance_csv_takes_its_symbol_from_override_or_name() {
        let header = b"id,price,qty,quote_qty,time,is_buyer_maker";
        for (name, line, symbol, expected) in [
            ("BTCUSDT-trades-2024-01.csv", BINANCE_ROW, None, "BTCUSDT"),
            (
                "/data/ETHUSDT-trades-2024-01-15.csv.gz",
                &header[..],
                None,
                "ETHUSDT",
            ),
            (
                "C:\\data\\BNBBTC-trades-2024-01.csv",
                b"id,price,qty,quote_qty,time,is_buyer_maker,is_best_match",
                None,
                "BNBBTC",
            ),
            (
                "BTCUSDT-trades-2024-01.csv",
                BINANCE_ROW,
                Some(sym("XRPUSDT")),
                "XRPUSDT",
            ),
            (
                "-",
                b"1,2,3,4,1700000000123456,false",
                Some(sym("SOLUSDT")),
                "SOLUSDT",
            ),
        ] {
            assert_eq!(
                detect_format(name, line, symbol),
                Ok(Format::BinanceCsv {
                    symbol: sym(expected)
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn errors_say_what_and_why() {
        let error = detect_format("-", BINANCE_ROW, None).expect_err("no symbol");
        assert!(
            error.contains("standard input") && error.contains("--symbol"),
            "{error}"
        );
        let error = detect_format("trades.csv", BINANCE_ROW, None).expect_err("no symbol");
        assert!(
            error.contains("trades.csv") && error.contains("--symbol"),
            "{error}"
        );
        let error = detect_format(
            "BTCUSDT-aggTrades-2024-01.csv",
            b"1,2,3,4,5,6,true,true",
            None,
        )
        .expect_err("aggTrades");
        assert!(
            error.contains("BTCUSDT-aggTrades-2024-01.csv") && error.contains("expected"),
            "{error}"
        );
        let error = detect_format("prices.csv", b"date,price", None).expect_err("unknown");
        assert!(
            error.contains("prices.csv") && error.contains("\"date,price\""),
            "{error}"
        );
        let error = detect_format("empty.csv", b"", None).expect_err("empty");
        assert!(error.contains("empty.csv"), "{error}");
    }
}
