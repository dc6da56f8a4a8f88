//! Robust statistics over small samples, and the JSON evidence writer.

use std::fmt::Write;

/// `1 / Φ⁻¹(3/4)`: the factor that makes the MAD of a normal sample estimate its σ.
pub(crate) const MAD_TO_SIGMA: f64 = 1.4826;

/// Median of a sorted, non-empty slice (the mean of the two middle values when even).
pub(crate) fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Median and median absolute deviation of `values` (sorted in place; `scratch` reused).
/// `(NaN, NaN)` when empty.
pub(crate) fn median_mad(values: &mut [f64], scratch: &mut Vec<f64>) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_unstable_by(f64::total_cmp);
    let median = median_sorted(values);
    scratch.clear();
    scratch.extend(values.iter().map(|v| (v - median).abs()));
    scratch.sort_unstable_by(f64::total_cmp);
    (median, median_sorted(scratch))
}

/// A JSON object written key by key, so the key order is the order of the calls.
#[derive(Debug)]
pub(crate) struct Details(String);

impl Details {
    pub(crate) fn new() -> Details {
        Details(String::from("{"))
    }

    fn key(&mut self, key: &str) -> &mut String {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        // Keys are fixed identifiers: no escaping needed.
        let _ = write!(self.0, "\"{key}\":");
        &mut self.0
    }

    /// A float; `null` when not finite (JSON has no NaN).
    pub(crate) fn num(mut self, key: &str, value: f64) -> Details {
        let out = self.key(key);
        if value.is_finite() {
            let _ = write!(out, "{value}");
        } else {
            out.push_str("null");
        }
        self
    }

    /// An integer.
    pub(crate) fn int(mut self, key: &str, value: u64) -> Details {
        let _ = write!(self.key(key), "{value}");
        self
    }

    /// A decimal written as a JSON string, as the tables hold them (exact).
    pub(crate) fn decimal(mut self, key: &str, value: impl std::fmt::Display) -> Details {
        let _ = write!(self.key(key), "\"{value}\"");
        self
    }

    /// A list of integers.
    pub(crate) fn ints(mut self, key: &str, values: impl IntoIterator<Item = u64>) -> Details {
        let out = self.key(key);
        out.push('[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{v}");
        }
        out.push(']');
        self
    }

    pub(crate) fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_of_small_samples() {
        let mut scratch = Vec::new();
        assert_eq!(median_mad(&mut [3.0, 1.0, 2.0], &mut scratch), (2.0, 1.0));
        assert_eq!(
            median_mad(&mut [1.0, 2.0, 4.0, 10.0], &mut scratch),
            (3.0, 1.5)
        );
        let details = Details::new()
            .ints("trade_ids", [1, 2])
            .num("x", 0.5)
            .num("nan", f64::NAN)
            .decimal("p", "1.5")
            .finish();
        assert_eq!(
            details,
            r#"{"trade_ids":[1,2],"x":0.5,"nan":null,"p":"1.5"}"#
        );
    }
}
