//! Municipalities and counties (SPEC 2): the 2024 list, the 2020 list and the
//! 2020 → 2024 mapping, embedded from `refdata/` at build time.
//!
//! Source: Kartverket (names, © Kartverket, CC BY 4.0) and Statistics Norway (codes,
//! "Kilde: Statistisk sentralbyrå (SSB)"); see refdata/SOURCES.md.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::date::Date;

/// A 2024 municipality code (4 digits, kept as text with leading zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MunicipalityCode([u8; 4]);

impl MunicipalityCode {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Built only from ASCII digits.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The county code (first two digits).
    pub fn county(&self) -> &str {
        &self.as_str()[..2]
    }

    fn from_text(text: &str) -> Option<MunicipalityCode> {
        let bytes = text.as_bytes();
        if bytes.len() != 4 || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(MunicipalityCode([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

impl std::fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A municipality of the 2024 list.
#[derive(Clone, Debug)]
pub struct Municipality {
    /// Its code.
    pub code: MunicipalityCode,
    /// Official name (multi-language form).
    pub name: String,
    /// County code.
    pub county: String,
    /// County name.
    pub county_name: String,
}

/// Why a municipality code is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MunicipalityError {
    /// Empty.
    #[error("municipality is missing")]
    Missing,
    /// Not four digits.
    #[error("municipality must be a 4-digit code such as \"0301\"")]
    Format,
    /// Not in any list.
    #[error("unknown municipality code {0}")]
    Unknown(String),
    /// A code retired on 1 January 2024, used for a later date.
    #[error(
        "municipality code {code} was retired on 2024-01-01; use {successor} for dates from then on"
    )]
    Retired {
        /// The old code.
        code: String,
        /// Its 2024 code.
        successor: String,
    },
    /// 1507 after 2024.
    #[error(
        "municipality code 1507 (Ålesund) was split on 2024-01-01 into 1508 Ålesund and 1580 Haram; use one of them"
    )]
    SplitRetired,
    /// 1507 before 2024 without a successor.
    #[error(
        "municipality 1507 (Ålesund) was split on 2024-01-01: give successor_municipality 1508 or 1580"
    )]
    SplitNeedsSuccessor,
    /// Successor given where it does not apply, or not one of the split's successors.
    #[error("successor_municipality applies only to 1507 before 2024, and must be 1508 or 1580")]
    BadSuccessor,
}

/// The embedded code lists.
#[derive(Debug)]
pub struct Registry {
    current: BTreeMap<MunicipalityCode, Municipality>,
    /// 2020 code → 2024 code(s).
    old_to_new: BTreeMap<MunicipalityCode, Vec<MunicipalityCode>>,
    counties: BTreeMap<String, String>,
}

const KOMMUNER_2024: &str = include_str!("../../../refdata/kommuner_2024.csv");
const KOMMUNER_2020_TIL_2024: &str = include_str!("../../../refdata/kommuner_2020_til_2024.csv");
const FYLKER_2024: &str = include_str!("../../../refdata/fylker_2024.csv");

/// The first day the 2024 codes are in force.
pub fn reform_2024() -> Date {
    Date::from_days(19_723) // 2024-01-01
}

impl Registry {
    /// The registry built from the embedded lists (parsed once).
    pub fn get() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(Registry::parse_embedded)
    }

    fn parse_embedded() -> Registry {
        let mut current = BTreeMap::new();
        for row in KOMMUNER_2024.lines().skip(1).filter(|l| !l.is_empty()) {
            let cols: Vec<&str> = row.split(',').collect();
            if cols.len() < 5 {
                continue;
            }
            if let Some(code) = MunicipalityCode::from_text(cols[0]) {
                current.insert(
                    code,
                    Municipality {
                        code,
                        name: cols[1].to_string(),
                        county: cols[3].to_string(),
                        county_name: cols[4].to_string(),
                    },
                );
            }
        }
        let mut old_to_new: BTreeMap<MunicipalityCode, Vec<MunicipalityCode>> = BTreeMap::new();
        for row in KOMMUNER_2020_TIL_2024
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
        {
            let cols: Vec<&str> = row.split(',').collect();
            if cols.len() < 5 {
                continue;
            }
            if let (Some(old), Some(new)) = (
                MunicipalityCode::from_text(cols[0]),
                MunicipalityCode::from_text(cols[2]),
            ) {
                old_to_new.entry(old).or_default().push(new);
            }
        }
        let counties = FYLKER_2024
            .lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split(',').collect();
                (cols.len() >= 2).then(|| (cols[0].to_string(), cols[1].to_string()))
            })
            .collect();
        Registry {
            current,
            old_to_new,
            counties,
        }
    }

    /// All 2024 municipalities in code order.
    pub fn municipalities(&self) -> impl Iterator<Item = &Municipality> {
        self.current.values()
    }

    /// A 2024 municipality by code.
    pub fn municipality(&self, code: &str) -> Option<&Municipality> {
        MunicipalityCode::from_text(code).and_then(|c| self.current.get(&c))
    }

    /// The 2024 municipalities an event with `code` may count under: the code itself
    /// for a 2024 code, its successors for a code retired in 2024 (two for 1507), none
    /// for an unknown code. For checks that come before validation (the caller's
    /// municipality binding).
    pub fn counts_under(&self, code: &str) -> Vec<MunicipalityCode> {
        let Some(parsed) = MunicipalityCode::from_text(code) else {
            return Vec::new();
        };
        if self.current.contains_key(&parsed) {
            return vec![parsed];
        }
        self.old_to_new.get(&parsed).cloned().unwrap_or_default()
    }

    /// County codes and names in code order.
    pub fn counties(&self) -> impl Iterator<Item = (&str, &str)> {
        self.counties.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The 2024 code an event counts under (SPEC 2 and 5.4): a 2024 code for any date,
    /// a code retired on 1 January 2024 only for earlier dates, and 1507 only with an
    /// explicit successor. `successor` is empty when not given.
    pub fn resolve(
        &self,
        code: &str,
        successor: &str,
        on: Date,
    ) -> Result<MunicipalityCode, MunicipalityError> {
        if code.is_empty() {
            return Err(MunicipalityError::Missing);
        }
        let parsed = MunicipalityCode::from_text(code).ok_or(MunicipalityError::Format)?;
        if self.current.contains_key(&parsed) {
            if !successor.is_empty() {
                return Err(MunicipalityError::BadSuccessor);
            }
            return Ok(parsed);
        }
        let targets = self
            .old_to_new
            .get(&parsed)
            .ok_or_else(|| MunicipalityError::Unknown(code.to_string()))?;
        match targets.as_slice() {
            [single] => {
                if on >= reform_2024() {
                    return Err(MunicipalityError::Retired {
                        code: code.to_string(),
                        successor: single.to_string(),
                    });
                }
                if !successor.is_empty() {
                    return Err(MunicipalityError::BadSuccessor);
                }
                Ok(*single)
            }
            _ => {
                if on >= reform_2024() {
                    return Err(MunicipalityError::SplitRetired);
                }
                if successor.is_empty() {
                    return Err(MunicipalityError::SplitNeedsSuccessor);
                }
                targets
                    .iter()
                    .find(|t| t.as_str() == successor)
                    .copied()
                    .ok_or(MunicipalityError::BadSuccessor)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn lists_are_complete() {
        let r = Registry::get();
        assert_eq!(r.municipalities().count(), 357);
        assert_eq!(r.counties().count(), 15);
        assert_eq!(reform_2024(), d("2024-01-01"));
    }

    #[test]
    fn resolves_codes_over_time() {
        let r = Registry::get();
        assert_eq!(
            r.resolve("0301", "", d("2019-05-01")).unwrap().as_str(),
            "0301"
        );
        // Halden: 3001 in 2020-2023, 3101 from 2024.
        assert_eq!(
            r.resolve("3001", "", d("2023-12-31")).unwrap().as_str(),
            "3101"
        );
        assert!(matches!(
            r.resolve("3001", "", d("2024-01-01")),
            Err(MunicipalityError::Retired { .. })
        ));
        assert_eq!(
            r.resolve("1507", "", d("2023-06-01")),
            Err(MunicipalityError::SplitNeedsSuccessor)
        );
        assert_eq!(
            r.resolve("1507", "1580", d("2023-06-01")).unwrap().as_str(),
            "1580"
        );
        assert_eq!(
            r.resolve("1507", "0301", d("2023-06-01")),
            Err(MunicipalityError::BadSuccessor)
        );
        assert_eq!(
            r.resolve("1507", "1508", d("2024-06-01")),
            Err(MunicipalityError::SplitRetired)
        );
        assert_eq!(
            r.resolve("9999", "", d("2024-06-01")),
            Err(MunicipalityError::Unknown("9999".into()))
        );
        assert_eq!(
            r.resolve("301", "", d("2024-06-01")),
            Err(MunicipalityError::Format)
        );
        assert_eq!(
            r.resolve("0301", "1508", d("2024-06-01")),
            Err(MunicipalityError::BadSuccessor)
        );
    }
}
