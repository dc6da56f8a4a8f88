//! tickflow's test oracle: what the engine should compute, worked out independently of it.
//!
//! Nothing here calls tickflow. Trade lines are read with serde_json ([`json`]), decimals
//! are read from their text into big integers ([`decimal`]), and candles are computed from
//! their definition in SPEC.md ([`candles`]) with exact big-integer sums, then rendered as
//! text the way tickflow renders decimals, so tests compare strings.

pub mod candles;
pub mod decimal;
pub mod json;
pub mod least_squares;

pub use candles::{candles, Candle, Trade};

/// The trades of JSON lines (one trade per non-blank line), read by [`json::trade_line`].
/// Fails on the first line that is not a valid trade.
pub fn trades_from_json_lines(text: &str) -> Result<Vec<Trade>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let t = json::trade_line(line.as_bytes())
                .ok_or_else(|| format!("not a valid trade line: {line}"))?;
            Trade::new(&t.symbol, t.id, &t.price, &t.qty, t.time_ms)
        })
        .collect()
}
