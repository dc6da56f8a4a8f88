//! OHLCV candles: the exact accumulator and the finished row.

use serde::{Deserialize, Serialize};

use super::{Fixed, QuoteVolume, Symbol, Trade, Volume};

/// The running aggregate of the trades of one symbol in one window.
///
/// Accumulators merge associatively and commutatively, so partial aggregates built on any
/// worker, in any arrival order, combine into the same result: that is what makes the candle
/// tables identical whatever the parallelism. `open`/`close` are decided by the total order
/// `(time, trade id)`, never by arrival.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandleAcc {
    /// `(time, id, price)` of the earliest trade.
    pub open: (u64, u64, Fixed),
    /// `(time, id, price)` of the latest trade.
    pub close: (u64, u64, Fixed),
    /// Highest price.
    pub high: Fixed,
    /// Lowest price.
    pub low: Fixed,
    /// `Σq`.
    pub volume: Volume,
    /// `Σp·q`.
    pub quote_volume: QuoteVolume,
    /// Number of trades.
    pub trades: u64,
}

impl Default for CandleAcc {
    fn default() -> Self {
        CandleAcc {
            open: (u64::MAX, u64::MAX, Fixed::ZERO),
            close: (0, 0, Fixed::ZERO),
            high: Fixed(i64::MIN),
            low: Fixed(i64::MAX),
            volume: Volume::ZERO,
            quote_volume: QuoteVolume::ZERO,
            trades: 0,
        }
    }
}

impl CandleAcc {
    /// Adds one trade.
    #[inline]
    pub fn add(&mut self, trade: &Trade) {
        let key = (trade.time_ms, trade.id, trade.price);
        if (key.0, key.1) < (self.open.0, self.open.1) {
            self.open = key;
        }
        if (key.0, key.1) >= (self.close.0, self.close.1) {
            self.close = key;
        }
        self.high = self.high.max(trade.price);
        self.low = self.low.min(trade.price);
        self.volume += Volume::from_fixed(trade.qty);
        self.quote_volume += QuoteVolume::product(trade.price, trade.qty);
        self.trades += 1;
    }

    /// Folds another partial aggregate of the same symbol and window into this one.
    #[inline]
    pub fn merge(&mut self, other: &CandleAcc) {
        if other.trades == 0 {
            return;
        }
        if (other.open.0, other.open.1) < (self.open.0, self.open.1) {
            self.open = other.open;
        }
        if (other.close.0, other.close.1) >= (self.close.0, self.close.1) {
            self.close = other.close;
        }
        self.high = self.high.max(other.high);
        self.low = self.low.min(other.low);
        self.volume += other.volume;
        self.quote_volume += other.quote_volume;
        self.trades += other.trades;
    }

    /// The finished candle; `None` when no trade was added.
    pub fn finish(&self, symbol: Symbol, window_ms: u64, start_ms: u64) -> Option<Candle> {
        (self.trades > 0).then(|| Candle {
            symbol,
            window_ms,
            start_ms,
            open: self.open.2,
            high: self.high,
            low: self.low,
            close: self.close.2,
            volume: self.volume,
            quote_volume: Some(self.quote_volume),
            vwap: self.quote_volume.div_volume(self.volume),
            trades: Some(self.trades),
        })
    }
}

/// One row of the `candles` table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Candle {
    /// Trading pair.
    pub symbol: Symbol,
    /// Window size.
    pub window_ms: u64,
    /// Window start, aligned to the epoch: the window is `[start_ms, start_ms + window_ms)`.
    pub start_ms: u64,
    /// Price of the earliest trade (ties: smallest trade id).
    pub open: Fixed,
    /// Highest price.
    pub high: Fixed,
    /// Lowest price.
    pub low: Fixed,
    /// Price of the latest trade (ties: largest trade id).
    pub close: Fixed,
    /// `Σq`.
    pub volume: Volume,
    /// `Σp·q`; unknown for candles read from a candle file.
    pub quote_volume: Option<QuoteVolume>,
    /// `quote_volume / volume`, rounded half away from zero to 8 digits; unknown when the
    /// volume is zero or the quote volume is unknown.
    pub vwap: Option<Fixed>,
    /// Number of trades; unknown for candles read from a candle file.
    pub trades: Option<u64>,
}
