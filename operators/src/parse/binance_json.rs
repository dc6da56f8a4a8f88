//! Binance trade-stream JSON, the hot path.
//!
//! One hand-written pass over the bytes validates the whole line as JSON and records where
//! the interesting values are; nothing is decoded until the object is known to be complete,
//! so truncated lines and trailing garbage are refused before any field is looked at, and
//! field order does not matter. Unknown fields (nested objects and arrays included) are
//! skipped with a full grammar check. Only the values used are converted: decimals go straight
//! from the line to [`Fixed::parse`], strings are decoded only when they contain escapes.

use crate::model::{Account, Fixed, InlineStr, Symbol, Trade, INLINE_CAPACITY};

use super::{check_utf8, is_blank, normalize_time, parse_u64, positive_fixed, strip_bom};
use super::{Record, RejectReason};

use RejectReason::{
    BadNumber, BadTime, DuplicateField, EmptyField, InvalidUtf8, MalformedJson, MissingField,
    NotAnObject, TooLong, WrongType,
};

/// Deeper nesting is refused: it bounds the recursion of the skipper.
const MAX_DEPTH: u32 = 128;

pub(super) fn parse(line: &[u8]) -> Result<Record, RejectReason> {
    let line = strip_bom(line);
    if is_blank(line) {
        return Ok(Record::Blank);
    }
    check_utf8(line)?;
    let mut scanner = Scanner { buf: line, pos: 0 };
    scanner.skip_ws();
    if scanner.peek() != Some(b'{') {
        // Tell "valid JSON, but not an object" from garbage, for a clearer reject.
        scanner.skip_value(0)?;
        scanner.skip_ws();
        return Err(if scanner.pos == line.len() {
            NotAnObject
        } else {
            MalformedJson
        });
    }
    let mut outer = Fields::default();
    let mut inner = Fields::default();
    scanner.object(&mut outer, Some(&mut inner), 0)?;
    scanner.skip_ws();
    if scanner.pos != line.len() {
        return Err(MalformedJson);
    }
    classify(&outer, &inner)
}

/// A value kept for later conversion: scalars by their raw text, containers only by kind.
#[derive(Clone, Copy, Debug)]
enum Val<'a> {
    /// The bytes between the quotes, and whether they contain a backslash.
    Str(&'a [u8], bool),
    /// The number token, already checked against the JSON grammar.
    Num(&'a [u8]),
    Bool(bool),
    Null,
    Container,
    /// The top-level `"data"` object, whose fields went into the payload [`Fields`].
    Payload,
}

/// The fields of one object that matter, by key.
#[derive(Default, Debug)]
struct Fields<'a> {
    e: Option<Val<'a>>,
    s: Option<Val<'a>>,
    t: Option<Val<'a>>,
    p: Option<Val<'a>>,
    q: Option<Val<'a>>,
    time: Option<Val<'a>>,
    m: Option<Val<'a>>,
    buyer: Option<Val<'a>>,
    seller: Option<Val<'a>>,
    stream: Option<Val<'a>>,
    /// The combined-stream payload; its fields are in the second [`Fields`].
    data: Option<Val<'a>>,
    /// Keys that identify messages without an `"e"`: bookTicker has `u`, `b`, `a`; a partial
    /// depth snapshot has `lastUpdateId`.
    has_u: bool,
    has_b: bool,
    has_a: bool,
    has_last_update_id: bool,
    /// The first key seen twice, reported once the line is known to be well-formed.
    duplicate: Option<&'static str>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Key {
    E,
    LowerS,
    LowerT,
    P,
    Q,
    UpperT,
    M,
    UpperB,
    UpperS,
    U,
    LowerB,
    LowerA,
    Stream,
    Data,
    LastUpdateId,
    Other,
}

impl Key {
    #[inline(always)]
    fn of(key: &[u8]) -> Key {
        match key {
            // One-letter keys are nearly all of them: a jump on one byte.
            [b] => match b {
                b'e' => Key::E,
                b's' => Key::LowerS,
                b't' => Key::LowerT,
                b'p' => Key::P,
                b'q' => Key::Q,
                b'T' => Key::UpperT,
                b'm' => Key::M,
                b'B' => Key::UpperB,
                b'S' => Key::UpperS,
                b'u' => Key::U,
                b'b' => Key::LowerB,
                b'a' => Key::LowerA,
                _ => Key::Other,
            },
            b"stream" => Key::Stream,
            b"data" => Key::Data,
            b"lastUpdateId" => Key::LastUpdateId,
            _ => Key::Other,
        }
    }

    /// A key written with escapes (`"\u0070"` is `"p"`): decoded, then matched.
    fn of_escaped(raw: &[u8]) -> Result<Key, RejectReason> {
        let mut buf = [0u8; 16];
        match unescape(raw, &mut buf)? {
            (len, true) => Ok(Key::of(&buf[..len])),
            (_, false) => Ok(Key::Other),
        }
    }
}

#[inline]
fn set<'a>(
    slot: &mut Option<Val<'a>>,
    value: Val<'a>,
    name: &'static str,
    duplicate: &mut Option<&'static str>,
) {
    if slot.is_some() {
        duplicate.get_or_insert(name);
    }
    *slot = Some(value);
}

struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline]
    fn eat(&mut self, byte: u8) -> Result<(), RejectReason> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(MalformedJson)
        }
    }

    /// At an opening quote: the raw contents and whether they hold an escape.
    #[inline(always)]
    fn string(&mut self) -> Result<(&'a [u8], bool), RejectReason> {
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            match *self.buf.get(i).ok_or(MalformedJson)? {
                b'"' => {
                    self.pos = i + 1;
                    return Ok((&self.buf[start..i], escaped));
                }
                b'\\' => {
                    escaped = true;
                    i = escape_end(self.buf, i)?;
                }
                // JSON forbids raw control characters in strings.
                0..=0x1f => return Err(MalformedJson),
                _ => i += 1,
            }
        }
    }

    #[inline(always)]
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number token, strictly by the JSON grammar.
    #[inline(always)]
    fn number(&mut self) -> Result<&'a [u8], RejectReason> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(MalformedJson),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(MalformedJson);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(MalformedJson);
            }
        }
        Ok(&self.buf[start..self.pos])
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Result<(), RejectReason> {
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(MalformedJson)
        }
    }

    /// A value at nesting `depth`: scalars kept, containers skipped.
    #[inline(always)]
    fn value(&mut self, depth: u32) -> Result<Val<'a>, RejectReason> {
        match self.peek() {
            Some(b'"') => {
                let (raw, escaped) = self.string()?;
                Ok(Val::Str(raw, escaped))
            }
            Some(b'-' | b'0'..=b'9') => Ok(Val::Num(self.number()?)),
            Some(b't') => self.literal(b"true").map(|()| Val::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Val::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Val::Null),
            Some(b'{' | b'[') => self.skip_value(depth).map(|()| Val::Container),
            _ => Err(MalformedJson),
        }
    }

    /// Skips any value at nesting `depth`, checking its grammar.
    fn skip_value(&mut self, depth: u32) -> Result<(), RejectReason> {
        let close = match self.peek() {
            Some(b'{') => b'}',
            Some(b'[') => b']',
            _ => return self.value(depth).map(drop),
        };
        if depth >= MAX_DEPTH {
            return Err(MalformedJson);
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if close == b'}' {
                if self.peek() != Some(b'"') {
                    return Err(MalformedJson);
                }
                self.string()?;
                self.skip_ws();
                self.eat(b':')?;
                self.skip_ws();
            }
            self.skip_value(depth + 1)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b) if b == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(MalformedJson),
            }
        }
    }

    /// An object whose interesting fields go into `fields`; at the top level, `inner`
    /// receives the fields of a `"data"` object (the combined-stream payload).
    fn object(
        &mut self,
        fields: &mut Fields<'a>,
        mut inner: Option<&mut Fields<'a>>,
        depth: u32,
    ) -> Result<(), RejectReason> {
        self.eat(b'{')?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let depth = depth + 1;
        loop {
            if self.peek() != Some(b'"') {
                return Err(MalformedJson);
            }
            let (raw, escaped) = self.string()?;
            let key = if escaped {
                Key::of_escaped(raw)?
            } else {
                Key::of(raw)
            };
            self.skip_ws();
            self.eat(b':')?;
            self.skip_ws();
            let dup = &mut fields.duplicate;
            match key {
                Key::E => set(&mut fields.e, self.value(depth)?, "e", dup),
                Key::LowerS => set(&mut fields.s, self.value(depth)?, "s", dup),
                Key::LowerT => set(&mut fields.t, self.value(depth)?, "t", dup),
                Key::P => set(&mut fields.p, self.value(depth)?, "p", dup),
                Key::Q => set(&mut fields.q, self.value(depth)?, "q", dup),
                Key::UpperT => set(&mut fields.time, self.value(depth)?, "T", dup),
                Key::M => set(&mut fields.m, self.value(depth)?, "m", dup),
                Key::UpperB => set(&mut fields.buyer, self.value(depth)?, "B", dup),
                Key::UpperS => set(&mut fields.seller, self.value(depth)?, "S", dup),
                Key::Stream if inner.is_some() => {
                    set(&mut fields.stream, self.value(depth)?, "stream", dup);
                }
                Key::Data if inner.is_some() => {
                    let value = match (self.peek(), inner.as_deref_mut()) {
                        (Some(b'{'), Some(payload)) => {
                            self.object(payload, None, depth)?;
                            Val::Payload
                        }
                        _ => self.value(depth)?,
                    };
                    set(&mut fields.data, value, "data", dup);
                }
                Key::U | Key::LowerB | Key::LowerA | Key::LastUpdateId => {
                    match key {
                        Key::U => fields.has_u = true,
                        Key::LowerB => fields.has_b = true,
                        Key::LowerA => fields.has_a = true,
                        _ => fields.has_last_update_id = true,
                    }
                    self.value(depth)?;
                }
                // `value` skips containers and is inlined for the common scalars.
                Key::Stream | Key::Data | Key::Other => {
                    self.value(depth)?;
                }
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(MalformedJson),
            }
        }
    }
}

/// Decides what a well-formed line is, once every field has been seen.
fn classify(outer: &Fields<'_>, inner: &Fields<'_>) -> Result<Record, RejectReason> {
    // A combined-stream wrapper has a "data" payload and no event type of its own; a trade
    // that merely carries an unknown "data" field is still a trade.
    if outer.e.is_some() || outer.data.is_none() {
        return message(outer, None);
    }
    if let Some(name) = outer.duplicate {
        return Err(DuplicateField(name));
    }
    let stream = match outer.stream {
        Some(Val::Str(raw, false)) => stream_type(raw),
        _ => None,
    };
    match (outer.data, stream) {
        (Some(Val::Payload), _) => message(inner, stream),
        // `!miniTicker@arr` and friends carry an array of events.
        (_, Some(kind)) => Ok(Record::Skipped(truncated(kind)?)),
        _ => Err(WrongType("data")),
    }
}

/// The event type named by a stream name: `btcusdt@depth@100ms` → `depth`,
/// `!miniTicker@arr` → `miniTicker`.
fn stream_type(name: &[u8]) -> Option<&[u8]> {
    let kind = match name.strip_prefix(b"!") {
        Some(rest) => rest,
        None => &name[memchr::memchr(b'@', name)? + 1..],
    };
    let kind = match memchr::memchr(b'@', kind) {
        Some(end) => &kind[..end],
        None => kind,
    };
    (!kind.is_empty()).then_some(kind)
}

/// One message (bare, or the payload of a wrapper whose stream name gave `stream`).
fn message(fields: &Fields<'_>, stream: Option<&[u8]>) -> Result<Record, RejectReason> {
    if let Some(name) = fields.duplicate {
        return Err(DuplicateField(name));
    }
    match fields.e {
        Some(Val::Str(b"trade", false)) => trade(fields).map(Record::Trade),
        Some(Val::Str(raw, escaped)) => {
            let kind = event_type(raw, escaped)?;
            if kind.as_str() == "trade" {
                trade(fields).map(Record::Trade)
            } else {
                Ok(Record::Skipped(kind))
            }
        }
        Some(_) => Err(WrongType("e")),
        None => match stream {
            Some(b"trade") => Err(MissingField("e")),
            Some(kind) => Ok(Record::Skipped(truncated(kind)?)),
            None if fields.has_u && fields.has_b && fields.has_a => {
                Ok(Record::Skipped(truncated(b"bookTicker")?))
            }
            None if fields.has_last_update_id => Ok(Record::Skipped(truncated(b"depth")?)),
            None => Err(MissingField("e")),
        },
    }
}

fn trade(f: &Fields<'_>) -> Result<Trade, RejectReason> {
    let symbol = symbol(f.s)?;
    let id = match f.t {
        Some(Val::Num(token)) => parse_u64(token).ok_or(BadNumber("t"))?,
        Some(_) => return Err(WrongType("t")),
        None => return Err(MissingField("t")),
    };
    let price = decimal(f.p, "p")?;
    let qty = decimal(f.q, "q")?;
    let time_ms = match f.time {
        Some(Val::Num(token)) => parse_u64(token)
            .and_then(normalize_time)
            .ok_or(BadTime("T"))?,
        Some(_) => return Err(WrongType("T")),
        None => return Err(MissingField("T")),
    };
    let buyer_maker = match f.m {
        Some(Val::Bool(b)) => b,
        Some(_) => return Err(WrongType("m")),
        None => return Err(MissingField("m")),
    };
    Ok(Trade {
        symbol,
        id,
        price,
        qty,
        time_ms,
        buyer_maker,
        buyer: account(f.buyer, "B")?,
        seller: account(f.seller, "S")?,
    })
}

#[inline]
fn symbol(value: Option<Val<'_>>) -> Result<Symbol, RejectReason> {
    match value {
        Some(Val::Str(b"", _)) => Err(EmptyField("s")),
        Some(Val::Str(raw, escaped)) => inline_string(raw, escaped, "s"),
        Some(_) => Err(WrongType("s")),
        None => Err(MissingField("s")),
    }
}

/// An optional account id; `null` and `""` both mean "not known".
#[inline]
fn account(value: Option<Val<'_>>, field: &'static str) -> Result<Option<Account>, RejectReason> {
    match value {
        None | Some(Val::Null) | Some(Val::Str(b"", _)) => Ok(None),
        Some(Val::Str(raw, escaped)) => inline_string(raw, escaped, field).map(Some),
        Some(_) => Err(WrongType(field)),
    }
}

/// A price or quantity, written as a JSON string (as Binance does) or as a number.
#[inline]
fn decimal(value: Option<Val<'_>>, field: &'static str) -> Result<Fixed, RejectReason> {
    match value {
        // An escape cannot be part of a decimal: decoding it would only admit oddities.
        Some(Val::Str(_, true)) => Err(BadNumber(field)),
        Some(Val::Str(text, false) | Val::Num(text)) => positive_fixed(text, field),
        Some(_) => Err(WrongType(field)),
        None => Err(MissingField(field)),
    }
}

#[inline]
fn inline_string(
    raw: &[u8],
    escaped: bool,
    field: &'static str,
) -> Result<InlineStr, RejectReason> {
    // Zeroed only when needed: this runs for every trade's symbol.
    let mut buf;
    let text = if escaped {
        buf = [0u8; INLINE_CAPACITY];
        match unescape(raw, &mut buf)? {
            (len, true) => &buf[..len],
            (_, false) => return Err(TooLong(field)),
        }
    } else if raw.len() > INLINE_CAPACITY {
        return Err(TooLong(field));
    } else {
        raw
    };
    // The line was checked to be UTF-8 and `unescape` writes whole characters.
    super::name(text, field)
}

/// An event type, decoded and cut to the inline capacity at a character boundary.
fn event_type(raw: &[u8], escaped: bool) -> Result<InlineStr, RejectReason> {
    if !escaped {
        return truncated(raw);
    }
    let mut buf = [0u8; INLINE_CAPACITY];
    let (len, _) = unescape(raw, &mut buf)?;
    InlineStr::from_utf8(&buf[..len]).ok_or(InvalidUtf8)
}

/// The longest prefix of UTF-8 `text` that fits inline and ends at a character boundary.
fn truncated(text: &[u8]) -> Result<InlineStr, RejectReason> {
    let mut end = text.len().min(INLINE_CAPACITY);
    // Back up over continuation bytes (10xxxxxx) to the start of the cut character.
    while end < text.len() && end > 0 && text[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    InlineStr::from_utf8(&text[..end]).ok_or(InvalidUtf8)
}

/// Decodes the contents of a JSON string (escapes already checked by the scanner) into
/// `out`: the length written and whether everything fitted. Only whole characters are
/// written. A `\u` escape of a lone surrogate has no UTF-8 form and is refused.
fn unescape(raw: &[u8], out: &mut [u8]) -> Result<(usize, bool), RejectReason> {
    let mut len = 0;
    let mut i = 0;
    while i < raw.len() {
        let mut utf8 = [0u8; 4];
        let encoded: &[u8] = if raw[i] != b'\\' {
            // Copy a whole UTF-8 character: its length is given by its first byte.
            let width = match raw[i] {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let end = (i + width).min(raw.len());
            let bytes = &raw[i..end];
            i = end;
            bytes
        } else {
            let escape = *raw.get(i + 1).ok_or(MalformedJson)?;
            i += 2;
            let c = match escape {
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let high = hex4(raw.get(i..i + 4))?;
                    i += 4;
                    let code = match high {
                        0xD800..=0xDBFF => {
                            if raw.get(i..i + 2) != Some(b"\\u") {
                                return Err(InvalidUtf8);
                            }
                            let low = hex4(raw.get(i + 2..i + 6))?;
                            if !(0xDC00..=0xDFFF).contains(&low) {
                                return Err(InvalidUtf8);
                            }
                            i += 6;
                            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                        }
                        0xDC00..=0xDFFF => return Err(InvalidUtf8),
                        _ => high,
                    };
                    char::from_u32(code).ok_or(InvalidUtf8)?
                }
                other => char::from(other),
            };
            c.encode_utf8(&mut utf8).as_bytes()
        };
        let Some(slot) = out.get_mut(len..len + encoded.len()) else {
            return Ok((len, false));
        };
        slot.copy_from_slice(encoded);
        len += encoded.len();
    }
    Ok((len, true))
}

/// Where the escape sequence at `buf[i]` (a backslash) ends. Kept out of line: escapes are
/// rare in trades, and the string scanner's loop is the hottest code of the parser.
#[cold]
#[inline(never)]
fn escape_end(buf: &[u8], i: usize) -> Result<usize, RejectReason> {
    match *buf.get(i + 1).ok_or(MalformedJson)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(i + 2),
        // A lone surrogate is refused wherever it is, known field or not, like invalid UTF-8
        // bytes: the line is not Unicode text.
        b'u' => match hex4(buf.get(i + 2..i + 6))? {
            0xD800..=0xDBFF => {
                if buf.get(i + 6..i + 8) != Some(b"\\u") {
                    return Err(InvalidUtf8);
                }
                let low = hex4(buf.get(i + 8..i + 12))?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(InvalidUtf8);
                }
                Ok(i + 12)
            }
            0xDC00..=0xDFFF => Err(InvalidUtf8),
            _ => Ok(i + 6),
        },
        _ => Err(MalformedJson),
    }
}

fn hex4(digits: Option<&[u8]>) -> Result<u32, RejectReason> {
    let digits = digits.ok_or(MalformedJson)?;
    let mut value = 0;
    for &d in digits {
        let nibble = char::from(d).to_digit(16).ok_or(MalformedJson)?;
        value = value * 16 + nibble;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    use super::*;
    use crate::parse::Format;
    use RejectReason::{NotPositive, TooPrecise};

    const SPEC_LINE: &str = r#"{"e":"trade","E":1700000000125,"s":"BTCUSDT","t":123456,"p":"43250.10","q":"0.00210","b":88,"a":50,"T":1700000000123,"m":true}"#;

    fn inline(text: &str) -> InlineStr {
        InlineStr::new(text).expect("short")
    }

    fn spec_trade() -> Trade {
        Trade {
            symbol: inline("BTCUSDT"),
            id: 123_456,
            price: Fixed(4_325_010_000_000),
            qty: Fixed(210_000),
            time_ms: 1_700_000_000_123,
            buyer_maker: true,
            buyer: None,
            seller: None,
        }
    }

    fn parse_str(line: &str) -> Result<Record, RejectReason> {
        Format::BinanceJson.parse_line(line.as_bytes())
    }

    fn trade_of(line: &str) -> Trade {
        match parse_str(line) {
            Ok(Record::Trade(trade)) => trade,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn skipped(kind: &str) -> Result<Record, RejectReason> {
        Ok(Record::Skipped(inline(kind)))
    }

    #[test]
    fn spec_example_parses_exactly() {
        assert_eq!(trade_of(SPEC_LINE), spec_trade());
        assert_eq!(trade_of(&format!("{SPEC_LINE}\r")), spec_trade());
        assert_eq!(trade_of(&format!("\u{feff}{SPEC_LINE}")), spec_trade());
    }

    #[test]
    fn combined_stream_wrapper() {
        for line in [
            format!(r#"{{"stream":"btcusdt@trade","data":{SPEC_LINE}}}"#),
            format!(r#"{{"data":{SPEC_LINE},"stream":"btcusdt@trade"}}"#),
            format!(r#"{{ "data" : {SPEC_LINE} }}"#),
            format!(r#"{{"stream":"btcusdt@trade","data":{SPEC_LINE},"x":[1,{{"data":2}}]}}"#),
        ] {
            assert_eq!(trade_of(&line), spec_trade(), "{line}");
        }
        // Other payloads, recognized by their type, their keys or the stream name.
        for (line, kind) in [
            (
                r#"{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1.0","2"]],"a":[]}}"#,
                "depthUpdate",
            ),
            (
                r#"{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#,
                "bookTicker",
            ),
            (
                r#"{"stream":"btcusdt@depth5@100ms","data":{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[]}}"#,
                "depth5",
            ),
            (
                r#"{"stream":"!miniTicker@arr","data":[{"e":"24hrMiniTicker"}]}"#,
                "miniTicker",
            ),
            (
                r#"{"data":{"lastUpdateId":160,"bids":[],"asks":[]}}"#,
                "depth",
            ),
        ] {
            assert_eq!(parse_str(line), skipped(kind), "{line}");
        }
        assert_eq!(
            parse_str(r#"{"stream":"btcusdt@trade","data":{"s":"BTCUSDT"}}"#),
            Err(MissingField("e"))
        );
        assert_eq!(parse_str(r#"{"data":[1,2]}"#), Err(WrongType("data")));
        assert_eq!(
            parse_str(r#"{"data":{"e":"trade"},"data":{}}"#),
            Err(DuplicateField("data"))
        );
        // A trade that happens to carry a "data" field is still a trade.
        let line = SPEC_LINE.replace(r#""m":true"#, r#""m":true,"data":{"e":"kline"}"#);
        assert_eq!(trade_of(&line), spec_trade());
    }

    #[test]
    fn fields_in_any_order_with_any_whitespace() {
        let line =
            "  {\n\t\"m\" : true ,\"T\":\r\n1700000000123 , \"q\":\"0.00210\",\"p\" :\"43250.10\",\
                    \"t\":123456,\"s\":\"BTCUSDT\",\"e\":\"trade\"}\t \r";
        assert_eq!(trade_of(line), spec_trade());
        let line = r#"{"p":43250.10,"q":2.1e-3,"s":"BTCUSDT","t":123456,"T":1700000000123,"m":true,"e":"trade"}"#;
        assert_eq!(trade_of(line), spec_trade());
    }

    #[test]
    fn unknown_fields_of_every_shape_are_skipped() {
        let extras = r#""M":true,"x":null,"o":{"a":[1,-2.5e+3,{"b":"}]\"{,"}],"c":{}},"l":[],"n":-0.0E0,"str":"\\\"\u00e9\/","u":[[[[]]]],"A":"","é":"ü","\u0065x":1"#;
        let line = SPEC_LINE.replace(r#""b":88,"#, &format!("{extras},"));
        assert_eq!(trade_of(&line), spec_trade());
        let line = SPEC_LINE
            .replace('{', &format!("{{{extras},"))
            .replacen("{{", "{", 1);
        assert_eq!(trade_of(&line), spec_trade());
    }

    #[test]
    fn buyer_and_seller_accounts() {
        let with = |b: &str, s: &str| {
            SPEC_LINE.replace(r#""m":true"#, &format!(r#""m":true,"B":{b},"S":{s}"#))
        };
        let t = trade_of(&with(r#""acct-1""#, r#""acct-2""#));
        assert_eq!(
            (t.buyer, t.seller),
            (Some(inline("acct-1")), Some(inline("acct-2")))
        );
        let t = trade_of(&with(r#""b\"x\\y\u00e9\ud83d\ude00""#, "null"));
        assert_eq!((t.buyer, t.seller), (Some(inline("b\"x\\yé😀")), None));
        let t = trade_of(&with(r#""""#, r#""12345678901234567890123""#));
        assert_eq!(
            (t.buyer, t.seller),
            (None, Some(inline("12345678901234567890123")))
        );
        assert_eq!(
            parse_str(&with(r#""123456789012345678901234""#, "null")),
            Err(TooLong("B"))
        );
        assert_eq!(
            parse_str(&with(
                r#""\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9""#,
                "null"
            )),
            Err(TooLong("B"))
        );
        assert_eq!(parse_str(&with("1", "null")), Err(WrongType("B")));
        assert_eq!(parse_str(&with("null", "[]")), Err(WrongType("S")));
        assert_eq!(parse_str(&with(r#""\ud83d""#, "null")), Err(InvalidUtf8));
        assert_eq!(parse_str(&with(r#""\ude00x""#, "null")), Err(InvalidUtf8));
        // An escaped symbol and an escaped event type are decoded.
        let line = SPEC_LINE
            .replace(r#""BTCUSDT""#, r#""BTC\u0055SDT""#)
            .replace(r#""trade""#, r#""\u0074rade""#);
        assert_eq!(trade_of(&line), spec_trade());
    }

    #[test]
    fn lone_surrogates_are_refused_wherever_they_are() {
        // Like invalid UTF-8 bytes, in a skipped field too, and in a key of any length.
        for (from, to) in [
            (r#""b":88"#, r#""b":"\ud800""#),
            (r#""b":88"#, r#""b":["x\udc00y"]"#),
            (r#""b":88"#, r#""b":{"\udbff":1}"#),
            (r#""b":88"#, r#""\ud83d\u0041":1"#),
            (r#""b":88"#, r#""aaaaaaaaaaaaaaaaaaaaaaaa\ud800":1"#),
            (r#""m":true"#, r#""m":true,"data":{"\ud800":1}"#),
        ] {
            let line = SPEC_LINE.replacen(from, to, 1);
            assert_eq!(parse_str(&line), Err(InvalidUtf8), "{line}");
        }
        // A pair is one character, in either case of hex digit.
        let line = SPEC_LINE.replacen(r#""b":88"#, r#""b":"\uD83D\uDE00","\ud83d\ude00":1"#, 1);
        assert_eq!(trade_of(&line), spec_trade());
    }

    #[test]
    fn other_event_types_are_skipped_by_type() {
        for (line, kind) in [
            (
                r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}"#,
                "depthUpdate",
            ),
            (
                r#"{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100","f":100,"l":105,"T":1,"m":true,"M":true}"#,
                "aggTrade",
            ),
            (
                r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#,
                "bookTicker",
            ),
            (
                r#"{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"11794.15","i":"11784.6","P":"11784.2","r":"0.00038","T":1}"#,
                "markPriceUpdate",
            ),
            (
                r#"{"e":"kline","E":1,"s":"BNBBTC","k":{"t":1,"T":2,"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","x":false}}"#,
                "kline",
            ),
            (
                r#"{"e":"24hrTicker","E":1,"s":"BNBBTC","p":"0.0015"}"#,
                "24hrTicker",
            ),
            (
                r#"{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}"#,
                "depth",
            ),
            (r#"{"e":""}"#, ""),
            (
                r#"{"e":"aVeryLongEventTypeNameIndeed"}"#,
                "aVeryLongEventTypeNameI",
            ),
            (r#"{"e":"ééééééééééééé"}"#, "ééééééééééé"),
        ] {
            assert_eq!(parse_str(line), skipped(kind), "{line}");
        }
    }

    #[test]
    fn microsecond_times_become_milliseconds() {
        let line = SPEC_LINE.replace("1700000000123,", "1700000000123456,");
        assert_eq!(trade_of(&line), spec_trade());
        let line = SPEC_LINE.replace("1700000000123,", "99999999999999,");
        assert_eq!(trade_of(&line).time_ms, 99_999_999_999_999);
        let line = SPEC_LINE.replace("1700000000123,", "0,");
        assert_eq!(trade_of(&line).time_ms, 0);
    }

    #[test]
    fn blank_lines() {
        for line in ["", "\r", " \t\r\n", "\u{feff}"] {
            assert_eq!(parse_str(line), Ok(Record::Blank), "{line:?}");
        }
    }

    #[test]
    fn broken_lines_are_rejected_with_their_reason() {
        let r = |from: &str, to: &str| {
            assert!(SPEC_LINE.contains(from), "{from}");
            SPEC_LINE.replacen(from, to, 1)
        };
        let table: Vec<(String, RejectReason)> = vec![
            (format!("{SPEC_LINE}x"), MalformedJson),
            (format!("{SPEC_LINE}}}"), MalformedJson),
            (format!("{SPEC_LINE},{SPEC_LINE}"), MalformedJson),
            (format!("{SPEC_LINE} {SPEC_LINE}"), MalformedJson),
            (r(",\"m\"", ",,\"m\""), MalformedJson),
            (r(",\"m\":true", ",\"m\":true,"), MalformedJson),
            (r("\"m\":true", "\"m\":True"), MalformedJson),
            (r("\"m\":true", "m:true"), MalformedJson),
            (r("\"m\":true", "'m':true"), MalformedJson),
            (r(":123456", ":0123456"), MalformedJson),
            (r(":123456", ":+123456"), MalformedJson),
            (r(":123456", ":123456."), MalformedJson),
            (r(":123456", ":1e"), MalformedJson),
            (r(":123456", ":NaN"), MalformedJson),
            (r("BTCUSDT", "BTC\\xUSDT"), MalformedJson),
            (r("BTCUSDT", "BTC\\u12G4"), MalformedJson),
            (r("BTCUSDT", "BTC\tUSDT"), MalformedJson),
            (r("\"b\":88", "\"b\":[1,2"), MalformedJson),
            (r("\"b\":88", "\"b\":[1,]"), MalformedJson),
            (r("\"b\":88", "\"b\":{\"x\"}"), MalformedJson),
            (r("\"b\":88", "\"b\":{1:2}"), MalformedJson),
            (
                r(
                    "\"b\":88",
                    &format!("\"b\":{}{}", "[".repeat(200), "]".repeat(200)),
                ),
                MalformedJson,
            ),
            ("[1,2]".into(), NotAnObject),
            ("\"trade\"".into(), NotAnObject),
            ("42".into(), NotAnObject),
            ("[1,2".into(), MalformedJson),
            ("hello".into(), MalformedJson),
            ("{}".into(), MissingField("e")),
            (r("\"e\":\"trade\",", ""), MissingField("e")),
            (r("\"s\":\"BTCUSDT\",", ""), MissingField("s")),
            (r("\"t\":123456,", ""), MissingField("t")),
            (r("\"p\":\"43250.10\",", ""), MissingField("p")),
            (r("\"q\":\"0.00210\",", ""), MissingField("q")),
            (r("\"T\":1700000000123,", ""), MissingField("T")),
            (r(",\"m\":true", ""), MissingField("m")),
            (r("\"e\":\"trade\"", "\"e\":1"), WrongType("e")),
            (r("\"BTCUSDT\"", "42"), WrongType("s")),
            (r("\"BTCUSDT\"", "null"), WrongType("s")),
            (r("123456", "\"123456\""), WrongType("t")),
            (r("\"43250.10\"", "true"), WrongType("p")),
            (r("\"0.00210\"", "[\"1\"]"), WrongType("q")),
            (r("1700000000123", "\"1700000000123\""), WrongType("T")),
            (r("\"m\":true", "\"m\":1"), WrongType("m")),
            (r("\"m\":true", "\"m\":\"true\""), WrongType("m")),
            (r("123456", "-1"), BadNumber("t")),
            (r("123456", "1.5"), BadNumber("t")),
            (r("123456", "1e3"), BadNumber("t")),
            (r("123456", "18446744073709551616"), BadNumber("t")),
            (r("43250.10", "abc"), BadNumber("p")),
            (r("43250.10", ""), BadNumber("p")),
            (r("43250.10", " 1"), BadNumber("p")),
            (r("43250.10", "1e30"), BadNumber("p")),
            (r("43250.10", "43250\\u002e10"), BadNumber("p")),
            (r("0.00210", "NaN"), BadNumber("q")),
            (r("0.00210", "0.0.1"), BadNumber("q")),
            (r("43250.10", "43250.123456789"), TooPrecise("p")),
            (r("\"0.00210\"", "1e-9"), TooPrecise("q")),
            (r("43250.10", "0"), NotPositive("p")),
            (r("43250.10", "-43250.10"), NotPositive("p")),
            (r("\"43250.10\"", "-1"), NotPositive("p")),
            (r("0.00210", "0.00000000"), NotPositive("q")),
            (r("0.00210", "-0.00210"), NotPositive("q")),
            (r("BTCUSDT", "ABCDEFGHIJKLMNOPQRSTUVWX"), TooLong("s")),
            (r("BTCUSDT", ""), EmptyField("s")),
            (r("BTCUSDT", "BTC\\u0000X"), RejectReason::NonPrintable("s")),
            (r("BTCUSDT", "BTC\\nX"), RejectReason::NonPrintable("s")),
            (r("BTCUSDT", "BTC USDT"), RejectReason::NonPrintable("s")),
            (r("BTCUSDT", "BTC\\u202eX"), RejectReason::NonPrintable("s")),
            (r("BTCUSDT", "\\ufeffBTC"), RejectReason::NonPrintable("s")),
            (r("1700000000123", "-1"), BadTime("T")),
            (r("1700000000123", "1.7e12"), BadTime("T")),
            (r("1700000000123", "100000000000000000"), BadTime("T")),
            (r("1700000000123", "18446744073709551616"), BadTime("T")),
            (
                r(",\"m\":true", ",\"m\":true,\"p\":\"1\""),
                DuplicateField("p"),
            ),
            (
                r(",\"m\":true", ",\"m\":true,\"\\u0073\":\"X\""),
                DuplicateField("s"),
            ),
        ];
        for (line, reason) in &table {
            assert_eq!(parse_str(line), Err(*reason), "{line}");
        }
    }

    #[test]
    fn invalid_utf8_is_rejected_wherever_it_is() {
        let spec = SPEC_LINE.as_bytes();
        let at = |needle: &[u8], bad: &[u8]| {
            let i = spec
                .windows(needle.len())
                .position(|w| w == needle)
                .expect("needle");
            [&spec[..i], bad, &spec[i..]].concat()
        };
        for bad in [
            &b"\xff"[..],
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xe2\x82",
            b"\xf4\x90\x80\x80",
        ] {
            for needle in [&b"USDT"[..], b"\"E\"", b"}"] {
                let line = at(needle, bad);
                assert_eq!(
                    Format::BinanceJson.parse_line(&line),
                    Err(InvalidUtf8),
                    "{line:?}"
                );
            }
        }
        assert_eq!(Format::BinanceJson.parse_line(b"\xff"), Err(InvalidUtf8));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let lines = [
            SPEC_LINE.to_string(),
            format!(r#"{{"stream":"btcusdt@trade","data":{SPEC_LINE}}}"#),
            SPEC_LINE.replace(r#""m":true"#, r#""m":true,"B":"b\"é\u00e9\ud83d\ude00","S":null,"x":[{"y":[-1.5e-3,false]}]"#),
            r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#.to_string(),
        ];
        for line in &lines {
            let bytes = line.as_bytes();
            assert!(Format::BinanceJson.parse_line(bytes).is_ok(), "{line}");
            for end in 1..bytes.len() {
                let result = Format::BinanceJson.parse_line(&bytes[..end]);
                assert!(
                    matches!(result, Err(MalformedJson | InvalidUtf8)),
                    "{:?}: {result:?}",
                    String::from_utf8_lossy(&bytes[..end])
                );
            }
        }
    }

    // ---- property tests: an independent serializer --------------------------------------

    /// A JSON string literal for `text`, escaping what must be escaped and, at random, some of
    /// what need not be.
    fn json_string(text: &str, rng: &mut Pcg64) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\u{0}'..='\u{1f}' => out.push_str(&format!("\\u{:04x}", c as u32)),
                '/' if rng.random_bool(0.5) => out.push_str("\\/"),
                _ if rng.random_ratio(1, 8) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
                _ => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn ws(rng: &mut Pcg64) -> &'static str {
        const WS: [&str; 8] = ["", "", "", "", " ", "\t", "\r\n  ", " \n"];
        WS[rng.random_range(0..WS.len())]
    }

    fn extra_value(rng: &mut Pcg64, depth: u32) -> String {
        let pick = rng.random_range(0..if depth > 3 { 6 } else { 8 });
        match pick {
            0 => rng.random_range(-1_000_000i64..1_000_000).to_string(),
            1 => format!(
                "{}.{}e{}",
                rng.random_range(-99..99),
                rng.random_range(0..999),
                rng.random_range(-20..20)
            ),
            2 => json_string("x\"y}]{[,:\\é", rng),
            3 => "true".into(),
            4 => "false".into(),
            5 => "null".into(),
            6 => {
                let items: Vec<String> = (0..rng.random_range(0..4))
                    .map(|_| extra_value(rng, depth + 1))
                    .collect();
                format!("[{}]", items.join(&format!("{},{}", ws(rng), ws(rng))))
            }
            _ => {
                let items: Vec<String> = (0..rng.random_range(0..4))
                    .map(|i| {
                        format!(
                            "\"k{i}\"{}:{}{}",
                            ws(rng),
                            ws(rng),
                            extra_value(rng, depth + 1)
                        )
                    })
                    .collect();
                format!("{{{}}}", items.join(","))
            }
        }
    }

    /// A decimal as Binance writes it (a string) or as a JSON number, in several spellings.
    fn decimal_json(value: Fixed, rng: &mut Pcg64) -> String {
        let canonical = value.to_string();
        let text = match rng.random_range(0..4) {
            0 => canonical,
            1 if canonical.contains('.') => {
                format!("{canonical}{}", "0".repeat(rng.random_range(1..5)))
            }
            1 => format!("{canonical}.000"),
            // `Fixed::parse` scales the mantissa before applying the exponent, so the exponent
            // spelling is only exact-parseable for mantissas below i64::MAX / 10^8.
            2 if value.0 < i64::MAX / 100_000_000 => format!("{}e-8", value.0),
            _ if value.0 < i64::MAX / 1_000_000_000 => format!("{}E-{}", value.0 * 10, 9),
            _ => canonical,
        };
        if rng.random_bool(0.7) {
            format!("\"{text}\"")
        } else {
            text
        }
    }

    fn account_json(account: Option<InlineStr>, rng: &mut Pcg64) -> Option<String> {
        match account {
            Some(a) => Some(json_string(a.as_str(), rng)),
            None => [None, Some("null".to_string()), Some("\"\"".to_string())]
                [rng.random_range(0..3)]
            .clone(),
        }
    }

    fn serialize(trade: &Trade, seed: u64) -> String {
        let mut rng = Pcg64::seed_from_u64(seed);
        let rng = &mut rng;
        let mut fields: Vec<(String, String)> = vec![
            (
                "e".into(),
                if rng.random_bool(0.2) {
                    "\"tr\\u0061de\"".into()
                } else {
                    "\"trade\"".into()
                },
            ),
            ("s".into(), json_string(trade.symbol.as_str(), rng)),
            ("t".into(), trade.id.to_string()),
            ("p".into(), decimal_json(trade.price, rng)),
            ("q".into(), decimal_json(trade.qty, rng)),
            ("m".into(), trade.buyer_maker.to_string()),
        ];
        let time = if trade.time_ms >= 100_000_000_000 && rng.random_bool(0.5) {
            trade.time_ms * 1000 + rng.random_range(0..1000)
        } else {
            trade.time_ms
        };
        fields.push(("T".into(), time.to_string()));
        for (key, account) in [("B", trade.buyer), ("S", trade.seller)] {
            if let Some(value) = account_json(account, rng) {
                fields.push((key.into(), value));
            }
        }
        const EXTRA_KEYS: [&str; 12] = [
            "E",
            "b",
            "a",
            "M",
            "u",
            "A",
            "U",
            "x",
            "data",
            "stream",
            "lastUpdateId",
            "é",
        ];
        for key in EXTRA_KEYS {
            if rng.random_ratio(1, 3) {
                fields.push((key.into(), extra_value(rng, 0)));
            }
        }
        // Shuffle (Fisher–Yates), then write with random whitespace and escaped keys.
        for i in (1..fields.len()).rev() {
            fields.swap(i, rng.random_range(0..=i));
        }
        let members: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}{}:{}{}", json_string(k, rng), ws(rng), ws(rng), v))
            .collect();
        let sep = format!("{},{}", ws(rng), ws(rng));
        let object = format!("{{{}{}{}}}", ws(rng), members.join(&sep), ws(rng));
        let line = match rng.random_range(0..3) {
            0 => format!(r#"{{"stream":"btcusdt@trade","data":{object}}}"#),
            1 => format!(r#"{{"data":{}{object},"stream":"x@depth"}}"#, ws(rng)),
            _ => object,
        };
        format!("{}{line}{}", ws(rng), ws(rng))
    }

    fn arb_inline(min_chars: usize) -> impl Strategy<Value = InlineStr> {
        prop::collection::vec(
            prop_oneof![4 => prop::char::range('A', 'Z'), 1 => any::<char>()],
            min_chars..12,
        )
        .prop_map(|chars| {
            let mut text = String::new();
            for c in chars {
                // Names with invisible characters are refused (tested on their own).
                let c = if crate::parse::printable(c.encode_utf8(&mut [0; 4])) {
                    c
                } else {
                    'X'
                };
                if text.len() + c.len_utf8() <= INLINE_CAPACITY {
                    text.push(c);
                }
            }
            InlineStr::new(&text).expect("bounded")
        })
    }

    fn arb_positive() -> impl Strategy<Value = Fixed> {
        prop_oneof![1i64..10_000 * 100_000_000, 1i64..=i64::MAX].prop_map(Fixed)
    }

    prop_compose! {
        fn arb_trade()(
            symbol in arb_inline(1),
            id in any::<u64>(),
            price in arb_positive(),
            qty in arb_positive(),
            time_ms in 0u64..100_000_000_000_000,
            buyer_maker in any::<bool>(),
            buyer in prop::option::of(arb_inline(1)),
            seller in prop::option::of(arb_inline(1)),
        ) -> Trade {
            Trade { symbol, id, price, qty, time_ms, buyer_maker, buyer, seller }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn serialized_trades_parse_back_exactly(trade in arb_trade(), seed in any::<u64>()) {
            let line = serialize(&trade, seed);
            prop_assert_eq!(parse_str(&line), Ok(Record::Trade(trade)), "{}", line);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            for format in [
                Format::BinanceJson,
                Format::BinanceCsv { symbol: inline("X") },
                Format::CandleCsv,
            ] {
                let _ = format.parse_line(&bytes);
            }
        }

        #[test]
        fn mutated_lines_never_panic(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        ) {
            let mut line = format!(
                r#"{{"stream":"x@trade","data":{}}}"#,
                SPEC_LINE.replace("\"m\":true", "\"m\":true,\"B\":\"\\u00e9\",\"x\":[{\"y\":null}]")
            ).into_bytes();
            for (at, byte, op) in edits {
                let i = at.index(line.len());
                match op {
                    0 => line[i] = byte,
                    1 => line.insert(i, byte),
                    _ => { line.remove(i); }
                }
            }
            let _ = Format::BinanceJson.parse_line(&line);
        }
    }
}
