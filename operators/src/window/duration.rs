//! Durations on the command line: `500ms`, `2s`, `1m`, `1h`, `1d`.

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not `<integer><unit>`.
    #[error("invalid duration {0:?}: expected an integer and a unit, e.g. 500ms, 2s, 1m, 1h, 1d")]
    Syntax(String),
    /// A window of zero length.
    #[error("window sizes must be positive")]
    Zero,
    /// Longer than [`MAX_DURATION_MS`]: event-time arithmetic must never overflow.
    #[error("{0:?} is longer than the longest duration accepted, 10000d")]
    TooLong(String),
}

/// Longest duration accepted (10 000 days): event times are below 10^14 ms, so any time plus
/// a few such durations stays far below `u64::MAX`.
pub const MAX_DURATION_MS: u64 = 10_000 * 86_400_000;

/// Parses `<integer><unit>` with unit `ms`, `s`, `m`, `h` or `d` into milliseconds, at most
/// [`MAX_DURATION_MS`].
///
/// ```
/// use tickflow_operators::window::parse_duration;
/// assert_eq!(parse_duration("2s"), Ok(2_000));
/// assert_eq!(parse_duration("1m"), Ok(60_000));
/// assert!(parse_duration("2 sec").is_err());
/// assert!(parse_duration("18446744073709551615ms").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let syntax = || DurationError::Syntax(text.to_owned());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(syntax)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| syntax())?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(syntax()),
    };
    match number.checked_mul(factor) {
        Some(ms) if ms <= MAX_DURATION_MS => Ok(ms),
        _ => Err(DurationError::TooLong(text.to_owned())),
    }
}

/// The shortest exact spelling of a duration in ms (`60000` → `1m`).
pub fn format_duration(ms: u64) -> String {
    for (factor, unit) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ] {
        if ms != 0 && ms.is_multiple_of(factor) {
            return format!("{}{unit}", ms / factor);
        }
    }
    format!("{ms}ms")
}
