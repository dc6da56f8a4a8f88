//! Fuzzing the Binance JSON parser against an independent oracle (tickflow-oracle's
//! `json::trade_line`, built on serde_json): on every line, `parse_line` must not panic, and
//! it must return a trade exactly when the oracle finds one, with the same field values.
//!
//! Random bytes are almost never JSON, so the lines are built near the valid set: trades with
//! random fields, values at the bounds and every spelling of a decimal, extra fields of any
//! shape, the combined-stream wrapper, duplicate and escaped keys, tricky characters in
//! names, deep nesting; then, for some, byte edits (insert, delete, replace), truncation or
//! trailing garbage. Structured random objects with random types in the known fields are
//! mixed in.
//!
//! `TICKFLOW_FUZZ_CASES` sets the number of cases (each checks 16 lines); the default, 20000,
//! takes 30–40 s in the debug test profile. A disagreement is reported with the line
//! cut down to a minimal one that still disagrees.

use proptest::prelude::*;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use tickflow_operators::parse::{Format, Record};
use tickflow_oracle::json::{trade_line, JsonTrade};

/// Lines checked per proptest case: generation is cheap next to proptest's own bookkeeping.
const LINES_PER_CASE: usize = 16;

fn cases() -> u32 {
    std::env::var("TICKFLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// tickflow's answer, in the oracle's terms.
fn tickflow(line: &[u8]) -> Option<JsonTrade> {
    match Format::BinanceJson.parse_line(line) {
        Ok(Record::Trade(t)) => Some(JsonTrade {
            symbol: t.symbol.to_string(),
            id: t.id,
            price: t.price.to_string(),
            qty: t.qty.to_string(),
            time_ms: t.time_ms,
            buyer_maker: t.buyer_maker,
            buyer: t.buyer.map(|b| b.to_string()),
            seller: t.seller.map(|s| s.to_string()),
        }),
        _ => None,
    }
}

fn disagree(line: &[u8]) -> bool {
    tickflow(line) != trade_line(line)
}

/// The shortest line found by deleting ever smaller chunks of `line` that still disagrees.
fn minimize(line: &[u8]) -> Vec<u8> {
    let mut line = line.to_vec();
    let mut chunk = line.len() / 2;
    while chunk > 0 {
        let mut at = 0;
        while at + chunk <= line.len() {
            let candidate = [&line[..at], &line[at + chunk..]].concat();
            if disagree(&candidate) {
                line = candidate;
            } else {
                at += 1;
            }
        }
        chunk /= 2;
    }
    line
}

fn check(line: &[u8]) -> Result<(), TestCaseError> {
    let got = tickflow(line);
    let expected = trade_line(line);
    if got != expected {
        let small = minimize(line);
        return Err(TestCaseError::fail(format!(
            "tickflow and the oracle disagree\n line: {}\n minimal: {}\n tickflow: {:?}\n oracle: {:?}\n tickflow on minimal: {:?}\n oracle on minimal: {:?}",
            String::from_utf8_lossy(line).escape_debug(),
            String::from_utf8_lossy(&small).escape_debug(),
            got,
            expected,
            Format::BinanceJson.parse_line(&small),
            trade_line(&small),
        )));
    }
    Ok(())
}

// ---- building lines -------------------------------------------------------------------

/// Characters that names are made of: mostly plain, some refused (controls, blanks,
/// invisible formatting characters), some wide (2, 3 and 4 UTF-8 bytes), some that need
/// escaping.
fn name_char(rng: &mut Pcg64) -> char {
    const TRICKY: [char; 30] = [
        '\u{0}',
        '\u{1f}',
        '\u{7f}',
        '\u{85}',
        '\u{a0}',
        ' ',
        '\t',
        '\n',
        '\u{200b}',
        '\u{200f}',
        '\u{202a}',
        '\u{202e}',
        '\u{2060}',
        '\u{2064}',
        '\u{2066}',
        '\u{2069}',
        '\u{feff}',
        '\u{fff9}',
        '\u{fffb}',
        '\u{fffe}',
        '\u{ffff}',
        '\u{3000}',
        '\u{2028}',
        'é',
        '€',
        '😀',
        '"',
        '\\',
        '/',
        '\u{10ffff}',
    ];
    match rng.random_range(0..20) {
        0..=13 => char::from(rng.random_range(b'A'..=b'Z')),
        14 | 15 => ['-', '_', '0', '9', '.', '@'][rng.random_range(0..6)],
        16 => char::from_u32(rng.random_range(0x80..0x3000)).unwrap_or('x'),
        _ => *TRICKY.choose(rng).expect("not empty"),
    }
}

/// A name; a `clean` one is valid (1 to 23 bytes, printable).
fn name_text(clean: bool, rng: &mut Pcg64) -> String {
    if clean {
        let len = rng.random_range(1..=23);
        return (0..len)
            .map(|_| char::from(rng.random_range(b'A'..=b'Z')))
            .collect();
    }
    let len = match rng.random_range(0..12) {
        0 => rng.random_range(0..3),
        1 => rng.random_range(21..25),
        _ => rng.random_range(3..12),
    };
    let tricky = rng.random_bool(0.15);
    (0..len)
        .map(|_| {
            if tricky {
                name_char(rng)
            } else {
                char::from(rng.random_range(b'A'..=b'Z'))
            }
        })
        .collect()
}

/// A JSON string literal for `text`, escaping what must be escaped and, at random, more
/// (`\uXXXX`, surrogate pairs, `\/`).
fn json_string(text: &str, rng: &mut Pcg64) -> String {
    json_string_with(text, 40, rng)
}

/// [`json_string`], with a lone surrogate escape once in `lone_odds` strings.
fn json_string_with(text: &str, lone_odds: u32, rng: &mut Pcg64) -> String {
    let mut out = String::from("\"");
    let escape_often = rng.random_bool(0.2);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' if rng.random_bool(0.5) => out.push_str("\\n"),
            '\t' if rng.random_bool(0.5) => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            '/' if rng.random_bool(0.5) => out.push_str("\\/"),
            _ if rng.random_ratio(1, if escape_often { 2 } else { 30 }) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if rng.random_bool(0.5) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    } else {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
            _ => out.push(c),
        }
    }
    if rng.random_ratio(1, lone_odds) {
        // A lone surrogate: grammatical JSON, but no character.
        let lone = ["\\ud800", "\\udfff", "\\uDBFF", "\\ud83d"][rng.random_range(0..4)];
        let at = out.len();
        out.insert_str(if rng.random_bool(0.5) { 1 } else { at }, lone);
    }
    out.push('"');
    out
}

/// Positive units of `10^-8`, biased to the bounds.
fn units(rng: &mut Pcg64) -> i64 {
    match rng.random_range(0..10) {
        0 => i64::MAX - rng.random_range(0..3),
        1 => rng.random_range(1..3),
        2 => rng.random_range(1..=i64::MAX),
        3 => 100_000_000 * rng.random_range(1..1_000),
        4 if rng.random_bool(0.3) => [0, -1, -100_000_000, i64::MIN + 1][rng.random_range(0..4)],
        _ => rng.random_range(1..10_000_000_000_000),
    }
}

fn canonical(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    let (int, frac) = (magnitude / 100_000_000, magnitude % 100_000_000);
    if frac == 0 {
        format!("{sign}{int}")
    } else {
        let frac = format!("{frac:08}");
        format!("{sign}{int}.{}", frac.trim_end_matches('0'))
    }
}

/// A price or quantity in one of many spellings, as a JSON string or number; a `clean` one
/// is positive and spelt validly (an e-notation of a large value may still pass the limit on
/// the digits before the exponent).
fn decimal_json(clean: bool, rng: &mut Pcg64) -> String {
    let u = if clean { units(rng).max(1) } else { units(rng) };
    let c = canonical(u);
    let big = i128::from(u);
    let variant = if clean {
        [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 13][rng.random_range(0..12)]
    } else {
        rng.random_range(0..16)
    };
    let text = match variant {
        0..=4 => c,
        5 if c.contains('.') => format!("{c}{}", "0".repeat(rng.random_range(1..12))),
        5 => format!("{c}.{}", "0".repeat(rng.random_range(0..12))),
        6 => format!("{big}e-8"),
        7 => format!("{}E-{}", big * 10, 9),
        8 => format!("{}e-{}", big * 1000, 11),
        9 => format!("+{c}"),
        10 => format!("00{c}"),
        11 => c.strip_prefix("0.").map_or(c.clone(), |f| format!(".{f}")),
        12 => {
            // One more non-zero digit somewhere after the last: within 8 digits or beyond.
            let dot = if c.contains('.') { "" } else { "." };
            let zeros = "0".repeat(rng.random_range(0..10));
            format!("{c}{dot}{zeros}{}", rng.random_range(1..10))
        }
        13 => {
            let shift = rng.random_range(0..5);
            let e = ["e", "E", "e+", "e0", "E00"][rng.random_range(0..5)];
            format!("{c}{e}{shift}")
        }
        14 => [
            "1e400",
            "-0",
            "0.0",
            "1.",
            "1e",
            ".",
            "",
            "NaN",
            "1e-0008",
            "0.00000001e0001",
        ][rng.random_range(0..10)]
        .to_string(),
        _ => format!(
            "{}.{:08}e{}",
            u / 100_000_000,
            (u % 100_000_000).abs(),
            rng.random_range(0..3)
        ),
    };
    match rng.random_range(if clean { 2 } else { 0 }..20) {
        0 if text.contains('.') => format!("\"{}\"", text.replacen('.', "\\u002e", 1)),
        1 => text,
        _ if json_number(&text) && rng.random_bool(0.4) => text,
        _ => format!("\"{text}\""),
    }
}

/// Whether `text` is a number by JSON's grammar (so that the generator writes numbers
/// unquoted mostly when they are grammatical).
fn json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// An integer, at one of `bounds` or not; a `clean` one is a plain JSON integer.
fn integer_json(bounds: &[u64], clean: bool, rng: &mut Pcg64) -> String {
    let v = match rng.random_range(0..6) {
        0 | 1 => *bounds.choose(rng).expect("not empty"),
        2 => rng.random(),
        _ => rng.random_range(0..2_000_000_000_000),
    };
    match rng.random_range(if clean { 6 } else { 0 }..60) {
        0 => format!("{v}.0"),
        1 => format!("-{v}"),
        2 => format!("\"{v}\""),
        3 => format!("{v}e0"),
        4 => "18446744073709551616".into(),
        5 => "-0".into(),
        _ => v.to_string(),
    }
}

fn ws(rng: &mut Pcg64) -> &'static str {
    // A form feed is white space to Rust but not to JSON: rarely.
    const WS: [&str; 9] = ["", "", "", "", "", " ", "\t", "\r\n ", "\n"];
    if rng.random_ratio(1, 5_000) {
        return "\u{c}";
    }
    WS[rng.random_range(0..WS.len())]
}

/// Any JSON value (sometimes a nearly-JSON one), for unknown fields and wrong types.
fn any_value(rng: &mut Pcg64, depth: u32) -> String {
    let pick = rng.random_range(0..if depth > 3 { 10 } else { 13 });
    match pick {
        0 => rng.random_range(-1_000_000i64..1_000_000).to_string(),
        1 => [
            "1e400",
            "-1e-400",
            "-0.0E0",
            "0",
            "1E+2",
            "12.5e-3",
            "18446744073709551616",
        ][rng.random_range(0..7)]
        .to_string(),
        2 => json_string(&name_text(false, rng), rng),
        3 => json_string("x\"y}]{[,:\\é", rng),
        4 => "true".into(),
        5 => "false".into(),
        6 => "null".into(),
        7 => json_string(
            ["trade", "depthUpdate", "", "TRADE"][rng.random_range(0..4)],
            rng,
        ),
        8 => decimal_json(false, rng),
        9 => integer_json(&[0, u64::MAX], false, rng),
        10 => {
            let items: Vec<String> = (0..rng.random_range(0..4))
                .map(|_| any_value(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(&format!("{},{}", ws(rng), ws(rng))))
        }
        11 if rng.random_bool(0.3) => {
            // Nesting right at the limit of 128 levels, counting from here.
            let n = rng.random_range(120..132);
            format!("{}{}", "[".repeat(n), "]".repeat(n))
        }
        _ => {
            let keys = [
                "e",
                "s",
                "p",
                "data",
                "k",
                "\\u0065",
                "é",
                LONE_KEYS[rng.random_range(0..3)],
            ];
            let items: Vec<String> = (0..rng.random_range(0..4))
                .map(|_| {
                    format!(
                        "\"{}\"{}:{}{}",
                        keys[rng.random_range(0..keys.len())],
                        ws(rng),
                        ws(rng),
                        any_value(rng, depth + 1)
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

/// Keys that hold a lone surrogate escape, short and long (a parser that decodes only keys
/// short enough to be known ones stops at a different place in each).
const LONE_KEYS: [&str; 3] = [
    "\\ud800",
    "aaaaaaaaaaaaaaa\\udc00",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaa\\ud800",
];

/// A key as written: plain, or with one of its characters as a `\u` escape. A key that
/// starts with U+0001 is JSON text already (its escapes are written as they are).
fn key_json(key: &str, rng: &mut Pcg64) -> String {
    if let Some(raw) = key.strip_prefix('\u{1}') {
        format!("\"{raw}\"")
    } else if rng.random_ratio(1, 12) {
        let mut out = String::from("\"");
        for (i, c) in key.chars().enumerate() {
            if i == 0 || rng.random_bool(0.5) {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            } else {
                out.push(c);
            }
        }
        out.push('"');
        out
    } else {
        json_string_with(key, 400, rng)
    }
}

/// The members of a trade object, each usually valid, sometimes of a wrong type or value,
/// sometimes absent or twice; `chaos` (0..=3) raises the odds of trouble, and at 0, half the
/// objects have only valid values (in any spelling) in their known fields.
fn trade_members(rng: &mut Pcg64, chaos: u32) -> Vec<(String, String)> {
    let clean = chaos == 0 && rng.random_bool(0.5);
    let lone = if clean { u32::MAX } else { 40 };
    let wild = |rng: &mut Pcg64| rng.random_ratio(chaos, 24);
    let mut members: Vec<(String, String)> = Vec::new();
    let mut push = |key: &str, valid: String, rng: &mut Pcg64| {
        if rng.random_ratio(1, 100 - 25 * chaos) {
            return; // missing
        }
        let value = if wild(rng) { any_value(rng, 1) } else { valid };
        members.push((key.to_string(), value));
    };
    let e = if rng.random_ratio(1, 10) {
        "\"tr\\u0061de\"".into()
    } else {
        "\"trade\"".into()
    };
    push("e", e, rng);
    let s = json_string_with(&name_text(clean, rng), lone, rng);
    push("s", s, rng);
    let t = integer_json(&[0, 1, u64::MAX, u64::MAX - 1], clean, rng);
    push("t", t, rng);
    let p = decimal_json(clean, rng);
    push("p", p, rng);
    let q = decimal_json(clean, rng);
    push("q", q, rng);
    let time = integer_json(
        &[
            0,
            99_999_999_999_999,
            100_000_000_000_000,
            1_700_000_000_123_456,
            99_999_999_999_999_999,
            100_000_000_000_000_000,
            u64::MAX,
        ],
        clean,
        rng,
    );
    push("T", time, rng);
    let m = ["true", "false"][rng.random_range(0..2)].to_string();
    push("m", m, rng);
    for key in ["B", "S"] {
        if rng.random_bool(0.4) {
            let value = match rng.random_range(0..4) {
                0 => "null".into(),
                1 => "\"\"".into(),
                _ => json_string_with(&name_text(clean, rng), lone, rng),
            };
            push(key, value, rng);
        }
    }
    for key in [
        "E",
        "b",
        "a",
        "M",
        "u",
        "U",
        "A",
        "x",
        "stream",
        "data",
        "lastUpdateId",
        "é",
    ] {
        if rng.random_ratio(1, 6) {
            push(key, any_value(rng, 1), rng);
        }
    }
    if rng.random_ratio(1, 40) {
        // Written raw: `object` would escape the backslash.
        members.push((
            format!("\u{1}{}", LONE_KEYS[rng.random_range(0..3)]),
            any_value(rng, 1),
        ));
    }
    if members.len() >= 2 && rng.random_ratio(chaos, 6) {
        // Two values swapped: a price where the symbol goes, a time where the id goes...
        let (a, b) = (
            rng.random_range(0..members.len()),
            rng.random_range(0..members.len()),
        );
        let value = members[a].1.clone();
        members[a].1 = std::mem::replace(&mut members[b].1, value);
    }
    if rng.random_ratio(chaos + 1, 30) {
        // A key twice, with the same or another value.
        let (key, value) = members.choose(rng).cloned().unwrap_or_default();
        let value = if rng.random_bool(0.5) {
            value
        } else {
            any_value(rng, 1)
        };
        members.push((key, value));
    }
    for i in (1..members.len()).rev() {
        members.swap(i, rng.random_range(0..=i));
    }
    members
}

fn object(members: &[(String, String)], rng: &mut Pcg64) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}{}:{}{}", key_json(k, rng), ws(rng), ws(rng), v))
        .collect();
    let sep = format!("{},{}", ws(rng), ws(rng));
    format!("{{{}{}{}}}", ws(rng), members.join(&sep), ws(rng))
}

/// A line near the valid set: a trade object, bare or wrapped.
fn near_valid_line(rng: &mut Pcg64, chaos: u32) -> Vec<u8> {
    let inner = object(&trade_members(rng, chaos), rng);
    let line = match rng.random_range(0..8) {
        0 => format!(r#"{{"stream":"btcusdt@trade","data":{inner}}}"#),
        1 => format!(r#"{{"data":{}{inner},"stream":"x@depth"}}"#, ws(rng)),
        2 => {
            // A wrapper with extras, or with trouble of its own.
            let mut members = vec![("data".to_string(), inner)];
            for key in ["stream", "e", "data", "s", "x", "p"] {
                if rng.random_ratio(1, 5) {
                    members.push((key.to_string(), any_value(rng, 1)));
                }
            }
            for i in (1..members.len()).rev() {
                members.swap(i, rng.random_range(0..=i));
            }
            object(&members, rng)
        }
        _ => inner,
    };
    let line = match rng.random_range(0..60) {
        // Not an object at the top.
        0 => format!("[{line}]"),
        1 => json_string(&line, rng),
        2 => format!("{line},{line}"),
        _ => line,
    };
    let mut line = format!("{}{line}{}", ws(rng), ws(rng)).into_bytes();
    if rng.random_ratio(1, 30) {
        line.splice(0..0, *b"\xEF\xBB\xBF");
    }
    line
}

/// Byte edits of a line: insert, delete, replace (with JSON's own punctuation more often than
/// not), truncate, or append garbage.
fn mutate(line: &mut Vec<u8>, rng: &mut Pcg64) {
    const ALPHABET: &[u8] = b"{}[]\",:\\0123456789eE.+- tfnul\"\\";
    let edits = rng.random_range(1..4);
    for _ in 0..edits {
        let byte = if rng.random_bool(0.7) {
            *ALPHABET.choose(rng).expect("not empty")
        } else {
            rng.random()
        };
        let at = rng.random_range(0..=line.len());
        match rng.random_range(0..5) {
            0 => line.insert(at, byte),
            1 if at < line.len() => {
                line.remove(at);
            }
            2 if at < line.len() => line[at] = byte,
            3 => line.truncate(at),
            _ => line.extend_from_slice(&[b'}', b' ', b'x', b'\0'][..rng.random_range(1..4)]),
        }
    }
}

/// One random line of one of the kinds above.
fn line(seed: u64) -> Vec<u8> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let rng = &mut rng;
    match rng.random_range(0..10) {
        0..=3 => near_valid_line(rng, 0),
        4 | 5 => {
            let chaos = rng.random_range(1..=3);
            near_valid_line(rng, chaos)
        }
        6..=8 => {
            let chaos = rng.random_range(0..=1);
            let mut line = near_valid_line(rng, chaos);
            mutate(&mut line, rng);
            line
        }
        _ => {
            // A structured random object: any keys, any values.
            let keys = [
                "e", "s", "t", "p", "q", "T", "m", "B", "S", "data", "stream", "u", "x",
            ];
            let members: Vec<(String, String)> = (0..rng.random_range(0..10))
                .map(|_| {
                    let key = keys[rng.random_range(0..keys.len())].to_string();
                    (key, any_value(rng, 0))
                })
                .collect();
            object(&members, rng).into_bytes()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn the_parser_agrees_with_the_serde_json_oracle(seed in any::<u64>()) {
        for i in 0..LINES_PER_CASE as u64 {
            check(&line(seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))))?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_are_never_trades_by_accident(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        check(&bytes)?;
    }
}

/// The generator really does reach both answers, and the bounds: a fuzz test that only ever
/// saw rejects would prove little.
#[test]
fn the_lines_cover_trades_and_rejects() {
    let (mut trades, mut rejects, mut at_max) = (0, 0, 0);
    for seed in 0..4_000 {
        match trade_line(&line(seed)) {
            Some(t) => {
                trades += 1;
                if t.price == "92233720368.54775807" || t.qty == "92233720368.54775807" {
                    at_max += 1;
                }
            }
            None => rejects += 1,
        }
    }
    assert!(trades > 400, "{trades} trades");
    assert!(rejects > 2_000, "{rejects} rejects");
    assert!(at_max > 20, "{at_max} trades at the largest value");
}

/// Lines on which the two once disagreed, or that sit right on a rule's edge.
#[test]
fn known_edges_agree() {
    let spec = r#"{"e":"trade","E":1700000000125,"s":"BTCUSDT","t":123456,"p":"43250.10","q":"0.00210","b":88,"a":50,"T":1700000000123,"m":true}"#;
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for line in [
        // Accepted as a trade before lone surrogates were refused in keys of every length.
        r#"{"\u0074":2,"p":"6","\u006d":false,"aaaaaaaaaaaaaaaaa\ud800":{"":false},"":true,"\u0065":"trade","\u0071":"2","\u0073":"D","T":2}"#.to_string(),
        // Exact values that tickflow's decimal reader refuses for their spelling.
        spec.replace("\"43250.10\"", "922337203685477580.7e-7"),
        spec.replace("43250.10", "0.000000001e1"),
        spec.replace("43250.10", "1e0002"),
        spec.to_string(),
        spec.replace("\"b\":88", &format!("\"b\":{}", deep(127))),
        spec.replace("\"b\":88", &format!("\"b\":{}", deep(128))),
        format!(
            r#"{{"data":{}}}"#,
            spec.replace("\"b\":88", &format!("\"b\":{}", deep(126)))
        ),
        format!(
            r#"{{"data":{}}}"#,
            spec.replace("\"b\":88", &format!("\"b\":{}", deep(127)))
        ),
        spec.replace("43250.10", "92233720368.54775807"),
        spec.replace("43250.10", "92233720368.54775808"),
        spec.replace("\"43250.10\"", "9223372036854775807e-8"),
        spec.replace("1700000000123", "99999999999999999"),
        spec.replace("1700000000123", "100000000000000000"),
        spec.replace(
            "BTCUSDT",
            "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9X",
        ),
        spec.replace(
            "BTCUSDT",
            "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9XY",
        ),
    ] {
        check(line.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    }
}
