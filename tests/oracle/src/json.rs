//! Which lines are Binance trades, decided with serde_json from the rules of SPEC.md and
//! the parser's documentation, without tickflow's scanner.
//!
//! serde_json checks the grammar of the whole line; the values of the fields that matter are
//! kept as raw text ([`RawValue`]) so that their spelling can be judged (a decimal written as
//! a string or as a number, an escape where none may be, an integer written as `1.0`), and
//! keys are kept raw so that duplicates, which serde_json's own maps would silently collapse,
//! are seen.

use std::collections::BTreeMap;
use std::fmt;

use num_bigint::{BigInt, Sign};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::decimal::{max_units, render, Written};

/// Deepest nesting of objects and arrays accepted, the line's own object included.
pub const MAX_DEPTH: usize = 128;

/// Longest symbol or account id, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 23;

/// Trade times from this value on are microseconds.
const MICROS_FROM: u64 = 100_000_000_000_000;

/// A trade's fields as text and plain integers, for comparison with tickflow's `Trade`
/// (decimals canonical, as tickflow renders them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonTrade {
    /// `"s"`.
    pub symbol: String,
    /// `"t"`.
    pub id: u64,
    /// `"p"`, canonical.
    pub price: String,
    /// `"q"`, canonical.
    pub qty: String,
    /// `"T"` in ms (microseconds divided down).
    pub time_ms: u64,
    /// `"m"`.
    pub buyer_maker: bool,
    /// `"B"`; `null`, `""` and absent are all `None`.
    pub buyer: Option<String>,
    /// `"S"`; `null`, `""` and absent are all `None`.
    pub seller: Option<String>,
}

/// The members of one JSON object in order, keys and values as raw JSON text.
struct Members(Vec<(Box<RawValue>, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<Box<RawValue>>()? {
                    members.push((key, map.next_value::<Box<RawValue>>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// The keys the parser looks for; a key occurring twice among them makes a value ambiguous.
const FIELD_KEYS: [&str; 9] = ["e", "s", "t", "p", "q", "T", "m", "B", "S"];
/// The top level also holds the combined-stream wrapper's keys.
const WRAPPER_KEYS: [&str; 2] = ["stream", "data"];

/// Where an object's known keys are: `None` when one of them occurs twice, or when a key
/// cannot be decoded (a `\u` escape of a lone surrogate has no UTF-8 form).
fn known_fields(members: &Members, top: bool) -> Option<BTreeMap<String, &RawValue>> {
    let mut fields = BTreeMap::new();
    for (key, value) in &members.0 {
        let key: String = serde_json::from_str(key.get()).ok()?;
        let known =
            FIELD_KEYS.contains(&key.as_str()) || (top && WRAPPER_KEYS.contains(&key.as_str()));
        if known && fields.insert(key, &**value).is_some() {
            return None;
        }
    }
    Some(fields)
}

/// How deeply objects and arrays nest in `text` (valid JSON), by counting brackets outside
/// strings, and whether every string literal in it decodes to Unicode text (serde_json
/// refuses a `\u` escape of a lone surrogate when it decodes a string, but not when it only
/// checks the grammar of a value it skips).
fn depth_and_text(text: &str) -> (usize, bool) {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut string_start = None;
    let mut escaped = false;
    let mut all_text = true;
    for (at, b) in text.bytes().enumerate() {
        if let Some(start) = string_start {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    let literal = &text[start..=at];
                    if literal.contains("\\u") && serde_json::from_str::<String>(literal).is_err() {
                        all_text = false;
                    }
                    string_start = None;
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => string_start = Some(at),
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    (deepest, all_text)
}

/// The trade a line holds, or `None` when it is not a trade (malformed, another event type,
/// or a trade with a missing or invalid field).
///
/// The rules: after one optional leading byte order mark, the line is UTF-8 and one JSON
/// object (surrounding JSON whitespace allowed) nesting at most [`MAX_DEPTH`] deep, whose
/// strings are all Unicode text (a `\u` escape of a lone surrogate anywhere, even in a field
/// that is ignored, is refused like invalid UTF-8 bytes). The object
/// holding the fields is the line's object, or, when that has `"data"` and no `"e"`, the
/// `"data"` value, which must then be an object. There, `"e"` is the string `"trade"`; `"s"`
/// a [`name`]; `"t"` a JSON integer `≥ 0` below `2^64`; `"p"` and `"q"` [`decimal`]s; `"T"` a
/// JSON integer `≥ 0` below `2^64` ([`time_ms`]); `"m"` a boolean; `"B"` and `"S"` absent,
/// `null`, `""` or a [`name`]. No known key occurs twice in the object holding the fields,
/// nor in the line's object (which also counts `"stream"` and `"data"`). Other fields, of any
/// shape, are ignored.
pub fn trade_line(line: &[u8]) -> Option<JsonTrade> {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    let top: Members = serde_json::from_str(text).ok()?;
    let (depth, all_text) = depth_and_text(text);
    if depth > MAX_DEPTH || !all_text {
        return None;
    }
    let top = known_fields(&top, true)?;
    let wrapped;
    let fields = match (top.get("e"), top.get("data")) {
        (None, Some(data)) => {
            wrapped = serde_json::from_str::<Members>(data.get()).ok()?;
            known_fields(&wrapped, false)?
        }
        _ => top,
    };
    let field = |key: &str| fields.get(key).map(|raw| raw.get());
    if string(field("e")?)? != "trade" {
        return None;
    }
    Some(JsonTrade {
        symbol: name(&string(field("s")?)?)?,
        id: integer(field("t")?)?,
        price: decimal(field("p")?)?,
        qty: decimal(field("q")?)?,
        time_ms: time_ms(integer(field("T")?)?)?,
        buyer_maker: match field("m")? {
            "true" => true,
            "false" => false,
            _ => return None,
        },
        buyer: account(field("B"))?,
        seller: account(field("S"))?,
    })
}

/// A JSON string's decoded text; `None` for another type or a lone surrogate.
fn string(raw: &str) -> Option<String> {
    if !raw.starts_with('"') {
        return None;
    }
    serde_json::from_str(raw).ok()
}

/// A JSON number written as an integer (digits only: no sign, dot or exponent) below `2^64`.
fn integer(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: BigInt = raw.parse().ok()?;
    u64::try_from(value).ok()
}

/// Trade times `≥ 10^14` are microseconds; still `≥ 10^14` once divided by 1000, they are
/// refused.
pub fn time_ms(raw: u64) -> Option<u64> {
    if raw < MICROS_FROM {
        Some(raw)
    } else {
        Some(raw / 1000).filter(|&ms| ms < MICROS_FROM)
    }
}

/// An optional account id.
fn account(raw: Option<&str>) -> Option<Option<String>> {
    match raw {
        None | Some("null") | Some("\"\"") => Some(None),
        Some(raw) => name(&string(raw)?).map(Some),
    }
}

/// A symbol or account id: not empty, at most [`MAX_NAME_BYTES`] bytes, every character
/// [`printable_char`].
pub fn name(text: &str) -> Option<String> {
    (!text.is_empty() && text.len() <= MAX_NAME_BYTES && text.chars().all(printable_char))
        .then(|| text.to_string())
}

/// Not a control character (Unicode category Cc), not white space (the Unicode White_Space
/// property), and none of the invisible formatting characters that make two names look alike
/// or reorder a printed line. Written out as tables here, not with the standard library's
/// character classes.
pub fn printable_char(c: char) -> bool {
    const REFUSED: [(u32, u32); 17] = [
        (0x0000, 0x001F), // C0 controls, including \t \n \r
        (0x0020, 0x0020), // space
        (0x007F, 0x009F), // DEL and C1 controls (U+0085 is also white space)
        (0x00A0, 0x00A0), // no-break space
        (0x1680, 0x1680), // Ogham space mark
        (0x2000, 0x200A), // en quad … hair space
        (0x200B, 0x200F), // zero-width space, joiners, directional marks
        (0x2028, 0x2029), // line and paragraph separators
        (0x202A, 0x202E), // bidirectional embeddings and overrides
        (0x202F, 0x202F), // narrow no-break space
        (0x205F, 0x205F), // medium mathematical space
        (0x2060, 0x2064), // word joiner, invisible operators
        (0x2066, 0x2069), // bidirectional isolates
        (0x3000, 0x3000), // ideographic space
        (0xFEFF, 0xFEFF), // byte order mark
        (0xFFF9, 0xFFFB), // interlinear annotation
        (0xFFFE, 0xFFFF), // non-characters
    ];
    let code = u32::from(c);
    !REFUSED.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
}

/// A price or quantity: a JSON number, or a JSON string without escapes holding
/// `[+-] digits [. digits] [(e|E) [+-] digits]`; its value a whole number of `10^-8`, `> 0`
/// and at most `92233720368.54775807`; and within [`within_spelling_limits`]. Canonical text.
pub fn decimal(raw: &str) -> Option<String> {
    let text = if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        if inner.contains('\\') {
            return None;
        }
        inner
    } else if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        raw
    } else {
        return None;
    };
    let written = Written::parse(text)?;
    let units = written.units(8).ok()?;
    if units.sign() != Sign::Plus || units > max_units() || !within_spelling_limits(&written) {
        return None;
    }
    Some(render(&units, 8))
}

/// The limits of tickflow's decimal reader on how an exact value may be spelt (documented by
/// `Fixed::parse` and its tests; refusing is safe, it never yields a wrong value):
/// - the digits before any exponent, read as a number with 8 fractional digits, are at most
///   `i64::MAX` units (`922337203685477580.7e-7` is refused though its value is in range);
/// - no non-zero digit after the 8th fractional one before any exponent
///   (`0.000000001e1` is refused though it is exactly `0.00000001`);
/// - an exponent has at most 3 digits (`1e0002` is refused).
pub fn within_spelling_limits(written: &Written) -> bool {
    if let Some((_, digits)) = &written.exponent {
        if digits.len() > 3 {
            return false;
        }
    }
    let (kept, rest) = written.frac.split_at(written.frac.len().min(8));
    if rest.bytes().any(|b| b != b'0') {
        return false;
    }
    let mantissa = Written {
        negative: false,
        int: written.int.clone(),
        frac: kept.to_string(),
        exponent: None,
    };
    matches!(mantissa.units(8), Ok(units) if units <= max_units())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_LINE: &str = r#"{"e":"trade","E":1700000000125,"s":"BTCUSDT","t":123456,"p":"43250.10","q":"0.00210","b":88,"a":50,"T":1700000000123,"m":true}"#;

    fn spec_trade() -> JsonTrade {
        JsonTrade {
            symbol: "BTCUSDT".into(),
            id: 123_456,
            price: "43250.1".into(),
            qty: "0.0021".into(),
            time_ms: 1_700_000_000_123,
            buyer_maker: true,
            buyer: None,
            seller: None,
        }
    }

    fn with(from: &str, to: &str) -> String {
        assert!(SPEC_LINE.contains(from), "{from}");
        SPEC_LINE.replacen(from, to, 1)
    }

    fn accepts(line: &str) -> JsonTrade {
        trade_line(line.as_bytes()).unwrap_or_else(|| panic!("refused: {line}"))
    }

    #[test]
    fn accepts_the_spec_example_in_every_dress() {
        assert_eq!(accepts(SPEC_LINE), spec_trade());
        for line in [
            format!("\u{feff} {SPEC_LINE}\r"),
            format!(r#"{{"stream":"btcusdt@trade","data":{SPEC_LINE}}}"#),
            format!(r#"{{"data":{SPEC_LINE},"x":{{"data":1,"data":2}}}}"#),
            with(r#""p":"43250.10""#, r#""p":43250.1e0"#),
            with(r#""p":"43250.10""#, r#""p":"+4325010e-2""#),
            with(r#""q":"0.00210""#, r#""q":".0021""#),
            with(r#""s":"BTCUSDT""#, r#""s":"BTC\u0055SDT""#),
            with(r#""e":"trade""#, r#""\u0065":"tr\u0061de""#),
            with("1700000000123,", "1700000000123999,"),
            with(
                r#""b":88"#,
                r#""b":[[[{"\ud83d\ude00":1e400}]]],"E":1,"E":2"#,
            ),
            // A trade that carries a "data" field stays a trade.
            with(r#""b":88"#, r#""data":[1]"#),
        ] {
            assert_eq!(accepts(&line), spec_trade(), "{line}");
        }
        let line = with(r#""m":true"#, r#""m":true,"B":"acct-1","S":"""#);
        assert_eq!(accepts(&line).buyer.as_deref(), Some("acct-1"));
        assert_eq!(accepts(&line).seller, None);
    }

    #[test]
    fn refuses_what_is_not_a_valid_trade() {
        let deep = format!("{}{}", "[".repeat(127), "]".repeat(127));
        assert!(trade_line(with(r#""b":88"#, &format!(r#""b":{deep}"#)).as_bytes()).is_some());
        let deeper = format!("{}{}", "[".repeat(128), "]".repeat(128));
        for line in [
            format!("{SPEC_LINE}x"),
            format!("{SPEC_LINE}{SPEC_LINE}"),
            format!("[{SPEC_LINE}]"),
            format!("\u{feff}\u{feff}{SPEC_LINE}"),
            with(r#""b":88"#, &format!(r#""b":{deeper}"#)),
            with(r#""e":"trade""#, r#""e":"aggTrade""#),
            with(r#""e":"trade""#, r#""e":"trade ""#),
            with(r#""s":"BTCUSDT""#, r#""s":"""#),
            with(r#""s":"BTCUSDT""#, r#""s":"ABCDEFGHIJKLMNOPQRSTUVWX""#),
            with(r#""s":"BTCUSDT""#, r#""s":"BTC\u0000""#),
            with(r#""s":"BTCUSDT""#, r#""s":"BTC\u00a0X""#),
            with(r#""s":"BTCUSDT""#, r#""s":"BTC\u2067X""#),
            with(r#""s":"BTCUSDT""#, r#""s":"BTC\ud800""#),
            with(r#""t":123456"#, r#""t":-0"#),
            with(r#""t":123456"#, r#""t":1.0"#),
            with(r#""t":123456"#, r#""t":18446744073709551616"#),
            with(r#""p":"43250.10""#, r#""p":"43250\u002e10""#),
            with(r#""p":"43250.10""#, r#""p":"0.000000001""#),
            with(r#""p":"43250.10""#, r#""p":"92233720368.54775808""#),
            with(r#""p":"43250.10""#, r#""p":"922337203685477580.7e-7""#),
            with(r#""p":"43250.10""#, r#""p":"1e0002""#),
            with(r#""p":"43250.10""#, r#""p":0"#),
            with(r#""q":"0.00210""#, r#""q":"-1""#),
            with(r#""q":"0.00210""#, r#""q":null"#),
            with("1700000000123,", "100000000000000000,"),
            with("1700000000123,", "-1,"),
            with(r#""m":true"#, r#""m":1"#),
            with(r#""m":true"#, r#""m":true,"p":"1""#),
            with(r#""m":true"#, r#""m":true,"B":1"#),
            with(r#""m":true"#, r#""m":true,"\u0053":" x""#),
            format!(r#"{{"stream":"btcusdt@trade","data":{SPEC_LINE},"data":{{}}}}"#),
            format!(r#"{{"stream":"btcusdt@trade","data":[{SPEC_LINE}]}}"#),
            with(r#""b":88"#, r#""b":"\ud800""#),
            with(r#""b":88"#, r#""b":[{"aaaaaaaaaaaaaaaaaaaa\udc00":1}]"#),
        ] {
            assert_eq!(trade_line(line.as_bytes()), None, "{line}");
        }
    }

    #[test]
    fn printable_matches_the_unicode_classes_it_writes_out() {
        // The table against the standard library, over every character (a check of the
        // table, which stays the oracle's own).
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let invisible = matches!(u32::from(c),
                0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x2069
                | 0xFEFF | 0xFFF9..=0xFFFB | 0xFFFE | 0xFFFF);
            let expected = !(c.is_control() || c.is_whitespace() || invisible);
            assert_eq!(printable_char(c), expected, "U+{:04X}", u32::from(c));
        }
    }
}
