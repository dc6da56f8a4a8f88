//! Exact incremental least squares: sufficient statistics as a differential dataflow
//! difference type ([`Stats`]), and the solve from them ([`fit`]).
//!
//! A sample enters a collection as its statistics and leaves it as their negation, so a
//! sliding window of `N` samples costs one addition per sample that enters and one per
//! sample that leaves, whatever `N` is; the integers make the sums exact, so retracting
//! returns them bit for bit. Solving is separate and cheap (`d × d`, `d` ≤ 64).

mod solve;
mod stats;

pub use solve::{fit, Fit, Status, ILL_CONDITIONED};
pub use stats::{SampleError, Stats, LIMIT, MAX_FEATURES, SCALE};

#[cfg(test)]
mod tests;
