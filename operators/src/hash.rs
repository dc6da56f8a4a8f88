//! The one stable hash of tickflow.
//!
//! Everything that must hash the same in every process, run, build and version uses
//! [`stable_hash`]: routing records to workers, the generator's per-symbol seeds, the
//! fingerprint of a run's identity, and (later) deterministic ids. It is XXH3-64 with seed 0
//! as specified by xxHash 0.8, whose output is fixed by that specification; `std`'s hashers
//! and FxHash make no such promise.

/// XXH3-64 (xxHash 0.8, seed 0) of `bytes`.
///
/// ```
/// use tickflow_operators::hash::stable_hash;
/// // The same as the reference implementation (python-xxhash's xxh3_64).
/// assert_eq!(stable_hash(b""), 0x2d06_8005_38d3_94c2);
/// assert_eq!(stable_hash(b"a"), 0xe6c6_32b6_1e96_4e1f);
/// ```
#[inline]
pub fn stable_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// A stable hash of a sequence of fields, each length-prefixed so that `("ab", "c")` and
/// `("a", "bc")` differ.
#[derive(Debug, Default, Clone)]
pub struct StableHasher {
    bytes: Vec<u8>,
}

impl StableHasher {
    /// An empty sequence.
    pub fn new() -> StableHasher {
        StableHasher::default()
    }

    /// Appends one field.
    pub fn field(&mut self, bytes: &[u8]) -> &mut StableHasher {
        self.bytes
            .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// The hash of the fields so far.
    pub fn finish(&self) -> u64 {
        stable_hash(&self.bytes)
    }
}
