//! The audit of the linked-tables model (see the parent module): which suppressed
//! person counts exact elimination determines, and which interval propagation pins
//! below [`WIDTH`], per connected component of suppressed cells. Pure.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kpr_projection::table::{Status, Table};

use super::{Cells, Family, Relation, WIDTH, integral, is_person_cell, relations};

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
    (summary, findings)
}

/// The attacker's view of `tables` (exact values, their status as published): every
/// suppressed person count that elimination determines or interval propagation pins to
/// fewer than [`WIDTH`], with the relations' families and published cells involved.
fn audit_with(tables: &[Table], cells: &Cells, relations: &[Relation]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (members, touching) in components(tables, cells, relations) {
        out.extend(audit_component(
            tables, cells, relations, &members, &touching,
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
    let determined = determined_columns(rows.iter().map(|(r, _, _)| r.as_slice()));
    // Interval propagation.
    let mut low = vec![0i64; n];
    let mut high: Vec<Option<i64>> = vec![None; n];
    for _ in 0..200 {
        let mut changed = false;
        for (row, rhs, _) in &rows {
            for &(j, c) in row {
                // c * y_j = rhs - sum_{k != j} c_k y_k.
                let mut min_rest: Option<i64> = Some(0);
                let mut max_rest: Option<i64> = Some(0);
                for &(k, ck) in row {
                    if k == j {
                        continue;
                    }
                    let (lo, hi) = (low[k], high[k]);
                    let (a, b) = if ck > 0 {
                        (Some(ck * lo), hi.map(|h| ck * h))
                    } else {
                        (hi.map(|h| ck * h), Some(ck * lo))
                    };
                    min_rest = min_rest.zip(a).map(|(x, y)| x + y);
                    max_rest = max_rest.zip(b).map(|(x, y)| x + y);
                }
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
                if let Some(l) = lo_y
                    && l > low[j]
                {
                    low[j] = l;
                    changed = true;
                }
                if let Some(h) = hi_y
                    && high[j].is_none_or(|old| h < old)
                {
                    high[j] = Some(h);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
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

const PRIME: u64 = (1 << 61) - 1;

fn mul_mod(a: u64, b: u64) -> u64 {
    ((a as u128 * b as u128) % PRIME as u128) as u64
}

fn pow_mod(mut a: u64, mut e: u64) -> u64 {
    let mut r = 1;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, a);
        }
        a = mul_mod(a, a);
        e >>= 1;
    }
    r
}

fn to_field(c: i64) -> u64 {
    c.rem_euclid(PRIME as i64) as u64
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
            *e = (*e + to_field(c)) % PRIME;
        }
        v.retain(|_, x| *x != 0);
        // Reduce by existing pivots.
        while let Some((&p, _)) = v.iter().find(|(j, _)| basis.contains_key(j)) {
            let f = v[&p];
            for (&j, &x) in &basis[&p] {
                let e = v.entry(j).or_insert(0);
                *e = (*e + PRIME - mul_mod(f, x)) % PRIME;
            }
            v.retain(|_, x| *x != 0);
        }
        let Some((&p, &lead)) = v.iter().next() else {
            continue;
        };
        let inv = pow_mod(lead, PRIME - 2);
        for x in v.values_mut() {
            *x = mul_mod(*x, inv);
        }
        // Eliminate p from the other basis rows.
        for other in basis.values_mut() {
            if let Some(&f) = other.get(&p) {
                for (&j, &x) in &v {
                    let e = other.entry(j).or_insert(0);
                    *e = (*e + PRIME - mul_mod(f, x)) % PRIME;
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
