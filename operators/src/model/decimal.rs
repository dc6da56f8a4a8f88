//! Exact fixed-point decimals.
//!
//! Prices and quantities carry at most [`DIGITS`] fractional digits and are held as integers
//! scaled by 10^8 ([`Fixed`]). Sums widen with the number of fractional digits in the type:
//! `Σq` is a 128-bit [`Volume`] with 8 digits and `Σp·q` a 256-bit [`QuoteVolume`] with 16, each
//! wide enough that no sum of up to `2^64` trades at the largest values wraps. Nothing is
//! ever rounded until a quotient (VWAP) is taken, and that rounding is documented there.

use std::fmt;

use ethnum::I256;
use serde::{Deserialize, Serialize};

/// Fractional digits of a [`Fixed`].
pub const DIGITS: u32 = 8;
/// 10^[`DIGITS`].
pub const SCALE: i64 = 100_000_000;

/// Why a decimal string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Empty, a lone sign or dot, or a character that is not a digit.
    #[error("not a decimal number")]
    Syntax,
    /// More than 8 significant fractional digits: it cannot be held exactly.
    #[error("more than 8 fractional digits")]
    Precision,
    /// Outside the range of the fixed-point integer.
    #[error("out of range")]
    Range,
}

/// A decimal with exactly 8 fractional digits, stored as `value × 10^8`.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Fixed(pub i64);

impl Fixed {
    /// Zero.
    pub const ZERO: Fixed = Fixed(0);

    /// Parses `[+-]digits[.digits]` exactly. Trailing fractional zeros beyond 8 digits are
    /// accepted; any other digit beyond the 8th is [`DecimalError::Precision`]. An exponent
    /// (`1.5e3`, as some CSV exports write) is accepted when the result is exact.
    ///
    /// ```
    /// use tickflow_operators::model::Fixed;
    /// assert_eq!(Fixed::parse(b"43250.10").unwrap(), Fixed(4_325_010_000_000));
    /// assert_eq!(Fixed::parse(b"-0.00000001").unwrap(), Fixed(-1));
    /// assert!(Fixed::parse(b"0.000000001").is_err());
    /// ```
    #[inline]
    pub fn parse(text: &[u8]) -> Result<Fixed, DecimalError> {
        let (negative, body) = match text.first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let mut int: i64 = 0;
        let mut frac: i64 = 0;
        let mut frac_digits: u32 = 0;
        let mut digits = 0usize;
        let mut i = 0;
        while i < body.len() && body[i].is_ascii_digit() {
            int = int
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(body[i] - b'0')))
                .ok_or(DecimalError::Range)?;
            i += 1;
            digits += 1;
        }
        if i < body.len() && body[i] == b'.' {
            i += 1;
            while i < body.len() && body[i].is_ascii_digit() {
                let d = i64::from(body[i] - b'0');
                if frac_digits < DIGITS {
                    frac = frac * 10 + d;
                    frac_digits += 1;
                } else if d != 0 {
                    return Err(DecimalError::Precision);
                }
                i += 1;
                digits += 1;
            }
        }
        if digits == 0 {
            return Err(DecimalError::Syntax);
        }
        let mut exponent: i32 = 0;
        if i < body.len() && (body[i] == b'e' || body[i] == b'E') {
            exponent = parse_exponent(&body[i + 1..])?;
            i = body.len();
        }
        if i != body.len() {
            return Err(DecimalError::Syntax);
        }
        frac *= 10i64.pow(DIGITS - frac_digits);
        let mut value = int
            .checked_mul(SCALE)
            .and_then(|v| v.checked_add(frac))
            .ok_or(DecimalError::Range)?;
        if exponent > 0 {
            let factor = 10i64
                .checked_pow(exponent.unsigned_abs())
                .ok_or(DecimalError::Range)?;
            value = value.checked_mul(factor).ok_or(DecimalError::Range)?;
        } else if exponent < 0 {
            let factor = 10i64
                .checked_pow(exponent.unsigned_abs())
                .ok_or(DecimalError::Precision)?;
            if value % factor != 0 {
                return Err(DecimalError::Precision);
            }
            value /= factor;
        }
        Ok(Fixed(if negative { -value } else { value }))
    }

    /// The value as `f64`, for models and display only (never for sums).
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }

    /// The nearest `Fixed` to `x` (for the generator), or `None` when out of range.
    pub fn from_f64(x: f64) -> Option<Fixed> {
        let scaled = (x * SCALE as f64).round();
        (scaled.is_finite() && scaled.abs() < i64::MAX as f64).then_some(Fixed(scaled as i64))
    }
}

/// Splits `[+-]digits[.digits]` (no exponent) into its sign, integer digits and fractional
/// digits, with the fractional digits beyond `digits` checked to be zeros and dropped.
fn split_plain(text: &[u8], digits: u32) -> Result<(bool, &[u8], &[u8]), DecimalError> {
    let (negative, body) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[body.len()..]),
    };
    if int.len() + frac.len() == 0
        || !int.iter().all(u8::is_ascii_digit)
        || !frac.iter().all(u8::is_ascii_digit)
    {
        return Err(DecimalError::Syntax);
    }
    let kept = frac.len().min(digits as usize);
    if frac[kept..].iter().any(|&d| d != b'0') {
        return Err(DecimalError::Precision);
    }
    Ok((negative, int, &frac[..kept]))
}

/// `±(int.frac) × 10^digits` accumulated digit by digit with `step(acc, digit)` (the checked
/// `acc·10 + digit`), then negated with `negate` if needed.
fn scale_plain<T>(
    text: &[u8],
    digits: u32,
    zero: T,
    step: impl Fn(T, u8) -> Option<T>,
    negate: impl Fn(T) -> Option<T>,
) -> Result<T, DecimalError> {
    let (negative, int, frac) = split_plain(text, digits)?;
    let padding = digits as usize - frac.len();
    let magnitude = int
        .iter()
        .chain(frac)
        .map(|d| d - b'0')
        .chain(std::iter::repeat_n(0, padding))
        .try_fold(zero, step)
        .ok_or(DecimalError::Range)?;
    if negative {
        negate(magnitude).ok_or(DecimalError::Range)
    } else {
        Ok(magnitude)
    }
}

fn parse_exponent(text: &[u8]) -> Result<i32, DecimalError> {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(DecimalError::Syntax);
    }
    let magnitude = digits
        .iter()
        .fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0'));
    Ok(if negative { -magnitude } else { magnitude })
}

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, i128::from(self.0), DIGITS)
    }
}

/// A wide exact decimal with `D` fractional digits, for sums of quantities.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Wide<const D: u32>(pub i128);

/// `Σq`: quantities keep their 8 digits. A sum of `n` quantities of at most `i64::MAX` units
/// each stays below `n · 2^63`, so 128 bits hold any sum of fewer than `2^64` trades (the
/// trade counter's own limit): it never wraps.
pub type Volume = Wide<8>;

impl<const D: u32> Wide<D> {
    /// Zero.
    pub const ZERO: Self = Wide(0);
}

impl Volume {
    /// Widens a quantity.
    #[inline]
    pub fn from_fixed(q: Fixed) -> Volume {
        Wide(i128::from(q.0))
    }

    /// The exact sum of quantities.
    pub fn from_fixed_sum(quantities: impl IntoIterator<Item = Fixed>) -> Volume {
        Wide(quantities.into_iter().map(|q| i128::from(q.0)).sum())
    }

    /// Parses `[+-]digits[.digits]` (no exponent) exactly, as [`Volume`]'s `Display` writes
    /// it and as databases print it back (trailing fractional zeros beyond 8 digits are
    /// accepted, any other digit beyond the 8th is [`DecimalError::Precision`]).
    ///
    /// ```
    /// use tickflow_operators::model::{Volume, Wide};
    /// assert_eq!(Volume::parse(b"276701161105.64327421"), Ok(Wide(27_670_116_110_564_327_421)));
    /// assert_eq!(Volume::parse(b"2.500000000000"), Ok(Wide(250_000_000)));
    /// assert!(Volume::parse(b"0.000000001").is_err());
    /// assert!(Volume::parse(b"1e3").is_err());
    /// ```
    pub fn parse(text: &[u8]) -> Result<Volume, DecimalError> {
        scale_plain(
            text,
            8,
            0i128,
            |acc, d| acc.checked_mul(10)?.checked_add(i128::from(d)),
            i128::checked_neg,
        )
        .map(Wide)
    }
}

impl<const D: u32> std::ops::AddAssign for Wide<D> {
    #[inline]
    fn add_assign(&mut self, other: Self) {
        self.0 += other.0;
    }
}

impl<const D: u32> fmt::Display for Wide<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, self.0, D)
    }
}

/// `Σp·q` with all 16 fractional digits of the products, in 256 bits.
///
/// One product of two 8-digit decimals of at most `i64::MAX` units is below `2^126`, which
/// 128 bits hold only twice over; 256 bits hold `2^129` such products, far more than the
/// `2^64` trades a window can count, so the sum never wraps.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuoteVolume(I256);

impl QuoteVolume {
    /// Zero.
    pub const ZERO: Self = QuoteVolume(I256::ZERO);

    /// The exact product `p·q`.
    #[inline]
    pub fn product(p: Fixed, q: Fixed) -> QuoteVolume {
        QuoteVolume(I256::from(i128::from(p.0) * i128::from(q.0)))
    }

    /// The exact sum of products `Σp·q`.
    pub fn sum_products(pairs: impl IntoIterator<Item = (Fixed, Fixed)>) -> QuoteVolume {
        let mut sum = QuoteVolume::ZERO;
        for (p, q) in pairs {
            sum += QuoteVolume::product(p, q);
        }
        sum
    }

    /// Parses `[+-]digits[.digits]` (no exponent) with up to 16 fractional digits exactly,
    /// as `Display` writes it and as databases print it back (trailing fractional zeros
    /// beyond 16 digits are accepted, any other digit beyond the 16th is
    /// [`DecimalError::Precision`]).
    ///
    /// ```
    /// use tickflow_operators::model::{Fixed, QuoteVolume};
    /// let text = "25521177519070384754219.0723352697503747";
    /// let max = Fixed(i64::MAX);
    /// assert_eq!(QuoteVolume::parse(text.as_bytes()), Ok(QuoteVolume::sum_products([(max, max); 3])));
    /// assert_eq!(QuoteVolume::parse(b"-0.00000003"), Ok(QuoteVolume::product(Fixed(-3), Fixed(100_000_000))));
    /// assert!(QuoteVolume::parse(b"0.00000000000000001").is_err());
    /// ```
    pub fn parse(text: &[u8]) -> Result<QuoteVolume, DecimalError> {
        scale_plain(
            text,
            16,
            I256::ZERO,
            |acc, d| acc.checked_mul(I256::from(10))?.checked_add(I256::from(d)),
            I256::checked_neg,
        )
        .map(QuoteVolume)
    }

    /// `self / volume` as an 8-digit price, rounded half away from zero; `None` for a zero
    /// volume or a quotient outside the range of [`Fixed`].
    ///
    /// ```
    /// use tickflow_operators::model::{Fixed, QuoteVolume, Volume, Wide};
    /// let quote = QuoteVolume::product(Fixed(300_000_000), Fixed(100_000_000)); // 3 × 1
    /// let volume: Volume = Wide(300_000_000); // 3
    /// assert_eq!(quote.div_volume(volume), Some(Fixed(100_000_000))); // 3 / 3 = 1
    /// ```
    pub fn div_volume(self, volume: Volume) -> Option<Fixed> {
        if volume.0 == 0 {
            return None;
        }
        // (Q·10^-16) / (V·10^-8) = (Q/V)·10^-8: the integer quotient is already at scale 8.
        let (q, v) = (self.0, I256::from(volume.0));
        let quotient = q / v;
        let remainder = q % v;
        let round_up = remainder.unsigned_abs() * 2 >= v.unsigned_abs();
        let rounded = if round_up {
            quotient + if (q < 0) == (v < 0) { 1 } else { -1 }
        } else {
            quotient
        };
        i64::try_from(rounded).ok().map(Fixed)
    }
}

impl std::ops::AddAssign for QuoteVolume {
    #[inline]
    fn add_assign(&mut self, other: Self) {
        self.0 += other.0;
    }
}

impl fmt::Display for QuoteVolume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = I256::from(10i128.pow(16));
        let magnitude = self.0.unsigned_abs();
        let scale = scale.unsigned_abs();
        let (int, frac) = (magnitude / scale, magnitude % scale);
        if self.0 < 0 {
            f.write_str("-")?;
        }
        write!(f, "{int}")?;
        // The fraction is below 10^16, so it fits the narrower writer.
        let frac = frac.as_u128();
        if frac != 0 {
            let mut text = String::new();
            write_fraction(&mut text, frac, 16);
            f.write_str(&text)?;
        }
        Ok(())
    }
}

// Bincode (timely's exchange format) gets the two 128-bit words, not a decimal string.
impl Serialize for QuoteVolume {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.into_words().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for QuoteVolume {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (hi, lo) = <(i128, i128)>::deserialize(deserializer)?;
        Ok(QuoteVolume(I256::from_words(hi, lo)))
    }
}

/// Writes `value × 10^-digits` in canonical form: no exponent, no trailing fractional zeros,
/// no dot for integers (`43250.1`, `0.00000001`, `-2`).
fn write_scaled(f: &mut fmt::Formatter<'_>, value: i128, digits: u32) -> fmt::Result {
    let scale = 10u128.pow(digits);
    let magnitude = value.unsigned_abs();
    let (int, frac) = (magnitude / scale, magnitude % scale);
    if value < 0 {
        f.write_str("-")?;
    }
    write!(f, "{int}")?;
    let mut text = String::new();
    write_fraction(&mut text, frac, digits);
    f.write_str(&text)
}

/// Appends `.ddd` for a fraction `frac × 10^-digits` (`frac < 10^digits`) without trailing
/// zeros; nothing for zero.
fn write_fraction(out: &mut String, mut frac: u128, digits: u32) {
    use std::fmt::Write as _;
    if frac == 0 {
        return;
    }
    let mut width = digits as usize;
    while frac.is_multiple_of(10) {
        frac /= 10;
        width -= 1;
    }
    let _ = write!(out, ".{frac:0width$}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        for (text, value, printed) in [
            ("43250.10", 4_325_010_000_000, "43250.1"),
            ("0.00210", 210_000, "0.0021"),
            ("1", 100_000_000, "1"),
            (".5", 50_000_000, "0.5"),
            ("5.", 500_000_000, "5"),
            ("-0.00000001", -1, "-0.00000001"),
            ("+2.50000000000", 250_000_000, "2.5"),
            ("1.5e3", 150_000_000_000, "1500"),
            ("1234.5E-4", 12_345_000, "0.12345"),
            ("92233720368.54775807", i64::MAX, "92233720368.54775807"),
        ] {
            let parsed = Fixed::parse(text.as_bytes()).expect(text);
            assert_eq!(parsed, Fixed(value), "{text}");
            assert_eq!(parsed.to_string(), printed, "{text}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_hold_exactly() {
        use DecimalError::*;
        for (text, error) in [
            ("", Syntax),
            ("-", Syntax),
            (".", Syntax),
            ("1.2.3", Syntax),
            ("12a", Syntax),
            ("1e", Syntax),
            (" 1", Syntax),
            ("NaN", Syntax),
            ("0.123456789", Precision),
            ("1e-9", Precision),
            ("92233720368.54775808", Range),
            ("1e30", Range),
        ] {
            assert_eq!(Fixed::parse(text.as_bytes()), Err(error), "{text:?}");
        }
    }

    #[test]
    fn sums_at_the_largest_values_never_wrap() {
        // Three trades at the largest accepted price and quantity: the products no longer
        // fit 128 bits together. Expected values computed with Python's integers.
        let max = Fixed(i64::MAX);
        let quote = QuoteVolume::sum_products([(max, max); 3]);
        assert_eq!(
            quote.to_string(),
            "25521177519070384754219.0723352697503747"
        );
        let volume = Volume::from_fixed_sum([max; 3]);
        assert_eq!(volume.to_string(), "276701161105.64327421");
        assert_eq!(quote.div_volume(volume), Some(max));
        let negative = QuoteVolume::product(Fixed(-3), Fixed(SCALE));
        assert_eq!(negative.to_string(), "-0.00000003");
        // Through the exchange format and back.
        let bytes = serde_json::to_vec(&quote).expect("serializes");
        assert_eq!(
            serde_json::from_slice::<QuoteVolume>(&bytes).ok(),
            Some(quote)
        );
    }

    #[test]
    fn sums_read_back_exactly_what_they_wrote() {
        let max = Fixed(i64::MAX);
        for quote in [
            QuoteVolume::ZERO,
            QuoteVolume::product(Fixed(-3), Fixed(SCALE)),
            QuoteVolume::product(Fixed(4_325_010_000_000), Fixed(210_000)),
            QuoteVolume::sum_products([(max, max); 3]),
            QuoteVolume::sum_products([(Fixed(-i64::MAX), max); 5]),
        ] {
            let text = quote.to_string();
            assert_eq!(QuoteVolume::parse(text.as_bytes()), Ok(quote), "{text}");
        }
        for volume in [
            0,
            1,
            -1,
            210_000,
            i128::from(i64::MAX) * 3,
            i128::MAX,
            -i128::MAX,
        ] {
            let text = Wide::<8>(volume).to_string();
            assert_eq!(Volume::parse(text.as_bytes()), Ok(Wide(volume)), "{text}");
        }
        // As PostgreSQL prints NUMERIC: the scale it was given, trailing zeros included.
        assert_eq!(Volume::parse(b"2.00"), Ok(Wide(2 * i128::from(SCALE))));
        assert_eq!(Volume::parse(b"+.5"), Ok(Wide(i128::from(SCALE / 2))));
        assert_eq!(
            QuoteVolume::parse(b"1.50000000000000000000"),
            Ok(QuoteVolume::product(Fixed(150_000_000), Fixed(SCALE)))
        );
        use DecimalError::*;
        for (text, error) in [
            ("", Syntax),
            ("-", Syntax),
            (".", Syntax),
            ("1.2.3", Syntax),
            ("1e3", Syntax),
            (" 1", Syntax),
            ("NaN", Syntax),
            ("0.000000001", Precision),
            ("1701411834604692317316873037158.84105728", Range),
        ] {
            assert_eq!(Volume::parse(text.as_bytes()), Err(error), "{text:?}");
        }
        assert_eq!(QuoteVolume::parse(b"0.00000000000000001"), Err(Precision));
        assert_eq!(QuoteVolume::parse(b"1.5e2"), Err(Syntax));
    }

    #[test]
    fn vwap_rounds_half_away_from_zero() {
        // 1 at 1 + 2 at 2 = 5 / 3 = 1.666666666... → 1.66666667
        let quote = QuoteVolume::sum_products([
            (Fixed(SCALE), Fixed(SCALE)),
            (Fixed(2 * SCALE), Fixed(2 * SCALE)),
        ]);
        assert_eq!(
            quote.div_volume(Wide(3 * SCALE as i128)),
            Some(Fixed(166_666_667))
        );
        assert_eq!(quote.div_volume(Wide(0)), None);
        assert_eq!(
            QuoteVolume::product(Fixed(-SCALE), Fixed(3)).to_string(),
            "-0.00000003"
        );
    }
}
