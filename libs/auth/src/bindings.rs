//! Organisation number → municipality: which municipality an ingest token may write.

use std::collections::BTreeMap;
use std::path::Path;

use kpr_domain::municipality::{MunicipalityCode, Registry};

/// The organisation numbers of the municipalities (Enhetsregisteret, via SSB's KLASS
/// correspondence 1236; `refdata/SOURCES.md`), with their 2024 codes.
const EMBEDDED: &str = include_str!("../../../refdata/kommune_organisasjonsnummer.csv");

/// Why a bindings file is refused.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `organisation number,municipality code`.
    #[error("{path} line {line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Which municipality each organisation number writes for.
#[derive(Clone, Debug)]
pub struct Bindings {
    by_org: BTreeMap<String, MunicipalityCode>,
}

/// Whether `org` is a Norwegian organisation number (nine digits, mod-11 check).
pub fn valid_org_number(org: &str) -> bool {
    let digits: Vec<u32> = org.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 9 || org.len() != 9 {
        return false;
    }
    let weights = [3, 2, 7, 6, 5, 4, 3, 2];
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == digits[8]
}

impl Bindings {
    /// The 356 bindings shipped in `refdata/` (Haram 1580 has none there).
    pub fn embedded() -> Bindings {
        let registry = Registry::get();
        let mut by_org = BTreeMap::new();
        for row in EMBEDDED.lines().skip(1) {
            let cols: Vec<&str> = row.split(',').collect();
            if let [org, _, code_2024, ..] = cols[..]
                && let Some(m) = registry.municipality(code_2024)
            {
                by_org.insert(org.to_string(), m.code);
            }
        }
        Bindings { by_org }
    }

    /// The embedded bindings plus those of a deployment's file: lines
    /// `organisation number,municipality code` (2024 code), `#` comments and an optional
    /// header line. A line of the file replaces an embedded binding of the same number.
    pub fn with_file(mut self, path: &Path) -> Result<Bindings, BindingError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BindingError::Read {
            path: shown.clone(),
            source,
        })?;
        let registry = Registry::get();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("organisasjonsnummer") {
                continue;
            }
            let fail = |reason: String| BindingError::Line {
                path: shown.clone(),
                line: index + 1,
                reason,
            };
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            let [org, code, ..] = cols[..] else {
                return Err(fail(
                    "expected `organisation number,municipality code`".into(),
                ));
            };
            if !valid_org_number(org) {
                return Err(fail(format!(
                    "{org} is not an organisation number (nine digits, mod-11)"
                )));
            }
            let municipality = registry
                .municipality(code)
                .ok_or_else(|| fail(format!("{code} is not a 2024 municipality code")))?;
            self.by_org.insert(org.to_string(), municipality.code);
        }
        Ok(self)
    }

    /// The municipality `org` writes for.
    pub fn municipality_of(&self, org: &str) -> Option<MunicipalityCode> {
        self.by_org.get(org).copied()
    }

    /// An organisation number bound to `municipality` (the lowest, if several).
    pub fn org_number_of(&self, municipality: &str) -> Option<&str> {
        self.by_org
            .iter()
            .find(|(_, m)| m.as_str() == municipality)
            .map(|(org, _)| org.as_str())
    }

    /// How many bindings there are.
    pub fn len(&self) -> usize {
        self.by_org.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_org.is_empty()
    }
}
