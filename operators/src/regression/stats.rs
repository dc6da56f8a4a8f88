//! Sufficient statistics of least squares as a difference type: exact, so that a sample
//! added and later retracted leaves the sums bit for bit as they were.
//!
//! For samples `(x, y)` with `d` features, [`Stats`] holds `n`, `Σx`, `Σy`, the upper
//! triangle of `Σxxᵀ`, `Σxy` and `Σy²`, every one an integer: features and targets enter as
//! integers at the fixed-point scale of tickflow's decimals ([`SCALE`], 8 fractional digits),
//! so a product is exact at scale `SCALE²` and a sum of products is exact as long as it fits.
//!
//! **Range.** Every value must be below `2^80` in magnitude at that scale (about `1.2·10^16`
//! in real units: ten thousand times the largest daily volume in dollars of any market).
//! A product is then below `2^160`, and 256-bit sums hold more than `2^90` of them, so no
//! window can overflow. The solver multiplies sums by `n` once more (to centre them
//! exactly); it checks for overflow and reports it rather than wrap, which cannot happen
//! below `2^40` samples.
//!
//! Differential dataflow adds these differences as it consolidates and compacts, so a
//! collection of samples keyed by symbol accumulates to the statistics of the samples
//! present, whatever was inserted and retracted on the way ([`differential_dataflow::difference`]).

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Multiply, Semigroup};
use ethnum::I256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::model::SCALE;

/// The magnitude every feature and target must stay below, at the fixed-point scale.
pub const LIMIT: i128 = 1 << 80;

/// Why a sample cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    /// A value at or beyond [`LIMIT`].
    #[error(
        "value {value} (at scale 1e8) is beyond the range of the regression statistics (±2^80)"
    )]
    OutOfRange {
        /// The value, at the fixed-point scale.
        value: i128,
    },
    /// No features, or more than [`MAX_FEATURES`].
    #[error("{0} features: the regression takes 1 to {MAX_FEATURES}")]
    Features(usize),
}

/// The most features a model may have.
pub const MAX_FEATURES: usize = 64;

/// Exact least-squares statistics of a multiset of samples (a difference: samples are
/// added with `+`, retracted with their negation). The empty value is zero for any `d`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stats {
    /// `[n, Σx_1..Σx_d, Σy, Σx_i·x_j for i ≤ j (row by row), Σx_i·y, Σy²]`, or empty (zero).
    sums: Vec<I256>,
}

/// How many sums a model with `d` features keeps.
const fn len(d: usize) -> usize {
    3 + 2 * d + d * (d + 1) / 2
}

/// The number of features of a layout of `len` sums (the inverse of [`len`]: `len = (d² +
/// 5d + 6) / 2`, so `d = (√(8·len + 1) − 5) / 2`), 0 for the empty layout. Called for
/// every sum the solver reads, so a closed form rather than a search.
fn features_of(len: usize) -> usize {
    let d = (8 * len + 1).isqrt().saturating_sub(5) / 2;
    if self::len(d) == len {
        d
    } else {
        0
    }
}

impl Stats {
    /// The statistics of one sample: features `x` and target `y`, at the fixed-point scale.
    pub fn sample(x: &[i128], y: i128) -> Result<Stats, SampleError> {
        if x.is_empty() || x.len() > MAX_FEATURES {
            return Err(SampleError::Features(x.len()));
        }
        if let Some(&value) = x
            .iter()
            .chain([&y])
            .find(|v| !(-LIMIT < **v && **v < LIMIT))
        {
            return Err(SampleError::OutOfRange { value });
        }
        let d = x.len();
        let mut sums = Vec::with_capacity(len(d));
        sums.push(I256::ONE);
        sums.extend(x.iter().map(|&v| I256::from(v)));
        sums.push(I256::from(y));
        for i in 0..d {
            for j in i..d {
                sums.push(product(x[i], x[j]));
            }
        }
        sums.extend(x.iter().map(|&v| product(v, y)));
        sums.push(product(y, y));
        Ok(Stats { sums })
    }

    /// Whether this is zero (no samples, or samples that cancel out).
    pub fn is_empty(&self) -> bool {
        self.sums.iter().all(|s| *s == I256::ZERO)
    }

    /// The number of features, 0 for zero.
    pub fn features(&self) -> usize {
        features_of(self.sums.len())
    }

    /// The number of samples (net of retractions).
    pub fn n(&self) -> I256 {
        self.sums.first().copied().unwrap_or(I256::ZERO)
    }

    /// `Σx_i`.
    pub fn sum_x(&self, i: usize) -> I256 {
        self.sums[1 + i]
    }

    /// `Σy`.
    pub fn sum_y(&self) -> I256 {
        self.sums[1 + self.features()]
    }

    /// `Σx_i·x_j` (either order).
    pub fn sum_xx(&self, i: usize, j: usize) -> I256 {
        let d = self.features();
        let (i, j) = if i <= j { (i, j) } else { (j, i) };
        self.sums[2 + d + row_start(d, i) + (j - i)]
    }

    /// `Σx_i·y`.
    pub fn sum_xy(&self, i: usize) -> I256 {
        let d = self.features();
        self.sums[2 + d + d * (d + 1) / 2 + i]
    }

    /// `Σy²`.
    pub fn sum_yy(&self) -> I256 {
        self.sums[self.sums.len() - 1]
    }

    /// Every sum in layout order (for storing or comparing).
    pub fn sums(&self) -> &[I256] {
        &self.sums
    }
}

/// Where row `i` of the upper triangle of a `d × d` matrix starts, counted in its sums.
fn row_start(d: usize, i: usize) -> usize {
    // Σ_{k<i} (d − k) = i·d − i(i−1)/2.
    i * d - i * i.saturating_sub(1) / 2
}

fn product(a: i128, b: i128) -> I256 {
    I256::from(a) * I256::from(b)
}

impl IsZero for Stats {
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

impl Semigroup for Stats {
    fn plus_equals(&mut self, rhs: &Self) {
        if rhs.sums.is_empty() {
            return;
        }
        if self.sums.is_empty() {
            self.sums.clone_from(&rhs.sums);
            return;
        }
        // One run has one feature list, so both have the same layout; a longer one (which
        // no run makes) would only extend the sums, never mix two layouts silently.
        if self.sums.len() < rhs.sums.len() {
            self.sums.resize(rhs.sums.len(), I256::ZERO);
        }
        for (sum, add) in self.sums.iter_mut().zip(&rhs.sums) {
            *sum += *add;
        }
        if self.is_empty() {
            // Cancelled out: the canonical zero, so that equal values compare equal.
            self.sums.clear();
        }
    }
}

impl Monoid for Stats {
    fn zero() -> Self {
        Stats::default()
    }
}

impl Abelian for Stats {
    fn negate(&mut self) {
        for sum in &mut self.sums {
            *sum = -*sum;
        }
    }
}

impl Multiply<isize> for Stats {
    type Output = Stats;
    fn multiply(mut self, rhs: &isize) -> Stats {
        match *rhs {
            1 => {}
            0 => self.sums.clear(),
            -1 => self.negate(),
            k => {
                let k = I256::from(k as i128);
                for sum in &mut self.sums {
                    *sum *= k;
                }
            }
        }
        self
    }
}

// Exchanged between workers and processes: each sum as its two 128-bit words.
impl Serialize for Stats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let words: Vec<(i128, i128)> = self.sums.iter().map(|s| s.into_words()).collect();
        words.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Stats {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let words = Vec::<(i128, i128)>::deserialize(deserializer)?;
        Ok(Stats {
            sums: words
                .into_iter()
                .map(|(hi, lo)| I256::from_words(hi, lo))
                .collect(),
        })
    }
}
