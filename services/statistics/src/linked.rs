//! The linked-tables model of disclosure control (SPEC 6, "secondary across linked
//! tables"), and the audit that checks a release against it.
//!
//! The per-table rule of [`crate::disclosure`] keeps a reader from recomputing a
//! suppressed cell from one line of one table. Lines combine, though, and the same
//! persons appear in several figures and regions: an independent audit recovered a
//! quarter of the primary cells of a release by solving all of its additive relations
//! at once. This module states that attack in the project's own terms.
//!
//! **The model.** Every person count of every table is an unknown `y >= 0`, integral.
//! A published cell fixes its unknown. *Relations* are linear equations between person
//! counts, collected from three families and kept only where they hold on the exact
//! values (a relation that happens to hold is one a reader could believe, so modelling
//! it can only make the audit stricter):
//! - **within a table:** every margin of the table (sexes to both, bands to their
//!   KOSTRA band and to all ages), as [`crate::disclosure`] finds them;
//! - **across tables of one region and year:** the same persons counted by two figures
//!   (`I1`'s numerator is `T2`'s code 21, 80+; `I11`'s denominator is `T2`'s code-21
//!   residents 67-79 plus 80+; a group of `I4` is the sum of its codes when nobody holds
//!   two; every population denominator of the same band is one number; ...), see
//!   [`identities`];
//! - **across regions:** a county is the sum of its municipalities and the nation the
//!   sum of its counties, cell by cell, for every figure (true when nobody moved).
//!
//! **The audit** ([`summarise`], in `linked/audit.rs`) splits the suppressed person counts into
//! connected components (cells sharing a relation), and per component finds the cells
//! that exact elimination determines (a unit vector in the row space of the relations
//! restricted to the suppressed cells, computed over the prime field 2^61 - 1) and the
//! cells that interval propagation over all relations and non-negativity pins to an
//! interval narrower than [`WIDTH`]. Propagation is an outer bound: a cell it reports is
//! certainly narrowed; a cell it passes may still be narrowed by linear or integer
//! programming, which is why the audit reports and does not certify.
//!
//! The module is pure: no I/O, clock or randomness.

use std::collections::{BTreeMap, HashMap};

use kpr_domain::ServiceCode;
use kpr_projection::table::Table;

use crate::disclosure;

mod audit;
mod field;
mod suppress;
pub use audit::{Finding, Summary, summarise};
pub use suppress::{Protection, protect};

/// The narrowest interval a suppressed person count may be known to lie in.
pub const WIDTH: i64 = 5;

/// Which family a relation comes from (reported by the audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// A margin of one table.
    WithinTable,
    /// The same persons in two figures of one region.
    AcrossTables,
    /// A county and its municipalities, the nation and its counties.
    AcrossRegions,
}

impl Family {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Family::WithinTable => "within-table",
            Family::AcrossTables => "across-tables",
            Family::AcrossRegions => "across-regions",
        }
    }
}

/// A linear relation `sum(coefficient * cell) = 0` over global cell ids.
#[derive(Clone, Debug)]
pub struct Relation {
    /// Cell ids and coefficients.
    pub terms: Vec<(usize, i64)>,
    /// Where it comes from.
    pub family: Family,
}

/// Global cell ids over a slice of tables: table `t`'s offset `o` is `base[t] + o`.
pub struct Cells {
    base: Vec<usize>,
}

impl Cells {
    /// The ids of `tables`.
    pub fn new(tables: &[Table]) -> Cells {
        let mut base = Vec::with_capacity(tables.len() + 1);
        let mut next = 0;
        for table in tables {
            base.push(next);
            next += table.values.len();
        }
        base.push(next);
        Cells { base }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.base.last().copied().unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Global id of `offset` in table `table`.
    pub fn id(&self, table: usize, offset: usize) -> usize {
        self.base[table] + offset
    }

    /// Table and offset of a global id.
    pub fn locate(&self, id: usize) -> (usize, usize) {
        let table = self.base.partition_point(|&b| b <= id) - 1;
        (table, id - self.base[table])
    }
}

/// Whether `offset` of `table` is a person count.
pub fn is_person_cell(table: &Table, offset: usize) -> bool {
    let measures = table.measures.len();
    measures > 0 && disclosure::is_person_count(table.measures[offset % measures].quantity)
}

/// An exact integral value, if the cell has one.
fn integral(table: &Table, offset: usize) -> Option<i64> {
    let value = table.values.get(offset).copied().flatten()?;
    (value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15).then_some(value as i64)
}

/// The region code of a table (its `Region` dimension's one category).
pub fn region_of(table: &Table) -> Option<&str> {
    let dim = table.dimension("Region")?;
    match table.dimensions[dim].categories.as_slice() {
        [only] => Some(only.code.as_str()),
        _ => None,
    }
}

/// The region a region is part of: a municipality's county (`EK` and its first two
/// digits), a county's nation (`EAK`).
pub fn parent_region(code: &str) -> Option<String> {
    if code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()) {
        Some(format!("EK{}", &code[..2]))
    } else if code.starts_with("EK") {
        Some("EAK".to_string())
    } else {
        None
    }
}

/// The year a table refers to (the first four characters of its reference).
fn year_of(table: &Table) -> &str {
    table.meta.reference.get(..4).unwrap_or("")
}

/// Every relation between the person counts of `tables` that holds on their exact
/// values, in a deterministic order.
pub fn relations(tables: &[Table]) -> Vec<Relation> {
    let cells = Cells::new(tables);
    let mut out = Vec::new();
    let keep = |terms: Vec<(usize, i64)>, family: Family, out: &mut Vec<Relation>| {
        if terms.len() < 2 {
            return;
        }
        let mut sum: i64 = 0;
        for &(id, coefficient) in &terms {
            let (t, o) = cells.locate(id);
            let Some(value) = integral(&tables[t], o) else {
                return;
            };
            sum += coefficient * value;
        }
        if sum == 0 {
            out.push(Relation { terms, family });
        }
    };
    // Within each table.
    for (t, table) in tables.iter().enumerate() {
        for relation in disclosure::person_relations(table) {
            let (margin, items) = relation
                .split_last()
                .map(|(m, i)| (*m, i.to_vec()))
                .unwrap_or_default();
            let mut terms: Vec<(usize, i64)> = items.iter().map(|&o| (cells.id(t, o), 1)).collect();
            terms.push((cells.id(t, margin), -1));
            keep(terms, Family::WithinTable, &mut out);
        }
    }
    // Across regions: per figure and reference, each region with children.
    let mut by_frame: BTreeMap<(&str, &str), BTreeMap<&str, usize>> = BTreeMap::new();
    for (t, table) in tables.iter().enumerate() {
        if let Some(region) = region_of(table) {
            by_frame
                .entry((table.figure.as_str(), table.meta.reference.as_str()))
                .or_default()
                .insert(region, t);
        }
    }
    for regions in by_frame.values() {
        let mut children: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (region, &t) in regions {
            if let Some(parent) = parent_region(region) {
                children.entry(parent).or_default().push(t);
            }
        }
        for (parent, kids) in &children {
            let Some(&p) = regions.get(parent.as_str()) else {
                continue;
            };
            let size = tables[p].values.len();
            if kids.iter().any(|&k| tables[k].values.len() != size) {
                continue;
            }
            for offset in 0..size {
                if !is_person_cell(&tables[p], offset) {
                    continue;
                }
                let mut terms: Vec<(usize, i64)> =
                    kids.iter().map(|&k| (cells.id(k, offset), 1)).collect();
                terms.push((cells.id(p, offset), -1));
                keep(terms, Family::AcrossRegions, &mut out);
            }
        }
    }
    // Across the tables of one region and year.
    let mut by_region: BTreeMap<(&str, &str), HashMap<&str, usize>> = BTreeMap::new();
    for (t, table) in tables.iter().enumerate() {
        if let Some(region) = region_of(table) {
            by_region
                .entry((region, year_of(table)))
                .or_default()
                .insert(table.figure.as_str(), t);
        }
    }
    let identities = identities();
    for figures in by_region.values() {
        let resolve = |at: &At| -> Option<usize> {
            let &t = figures.get(at.figure)?;
            let offset = offset_of(&tables[t], &at.coords, at.measure)?;
            is_person_cell(&tables[t], offset).then(|| cells.id(t, offset))
        };
        'identity: for (left, right) in &identities {
            let mut terms = Vec::new();
            for (side, coefficient) in [(left, 1), (right, -1)] {
                for at in side {
                    let Some(id) = resolve(at) else {
                        continue 'identity;
                    };
                    terms.push((id, coefficient));
                }
            }
            // The same cell on both sides (a one-code group) says nothing.
            let mut net: BTreeMap<usize, i64> = BTreeMap::new();
            for (id, c) in terms {
                *net.entry(id).or_default() += c;
            }
            let terms: Vec<(usize, i64)> = net.into_iter().filter(|&(_, c)| c != 0).collect();
            keep(terms, Family::AcrossTables, &mut out);
        }
    }
    out
}

/// A cell named by figure, category codes and measure code.
#[derive(Clone, Debug)]
pub struct At {
    figure: &'static str,
    coords: Vec<(&'static str, String)>,
    measure: &'static str,
}

fn at(figure: &'static str, coords: &[(&'static str, &str)], measure: &'static str) -> At {
    At {
        figure,
        coords: coords.iter().map(|(d, c)| (*d, c.to_string())).collect(),
        measure,
    }
}

/// The offset of a named cell: the given codes; a dimension not named is its only
/// category, or its total.
fn offset_of(table: &Table, coords: &[(&'static str, String)], measure: &str) -> Option<usize> {
    let mut index = Vec::with_capacity(table.dimensions.len());
    for dimension in &table.dimensions {
        let wanted = if dimension.id == "ContentsCode" {
            Some(measure)
        } else {
            coords
                .iter()
                .find(|(d, _)| *d == dimension.id)
                .map(|(_, c)| c.as_str())
        };
        let i = match wanted {
            Some(code) => dimension.categories.iter().position(|c| c.code == code)?,
            None if dimension.categories.len() == 1 => 0,
            None => dimension.total?,
        };
        index.push(i);
    }
    let offset = table.offset(&index);
    (offset < table.values.len()).then_some(offset)
}

/// The cross-table identities of one region and year: pairs of sums of named cells
/// that count the same persons (kept where they hold on the data).
pub fn identities() -> Vec<(Vec<At>, Vec<At>)> {
    const ALDER: [&str; 9] = [
        "000-017", "018-049", "050-066", "067-079", "080-089", "090+", "000-066", "080+", "999",
    ];
    let codes: Vec<ServiceCode> = (1..=29)
        .filter_map(|n| ServiceCode::from_number(n).ok())
        .collect();
    let code = |c: &ServiceCode| format!("{:02}", c.number());
    let t = |figure: &'static str, c: &ServiceCode, band: &str, sex: &str| {
        at(
            figure,
            &[("Tjeneste", &code(c)), ("Alder", band), ("Kjonn", sex)],
            "personer",
        )
    };
    let t2 = |c: &ServiceCode, band: &str| t("T2", c, band, "0");
    let i4 = |group: &str, band: &str, measure: &'static str| {
        at("I4", &[("Tjeneste", group), ("Alder", band)], measure)
    };
    let sum_t2 = |pred: &dyn Fn(&ServiceCode) -> bool, band: &str| -> Vec<At> {
        codes
            .iter()
            .filter(|c| pred(c))
            .map(|c| t2(c, band))
            .collect()
    };
    let one = |figure: &'static str, measure: &'static str| vec![at(figure, &[], measure)];
    let long = ServiceCode::from_number(21).ok();
    let nursing = ServiceCode::from_number(15).ok();
    let mut out: Vec<(Vec<At>, Vec<At>)> = Vec::new();
    let groups: Vec<(String, Vec<ServiceCode>)> = kpr_domain::ServiceGroup::ALL
        .iter()
        .map(|g| {
            (
                g.name().to_string(),
                codes.iter().copied().filter(|c| c.group() == *g).collect(),
            )
        })
        .collect();
    for band in ALDER {
        // Population denominators of one band: the same number everywhere.
        for (group, _) in &groups {
            out.push((
                vec![i4(group, band, "nevner")],
                vec![i4("all", band, "nevner")],
            ));
        }
        out.push((
            vec![at("I14", &[("Alder", band), ("Kjonn", "0")], "nevner")],
            vec![i4("all", band, "nevner")],
        ));
        // A group is its codes, all services its groups (when nobody holds two).
        for (group, members) in &groups {
            out.push((
                vec![i4(group, band, "teller")],
                members.iter().map(|c| t2(c, band)).collect(),
            ));
        }
        out.push((
            vec![i4("all", band, "teller")],
            groups.iter().map(|(g, _)| i4(g, band, "teller")).collect(),
        ));
        out.push((vec![i4("all", band, "teller")], sum_t2(&|_| true, band)));
        // Coverage during the year is the year's recipients of any code.
        for sex in ["1", "2", "9", "0"] {
            out.push((
                vec![at("I14", &[("Alder", band), ("Kjonn", sex)], "teller")],
                codes.iter().map(|c| t("T1", c, band, sex)).collect(),
            ));
        }
    }
    // The 80+ shares.
    for figure in ["I1", "I2", "I3", "I9"] {
        out.push((one(figure, "nevner"), vec![i4("all", "080+", "nevner")]));
    }
    if let Some(long) = &long {
        out.push((one("I1", "teller"), vec![t2(long, "080+")]));
    }
    out.push((one("I2", "teller"), sum_t2(&|c| c.is_institution(), "080+")));
    out.push((
        one("I2", "teller"),
        vec![i4("institution", "080+", "teller")],
    ));
    out.push((one("I3", "teller"), sum_t2(&|c| c.is_home(), "080+")));
    out.push((one("I3", "teller"), vec![i4("home", "080+", "teller")]));
    out.push((
        one("I9", "teller"),
        codes
            .iter()
            .filter(|c| c.is_short())
            .map(|c| t("T1", c, "080+", "0"))
            .collect(),
    ));
    // Hours: T3's persons are T2's code totals; I5 is code 15; I6 the hour codes.
    let t3_codes: Vec<ServiceCode> = codes
        .iter()
        .copied()
        .filter(|c| c.measure() == kpr_domain::service::Measure::Hours)
        .collect();
    for c in &t3_codes {
        out.push((
            vec![at("T3", &[("Tjeneste", &code(c))], "personer")],
            vec![t2(c, "999")],
        ));
    }
    if let Some(nursing) = &nursing {
        out.push((one("I5", "personer"), vec![t2(nursing, "999")]));
    }
    out.push((
        one("I6", "personer"),
        sum_t2(&|c| c.is_hours_total(), "999"),
    ));
    // Home services in I7 and I8.
    for home in [
        sum_t2(&|c| c.is_home(), "999"),
        vec![i4("home", "999", "teller")],
    ] {
        out.push((one("I7", "nevner"), home));
    }
    let i8 = |group: &str| at("I8", &[("Gruppe", group)], "personer");
    out.push((vec![i8("home_0_66")], sum_t2(&|c| c.is_home(), "000-066")));
    out.push((vec![i8("home_0_66")], vec![i4("home", "000-066", "teller")]));
    let mut home_67 = sum_t2(&|c| c.is_home(), "067-079");
    home_67.extend(sum_t2(&|c| c.is_home(), "080+"));
    out.push((vec![i8("home_67")], home_67));
    out.push((
        vec![i8("home_67")],
        vec![
            i4("home", "067-079", "teller"),
            i4("home", "080+", "teller"),
        ],
    ));
    // Long-term residents: I8, I10-I13.
    if let Some(long) = &long {
        for resident in [
            vec![i8("long_term")],
            one("I10", "nevner"),
            one("I13", "nevner"),
        ] {
            out.push((resident, vec![t2(long, "999")]));
        }
        for resident in [one("I11", "nevner"), one("I12", "beboere_67")] {
            out.push((resident, vec![t2(long, "067-079"), t2(long, "080+")]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpr_projection::table::{Category, Dimension, Measure, Quantity, Status, TableMeta};

    fn dim(id: &str, codes: &[&str], total: Option<usize>, partition: &[usize]) -> Dimension {
        Dimension {
            id: id.into(),
            label: id.into(),
            categories: codes
                .iter()
                .map(|c| Category {
                    code: c.to_string(),
                    label: c.to_string(),
                })
                .collect(),
            total,
            partitions: if partition.is_empty() {
                Vec::new()
            } else {
                vec![partition.to_vec()]
            },
        }
    }

    fn measure(quantity: Quantity) -> Measure {
        Measure {
            quantity,
            numerator: None,
            denominator: None,
        }
    }

    /// A table of `figure` for `region`: the given dimensions between Region and
    /// ContentsCode, and the measures' codes and quantities; protected per table.
    fn table(
        figure: &str,
        region: &str,
        middle: Vec<Dimension>,
        measures: &[(&str, Quantity)],
        values: &[f64],
    ) -> Table {
        let mut dimensions = vec![dim("Region", &[region], None, &[])];
        dimensions.extend(middle);
        let codes: Vec<&str> = measures.iter().map(|(c, _)| *c).collect();
        dimensions.push(dim("ContentsCode", &codes, None, &[]));
        let mut t = Table {
            figure: figure.into(),
            label: figure.into(),
            dimensions,
            measures: measures.iter().map(|(_, q)| measure(*q)).collect(),
            values: values.iter().map(|v| Some(*v)).collect(),
            status: vec![Status::Shown; values.len()],
            meta: TableMeta {
                log_position: Vec::new(),
                definition_version: 1,
                population_year: None,
                population_wanted: None,
                notes: Vec::new(),
                reference: "2024-12-31".into(),
                exact: true,
            },
        };
        disclosure::protect(&mut t);
        t
    }

    /// The same table as published before any protection.
    fn raw(mut t: Table) -> Table {
        t.status = vec![Status::Shown; t.values.len()];
        t.meta.exact = true;
        t
    }

    /// T2 code 21 in 1508: 67-79 one man, no woman; 80+ six men, five women
    /// (protected per table).
    fn long_term_t2() -> Table {
        table(
            "T2",
            "1508",
            vec![
                dim("Tjeneste", &["21"], None, &[]),
                dim("Alder", &["067-079", "080+", "999"], Some(2), &[0, 1]),
                dim("Kjonn", &["1", "2", "0"], Some(2), &[0, 1]),
            ],
            &[("personer", Quantity::Persons)],
            &[1.0, 0.0, 1.0, 6.0, 5.0, 11.0, 7.0, 5.0, 12.0],
        )
    }

    /// I1 in 1508, whose numerator is [`long_term_t2`]'s 80+ total (11 of 40).
    fn long_term_i1() -> Table {
        table(
            "I1",
            "1508",
            Vec::new(),
            &[
                ("teller", Quantity::Persons),
                ("nevner", Quantity::Population),
                ("andel", Quantity::Share),
            ],
            &[11.0, 40.0, 11.0 / 40.0],
        )
    }

    fn by_sex(region: &str, values: &[f64]) -> Table {
        table(
            "T2",
            region,
            vec![dim("Kjonn", &["1", "2", "9", "0"], Some(3), &[0, 1, 2])],
            &[("personer", Quantity::Persons)],
            values,
        )
    }

    #[test]
    fn a_suppressed_zero_beside_a_primary_cell_is_narrowed_within_the_table() {
        // 1 man, 0 women, 20 of unknown sex: the per-line rule hides the 0 with the 1,
        // and the published 21 and 20 leave both in [0, 1].
        let tables = vec![by_sex("0301", &[1.0, 0.0, 20.0, 21.0])];
        assert_eq!(tables[0].status[1], Status::SuppressedSecondary);
        let (summary, findings) = summarise(&tables);
        assert_eq!(summary.narrowed, [2, 0, 0], "{summary:?}");
        assert_eq!(summary.exact, [0, 0, 0]);
        assert!(!summary.holds());
        assert_eq!((findings[0].low, findings[0].high), (0, Some(1)));
        // With a wide enough partner the same line holds.
        let tables = vec![by_sex("0301", &[3.0, 7.0, 20.0, 30.0])];
        let (summary, findings) = summarise(&tables);
        assert!(summary.holds(), "{summary:?} {findings:?}");
        assert_eq!(summary.suppressed_persons, 2);
    }

    #[test]
    fn a_municipality_is_recovered_from_its_county_and_siblings() {
        let tables = vec![
            by_sex("4601", &[2.0, 10.0, 6.0, 18.0]),
            by_sex("4602", &[20.0, 20.0, 6.0, 46.0]),
            by_sex("EK46", &[22.0, 30.0, 12.0, 64.0]),
        ];
        let (summary, findings) = summarise(&tables);
        // 4601's 2 men and 6 of unknown sex: [0, 8] from their own table, exact with
        // the county and the sibling.
        assert_eq!(summary.exact, [0, 0, 2], "{summary:?}");
        assert_eq!(summary.narrowed, [0, 0, 0]);
        let rel: Vec<_> = relations(&tables)
            .into_iter()
            .filter(|r| r.family == Family::AcrossRegions)
            .map(|r| r.terms)
            .collect();
        assert_eq!(summary.relations[2], 4, "{rel:?}");
        assert!(
            findings
                .iter()
                .all(|f| f.exact && f.families.contains(&Family::AcrossRegions))
        );
        // Two who moved within the county count once there: the sums break and are
        // not believed.
        let tables = vec![
            by_sex("4601", &[2.0, 10.0, 6.0, 18.0]),
            by_sex("4602", &[20.0, 20.0, 6.0, 46.0]),
            by_sex("EK46", &[21.0, 29.0, 11.0, 61.0]),
        ];
        let (summary, _) = summarise(&tables);
        assert!(summary.holds(), "{summary:?}");
        assert_eq!(summary.relations[2], 0);
    }

    #[test]
    fn long_term_residents_are_recovered_across_figures() {
        // T2 code 21: 67-79 one man, no woman; 80+ six men, five women.
        let t2 = long_term_t2();
        let hidden = t2.status.iter().filter(|s| **s != Status::Shown).count();
        assert_eq!(hidden, 4, "{:?}", t2.status);
        let alone = vec![t2.clone()];
        assert!(summarise(&alone).0.holds(), "the table alone holds");
        // I1's numerator (code-21 residents 80+) is T2's hidden 80+ cell, published.
        let i1 = long_term_i1();
        let (summary, findings) = summarise(&[t2, i1]);
        assert_eq!(summary.exact, [0, 4, 0], "{summary:?}");
        assert_eq!(summary.relations[1], 1);
        assert!(findings.iter().all(|f| f.low == f.value));
    }

    #[test]
    fn linked_protection_holds_where_per_table_protection_does_not() {
        let tables = vec![
            raw(by_sex("4601", &[2.0, 10.0, 6.0, 18.0])),
            raw(by_sex("4602", &[20.0, 20.0, 6.0, 46.0])),
            raw(by_sex("EK46", &[22.0, 30.0, 12.0, 64.0])),
        ];
        let mut protected = tables.clone();
        let done = protect(&mut protected);
        assert!(done.findings.is_empty(), "{done:?}");
        let (summary, findings) = summarise(&protected);
        assert!(summary.holds(), "{summary:?} {findings:?}");
        assert_eq!(protected[0].status[0], Status::SuppressedPrimary);
        assert_eq!(done.primary, 1);
        assert!(done.secondary + done.widened >= 2, "{done:?}");
        // Deterministic: the same tables give the same statuses.
        let mut again = tables.clone();
        protect(&mut again);
        let statuses = |t: &[Table]| t.iter().map(|t| t.status.clone()).collect::<Vec<_>>();
        assert_eq!(statuses(&again), statuses(&protected));
    }

    #[test]
    fn linked_protection_covers_the_same_persons_in_two_figures() {
        let t2 = raw(long_term_t2());
        let i1 = raw(long_term_i1());
        let mut tables = vec![t2, i1];
        let done = protect(&mut tables);
        let (summary, findings) = summarise(&tables);
        assert!(summary.holds(), "{summary:?} {findings:?} {done:?}");
        // I1's numerator is T2's 80+ total: hidden in one, hidden in the other.
        let t2_80 = tables[0].status[5];
        assert_eq!(tables[1].status[0] == Status::Shown, t2_80 == Status::Shown);
        assert_eq!(tables[0].status[0], Status::SuppressedPrimary);
    }

    #[test]
    fn linked_protection_leaves_nothing_determined_on_random_tables() {
        // Small counts in three municipalities of one county, by sex and two bands:
        // many primary cells, every relation family but the cross-figure one.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut narrowed_once = 0;
        for _ in 0..40 {
            let munis = ["3401", "3403", "3405"];
            let mut county = [0.0f64; 12];
            let mut tables = Vec::new();
            for m in munis {
                let mut v = [0.0f64; 12];
                // Alder (2 bands + all) x Kjonn (m, f, u, both).
                for band in 0..2 {
                    for sex in 0..3 {
                        let x = (next() % 9) as f64;
                        let x = if x > 6.0 { 0.0 } else { x };
                        v[band * 4 + sex] = x;
                    }
                }
                for band in 0..2 {
                    v[band * 4 + 3] = (0..3).map(|s| v[band * 4 + s]).sum();
                }
                for sex in 0..4 {
                    v[8 + sex] = v[sex] + v[4 + sex];
                }
                for (c, x) in county.iter_mut().zip(v) {
                    *c += x;
                }
                tables.push(raw(table(
                    "T2",
                    m,
                    vec![
                        dim("Alder", &["000-066", "067+", "999"], Some(2), &[0, 1]),
                        dim("Kjonn", &["1", "2", "9", "0"], Some(3), &[0, 1, 2]),
                    ],
                    &[("personer", Quantity::Persons)],
                    &v,
                )));
            }
            let mut c = tables[0].clone();
            c.dimensions[0].categories[0].code = "EK34".into();
            c.values = county.iter().map(|x| Some(*x)).collect();
            tables.push(c);
            // Elimination alone leaves nothing determined; the width pass then also
            // leaves nothing narrowed.
            let mut once = tables.clone();
            let done = suppress::protect_rounds(&mut once, 1);
            let (summary, findings) = summarise(&once);
            assert_eq!(
                summary.exact,
                [0, 0, 0],
                "{summary:?} {findings:?} {done:?}"
            );
            if summary.narrowed != [0, 0, 0] {
                narrowed_once += 1;
            }
            let done = protect(&mut tables);
            let (summary, findings) = summarise(&tables);
            assert_eq!(
                summary.exact,
                [0, 0, 0],
                "{summary:?} {findings:?} {done:?}"
            );
            assert_eq!(
                summary.narrowed,
                [0, 0, 0],
                "{summary:?} {findings:?} {done:?}"
            );
            for table in &tables {
                for (o, v) in table.values.iter().enumerate() {
                    if v.is_some_and(disclosure::is_small) {
                        assert_ne!(table.status[o], Status::Shown);
                    }
                }
            }
        }
        // The width pass had work to do: elimination alone narrows some of them.
        assert!(narrowed_once > 0, "the data never needed the width pass");
    }
}
