//! The exact data model: decimals, symbols, trades, candles.

mod alert;
mod candle;
mod decimal;
mod inline;
mod trade;

pub use alert::{Alert, AlertKind, Severity};
pub use candle::{Candle, CandleAcc, StoredCandle};
pub use decimal::{DecimalError, Fixed, QuoteVolume, Volume, Wide, DIGITS, SCALE};
pub use inline::{Account, InlineStr, Symbol, INLINE_CAPACITY};
pub use trade::Trade;
