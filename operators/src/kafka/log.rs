//! librdkafka's own log lines and client errors, through `tracing`, de-duplicated.
//!
//! While a broker is away librdkafka repeats the same complaint every reconnect attempt (and
//! every consumer of a source has its own): each distinct message is logged at most once per
//! [`REPEAT_WINDOW`] per source or producer, and the next one after the window says how many
//! repeats were suppressed in between.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;

/// The same message is logged at most once per this long.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(30);

/// Distinct messages remembered; past this, those whose window has passed are forgotten (and
/// if all are recent, all are), so an endless variety of messages cannot grow memory.
const MAX_REMEMBERED: usize = 256;

/// Decides which of a client's messages are logged.
#[derive(Debug)]
pub struct Repeats {
    window: Duration,
    seen: Mutex<HashMap<String, Seen>>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// When the message was last logged.
    logged: Instant,
    /// Repeats since then, not logged.
    suppressed: u64,
}

impl Default for Repeats {
    fn default() -> Self {
        Repeats::new(REPEAT_WINDOW)
    }
}

impl Repeats {
    /// Logs each message at most once per `window`.
    pub fn new(window: Duration) -> Repeats {
        Repeats {
            window,
            seen: Mutex::default(),
        }
    }

    /// `Some(text)` when `message`, seen at `now`, is to be logged, with a note of the
    /// repeats suppressed since it was last logged; `None` while it is a repeat within the
    /// window.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tickflow_operators::kafka::Repeats;
    /// let repeats = Repeats::new(Duration::from_secs(30));
    /// let t = Instant::now();
    /// assert_eq!(repeats.admit("down", t).as_deref(), Some("down"));
    /// assert_eq!(repeats.admit("down", t + Duration::from_secs(1)), None);
    /// assert_eq!(
    ///     repeats.admit("down", t + Duration::from_secs(31)).as_deref(),
    ///     Some("down (repeated 1 times in 31 s)")
    /// );
    /// ```
    pub fn admit(&self, message: &str, now: Instant) -> Option<String> {
        let Ok(mut seen) = self.seen.lock() else {
            return Some(message.to_owned());
        };
        let key = key(message);
        if let Some(entry) = seen.get_mut(&key) {
            let since = now.saturating_duration_since(entry.logged);
            if since < self.window {
                entry.suppressed += 1;
                return None;
            }
            let suppressed = std::mem::replace(
                entry,
                Seen {
                    logged: now,
                    suppressed: 0,
                },
            )
            .suppressed;
            return Some(if suppressed > 0 {
                format!(
                    "{message} (repeated {suppressed} times in {} s)",
                    since.as_secs()
                )
            } else {
                message.to_owned()
            });
        }
        if seen.len() >= MAX_REMEMBERED {
            let window = self.window;
            seen.retain(|_, s| now.saturating_duration_since(s.logged) < window);
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
        }
        seen.insert(
            key,
            Seen {
                logged: now,
                suppressed: 0,
            },
        );
        Some(message.to_owned())
    }

    /// Logs one of librdkafka's lines (`ClientContext::log`) unless it is a repeat.
    pub(crate) fn log(&self, client: &str, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let Some(text) = self.admit(message, Instant::now()) else {
            return;
        };
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(client, facility, "librdkafka: {text}");
            }
            RDKafkaLogLevel::Warning => tracing::warn!(client, facility, "librdkafka: {text}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(client, facility, "librdkafka: {text}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(client, facility, "librdkafka: {text}"),
        }
    }

    /// Logs a client error (`ClientContext::error`) unless it is a repeat.
    pub(crate) fn error(&self, client: &str, error: &rdkafka::error::KafkaError, reason: &str) {
        if let Some(text) = self.admit(&format!("{error}: {reason}"), Instant::now()) {
            tracing::warn!(client, "kafka client: {text}");
        }
    }
}

/// What makes two messages the same: their words, not their numbers. librdkafka counts in
/// its messages ("1/1 brokers are down", then "2/2 …"; "… (after 12ms in state CONNECT, 3
/// identical error(s) suppressed)"), and the same complaint comes for every partition and
/// broker of a client: those are repeats of one message, each run of digits standing for any
/// number. The ending in parentheses after " (after " is librdkafka's own note and is ignored.
fn key(message: &str) -> String {
    let words = message
        .find(" (after ")
        .map_or(message, |at| &message[..at]);
    let mut key = String::with_capacity(words.len());
    for c in words.chars() {
        if !c.is_ascii_digit() {
            key.push(c);
        } else if !key.ends_with('#') {
            key.push('#');
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_message_is_logged_once_per_window_with_the_count_of_repeats() {
        let repeats = Repeats::new(Duration::from_secs(30));
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        let down = "1/1 brokers are down";
        assert_eq!(repeats.admit(down, at(0)).as_deref(), Some(down));
        // Twelve repeats within the window: none logged.
        for s in 1..=12 {
            assert_eq!(repeats.admit(down, at(s)), None, "repeat at {s} s");
        }
        // Another message is not a repeat of the first.
        let other = "Connect to ipv4#127.0.0.1:9092 failed: Connection refused";
        assert_eq!(repeats.admit(other, at(5)).as_deref(), Some(other));
        // The first one after the window says how many were suppressed.
        assert_eq!(
            repeats.admit(down, at(30)).as_deref(),
            Some("1/1 brokers are down (repeated 12 times in 30 s)")
        );
        // And the window starts again from there.
        assert_eq!(repeats.admit(down, at(45)), None);
        assert_eq!(
            repeats.admit(down, at(61)).as_deref(),
            Some("1/1 brokers are down (repeated 1 times in 31 s)")
        );
        // A message not repeated within the window is logged plainly.
        assert_eq!(repeats.admit(down, at(200)).as_deref(), Some(down));
    }

    #[test]
    fn librdkafkas_own_counters_do_not_make_a_message_new() {
        let repeats = Repeats::new(Duration::from_secs(30));
        let t = Instant::now();
        let first = "127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)";
        let again = "127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 1ms in state CONNECT, 4 identical error(s) suppressed)";
        assert!(repeats.admit(first, t).is_some());
        assert_eq!(repeats.admit(again, t + Duration::from_secs(2)), None);
        assert!(repeats.admit("1/1 brokers are down", t).is_some());
        assert_eq!(repeats.admit("2/2 brokers are down", t), None);
        assert!(repeats
            .admit("kafka fetch (partition 0): Broker: Not leader", t)
            .is_some());
        assert_eq!(
            repeats.admit("kafka fetch (partition 3): Broker: Not leader", t),
            None
        );
    }

    #[test]
    fn endless_distinct_messages_do_not_grow_memory() {
        let repeats = Repeats::new(Duration::from_secs(30));
        let t = Instant::now();
        // Distinct in their words, as an invented topic name would make them.
        for i in 0..10_000u32 {
            let word: String = i
                .to_string()
                .chars()
                .map(|d| (b'a' + d as u8 - b'0') as char)
                .collect();
            assert!(repeats.admit(&format!("message {word}"), t).is_some());
        }
        let remembered = repeats.seen.lock().map(|s| s.len()).unwrap_or(usize::MAX);
        assert!(remembered <= MAX_REMEMBERED, "{remembered} remembered");
    }
}
