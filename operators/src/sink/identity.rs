//! What a source's stored results were made from, and the check that a restart continues the
//! same run.
//!
//! Stored progress is only valid for the input and the settings that produced it: resuming a
//! replaced file, or the same file with other windows, would mix two runs in one table. Every
//! run of a resumable source therefore stores its [`Identity`] next to its progress, and a
//! restart compares its own with the stored one before it reads anything.

use crate::hash::StableHasher;

/// The source and the settings that determine a run's results, as named values in a fixed
/// order, and their fingerprint: [`crate::hash::stable_hash`] over the length-prefixed keys
/// and values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    entries: Vec<(String, String)>,
}

impl Identity {
    /// An empty identity.
    pub fn new() -> Identity {
        Identity::default()
    }

    /// Adds a named value; `key` is a short dotted name such as `file.size` or `windows`.
    pub fn with(mut self, key: &str, value: impl ToString) -> Identity {
        self.entries.push((key.to_owned(), value.to_string()));
        self
    }

    /// The named values, in order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The fingerprint, 16 hex digits.
    ///
    /// ```
    /// use tickflow_operators::sink::Identity;
    /// let a = Identity::new().with("windows", "1s,1m");
    /// let b = Identity::new().with("windows", "1s,5m");
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// assert_eq!(a.fingerprint(), Identity::new().with("windows", "1s,1m").fingerprint());
    /// ```
    pub fn fingerprint(&self) -> String {
        let mut hasher = StableHasher::new();
        for (key, value) in &self.entries {
            hasher.field(key.as_bytes()).field(value.as_bytes());
        }
        format!("{:016x}", hasher.finish())
    }

    /// One `key=value` line per entry (newlines in values escaped), for the sink.
    pub fn to_text(&self) -> String {
        self.entries
            .iter()
            .map(|(k, v)| format!("{k}={}\n", v.replace('\\', "\\\\").replace('\n', "\\n")))
            .collect()
    }

    /// Reads [`Identity::to_text`] back.
    pub fn from_text(text: &str) -> Identity {
        let entries = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), unescape(v)))
            .collect();
        Identity { entries }
    }

    /// What differs from `earlier`, one `key: old → new` line per key, for a person.
    pub fn changes_since(&self, earlier: &Identity) -> Vec<String> {
        let find = |identity: &Identity, key: &str| {
            identity
                .entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let mut keys: Vec<&str> = earlier.entries.iter().map(|(k, _)| k.as_str()).collect();
        for (key, _) in &self.entries {
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
        keys.into_iter()
            .filter_map(|key| {
                let (old, new) = (find(earlier, key), find(self, key));
                (old != new).then(|| {
                    let show = |v: Option<String>| v.unwrap_or_else(|| "(none)".to_owned());
                    format!("{key}: {} → {}", show(old), show(new))
                })
            })
            .collect()
    }
}

/// Why `--fresh` cannot discard `source`'s results in `sink`: other sources wrote into the
/// same tables.
pub fn refuse_discard(sink: &str, source: &str, others: &[String]) -> String {
    format!(
        "--fresh: {sink} also holds the results of {}; the candles of {source} cannot be told \
         apart from theirs, so nothing was discarded. Write to another sink (--sink ...)",
        others.join(", ")
    )
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_what_changed() {
        let old = Identity::new()
            .with("source", "file:a b\\c\nd.jsonl")
            .with("file.size", 10)
            .with("windows", "1s,1m");
        assert_eq!(Identity::from_text(&old.to_text()), old);
        let new = Identity::new()
            .with("source", "file:a b\\c\nd.jsonl")
            .with("file.size", 12)
            .with("windows", "1s,1m")
            .with("lateness", "2s");
        assert_eq!(
            new.changes_since(&old),
            vec!["file.size: 10 → 12", "lateness: (none) → 2s"]
        );
        assert_ne!(new.fingerprint(), old.fingerprint());
    }
}
