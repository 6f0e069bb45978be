//! The register's own national figures next to the published ones (SPEC 9, SPEC 5.3),
//! for checking that the national data set ([`crate::national`]) is realistic: the
//! share of each age band with a service during a year, the women's share and the
//! number of recipients, the need-level mix of everyone with a service on 31 December,
//! the long-term residents' extensive share, and inhabitants 80+ in a long-term stay
//! (I1) and with home services (I3) on 31 December.
//!
//! Every register figure is computed by kpr-projection from a read model, exactly as
//! the statistics API computes it; only the need-level mix over all services, which
//! no published table holds, is counted here from the same snapshot with
//! [`figures::need_level`].

use std::collections::HashSet;

use kpr_domain::Date;
use kpr_projection::bands::{ALL_AGES, DETAILED};
use kpr_projection::figures::{self, ALDER, Figure, NeedLevel, Query};
use kpr_projection::model::ReadModel;
use kpr_projection::population::{Population, Region};
use kpr_projection::snapshot::Snapshot;
use kpr_projection::table::Table;

use crate::national::PUBLISHED_BAND_SHARES;

/// Recipients of any service during 2022 (SPEC 9).
pub const PUBLISHED_RECIPIENTS: f64 = 390_368.0;
/// Women among them (224 760 of 390 368).
pub const PUBLISHED_WOMEN_SHARE: f64 = 224_760.0 / 390_368.0;
/// Need-level mix of all service users on 31 December (SPEC 5.3): some or limited,
/// medium to large, extensive, unknown.
pub const PUBLISHED_NEED_MIX: [f64; 4] = [0.367, 0.339, 0.232, 0.062];
/// Long-term residents with extensive needs (SPEC 5.3).
pub const PUBLISHED_LONG_TERM_EXTENSIVE: f64 = 0.845;
/// Inhabitants 80+ in a long-term stay: about 9-11 % (issue 5), the middle of it.
pub const PUBLISHED_I1: f64 = 0.10;
/// Inhabitants 80+ with home services, 2023 (SPEC 9).
pub const PUBLISHED_I3: f64 = 0.269;

/// One figure: the register's value next to the published one.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Figure id ("T1", "I1", "need", …).
    pub figure: &'static str,
    /// What the value is of, as `key=value` words (e.g. `band=80-89 year=2025`).
    pub key: String,
    /// The register's value.
    pub register: f64,
    /// The published value.
    pub published: f64,
}

/// The register's national figures of `year` (during the year, and on 31 December)
/// next to the published ones, with the register's counts and shares of the population
/// divided by `scale` (the data set's share of the country), so that they read as
/// national figures. Also the number of recipients during each year from
/// `first_year` to `year`, to show how steady the data set is.
pub fn national_figures(model: &ReadModel, first_year: i32, year: i32, scale: f64) -> Vec<Line> {
    let scale = if scale > 0.0 { scale } else { 1.0 };
    let population = Population::embedded();
    let snapshot = Snapshot::take(model, &Region::Nation);
    let position = model.reflected();
    let table = |figure: Figure, y: i32| -> Option<Table> {
        let query = Query::for_year(figure, Region::Nation, y)?;
        Some(figures::compute_from(
            &snapshot, &position, population, &query,
        ))
    };
    let mut lines = Vec::new();
    for y in first_year..=year {
        if let Some(t) = table(Figure::I14, y) {
            lines.push(Line {
                figure: "T1",
                key: format!("measure=recipients year={y}"),
                register: i14_value(&t, ALDER.len() - 1, 3, 0) / scale,
                published: PUBLISHED_RECIPIENTS,
            });
        }
    }
    if let Some(t) = table(Figure::I14, year) {
        for (band, published) in DETAILED.iter().zip(PUBLISHED_BAND_SHARES) {
            let ai = ALDER.iter().position(|b| b == band).unwrap_or(0);
            lines.push(Line {
                figure: "T1",
                key: format!("measure=share band={} year={year}", band_name(band.code)),
                register: i14_value(&t, ai, 3, 2) / scale,
                published,
            });
        }
        let all = ALDER
            .iter()
            .position(|b| *b == ALL_AGES)
            .unwrap_or(ALDER.len() - 1);
        let women = i14_value(&t, all, 1, 0);
        let both = i14_value(&t, all, 3, 0);
        lines.push(Line {
            figure: "T1",
            key: format!("measure=women_share year={year}"),
            register: if both > 0.0 { women / both } else { 0.0 },
            published: PUBLISHED_WOMEN_SHARE,
        });
    }
    let Some(day) = Date::from_ymd(year, 12, 31) else {
        return lines;
    };
    let mix = need_mix(&snapshot, day);
    for (name, (register, published)) in ["some_limited", "medium_to_large", "extensive", "unknown"]
        .into_iter()
        .zip(mix.into_iter().zip(PUBLISHED_NEED_MIX))
    {
        lines.push(Line {
            figure: "need",
            key: format!("level={name} date={day}"),
            register,
            published,
        });
    }
    if let Some(t) = table(Figure::I8, year) {
        // Groups: home 0-66, home 67+, long-term; measures: extensive, persons, share.
        lines.push(Line {
            figure: "I8",
            key: format!("group=long_term date={day}"),
            register: value(&t, &[0, 2, 0, 2]),
            published: PUBLISHED_LONG_TERM_EXTENSIVE,
        });
    }
    for (figure, name, published) in [
        (Figure::I1, "I1", PUBLISHED_I1),
        (Figure::I3, "I3", PUBLISHED_I3),
    ] {
        if let Some(t) = table(figure, year) {
            lines.push(Line {
                figure: name,
                key: format!("date={day}"),
                register: value(&t, &[0, 0, 2]) / scale,
                published,
            });
        }
    }
    lines
}

/// The share of persons with any service on `day` at each need level: some or
/// limited, medium to large, extensive, unknown.
pub fn need_mix(snapshot: &Snapshot, day: Date) -> [f64; 4] {
    let mut persons = HashSet::new();
    for service in &snapshot.services {
        if service.episode.as_ref().is_some_and(|e| e.active_on(day)) {
            persons.insert(service.person);
        }
    }
    let mut counts = [0u64; 4];
    for pseudonym in &persons {
        let level = snapshot
            .people
            .get(pseudonym)
            .map_or(NeedLevel::Unknown, |p| figures::need_level(p, day));
        let index = match level {
            NeedLevel::SomeLimited => 0,
            NeedLevel::MediumToLarge => 1,
            NeedLevel::Extensive => 2,
            NeedLevel::Unknown => 3,
        };
        counts[index] += 1;
    }
    let total = persons.len().max(1) as f64;
    counts.map(|n| n as f64 / total)
}

/// I14's value at age category `ai`, sex `si` (0 men, 1 women, 2 unknown, 3 both),
/// measure `mi` (0 persons, 1 population, 2 share).
fn i14_value(table: &Table, ai: usize, si: usize, mi: usize) -> f64 {
    value(table, &[0, ai, si, 0, mi])
}

fn value(table: &Table, coords: &[usize]) -> f64 {
    if coords.len() != table.dimensions.len() {
        return f64::NAN;
    }
    table
        .values
        .get(table.offset(coords))
        .copied()
        .flatten()
        .unwrap_or(f64::NAN)
}

/// "080-089" → "80-89", "090+" → "90+".
fn band_name(code: &str) -> String {
    code.split('-')
        .map(|part| {
            let trimmed = part.trim_start_matches('0');
            if trimmed.is_empty() || trimmed.starts_with('+') {
                format!("0{trimmed}")
            } else {
                trimmed.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_names_read_well() {
        assert_eq!(band_name("000-017"), "0-17");
        assert_eq!(band_name("080-089"), "80-89");
        assert_eq!(band_name("090+"), "90+");
    }
}
