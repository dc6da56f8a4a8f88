//! Plain sequential definitions of what the dataflows compute, written for clarity rather
//! than speed, as the independent reference of the property tests.

use std::collections::BTreeMap;

use tickflow_operators::model::{Candle, QuoteVolume, Symbol, Trade, Volume};

/// The candles of SPEC.md computed directly from their definition: group the trades by
/// symbol and window, sort each group by `(time, id)`, take first/last/extremes and sums.
/// Sorted by `(symbol, window, start)`.
pub fn candles(trades: &[Trade], window_sizes: &[u64]) -> Vec<Candle> {
    let mut groups: BTreeMap<(Symbol, u64, u64), Vec<&Trade>> = BTreeMap::new();
    for trade in trades {
        for &size in window_sizes {
            let start = trade.time_ms / size * size;
            groups
                .entry((trade.symbol, size, start))
                .or_default()
                .push(trade);
        }
    }
    groups
        .into_iter()
        .map(|((symbol, window_ms, start_ms), mut group)| {
            group.sort_by_key(|t| (t.time_ms, t.id, t.price));
            let volume = Volume::from_fixed_sum(group.iter().map(|t| t.qty));
            let quote_volume = QuoteVolume::sum_products(group.iter().map(|t| (t.price, t.qty)));
            Candle {
                symbol,
                window_ms,
                start_ms,
                open: group[0].price,
                high: group.iter().map(|t| t.price).max().unwrap_or_default(),
                low: group.iter().map(|t| t.price).min().unwrap_or_default(),
                close: group[group.len() - 1].price,
                volume,
                quote_volume: Some(quote_volume),
                vwap: quote_volume.div_volume(volume),
                trades: Some(group.len() as u64),
            }
        })
        .collect()
}
