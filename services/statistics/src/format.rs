//! Renderers of a published [`Table`] in the output formats of SPEC 8: JSON-stat 2.0
//! (the format of Statistics Norway's API) and CSV (UTF-8, comma, header row, codes as
//! text).
//!
//! Both are pure and deterministic byte for byte: the same table gives the same text
//! (no clock, no hashing, fixed key order), so a frozen release renders identically
//! later (SPEC 7).
//!
//! **Cells.** A cell prints as suppressed (`null` with status `:` in JSON-stat, `:` in
//! CSV, SPEC 6) when the table is not exact and its status is not
//! [`Status::Shown`]; a cell without a status entry counts as suppressed, so a table
//! whose `status` is short never shows an unchecked number. An exact table
//! (`meta.exact`, operator role) shows every value whatever its status, and its label
//! says so. A value that is `None` or not finite is undefined: `null` without a status
//! in JSON-stat, an empty field in CSV.
//!
//! **Shape.** The number of cells is the product of the dimension sizes; a value missing
//! from `values` is undefined, extra values are ignored. The last dimension is the
//! measure dimension (`ContentsCode`).
//!
//! **Numbers** print integral values without a decimal point and others in the shortest
//! form that reads back as the same `f64` (Rust's `{}`), never with an exponent;
//! negative zero prints as `0`.
//!
//! Category codes must be unique within a dimension (JSON-stat keys its labels by code);
//! the renderers do not check this.

use kpr_projection::table::{Quantity, Status, Table};

use crate::labels::{Lang, unit};

/// Marker of a suppressed cell (SPEC 6).
const SUPPRESSED: &str = ":";

/// Suffix of the label of an exact (operator) table.
pub fn exact_suffix(lang: Lang) -> &'static str {
    lang.pick(
        " (eksakte tall, ikke skjermet)",
        " (exact, not disclosure-controlled)",
    )
}

/// Source of a table: the register, and SSB where a population measure is in it.
pub fn source(with_population: bool, lang: Lang) -> &'static str {
    match (with_population, lang) {
        (true, Lang::No) => "Kilde: KPR-registeret; befolkning: Statistisk sentralbyrå (SSB)",
        (false, Lang::No) => "Kilde: KPR-registeret",
        (true, Lang::En) => "Source: the KPR register; population: Statistics Norway (SSB)",
        (false, Lang::En) => "Source: the KPR register",
    }
}

/// What one cell publishes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    /// A finite number.
    Value(f64),
    /// No number (e.g. a rate over a zero denominator).
    Undefined,
    /// Suppressed by disclosure control.
    Suppressed,
}

/// The published form of the cell at `offset`.
fn cell(table: &Table, offset: usize) -> Cell {
    let suppressed = !table.meta.exact
        && table
            .status
            .get(offset)
            .is_none_or(|status| *status != Status::Shown);
    if suppressed {
        return Cell::Suppressed;
    }
    match table.values.get(offset).copied().flatten() {
        Some(value) if value.is_finite() => Cell::Value(value),
        _ => Cell::Undefined,
    }
}

/// Number of cells: the product of the dimension sizes.
fn cell_count(table: &Table) -> usize {
    table
        .dimensions
        .iter()
        .fold(1usize, |acc, d| acc.saturating_mul(d.categories.len()))
}

/// The table's label, marked when exact.
fn label(table: &Table, lang: Lang) -> String {
    if table.meta.exact {
        format!("{}{}", table.label, exact_suffix(lang))
    } else {
        table.label.clone()
    }
}

/// Appends a finite number (see the module doc).
fn push_number(out: &mut String, value: f64) {
    if value == 0.0 {
        out.push('0');
    } else {
        out.push_str(&value.to_string());
    }
}

/// Appends a JSON string literal: quotes and backslashes escaped, control characters as
/// `\u00XX`, everything else (non-ASCII included) as UTF-8.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends the items separated by commas.
fn push_joined<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    mut push: impl FnMut(&mut String, T),
) {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push(out, item);
    }
}

/// The table as a JSON-stat 2.0 dataset (UTF-8 JSON text, compact, no trailing newline).
///
/// Keys in this order: `version`, `class`, `label` (ending in
/// " (eksakte tall, ikke skjermet)" for an exact table, in English with
/// [`to_json_stat_in`]), `source`, `id`, `size`,
/// `role` (`geo` = `Region`, `metric` = `ContentsCode`, `time` = `Tid`, each when
/// present; left out when none is), `dimension`, `value`, `status`, `extension`. There is
/// no `updated` (the renderer has no clock).
///
/// Each dimension has its `label` and `category` with `index` as an array of codes (the
/// order is given by position, SPEC 8) and `label` as an object from code to label; the
/// measure dimension also has `unit` (`base`, `decimals`) per category when the table
/// has one measure per category. `value` has one entry per cell, `null` when suppressed
/// or undefined; `status` maps the index (as a string key) of every suppressed cell to
/// `":"`. `extension` carries the reproducibility facts (SPEC 7): `figure`,
/// `reference`, `definition_version`, `population_year` (or `null`), `exact` and
/// `log_position` as `[{"partition":p,"records":o},…]`.
pub fn to_json_stat(table: &Table) -> String {
    to_json_stat_in(table, Lang::No)
}

/// [`to_json_stat`] with unit names in `lang`, and `note` (an array of strings, after
/// `source`) when the table carries notes.
pub fn to_json_stat_in(table: &Table, lang: Lang) -> String {
    let cells = cell_count(table);
    let mut out = String::new();
    out.push_str("{\"version\":\"2.0\",\"class\":\"dataset\",\"label\":");
    push_json_string(&mut out, &label(table, lang));
    out.push_str(",\"source\":");
    let population = table
        .measures
        .iter()
        .any(|m| m.quantity == Quantity::Population);
    push_json_string(&mut out, source(population, lang));
    if !table.meta.notes.is_empty() {
        out.push_str(",\"note\":[");
        push_joined(&mut out, &table.meta.notes, |out, n| {
            push_json_string(out, n)
        });
        out.push(']');
    }

    out.push_str(",\"id\":[");
    push_joined(&mut out, &table.dimensions, |out, d| {
        push_json_string(out, &d.id)
    });
    out.push_str("],\"size\":[");
    push_joined(&mut out, &table.dimensions, |out, d| {
        out.push_str(&d.categories.len().to_string())
    });
    out.push(']');

    push_role(&mut out, table);

    out.push_str(",\"dimension\":{");
    let last = table.dimensions.len().saturating_sub(1);
    push_joined(
        &mut out,
        table.dimensions.iter().enumerate(),
        |out, (i, d)| {
            push_json_string(out, &d.id);
            out.push_str(":{\"label\":");
            push_json_string(out, &d.label);
            out.push_str(",\"category\":{\"index\":[");
            push_joined(out, &d.categories, |out, c| push_json_string(out, &c.code));
            out.push_str("],\"label\":{");
            push_joined(out, &d.categories, |out, c| {
                push_json_string(out, &c.code);
                out.push(':');
                push_json_string(out, &c.label);
            });
            out.push('}');
            if i == last && table.measures.len() == d.categories.len() {
                out.push_str(",\"unit\":{");
                push_joined(
                    out,
                    d.categories.iter().zip(&table.measures),
                    |out, (c, m)| {
                        let (base, decimals) = unit(m.quantity, lang);
                        push_json_string(out, &c.code);
                        out.push_str(":{\"base\":");
                        push_json_string(out, base);
                        out.push_str(",\"decimals\":");
                        out.push_str(&decimals.to_string());
                        out.push('}');
                    },
                );
                out.push('}');
            }
            out.push_str("}}");
        },
    );
    out.push('}');

    out.push_str(",\"value\":[");
    push_joined(&mut out, 0..cells, |out, offset| {
        match cell(table, offset) {
            Cell::Value(value) => push_number(out, value),
            Cell::Undefined | Cell::Suppressed => out.push_str("null"),
        }
    });
    out.push_str("],\"status\":{");
    let suppressed = (0..cells).filter(|&offset| cell(table, offset) == Cell::Suppressed);
    push_joined(&mut out, suppressed, |out, offset| {
        push_json_string(out, &offset.to_string());
        out.push(':');
        push_json_string(out, SUPPRESSED);
    });
    out.push('}');

    let meta = &table.meta;
    out.push_str(",\"extension\":{\"figure\":");
    push_json_string(&mut out, &table.figure);
    out.push_str(",\"reference\":");
    push_json_string(&mut out, &meta.reference);
    out.push_str(",\"definition_version\":");
    out.push_str(&meta.definition_version.to_string());
    out.push_str(",\"population_year\":");
    match meta.population_year {
        Some(year) => out.push_str(&year.to_string()),
        None => out.push_str("null"),
    }
    out.push_str(",\"exact\":");
    out.push_str(if meta.exact { "true" } else { "false" });
    out.push_str(",\"log_position\":[");
    push_joined(&mut out, &meta.log_position, |out, (partition, records)| {
        out.push_str("{\"partition\":");
        out.push_str(&partition.to_string());
        out.push_str(",\"records\":");
        out.push_str(&records.to_string());
        out.push('}');
    });
    out.push_str("]}}");
    out
}

/// Appends `"role":{…}` for the SSB dimension ids present, if any.
fn push_role(out: &mut String, table: &Table) {
    let roles: Vec<(&str, &str)> = [
        ("geo", "Region"),
        ("metric", "ContentsCode"),
        ("time", "Tid"),
    ]
    .into_iter()
    .filter(|(_, id)| table.dimension(id).is_some())
    .collect();
    if roles.is_empty() {
        return;
    }
    out.push_str(",\"role\":{");
    push_joined(out, roles, |out, (role, id)| {
        push_json_string(out, role);
        out.push_str(":[");
        push_json_string(out, id);
        out.push(']');
    });
    out.push('}');
}

/// Appends a CSV field, quoted only when it holds a comma, a quote or a line break.
fn push_csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// The table as CSV: UTF-8, comma separated, `\n` line ends, codes as text.
///
/// The header has one column per dimension except the last (`ContentsCode`), named by
/// the dimension id, then one column per measure, named by its category code. Each
/// following row is one combination of the other dimensions' categories in table order
/// (the last of them varying fastest), giving the category codes and then the measures'
/// values. Suppressed cells print `:`, undefined ones nothing. A field is quoted only
/// when it holds a comma, a quote or a line break. Nothing follows the data rows.
pub fn to_csv(table: &Table) -> String {
    let (row_dimensions, columns): (&[_], Vec<&str>) = match table.dimensions.split_last() {
        Some((measure, rest)) => (
            rest,
            measure.categories.iter().map(|c| c.code.as_str()).collect(),
        ),
        None => (&[], vec!["value"]),
    };
    let mut out = String::new();
    let header = row_dimensions
        .iter()
        .map(|d| d.id.as_str())
        .chain(columns.iter().copied());
    push_joined(&mut out, header, push_csv_field);
    out.push('\n');
    if columns.is_empty() {
        return out;
    }
    let rows = row_dimensions
        .iter()
        .fold(1usize, |acc, d| acc.saturating_mul(d.categories.len()));
    let mut coords = vec![0usize; row_dimensions.len()];
    for row in 0..rows {
        let mut rest = row;
        for (coord, d) in coords.iter_mut().zip(row_dimensions).rev() {
            let size = d.categories.len().max(1);
            *coord = rest % size;
            rest /= size;
        }
        let codes = coords
            .iter()
            .zip(row_dimensions)
            .map(|(&coord, d)| d.categories.get(coord).map_or("", |c| c.code.as_str()));
        push_joined(&mut out, codes, push_csv_field);
        for column in 0..columns.len() {
            if !row_dimensions.is_empty() || column > 0 {
                out.push(',');
            }
            match cell(
                table,
                row.saturating_mul(columns.len()).saturating_add(column),
            ) {
                Cell::Value(value) => push_number(&mut out, value),
                Cell::Undefined => {}
                Cell::Suppressed => out.push_str(SUPPRESSED),
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disclosure::protect;
    use kpr_projection::bands::{ALL_AGES, DETAILED, KOSTRA};
    use kpr_projection::table::{Category, Dimension, Measure, TableMeta};
    use std::path::PathBuf;

    // ---------------------------------------------------------------- fixed tables

    fn categories(items: &[(&str, &str)]) -> Vec<Category> {
        items
            .iter()
            .map(|(code, label)| Category {
                code: (*code).into(),
                label: (*label).into(),
            })
            .collect()
    }

    fn dimension(id: &str, label: &str, items: &[(&str, &str)]) -> Dimension {
        Dimension {
            id: id.into(),
            label: label.into(),
            categories: categories(items),
            total: None,
            partitions: Vec::new(),
        }
    }

    /// Alder: the detailed bands, KOSTRA `000-066` and `080+` (`067-079` is shared with
    /// the detailed set), all ages.
    const ALDER_ROWS: usize = 9;

    fn alder() -> Dimension {
        let bands: Vec<(&str, &str)> = DETAILED
            .iter()
            .chain([&KOSTRA[0], &KOSTRA[2], &ALL_AGES])
            .map(|b| (b.code, b.label))
            .collect();
        Dimension {
            total: Some(8),
            partitions: vec![(0..6).collect(), vec![6, 3, 7]],
            ..dimension("Alder", "alder", &bands)
        }
    }

    fn kjonn() -> Dimension {
        Dimension {
            total: Some(3),
            partitions: vec![vec![0, 1, 2]],
            ..dimension(
                "Kjonn",
                "kjønn",
                &[
                    ("1", "Menn"),
                    ("2", "Kvinner"),
                    ("9", "Ukjent"),
                    ("0", "Begge kjønn"),
                ],
            )
        }
    }

    /// The Alder × Kjonn grid (rows as in [`alder`], columns male, female, unknown,
    /// both) from detailed band × (male, female, unknown) counts.
    fn grid(detailed: &[[u32; 3]; 6]) -> [[f64; 4]; ALDER_ROWS] {
        const KOSTRA_ROW: [usize; 6] = [6, 6, 6, 3, 7, 7];
        let mut out = [[0.0; 4]; ALDER_ROWS];
        for (band, row) in detailed.iter().enumerate() {
            for (sex, &count) in row.iter().enumerate() {
                let count = f64::from(count);
                let mut rows = vec![band, 8];
                if KOSTRA_ROW[band] != band {
                    rows.push(KOSTRA_ROW[band]);
                }
                for age in rows {
                    out[age][sex] += count;
                    out[age][3] += count;
                }
            }
        }
        out
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

    /// T2-like, exact (operator): recipients on 31.12.2024 in Oslo of codes 15 and 21,
    /// by age band and sex.
    fn t2() -> Table {
        let grids = [
            grid(&[
                [12, 9, 0],
                [40, 38, 1],
                [95, 110, 0],
                [310, 420, 2],
                [510, 880, 1],
                [240, 530, 0],
            ]),
            grid(&[
                [0, 0, 0],
                [2, 1, 0],
                [6, 4, 0],
                [60, 55, 0],
                [310, 520, 0],
                [290, 640, 1],
            ]),
        ];
        let mut values = Vec::new();
        for grid in &grids {
            for row in grid {
                values.extend(row.iter().map(|&v| Some(v)));
            }
        }
        Table {
            figure: "T2".into(),
            label: "Mottakere av helse- og omsorgstjenester per 31.12.2024".into(),
            dimensions: vec![
                dimension("Region", "region", &[("0301", "Oslo")]),
                dimension(
                    "Tjeneste",
                    "tjeneste",
                    &[
                        ("15", "Helsetjenester i hjemmet"),
                        ("21", "Langtidsopphold i institusjon"),
                    ],
                ),
                alder(),
                kjonn(),
                dimension(
                    "ContentsCode",
                    "statistikkvariabel",
                    &[("Personer", "Personer")],
                ),
            ],
            measures: vec![measure(Quantity::Persons, None, None)],
            status: vec![Status::Shown; values.len()],
            values,
            meta: TableMeta {
                log_position: vec![(0, 18_342), (1, 17_960)],
                definition_version: 1,
                population_year: None,
                population_wanted: None,
                notes: Vec::new(),
                reference: "2024-12-31".into(),
                exact: true,
            },
        }
    }

    /// I1-like, disclosure-controlled: persons 80+ in long-term stay (code 21), the
    /// population 80+ and their share, for Oslo and Utsira by sex.
    fn i1() -> Table {
        // (persons, population) for male, female, unknown; both is the sum.
        let regions: [[(u32, u32); 3]; 2] = [
            [(612, 11_204), (1480, 17_380), (2, 0)],
            [(1, 12), (3, 17), (0, 0)],
        ];
        let mut values = Vec::new();
        for region in &regions {
            let both = region
                .iter()
                .fold((0, 0), |(n, d), &(pn, pd)| (n + pn, d + pd));
            for (n, d) in region.iter().copied().chain([both]) {
                let (n, d) = (f64::from(n), f64::from(d));
                values.extend([Some(n), Some(d), (d > 0.0).then(|| n / d)]);
            }
        }
        let mut table = Table {
            figure: "I1".into(),
            label: "Personer 80 år og over på \"langtidsopphold\" (kode 21), andel av \
                    befolkningen 80 år og over"
                .into(),
            dimensions: vec![
                dimension("Region", "region", &[("0301", "Oslo"), ("1151", "Utsira")]),
                kjonn(),
                dimension("Tid", "år", &[("2024", "2024")]),
                dimension(
                    "ContentsCode",
                    "statistikkvariabel",
                    &[
                        ("Personer", "Personer 80 år og over med langtidsopphold"),
                        ("Befolkning", "Befolkning 80 år og over"),
                        ("Andel", "Andel"),
                    ],
                ),
            ],
            measures: vec![
                measure(Quantity::Persons, None, None),
                measure(Quantity::Population, None, None),
                measure(Quantity::Share, Some(0), Some(1)),
            ],
            status: vec![Status::Shown; values.len()],
            values,
            meta: TableMeta {
                log_position: vec![(0, 18_342), (1, 17_960)],
                definition_version: 1,
                population_year: Some(2025),
                population_wanted: Some(2025),
                notes: Vec::new(),
                reference: "2024-12-31".into(),
                exact: true,
            },
        };
        protect(&mut table);
        table
    }

    // ---------------------------------------------------------------- golden files

    fn golden(name: &str, actual: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name);
        if std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read golden file {}: {e}\n(run with UPDATE_EXPECT=1 to create it)",
                path.display()
            )
        });
        if expected != actual {
            panic!(
                "{} differs from the output:\n{}\n(if the change is intended, rerun with \
                 UPDATE_EXPECT=1 and review the diff of the golden file)",
                path.display(),
                diff(&expected, actual)
            );
        }
    }

    /// Where two texts first differ: line, column and some context of each.
    fn diff(expected: &str, actual: &str) -> String {
        let at = expected
            .char_indices()
            .zip(actual.chars())
            .find(|((_, a), b)| a != b)
            .map_or(expected.len().min(actual.len()), |((i, _), _)| i);
        let line = expected[..at].matches('\n').count() + 1;
        let column = expected[..at].rfind('\n').map_or(at, |nl| at - nl - 1) + 1;
        let window = |text: &str| {
            let start = text[..at.min(text.len())]
                .char_indices()
                .rev()
                .nth(39)
                .map_or(0, |(i, _)| i);
            let end = text[at.min(text.len())..]
                .char_indices()
                .nth(40)
                .map_or(text.len(), |(i, _)| at + i);
            format!("{:?}", &text[start..end])
        };
        format!(
            "first difference at byte {at} (line {line}, column {column}); \
             expected {} bytes, got {} bytes\n  expected: …{}…\n  actual:   …{}…",
            expected.len(),
            actual.len(),
            window(expected),
            window(actual)
        )
    }

    // ---------------------------------------------------------------- JSON reader

    #[derive(Debug, PartialEq)]
    enum Json {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Json>),
        Object(Vec<(String, Json)>),
    }

    impl Json {
        fn get(&self, key: &str) -> &Json {
            match self {
                Json::Object(members) => members
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("no key {key:?}")),
                other => panic!("not an object: {other:?}"),
            }
        }

        fn keys(&self) -> Vec<&str> {
            match self {
                Json::Object(members) => members.iter().map(|(k, _)| k.as_str()).collect(),
                other => panic!("not an object: {other:?}"),
            }
        }

        fn array(&self) -> &[Json] {
            match self {
                Json::Array(items) => items,
                other => panic!("not an array: {other:?}"),
            }
        }

        fn str(&self) -> &str {
            match self {
                Json::String(s) => s,
                other => panic!("not a string: {other:?}"),
            }
        }

        fn number(&self) -> f64 {
            match self {
                Json::Number(n) => *n,
                other => panic!("not a number: {other:?}"),
            }
        }
    }

    /// A strict recursive-descent JSON parser (RFC 8259; duplicate keys refused).
    struct Parser<'a> {
        text: &'a [u8],
        at: usize,
    }

    fn parse_json(text: &str) -> Result<Json, String> {
        let mut parser = Parser {
            text: text.as_bytes(),
            at: 0,
        };
        let value = parser.value()?;
        parser.whitespace();
        if parser.at != parser.text.len() {
            return Err(parser.error("trailing characters"));
        }
        Ok(value)
    }

    impl Parser<'_> {
        fn error(&self, what: &str) -> String {
            format!("{what} at byte {}", self.at)
        }

        fn peek(&self) -> Option<u8> {
            self.text.get(self.at).copied()
        }

        fn whitespace(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.at += 1;
            }
        }

        fn expect(&mut self, byte: u8) -> Result<(), String> {
            if self.peek() == Some(byte) {
                self.at += 1;
                Ok(())
            } else {
                Err(self.error(&format!("expected {:?}", byte as char)))
            }
        }

        fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
            if self.text[self.at..].starts_with(word.as_bytes()) {
                self.at += word.len();
                Ok(value)
            } else {
                Err(self.error("bad literal"))
            }
        }

        fn value(&mut self) -> Result<Json, String> {
            self.whitespace();
            match self.peek() {
                Some(b'{') => self.object(),
                Some(b'[') => self.array(),
                Some(b'"') => self.string().map(Json::String),
                Some(b't') => self.literal("true", Json::Bool(true)),
                Some(b'f') => self.literal("false", Json::Bool(false)),
                Some(b'n') => self.literal("null", Json::Null),
                Some(b'-' | b'0'..=b'9') => self.number(),
                _ => Err(self.error("expected a value")),
            }
        }

        fn object(&mut self) -> Result<Json, String> {
            self.expect(b'{')?;
            let mut members: Vec<(String, Json)> = Vec::new();
            self.whitespace();
            if self.peek() == Some(b'}') {
                self.at += 1;
                return Ok(Json::Object(members));
            }
            loop {
                self.whitespace();
                let key = self.string()?;
                if members.iter().any(|(k, _)| *k == key) {
                    return Err(self.error(&format!("duplicate key {key:?}")));
                }
                self.whitespace();
                self.expect(b':')?;
                let value = self.value()?;
                members.push((key, value));
                self.whitespace();
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b'}') => {
                        self.at += 1;
                        return Ok(Json::Object(members));
                    }
                    _ => return Err(self.error("expected ',' or '}'")),
                }
            }
        }

        fn array(&mut self) -> Result<Json, String> {
            self.expect(b'[')?;
            let mut items = Vec::new();
            self.whitespace();
            if self.peek() == Some(b']') {
                self.at += 1;
                return Ok(Json::Array(items));
            }
            loop {
                items.push(self.value()?);
                self.whitespace();
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b']') => {
                        self.at += 1;
                        return Ok(Json::Array(items));
                    }
                    _ => return Err(self.error("expected ',' or ']'")),
                }
            }
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let digits = self
                .text
                .get(self.at..self.at + 4)
                .ok_or_else(|| self.error("short \\u escape"))?;
            let digits = std::str::from_utf8(digits).map_err(|_| self.error("bad \\u"))?;
            let code = u32::from_str_radix(digits, 16).map_err(|_| self.error("bad \\u"))?;
            self.at += 4;
            Ok(code)
        }

        fn string(&mut self) -> Result<String, String> {
            self.expect(b'"')?;
            let mut out = Vec::new();
            loop {
                let byte = self
                    .peek()
                    .ok_or_else(|| self.error("unterminated string"))?;
                self.at += 1;
                match byte {
                    b'"' => break,
                    0..0x20 => return Err(self.error("raw control character in string")),
                    b'\\' => {
                        let escape = self.peek().ok_or_else(|| self.error("bad escape"))?;
                        self.at += 1;
                        let c = match escape {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let mut code = self.hex4()?;
                                if (0xD800..0xDC00).contains(&code) {
                                    self.expect(b'\\')?;
                                    self.expect(b'u')?;
                                    let low = self.hex4()?;
                                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                }
                                char::from_u32(code).ok_or_else(|| self.error("bad code point"))?
                            }
                            _ => return Err(self.error("bad escape")),
                        };
                        let mut buf = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    other => out.push(other),
                }
            }
            String::from_utf8(out).map_err(|_| self.error("invalid UTF-8"))
        }

        fn number(&mut self) -> Result<Json, String> {
            let start = self.at;
            let digits = |p: &mut Self| {
                let from = p.at;
                while matches!(p.peek(), Some(b'0'..=b'9')) {
                    p.at += 1;
                }
                p.at - from
            };
            if self.peek() == Some(b'-') {
                self.at += 1;
            }
            if self.peek() == Some(b'0') {
                self.at += 1;
            } else if digits(self) == 0 {
                return Err(self.error("expected digits"));
            }
            if self.peek() == Some(b'.') {
                self.at += 1;
                if digits(self) == 0 {
                    return Err(self.error("expected fraction digits"));
                }
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.at += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.at += 1;
                }
                if digits(self) == 0 {
                    return Err(self.error("expected exponent digits"));
                }
            }
            let text = std::str::from_utf8(&self.text[start..self.at]).unwrap();
            text.parse()
                .map(Json::Number)
                .map_err(|_| self.error("bad number"))
        }
    }

    // ---------------------------------------------------------------- JSON-stat checks

    /// Parses the JSON-stat text and checks it against the table it was made from.
    fn check_json_stat(table: &Table, text: &str) {
        let json = parse_json(text).unwrap_or_else(|e| panic!("not JSON: {e}"));
        let mut keys = vec!["version", "class", "label", "source", "id", "size"];
        if json.keys().contains(&"role") {
            keys.push("role");
        }
        keys.extend(["dimension", "value", "status", "extension"]);
        assert_eq!(json.keys(), keys);
        assert_eq!(json.get("version").str(), "2.0");
        assert_eq!(json.get("class").str(), "dataset");
        assert_eq!(
            json.get("label").str().ends_with(exact_suffix(Lang::No)),
            table.meta.exact
        );

        let ids: Vec<&str> = json.get("id").array().iter().map(Json::str).collect();
        let want_ids: Vec<&str> = table.dimensions.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, want_ids);
        let size: Vec<usize> = json
            .get("size")
            .array()
            .iter()
            .map(|n| n.number() as usize)
            .collect();
        assert_eq!(size, table.sizes());
        let values = json.get("value").array();
        assert_eq!(
            values.len(),
            size.iter().product::<usize>(),
            "value.len() = Π size"
        );

        let dimension = json.get("dimension");
        assert_eq!(dimension.keys(), ids);
        for d in &table.dimensions {
            let category = dimension.get(&d.id).get("category");
            let codes: Vec<&str> = d.categories.iter().map(|c| c.code.as_str()).collect();
            let index: Vec<&str> = category
                .get("index")
                .array()
                .iter()
                .map(Json::str)
                .collect();
            assert_eq!(index, codes, "{}: index in order", d.id);
            assert_eq!(category.get("label").keys(), codes);
            for c in &d.categories {
                assert_eq!(category.get("label").get(&c.code).str(), c.label);
            }
        }

        let status = json.get("status");
        let marked: Vec<usize> = status
            .keys()
            .iter()
            .map(|k| k.parse().expect("status key is an index"))
            .collect();
        assert!(
            marked.windows(2).all(|w| w[0] < w[1]),
            "status keys ascending"
        );
        for (offset, json_value) in values.iter().enumerate() {
            let suppressed = !table.meta.exact && table.status[offset] != Status::Shown;
            assert_eq!(
                marked.contains(&offset),
                suppressed,
                "status of cell {offset}"
            );
            if suppressed {
                assert_eq!(status.get(&offset.to_string()).str(), ":");
                assert_eq!(json_value, &Json::Null, "suppressed cell {offset} is null");
            } else {
                match table.values[offset] {
                    Some(v) => assert_eq!(json_value.number(), v, "cell {offset}"),
                    None => assert_eq!(json_value, &Json::Null, "cell {offset}"),
                }
            }
        }

        let extension = json.get("extension");
        assert_eq!(
            extension.keys(),
            [
                "figure",
                "reference",
                "definition_version",
                "population_year",
                "exact",
                "log_position"
            ]
        );
        assert_eq!(extension.get("figure").str(), table.figure);
        assert_eq!(extension.get("reference").str(), table.meta.reference);
        assert_eq!(
            extension.get("definition_version").number(),
            f64::from(table.meta.definition_version)
        );
        assert_eq!(
            extension.get("exact"),
            &Json::Bool(table.meta.exact),
            "exact flag"
        );
        let positions: Vec<(u32, u64)> = extension
            .get("log_position")
            .array()
            .iter()
            .map(|p| {
                (
                    p.get("partition").number() as u32,
                    p.get("records").number() as u64,
                )
            })
            .collect();
        assert_eq!(positions, table.meta.log_position);
    }

    // ---------------------------------------------------------------- tests

    #[test]
    fn t2_golden() {
        let table = t2();
        assert_eq!(table.values.len(), 2 * ALDER_ROWS * 4);
        let json = to_json_stat(&table);
        check_json_stat(&table, &json);
        let parsed = parse_json(&json).unwrap();
        assert!(
            !parsed.get("value").array().contains(&Json::Null),
            "an exact table hides nothing"
        );
        let csv = to_csv(&table);
        assert_eq!(csv.lines().count(), 1 + 2 * ALDER_ROWS * 4);
        assert!(csv.starts_with("Region,Tjeneste,Alder,Kjonn,Personer\n0301,15,000-017,1,12\n"));
        golden("t2.json", &json);
        golden("t2.csv", &csv);
    }

    #[test]
    fn i1_golden() {
        let table = i1();
        assert!(!table.meta.exact);
        assert!(table.status.contains(&Status::SuppressedPrimary));
        assert!(table.status.contains(&Status::SuppressedSecondary));
        assert!(
            table
                .values
                .iter()
                .zip(&table.status)
                .any(|(v, s)| v.is_none() && *s == Status::Shown),
            "an undefined cell that is not suppressed"
        );
        let json = to_json_stat(&table);
        check_json_stat(&table, &json);
        let csv = to_csv(&table);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "Region,Kjonn,Tid,Personer,Befolkning,Andel");
        assert_eq!(lines.len(), 1 + 2 * 4);
        // Oslo, unknown sex: 2 persons (primary), population 0, share undefined.
        assert_eq!(lines[3], "0301,9,2024,:,0,:");
        // Utsira, unknown sex: nothing small, share 0/0 undefined.
        assert_eq!(lines[7], "1151,9,2024,0,0,");
        golden("i1.json", &json);
        golden("i1.csv", &csv);
    }

    #[test]
    fn output_is_deterministic() {
        for table in [t2(), i1()] {
            let copy = table.clone();
            assert_eq!(to_json_stat(&table), to_json_stat(&copy));
            assert_eq!(to_csv(&table), to_csv(&copy));
        }
    }

    #[test]
    fn exact_tables_show_every_value_and_say_so() {
        let mut table = i1();
        let suppressed = table.status.iter().filter(|s| **s != Status::Shown).count();
        assert!(suppressed > 0);
        table.meta.exact = true;
        let json = to_json_stat(&table);
        let parsed = parse_json(&json).unwrap();
        assert!(
            parsed
                .get("label")
                .str()
                .ends_with(" (eksakte tall, ikke skjermet)")
        );
        assert_eq!(parsed.get("status"), &Json::Object(Vec::new()));
        let nulls = parsed
            .get("value")
            .array()
            .iter()
            .filter(|v| **v == Json::Null)
            .count();
        let undefined = table.values.iter().filter(|v| v.is_none()).count();
        assert_eq!(nulls, undefined, "only undefined cells are null");
        assert!(!to_csv(&table).contains(':'));
        assert_eq!(parsed.get("extension").get("exact"), &Json::Bool(true));
    }

    #[test]
    fn malformed_tables_keep_the_shape_and_hide_unchecked_cells() {
        let mut table = i1();
        let cells = table.values.len();
        table.values.truncate(cells - 2);
        table.status.truncate(cells - 5);
        let json = parse_json(&to_json_stat(&table)).unwrap();
        let values = json.get("value").array();
        assert_eq!(values.len(), cells);
        let status = json.get("status");
        for (offset, value) in values.iter().enumerate().skip(cells - 5) {
            assert_eq!(value, &Json::Null);
            assert_eq!(status.get(&offset.to_string()).str(), ":");
        }
        let csv = to_csv(&table);
        assert_eq!(csv.lines().count(), 1 + cells / 3);
        assert!(csv.ends_with(",:,:,:\n"));

        // Extra values are ignored; no dimensions at all gives one cell.
        let mut table = t2();
        table.values.push(Some(1.0));
        table.status.push(Status::Shown);
        check_json_stat(
            &{
                let mut t = table.clone();
                t.values.pop();
                t.status.pop();
                t
            },
            &to_json_stat(&table),
        );
        table.dimensions.clear();
        let json = parse_json(&to_json_stat(&table)).unwrap();
        assert_eq!(json.get("value").array().len(), 1);
        assert_eq!(to_csv(&table), "value\n12\n");
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c/d\n\t\u{1}\u{1f}ø€\u{7f}");
        assert_eq!(out, "\"a\\\"b\\\\c/d\\u000a\\u0009\\u0001\\u001fø€\u{7f}\"");
        assert_eq!(
            parse_json(&out).unwrap(),
            Json::String("a\"b\\c/d\n\t\u{1}\u{1f}ø€\u{7f}".into())
        );

        let mut table = t2();
        table.label = "Line\nbreak \"quoted\" \\ ø".into();
        table.dimensions[1].categories[0].code = "1,5".into();
        table.dimensions[1].categories[1].code = "say \"21\"".into();
        table.dimensions[1].categories[1].label = "tab\there".into();
        check_json_stat(&table, &to_json_stat(&table));
        let csv = to_csv(&table);
        assert!(csv.contains("\n0301,\"1,5\",000-017,1,12\n"));
        assert!(csv.contains("\n0301,\"say \"\"21\"\"\",000-017,1,0\n"));
    }

    #[test]
    fn numbers_are_printed_deterministically() {
        let cases: [(f64, &str); 9] = [
            (12.0, "12"),
            (-0.0, "0"),
            (0.0, "0"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (-2.5, "-2.5"),
            (1e21, "1000000000000000000000"),
            (1e-7, "0.0000001"),
            (28584.0, "28584"),
        ];
        for (value, text) in cases {
            let mut out = String::new();
            push_number(&mut out, value);
            assert_eq!(out, text);
            assert_eq!(parse_json(&out).unwrap().number(), value, "round trip");
        }
        let mut table = t2();
        table.values[0] = Some(f64::NAN);
        table.values[1] = Some(f64::INFINITY);
        table.values[2] = Some(f64::NEG_INFINITY);
        let json = parse_json(&to_json_stat(&table)).unwrap();
        assert_eq!(
            json.get("value").array()[..3],
            [Json::Null, Json::Null, Json::Null]
        );
        let csv = to_csv(&table);
        let rows: Vec<&str> = csv.lines().skip(1).take(3).collect();
        assert_eq!(
            rows,
            [
                "0301,15,000-017,1,",
                "0301,15,000-017,2,",
                "0301,15,000-017,9,"
            ]
        );
    }

    #[test]
    fn roles_and_units_follow_the_dimensions() {
        let json = parse_json(&to_json_stat(&i1())).unwrap();
        assert_eq!(json.get("role").keys(), ["geo", "metric", "time"]);
        assert_eq!(
            json.get("role").get("time").array(),
            [Json::String("Tid".into())]
        );
        let unit = json
            .get("dimension")
            .get("ContentsCode")
            .get("category")
            .get("unit");
        assert_eq!(unit.keys(), ["Personer", "Befolkning", "Andel"]);
        assert_eq!(unit.get("Andel").get("base").str(), "andel");
        assert_eq!(unit.get("Andel").get("decimals").number(), 3.0);
        assert!(json.get("source").str().contains("(SSB)"));

        let json = parse_json(&to_json_stat(&t2())).unwrap();
        assert_eq!(json.get("role").keys(), ["geo", "metric"]);
        assert!(!json.get("source").str().contains("SSB"));

        let mut table = t2();
        for d in &mut table.dimensions {
            d.id.make_ascii_lowercase();
        }
        let json = parse_json(&to_json_stat(&table)).unwrap();
        assert!(!json.keys().contains(&"role"));
    }

    #[test]
    fn the_json_reader_is_strict() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "\"\u{1}\"",
            "nul",
            "[1]x",
            "{\"a\":1,\"a\":2}",
            "\"\\x\"",
            "NaN",
        ] {
            assert!(parse_json(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_json(" {\"a\" : [1, -2.5e3, true, null, \"\\ud83d\\ude00\"]} ").unwrap(),
            Json::Object(vec![(
                "a".into(),
                Json::Array(vec![
                    Json::Number(1.0),
                    Json::Number(-2500.0),
                    Json::Bool(true),
                    Json::Null,
                    Json::String("😀".into()),
                ])
            )])
        );
    }

    #[test]
    fn the_diff_message_points_at_the_change() {
        let message = diff("abc\ndef", "abc\ndxf");
        assert!(message.contains("byte 5 (line 2, column 2)"), "{message}");
        let message = diff("abc", "abcd");
        assert!(message.contains("byte 3"), "{message}");
    }
}
