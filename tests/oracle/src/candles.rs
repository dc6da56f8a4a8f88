//! The candles of SPEC.md from their definition, on big integers: group by symbol and
//! window, order by `(time, trade id, price)`, take first/last/extremes and exact sums.

use std::collections::BTreeMap;

use num_bigint::BigInt;

use crate::decimal::{div_round_half_away, render, Written};

/// Fractional digits of prices and quantities.
const DIGITS: u32 = 8;

/// One trade as the oracle sees it: prices and quantities are read from decimal text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trade {
    /// Trading pair.
    pub symbol: String,
    /// Venue trade id.
    pub id: u64,
    /// Event time, ms since the epoch.
    pub time_ms: u64,
    /// Price in units of `10^-8`.
    price: BigInt,
    /// Quantity in units of `10^-8`.
    qty: BigInt,
}

impl Trade {
    /// A trade whose price and quantity are decimal strings (`"43250.1"`, `"0.0021"`, ...)
    /// holding a whole number of `10^-8` units.
    pub fn new(
        symbol: &str,
        id: u64,
        price: &str,
        qty: &str,
        time_ms: u64,
    ) -> Result<Trade, String> {
        let units = |text: &str| {
            Written::parse(text)
                .ok_or_else(|| format!("not a decimal: {text:?}"))?
                .units(DIGITS)
                .map_err(|why| format!("{text:?} is not a whole number of 10^-8: {why:?}"))
        };
        Ok(Trade {
            symbol: symbol.to_string(),
            id,
            time_ms,
            price: units(price)?,
            qty: units(qty)?,
        })
    }
}

/// One row of the `candles` table, every value rendered as tickflow renders decimals.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candle {
    /// Trading pair.
    pub symbol: String,
    /// Window size, ms.
    pub window_ms: u64,
    /// Window start, ms, aligned to the epoch.
    pub start_ms: u64,
    /// Price of the least trade by `(time, id, price)`.
    pub open: String,
    /// Highest price.
    pub high: String,
    /// Lowest price.
    pub low: String,
    /// Price of the greatest trade by `(time, id, price)`.
    pub close: String,
    /// `Σq`, 8 fractional digits.
    pub volume: String,
    /// `Σp·q`, all 16 fractional digits.
    pub quote_volume: String,
    /// `Σp·q / Σq` rounded half away from zero to 8 digits; `None` for a zero volume.
    pub vwap: Option<String>,
    /// Number of trades.
    pub trades: u64,
}

impl Candle {
    /// The row as text in the table's column order; a missing VWAP is `"NULL"`.
    pub fn row(&self) -> Vec<String> {
        vec![
            self.symbol.clone(),
            self.window_ms.to_string(),
            self.start_ms.to_string(),
            self.open.clone(),
            self.high.clone(),
            self.low.clone(),
            self.close.clone(),
            self.volume.clone(),
            self.quote_volume.clone(),
            self.vwap.clone().unwrap_or_else(|| "NULL".into()),
            self.trades.to_string(),
        ]
    }
}

/// The candle of every symbol and every tumbling window of `window_sizes` (ms) that holds a
/// trade, sorted by `(symbol, window, start)`. Every trade given counts: removing duplicates is
/// the source's job, not this definition's.
pub fn candles(trades: &[Trade], window_sizes: &[u64]) -> Vec<Candle> {
    let mut groups: BTreeMap<(&str, u64, u64), Vec<&Trade>> = BTreeMap::new();
    for trade in trades {
        for &size in window_sizes {
            assert!(size > 0, "a window has a positive size");
            let start = trade.time_ms - trade.time_ms % size;
            groups
                .entry((&trade.symbol, size, start))
                .or_default()
                .push(trade);
        }
    }
    groups
        .into_iter()
        .map(|((symbol, window_ms, start_ms), mut group)| {
            group.sort_by(|a, b| (a.time_ms, a.id, &a.price).cmp(&(b.time_ms, b.id, &b.price)));
            let prices = || group.iter().map(|t| &t.price);
            let high = prices().max().expect("a group is never empty");
            let low = prices().min().expect("a group is never empty");
            let volume: BigInt = group.iter().map(|t| &t.qty).sum();
            let quote_volume: BigInt = group.iter().map(|t| &t.price * &t.qty).sum();
            // (Q · 10^-16) / (V · 10^-8) = (Q / V) · 10^-8.
            let vwap = div_round_half_away(&quote_volume, &volume);
            Candle {
                symbol: symbol.to_string(),
                window_ms,
                start_ms,
                open: render(&group[0].price, DIGITS),
                high: render(high, DIGITS),
                low: render(low, DIGITS),
                close: render(&group[group.len() - 1].price, DIGITS),
                volume: render(&volume, DIGITS),
                quote_volume: render(&quote_volume, 2 * DIGITS),
                vwap: vwap.map(|v| render(&v, DIGITS)),
                trades: group.len() as u64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(symbol: &str, id: u64, price: &str, qty: &str, time_ms: u64) -> Trade {
        Trade::new(symbol, id, price, qty, time_ms).expect("valid trade")
    }

    #[test]
    fn one_window_by_hand() {
        // Arrival order is not time order; two trades tie on time 1005 and are ordered by id.
        let trades = [
            trade("BTCUSDT", 3, "43250.10", "0.5", 1005),
            trade("BTCUSDT", 1, "43000", "0.25", 1000),
            trade("BTCUSDT", 2, "43500.5", "0.00000001", 1005),
            trade("BTCUSDT", 4, "42999.99999999", "1", 1999),
        ];
        let rows = candles(&trades, &[1000]);
        assert_eq!(rows.len(), 1);
        // Σq = 0.5 + 0.25 + 0.00000001 + 1 = 1.75000001
        // Σp·q = 21625.05 + 10750 + 0.000435005 + 42999.99999999 = 75375.050434995
        // vwap = 75375.050434995 / 1.75000001 = 43071.45714530310... → 43071.4571453
        assert_eq!(
            rows[0].row(),
            [
                "BTCUSDT",
                "1000",
                "1000",
                "43000",
                "43500.5",
                "42999.99999999",
                "42999.99999999",
                "1.75000001",
                "75375.050434995",
                "43071.4571453",
                "4"
            ]
        );
    }

    #[test]
    fn windows_align_to_the_epoch_and_symbols_stay_apart() {
        let trades = [
            trade("ETHUSDT", 1, "2", "3", 59_999),
            trade("ETHUSDT", 2, "4", "1", 60_000),
            trade("BTCUSDT", 1, "1", "1", 60_001),
        ];
        let keys: Vec<(String, u64, u64, u64)> = candles(&trades, &[60_000, 1_000])
            .into_iter()
            .map(|c| (c.symbol, c.window_ms, c.start_ms, c.trades))
            .collect();
        assert_eq!(
            keys,
            [
                ("BTCUSDT".into(), 1_000, 60_000, 1),
                ("BTCUSDT".into(), 60_000, 60_000, 1),
                ("ETHUSDT".into(), 1_000, 59_000, 1),
                ("ETHUSDT".into(), 1_000, 60_000, 1),
                ("ETHUSDT".into(), 60_000, 0, 1),
                ("ETHUSDT".into(), 60_000, 60_000, 1),
            ]
        );
    }

    #[test]
    fn conflicting_copies_open_low_and_close_high() {
        // Same id and time, different prices: open takes the lower, close the higher, and
        // both copies count.
        let trades = [
            trade("X", 7, "10.5", "1", 50),
            trade("X", 7, "10.25", "1", 50),
            trade("X", 7, "10.5", "1", 50),
        ];
        let c = &candles(&trades, &[100])[0];
        assert_eq!((c.open.as_str(), c.close.as_str()), ("10.25", "10.5"));
        assert_eq!((c.volume.as_str(), c.trades), ("3", 3));
        // 31.25 / 3 = 10.41666666... → 10.41666667
        assert_eq!(c.vwap.as_deref(), Some("10.41666667"));
    }

    #[test]
    fn sums_at_the_bounds() {
        // Three trades at price = quantity = i64::MAX units: values computed by hand
        // (92233720368.54775807² · 3, exactly).
        let max = "92233720368.54775807";
        let trades: Vec<Trade> = (1..=3)
            .map(|id| trade("BTCUSDT", id, max, max, 7))
            .collect();
        let c = &candles(&trades, &[1_000])[0];
        assert_eq!(c.quote_volume, "25521177519070384754219.0723352697503747");
        assert_eq!(c.volume, "276701161105.64327421");
        assert_eq!(c.vwap.as_deref(), Some(max));
        assert_eq!(
            (c.open.as_str(), c.high.as_str(), c.low.as_str()),
            (max, max, max)
        );
        // The smallest unit: 10^-8 · 10^-8 = 10^-16.
        let tiny = candles(&[trade("A", 1, "0.00000001", "0.00000001", 0)], &[1]);
        assert_eq!(tiny[0].quote_volume, "0.0000000000000001");
        assert_eq!(tiny[0].vwap.as_deref(), Some("0.00000001"));
    }

    #[test]
    fn vwap_rounds_half_away_from_zero() {
        // Σp·q = 0.00000001·1 + 0.00000002·1 = 0.00000003, Σq = 2 → 0.000000015 → 0.00000002.
        let trades = [
            trade("A", 1, "0.00000001", "1", 0),
            trade("A", 2, "0.00000002", "1", 0),
        ];
        assert_eq!(
            candles(&trades, &[10])[0].vwap.as_deref(),
            Some("0.00000002")
        );
    }

    #[test]
    fn refuses_what_is_not_an_8_digit_decimal() {
        assert!(Trade::new("A", 1, "0.000000001", "1", 0).is_err());
        assert!(Trade::new("A", 1, "1", "abc", 0).is_err());
        assert!(Trade::new("A", 1, "1", "1", 0).is_ok());
    }
}
