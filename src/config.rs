//! `--config tickflow.toml`: the analytics settings, every one with a documented default.
//!
//! ```toml
//! [quality]
//! enabled = true          # dedup, gap counts and the quality table
//! dedup_horizon = "3m"    # how long a trade id is remembered after its event time
//! ```
//!
//! Unknown sections and keys are an error that names them, so a typo never silently leaves
//! a default in place.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use tickflow_dataflows::quality::QualityConfig;

/// Everything the config file sets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[quality]`: deduplication, gaps, the quality table.
    pub quality: QualityConfig,
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
}
