//! Reference dates and periods (SPEC 5.1): a calendar year, quarter or month, with SSB
//! codes (`2024`, `2024K3`, `2024M07`; `2024Q3` is accepted on input).

use kpr_domain::date::{Date, days_in_month};

/// A closed range of days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// First day.
    pub from: Date,
    /// Last day (inclusive).
    pub to: Date,
    /// SSB-style code.
    pub code: String,
}

/// Why a period text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("period must be a year (2024), a quarter (2024K3 or 2024Q3) or a month (2024M07)")]
pub struct PeriodError;

impl Period {
    /// A calendar year.
    pub fn year(year: i32) -> Option<Period> {
        Some(Period {
            from: Date::from_ymd(year, 1, 1)?,
            to: Date::from_ymd(year, 12, 31)?,
            code: format!("{year}"),
        })
    }

    /// A quarter (1-4).
    pub fn quarter(year: i32, quarter: u32) -> Option<Period> {
        if !(1..=4).contains(&quarter) {
            return None;
        }
        let last_month = quarter * 3;
        Some(Period {
            from: Date::from_ymd(year, last_month - 2, 1)?,
            to: Date::from_ymd(year, last_month, days_in_month(year, last_month))?,
            code: format!("{year}K{quarter}"),
        })
    }

    /// A month (1-12).
    pub fn month(year: i32, month: u32) -> Option<Period> {
        Some(Period {
            from: Date::from_ymd(year, month, 1)?,
            to: Date::from_ymd(year, month, days_in_month(year, month))?,
            code: format!("{year}M{month:02}"),
        })
    }

    /// Parses `2024`, `2024K3`, `2024Q3` or `2024M07`.
    pub fn parse(text: &str) -> Result<Period, PeriodError> {
        let year: i32 = text
            .get(..4)
            .and_then(|y| y.parse().ok())
            .ok_or(PeriodError)?;
        if !(1900..=9999).contains(&year) {
            return Err(PeriodError);
        }
        let rest = &text[4..];
        let number = |s: &str| s.parse::<u32>().ok();
        let period = match rest.chars().next() {
            None => Period::year(year),
            Some('K' | 'Q') if rest.len() == 2 => {
                number(&rest[1..]).and_then(|q| Period::quarter(year, q))
            }
            Some('M') if rest.len() == 3 => number(&rest[1..]).and_then(|m| Period::month(year, m)),
            _ => None,
        };
        period.ok_or(PeriodError)
    }

    /// The year age is counted in for this period: the year in which it ends (SPEC 5.4).
    pub fn age_year(&self) -> i32 {
        self.to.year()
    }

    /// Whether a day lies in the period.
    pub fn contains(&self, day: Date) -> bool {
        self.from <= day && day <= self.to
    }
}

/// The default status date of year Y: 31 December (SPEC 5.1).
pub fn default_status_date(year: i32) -> Option<Date> {
    Date::from_ymd(year, 12, 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ssb_codes() {
        let q = Period::parse("2024Q1").unwrap();
        assert_eq!(
            (q.from.to_string(), q.to.to_string(), q.code.as_str()),
            ("2024-01-01".into(), "2024-03-31".into(), "2024K1")
        );
        let m = Period::parse("2024M02").unwrap();
        assert_eq!(m.to.to_string(), "2024-02-29");
        assert_eq!(Period::parse("2023").unwrap().to.to_string(), "2023-12-31");
        assert_eq!(
            Period::parse("2024K4").unwrap().from.to_string(),
            "2024-10-01"
        );
        for bad in ["", "24", "2024K5", "2024M13", "2024X1", "2024M7", "abcd"] {
            assert_eq!(Period::parse(bad), Err(PeriodError), "{bad}");
        }
    }
}
