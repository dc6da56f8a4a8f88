//! Alerts: what the market-abuse checks report, one row of `alerts` each.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Account, Symbol};
use crate::hash::StableHasher;

/// What an alert is about. [`AlertKind::as_str`] is the stable code stored in `alerts.kind`
/// and used in the ground-truth file of the generator.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// One trade far from the prevailing price.
    BadTick,
    /// Far more volume in a second than the symbol's recent seconds.
    VolumeBurst,
    /// A rise on a volume surge, then a reversal.
    PumpAndDump,
    /// The same account on both sides of a trade.
    WashTrade,
    /// A cycle of trades between accounts (A→B→A, A→B→C→A) with matching quantities.
    WashRing,
    /// One account in many trades within a second.
    VelocityBurst,
    /// The first digits of a window's trade sizes stray from Benford's law.
    Benford,
    /// A window's trade sizes cluster at round numbers more than the symbol's usual share.
    RoundSizes,
}

impl AlertKind {
    /// Every kind, in the order of their codes.
    pub const ALL: [AlertKind; 8] = [
        AlertKind::BadTick,
        AlertKind::VolumeBurst,
        AlertKind::PumpAndDump,
        AlertKind::WashTrade,
        AlertKind::WashRing,
        AlertKind::VelocityBurst,
        AlertKind::Benford,
        AlertKind::RoundSizes,
    ];

    /// The stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BadTick => "bad_tick",
            AlertKind::VolumeBurst => "volume_burst",
            AlertKind::PumpAndDump => "pump_and_dump",
            AlertKind::WashTrade => "wash_trade",
            AlertKind::WashRing => "wash_ring",
            AlertKind::VelocityBurst => "velocity_burst",
            AlertKind::Benford => "benford",
            AlertKind::RoundSizes => "round_sizes",
        }
    }

    /// The kind of a code, if it is one.
    pub fn parse(code: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == code)
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent an alert is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Probably abuse.
    Medium,
    /// Almost certainly abuse, or large.
    High,
}

impl Severity {
    /// The stable code stored in `alerts.severity`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// One finding of a market-abuse check: a row of `alerts`.
///
/// Everything but `detected_ms` is a function of the input alone, so the same input gives
/// the same alerts (and ids) with any parallelism and after any restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// What was found.
    pub kind: AlertKind,
    /// The symbol traded.
    pub symbol: Symbol,
    /// The account the alert is about, for the account-based checks.
    pub account: Option<Account>,
    /// Event time of the last trade contributing to the evidence, ms since the epoch.
    pub event_ms: u64,
    /// Wall-clock time the alert was emitted, ms since the epoch.
    pub detected_ms: u64,
    /// How urgent.
    pub severity: Severity,
    /// How far past its threshold the evidence is (the rule's statistic over its threshold;
    /// ≥ 1 for every alert).
    pub score: f64,
    /// The evidence as a JSON object with a fixed key order: thresholds, observed values,
    /// trade ids.
    pub details: String,
    /// Trade ids of the contributing trades, ascending: with kind, symbol, account and
    /// event time they make the alert's id.
    pub trade_ids: Vec<u64>,
}

impl Alert {
    /// The deterministic id: the pinned hash of kind, symbol, account, event time and the
    /// contributing trade ids, as 16 hex digits.
    pub fn alert_id(&self) -> String {
        let mut hasher = StableHasher::new();
        hasher
            .field(self.kind.as_str().as_bytes())
            .field(self.symbol.as_str().as_bytes())
            .field(
                self.account
                    .as_ref()
                    .map_or(&b""[..], |a| a.as_str().as_bytes()),
            )
            .field(&self.event_ms.to_le_bytes());
        for id in &self.trade_ids {
            hasher.field(&id.to_le_bytes());
        }
        format!("{:016x}", hasher.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_ids_depend_on_the_evidence_only() {
        for kind in AlertKind::ALL {
            assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
        }
        let symbol = Symbol::new("BTCUSDT").expect("short");
        let alert = Alert {
            kind: AlertKind::BadTick,
            symbol,
            account: None,
            event_ms: 1_700_000_000_123,
            detected_ms: 1,
            severity: Severity::High,
            score: 3.5,
            details: "{}".to_owned(),
            trade_ids: vec![7, 9],
        };
        let later = Alert {
            detected_ms: 99,
            ..alert.clone()
        };
        assert_eq!(alert.alert_id(), later.alert_id());
        let other = Alert {
            trade_ids: vec![7, 10],
            ..alert.clone()
        };
        assert_ne!(alert.alert_id(), other.alert_id());
        assert_eq!(alert.alert_id().len(), 16);
    }
}
