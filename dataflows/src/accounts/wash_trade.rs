//! Wash trades: the same account on both sides of one trade.

use tickflow_operators::model::{Alert, AlertKind, Severity, Trade};
use tickflow_operators::source::now_ms;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use super::json::Details;

/// One alert per trade whose buyer and seller are the same account, emitted at the trade's
/// own time: a pure function of one trade, so no exchange and no state.
pub fn wash_trades<'scope>(
    trades: Stream<'scope, u64, Vec<Trade>>,
) -> Stream<'scope, u64, Vec<Alert>> {
    trades.unary::<CapacityContainerBuilder<Vec<Alert>>, _, _, _>(
        Pipeline,
        "WashTrades",
        |_capability, _info| {
            move |input, output| {
                input.for_each(|capability, batch| {
                    let mut session = output.session(&capability);
                    for trade in batch.drain(..) {
                        if let Some(alert) = wash_trade(&trade) {
                            session.give(alert);
                        }
                    }
                });
            }
        },
    )
}

/// The alert for `trade` if it is a wash trade.
pub(crate) fn wash_trade(trade: &Trade) -> Option<Alert> {
    let (Some(buyer), Some(seller)) = (trade.buyer, trade.seller) else {
        return None;
    };
    if buyer != seller {
        return None;
    }
    let details = Details::new()
        .ids("trade_ids", &[trade.id])
        .str("account", buyer.as_str())
        .str("price", &trade.price.to_string())
        .str("qty", &trade.qty.to_string())
        .finish();
    Some(Alert {
        kind: AlertKind::WashTrade,
        symbol: trade.symbol,
        account: Some(buyer),
        event_ms: trade.time_ms,
        detected_ms: now_ms(),
        severity: Severity::High,
        score: 1.0,
        details,
        trade_ids: vec![trade.id],
    })
}
