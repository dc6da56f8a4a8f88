//! Progress lines on stderr during long runs.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickflow_operators::source::{now_ms, Counters};

/// What is wrong with the source's connection right now, if anything.
pub type Health = Box<dyn Fn() -> Option<String> + Send>;

/// Prints events/s, watermark, lag and the source's health every `every` until `stop`
/// fires or disconnects.
pub fn report(counters: Arc<Counters>, health: Health, stop: Receiver<()>, every: Duration) {
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64);
    loop {
        match stop.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let records = counters.records.load(Ordering::Relaxed);
        let rejected = counters.rejected.load(Ordering::Relaxed);
        let rate = (records - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
        last = (Instant::now(), records);
        let watermark = match counters.watermark() {
            Some(w) if w > 0 => {
                let lag = now_ms().saturating_sub(w);
                format!("watermark {} (lag {})", format_ms(w), format_lag(lag))
            }
            _ => "watermark -".to_owned(),
        };
        let problem = health()
            .map(|p| format!("  source: {p}"))
            .unwrap_or_default();
        eprintln!(
            "tickflow: {:>6.0}s  {records} events ({rate:.0}/s)  {rejected} rejected  {watermark}{problem}",
            started.elapsed().as_secs_f64()
        );
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for ms since the epoch.
pub fn format_ms(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    let rem = ms % 86_400_000;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

fn format_lag(ms: u64) -> String {
    if ms < 120_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 172_800_000 {
        format!("{:.1}h", ms as f64 / 3_600_000.0)
    } else {
        format!("{}d", ms / 86_400_000)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_epoch_times() {
        assert_eq!(super::format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::format_ms(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            super::format_ms(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
