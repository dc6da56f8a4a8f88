//! Event-time tumbling windows and the operators that aggregate over them.
//!
//! Timestamps in tickflow dataflows are event times in milliseconds, coarsened by sources to
//! the window set's [`Windows::granule`] (the gcd of the window sizes). A record about the
//! window `[start, end)` always travels at a time in `[start, end)`, so a window is final
//! exactly when the input frontier reaches `end`: no element of the frontier is less than
//! `end`. Both operators below rely on that one rule.
//!
//! Aggregation runs in two stages, as STYLE.md asks: [`AggregateWindows`] pre-aggregates
//! inside each worker (no data movement), and [`MergeWindows`] exchanges the partial
//! aggregates by key and merges them. Only one partial per key and window crosses workers.

mod duration;
mod operators;

pub use duration::{format_duration, parse_duration, DurationError, MAX_DURATION_MS};
pub use operators::{AggregateWindows, MergeWindows, WindowKey};

/// A set of tumbling, epoch-aligned window sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Windows {
    sizes: Vec<u64>,
    granule: u64,
}

impl Windows {
    /// Window sizes in ms; sorted and deduplicated. `None` when empty or any size is zero.
    pub fn new(mut sizes: Vec<u64>) -> Option<Windows> {
        sizes.sort_unstable();
        sizes.dedup();
        if sizes.is_empty() || sizes[0] == 0 {
            return None;
        }
        let granule = sizes.iter().fold(0, |g, &s| gcd(g, s));
        Some(Windows { sizes, granule })
    }

    /// Parses a comma-separated list such as `1s,1m` (see [`parse_duration`]).
    ///
    /// ```
    /// use tickflow_operators::window::Windows;
    /// let w = Windows::parse("1m, 1s").unwrap();
    /// assert_eq!(w.sizes(), &[1_000, 60_000]);
    /// assert_eq!(w.granule(), 1_000);
    /// ```
    pub fn parse(list: &str) -> Result<Windows, DurationError> {
        let sizes = list
            .split(',')
            .map(|part| parse_duration(part.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Windows::new(sizes).ok_or(DurationError::Zero)
    }

    /// The sizes, ascending.
    pub fn sizes(&self) -> &[u64] {
        &self.sizes
    }

    /// The same sizes, with timestamps at most `ms` apart: the granule becomes the gcd of the
    /// sizes and `ms` (0 leaves it as it is). A finer granule lets the watermark advance in
    /// smaller steps (lower latency), a coarser one means fewer distinct times.
    ///
    /// ```
    /// use tickflow_operators::window::Windows;
    /// let w = Windows::parse("1s,1m").unwrap().with_granule(100);
    /// assert_eq!((w.sizes(), w.granule()), (&[1_000, 60_000][..], 100));
    /// assert_eq!(Windows::parse("1s").unwrap().with_granule(300).granule(), 100);
    /// ```
    pub fn with_granule(mut self, ms: u64) -> Windows {
        self.granule = gcd(self.granule, ms);
        self
    }

    /// The resolution of timestamps: the gcd of the sizes (and of the granule asked for in
    /// [`Windows::with_granule`]), so that windows close exactly.
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// The timestamp a record of event time `time_ms` travels at.
    #[inline]
    pub fn coarsen(&self, time_ms: u64) -> u64 {
        time_ms - time_ms % self.granule
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granule_is_the_gcd() {
        let w = Windows::parse("1m,1s,250ms").expect("valid");
        assert_eq!(w.sizes(), &[250, 1_000, 60_000]);
        assert_eq!(w.granule(), 250);
        assert_eq!(w.coarsen(1_999), 1_750);
        assert!(Windows::parse("0s").is_err());
        assert!(Windows::parse("1s,").is_err());
    }
}
