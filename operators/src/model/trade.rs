//! Trades, the unit of input.

use serde::{Deserialize, Serialize};

use super::{Account, Fixed, Symbol};

/// One executed trade, as every source delivers it to the dataflows.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Trade {
    /// Trading pair.
    pub symbol: Symbol,
    /// Venue trade id; consecutive per symbol on Binance. Breaks ties in event time.
    pub id: u64,
    /// Price, exact.
    pub price: Fixed,
    /// Quantity in the base asset, exact.
    pub qty: Fixed,
    /// Event time: the trade time `T`, ms since the epoch.
    pub time_ms: u64,
    /// Whether the buyer was the maker (`m`).
    pub buyer_maker: bool,
    /// Buyer account (`B`), when the venue knows it.
    pub buyer: Option<Account>,
    /// Seller account (`S`), when the venue knows it.
    pub seller: Option<Account>,
}
