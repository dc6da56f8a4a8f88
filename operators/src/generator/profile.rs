//! Per-symbol market parameters: price level, tick and lot precision, volatility, activity.

use crate::model::Symbol;

/// How one symbol trades. Prices are quoted in ticks of `10^-price_decimals` and quantities
/// in lots of `10^-qty_decimals`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub(crate) struct Profile {
    /// Price of the first trade.
    pub base_price: f64,
    /// Fractional digits of the tick size (≤ 8).
    pub price_decimals: u32,
    /// Fractional digits of the lot step (≤ 8).
    pub qty_decimals: u32,
    /// Median trade quantity (log-normal).
    pub qty_median: f64,
    /// Annualized volatility of the geometric Brownian motion.
    pub volatility: f64,
    /// Relative share of the market's trades.
    pub weight: u64,
}

const fn known(
    base_price: f64,
    price_decimals: u32,
    qty_decimals: u32,
    qty_median: f64,
    volatility: f64,
    weight: u64,
) -> Profile {
    Profile {
        base_price,
        price_decimals,
        qty_decimals,
        qty_median,
        volatility,
        weight,
    }
}

/// The default market; the order is the partition order of the default config.
pub(crate) const KNOWN: [(&str, Profile); 8] = [
    ("BTCUSDT", known(43_000.0, 2, 5, 0.005, 0.60, 30)),
    ("ETHUSDT", known(2_300.0, 2, 4, 0.08, 0.70, 20)),
    ("BNBUSDT", known(310.0, 1, 3, 0.5, 0.65, 8)),
    ("SOLUSDT", known(100.0, 2, 2, 2.0, 0.95, 12)),
    ("XRPUSDT", known(0.62, 4, 0, 300.0, 0.80, 10)),
    ("ADAUSDT", known(0.55, 4, 1, 350.0, 0.85, 6)),
    ("DOGEUSDT", known(0.085, 5, 0, 2_000.0, 1.00, 8)),
    ("AVAXUSDT", known(37.0, 2, 2, 5.0, 0.95, 6)),
];

/// Weight of a symbol that is not in [`KNOWN`].
const UNKNOWN_WEIGHT: u64 = 5;

/// The profile of `symbol`: a known one, or one derived from a hash of the name (so the
/// same name always trades alike): a price level between ~3 and ~3000, a tick of about 10^-4
/// of it, a 0.001
/// lot and a median trade worth ~200 quote units.
pub(crate) fn profile(symbol: &Symbol) -> Profile {
    let name = symbol.as_str();
    if let Some((_, known)) = KNOWN.iter().find(|(known, _)| *known == name) {
        return *known;
    }
    let unit =
        (splitmix64(crate::hash::stable_hash(name.as_bytes())) >> 11) as f64 / (1u64 << 53) as f64;
    let base_price = 10f64.powf(0.5 + 3.0 * unit);
    Profile {
        base_price,
        // A tick of about 10^-4 of the price, as on real books.
        price_decimals: (4 - base_price.log10().floor() as i32).clamp(0, 8) as u32,
        qty_decimals: 3,
        qty_median: 200.0 / base_price,
        volatility: 0.80,
        weight: UNKNOWN_WEIGHT,
    }
}

/// `(price decimals, quantity decimals)` of `symbol`, as written by
/// [`write_json_line`](super::write_json_line).
pub fn precision(symbol: &Symbol) -> (u32, u32) {
    let Profile {
        price_decimals,
        qty_decimals,
        ..
    } = profile(symbol);
    (price_decimals, qty_decimals)
}

/// The SplitMix64 finalizer: spreads a weak 64-bit seed over all bits.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
