//! OHLCV candles: the exact accumulator and the finished row.

use serde::{Deserialize, Serialize};

use super::{Fixed, QuoteVolume, Symbol, Trade, Volume};

/// The running aggregate of the trades of one symbol in one window.
///
/// Accumulators merge associatively and commutatively, so partial aggregates built on any
/// worker, in any arrival order, combine into the same result: that is what makes the candle
/// tables identical whatever the parallelism. `open`/`close` are decided by the order
/// `(time, trade id, price)`, never by arrival: two conflicting copies of one trade (same id
/// and time, different prices) give the same candle whichever comes first. Fields after the
/// price cannot change a candle, so the order need not look at them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandleAcc {
    /// `(time, id, price)` of the earliest trade: the least by that order.
    pub open: (u64, u64, Fixed),
    /// `(time, id, price)` of the latest trade: the greatest by that order.
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
            open: (u64::MAX, u64::MAX, Fixed(i64::MAX)),
            close: (0, 0, Fixed(i64::MIN)),
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
        self.open = self.open.min(key);
        self.close = self.close.max(key);
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
        self.open = self.open.min(other.open);
        self.close = self.close.max(other.close);
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
    /// Price of the earliest trade (ties: smallest trade id, then lowest price).
    pub open: Fixed,
    /// Highest price.
    pub high: Fixed,
    /// Lowest price.
    pub low: Fixed,
    /// Price of the latest trade (ties: largest trade id, then highest price).
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

/// A `candles` row as a sink returns it: integers, and decimals as their text.
#[derive(Debug, Clone, Default)]
pub struct StoredCandle {
    /// `symbol`.
    pub symbol: String,
    /// `window_ms`.
    pub window_ms: i64,
    /// `start_ms`.
    pub start_ms: i64,
    /// `open`, `high`, `low`, `close`, `volume`: decimal text.
    pub prices: [String; 5],
    /// `quote_volume`, `vwap`: decimal text or NULL.
    pub quote_volume: Option<String>,
    /// `vwap`.
    pub vwap: Option<String>,
    /// `trades`.
    pub trades: Option<i64>,
}

impl StoredCandle {
    /// The candle this row stores, exactly; an error names the column that does not read
    /// back (a row another program wrote or changed).
    pub fn candle(&self) -> Result<Candle, String> {
        let at = || {
            format!(
                "candles row ({}, {}, {})",
                self.symbol, self.window_ms, self.start_ms
            )
        };
        let fixed = |name: &str, text: &str| {
            Fixed::parse(text.as_bytes()).map_err(|e| format!("{}: {name} {text:?}: {e}", at()))
        };
        let [open, high, low, close, volume] = &self.prices;
        let symbol =
            Symbol::new(&self.symbol).ok_or_else(|| format!("{}: symbol too long", at()))?;
        let unsigned =
            |name: &str, v: i64| u64::try_from(v).map_err(|_| format!("{}: negative {name}", at()));
        Ok(Candle {
            symbol,
            window_ms: unsigned("window_ms", self.window_ms)?,
            start_ms: unsigned("start_ms", self.start_ms)?,
            open: fixed("open", open)?,
            high: fixed("high", high)?,
            low: fixed("low", low)?,
            close: fixed("close", close)?,
            volume: Volume::parse(volume.as_bytes())
                .map_err(|e| format!("{}: volume {volume:?}: {e}", at()))?,
            quote_volume: self
                .quote_volume
                .as_deref()
                .map(|q| {
                    QuoteVolume::parse(q.as_bytes())
                        .map_err(|e| format!("{}: quote_volume {q:?}: {e}", at()))
                })
                .transpose()?,
            vwap: self.vwap.as_deref().map(|v| fixed("vwap", v)).transpose()?,
            trades: self.trades.map(|t| unsigned("trades", t)).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(id: u64, time_ms: u64, price: i64) -> Trade {
        Trade {
            symbol: Symbol::new("BTCUSDT").expect("short"),
            id,
            price: Fixed(price),
            qty: Fixed(100_000_000),
            time_ms,
            buyer_maker: false,
            buyer: None,
            seller: None,
        }
    }

    #[test]
    fn conflicting_copies_give_one_candle_in_any_order() {
        // Two copies of trade 7 at the same time with different prices, first and last.
        let trades = [
            trade(7, 1_000, 300),
            trade(8, 1_500, 500),
            trade(7, 1_000, 200),
            trade(9, 1_999, 400),
            trade(9, 1_999, 600),
        ];
        let mut orders = vec![trades.to_vec()];
        let mut reversed = trades.to_vec();
        reversed.reverse();
        orders.push(reversed);
        orders.push(vec![trades[2], trades[4], trades[0], trades[1], trades[3]]);
        let symbol = trades[0].symbol;
        let candles: Vec<Candle> = orders
            .iter()
            .map(|order| {
                let mut acc = CandleAcc::default();
                order.iter().for_each(|t| acc.add(t));
                acc.finish(symbol, 1_000, 1_000).expect("trades")
            })
            .collect();
        assert!(candles.iter().all(|c| *c == candles[0]), "{candles:?}");
        // open: the lower price of the two copies of (1000, 7); close: the higher of (1999, 9).
        assert_eq!(
            (candles[0].open, candles[0].close),
            (Fixed(200), Fixed(600))
        );
        // Merging partials split any way gives the same.
        let (mut left, mut right) = (CandleAcc::default(), CandleAcc::default());
        trades[..3].iter().for_each(|t| left.add(t));
        trades[3..].iter().for_each(|t| right.add(t));
        right.merge(&left);
        assert_eq!(right.finish(symbol, 1_000, 1_000), Some(candles[0]));
    }
}
