//! Calendar dates to epoch milliseconds, proleptic Gregorian, UTC.

const MS_PER_DAY: u64 = 86_400_000;

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date; `None` for an invalid date or one before 1970.
pub(super) fn days_since_epoch(year: u64, month: u64, day: u64) -> Option<u64> {
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
    {
        return None;
    }
    // Leap days in the years before `y`, counted from year 1.
    let leap_days_before = |y: u64| (y - 1) / 4 - (y - 1) / 100 + (y - 1) / 400;
    let year_days = 365 * (year - 1970) + leap_days_before(year) - leap_days_before(1970);
    let month_days: u64 = (1..month).map(|m| days_in_month(year, m)).sum();
    Some(year_days + month_days + day - 1)
}

fn number(text: &[u8], at: usize, width: usize) -> Option<u64> {
    let digits = text.get(at..at + width)?;
    digits.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

/// The start (00:00 UTC) of the day of `YYYY-MM-DD`, optionally followed by a time of day
/// ` HH:MM:SS` or `THH:MM:SS`, optional fractional seconds and an optional `Z`; the time of
/// day is checked but otherwise ignored.
pub(super) fn day_start_ms(text: &[u8]) -> Option<u64> {
    if text.get(4) != Some(&b'-') || text.get(7) != Some(&b'-') {
        return None;
    }
    let days = days_since_epoch(
        number(text, 0, 4)?,
        number(text, 5, 2)?,
        number(text, 8, 2)?,
    )?;
    let mut rest = &text[10..];
    if let Some((b' ' | b'T', time)) = rest.split_first() {
        if time.get(2) != Some(&b':') || time.get(5) != Some(&b':') {
            return None;
        }
        let (h, m, s) = (
            number(time, 0, 2)?,
            number(time, 3, 2)?,
            number(time, 6, 2)?,
        );
        // A leap second (:60) is a valid time of day.
        if h > 23 || m > 59 || s > 60 {
            return None;
        }
        rest = &time[8..];
        if let Some(fraction) = rest.strip_prefix(b".") {
            let digits = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            rest = &fraction[digits..];
        }
        rest = rest.strip_prefix(b"Z").unwrap_or(rest);
    }
    rest.is_empty().then_some(days * MS_PER_DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_counting_days_one_by_one() {
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for n in 0..(2500 - 1970) * 366 {
            if y > 2400 {
                break;
            }
            assert_eq!(days_since_epoch(y, m, d), Some(n), "{y}-{m}-{d}");
            d += 1;
            if d > days_in_month(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert!(is_leap(2000) && is_leap(2024) && !is_leap(1900) && !is_leap(2100));
    }

    #[test]
    fn parses_dates_and_datetimes() {
        // date -u -d 2013-04-29 +%s → 1367193600
        assert_eq!(
            day_start_ms(b"2013-04-29 23:59:59"),
            Some(1_367_193_600_000)
        );
        assert_eq!(day_start_ms(b"2013-04-29"), Some(1_367_193_600_000));
        assert_eq!(
            day_start_ms(b"2013-04-29T00:00:00Z"),
            Some(1_367_193_600_000)
        );
        assert_eq!(
            day_start_ms(b"2013-04-29 12:00:00.123"),
            Some(1_367_193_600_000)
        );
        assert_eq!(day_start_ms(b"1970-01-01"), Some(0));
        assert_eq!(
            day_start_ms(b"2024-02-29 00:00:00"),
            Some(19_782 * MS_PER_DAY)
        );
        for bad in [
            &b""[..],
            b"2013-4-29",
            b"2013-04-31",
            b"2023-02-29",
            b"2013-13-01",
            b"2013-00-10",
            b"1969-12-31",
            b"2013/04/29",
            b"2013-04-29 24:00:00",
            b"2013-04-29 23:59",
            b"2013-04-29 23:59:59 UTC",
            b"2013-04-29x",
            b"2013-04-29 23:59:59.",
            b"+013-04-29",
        ] {
            assert_eq!(day_start_ms(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
