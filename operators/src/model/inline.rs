//! A short string held inline, for symbols and account ids.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest [`InlineStr`], in bytes.
pub const INLINE_CAPACITY: usize = 23;

/// A UTF-8 string of at most [`INLINE_CAPACITY`] bytes, stored inline: copying one costs no
/// allocation, which matters on the per-trade path.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InlineStr {
    len: u8,
    bytes: [u8; INLINE_CAPACITY],
}

/// A trading pair, such as `BTCUSDT`.
pub type Symbol = InlineStr;
/// A venue account id (the optional `B`/`S` fields).
pub type Account = InlineStr;

impl InlineStr {
    /// The string, or `None` when it is longer than [`INLINE_CAPACITY`].
    #[inline]
    pub fn new(text: &str) -> Option<InlineStr> {
        InlineStr::from_checked_utf8(text.as_bytes())
    }

    /// From bytes the caller has already checked to be UTF-8 (a parser that validated its
    /// line), without checking again; `None` when too long. (Bytes that were not UTF-8
    /// after all read back lossily, see [`InlineStr::as_str`].)
    #[inline]
    pub(crate) fn from_checked_utf8(text: &[u8]) -> Option<InlineStr> {
        let len = text.len();
        if len > INLINE_CAPACITY {
            return None;
        }
        let mut bytes = [0u8; INLINE_CAPACITY];
        bytes[..len].copy_from_slice(text);
        Some(InlineStr {
            len: len as u8,
            bytes,
        })
    }

    /// Like [`InlineStr::new`], for bytes already checked to be UTF-8 by the caller's parser;
    /// `None` when too long or not UTF-8.
    #[inline]
    pub fn from_utf8(bytes: &[u8]) -> Option<InlineStr> {
        std::str::from_utf8(bytes).ok().and_then(InlineStr::new)
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        // The constructors only accept `&str` input, so the bytes are valid UTF-8; a value
        // produced by deserialization from untrusted bytes is rendered lossily instead.
        std::str::from_utf8(&self.bytes[..usize::from(self.len).min(INLINE_CAPACITY)])
            .unwrap_or("\u{FFFD}")
    }

    /// A hash that is the same in every process and run, for routing data between workers.
    #[inline]
    pub fn stable_hash(&self) -> u64 {
        // The bytes as they are: the same as hashing `as_str()`, without checking UTF-8 on a
        // path that routes every trade.
        crate::hash::stable_hash(&self.bytes[..usize::from(self.len)])
    }

    /// Whether it is the empty string.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Ord for InlineStr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for InlineStr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bounds_length() {
        let s = InlineStr::new("BTCUSDT").expect("short");
        assert_eq!(s.as_str(), "BTCUSDT");
        assert_eq!(format!("{s:?}"), "\"BTCUSDT\"");
        assert!(InlineStr::new(&"x".repeat(INLINE_CAPACITY)).is_some());
        assert!(InlineStr::new(&"x".repeat(INLINE_CAPACITY + 1)).is_none());
        assert!(InlineStr::from_utf8(b"\xff").is_none());
        assert!(InlineStr::new("B") < InlineStr::new("BA"));
        assert!(InlineStr::new("AB") < InlineStr::new("B"));
    }
}
