//! Secondary suppression over the linked tables of a release, by Gaussian elimination
//! (the method of Statistics Norway's GaussSuppression, in this register's own
//! formulation). Pure: no I/O, clock or randomness; the same tables give the same
//! suppressions, so a rebuilt release is byte-identical.
//!
//! **Parametrisation.** The relations of the linked model (see the parent module) are
//! solved by sparse elimination: each relation makes one cell (its *pivot*) a linear
//! combination of the others, until every person count is a vector over the *free*
//! cells (a free cell is itself). Any vector of values the relations allow is obtained
//! by choosing the free cells, so a reader who knows the published cells knows exactly
//! the span of their vectors, and a suppressed cell is determined exactly when its
//! vector lies in that span.
//!
//! **Greedy publication.** The cells that must be suppressed (the primary rule's, and
//! those the width pass adds) are hidden first. Every other person count is then
//! considered in a fixed order ([`order`]): its vector is reduced modulo the span of the
//! cells published so far; if the remainder is zero the cell is derivable already and
//! is published; if it is a multiple of a hidden cell's remainder, publishing it would
//! determine that cell, so it is suppressed (and hidden from then on); otherwise it is
//! published and its remainder joins the span. The span is kept in reduced row echelon
//! form and every hidden cell's remainder is kept reduced against it, so the test is
//! one hash lookup and a comparison. Afterwards no suppressed person count lies in the
//! span of the published ones: none is determined by any combination of the model's
//! relations.
//!
//! **Width.** Being undetermined is not enough: a hidden 1 beside a hidden 0 under a
//! published total of 1 lies in [0, 1]. The audit's interval propagation finds such
//! cells; for each, a published partner in one of its relations (the smallest count of
//! at least [`WIDTH`], else the largest) is hidden too, and the elimination runs again
//! from the start, until the audit finds nothing or no partner is left.

use std::collections::{BTreeMap, BTreeSet};

use kpr_projection::table::{Status, Table};

use super::audit::{Finding, narrowed};
use super::field::IdMap as HashMap;
use super::{
    Cells, Family, Relation, WIDTH, field, integral, is_person_cell, region_of, relations,
};
use crate::disclosure;

/// A sparse vector over the field: `(variable, coefficient)` sorted by variable, no
/// zero coefficients. Variables are global cell ids (of free cells).
type Vector = Vec<(u32, u64)>;

/// How many times the width pass may add partners and start again.
const WIDTH_ROUNDS: usize = 32;

/// What [`protect`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Protection {
    /// Person counts suppressed by the primary rule.
    pub primary: usize,
    /// Person counts suppressed because publishing them would determine another.
    pub secondary: usize,
    /// Person counts hidden by the width pass (partners of narrowed cells).
    pub widened: usize,
    /// Elimination rounds run (1 + width rounds).
    pub rounds: usize,
    /// Suppressed person counts the audit still finds after the last round.
    pub findings: Vec<Finding>,
}

/// `a + k * b`, noting the variables that entered `a`.
fn axpy(a: &[(u32, u64)], k: u64, b: &[(u32, u64)], entered: &mut Vec<u32>) -> Vector {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_a = j >= b.len() || (i < a.len() && a[i].0 < b[j].0);
        let take_b = i >= a.len() || (j < b.len() && b[j].0 < a[i].0);
        if take_a {
            out.push(a[i]);
            i += 1;
        } else if take_b {
            let c = field::mul(k, b[j].1);
            if c != 0 {
                out.push((b[j].0, c));
                entered.push(b[j].0);
            }
            j += 1;
        } else {
            let c = field::add(a[i].1, field::mul(k, b[j].1));
            if c != 0 {
                out.push((a[i].0, c));
            }
            i += 1;
            j += 1;
        }
    }
    out
}

fn coefficient(v: &[(u32, u64)], var: u32) -> Option<u64> {
    v.binary_search_by_key(&var, |x| x.0).ok().map(|i| v[i].1)
}

/// A dense accumulator over all cell ids, reused: adding is an array write, and
/// reading it out touches only what was added.
struct Scratch {
    values: Vec<u64>,
    touched: Vec<u32>,
}

impl Scratch {
    fn new(cells: usize) -> Scratch {
        Scratch {
            values: vec![0; cells],
            touched: Vec::new(),
        }
    }

    fn add(&mut self, var: u32, c: u64) {
        let slot = &mut self.values[var as usize];
        if *slot == 0 {
            self.touched.push(var);
        }
        *slot = field::add(*slot, c);
    }

    /// The sum so far, sorted, without zeros; the accumulator is empty afterwards.
    fn take(&mut self) -> Vector {
        self.touched.sort_unstable();
        self.touched.dedup();
        let mut out = Vec::with_capacity(self.touched.len());
        for &var in &self.touched {
            let c = std::mem::take(&mut self.values[var as usize]);
            if c != 0 {
                out.push((var, c));
            }
        }
        self.touched.clear();
        out
    }
}

/// Solves the relations for one pivot each: the pivots' vectors over the free cells.
///
/// Which cell a relation is solved for decides only how sparse the vectors are, and
/// they stay sparse when the free cells are the finest cells of the municipalities
/// (GaussSuppression's "inner cells") and every aggregate is a sum of them. So the
/// relations are taken bottom-up (by the highest region level they touch; at each
/// level the sums over the regions below first, then the margins of each table, then
/// the identities between figures), and each is solved for its aggregate side: the
/// cell of the highest level among its terms of the rarer sign (a margin against its
/// items, a county against its municipalities, a figure's cell against the cells it
/// sums), then the cell with the fewest users, then the lowest id.
fn parametrise(
    relations: &[Relation],
    cells: usize,
    level: &dyn Fn(u32) -> u8,
) -> HashMap<u32, Vector> {
    let family_rank = |family: Family| match family {
        Family::AcrossRegions => 0,
        Family::WithinTable => 1,
        Family::AcrossTables => 2,
    };
    let mut ordered: Vec<&Relation> = relations.iter().collect();
    ordered.sort_by_cached_key(|r| {
        let top = r.terms.iter().map(|&(id, _)| level(id as u32)).max();
        (top, family_rank(r.family))
    });
    let mut expr: HashMap<u32, Vector> = HashMap::default();
    // Free variable -> pivots whose vector may contain it (stale entries allowed).
    let mut users: HashMap<u32, Vec<u32>> = HashMap::default();
    let mut entered = Vec::new();
    let mut acc = Scratch::new(cells);
    for relation in ordered {
        let positive = relation.terms.iter().filter(|t| t.1 > 0).count();
        let negative = relation.terms.len() - positive;
        for &(id, c) in &relation.terms {
            let (id, c) = (id as u32, field::of(c));
            match expr.get(&id) {
                Some(e) => {
                    for &(var, k) in e {
                        acc.add(var, field::mul(c, k));
                    }
                }
                None => acc.add(id, c),
            }
        }
        let v = acc.take();
        let rank = |var: u32, aggregate: bool| {
            (
                std::cmp::Reverse(level(var)),
                !aggregate,
                users.get(&var).map_or(0, Vec::len),
                var,
            )
        };
        // The relation's own aggregate terms that are still free come first; only when
        // none is left is the whole combination searched.
        let own = relation
            .terms
            .iter()
            .filter(|&&(_, c)| {
                if c > 0 {
                    positive <= negative
                } else {
                    negative <= positive
                }
            })
            .filter_map(|&(id, _)| {
                let id = id as u32;
                coefficient(&v, id).map(|a| (id, a))
            })
            .min_by_key(|&(var, _)| rank(var, true));
        let Some((pivot, a)) =
            own.or_else(|| v.iter().copied().min_by_key(|&(var, _)| rank(var, false)))
        else {
            continue; // implied by the relations already taken
        };
        let scale = field::neg(field::inv(a));
        let e: Vector = v
            .iter()
            .filter(|(var, _)| *var != pivot)
            .map(|&(var, k)| (var, field::mul(k, scale)))
            .collect();
        for user in users.remove(&pivot).unwrap_or_default() {
            let Some(old) = expr.get(&user) else {
                continue;
            };
            let Ok(i) = old.binary_search_by_key(&pivot, |x| x.0) else {
                continue;
            };
            let k = old[i].1;
            let mut without = old.clone();
            without.remove(i);
            entered.clear();
            let new = axpy(&without, k, &e, &mut entered);
            for &var in &entered {
                users.entry(var).or_default().push(user);
            }
            expr.insert(user, new);
        }
        for &(var, _) in &e {
            users.entry(var).or_default().push(pivot);
        }
        expr.insert(pivot, e);
    }
    expr
}

/// A key of a remainder that is cheap to keep current and the same for its multiples:
/// its length and its first and last variables (a match is then compared in full).
fn form_key(v: &[(u32, u64)]) -> (usize, u32, u32) {
    (
        v.len(),
        v.first().map_or(0, |x| x.0),
        v.last().map_or(0, |x| x.0),
    )
}

/// A hidden cell's remainder: kept as a map, so that publishing a short row changes
/// a long remainder in time proportional to the row.
type Remainder = BTreeMap<u32, u64>;

fn remainder_key(r: &Remainder) -> (usize, u32, u32) {
    (
        r.len(),
        r.first_key_value().map_or(0, |x| *x.0),
        r.last_key_value().map_or(0, |x| *x.0),
    )
}

/// Whether `a` is a non-zero multiple of `r` (same variables, proportional).
fn proportional(a: &[(u32, u64)], r: &Remainder) -> bool {
    let (Some(&(_, a0)), Some((_, &r0))) = (a.first(), r.first_key_value()) else {
        return false;
    };
    a.len() == r.len()
        && a.iter()
            .zip(r)
            .all(|(&(va, ca), (&vr, &cr))| va == vr && field::mul(ca, r0) == field::mul(cr, a0))
}

/// The span of the published cells and the hidden cells' remainders modulo it.
struct Span {
    /// Pivot variable -> row (coefficient 1 at the pivot, no other pivot in it).
    basis: HashMap<u32, Vector>,
    /// Variable -> basis rows that may contain it.
    in_basis: HashMap<u32, Vec<u32>>,
    /// Hidden cell -> remainder (no pivot in it).
    hidden: HashMap<u32, Remainder>,
    /// Variable -> hidden cells whose remainder may contain it.
    in_hidden: HashMap<u32, Vec<u32>>,
    /// [`form_key`] of a remainder -> hidden cells with it.
    by_form: HashMap<(usize, u32, u32), Vec<u32>>,
    scratch: Scratch,
}

impl Span {
    fn new(cells: usize) -> Span {
        Span {
            basis: HashMap::default(),
            in_basis: HashMap::default(),
            hidden: HashMap::default(),
            in_hidden: HashMap::default(),
            by_form: HashMap::default(),
            scratch: Scratch::new(cells),
        }
    }

    /// `x` modulo the span.
    fn reduce(&mut self, x: &[(u32, u64)]) -> Vector {
        if !x.iter().any(|(var, _)| self.basis.contains_key(var)) {
            return x.to_vec();
        }
        for &(var, k) in x {
            match self.basis.get(&var) {
                Some(row) => {
                    // The row has 1 at `var`: subtracting `k` times it clears `var`.
                    let minus = field::neg(k);
                    for &(w, c) in row {
                        if w != var {
                            self.scratch.add(w, field::mul(minus, c));
                        }
                    }
                }
                None => self.scratch.add(var, k),
            }
        }
        self.scratch.take()
    }

    /// Whether publishing a cell with remainder `r` (non-zero) would determine a
    /// hidden cell.
    fn reveals(&self, r: &[(u32, u64)]) -> bool {
        self.by_form.get(&form_key(r)).is_some_and(|cells| {
            cells
                .iter()
                .any(|c| self.hidden.get(c).is_some_and(|h| proportional(r, h)))
        })
    }

    fn hide(&mut self, cell: u32, r: Vector) {
        for &(var, _) in &r {
            self.in_hidden.entry(var).or_default().push(cell);
        }
        self.by_form.entry(form_key(&r)).or_default().push(cell);
        self.hidden.insert(cell, r.into_iter().collect());
    }

    /// Adds a remainder `r` (non-zero, revealing nothing) to the span.
    fn publish(&mut self, r: Vector) {
        let load = |var: &u32| {
            self.in_basis.get(var).map_or(0, Vec::len) + self.in_hidden.get(var).map_or(0, Vec::len)
        };
        let Some(&(pivot, a)) = r.iter().min_by_key(|(var, _)| (load(var), *var)) else {
            return;
        };
        let s = field::inv(a);
        let row: Vector = r.iter().map(|&(v, c)| (v, field::mul(c, s))).collect();
        let mut entered = Vec::new();
        for other in self.in_basis.remove(&pivot).unwrap_or_default() {
            let Some(old) = self.basis.get(&other) else {
                continue;
            };
            let Some(k) = coefficient(old, pivot) else {
                continue;
            };
            entered.clear();
            let new = axpy(old, field::neg(k), &row, &mut entered);
            for &var in &entered {
                self.in_basis.entry(var).or_default().push(other);
            }
            self.basis.insert(other, new);
        }
        for cell in self.in_hidden.remove(&pivot).unwrap_or_default() {
            let Some(h) = self.hidden.get_mut(&cell) else {
                continue;
            };
            let Some(&k) = h.get(&pivot) else {
                continue;
            };
            let old_key = remainder_key(h);
            let minus = field::neg(k);
            for &(var, c) in &row {
                let delta = field::mul(minus, c);
                match h.entry(var) {
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        let v = field::add(*e.get(), delta);
                        if v == 0 {
                            e.remove();
                        } else {
                            *e.get_mut() = v;
                        }
                    }
                    std::collections::btree_map::Entry::Vacant(e) => {
                        if delta != 0 {
                            e.insert(delta);
                            self.in_hidden.entry(var).or_default().push(cell);
                        }
                    }
                }
            }
            let new_key = remainder_key(h);
            if new_key != old_key {
                if let Some(list) = self.by_form.get_mut(&old_key) {
                    list.retain(|&c| c != cell);
                    if list.is_empty() {
                        self.by_form.remove(&old_key);
                    }
                }
                self.by_form.entry(new_key).or_default().push(cell);
            }
        }
        for &(var, _) in &row {
            if var != pivot {
                self.in_basis.entry(var).or_default().push(pivot);
            }
        }
        self.basis.insert(pivot, row);
    }
}

/// The level of a table's region: municipalities 0, counties 1, the nation 2.
fn level(table: &Table) -> u8 {
    match region_of(table) {
        Some(code) if code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()) => 0,
        Some(code) if code.starts_with("EK") => 1,
        _ => 2,
    }
}

/// The order in which cells are offered for publication: zeros first (a suppressed
/// zero protects nothing, since it cannot go lower), then municipalities before
/// counties before the nation (the municipal tables are the register's core, and an
/// aggregate of published cells is published for free), then larger counts first
/// (margins before their items), then by cell id.
fn order(tables: &[Table], cells: &Cells, ids: &mut [u32]) {
    ids.sort_by_cached_key(|&id| {
        let (t, o) = cells.locate(id as usize);
        let value = integral(&tables[t], o).unwrap_or(0);
        (value != 0, level(&tables[t]), std::cmp::Reverse(value), id)
    });
}

/// One elimination: the person counts among `candidates` (in order) that must be
/// suppressed, given the `forced` ones.
fn eliminate(
    cells: usize,
    expr: &HashMap<u32, Vector>,
    forced: &BTreeSet<u32>,
    candidates: &[u32],
) -> BTreeSet<u32> {
    let vector = |id: u32| expr.get(&id).cloned().unwrap_or_else(|| vec![(id, 1)]);
    let mut span = Span::new(cells);
    for &cell in forced {
        let x = vector(cell);
        if !x.is_empty() {
            span.hide(cell, x);
        }
    }
    let mut suppressed = BTreeSet::new();
    for &cell in candidates {
        if forced.contains(&cell) {
            continue;
        }
        let r = span.reduce(&vector(cell));
        if r.is_empty() {
            continue;
        }
        if span.reveals(&r) {
            span.hide(cell, r);
            suppressed.insert(cell);
        } else {
            span.publish(r);
        }
    }
    suppressed
}

/// Protects the tables of a release together (SPEC 6 as the docs state it): the
/// primary rule per table, then secondary suppression over all their linked
/// relations, then the derived rule per table, then the width pass. Tables are
/// changed in status only.
pub fn protect(tables: &mut [Table]) -> Protection {
    protect_rounds(tables, WIDTH_ROUNDS)
}

/// [`protect`] with at most `max_rounds` eliminations (1: no width pass).
pub(super) fn protect_rounds(tables: &mut [Table], max_rounds: usize) -> Protection {
    let mut out = Protection::default();
    for table in tables.iter_mut() {
        disclosure::protect_primary(table);
    }
    let base: Vec<Vec<Status>> = tables.iter().map(|t| t.status.clone()).collect();
    let cells = Cells::new(tables);
    let relations = relations(tables);
    let levels: Vec<u8> = tables.iter().map(level).collect();
    let level_of = |id: u32| levels[cells.locate(id as usize).0];
    let expr = parametrise(&relations, cells.len(), &level_of);
    // Cells in some relation: only they can be determined or determine others.
    let mut linked: BTreeSet<u32> = BTreeSet::new();
    let mut touching: HashMap<u32, Vec<usize>> = HashMap::default();
    for (r, relation) in relations.iter().enumerate() {
        for &(id, _) in &relation.terms {
            linked.insert(id as u32);
            touching.entry(id as u32).or_default().push(r);
        }
    }
    let mut candidates: Vec<u32> = linked.iter().copied().collect();
    order(tables, &cells, &mut candidates);
    let mut forced: BTreeSet<u32> = BTreeSet::new();
    for (t, table) in tables.iter().enumerate() {
        for (o, status) in table.status.iter().enumerate() {
            if *status != Status::Shown && is_person_cell(table, o) {
                forced.insert(cells.id(t, o) as u32);
            }
        }
    }
    out.primary = forced.len();
    let mut widened: BTreeSet<u32> = BTreeSet::new();
    loop {
        out.rounds += 1;
        let secondary = eliminate(cells.len(), &expr, &forced, &candidates);
        for (t, table) in tables.iter_mut().enumerate() {
            table.status.clone_from(&base[t]);
            for (o, status) in table.status.iter_mut().enumerate() {
                let id = cells.id(t, o) as u32;
                if *status == Status::Shown && (secondary.contains(&id) || widened.contains(&id)) {
                    *status = Status::SuppressedSecondary;
                }
            }
        }
        let mut derived_persons = false;
        for table in tables.iter_mut() {
            derived_persons |= disclosure::protect_derived(table);
        }
        out.secondary = secondary.len();
        if derived_persons {
            // A person count suppressed through its numerator or denominator: hide it
            // like the others and eliminate again.
            let before = forced.len();
            for (t, table) in tables.iter().enumerate() {
                for (o, status) in table.status.iter().enumerate() {
                    let id = cells.id(t, o) as u32;
                    if *status != Status::Shown
                        && is_person_cell(table, o)
                        && !secondary.contains(&id)
                    {
                        forced.insert(id);
                    }
                }
            }
            if forced.len() > before && out.rounds < max_rounds {
                continue;
            }
        }
        out.findings = narrowed(tables, &cells, &relations);
        if out.findings.is_empty() || out.rounds >= max_rounds {
            break;
        }
        let before = widened.len();
        for finding in &out.findings {
            if let Some(partner) = partner(tables, &cells, &relations, &touching, finding.cell) {
                widened.insert(partner);
                forced.insert(partner);
            }
        }
        if widened.len() == before {
            break;
        }
    }
    out.widened = widened.len();
    out
}

/// A published person count of at least [`WIDTH`] sharing a relation with `cell`: the
/// smallest such (a smaller partner could itself be pinned by the cell it protects).
fn partner(
    tables: &[Table],
    cells: &Cells,
    relations: &[Relation],
    touching: &HashMap<u32, Vec<usize>>,
    cell: usize,
) -> Option<u32> {
    let mut best: Option<(i64, u32)> = None;
    for &r in touching.get(&(cell as u32))? {
        for &(id, _) in &relations[r].terms {
            let (t, o) = cells.locate(id);
            if tables[t].status.get(o) != Some(&Status::Shown) {
                continue;
            }
            let Some(value) = integral(&tables[t], o).filter(|&v| v >= WIDTH) else {
                continue;
            };
            if best.is_none_or(|b| (value, id as u32) < b) {
                best = Some((value, id as u32));
            }
        }
    }
    best.map(|(_, id)| id)
}
