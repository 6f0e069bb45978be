//! Disclosure control (SPEC 6, with the "Disclosure tables" and "Small rules" readings
//! of SPEC 5.4), applied to a [`Table`] before it is published.
//!
//! - **Primary:** a cell of a person count ([`Quantity::Persons`] or
//!   [`Quantity::Population`]) holding 1-4 is [`Status::SuppressedPrimary`]. Zero is
//!   shown.
//! - **Secondary:** for every person-count measure separately, the cells are grouped
//!   into *relations*, sets of cells whose items add up to a margin. Every dimension
//!   (other than `ContentsCode`) with a `total` and non-empty `partitions` contributes,
//!   for each of its partitions `P` with margin `t` and for each fixed combination of
//!   the other dimensions' categories (margins included), the relation
//!   `{(p, ..) : p in P} + (t, ..)`. A relation with exactly one suppressed cell would
//!   let a reader recompute that cell, so the smallest other not-yet-suppressed cell of
//!   the relation becomes [`Status::SuppressedSecondary`]: zeros may be chosen, and ties
//!   go to the first cell in relation order (the items in partition order, then the
//!   margin; for `Kjonn` male, female, unknown, both). This repeats over all relations
//!   until nothing changes.
//! - **Nested subtotals:** when one partition is coarser than another (KOSTRA `000-066`
//!   is the sum of the detailed `000-017`, `018-049` and `050-066`), the coarse cell is
//!   a margin of the finer ones too. The table type does not record this nesting, so it
//!   is read from age-range category codes (`"018-049"`, `"090+"`): a category of one
//!   partition whose range is exactly tiled by the ranges of categories of another
//!   partition of the same dimension gives the extra relation `those cells + itself`.
//!   Without it the published KOSTRA bands would give away suppressed detailed bands.
//! - **Derived measures:** a cell whose `numerator` or `denominator` measure (at the
//!   same coordinates) is suppressed, or is a person count of 1-4, is suppressed too;
//!   a [`Quantity::Percentile`] is suppressed when its `numerator` (the number of values
//!   it is based on) is 1-4, whatever that measure's quantity. The cause carries over:
//!   primary if any cause is primary, else secondary. Sums of hours and days are not
//!   suppressed on their own, only through their `numerator`.
//!
//! Values are never changed; only `status` is, and a cell once suppressed stays
//! suppressed. The module is pure: no I/O, clock or randomness.

use kpr_projection::table::{Dimension, Quantity, Status, Table};

/// Whether a person count is suppressed by the primary rule (1..=4).
pub fn is_small(count: f64) -> bool {
    (1.0..=4.0).contains(&count)
}

/// Applies primary and secondary suppression to a table in place (values stay; status
/// marks suppressed cells).
///
/// Afterwards `status` has one entry per value, no relation of a person-count measure
/// has exactly one suppressed cell, and `meta.exact` is `false`. Cells already
/// suppressed on entry stay suppressed. A malformed table (values not matching the
/// dimensions, or a last dimension not matching `measures`) cannot be checked, so
/// every cell of it is suppressed.
pub fn protect(table: &mut Table) {
    if !protect_primary(table) {
        return;
    }
    let Some(shape) = Shape::of(table) else {
        return;
    };
    let relations = relations(table, &shape);
    loop {
        while secondary_pass(table, &relations) {}
        // Only a derived person count (unusual) can break a relation again.
        if !protect_derived(table) {
            break;
        }
    }
}

/// The primary rule alone (for [`crate::linked::protect`], which decides the secondary
/// suppressions of a whole release at once): person counts of 1-4 become
/// [`Status::SuppressedPrimary`], `meta.exact` becomes `false`. A malformed table is
/// suppressed whole, as in [`protect`]; whether it was well-formed is returned.
pub fn protect_primary(table: &mut Table) -> bool {
    table.meta.exact = false;
    let cells = table.values.len();
    table.status.resize(cells, Status::Shown);
    let Some(shape) = Shape::of(table) else {
        for status in &mut table.status {
            if *status == Status::Shown {
                *status = Status::SuppressedSecondary;
            }
        }
        return false;
    };
    primary(table, &shape);
    true
}

/// The derived rule alone, until nothing changes; whether it suppressed a person
/// count (which the caller must then protect like any other suppressed count).
pub fn protect_derived(table: &mut Table) -> bool {
    let Some(shape) = Shape::of(table) else {
        return false;
    };
    let mut persons = false;
    loop {
        let (changed, person) = derived_pass(table, &shape);
        persons |= person;
        if !changed {
            return persons;
        }
    }
}

/// The margin relations of a table's person counts as lists of offsets (the items,
/// then the margin they add up to); empty for a malformed table.
pub fn person_relations(table: &Table) -> Vec<Vec<usize>> {
    match Shape::of(table) {
        Some(shape) => relations(table, &shape),
        None => Vec::new(),
    }
}

/// Whether a measure counts persons (the quantities disclosure control protects).
pub(crate) fn is_person_count(quantity: Quantity) -> bool {
    matches!(quantity, Quantity::Persons | Quantity::Population)
}

fn is_suppressed(status: Status) -> bool {
    status != Status::Shown
}

/// Sizes and strides of a well-formed table.
struct Shape {
    sizes: Vec<usize>,
    strides: Vec<usize>,
    /// Number of measures (size of the last dimension, `ContentsCode`).
    measures: usize,
}

impl Shape {
    fn of(table: &Table) -> Option<Shape> {
        let sizes = table.sizes();
        let measures = *sizes.last()?;
        if measures != table.measures.len() {
            return None;
        }
        let cells = sizes
            .iter()
            .try_fold(1usize, |acc, &size| acc.checked_mul(size))?;
        if cells != table.values.len() {
            return None;
        }
        let mut strides = vec![1; sizes.len()];
        for dim in (0..sizes.len().saturating_sub(1)).rev() {
            strides[dim] = strides[dim + 1] * sizes[dim + 1];
        }
        Some(Shape {
            sizes,
            strides,
            measures,
        })
    }

    /// Category index of dimension `dim` at `offset`.
    fn coord(&self, offset: usize, dim: usize) -> usize {
        offset / self.strides[dim] % self.sizes[dim]
    }

    /// Measure (index in `ContentsCode`) at `offset`.
    fn measure(&self, offset: usize) -> usize {
        offset % self.measures
    }
}

fn primary(table: &mut Table, shape: &Shape) {
    for (offset, value) in table.values.iter().enumerate() {
        let quantity = table.measures[shape.measure(offset)].quantity;
        if is_person_count(quantity) && value.is_some_and(is_small) {
            table.status[offset] = Status::SuppressedPrimary;
        }
    }
}

/// A relation of one dimension: category indices of the items (in order) and of the
/// margin they add up to.
struct Template {
    items: Vec<usize>,
    margin: usize,
}

/// All relations of a table as lists of offsets (items first, margin last).
fn relations(table: &Table, shape: &Shape) -> Vec<Vec<usize>> {
    let last = shape.sizes.len() - 1;
    let templates: Vec<(usize, Vec<Template>)> = table.dimensions[..last]
        .iter()
        .enumerate()
        .map(|(dim, dimension)| (dim, templates(dimension)))
        .filter(|(_, templates)| !templates.is_empty())
        .collect();
    let cells = table.values.len();
    let mut out = Vec::new();
    for (measure, m) in table.measures.iter().enumerate() {
        if !is_person_count(m.quantity) {
            continue;
        }
        for (dim, templates) in &templates {
            let stride = shape.strides[*dim];
            for template in templates {
                for offset in (measure..cells).step_by(shape.measures) {
                    if shape.coord(offset, *dim) != template.margin {
                        continue;
                    }
                    let base = offset - template.margin * stride;
                    let mut relation: Vec<usize> = template
                        .items
                        .iter()
                        .map(|&item| base + item * stride)
                        .collect();
                    relation.push(offset);
                    out.push(relation);
                }
            }
        }
    }
    out
}

/// The relations of one dimension: each partition with the margin, then the nested
/// subtotals between partitions. Empty when the dimension has no margin or partitions.
fn templates(dimension: &Dimension) -> Vec<Template> {
    let size = dimension.categories.len();
    let Some(total) = dimension.total.filter(|&total| total < size) else {
        return Vec::new();
    };
    let partitions: Vec<Vec<usize>> = dimension
        .partitions
        .iter()
        .map(|partition| {
            let mut items: Vec<usize> = Vec::with_capacity(partition.len());
            for &item in partition {
                if item < size && item != total && !items.contains(&item) {
                    items.push(item);
                }
            }
            items
        })
        .filter(|items| !items.is_empty())
        .collect();
    let mut out: Vec<Template> = partitions
        .iter()
        .map(|items| Template {
            items: items.clone(),
            margin: total,
        })
        .collect();
    let range = |index: usize| {
        dimension
            .categories
            .get(index)
            .and_then(|category| AgeRange::parse(&category.code))
    };
    for fine in &partitions {
        for coarse in &partitions {
            if std::ptr::eq(fine, coarse) {
                continue;
            }
            for &margin in coarse {
                if fine.contains(&margin) {
                    continue;
                }
                let Some(outer) = range(margin) else {
                    continue;
                };
                let mut parts: Vec<(usize, AgeRange)> = fine
                    .iter()
                    .filter_map(|&item| range(item).map(|inner| (item, inner)))
                    .filter(|(_, inner)| outer.covers(inner))
                    .collect();
                parts.sort_by_key(|(_, inner)| inner.min);
                if outer.tiled_by(parts.iter().map(|(_, inner)| *inner)) {
                    let items = fine
                        .iter()
                        .copied()
                        .filter(|item| parts.iter().any(|(part, _)| part == item))
                        .collect();
                    out.push(Template { items, margin });
                }
            }
        }
    }
    out
}

/// An age range read from a category code: `"018-049"` or `"090+"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AgeRange {
    min: u32,
    /// Highest age, `None` when open-ended.
    max: Option<u32>,
}

impl AgeRange {
    fn parse(code: &str) -> Option<AgeRange> {
        let digits = |text: &str| -> Option<u32> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        };
        if let Some(min) = code.strip_suffix('+') {
            return Some(AgeRange {
                min: digits(min)?,
                max: None,
            });
        }
        let (min, max) = code.split_once('-')?;
        let (min, max) = (digits(min)?, digits(max)?);
        (min <= max).then_some(AgeRange {
            min,
            max: Some(max),
        })
    }

    /// Whether `inner` lies within `self`.
    fn covers(&self, inner: &AgeRange) -> bool {
        inner.min >= self.min
            && match (self.max, inner.max) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(outer), Some(inner)) => inner <= outer,
            }
    }

    /// Whether `parts`, sorted by `min`, cover `self` exactly without gaps or overlaps.
    fn tiled_by(&self, parts: impl Iterator<Item = AgeRange>) -> bool {
        let mut next = Some(self.min);
        let mut any = false;
        for part in parts {
            if next != Some(part.min) {
                return false;
            }
            any = true;
            next = part.max.and_then(|max| max.checked_add(1));
            if part.max.is_none() {
                // Open-ended: must be the last part, and only tiles an open range.
                next = None;
            }
        }
        any && match self.max {
            None => next.is_none(),
            Some(max) => next == max.checked_add(1),
        }
    }
}

/// One pass over all relations; whether anything was suppressed.
fn secondary_pass(table: &mut Table, relations: &[Vec<usize>]) -> bool {
    let mut changed = false;
    for relation in relations {
        let suppressed = relation
            .iter()
            .filter(|&&cell| is_suppressed(table.status[cell]))
            .count();
        if suppressed != 1 {
            continue;
        }
        let mut smallest: Option<(usize, f64)> = None;
        for &cell in relation {
            if is_suppressed(table.status[cell]) {
                continue;
            }
            // Cells without a number carry no information and are never chosen.
            let Some(value) = table.values[cell].filter(|value| !value.is_nan()) else {
                continue;
            };
            if smallest.is_none_or(|(_, best)| value < best) {
                smallest = Some((cell, value));
            }
        }
        if let Some((cell, _)) = smallest {
            table.status[cell] = Status::SuppressedSecondary;
            changed = true;
        }
    }
    changed
}

/// One pass of the derived rule; whether anything was suppressed, and whether any of
/// it was a person count.
fn derived_pass(table: &mut Table, shape: &Shape) -> (bool, bool) {
    let mut changed = false;
    let mut persons = false;
    for offset in 0..table.values.len() {
        if is_suppressed(table.status[offset]) {
            continue;
        }
        let index = shape.measure(offset);
        let measure = table.measures[index];
        let base = offset - index;
        let mut cause: Option<Status> = None;
        for (reference, is_numerator) in [(measure.numerator, true), (measure.denominator, false)] {
            let Some(reference) = reference.filter(|&r| r < shape.measures && r != index) else {
                continue;
            };
            let cell = base + reference;
            let counts_values = is_person_count(table.measures[reference].quantity)
                || (is_numerator && measure.quantity == Quantity::Percentile);
            let this = if counts_values && table.values[cell].is_some_and(is_small) {
                Status::SuppressedPrimary
            } else {
                table.status[cell]
            };
            cause = match (cause, this) {
                (_, Status::Shown) => cause,
                (Some(Status::SuppressedPrimary), _) => cause,
                _ => Some(this),
            };
        }
        if let Some(status) = cause {
            table.status[offset] = status;
            changed = true;
            persons |= is_person_count(measure.quantity);
        }
    }
    (changed, persons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpr_projection::bands::{ALL_AGES, DETAILED, KOSTRA};
    use kpr_projection::table::{Category, Measure, TableMeta};

    // Alder layout of the test tables: detailed bands 0..6, KOSTRA bands 6..9, total 9.
    const AGES: usize = 10;
    const KOSTRA_OF: [usize; 6] = [6, 6, 6, 7, 8, 8];
    const TOTAL_AGE: usize = 9;
    // Kjonn: male, female, unknown, both.
    const SEXES: usize = 4;
    const M: usize = 0;
    const F: usize = 1;
    const U: usize = 2;
    const BOTH: usize = 3;

    use Status::{Shown, SuppressedPrimary as P, SuppressedSecondary as S};

    fn category(code: &str, label: &str) -> Category {
        Category {
            code: code.into(),
            label: label.into(),
        }
    }

    fn dimension(id: &str, categories: Vec<Category>) -> Dimension {
        Dimension {
            id: id.into(),
            label: id.into(),
            categories,
            total: None,
            partitions: Vec::new(),
        }
    }

    fn alder() -> Dimension {
        let bands = DETAILED.iter().chain(KOSTRA.iter()).chain([&ALL_AGES]);
        Dimension {
            total: Some(TOTAL_AGE),
            partitions: vec![(0..6).collect(), (6..9).collect()],
            ..dimension("Alder", bands.map(|b| category(b.code, b.label)).collect())
        }
    }

    fn kjonn() -> Dimension {
        let codes = [
            ("1", "Menn"),
            ("2", "Kvinner"),
            ("9", "Ukjent"),
            ("0", "Begge kjønn"),
        ];
        Dimension {
            total: Some(BOTH),
            partitions: vec![vec![M, F, U]],
            ..dimension("Kjonn", codes.iter().map(|(c, l)| category(c, l)).collect())
        }
    }

    fn measure(
        quantity: Quantity,
        numerator: Option<usize>,
        denominator: Option<usize>,
    ) -> Measure {
        Measure {
            quantity,
            numerator,
            denominator,
        }
    }

    fn persons() -> Measure {
        measure(Quantity::Persons, None, None)
    }

    /// A table Region × Alder × Kjonn × ContentsCode with `value(region, age, sex,
    /// measure)` in every cell, all shown.
    fn table(
        regions: usize,
        measures: Vec<Measure>,
        value: impl Fn(usize, usize, usize, usize) -> Option<f64>,
    ) -> Table {
        let region = (0..regions)
            .map(|r| category(&format!("{:04}", 301 + r), "kommune"))
            .collect();
        let contents = (0..measures.len())
            .map(|m| category(&format!("M{m}"), "measure"))
            .collect();
        let mut values = Vec::new();
        for r in 0..regions {
            for a in 0..AGES {
                for s in 0..SEXES {
                    for m in 0..measures.len() {
                        values.push(value(r, a, s, m));
                    }
                }
            }
        }
        Table {
            figure: "T2".into(),
            label: "test".into(),
            dimensions: vec![
                dimension("Region", region),
                alder(),
                kjonn(),
                dimension("ContentsCode", contents),
            ],
            measures,
            status: vec![Shown; values.len()],
            values,
            meta: TableMeta {
                log_position: vec![(0, 0)],
                definition_version: 1,
                population_year: None,
                population_wanted: None,
                notes: Vec::new(),
                reference: "2024-12-31".into(),
                exact: true,
            },
        }
    }

    /// The full Alder × Kjonn grid with consistent margins from detailed band × (male,
    /// female, unknown) counts.
    fn grid(detailed: &[[u32; 3]; 6]) -> [[f64; SEXES]; AGES] {
        let mut out = [[0.0; SEXES]; AGES];
        for (band, row) in detailed.iter().enumerate() {
            for (sex, &count) in row.iter().enumerate() {
                let count = f64::from(count);
                for age in [band, KOSTRA_OF[band], TOTAL_AGE] {
                    out[age][sex] += count;
                    out[age][BOTH] += count;
                }
            }
        }
        out
    }

    /// One-region person table from a detailed grid.
    fn person_table(detailed: &[[u32; 3]; 6]) -> Table {
        let grid = grid(detailed);
        table(1, vec![persons()], |_, a, s, _| Some(grid[a][s]))
    }

    fn status(table: &Table, age: usize, sex: usize, measure: usize) -> Status {
        table.status[table.offset(&[0, age, sex, measure])]
    }

    /// (age, sex) of every suppressed cell of measure 0 in region 0.
    fn suppressed(table: &Table) -> Vec<(usize, usize, Status)> {
        let mut out = Vec::new();
        for a in 0..AGES {
            for s in 0..SEXES {
                let st = status(table, a, s, 0);
                if st != Shown {
                    out.push((a, s, st));
                }
            }
        }
        out
    }

    /// Every relation of the test layout as (age, sex) lists, written out by hand:
    /// columns over both band sets and the nested KOSTRA subtotals, and rows over sex.
    fn test_relations() -> Vec<Vec<(usize, usize)>> {
        let mut out = Vec::new();
        for s in 0..SEXES {
            let column = |ages: &[usize], margin: usize| {
                ages.iter()
                    .chain([&margin])
                    .map(|&a| (a, s))
                    .collect::<Vec<_>>()
            };
            out.push(column(&[0, 1, 2, 3, 4, 5], TOTAL_AGE));
            out.push(column(&[6, 7, 8], TOTAL_AGE));
            out.push(column(&[0, 1, 2], 6));
            out.push(column(&[3], 7));
            out.push(column(&[4, 5], 8));
        }
        for a in 0..AGES {
            out.push(vec![(a, M), (a, F), (a, U), (a, BOTH)]);
        }
        out
    }

    #[test]
    fn small_counts() {
        assert!(!is_small(0.0));
        assert!(is_small(1.0) && is_small(4.0));
        assert!(!is_small(5.0) && !is_small(f64::NAN) && !is_small(-1.0));
    }

    #[test]
    fn primary_only_without_partitions() {
        let measures = vec![
            persons(),
            measure(Quantity::Population, None, None),
            measure(Quantity::Hours, None, None),
        ];
        let mut t = table(2, measures, |r, a, s, m| Some(((r + a + s + m) % 7) as f64));
        for dim in &mut t.dimensions {
            dim.partitions.clear();
        }
        let before = t.values.clone();
        protect(&mut t);
        assert!(!t.meta.exact);
        assert_eq!(t.values, before, "values stay");
        for (offset, value) in t.values.iter().enumerate() {
            let m = offset % 3;
            let v = value.unwrap_or(0.0);
            let expect = if m < 2 && is_small(v) { P } else { Shown };
            assert_eq!(
                t.status[offset], expect,
                "offset {offset} value {v} measure {m}"
            );
        }
        assert!(t.status.contains(&Shown) && t.status.contains(&P));
    }

    #[test]
    fn one_small_cell_in_a_row_gets_a_second_suppression() {
        // Only Kjonn is partitioned: the relations are the rows.
        let detailed = [
            [10, 12, 7],
            [20, 25, 9],
            [15, 18, 6],
            [30, 35, 8],
            [3, 40, 11],
            [8, 20, 5],
        ];
        let mut t = person_table(&detailed);
        t.dimensions[1].partitions.clear();
        protect(&mut t);
        // 80-89: male 3 (primary); the smallest other cell of the row is unknown 11.
        assert_eq!(suppressed(&t), vec![(4, M, P), (4, U, S)]);
        let row: Vec<usize> = (0..SEXES).map(|s| t.offset(&[0, 4, s, 0])).collect();
        let items: f64 = row[..3].iter().map(|&o| t.values[o].unwrap_or(0.0)).sum();
        assert_eq!(
            Some(items),
            t.values[row[3]],
            "values still add up to the margin"
        );
        let hidden = row.iter().filter(|&&o| t.status[o] != Shown).count();
        assert_eq!(
            hidden, 2,
            "the row total no longer gives the small cell away"
        );
    }

    #[test]
    fn ties_go_to_zeros_and_the_first_cell() {
        // Row 0-17: male 3, female 6, unknown 0 -> unknown (a zero may be chosen).
        // Row 18-49: male 6, female 2, unknown 6 -> male (tie of 6s, first in order).
        let detailed = [
            [3, 6, 0],
            [6, 2, 6],
            [9, 9, 9],
            [9, 9, 9],
            [9, 9, 9],
            [9, 9, 9],
        ];
        let mut t = person_table(&detailed);
        t.dimensions[1].partitions.clear();
        protect(&mut t);
        assert_eq!(
            suppressed(&t),
            vec![(0, M, P), (0, U, S), (1, M, S), (1, F, P)]
        );

        // Within a column (only the detailed partition here) the first of equal zeros.
        let detailed = [
            [9, 9, 9],
            [0, 9, 9],
            [9, 9, 9],
            [9, 9, 9],
            [2, 9, 9],
            [0, 9, 9],
        ];
        let mut t = person_table(&detailed);
        t.dimensions[1].partitions.truncate(1);
        t.dimensions[2].partitions.clear();
        protect(&mut t);
        assert_eq!(status(&t, 4, M, 0), P);
        assert_eq!(status(&t, 1, M, 0), S, "18-49 male: the first zero");
        assert_eq!(status(&t, 5, M, 0), Shown, "90+ male: a later zero");

        // Items come before the margin: a row whose shown cells tie with its margin
        // (values made up; the male cell is already suppressed on entry).
        let mut t = person_table(&[[9; 3]; 6]);
        t.dimensions[1].partitions.clear();
        for (sex, value) in [(M, 5.0), (F, 12.0), (U, 9.0), (BOTH, 9.0)] {
            let offset = t.offset(&[0, 0, sex, 0]);
            t.values[offset] = Some(value);
        }
        let male = t.offset(&[0, 0, M, 0]);
        t.status[male] = S;
        protect(&mut t);
        assert_eq!(suppressed(&t), vec![(0, M, S), (0, U, S)]);
    }

    #[test]
    fn cascades_over_rows_columns_and_nested_bands_until_stable() {
        let detailed = [
            [10, 11, 0],
            [20, 21, 0],
            [30, 31, 0],
            [40, 41, 0],
            [3, 50, 0],
            [12, 13, 0],
        ];
        let mut t = person_table(&detailed);
        protect(&mut t);
        let expected = vec![
            (0, M, S), // detailed male column: smallest other than 80-89 (3)
            (0, U, S), // row 0-17 then has one: its zero
            (1, M, S), // KOSTRA 000-066 male = 0-17 + 18-49 + 50-66: smallest other
            (1, U, S), // row 18-49
            (4, M, P), // the small cell
            (4, U, S), // row 80-89
            (5, M, S), // KOSTRA 080+ male = 80-89 + 90+
            (5, U, S), // row 90+
        ];
        assert_eq!(suppressed(&t), expected);
        for relation in test_relations() {
            let hidden = relation
                .iter()
                .filter(|&&(a, s)| status(&t, a, s, 0) != Shown)
                .count();
            assert_ne!(hidden, 1, "relation {relation:?}");
        }
        let again = t.status.clone();
        protect(&mut t);
        assert_eq!(t.status, again, "stable");
    }

    #[test]
    fn rates_follow_their_numerator_and_denominator() {
        let counts = grid(&[
            [10, 11, 0],
            [20, 21, 0],
            [30, 31, 0],
            [40, 41, 0],
            [3, 50, 0],
            [12, 13, 0],
        ]);
        let mut population = grid(&[[900; 3]; 6]);
        population[0][U] = 3.0; // a small denominator in a cell where persons is 0
        let measures = vec![
            persons(),
            measure(Quantity::Population, None, None),
            measure(Quantity::Per1000, Some(0), Some(1)),
            measure(Quantity::Hours, None, None),
            measure(Quantity::Hours, Some(0), None),
            measure(Quantity::Mean, Some(3), Some(0)),
        ];
        let mut t = table(1, measures, |_, a, s, m| {
            let (n, d) = (counts[a][s], population[a][s]);
            Some(match m {
                0 => n,
                1 => d,
                2 => 1000.0 * n / d,
                3 | 4 => 2.0 * n,
                _ => 2.0,
            })
        });
        protect(&mut t);
        // Small numerator: primary everywhere it is used.
        assert_eq!(status(&t, 4, M, 2), P);
        assert_eq!(status(&t, 4, M, 4), P);
        assert_eq!(status(&t, 4, M, 5), P);
        // Secondary numerator: secondary.
        assert_eq!(status(&t, 0, M, 0), S);
        assert_eq!(status(&t, 0, M, 2), S);
        assert_eq!(status(&t, 0, M, 4), S);
        assert_eq!(status(&t, 0, M, 5), S);
        // Hours without a numerator stay shown; a mean over shown persons too.
        assert_eq!(status(&t, 4, M, 3), Shown);
        assert_eq!(status(&t, 3, M, 5), Shown);
        assert_eq!(status(&t, 3, M, 2), Shown);
        // Small denominator with a zero numerator: the rate is suppressed (primary).
        assert_eq!(
            status(&t, 0, U, 0),
            S,
            "0-17 unknown persons: zero chosen in its row"
        );
        assert_eq!(status(&t, 0, U, 1), P);
        assert_eq!(status(&t, 0, U, 2), P, "primary wins over secondary");
        // Population of 3 gets its own secondary partner in the population table.
        let population_hidden = (0..SEXES).filter(|&s| status(&t, 0, s, 1) != Shown).count();
        assert!(population_hidden >= 2);
    }

    #[test]
    fn percentiles_over_few_values_are_suppressed() {
        let measures = vec![
            persons(),
            measure(Quantity::Percentile, Some(0), None),
            measure(Quantity::Days, None, None),
            measure(Quantity::Percentile, Some(2), None),
            measure(Quantity::Percentile, None, None),
        ];
        let mut t = table(1, measures, |_, a, s, m| {
            let n = [0.0, 3.0, 5.0, 12.0][s];
            Some(match m {
                0 | 2 => n,
                _ if n == 0.0 => return None,
                _ => 40.0 + a as f64,
            })
        });
        for dim in &mut t.dimensions {
            dim.partitions.clear();
        }
        protect(&mut t);
        for a in 0..AGES {
            assert_eq!(status(&t, a, 0, 1), Shown, "no values: shown (null)");
            assert_eq!(status(&t, a, 1, 1), P, "3 values");
            assert_eq!(status(&t, a, 2, 1), Shown, "5 values");
            assert_eq!(
                status(&t, a, 1, 2),
                Shown,
                "a sum of days is not suppressed itself"
            );
            assert_eq!(
                status(&t, a, 1, 3),
                P,
                "3 values, counted in a non-person measure"
            );
            assert_eq!(status(&t, a, 3, 3), Shown);
            assert_eq!(status(&t, a, 1, 4), Shown, "no count to judge by");
        }
    }

    #[test]
    fn a_malformed_table_is_suppressed_entirely() {
        let mut t = person_table(&[[9; 3]; 6]);
        t.values.pop();
        protect(&mut t);
        assert_eq!(t.status.len(), t.values.len());
        assert!(t.status.iter().all(|&s| s != Shown));
    }

    #[test]
    fn shared_band_and_code_ranges() {
        assert_eq!(
            AgeRange::parse("018-049"),
            Some(AgeRange {
                min: 18,
                max: Some(49)
            })
        );
        assert_eq!(
            AgeRange::parse("090+"),
            Some(AgeRange { min: 90, max: None })
        );
        for code in ["999", "0", "1", "-5", "5-", "49-18", "a-b", "+"] {
            assert_eq!(AgeRange::parse(code), None, "{code}");
        }
        let nested: Vec<(Vec<usize>, usize)> = templates(&alder())[2..]
            .iter()
            .map(|t| (t.items.clone(), t.margin))
            .collect();
        assert_eq!(
            nested,
            vec![
                (vec![0, 1, 2], 6),
                (vec![3], 7),
                (vec![4, 5], 8),
                (vec![7], 3)
            ]
        );

        // A layout with 067-079 published once, in both band sets.
        let mut shared = alder();
        shared.categories.remove(7);
        shared.total = Some(8);
        shared.partitions = vec![(0..6).collect(), vec![6, 3, 7]];
        let nested: Vec<(Vec<usize>, usize)> = templates(&shared)[2..]
            .iter()
            .map(|t| (t.items.clone(), t.margin))
            .collect();
        assert_eq!(nested, vec![(vec![0, 1, 2], 6), (vec![4, 5], 7)]);
    }

    /// xorshift64: deterministic pseudo-random numbers for the property test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn count(&mut self) -> u32 {
            // Mostly small counts, so that suppression is frequent and cascades.
            let n = match self.below(10) {
                0..=3 => self.below(3),
                4..=7 => self.below(8),
                _ => self.below(60),
            };
            n as u32
        }
    }

    #[test]
    fn random_tables_keep_no_relation_with_one_suppressed_cell() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut secondary = 0;
        for round in 0..2000 {
            let regions = 1 + rng.below(3) as usize;
            let grids: Vec<Vec<[[f64; SEXES]; AGES]>> = (0..regions)
                .map(|_| {
                    (0..2)
                        .map(|_| {
                            let mut detailed = [[0u32; 3]; 6];
                            for row in &mut detailed {
                                for (sex, cell) in row.iter_mut().enumerate() {
                                    // The unknown sex is rare.
                                    *cell = if sex == U {
                                        rng.count() / 4
                                    } else {
                                        rng.count()
                                    };
                                }
                            }
                            grid(&detailed)
                        })
                        .collect()
                })
                .collect();
            let measures = vec![
                persons(),
                measure(Quantity::Population, None, None),
                measure(Quantity::Share, Some(0), Some(1)),
            ];
            let mut t = table(regions, measures, |r, a, s, m| match m {
                0 | 1 => Some(grids[r][m][a][s]),
                _ => {
                    let d = grids[r][1][a][s];
                    (d > 0.0).then(|| grids[r][0][a][s] / d)
                }
            });
            let before = t.values.clone();
            protect(&mut t);
            assert_eq!(t.values, before);
            assert!(!t.meta.exact);
            for (r, region) in grids.iter().enumerate() {
                for (m, values) in region.iter().enumerate() {
                    let st = |a: usize, s: usize| t.status[t.offset(&[r, a, s, m])];
                    for (a, row) in values.iter().enumerate() {
                        for (s, &value) in row.iter().enumerate() {
                            assert_eq!(st(a, s) == P, is_small(value), "round {round} ({a}, {s})");
                            secondary += usize::from(st(a, s) == S);
                            let share = t.status[t.offset(&[r, a, s, 2])];
                            if st(a, s) != Shown {
                                assert_ne!(share, Shown, "round {round}: share follows");
                            }
                        }
                    }
                    for relation in test_relations() {
                        let hidden = relation.iter().filter(|&&(a, s)| st(a, s) != Shown).count();
                        assert_ne!(
                            hidden, 1,
                            "round {round} region {r} measure {m} {relation:?}"
                        );
                    }
                }
            }
            let once = t.status.clone();
            protect(&mut t);
            assert_eq!(t.status, once, "round {round}: protect is idempotent");
        }
        assert!(
            secondary > 1000,
            "the test exercises the secondary rule ({secondary})"
        );
    }
}
