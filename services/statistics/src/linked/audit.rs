//! The audit of the linked-tables model (see the parent module): which suppressed
//! person counts exact elimination determines, and which interval propagation pins
//! below [`WIDTH`], per connected component of suppressed cells. Pure.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kpr_projection::table::{Status, Table};

use super::{Cells, Family, Relation, WIDTH, field, integral, is_person_cell, relations};

/// A suppressed person count a reader can narrow below [`WIDTH`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Global cell id.
    pub cell: usize,
    /// The exact value.
    pub value: i64,
    /// What the reader can tell: lowest and highest possible value.
    pub low: i64,
    /// Highest possible value (`None`: unbounded).
    pub high: Option<i64>,
    /// Whether elimination determines it exactly.
    pub exact: bool,
    /// The families of the relations that pin it.
    pub families: BTreeSet<Family>,
    /// Published cells of the relations that pin it (global ids, at most a few).
    pub revealed_by: Vec<usize>,
}

/// Connected components of the suppressed person cells, linked by relations, each
/// with the relations that touch it (indices into `relations`).
fn components(
    tables: &[Table],
    cells: &Cells,
    relations: &[Relation],
) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    fn find(parent: &mut HashMap<usize, usize>, x: usize) -> usize {
        let mut root = x;
        while let Some(&p) = parent.get(&root) {
            if p == root {
                break;
            }
            root = p;
        }
        let mut node = x;
        while node != root {
            let next = parent[&node];
            parent.insert(node, root);
            node = next;
        }
        root
    }
    for (t, table) in tables.iter().enumerate() {
        for o in 0..table.values.len() {
            if table.status.get(o).is_some_and(|s| *s != Status::Shown) && is_person_cell(table, o)
            {
                let id = cells.id(t, o);
                parent.insert(id, id);
            }
        }
    }
    for relation in relations {
        let mut first: Option<usize> = None;
        for &(id, _) in &relation.terms {
            if !parent.contains_key(&id) {
                continue;
            }
            match first {
                None => first = Some(id),
                Some(f) => {
                    let (a, b) = (find(&mut parent, f), find(&mut parent, id));
                    if a != b {
                        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                        parent.insert(hi, lo);
                    }
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    let mut ids: Vec<usize> = parent.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let root = find(&mut parent, id);
        groups.entry(root).or_default().0.push(id);
    }
    for (r, relation) in relations.iter().enumerate() {
        if let Some(&(id, _)) = relation
            .terms
            .iter()
            .find(|(id, _)| parent.contains_key(id))
        {
            let root = find(&mut parent, id);
            if let Some(group) = groups.get_mut(&root) {
                group.1.push(r);
            }
        }
    }
    groups.into_values().collect()
}

/// Value of a cell as an integer (person counts always have one).
fn value_of(tables: &[Table], cells: &Cells, id: usize) -> i64 {
    let (t, o) = cells.locate(id);
    integral(&tables[t], o).unwrap_or(0)
}

/// What an audit found, per family of the relations involved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cells of all tables.
    pub cells: usize,
    /// Suppressed cells.
    pub suppressed: usize,
    /// Suppressed person counts.
    pub suppressed_persons: usize,
    /// Relations in the model (within tables, across tables, across regions).
    pub relations: [usize; 3],
    /// Suppressed person counts determined exactly, by the widest family involved.
    pub exact: [usize; 3],
    /// Suppressed person counts narrowed below [`WIDTH`] (not exact), likewise.
    pub narrowed: [usize; 3],
    /// The first [`DESCRIBED`] findings in words: the cell, what a reader can tell
    /// about it, and published cells of the relations that pin it.
    pub revealed: Vec<String>,
}

/// How many findings a [`Summary`] describes.
pub const DESCRIBED: usize = 100;

/// A cell in words: figure, region, each dimension's category code, and the value.
fn describe(tables: &[Table], cells: &Cells, id: usize) -> String {
    let (t, o) = cells.locate(id);
    let table = &tables[t];
    let coords = table.coords(o);
    let mut parts = vec![table.figure.clone()];
    for (dimension, &i) in table.dimensions.iter().zip(&coords) {
        if let Some(category) = dimension.categories.get(i) {
            parts.push(format!("{}={}", dimension.id, category.code));
        }
    }
    let value = table.values.get(o).copied().flatten();
    format!(
        "{} = {}",
        parts.join(" "),
        value.map_or("..".to_string(), |v| v.to_string())
    )
}

/// A finding in words.
fn finding_text(tables: &[Table], cells: &Cells, finding: &Finding) -> String {
    let families: Vec<&str> = finding.families.iter().map(|f| f.name()).collect();
    let high = finding
        .high
        .map_or("unbounded".to_string(), |h| h.to_string());
    let by: Vec<String> = finding
        .revealed_by
        .iter()
        .map(|&id| describe(tables, cells, id))
        .collect();
    format!(
        "{} is {} in [{}, {}] ({}), from {}",
        describe(tables, cells, finding.cell),
        if finding.exact {
            "determined"
        } else {
            "narrowed"
        },
        finding.low,
        high,
        families.join(", "),
        if by.is_empty() {
            "the relations alone".to_string()
        } else {
            by.join("; ")
        }
    )
}

impl Summary {
    /// Whether no suppressed person count can be recovered or narrowed.
    pub fn holds(&self) -> bool {
        self.exact.iter().chain(&self.narrowed).all(|&n| n == 0)
    }

    /// One line per family, for logs and answers.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{} cells, {} suppressed ({:.2} %), {} of them person counts",
            self.cells,
            self.suppressed,
            100.0 * self.suppressed as f64 / self.cells.max(1) as f64,
            self.suppressed_persons
        )];
        for (i, family) in [
            Family::WithinTable,
            Family::AcrossTables,
            Family::AcrossRegions,
        ]
        .iter()
        .enumerate()
        {
            out.push(format!(
                "{}: {} relations; {} suppressed person counts determined exactly, {} narrowed below {WIDTH}",
                family.name(),
                self.relations[i],
                self.exact[i],
                self.narrowed[i]
            ));
        }
        out
    }
}

fn family_index(family: Family) -> usize {
    match family {
        Family::WithinTable => 0,
        Family::AcrossTables => 1,
        Family::AcrossRegions => 2,
    }
}

/// Audits `tables` as published together and summarises the findings in the manner
/// of the independent audit: the cells found from each table's own margins, then the
/// further cells found when the cross-table identities are added, then those found
/// when the regions' sums are added too. The findings returned are those of the whole
/// model.
pub fn summarise(tables: &[Table]) -> (Summary, Vec<Finding>) {
    let cells = Cells::new(tables);
    let relations = relations(tables);
    let mut summary = Summary {
        cells: cells.len(),
        ..Summary::default()
    };
    for table in tables {
        for (o, status) in table.status.iter().enumerate() {
            if *status != Status::Shown {
                summary.suppressed += 1;
                if is_person_cell(table, o) {
                    summary.suppressed_persons += 1;
                }
            }
        }
    }
    for relation in &relations {
        summary.relations[family_index(relation.family)] += 1;
    }
    // First level at which each cell was found exact, and narrowed.
    let mut exact_at: BTreeMap<usize, usize> = BTreeMap::new();
    let mut narrow_at: BTreeMap<usize, usize> = BTreeMap::new();
    let mut findings = Vec::new();
    for (level, widest) in [
        Family::WithinTable,
        Family::AcrossTables,
        Family::AcrossRegions,
    ]
    .into_iter()
    .enumerate()
    {
        let model: Vec<Relation> = relations
            .iter()
            .filter(|r| r.family <= widest)
            .cloned()
            .collect();
        findings = audit_with(tables, &cells, &model);
        for finding in &findings {
            let first = if finding.exact {
                &mut exact_at
            } else {
                &mut narrow_at
            };
            first.entry(finding.cell).or_insert(level);
        }
    }
    for level in exact_at.values() {
        summary.exact[*level] += 1;
    }
    for (cell, level) in &narrow_at {
        if !exact_at.contains_key(cell) {
            summary.narrowed[*level] += 1;
        }
    }
    summary.revealed = findings
        .iter()
        .take(DESCRIBED)
        .map(|f| finding_text(tables, &cells, f))
        .collect();
    (summary, findings)
}

/// The attacker's view of `tables` (exact values, their status as published): every
/// suppressed person count that elimination determines or interval propagation pins to
/// fewer than [`WIDTH`], with the relations' families and published cells involved.
pub(super) fn audit_with(tables: &[Table], cells: &Cells, relations: &[Relation]) -> Vec<Finding> {
    findings(tables, cells, relations, true)
}

/// Like [`audit_with`], by interval propagation only: the cells pinned below
/// [`WIDTH`] (and those propagation pins exactly), without the elimination that finds
/// the other exactly determined ones (the protection's own elimination rules them out).
pub(super) fn narrowed(tables: &[Table], cells: &Cells, relations: &[Relation]) -> Vec<Finding> {
    findings(tables, cells, relations, false)
}

fn findings(
    tables: &[Table],
    cells: &Cells,
    relations: &[Relation],
    eliminate: bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (members, touching) in components(tables, cells, relations) {
        out.extend(audit_component(
            tables, cells, relations, &members, &touching, eliminate,
        ));
    }
    out.sort_by_key(|f| f.cell);
    out
}

/// A relation restricted to a component: its suppressed cells (column, coefficient),
/// the sum they must make given the published cells, and the relation's index.
type Row = (Vec<(usize, i64)>, i64, usize);

fn audit_component(
    tables: &[Table],
    cells: &Cells,
    relations: &[Relation],
    members: &[usize],
    touching: &[usize],
    eliminate: bool,
) -> Vec<Finding> {
    let n = members.len();
    let column: HashMap<usize, usize> =
        members.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    // Each touching relation as: sum over suppressed of c * y = rhs.
    let mut rows: Vec<Row> = Vec::new();
    for &r in touching {
        let mut row = Vec::new();
        let mut rhs = 0i64;
        for &(id, c) in &relations[r].terms {
            match column.get(&id) {
                Some(&j) => row.push((j, c)),
                None => rhs -= c * value_of(tables, cells, id),
            }
        }
        rows.push((row, rhs, r));
    }
    // Exact determination: unit vectors in the row space (elimination over a prime
    // field, exact for these small integer matrices).
    let determined = if eliminate {
        determined_columns(rows.iter().map(|(r, _, _)| r.as_slice()))
    } else {
        BTreeSet::new()
    };
    // Interval propagation, row by row from a work list: a row is looked at again
    // only when a bound of one of its cells moved.
    let mut low = vec![0i64; n];
    let mut high: Vec<Option<i64>> = vec![None; n];
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (r, (row, _, _)) in rows.iter().enumerate() {
        for &(j, _) in row {
            rows_of[j].push(r);
        }
    }
    let mut queued = vec![true; rows.len()];
    let mut work: std::collections::VecDeque<usize> = (0..rows.len()).collect();
    // A bound far outside any count: the propagation has met an inconsistency or a
    // runaway, and stops (the published values are consistent, so neither happens).
    const LIMIT: i64 = 1 << 40;
    let mut steps = 0usize;
    let budget = 200 * rows.len().max(1);
    while let Some(r) = work.pop_front() {
        queued[r] = false;
        steps += 1;
        if steps > budget {
            break;
        }
        let (row, rhs, _) = &rows[r];
        // Each term's range of c * y, and their sums (an unbounded upper end counted).
        let range = |c: i64, lo: i64, hi: Option<i64>| -> (Option<i64>, Option<i64>) {
            if c > 0 {
                (Some(c * lo), hi.map(|h| c * h))
            } else {
                (hi.map(|h| c * h), Some(c * lo))
            }
        };
        let (mut sum_min, mut sum_max) = (0i64, 0i64);
        let (mut open_min, mut open_max) = (0usize, 0usize);
        for &(k, ck) in row {
            let (a, b) = range(ck, low[k], high[k]);
            match a {
                Some(a) => sum_min += a,
                None => open_min += 1,
            }
            match b {
                Some(b) => sum_max += b,
                None => open_max += 1,
            }
        }
        for &(j, c) in row {
            let (a, b) = range(c, low[j], high[j]);
            // The other terms' ranges: the sums without this one.
            let min_rest = match a {
                Some(a) if open_min == 0 => Some(sum_min - a),
                None if open_min == 1 => Some(sum_min),
                _ => None,
            };
            let max_rest = match b {
                Some(b) if open_max == 0 => Some(sum_max - b),
                None if open_max == 1 => Some(sum_max),
                _ => None,
            };
            // c*y_j in [rhs - max_rest, rhs - min_rest].
            let lo_cy = max_rest.map(|m| rhs - m);
            let hi_cy = min_rest.map(|m| rhs - m);
            let (lo_y, hi_y) = if c > 0 {
                (
                    lo_cy.map(|v| div_ceil(v, c)),
                    hi_cy.map(|v| v.div_euclid(c)),
                )
            } else {
                (
                    hi_cy.map(|v| div_ceil(-v, -c)),
                    lo_cy.map(|v| (-v).div_euclid(-c)),
                )
            };
            let mut moved = false;
            if let Some(l) = lo_y
                && l > low[j]
                && l < LIMIT
            {
                low[j] = l;
                moved = true;
            }
            if let Some(h) = hi_y
                && high[j].is_none_or(|old| h < old)
                && h > -LIMIT
            {
                high[j] = Some(h);
                moved = true;
            }
            if moved {
                for &other in &rows_of[j] {
                    if !queued[other] {
                        queued[other] = true;
                        work.push_back(other);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for (j, &id) in members.iter().enumerate() {
        let exact = determined.contains(&j) || high[j] == Some(low[j]);
        let narrow = high[j].is_some_and(|h| h - low[j] < WIDTH);
        if !(exact || narrow) {
            continue;
        }
        let mut families = BTreeSet::new();
        let mut revealed_by = Vec::new();
        for (row, _, r) in &rows {
            if row.iter().any(|&(k, _)| k == j) {
                families.insert(relations[*r].family);
                for &(other, _) in &relations[*r].terms {
                    if !column.contains_key(&other) && revealed_by.len() < 8 {
                        revealed_by.push(other);
                    }
                }
            }
        }
        out.push(Finding {
            cell: id,
            value: value_of(tables, cells, id),
            low: low[j],
            high: if exact {
                Some(value_of(tables, cells, id))
            } else {
                high[j]
            },
            exact,
            families,
            revealed_by,
        });
    }
    out
}

fn div_ceil(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

/// Columns `j` whose unit vector lies in the row space of `rows`:
/// those a reader can solve for exactly.
fn determined_columns<'a>(rows: impl Iterator<Item = &'a [(usize, i64)]>) -> BTreeSet<usize> {
    // Sparse rows over GF(p), reduced to reduced row echelon form.
    let mut basis: BTreeMap<usize, BTreeMap<usize, u64>> = BTreeMap::new(); // pivot -> row
    for row in rows {
        let mut v: BTreeMap<usize, u64> = BTreeMap::new();
        for &(j, c) in row {
            let e = v.entry(j).or_insert(0);
            *e = field::add(*e, field::of(c));
        }
        v.retain(|_, x| *x != 0);
        // Reduce by existing pivots.
        while let Some((&p, _)) = v.iter().find(|(j, _)| basis.contains_key(j)) {
            let f = v[&p];
            for (&j, &x) in &basis[&p] {
                let e = v.entry(j).or_insert(0);
                *e = field::sub(*e, field::mul(f, x));
            }
            v.retain(|_, x| *x != 0);
        }
        let Some((&p, &lead)) = v.iter().next() else {
            continue;
        };
        let inv = field::inv(lead);
        for x in v.values_mut() {
            *x = field::mul(*x, inv);
        }
        // Eliminate p from the other basis rows.
        for other in basis.values_mut() {
            if let Some(&f) = other.get(&p) {
                for (&j, &x) in &v {
                    let e = other.entry(j).or_insert(0);
                    *e = field::sub(*e, field::mul(f, x));
                }
                other.retain(|_, x| *x != 0);
            }
        }
        basis.insert(p, v);
    }
    basis
        .iter()
        .filter(|(_, row)| row.len() == 1)
        .map(|(&p, _)| p)
        .collect()
}
