//! Calendar dates without time zones: the effective dates of events.
//!
//! A `Date` is a day number (days since 1970-01-01), so comparisons and day
//! arithmetic are integer operations. Conversions use the proleptic Gregorian
//! calendar (Howard Hinnant's civil-from-days algorithms). No clock is read here:
//! "today" is always passed in by the caller.

use std::fmt;

/// A calendar day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    days: i32,
}

/// Why a text is not a date.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not of the form YYYY-MM-DD.
    #[error("expected a date as YYYY-MM-DD")]
    Format,
    /// Month or day out of range for the calendar.
    #[error("no such calendar day")]
    NoSuchDay,
}

impl Date {
    /// The date from year, month (1-12) and day (1-31), if that day exists.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date {
            days: days_from_civil(year, month, day),
        })
    }

    /// The date `days` days after 1970-01-01.
    pub fn from_days(days: i32) -> Date {
        Date { days }
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i32 {
        self.days
    }

    /// Parses `YYYY-MM-DD` strictly (four-digit year, two-digit month and day).
    pub fn parse(text: &str) -> Result<Date, DateError> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(DateError::Format);
        }
        let year = digits(&bytes[0..4]).ok_or(DateError::Format)?;
        let month = digits(&bytes[5..7]).ok_or(DateError::Format)?;
        let day = digits(&bytes[8..10]).ok_or(DateError::Format)?;
        Date::from_ymd(year as i32, month, day).ok_or(DateError::NoSuchDay)
    }

    /// The date as the integer YYYYMMDD (the persisted form).
    pub fn yyyymmdd(self) -> u32 {
        let (y, m, d) = self.ymd();
        // Years before 0 are never accepted as input; clamp keeps the encoding total.
        (y.max(0) as u32) * 10_000 + m * 100 + d
    }

    /// The date from the integer YYYYMMDD, if it is a real day.
    pub fn from_yyyymmdd(value: u32) -> Option<Date> {
        Date::from_ymd((value / 10_000) as i32, (value / 100) % 100, value % 100)
    }

    /// Year, month and day.
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.days)
    }

    /// The calendar year.
    pub fn year(self) -> i32 {
        self.ymd().0
    }

    /// The date `n` days later (earlier when negative).
    pub fn add_days(self, n: i32) -> Date {
        Date {
            days: self.days.saturating_add(n),
        }
    }

    /// Whole days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(self, later: Date) -> i32 {
        later.days - self.days
    }

    /// The day of a Unix timestamp in milliseconds (UTC).
    /// Timestamps beyond years 1 to 9999 are clamped to those years' ends, so the
    /// result is always a formattable date (callers refuse such dates anyway).
    pub fn from_unix_ms(ms: i64) -> Date {
        const DAYS_MIN: i64 = -719_162; // 0001-01-01
        const DAYS_MAX: i64 = 2_932_896; // 9999-12-31
        Date {
            days: ms.div_euclid(86_400_000).clamp(DAYS_MIN, DAYS_MAX) as i32,
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn digits(bytes: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    Some(value)
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in a month of a year (month 1-12).
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_day_of_four_centuries() {
        let start = Date::from_ymd(1899, 1, 1).unwrap();
        let end = Date::from_ymd(2301, 1, 1).unwrap();
        let mut day = start;
        while day < end {
            let (y, m, d) = day.ymd();
            assert_eq!(Date::from_ymd(y, m, d), Some(day));
            assert_eq!(Date::from_yyyymmdd(day.yyyymmdd()), Some(day));
            assert_eq!(Date::parse(&day.to_string()), Ok(day));
            day = day.add_days(1);
        }
    }

    #[test]
    fn parses_strictly() {
        assert_eq!(Date::parse("2024-02-29").unwrap().to_string(), "2024-02-29");
        assert_eq!(Date::parse("2023-02-29"), Err(DateError::NoSuchDay));
        assert_eq!(Date::parse("2024-13-01"), Err(DateError::NoSuchDay));
        assert_eq!(Date::parse("2024-1-01"), Err(DateError::Format));
        assert_eq!(Date::parse("2024/01/01"), Err(DateError::Format));
        assert_eq!(Date::parse(""), Err(DateError::Format));
        assert_eq!(Date::from_ymd(1970, 1, 1).unwrap().days(), 0);
    }
}
