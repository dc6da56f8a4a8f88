//! Exact decimals as PostgreSQL `NUMERIC`, in the binary wire format (for binary COPY).
//!
//! The wire format is a header of four 16-bit fields, `ndigits`, `weight`, `sign`, `dscale`,
//! then `ndigits` base-10000 digits, most significant first; `weight` is the power of 10000
//! of the first digit and `dscale` the number of decimal places shown. The values come from
//! the model's exact decimal text (`Fixed`, `Wide`), so nothing is ever rounded.

use bytes::{BufMut, BytesMut};
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// A decimal number in plain text (`-?DIGITS[.DIGITS]`) to send as `NUMERIC`.
#[derive(Debug, Clone, Copy)]
pub struct Numeric<'a>(pub &'a str);

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;

/// Appends the binary `NUMERIC` form of `text`; `None` if `text` is not a plain decimal.
pub fn encode(text: &str, out: &mut BytesMut) -> Option<()> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits_only(int) || !digits_only(frac) {
        return None;
    }
    let dscale = u16::try_from(frac.len()).ok()?;
    // Base-10000 groups aligned at the decimal point: the integer part padded on the left,
    // the fraction padded on the right, to multiples of four digits.
    let int_pad = (4 - int.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let all: Vec<u8> = std::iter::repeat_n(b'0', int_pad)
        .chain(int.bytes())
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', frac_pad))
        .map(|b| b - b'0')
        .collect();
    let mut groups: Vec<i16> = all
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |n, &d| n * 10 + i16::from(d)))
        .collect();
    let mut weight = ((int_pad + int.len()) / 4) as i32 - 1;
    // Leading zero groups lower the weight; trailing ones are implied by dscale.
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(i16::try_from(groups.len()).ok()?);
    out.put_i16(i16::try_from(weight).ok()?);
    out.put_u16(if negative && !groups.is_empty() {
        NEGATIVE
    } else {
        POSITIVE
    });
    out.put_u16(dscale);
    for group in groups {
        out.put_i16(group);
    }
    Some(())
}

impl ToSql for Numeric<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        encode(self.0, out).ok_or_else(|| format!("not a plain decimal: {:?}", self.0))?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<i16> {
        let mut out = BytesMut::new();
        encode(text, &mut out).expect("decimal");
        out.chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn groups_are_aligned_at_the_decimal_point() {
        // ndigits, weight, sign, dscale, digits…
        assert_eq!(words("12345.678"), vec![3, 1, 0, 3, 1, 2345, 6780]);
        assert_eq!(words("0.00012"), vec![2, -1, 0, 5, 1, 2000]);
        assert_eq!(words("-89000.5"), vec![3, 1, 0x4000, 1, 8, 9000, 5000]);
        assert_eq!(words("100000000"), vec![1, 2, 0, 0, 1]);
        assert_eq!(words("0.00000000"), vec![0, 0, 0, 8]);
        assert_eq!(words("-0.0"), vec![0, 0, 0, 1]);
    }

    #[test]
    fn anything_but_a_plain_decimal_is_refused() {
        for bad in ["", ".5", "1e5", "1.2.3", "+1", "1,5", "--1"] {
            assert!(encode(bad, &mut BytesMut::new()).is_none(), "{bad:?}");
        }
    }
}
