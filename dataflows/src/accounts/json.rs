//! A tiny JSON object writer for alert `details`: keys in the order written.

use std::fmt::Write;

/// Builds `{"key":value,...}` with keys in insertion order.
#[derive(Debug)]
pub(crate) struct Details {
    text: String,
}

impl Details {
    pub(crate) fn new() -> Details {
        Details {
            text: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        string(&mut self.text, key);
        self.text.push(':');
    }

    /// A string value, escaped.
    pub(crate) fn str(mut self, key: &str, value: &str) -> Details {
        self.key(key);
        string(&mut self.text, value);
        self
    }

    /// A number or other literal, written as is (finite numbers only).
    pub(crate) fn raw(mut self, key: &str, value: impl std::fmt::Display) -> Details {
        self.key(key);
        let _ = write!(self.text, "{value}");
        self
    }

    /// A float; non-finite values become `null`.
    pub(crate) fn float(self, key: &str, value: f64) -> Details {
        if value.is_finite() {
            self.raw(key, value)
        } else {
            self.raw(key, "null")
        }
    }

    /// An array of numbers.
    pub(crate) fn ids(mut self, key: &str, ids: &[u64]) -> Details {
        self.key(key);
        self.text.push('[');
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            let _ = write!(self.text, "{id}");
        }
        self.text.push(']');
        self
    }

    /// An array of strings.
    pub(crate) fn strs<'a>(
        mut self,
        key: &str,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Details {
        self.key(key);
        self.text.push('[');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            string(&mut self.text, value);
        }
        self.text.push(']');
        self
    }

    pub(crate) fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// Appends `value` as a JSON string literal.
fn string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_keys_in_order_and_escapes() {
        let text = Details::new()
            .ids("trade_ids", &[1, 2])
            .str("account", "a\"b\u{1}")
            .float("x", f64::NAN)
            .raw("n", 3)
            .finish();
        assert_eq!(
            text,
            r#"{"trade_ids":[1,2],"account":"a\"b\u0001","x":null,"n":3}"#
        );
    }
}
