//! Binance public-data trade CSV: `id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match]`.
//!
//! `quote_qty` is ignored: the dataflows compute `p·q` exactly from price and quantity.

use crate::model::{Symbol, Trade};

use super::csv::split;
use super::{check_utf8, is_blank, normalize_time, parse_u64, positive_fixed, strip_bom};
use super::{Record, RejectReason};

pub(super) fn parse(line: &[u8], symbol: Symbol) -> Result<Record, RejectReason> {
    let line = strip_bom(line);
    if is_blank(line) {
        return Ok(Record::Blank);
    }
    check_utf8(line)?;
    let mut cols = [&b""[..]; 7];
    let found = split(line, &mut cols);
    if cols[0].eq_ignore_ascii_case(b"id") {
        return Ok(Record::Header);
    }
    if !(6..=7).contains(&found) {
        return Err(RejectReason::ColumnCount {
            expected: "6 or 7",
            found,
        });
    }
    let id = parse_u64(cols[0]).ok_or(RejectReason::BadNumber("id"))?;
    let price = positive_fixed(cols[1], "price")?;
    let qty = positive_fixed(cols[2], "qty")?;
    let time_ms = parse_u64(cols[4])
        .and_then(normalize_time)
        .ok_or(RejectReason::BadTime("time"))?;
    let buyer_maker = parse_bool(cols[5]).ok_or(RejectReason::WrongType("is_buyer_maker"))?;
    if found == 7 && !cols[6].is_empty() && parse_bool(cols[6]).is_none() {
        return Err(RejectReason::WrongType("is_best_match"));
    }
    Ok(Record::Trade(Trade {
        symbol,
        id,
        price,
        qty,
        time_ms,
        buyer_maker,
        buyer: None,
        seller: None,
    }))
}

/// `true`/`false` in any case (the files write `True`/`False`).
pub(super) fn parse_bool(text: &[u8]) -> Option<bool> {
    if text.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if text.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{Fixed, InlineStr};
    use crate::parse::Format;
    use RejectReason::*;

    fn format() -> Format {
        Format::BinanceCsv {
            symbol: InlineStr::new("BTCUSDT").expect("short"),
        }
    }

    fn trade(id: u64, price: i64, qty: i64, time_ms: u64, buyer_maker: bool) -> Record {
        Record::Trade(Trade {
            symbol: InlineStr::new("BTCUSDT").expect("short"),
            id,
            price: Fixed(price),
            qty: Fixed(qty),
            time_ms,
            buyer_maker,
            buyer: None,
            seller: None,
        })
    }

    #[test]
    fn rows_headers_and_blanks() {
        let expected = trade(123_456, 4_325_010_000_000, 210_000, 1_700_000_000_123, true);
        for line in [
            "123456,43250.10,0.00210,90.825210,1700000000123,true",
            "123456,43250.10,0.00210,90.825210,1700000000123,True,True",
            "123456,43250.10,0.00210,90.825210,1700000000123,TRUE,false\r",
            "123456,43250.10,0.00210,90.825210,1700000000123456,True,",
            "123456, 43250.1 ,2.1e-3,,1700000000123,true",
        ] {
            assert_eq!(format().parse_line(line.as_bytes()), Ok(expected), "{line}");
        }
        assert_eq!(
            format().parse_line(b"1,1,1,1,0,False"),
            Ok(trade(1, 100_000_000, 100_000_000, 0, false))
        );
        for line in [
            "id,price,qty,quote_qty,time,is_buyer_maker",
            "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\r",
            "\u{feff}id,price,qty,quote_qty,time,is_buyer_maker",
        ] {
            assert_eq!(
                format().parse_line(line.as_bytes()),
                Ok(Record::Header),
                "{line}"
            );
        }
        for line in ["", "\r", "  \t"] {
            assert_eq!(
                format().parse_line(line.as_bytes()),
                Ok(Record::Blank),
                "{line:?}"
            );
        }
    }

    #[test]
    fn broken_rows_are_rejected_with_their_reason() {
        let table: &[(&str, RejectReason)] = &[
            (
                "1,2,3,4,5",
                ColumnCount {
                    expected: "6 or 7",
                    found: 5,
                },
            ),
            (
                "1,2,3,4,5,true,true,8",
                ColumnCount {
                    expected: "6 or 7",
                    found: 8,
                },
            ),
            (
                "x",
                ColumnCount {
                    expected: "6 or 7",
                    found: 1,
                },
            ),
            ("-1,2,3,4,5,true", BadNumber("id")),
            ("abc,2,3,4,5,true", BadNumber("id")),
            (",2,3,4,5,true", BadNumber("id")),
            ("1.5,2,3,4,5,true", BadNumber("id")),
            ("1,abc,3,4,5,true", BadNumber("price")),
            ("1,,3,4,5,true", BadNumber("price")),
            ("1,0,3,4,5,true", NotPositive("price")),
            ("1,-2,3,4,5,true", NotPositive("price")),
            ("1,2.123456789,3,4,5,true", TooPrecise("price")),
            ("1,2,0.000000001,4,5,true", TooPrecise("qty")),
            ("1,2,0,4,5,true", NotPositive("qty")),
            ("1,2,1e30,4,5,true", BadNumber("qty")),
            ("1,2,3,4,abc,true", BadTime("time")),
            ("1,2,3,4,-5,true", BadTime("time")),
            ("1,2,3,4,1.5,true", BadTime("time")),
            ("1,2,3,4,100000000000000000,true", BadTime("time")),
            ("1,2,3,4,5,yes", WrongType("is_buyer_maker")),
            ("1,2,3,4,5,1", WrongType("is_buyer_maker")),
            ("1,2,3,4,5,", WrongType("is_buyer_maker")),
            ("1,2,3,4,5,true,maybe", WrongType("is_best_match")),
        ];
        for (line, reason) in table {
            assert_eq!(format().parse_line(line.as_bytes()), Err(*reason), "{line}");
        }
        assert_eq!(format().parse_line(b"1,2\xff,3,4,5,true"), Err(InvalidUtf8));
    }

    fn bool_text(value: bool, style: u8) -> String {
        let text = if value { "true" } else { "false" };
        match style % 3 {
            0 => text.to_string(),
            1 => text.to_ascii_uppercase(),
            _ => format!("{}{}", text[..1].to_ascii_uppercase(), &text[1..]),
        }
    }

    proptest! {
        #[test]
        fn written_rows_parse_back_exactly(
            id in any::<u64>(),
            price in 1i64..=i64::MAX,
            qty in 1i64..=i64::MAX,
            time_ms in 0u64..100_000_000_000_000,
            micros in 0u64..1000,
            buyer_maker in any::<bool>(),
            style in any::<u8>(),
            best_match in prop::option::of(any::<bool>()),
            quote in "[0-9]{1,20}(\\.[0-9]{1,16})?",
            crlf in any::<bool>(),
        ) {
            // Microsecond files (2025 onwards) are only unambiguous from 10^14 µs on.
            let time = if time_ms >= 100_000_000_000 && style % 2 == 0 {
                time_ms * 1000 + micros
            } else {
                time_ms
            };
            let mut line = format!(
                "{id},{},{},{quote},{time},{}",
                Fixed(price),
                Fixed(qty),
                bool_text(buyer_maker, style / 2)
            );
            if let Some(best) = best_match {
                line.push(',');
                line.push_str(&bool_text(best, style / 6));
            }
            if crlf {
                line.push('\r');
            }
            prop_assert_eq!(
                format().parse_line(line.as_bytes()),
                Ok(trade(id, price, qty, time_ms, buyer_maker)),
                "{}", line
            );
        }
    }
}
