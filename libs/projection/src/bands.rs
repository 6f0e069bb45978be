//! Age bands of SPEC 5.1: detailed `0–17, 18–49, 50–66, 67–79, 80–89, 90+` and KOSTRA
//! `0–66, 67–79, 80+`. Age on a reference date in year Y is Y − birth year.

/// An inclusive age range; `max = None` means open-ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AgeBand {
    /// Category code as published (SSB style, e.g. "067-079").
    pub code: &'static str,
    /// Label, e.g. "67-79 år".
    pub label: &'static str,
    /// Lowest age in the band.
    pub min: u16,
    /// Highest age in the band, if bounded.
    pub max: Option<u16>,
}

impl AgeBand {
    /// Whether `age` falls in the band.
    pub fn contains(&self, age: u16) -> bool {
        age >= self.min && self.max.is_none_or(|max| age <= max)
    }
}

const fn band(code: &'static str, label: &'static str, min: u16, max: Option<u16>) -> AgeBand {
    AgeBand {
        code,
        label,
        min,
        max,
    }
}

/// The detailed band set.
pub const DETAILED: [AgeBand; 6] = [
    band("000-017", "0-17 år", 0, Some(17)),
    band("018-049", "18-49 år", 18, Some(49)),
    band("050-066", "50-66 år", 50, Some(66)),
    band("067-079", "67-79 år", 67, Some(79)),
    band("080-089", "80-89 år", 80, Some(89)),
    band("090+", "90 år eller eldre", 90, None),
];

/// The KOSTRA band set.
pub const KOSTRA: [AgeBand; 3] = [
    band("000-066", "0-66 år", 0, Some(66)),
    band("067-079", "67-79 år", 67, Some(79)),
    band("080+", "80 år eller eldre", 80, None),
];

/// All ages.
pub const ALL_AGES: AgeBand = band("999", "Alle aldre", 0, None);

/// 80 years or older (I1-I3, I9).
pub const AGE_80_PLUS: AgeBand = band("080+", "80 år eller eldre", 80, None);

/// Age in year `year` of a person born in `birth_year` (0 for a birth year after it).
pub fn age_in(year: i32, birth_year: u16) -> u16 {
    u16::try_from(year - i32::from(birth_year)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_partition_all_ages() {
        for set in [&DETAILED[..], &KOSTRA[..]] {
            for age in 0..=120u16 {
                assert_eq!(
                    set.iter().filter(|b| b.contains(age)).count(),
                    1,
                    "age {age}"
                );
            }
        }
        assert_eq!(age_in(2024, 1944), 80);
        assert!(AGE_80_PLUS.contains(80) && !AGE_80_PLUS.contains(79));
    }
}
