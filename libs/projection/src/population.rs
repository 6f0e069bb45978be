//! Population denominators (SPEC 2): persons by municipality × sex × single year of
//! age (0-105, where 105 means 105 or older) on 1 January of a year, from Statistics
//! Norway table 07459 ("Kilde: Statistisk sentralbyrå (SSB)"). The years 2024-2026 ship
//! embedded; a newer CSV of the same shape can be parsed with [`Population::from_csv`].

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kpr_domain::person::Sex;

use crate::bands::AgeBand;

/// Highest single age; the last age counts everyone that old or older.
pub const AGE_TOP: usize = 105;

const EMBEDDED: &str =
    include_str!("../../../refdata/befolkning_kommune_kjonn_alder_2024-2026.csv");

/// A region statistics are given for (SPEC 5.2).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Region {
    /// A 2024 municipality code.
    Municipality(String),
    /// A county code (two digits).
    County(String),
    /// The whole country.
    Nation,
}

impl Region {
    /// Whether a municipality (2024 code) lies in the region.
    pub fn contains(&self, municipality: &str) -> bool {
        match self {
            Region::Municipality(code) => code == municipality,
            Region::County(county) => municipality.starts_with(county.as_str()),
            Region::Nation => true,
        }
    }

    /// SSB-style region code: the municipality code, `EKnn` for a county, `EAK` for
    /// the nation (SPEC 8).
    pub fn code(&self) -> String {
        match self {
            Region::Municipality(code) => code.clone(),
            Region::County(county) => format!("EK{county}"),
            Region::Nation => "EAK".to_string(),
        }
    }
}

/// Why a population CSV was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PopulationError {
    /// Header not `aar,kommunenummer,kjonn,alder,personer`.
    #[error("population CSV must start with the header aar,kommunenummer,kjonn,alder,personer")]
    Header,
    /// A row that does not parse.
    #[error("population CSV line {line}: {reason}")]
    Row {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No rows.
    #[error("population CSV has no rows")]
    Empty,
}

/// Counts by sex (0 male, 1 female) and single age.
type Counts = [[u32; AGE_TOP + 1]; 2];

/// Population by year, municipality, sex and age.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Population {
    years: BTreeMap<i32, BTreeMap<String, Counts>>,
}

impl Population {
    /// The shipped population (2024-2026), parsed once.
    pub fn embedded() -> &'static Population {
        static POPULATION: OnceLock<Population> = OnceLock::new();
        POPULATION.get_or_init(|| Population::from_csv(EMBEDDED).unwrap_or_default())
    }

    /// Parses a CSV of the shipped shape (header `aar,kommunenummer,kjonn,alder,personer`,
    /// `kjonn` 1 male / 2 female, `alder` 0-105).
    pub fn from_csv(text: &str) -> Result<Population, PopulationError> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, header)) if header.trim() == "aar,kommunenummer,kjonn,alder,personer" => {}
            _ => return Err(PopulationError::Header),
        }
        let mut population = Population::default();
        for (index, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let row = |reason: &str| PopulationError::Row {
                line: index + 1,
                reason: reason.to_string(),
            };
            let cols: Vec<&str> = line.trim().split(',').collect();
            let [year, municipality, sex, age, persons] = cols[..] else {
                return Err(row("expected 5 columns"));
            };
            let year: i32 = year.parse().map_err(|_| row("aar is not a year"))?;
            if municipality.len() != 4 || !municipality.bytes().all(|b| b.is_ascii_digit()) {
                return Err(row("kommunenummer must be 4 digits"));
            }
            let sex = match sex {
                "1" => 0,
                "2" => 1,
                _ => return Err(row("kjonn must be 1 or 2")),
            };
            let age: usize = age
                .trim_end_matches('+')
                .parse()
                .map_err(|_| row("alder is not a number"))?;
            if age > AGE_TOP {
                return Err(row("alder must be 0-105"));
            }
            let persons: u32 = persons
                .parse()
                .map_err(|_| row("personer is not a count"))?;
            let counts = population
                .years
                .entry(year)
                .or_default()
                .entry(municipality.to_string())
                .or_insert([[0; AGE_TOP + 1]; 2]);
            counts[sex][age] = counts[sex][age].saturating_add(persons);
        }
        if population.years.is_empty() {
            return Err(PopulationError::Empty);
        }
        Ok(population)
    }

    /// This population with the years of `newer` added; a year present in both is
    /// taken from `newer` whole (an imported CSV updates, it does not erase).
    pub fn merged_with(&self, newer: Population) -> Population {
        let mut years = self.years.clone();
        years.extend(newer.years);
        Population { years }
    }

    /// Years available.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.keys().copied()
    }

    /// The municipalities (codes in order) that have a population in `year`.
    pub fn municipalities(&self, year: i32) -> impl Iterator<Item = &str> + '_ {
        self.years
            .get(&year)
            .into_iter()
            .flat_map(|by_municipality| by_municipality.keys().map(String::as_str))
    }

    /// Persons of `municipality` on 1 January of `year` by sex (0 male, 1 female) and
    /// single age (0 to [`AGE_TOP`], the last meaning that old or older).
    pub fn by_sex_and_age(
        &self,
        year: i32,
        municipality: &str,
    ) -> Option<&[[u32; AGE_TOP + 1]; 2]> {
        self.years.get(&year)?.get(municipality)
    }

    /// The year to use when `wanted` is asked for: `wanted` itself, or the nearest
    /// available year (the later one on a tie), SPEC 2.
    pub fn nearest_year(&self, wanted: i32) -> Option<i32> {
        self.years
            .keys()
            .copied()
            .min_by_key(|y| ((y - wanted).abs(), -y))
    }

    /// Persons on 1 January of `year` in `region`, of `sex` (`None` for both; unknown
    /// sex has no population), whose age lies in `band`.
    pub fn count(&self, year: i32, region: &Region, sex: Option<Sex>, band: &AgeBand) -> u64 {
        let Some(by_municipality) = self.years.get(&year) else {
            return 0;
        };
        let sexes: &[usize] = match sex {
            None => &[0, 1],
            Some(Sex::Male) => &[0],
            Some(Sex::Female) => &[1],
            Some(Sex::Unknown) => &[],
        };
        by_municipality
            .iter()
            .filter(|(code, _)| region.contains(code))
            .map(|(_, counts)| {
                sexes
                    .iter()
                    .flat_map(|&s| counts[s].iter().enumerate())
                    .filter(|(age, _)| band.contains(*age as u16))
                    .map(|(_, n)| u64::from(*n))
                    .sum::<u64>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bands::{AGE_80_PLUS, ALL_AGES, DETAILED};

    #[test]
    fn embedded_totals_match_the_published_ones() {
        let p = Population::embedded();
        assert_eq!(p.years().collect::<Vec<_>>(), vec![2024, 2025, 2026]);
        // Totals quoted in refdata/SOURCES.md.
        assert_eq!(p.count(2024, &Region::Nation, None, &ALL_AGES), 5_550_203);
        assert_eq!(p.count(2025, &Region::Nation, None, &ALL_AGES), 5_594_340);
        assert_eq!(p.count(2026, &Region::Nation, None, &ALL_AGES), 5_627_400);
        assert_eq!(
            p.count(2024, &Region::Municipality("0301".into()), None, &ALL_AGES),
            717_710
        );
        assert_eq!(
            p.count(2024, &Region::County("03".into()), None, &ALL_AGES),
            717_710
        );
    }

    #[test]
    fn bands_and_sexes_add_up() {
        let p = Population::embedded();
        let region = Region::County("46".into());
        let all = p.count(2025, &region, None, &ALL_AGES);
        let by_band: u64 = DETAILED
            .iter()
            .map(|b| p.count(2025, &region, None, b))
            .sum();
        let by_sex = p.count(2025, &region, Some(Sex::Male), &ALL_AGES)
            + p.count(2025, &region, Some(Sex::Female), &ALL_AGES);
        assert_eq!((by_band, by_sex), (all, all));
        assert_eq!(p.count(2025, &region, Some(Sex::Unknown), &ALL_AGES), 0);
        assert!(p.count(2025, &region, None, &AGE_80_PLUS) > 0);
    }

    #[test]
    fn nearest_year_and_bad_csv() {
        let p = Population::embedded();
        assert_eq!(p.nearest_year(2025), Some(2025));
        assert_eq!(p.nearest_year(2019), Some(2024));
        assert_eq!(p.nearest_year(2030), Some(2026));
        assert_eq!(Population::from_csv("x"), Err(PopulationError::Header));
        assert!(matches!(
            Population::from_csv("aar,kommunenummer,kjonn,alder,personer\n2024,0301,3,0,5"),
            Err(PopulationError::Row { line: 2, .. })
        ));
        let small =
            Population::from_csv("aar,kommunenummer,kjonn,alder,personer\n2027,0301,1,105,7\n")
                .unwrap();
        assert_eq!(small.count(2027, &Region::Nation, None, &AGE_80_PLUS), 7);
    }
}
