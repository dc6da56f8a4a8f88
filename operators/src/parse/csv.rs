//! Splitting a CSV line into fields, borrowing from the line.

use memchr::memchr;

/// Splits `line` at commas into `out` and returns how many fields the line has, which may
/// exceed `out.len()` (the extra fields are only counted, for the column-count check).
///
/// Trailing whitespace of the line (a `'\r'` from CRLF files) and spaces or tabs around each
/// field are dropped. A field in double quotes comes back without them and may contain
/// commas; a doubled quote inside stays doubled, since no column tickflow reads holds one.
pub(super) fn split<'a>(line: &'a [u8], out: &mut [&'a [u8]]) -> usize {
    let line = line.trim_ascii_end();
    let mut count = 0;
    let mut pos = 0;
    loop {
        let start = pos + leading_blanks(&line[pos..]);
        let (field, next) = if line.get(start) == Some(&b'"') {
            quoted(line, start + 1)
        } else {
            match memchr(b',', &line[start..]) {
                Some(k) => (trim_blanks(&line[start..start + k]), Some(start + k + 1)),
                None => (trim_blanks(&line[start..]), None),
            }
        };
        if let Some(slot) = out.get_mut(count) {
            *slot = field;
        }
        count += 1;
        match next {
            Some(next) => pos = next,
            None => return count,
        }
    }
}

/// A quoted field whose contents start at `start`: the contents and where the next field
/// starts, if any. An unterminated quote runs to the end of the line.
fn quoted(line: &[u8], start: usize) -> (&[u8], Option<usize>) {
    let mut i = start;
    while let Some(k) = memchr(b'"', &line[i..]) {
        let close = i + k;
        if line.get(close + 1) == Some(&b'"') {
            i = close + 2;
            continue;
        }
        let next = memchr(b',', &line[close + 1..]).map(|c| close + 1 + c + 1);
        return (&line[start..close], next);
    }
    (&line[start..], None)
}

fn leading_blanks(text: &[u8]) -> usize {
    text.iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count()
}

fn trim_blanks(text: &[u8]) -> &[u8] {
    let end = text.len()
        - text
            .iter()
            .rev()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Vec<String> {
        let mut out = [&b""[..]; 12];
        let n = split(line.as_bytes(), &mut out);
        out[..n.min(12)]
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    #[test]
    fn splits_trims_and_unquotes() {
        assert_eq!(fields("a,b,c"), ["a", "b", "c"]);
        assert_eq!(fields("a, b ,c\r"), ["a", "b", "c"]);
        assert_eq!(fields("a,,c,"), ["a", "", "c", ""]);
        assert_eq!(fields(""), [""]);
        assert_eq!(fields(r#"1,"Crypto, Inc",X"#), ["1", "Crypto, Inc", "X"]);
        assert_eq!(fields(r#"1,"say ""hi""",X"#), ["1", r#"say ""hi"""#, "X"]);
        assert_eq!(fields(r#"1,"open"#), ["1", "open"]);
        let mut out = [&b""[..]; 2];
        assert_eq!(split(b"1,2,3,4", &mut out), 4);
        assert_eq!(out, [&b"1"[..], b"2"]);
    }
}
