//! `--config tickflow.toml`: the analytics settings, every one with a documented default.
//!
//! ```toml
//! [quality]
//! enabled = true          # dedup, gap counts and the quality table
//! dedup_horizon = "3m"    # how long a trade id is remembered after its event time
//!
//! [market.bad_tick]       # symbol-level abuse rules (dataflows::market::MarketConfig):
//! enabled = true          # bad_tick, volume_burst, pump_and_dump, benford, round_sizes
//!
//! [accounts.wash_ring]    # account rules (dataflows::accounts::AccountConfig):
//! enabled = true          # wash_trade, velocity_burst, wash_ring
//!
//! [model]                 # the regression (dataflows::regression::ModelSettings)
//! features = ["open", "high", "low", "volume"]
//! horizon = 0
//! ```
//!
//! Every rule is on by default; each section's keys and defaults are listed in README
//! ("Market abuse").
//!
//! Unknown sections and keys are an error that names them, so a typo never silently leaves
//! a default in place.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use tickflow_dataflows::accounts::AccountConfig;
use tickflow_dataflows::market::MarketConfig;
use tickflow_dataflows::quality::QualityConfig;
use tickflow_dataflows::regression::ModelSettings;

/// Everything the config file sets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[quality]`: deduplication, gaps, the quality table.
    pub quality: QualityConfig,
    /// `[market.*]`: the symbol-level market-abuse rules and wash-trading indicators.
    pub market: MarketConfig,
    /// `[accounts.*]`: the rules on trades that carry buyer and seller accounts.
    pub accounts: AccountConfig,
    /// `[model]`: the per-symbol regression model.
    pub model: ModelSettings,
}

impl Settings {
    /// Reads `path`; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Settings> {
        let Some(path) = path else {
            return Ok(Settings::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--config {}: reading", path.display()))?;
        Settings::parse(&text).with_context(|| format!("--config {}", path.display()))
    }

    /// Parses the text of a config file.
    pub fn parse(text: &str) -> Result<Settings> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
    }

    /// What of these settings determines results, for the run identity.
    pub fn fingerprint(&self) -> String {
        format!("{self:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_unknown_keys_and_durations() {
        assert_eq!(Settings::parse("").expect("empty"), Settings::default());
        let s =
            Settings::parse("[quality]\nenabled = true\ndedup_horizon = \"90s\"\n").expect("valid");
        assert_eq!(s.quality.dedup_horizon, 90_000);
        assert!(s.quality.enabled);
        assert!(Settings::default().quality.enabled, "on by default");
        let error = Settings::parse("[quality]\ndedup_horizont = \"90s\"\n")
            .expect_err("typo")
            .to_string();
        assert!(error.contains("dedup_horizont"), "{error}");
        let error = Settings::parse("[qualty]\n").expect_err("typo").to_string();
        assert!(error.contains("qualty"), "{error}");
        let error = Settings::parse("[quality]\ndedup_horizon = \"soon\"\n")
            .expect_err("bad duration")
            .to_string();
        assert!(error.contains("soon"), "{error}");
    }

    #[test]
    fn every_rule_is_on_by_default_and_each_can_be_switched_off() {
        let Settings {
            quality: _,
            market,
            accounts,
            model: _,
        } = Settings::default();
        assert!(market.bad_tick.enabled);
        assert!(market.volume_burst.enabled);
        assert!(market.pump_and_dump.enabled);
        assert!(market.benford.enabled);
        assert!(market.round_sizes.enabled);
        assert!(accounts.wash_trade.enabled);
        assert!(accounts.velocity_burst.enabled);
        assert!(accounts.wash_ring.enabled);
        let text = "[market.bad_tick]\nenabled = false\n[market.volume_burst]\nenabled = false\n\
                    [market.pump_and_dump]\nenabled = false\n[market.benford]\nenabled = false\n\
                    [market.round_sizes]\nenabled = false\n[accounts.wash_trade]\nenabled = false\n\
                    [accounts.velocity_burst]\nenabled = false\n[accounts.wash_ring]\nenabled = false\n";
        let Settings {
            quality: _,
            market,
            accounts,
            model: _,
        } = Settings::parse(text).expect("valid");
        assert!(!market.bad_tick.enabled);
        assert!(!market.volume_burst.enabled);
        assert!(!market.pump_and_dump.enabled);
        assert!(!market.benford.enabled);
        assert!(!market.round_sizes.enabled);
        assert!(!accounts.wash_trade.enabled);
        assert!(!accounts.velocity_burst.enabled);
        assert!(!accounts.wash_ring.enabled);
        // A threshold set, the rest of its section left at the defaults.
        let s = Settings::parse("[market.bad_tick]\nk = 20.0\n").expect("valid");
        assert_eq!(s.market.bad_tick.k, 20.0);
        assert!(s.market.bad_tick.enabled);
        assert_eq!(
            s.market.volume_burst,
            Settings::default().market.volume_burst
        );
        // The settings change the run identity.
        assert_ne!(s.fingerprint(), Settings::default().fingerprint());
        for (typo, named) in [
            ("[market.bad_tick]\nkk = 1.0\n", "kk"),
            ("[market.bad_ticks]\n", "bad_ticks"),
            ("[accounts.wash_ring]\nwindow = 5\n", "window"),
            ("[accounts.wash]\n", "wash"),
            ("[market]\nenabled = false\n", "enabled"),
        ] {
            let error = Settings::parse(typo).expect_err(typo).to_string();
            assert!(error.contains(named), "{typo:?}: {error}");
        }
    }
}
