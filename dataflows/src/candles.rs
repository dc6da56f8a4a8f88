//! OHLCV candles and VWAP per symbol and tumbling event-time window.

use tickflow_operators::model::{Candle, CandleAcc, Trade};
use tickflow_operators::source::Horizon;
use tickflow_operators::window::{AggregateWindows, MergeWindows, Windows};
use timely::dataflow::Stream;

/// Candles of every symbol in every window of `windows`, each emitted once, final, when the
/// frontier passes the window's end.
///
/// Trades must travel at their event time coarsened by [`Windows::coarsen`]. Each worker
/// first folds its own trades into one partial candle per symbol and window; only those
/// partials are exchanged (by symbol) and merged, so the cost of the exchange is bounded by
/// the number of open windows, not by the number of trades. Because [`CandleAcc`] merges
/// associatively and orders trades by `(time, id)`, the result does not depend on the number
/// of workers or the arrival order.
pub fn candles<'scope>(
    trades: Stream<'scope, u64, Vec<Trade>>,
    windows: &Windows,
) -> Stream<'scope, u64, Vec<Candle>> {
    trades
        .aggregate_windows_named(
            "CandlesPreAggregate",
            windows,
            |trade: &Trade| trade.symbol,
            CandleAcc::add,
        )
        .merge_windows_named(
            "CandlesMerge",
            |symbol| symbol.stable_hash(),
            CandleAcc::merge,
            |key, total| total.finish(key.key, key.window_ms, key.start_ms),
        )
}

/// The event-time history [`candles`] needs re-read to rebuild its state after a restart:
/// every window still open.
pub fn horizon(windows: &Windows) -> Horizon {
    Horizon::windows(windows.sizes())
}
