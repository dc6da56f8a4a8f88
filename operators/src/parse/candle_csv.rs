//! Daily OHLCV candles as in the Kaggle "Cryptocurrency Price History" files:
//! `SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap`.
//!
//! These files were written from binary floats and carry float noise such as
//! `147.48800659179688`. For this format only, a value with more than 8 fractional digits is
//! rounded half away from zero at the 8th digit instead of being refused. The volume is read
//! into the wide [`Volume`] directly: daily volumes in quote currency exceed the range of
//! [`Fixed`] (about 9.2·10^10).

use crate::model::{Candle, DecimalError, Fixed, Volume, Wide, DIGITS};

use super::csv::split;
use super::{check_utf8, civil, decimal_error, is_blank, strip_bom};
use super::{Record, RejectReason};

/// The window of a daily candle.
pub(super) const DAY_MS: u64 = 86_400_000;

pub(super) fn parse(line: &[u8]) -> Result<Record, RejectReason> {
    let line = strip_bom(line);
    if is_blank(line) {
        return Ok(Record::Blank);
    }
    check_utf8(line)?;
    let mut cols = [&b""[..]; 10];
    let found = split(line, &mut cols);
    if cols[0].eq_ignore_ascii_case(b"SNo") {
        return Ok(Record::Header);
    }
    if found != 10 {
        return Err(RejectReason::ColumnCount {
            expected: "10",
            found,
        });
    }
    let symbol = match cols[2] {
        b"" => return Err(RejectReason::EmptyField("Symbol")),
        text => super::name(text, "Symbol")?,
    };
    let start_ms = civil::day_start_ms(cols[3]).ok_or(RejectReason::BadTime("Date"))?;
    Ok(Record::Candle(Candle {
        symbol,
        window_ms: DAY_MS,
        start_ms,
        high: price(cols[4], "High")?,
        low: price(cols[5], "Low")?,
        open: price(cols[6], "Open")?,
        close: price(cols[7], "Close")?,
        volume: volume(cols[8])?,
        quote_volume: None,
        vwap: None,
        trades: None,
    }))
}

/// A positive price: exact when it can be, else rounded to 8 digits.
fn price(text: &[u8], field: &'static str) -> Result<Fixed, RejectReason> {
    let value = match Fixed::parse(text) {
        Ok(value) => value,
        Err(DecimalError::Precision) => round_to_scale(text)
            .and_then(|v| i64::try_from(v).map_err(|_| DecimalError::Range))
            .map(Fixed)
            .map_err(|e| decimal_error(e, field))?,
        Err(e) => return Err(decimal_error(e, field)),
    };
    if value.0 <= 0 {
        return Err(RejectReason::NotPositive(field));
    }
    Ok(value)
}

/// A non-negative volume, rounded to 8 digits.
fn volume(text: &[u8]) -> Result<Volume, RejectReason> {
    let value = round_to_scale(text).map_err(|e| decimal_error(e, "Volume"))?;
    if value < 0 {
        return Err(RejectReason::NotPositive("Volume"));
    }
    Ok(Wide(value))
}

/// `text` (the syntax [`Fixed::parse`] accepts: `[+-]digits[.digits][e[+-]ddd]`) times 10^8,
/// rounded half away from zero to an integer; equal to `Fixed::parse` wherever that is exact.
pub(super) fn round_to_scale(text: &[u8]) -> Result<i128, DecimalError> {
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let (mantissa, exponent) = match body.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (&body[..at], exponent(&body[at + 1..])?),
        None => (body, 0),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, &b""[..]),
    };
    let digits = || int.iter().chain(frac.iter());
    if int.len() + frac.len() == 0 || !digits().all(u8::is_ascii_digit) {
        return Err(DecimalError::Syntax);
    }
    let accumulate = |acc: i128, d: &u8| -> Result<i128, DecimalError> {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(d - b'0')))
            .ok_or(DecimalError::Range)
    };
    // value·10^8 = (all digits as an integer)·10^shift
    let shift = exponent + i64::from(DIGITS) - frac.len() as i64;
    let count = int.len() + frac.len();
    let magnitude = if shift >= 0 {
        let factor = u32::try_from(shift)
            .ok()
            .and_then(|s| 10i128.checked_pow(s))
            .ok_or(DecimalError::Range)?;
        digits()
            .try_fold(0, accumulate)?
            .checked_mul(factor)
            .ok_or(DecimalError::Range)?
    } else {
        let dropped = usize::try_from(-shift).map_err(|_| DecimalError::Range)?;
        let kept = count.saturating_sub(dropped);
        let truncated = digits().take(kept).try_fold(0, accumulate)?;
        // The first dropped digit decides; when every digit is dropped and more, it is a 0.
        let round_up = dropped <= count && digits().nth(kept).is_some_and(|&d| d >= b'5');
        truncated
            .checked_add(i128::from(round_up))
            .ok_or(DecimalError::Range)?
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// An exponent as [`Fixed::parse`] accepts it: optional sign, one to three digits.
fn exponent(text: &[u8]) -> Result<i64, DecimalError> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(DecimalError::Syntax);
    }
    let magnitude = digits
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Ok(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::InlineStr;
    use crate::parse::Format;
    use RejectReason::*;

    const KAGGLE_LINE: &str =
        "1,Bitcoin,BTC,2013-04-29 23:59:59,147.48800659,134.0,134.44400024,144.5399932,0.0,1603768864.5";

    fn candle_of(line: &str) -> Candle {
        match Format::CandleCsv.parse_line(line.as_bytes()) {
            Ok(Record::Candle(candle)) => candle,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn kaggle_example_parses_exactly() {
        assert_eq!(
            candle_of(KAGGLE_LINE),
            Candle {
                symbol: InlineStr::new("BTC").expect("short"),
                window_ms: 86_400_000,
                start_ms: 1_367_193_600_000,
                open: Fixed(13_444_400_024),
                high: Fixed(14_748_800_659),
                low: Fixed(13_400_000_000),
                close: Fixed(14_453_999_320),
                volume: Wide(0),
                quote_volume: None,
                vwap: None,
                trades: None,
            }
        );
        let header = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap";
        for line in [header, &format!("\u{feff}{header}\r")] {
            assert_eq!(
                Format::CandleCsv.parse_line(line.as_bytes()),
                Ok(Record::Header)
            );
        }
        assert_eq!(Format::CandleCsv.parse_line(b"\r"), Ok(Record::Blank));
    }

    #[test]
    fn float_noise_is_rounded_and_big_volumes_fit() {
        let line = "2862,Bitcoin,BTC,2021-02-21,57541.2734375,55313.1953125,55681.5234375,\
                    57107.119420334096,350967941479.06,1.0640958986999e+12";
        let c = candle_of(line);
        assert_eq!(c.start_ms, 18_679 * 86_400_000); // date -u -d 2021-02-21 +%s / 86400
        assert_eq!(c.high, Fixed(5_754_127_343_750));
        assert_eq!(c.close, Fixed(5_710_711_942_033)); // …4200|334 → down
        assert_eq!(c.volume, Wide(35_096_794_147_906_000_000));
        let line = "7,Dogecoin,DOGE,2014-01-01,1.2345678951e-04,0.000123456785,0.0001234567849,\
                    \"1e-4\",2.5E3,";
        let c = candle_of(line);
        assert_eq!(c.high, Fixed(12_346)); // 12345.678951 → 12346
        assert_eq!(c.low, Fixed(12_346)); // 12345.6785 → half away from zero
        assert_eq!(c.open, Fixed(12_346)); // 12345.67849 → 12346
        assert_eq!(c.close, Fixed(10_000));
        assert_eq!(c.volume, Wide(250_000_000_000));
        let line = r#"9,"Crypto, Inc",CRO,2020-01-01 00:00:00,1,1,1,1,0.000000004,1"#;
        assert_eq!(candle_of(line).volume, Wide(0));
    }

    #[test]
    fn rounding_is_half_away_from_zero_at_the_8th_digit() {
        for (text, expected) in [
            ("0.123456785", 12_345_679),
            ("0.1234567849999", 12_345_678),
            ("-0.123456785", -12_345_679),
            ("-0.1234567849", -12_345_678),
            ("0.000000005", 1),
            ("0.000000004999", 0),
            ("5e-9", 1),
            ("4.9e-9", 0),
            ("5e-10", 0),
            ("1e-999", 0),
            ("99.999999995", 10_000_000_000),
            ("1.5e3", 150_000_000_000),
            ("+2.5", 250_000_000),
            (".5", 50_000_000),
            ("5.", 500_000_000),
            ("1701411834604692317316873037158.84105727", i128::MAX),
            ("-1701411834604692317316873037158.84105727", -i128::MAX),
        ] {
            assert_eq!(round_to_scale(text.as_bytes()), Ok(expected), "{text}");
        }
        for (text, error) in [
            ("", DecimalError::Syntax),
            ("-", DecimalError::Syntax),
            (".", DecimalError::Syntax),
            ("1.2.3", DecimalError::Syntax),
            ("1e", DecimalError::Syntax),
            ("1e1234", DecimalError::Syntax),
            ("NaN", DecimalError::Syntax),
            ("1 ", DecimalError::Syntax),
            ("1e999", DecimalError::Range),
            ("1e40", DecimalError::Range),
            (
                "1701411834604692317316873037158.84105728",
                DecimalError::Range,
            ),
            (
                "1701411834604692317316873037158.841057275",
                DecimalError::Range,
            ),
        ] {
            assert_eq!(round_to_scale(text.as_bytes()), Err(error), "{text}");
        }
    }

    #[test]
    fn broken_rows_are_rejected_with_their_reason() {
        let r = |column: usize, value: &str| {
            let mut cols: Vec<&str> = KAGGLE_LINE.split(',').collect();
            cols[column] = value;
            cols.join(",")
        };
        let table: Vec<(String, RejectReason)> = vec![
            (
                "1,Bitcoin,BTC".into(),
                ColumnCount {
                    expected: "10",
                    found: 3,
                },
            ),
            (
                format!("{KAGGLE_LINE},1"),
                ColumnCount {
                    expected: "10",
                    found: 11,
                },
            ),
            (r(2, ""), EmptyField("Symbol")),
            (r(2, "ABCDEFGHIJKLMNOPQRSTUVWX"), TooLong("Symbol")),
            (r(3, "2013-02-30 23:59:59"), BadTime("Date")),
            (r(3, "29/04/2013"), BadTime("Date")),
            (r(3, ""), BadTime("Date")),
            (r(4, "abc"), BadNumber("High")),
            (r(4, ""), BadNumber("High")),
            (r(5, "0"), NotPositive("Low")),
            (r(6, "-1.5"), NotPositive("Open")),
            (r(7, "0.000000001"), NotPositive("Close")),
            (r(7, "1e11"), BadNumber("Close")),
            (r(7, "100000000000.5"), BadNumber("Close")),
            (r(8, "-1"), NotPositive("Volume")),
            (r(8, "x"), BadNumber("Volume")),
        ];
        for (line, reason) in &table {
            assert_eq!(
                Format::CandleCsv.parse_line(line.as_bytes()),
                Err(*reason),
                "{line}"
            );
        }
        let mut line = KAGGLE_LINE.as_bytes().to_vec();
        line[3] = 0xff;
        assert_eq!(Format::CandleCsv.parse_line(&line), Err(InvalidUtf8));
    }

    /// `value × 10^-8` written with exactly 8 fractional digits.
    fn eight_digits(value: i64) -> String {
        let sign = if value < 0 { "-" } else { "" };
        let magnitude = value.unsigned_abs();
        format!(
            "{sign}{}.{:08}",
            magnitude / 100_000_000,
            magnitude % 100_000_000
        )
    }

    proptest! {
        #[test]
        fn extra_digits_round_half_away_from_zero(
            value in any::<i64>(),
            extra in "[0-9]{1,12}",
        ) {
            let text = format!("{}{extra}", eight_digits(value));
            let up = extra.as_bytes()[0] >= b'5';
            let magnitude = i128::from(value.unsigned_abs()) + i128::from(up);
            let expected = if value < 0 { -magnitude } else { magnitude };
            prop_assert_eq!(round_to_scale(text.as_bytes()), Ok(expected), "{}", text);
        }

        #[test]
        fn agrees_with_fixed_parse_wherever_that_is_exact(
            text in "[+-]?[0-9]{0,12}(\\.[0-9]{0,12})?([eE][+-]?[0-9]{1,3})?",
        ) {
            match Fixed::parse(text.as_bytes()) {
                Ok(value) => prop_assert_eq!(round_to_scale(text.as_bytes()), Ok(i128::from(value.0))),
                Err(DecimalError::Syntax) => {
                    prop_assert_eq!(round_to_scale(text.as_bytes()), Err(DecimalError::Syntax));
                }
                Err(_) => {}
            }
        }

        #[test]
        fn written_rows_parse_back(
            high in 1i64..=i64::MAX,
            low in 1i64..=i64::MAX,
            open in 1i64..=i64::MAX,
            close in 1i64..=i64::MAX,
            volume in 0i128..=i128::MAX / 1000,
            days in 0u64..2_932_896, // up to 9999-12-31
            with_time in any::<bool>(),
            symbol in "[A-Z0-9]{1,23}",
        ) {
            let start_ms = days * 86_400_000;
            let secs = start_ms / 1000;
            // Independent civil-from-days conversion via the Gregorian 400-year cycle.
            let (y, m, d) = civil_from_days(secs / 86_400);
            let date = if with_time {
                format!("{y:04}-{m:02}-{d:02} 23:59:59")
            } else {
                format!("{y:04}-{m:02}-{d:02}")
            };
            let vol = Wide::<8>(volume);
            let line = format!(
                "1,Name,{symbol},{date},{},{},{},{},{vol},123.4",
                eight_digits(high), eight_digits(low), eight_digits(open), eight_digits(close)
            );
            let expected = Candle {
                symbol: InlineStr::new(&symbol).expect("short"),
                window_ms: DAY_MS,
                start_ms,
                open: Fixed(open),
                high: Fixed(high),
                low: Fixed(low),
                close: Fixed(close),
                volume: vol,
                quote_volume: None,
                vwap: None,
                trades: None,
            };
            prop_assert_eq!(Format::CandleCsv.parse_line(line.as_bytes()), Ok(Record::Candle(expected)), "{}", line);
        }
    }

    /// Days since 1970-01-01 to a date, by walking whole years then months: slow but plainly
    /// right, and independent of the parser's formula.
    fn civil_from_days(mut days: u64) -> (u64, u64, u64) {
        let leap =
            |y: u64| y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
        let mut year = 1970;
        loop {
            let len = if leap(year) { 366 } else { 365 };
            if days < len {
                break;
            }
            days -= len;
            year += 1;
        }
        let lengths = [
            31,
            if leap(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut month = 1;
        for len in lengths {
            if days < len {
                break;
            }
            days -= len;
            month += 1;
        }
        (year, month, days + 1)
    }
}
