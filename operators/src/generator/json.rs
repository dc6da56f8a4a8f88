//! Binance trade-stream JSON lines, written by hand for speed.

use super::profile::precision;
use crate::model::{Fixed, Trade, SCALE};

/// `"00" "01" … "99"`: two digits per division.
const DIGIT_PAIRS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        table[2 * i] = b'0' + (i / 10) as u8;
        table[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    table
};

/// Writes `trade` as one Binance trade-stream JSON line, `\n` included:
///
/// `{"e":"trade","E":<arrival>,"s":..,"t":..,"p":"..","q":"..","b":..,"a":..,"T":..,"m":..}`
/// plus `,"B":"..","S":".."` for the accounts that are known.
///
/// `p` and `q` carry the symbol's tick and lot precision (`43250.10`, `0.00210`), or more
/// digits when the value needs them, so the text is always exact. `b`/`a` (buyer and seller
/// order ids) are synthetic: the maker's order is `2·t`, the taker's `2·t + 1`.
///
/// ```
/// use tickflow_operators::generator::write_json_line;
/// use tickflow_operators::model::{Fixed, InlineStr, Trade};
/// let trade = Trade {
///     symbol: InlineStr::new("BTCUSDT").unwrap(),
///     id: 7,
///     price: Fixed(4_325_010_000_000),
///     qty: Fixed(210_000),
///     time_ms: 1_700_000_000_123,
///     buyer_maker: true,
///     buyer: None,
///     seller: None,
/// };
/// let mut out = Vec::new();
/// write_json_line(&mut out, 1_700_000_000_125, &trade);
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "{\"e\":\"trade\",\"E\":1700000000125,\"s\":\"BTCUSDT\",\"t\":7,\"p\":\"43250.10\",\
///      \"q\":\"0.00210\",\"b\":14,\"a\":15,\"T\":1700000000123,\"m\":true}\n"
/// );
/// ```
pub fn write_json_line(out: &mut Vec<u8>, arrival_ms: u64, trade: &Trade) {
    let Trade {
        symbol,
        id,
        price,
        qty,
        time_ms,
        buyer_maker,
        buyer,
        seller,
    } = trade;
    let (price_decimals, qty_decimals) = precision(symbol);
    let maker_order = id.wrapping_mul(2);
    let taker_order = maker_order.wrapping_add(1);
    let (buyer_order, seller_order) = if *buyer_maker {
        (maker_order, taker_order)
    } else {
        (taker_order, maker_order)
    };

    out.reserve(192);
    out.extend_from_slice(b"{\"e\":\"trade\",\"E\":");
    write_u64(out, arrival_ms);
    out.extend_from_slice(b",\"s\":\"");
    write_escaped(out, symbol.as_str());
    out.extend_from_slice(b"\",\"t\":");
    write_u64(out, *id);
    out.extend_from_slice(b",\"p\":\"");
    write_fixed(out, *price, price_decimals);
    out.extend_from_slice(b"\",\"q\":\"");
    write_fixed(out, *qty, qty_decimals);
    out.extend_from_slice(b"\",\"b\":");
    write_u64(out, buyer_order);
    out.extend_from_slice(b",\"a\":");
    write_u64(out, seller_order);
    out.extend_from_slice(b",\"T\":");
    write_u64(out, *time_ms);
    out.extend_from_slice(if *buyer_maker {
        b",\"m\":true"
    } else {
        b",\"m\":false"
    });
    if let Some(buyer) = buyer {
        out.extend_from_slice(b",\"B\":\"");
        write_escaped(out, buyer.as_str());
        out.push(b'"');
    }
    if let Some(seller) = seller {
        out.extend_from_slice(b",\"S\":\"");
        write_escaped(out, seller.as_str());
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

/// Decimal digits of `n`.
fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    out.extend_from_slice(&buf[at..]);
}

/// `value` with at least `decimals` fractional digits (at most 8), more if it needs them.
fn write_fixed(out: &mut Vec<u8>, value: Fixed, decimals: u32) {
    let magnitude = value.0.unsigned_abs();
    let scale = SCALE.unsigned_abs();
    let (int, mut frac) = (magnitude / scale, magnitude % scale);
    if value.0 < 0 {
        out.push(b'-');
    }
    write_u64(out, int);
    let mut needed = if frac == 0 { 0 } else { 8 };
    let mut trimmed = frac;
    while needed > 0 && trimmed % 10 == 0 {
        trimmed /= 10;
        needed -= 1;
    }
    let digits = needed.max(decimals.min(8) as usize);
    if digits == 0 {
        return;
    }
    let mut buf = [b'0'; 9];
    buf[0] = b'.';
    for slot in buf[1..].iter_mut().rev() {
        *slot = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    out.extend_from_slice(&buf[..=digits]);
}

/// A JSON string body: `"` and `\` escaped, control characters as `\u00XX`.
fn write_escaped(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        out.extend_from_slice(bytes);
        return;
    }
    for &byte in bytes {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
            _ => out.push(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn integers() {
        for n in [0, 7, 10, 99, 100, 101, 12_345, 1_700_000_000_123, u64::MAX] {
            assert_eq!(text(|o| write_u64(o, n)), n.to_string());
        }
    }

    #[test]
    fn decimals_pad_to_precision_and_never_truncate() {
        for (value, decimals, expected) in [
            (4_325_010_000_000, 2, "43250.10"),
            (210_000, 5, "0.00210"),
            (100_000_000, 0, "1"),
            (100_000_000, 2, "1.00"),
            (1, 2, "0.00000001"),
            (-150_000_000, 1, "-1.5"),
            (-1, 0, "-0.00000001"),
            (0, 0, "0"),
            (0, 8, "0.00000000"),
            (12_345_678, 12, "0.12345678"),
            (i64::MAX, 2, "92233720368.54775807"),
            (i64::MIN, 2, "-92233720368.54775808"),
        ] {
            assert_eq!(
                text(|o| write_fixed(o, Fixed(value), decimals)),
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(text(|o| write_escaped(o, "BTCUSDT")), "BTCUSDT");
        assert_eq!(
            text(|o| write_escaped(o, "a\"b\\c\n\u{1}é")),
            "a\\\"b\\\\c\\u000a\\u0001é"
        );
    }
}
