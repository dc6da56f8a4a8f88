//! Decimals as text and big integers: read a decimal string, scale it to an integer number of
//! units of `10^-digits`, divide with rounding, and write it back canonically.

use num_bigint::{BigInt, Sign};

/// The largest price or quantity tickflow holds: `i64::MAX` units of `10^-8`.
pub const MAX_UNITS: &str = "9223372036854775807";

/// [`MAX_UNITS`] as a big integer.
pub fn max_units() -> BigInt {
    MAX_UNITS.parse().expect("a decimal literal")
}

/// A decimal as written, `[+-] int [. frac] [(e|E) [+-] exp]`: its parts, kept as text so
/// that rules about the spelling (how many digits where) can be checked as well as the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Whether a `-` sign was written.
    pub negative: bool,
    /// Digits before the dot (possibly none: `.5`).
    pub int: String,
    /// Digits after the dot (possibly none: `5.`).
    pub frac: String,
    /// The exponent's digits and sign, when one is written.
    pub exponent: Option<(bool, String)>,
}

/// Why [`Written::units`] has no exact answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inexact {
    /// Not a whole number of units.
    Fraction,
    /// Magnitude of `10^100` units or more (so no power of ten is ever built from a huge
    /// exponent).
    Huge,
}

impl Written {
    /// Reads `text` strictly: an optional sign, digits with at most one dot (at least one
    /// digit in all), an optional exponent with at least one digit, nothing else.
    pub fn parse(text: &str) -> Option<Written> {
        let (negative, body) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(at) => (&body[..at], Some(&body[at + 1..])),
            None => (body, None),
        };
        let (int, frac) = match mantissa.find('.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, ""),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || !digits(frac) || int.len() + frac.len() == 0 {
            return None;
        }
        let exponent = match exponent {
            None => None,
            Some(e) => {
                let (neg, d) = match e.as_bytes().first() {
                    Some(b'-') => (true, &e[1..]),
                    Some(b'+') => (false, &e[1..]),
                    _ => (false, e),
                };
                if d.is_empty() || !digits(d) {
                    return None;
                }
                Some((neg, d.to_string()))
            }
        };
        Some(Written {
            negative,
            int: int.to_string(),
            frac: frac.to_string(),
            exponent,
        })
    }

    /// The value in units of `10^-digits`, when it is a whole number of them.
    pub fn units(&self, digits: u32) -> Result<BigInt, Inexact> {
        let all = format!("{}{}", self.int, self.frac);
        let mantissa: BigInt = all.parse().expect("digits");
        if mantissa.sign() == Sign::NoSign {
            return Ok(mantissa);
        }
        // value = mantissa · 10^(exponent − len(frac)); in units: · 10^digits as well.
        let exponent: BigInt = match &self.exponent {
            None => BigInt::from(0),
            Some((neg, d)) => {
                let e: BigInt = d.parse().expect("digits");
                if *neg {
                    -e
                } else {
                    e
                }
            }
        };
        let shift = exponent - BigInt::from(self.frac.len()) + BigInt::from(digits);
        let significant = all.trim_start_matches('0').len();
        let value = if shift.sign() != Sign::Minus {
            // `significant + shift` digits: refuse to build a power beyond 100 digits.
            if BigInt::from(significant) + &shift > BigInt::from(100) {
                return Err(Inexact::Huge);
            }
            let shift = u32::try_from(shift).expect("at most 100");
            mantissa * BigInt::from(10).pow(shift)
        } else {
            let down = -shift;
            // Dividing a number of `significant` digits by a larger power leaves a fraction.
            if down > BigInt::from(significant) {
                return Err(Inexact::Fraction);
            }
            let down = u32::try_from(down).expect("at most the digit count");
            let power = BigInt::from(10).pow(down);
            if (&mantissa % &power).sign() != Sign::NoSign {
                return Err(Inexact::Fraction);
            }
            mantissa / power
        };
        Ok(if self.negative { -value } else { value })
    }
}

/// `units · 10^-digits` in canonical form: no exponent, no trailing fractional zeros, no
/// dot for integers (`43250.1`, `0.00000001`, `-2`).
pub fn render(units: &BigInt, digits: u32) -> String {
    let magnitude = units.magnitude().to_string();
    let digits = digits as usize;
    let padded = format!("{magnitude:0>width$}", width = digits + 1);
    let (int, frac) = padded.split_at(padded.len() - digits);
    let frac = frac.trim_end_matches('0');
    let sign = if units.sign() == Sign::Minus { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// `numerator / denominator` rounded half away from zero; `None` for a zero denominator.
pub fn div_round_half_away(numerator: &BigInt, denominator: &BigInt) -> Option<BigInt> {
    if denominator.sign() == Sign::NoSign {
        return None;
    }
    // Truncating division, then one more step away from zero when 2·|remainder| ≥ |d|.
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    let twice = remainder.magnitude() * 2u32;
    if &twice >= denominator.magnitude() {
        let away = if (numerator.sign() == Sign::Minus) == (denominator.sign() == Sign::Minus) {
            1
        } else {
            -1
        };
        Some(quotient + away)
    } else {
        Some(quotient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(text: &str) -> Result<BigInt, Inexact> {
        Written::parse(text).expect(text).units(8)
    }

    #[test]
    fn reads_every_spelling_of_a_decimal() {
        for (text, expected) in [
            ("43250.10", "4325010000000"),
            ("0.00210", "210000"),
            (".5", "50000000"),
            ("5.", "500000000"),
            ("+2.50000000000", "250000000"),
            ("-0.00000001", "-1"),
            ("1.5e3", "150000000000"),
            ("1234.5E-4", "12345000"),
            ("0.000000001e1", "1"),
            ("1e-8", "1"),
            ("00000.00000001", "1"),
            ("92233720368.54775807", MAX_UNITS),
            ("0e99999999999999999999", "0"),
        ] {
            assert_eq!(units(text), Ok(expected.parse().expect("int")), "{text}");
        }
        assert_eq!(units("1e-9"), Err(Inexact::Fraction));
        assert_eq!(units("0.123456789"), Err(Inexact::Fraction));
        assert_eq!(units("1e-99999999999999999999"), Err(Inexact::Fraction));
        assert_eq!(units("1e99999999999999999999"), Err(Inexact::Huge));
        for bad in [
            "", "-", ".", "e5", "1e", "1e+", "1.2.3", "12a", " 1", "NaN", "--1", "1e5e5",
        ] {
            assert_eq!(Written::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn renders_canonically() {
        let r = |units: &str, digits| render(&units.parse().expect("int"), digits);
        assert_eq!(r("4325010000000", 8), "43250.1");
        assert_eq!(r("1", 8), "0.00000001");
        assert_eq!(r("200000000", 8), "2");
        assert_eq!(r("0", 8), "0");
        assert_eq!(r("-3", 16), "-0.0000000000000003");
        assert_eq!(r("-250000000", 8), "-2.5");
        assert_eq!(r("7", 0), "7");
    }

    #[test]
    fn rounds_half_away_from_zero() {
        let d = |n: i64, m: i64| {
            div_round_half_away(&BigInt::from(n), &BigInt::from(m)).map(|q| q.to_string())
        };
        assert_eq!(d(5, 3), Some("2".into()));
        assert_eq!(d(4, 3), Some("1".into()));
        assert_eq!(d(3, 2), Some("2".into()));
        assert_eq!(d(-3, 2), Some("-2".into()));
        assert_eq!(d(3, -2), Some("-2".into()));
        assert_eq!(d(-5, -2), Some("3".into()));
        assert_eq!(d(1, 3), Some("0".into()));
        assert_eq!(d(1, 0), None);
    }
}
