//! The table catalogue and the query API in the manner of Statistics Norway's
//! PxWebApi v2:
//!
//! - `GET /v1/tables`: every figure with its title, description, reference type
//!   (status on a date or during a period), dimensions, first and last period with
//!   data, and the log position it reflects;
//! - `GET /v1/tables/{id}/metadata`: JSON-stat 2.0 without values (`"value":{}`):
//!   every dimension with its codes, labels, units and decimals, the region hierarchy
//!   (`category.child`), notes;
//! - `GET /v1/tables/{id}/data?valueCodes[Region]=…&valueCodes[Tid]=…`: one JSON-stat
//!   2.0 dataset (or one CSV) over many regions and years, every cell from one model
//!   generation at one stated log position.
//!
//! **Selections** (`valueCodes[DIM]=`, comma separated, any mix): a code; `*` (every
//! code); a code with `*` or `?` wildcards (`46*` is county 46's municipalities);
//! `top(n)` and `bottom(n)` (for `Tid` the latest and the earliest n years with
//! data); `from(c)`, `to(c)` and `range(a,b)` (for `Tid` years, given explicitly and
//! answered even outside the data, with a note). `codelist[Region]=vs_Kommuner`,
//! `vs_Fylker` or `vs_Landet` restricts `Region` to municipalities, counties or the
//! nation first. Defaults: `Region` the nation, `Tid` the latest year with data,
//! every other dimension all its codes. `outputFormat=json-stat2|csv`, `lang=no|en`.
//! At most [`CELLS_MAX`] cells per answer; a larger selection is refused, saying how
//! many cells it has.

use std::collections::BTreeMap;

use kpr_domain::municipality::Registry;
use kpr_projection::figures::{DEFINITION_VERSION, Figure, Query, compute};
use kpr_projection::model::ReadModel;
use kpr_projection::population::{Population, Region};
use kpr_projection::table::{Category, Dimension, Measure, Status, Table, TableMeta};
use serde_json::{Value, json};

use crate::api::{Format, Rendered, Statistics, render_in};
use crate::error::StatsError;
use crate::labels::{self, Lang};

/// Most cells one data answer holds (Statistics Norway's API has a limit of the
/// same kind).
pub const CELLS_MAX: usize = 400_000;

/// Most (region, year) tables one data answer is computed from.
pub const TABLES_MAX: usize = 8_000;

/// Region code lists for `codelist[Region]=`.
pub const CODELISTS: [(&str, &str, &str); 3] = [
    ("vs_Kommuner", "Kommuner", "Municipalities"),
    ("vs_Fylker", "Fylker", "Counties"),
    ("vs_Landet", "Hele landet", "The whole country"),
];

/// Every region in publication order: the nation, then each county followed by its
/// municipalities.
pub fn all_regions() -> Vec<Region> {
    let registry = Registry::get();
    let mut out = vec![Region::Nation];
    for (county, _) in registry.counties() {
        out.push(Region::County(county.to_string()));
        out.extend(
            registry
                .municipalities()
                .filter(|m| m.county == county)
                .map(|m| Region::Municipality(m.code.as_str().to_string())),
        );
    }
    out
}

/// The years with data: every year from the first event's to the last event's.
fn data_years(stats: &Statistics) -> Result<Vec<i32>, StatsError> {
    Ok(match stats.span()? {
        Some((first, last)) => (first.year()..=last.year()).collect(),
        None => Vec::new(),
    })
}

/// The dimensions of a figure, from a computation on an empty model (they do not
/// depend on the data): the first is `Region`, the last `ContentsCode`.
fn shape(figure: Figure, lang: Lang) -> Result<Table, StatsError> {
    let query = Query::for_year(figure, Region::Nation, 2024)
        .ok_or_else(|| StatsError::Internal("no query for 2024".into()))?;
    let mut table = compute(&ReadModel::new(), Population::embedded(), &query);
    labels::localize(&mut table, lang);
    Ok(table)
}

fn position_json(position: &[(u32, u64)]) -> Value {
    Value::Array(
        position
            .iter()
            .map(|(p, r)| json!({"partition": p, "records": r}))
            .collect(),
    )
}

/// `GET /v1/tables`: the catalogue as JSON.
pub fn list(stats: &Statistics, lang: Lang) -> Result<String, StatsError> {
    let years = data_years(stats)?;
    let position = stats
        .model()
        .read()
        .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?
        .reflected();
    let mut tables = Vec::new();
    for figure in Figure::ALL {
        let table = shape(figure, lang)?;
        tables.push(json!({
            "id": figure.id(),
            "label": labels::title(figure, lang),
            "description": labels::description(figure, lang),
            "referenceType": labels::reference_kind(figure),
            "dimensions": table.dimensions.iter().map(|d| json!({"id": d.id, "label": d.label})).collect::<Vec<_>>(),
            "firstPeriod": years.first().map(|y| y.to_string()),
            "lastPeriod": years.last().map(|y| y.to_string()),
            "definitionVersion": DEFINITION_VERSION,
            "links": {
                "metadata": format!("/v1/tables/{}/metadata", figure.id()),
                "data": format!("/v1/tables/{}/data", figure.id()),
            },
        }));
    }
    let body = json!({
        "language": lang.code(),
        "logPosition": position_json(&position),
        "tables": tables,
    });
    Ok(body.to_string())
}

fn region_dimension(lang: Lang) -> (Value, Value, Value) {
    let regions = all_regions();
    let index: Vec<String> = regions.iter().map(Region::code).collect();
    let label: serde_json::Map<String, Value> = regions
        .iter()
        .map(|r| (r.code(), Value::String(labels::region_name(r, lang))))
        .collect();
    let registry = Registry::get();
    let mut child = serde_json::Map::new();
    child.insert(
        "EAK".into(),
        json!(
            registry
                .counties()
                .map(|(c, _)| format!("EK{c}"))
                .collect::<Vec<_>>()
        ),
    );
    for (county, _) in registry.counties() {
        child.insert(
            format!("EK{county}"),
            json!(
                registry
                    .municipalities()
                    .filter(|m| m.county == county)
                    .map(|m| m.code.as_str().to_string())
                    .collect::<Vec<_>>()
            ),
        );
    }
    (json!(index), Value::Object(label), Value::Object(child))
}

/// `GET /v1/tables/{id}/metadata`: JSON-stat 2.0 without values.
pub fn metadata(stats: &Statistics, figure: &str, lang: Lang) -> Result<String, StatsError> {
    let figure = parse_figure(figure)?;
    let table = shape(figure, lang)?;
    let years = data_years(stats)?;
    let position = stats
        .model()
        .read()
        .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?
        .reflected();
    let mut dimension = serde_json::Map::new();
    let mut size = Vec::new();
    for (i, d) in table.dimensions.iter().enumerate() {
        let mut category = serde_json::Map::new();
        let mut extension = serde_json::Map::new();
        match d.id.as_str() {
            "Region" => {
                let (index, label, child) = region_dimension(lang);
                size.push(index.as_array().map_or(0, Vec::len));
                category.insert("index".into(), index);
                category.insert("label".into(), label);
                category.insert("child".into(), child);
                extension.insert("default".into(), json!(["EAK"]));
                extension.insert(
                    "codelists".into(),
                    json!(
                        CODELISTS
                            .iter()
                            .map(|(id, no, en)| json!({"id": id, "label": lang.pick(no, en)}))
                            .collect::<Vec<_>>()
                    ),
                );
            }
            "Tid" => {
                size.push(years.len());
                let codes: Vec<String> = years.iter().map(|y| y.to_string()).collect();
                category.insert("index".into(), json!(codes));
                category.insert(
                    "label".into(),
                    Value::Object(
                        codes
                            .iter()
                            .map(|c| (c.clone(), Value::String(c.clone())))
                            .collect(),
                    ),
                );
                extension.insert("default".into(), json!(codes.last().map(|c| vec![c])));
            }
            _ => {
                size.push(d.categories.len());
                category.insert(
                    "index".into(),
                    json!(d.categories.iter().map(|c| &c.code).collect::<Vec<_>>()),
                );
                category.insert(
                    "label".into(),
                    Value::Object(
                        d.categories
                            .iter()
                            .map(|c| (c.code.clone(), Value::String(c.label.clone())))
                            .collect(),
                    ),
                );
                if i + 1 == table.dimensions.len() {
                    category.insert(
                        "unit".into(),
                        Value::Object(
                            d.categories
                                .iter()
                                .zip(&table.measures)
                                .map(|(c, m)| {
                                    let (base, decimals) = labels::unit(m.quantity, lang);
                                    (c.code.clone(), json!({"base": base, "decimals": decimals}))
                                })
                                .collect(),
                        ),
                    );
                }
                if let Some(total) = d.total.and_then(|t| d.categories.get(t)) {
                    extension.insert("total".into(), json!(total.code));
                }
            }
        }
        let mut entry = serde_json::Map::new();
        entry.insert("label".into(), json!(d.label));
        entry.insert("category".into(), Value::Object(category));
        if !extension.is_empty() {
            entry.insert("extension".into(), Value::Object(extension));
        }
        dimension.insert(d.id.clone(), Value::Object(entry));
    }
    let mut notes = vec![labels::description(figure, lang).to_string()];
    notes.push(tid_note(figure, lang).to_string());
    if years.is_empty() {
        notes.push(
            lang.pick(
                "Registeret har ingen hendelser ennå; Tid har ingen koder.",
                "The register holds no events yet; Tid has no codes.",
            )
            .to_string(),
        );
    }
    let roles = json!({"geo": ["Region"], "time": ["Tid"], "metric": ["ContentsCode"]});
    let body = json!({
        "version": "2.0",
        "class": "dataset",
        "label": labels::title(figure, lang),
        "source": format!("{}; {}", crate::format::source(true, lang), lang.pick("navn: © Kartverket", "names: © Kartverket")),
        "note": notes,
        "id": table.dimensions.iter().map(|d| &d.id).collect::<Vec<_>>(),
        "size": size,
        "role": roles,
        "dimension": dimension,
        "value": {},
        "extension": {
            "figure": figure.id(),
            "referenceType": labels::reference_kind(figure),
            "definitionVersion": DEFINITION_VERSION,
            "firstPeriod": years.first().map(|y| y.to_string()),
            "lastPeriod": years.last().map(|y| y.to_string()),
            "cellLimit": CELLS_MAX,
            "language": lang.code(),
            "logPosition": position_json(&position),
        },
    });
    Ok(body.to_string())
}

fn tid_note(figure: Figure, lang: Lang) -> &'static str {
    if kpr_projection::figures::uses_period(figure) {
        lang.pick(
            "Tid er kalenderåret (1. januar-31. desember).",
            "Tid is the calendar year (1 January-31 December).",
        )
    } else {
        lang.pick(
            "Tid er status per 31. desember i året.",
            "Tid is the status on 31 December of the year.",
        )
    }
}

fn parse_figure(text: &str) -> Result<Figure, StatsError> {
    Figure::parse(text).ok_or_else(|| {
        StatsError::NotFound(format!(
            "no table {text}; GET /v1/tables lists them (T1-T4 and I1-I18)"
        ))
    })
}

/// Decodes `%XX` escapes and `+` in a URL query component.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed data request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataRequest {
    /// Which figure.
    pub figure: Figure,
    /// Selection expression per dimension id (`valueCodes[ID]`).
    pub selections: BTreeMap<String, String>,
    /// `codelist[Region]`.
    pub region_codelist: Option<String>,
    /// Output format.
    pub format: Format,
    /// Labels.
    pub lang: Lang,
    /// Exact numbers (operator surface only).
    pub exact: bool,
}

impl DataRequest {
    /// Parses the figure and the URL query string.
    pub fn parse(figure: &str, query: &str) -> Result<DataRequest, StatsError> {
        let figure = parse_figure(figure)?;
        let mut request = DataRequest {
            figure,
            selections: BTreeMap::new(),
            region_codelist: None,
            format: Format::JsonStat,
            lang: Lang::No,
            exact: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (key, value) = (percent_decode(key), percent_decode(value));
            if let Some(dim) = key
                .strip_prefix("valueCodes[")
                .or_else(|| key.strip_prefix("valuecodes["))
                .and_then(|k| k.strip_suffix(']'))
            {
                request.selections.insert(dim.to_string(), value);
                continue;
            }
            match key.as_str() {
                "codelist[Region]" | "codelist[region]" => {
                    if !CODELISTS.iter().any(|(id, _, _)| *id == value) {
                        return Err(StatsError::BadRequest(format!(
                            "codelist[Region]={value:?}: use vs_Kommuner, vs_Fylker or vs_Landet"
                        )));
                    }
                    request.region_codelist = Some(value);
                }
                "outputFormat" | "outputformat" | "format" => {
                    request.format = match value.as_str() {
                        "json-stat2" | "json-stat" | "jsonstat" | "json" => Format::JsonStat,
                        "csv" => Format::Csv,
                        other => {
                            return Err(StatsError::BadRequest(format!(
                                "outputFormat {other:?}: use json-stat2 or csv"
                            )));
                        }
                    }
                }
                "lang" => request.lang = Lang::parse(&value)?,
                "exact" => request.exact = matches!(value.as_str(), "true" | "1"),
                other => {
                    return Err(StatsError::BadRequest(format!(
                        "unknown parameter {other:?}: use valueCodes[DIM]=…, codelist[Region]=…, outputFormat=…, lang=…"
                    )));
                }
            }
        }
        Ok(request)
    }
}

/// Glob match with `*` (any run) and `?` (one character).
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// Splits a selection at the commas outside parentheses.
fn items(selection: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in selection.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(selection[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(selection[start..].trim());
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

fn call<'a>(item: &'a str, name: &str) -> Option<&'a str> {
    item.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('('))
        .and_then(|rest| rest.strip_suffix(')'))
        .map(str::trim)
}

fn bad(message: String) -> StatsError {
    StatsError::BadRequest(message)
}

fn count_of(text: &str, item: &str) -> Result<usize, StatsError> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad(format!("{item}: n must be a positive whole number")))
}

/// Resolves a selection against `codes` (in order); returns indices into `codes`,
/// each once, in `codes`' order.
fn select(dim: &str, selection: &str, codes: &[String]) -> Result<Vec<usize>, StatsError> {
    let mut chosen = vec![false; codes.len()];
    let position = |code: &str| codes.iter().position(|c| c == code);
    for item in items(selection) {
        if let Some(n) = call(item, "top") {
            let n = count_of(n, item)?;
            // For time the newest come last in the list.
            let len = codes.len();
            let range = if dim == "Tid" {
                len.saturating_sub(n)..len
            } else {
                0..n.min(len)
            };
            range.for_each(|i| chosen[i] = true);
        } else if let Some(n) = call(item, "bottom") {
            let n = count_of(n, item)?;
            let len = codes.len();
            let range = if dim == "Tid" {
                0..n.min(len)
            } else {
                len.saturating_sub(n)..len
            };
            range.for_each(|i| chosen[i] = true);
        } else if let Some(from) = call(item, "from") {
            let i = position(from).ok_or_else(|| unknown(dim, from, codes))?;
            (i..codes.len()).for_each(|i| chosen[i] = true);
        } else if let Some(to) = call(item, "to") {
            let i = position(to).ok_or_else(|| unknown(dim, to, codes))?;
            (0..=i).for_each(|i| chosen[i] = true);
        } else if let Some(args) = call(item, "range") {
            let (a, b) = args
                .split_once(',')
                .ok_or_else(|| bad(format!("{item}: range(first,last)")))?;
            let a = position(a.trim()).ok_or_else(|| unknown(dim, a.trim(), codes))?;
            let b = position(b.trim()).ok_or_else(|| unknown(dim, b.trim(), codes))?;
            (a.min(b)..=a.max(b)).for_each(|i| chosen[i] = true);
        } else if item.contains(['*', '?']) {
            let mut any = false;
            for (i, code) in codes.iter().enumerate() {
                if glob(item, code) {
                    chosen[i] = true;
                    any = true;
                }
            }
            if !any {
                return Err(bad(format!("valueCodes[{dim}]={item}: no code matches")));
            }
        } else {
            let i = position(item).ok_or_else(|| unknown(dim, item, codes))?;
            chosen[i] = true;
        }
    }
    Ok((0..codes.len()).filter(|&i| chosen[i]).collect())
}

fn unknown(dim: &str, code: &str, codes: &[String]) -> StatsError {
    let shown: Vec<&str> = codes.iter().take(12).map(String::as_str).collect();
    let more = codes.len().saturating_sub(shown.len());
    StatsError::BadRequest(format!(
        "{dim} has no code {code:?}; its codes are {}{} (GET …/metadata lists them)",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

/// The years a `Tid` selection names. Explicit years (codes, `from`, `to`, `range`)
/// are taken as given (1900-9999), answered with a note where they lie outside the
/// data; `*`, wildcards, `top` and `bottom` choose among the years with data.
fn select_years(selection: &str, data: &[i32]) -> Result<Vec<i32>, StatsError> {
    let year = |text: &str| {
        text.trim()
            .parse::<i32>()
            .ok()
            .filter(|y| (1900..=9999).contains(y))
            .ok_or_else(|| bad(format!("Tid {text:?}: a year such as 2024")))
    };
    let mut out = std::collections::BTreeSet::new();
    let codes: Vec<String> = data.iter().map(|y| y.to_string()).collect();
    for item in items(selection) {
        if let Some(from) = call(item, "from") {
            let from = year(from)?;
            let last = data.last().copied().unwrap_or(from).max(from);
            out.extend(from..=last);
        } else if let Some(to) = call(item, "to") {
            let to = year(to)?;
            let first = data.first().copied().unwrap_or(to).min(to);
            out.extend(first..=to);
        } else if let Some(args) = call(item, "range") {
            let (a, b) = args
                .split_once(',')
                .ok_or_else(|| bad(format!("{item}: range(first,last)")))?;
            let (a, b) = (year(a)?, year(b)?);
            out.extend(a.min(b)..=a.max(b));
        } else if item.contains(['*', '?'])
            || item.starts_with("top(")
            || item.starts_with("bottom(")
        {
            for i in select("Tid", item, &codes)? {
                out.insert(data[i]);
            }
        } else {
            out.insert(year(item)?);
        }
    }
    Ok(out.into_iter().collect())
}

/// The regions a request selects, in publication order.
fn select_regions(request: &DataRequest) -> Result<Vec<Region>, StatsError> {
    let mut regions = all_regions();
    if let Some(list) = &request.region_codelist {
        regions.retain(|r| {
            matches!(
                (list.as_str(), r),
                ("vs_Kommuner", Region::Municipality(_))
                    | ("vs_Fylker", Region::County(_))
                    | ("vs_Landet", Region::Nation)
            )
        });
    }
    let Some(selection) = request.selections.get("Region") else {
        return Ok(if request.region_codelist.is_some() {
            regions
        } else {
            vec![Region::Nation]
        });
    };
    let codes: Vec<String> = regions.iter().map(Region::code).collect();
    Ok(select("Region", selection, &codes)?
        .into_iter()
        .map(|i| regions[i].clone())
        .collect())
}

/// `GET /v1/tables/{id}/data`: one dataset over the selected regions and years.
pub fn data(stats: &Statistics, request: &DataRequest) -> Result<Rendered, StatsError> {
    let lang = request.lang;
    let shape = shape(request.figure, lang)?;
    for dim in request.selections.keys() {
        if shape.dimension(dim).is_none() {
            return Err(bad(format!(
                "table {} has no dimension {dim:?}; its dimensions are {}",
                request.figure.id(),
                shape
                    .dimensions
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let regions = select_regions(request)?;
    let data_years = data_years(stats)?;
    let years = match request.selections.get("Tid") {
        Some(selection) => select_years(selection, &data_years)?,
        None => data_years.last().copied().into_iter().collect(),
    };
    if regions.is_empty() || years.is_empty() {
        return Err(bad(
            "the selection holds no region or no year (the register may hold no events yet; give Tid explicitly)"
                .into(),
        ));
    }
    // The categories chosen of every other dimension (indices into the shape's).
    let mut chosen: Vec<Vec<usize>> = Vec::new();
    for d in &shape.dimensions {
        chosen.push(match (d.id.as_str(), request.selections.get(&d.id)) {
            ("Region" | "Tid", _) => vec![0],
            (_, None) => (0..d.categories.len()).collect(),
            (id, Some(selection)) => {
                let codes: Vec<String> = d.categories.iter().map(|c| c.code.clone()).collect();
                select(id, selection, &codes)?
            }
        });
    }
    let region_at = shape.dimension("Region").unwrap_or(0);
    let tid_at = shape.dimension("Tid");
    let cells = chosen
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == region_at {
                regions.len()
            } else if Some(i) == tid_at {
                years.len()
            } else {
                c.len()
            }
        })
        .fold(1usize, usize::saturating_mul);
    let tables = regions.len().saturating_mul(years.len());
    if cells > CELLS_MAX || tables > TABLES_MAX {
        return Err(bad(format!(
            "the selection has {cells} cells from {tables} region-year tables ({} regions × {} years); at most {CELLS_MAX} cells and {TABLES_MAX} tables per call: select fewer regions, years or categories",
            regions.len(),
            years.len()
        )));
    }
    let mut queries = Vec::with_capacity(tables);
    for region in &regions {
        for year in &years {
            queries.push(
                Query::for_year(request.figure, region.clone(), *year)
                    .ok_or_else(|| bad(format!("year {year} out of range")))?,
            );
        }
    }
    let (computed, position) = stats.tables_at_once(&queries, request.exact, lang)?;
    let table = combine(
        &shape, &chosen, &regions, &years, &computed, &position, request,
    )?;
    Ok(render_in(&table, request.format, lang))
}

/// Stitches the (region, year) tables into one: `Region` and `Tid` take the selected
/// regions and years, every other dimension the chosen categories.
fn combine(
    shape: &Table,
    chosen: &[Vec<usize>],
    regions: &[Region],
    years: &[i32],
    computed: &[Table],
    position: &[(u32, u64)],
    request: &DataRequest,
) -> Result<Table, StatsError> {
    let lang = request.lang;
    let region_at = shape.dimension("Region").unwrap_or(0);
    let tid_at = shape.dimension("Tid");
    let mut dimensions = Vec::new();
    for (i, d) in shape.dimensions.iter().enumerate() {
        let categories = if i == region_at {
            regions
                .iter()
                .map(|r| Category {
                    code: r.code(),
                    label: labels::region_name(r, lang),
                })
                .collect()
        } else if Some(i) == tid_at {
            years
                .iter()
                .map(|y| Category {
                    code: y.to_string(),
                    label: y.to_string(),
                })
                .collect()
        } else {
            chosen[i]
                .iter()
                .filter_map(|&c| d.categories.get(c).cloned())
                .collect()
        };
        dimensions.push(Dimension {
            id: d.id.clone(),
            label: d.label.clone(),
            categories,
            total: None,
            partitions: Vec::new(),
        });
    }
    let measures_chosen = chosen.last().cloned().unwrap_or_default();
    let measures: Vec<Measure> = measures_chosen
        .iter()
        .filter_map(|&m| shape.measures.get(m).copied())
        .map(|m| Measure {
            quantity: m.quantity,
            numerator: m
                .numerator
                .and_then(|n| measures_chosen.iter().position(|&c| c == n)),
            denominator: m
                .denominator
                .and_then(|n| measures_chosen.iter().position(|&c| c == n)),
        })
        .collect();
    let sizes: Vec<usize> = dimensions.iter().map(|d| d.categories.len()).collect();
    let cells: usize = sizes.iter().product();
    let mut values = Vec::with_capacity(cells);
    let mut status = Vec::with_capacity(cells);
    let mut coords = vec![0usize; sizes.len()];
    for _ in 0..cells {
        let year_index = tid_at.map_or(0, |t| coords[t]);
        let source = computed
            .get(coords[region_at] * years.len() + year_index)
            .ok_or_else(|| StatsError::Internal("a table of the selection is missing".into()))?;
        if source.dimensions.len() != shape.dimensions.len() {
            return Err(StatsError::Internal(format!(
                "table {} changed shape between regions",
                source.figure
            )));
        }
        let inner: Vec<usize> = coords
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if i == region_at || Some(i) == tid_at {
                    0
                } else {
                    chosen[i][c]
                }
            })
            .collect();
        let offset = source.offset(&inner);
        values.push(source.values.get(offset).copied().flatten());
        status.push(
            source
                .status
                .get(offset)
                .copied()
                .unwrap_or(Status::SuppressedPrimary),
        );
        // Next coordinate, the last dimension fastest.
        for i in (0..coords.len()).rev() {
            coords[i] += 1;
            if coords[i] < sizes[i] {
                break;
            }
            coords[i] = 0;
        }
    }
    let same = |f: &dyn Fn(&Table) -> Option<i32>| {
        let first = computed.first().and_then(f);
        computed
            .iter()
            .all(|t| f(t) == first)
            .then_some(first)
            .flatten()
    };
    let population_year = same(&|t| t.meta.population_year);
    let population_wanted = same(&|t| t.meta.population_wanted);
    Ok(Table {
        figure: request.figure.id(),
        label: labels::title(request.figure, lang).to_string(),
        dimensions,
        measures,
        values,
        status,
        meta: TableMeta {
            log_position: position.to_vec(),
            definition_version: computed
                .first()
                .map_or(DEFINITION_VERSION, |t| t.meta.definition_version),
            population_year,
            population_wanted,
            reference: match (years.first(), years.last()) {
                (Some(a), Some(b)) if a != b => format!("{a}-{b}"),
                (Some(a), _) => a.to_string(),
                _ => String::new(),
            },
            exact: request.exact,
            notes: combined_notes(request.figure, regions, years, computed, lang),
        },
    })
}

/// The notes of the parts, each once, saying which regions and years it concerns
/// when it does not concern them all.
fn combined_notes(
    figure: Figure,
    regions: &[Region],
    years: &[i32],
    computed: &[Table],
    lang: Lang,
) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut concerns: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for (t, table) in computed.iter().enumerate() {
        let (r, y) = (t / years.len().max(1), t % years.len().max(1));
        for note in &table.meta.notes {
            if !concerns.contains_key(note) {
                order.push(note.clone());
            }
            concerns.entry(note.clone()).or_default().push((r, y));
        }
    }
    let mut out = vec![tid_note(figure, lang).to_string()];
    for note in order {
        let parts = concerns.get(&note).map_or(&[][..], Vec::as_slice);
        if parts.len() == computed.len() {
            out.push(note);
            continue;
        }
        // Name what the note concerns as briefly as it can be said: some years of
        // every region, some regions in every year, or region-year pairs.
        let years_of = |r: usize| parts.iter().filter(|(pr, _)| *pr == r).count();
        let regions_of = |y: usize| parts.iter().filter(|(_, py)| *py == y).count();
        let mut names: Vec<String> = Vec::new();
        for (r, y) in parts {
            let name = if regions_of(*y) == regions.len() {
                years[*y].to_string()
            } else if years_of(*r) == years.len() || years.len() == 1 {
                regions[*r].code()
            } else {
                format!("{} {}", regions[*r].code(), years[*y])
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let shown = names.len().min(8);
        let more = names.len() - shown;
        let mut list = names[..shown].join(", ");
        if more > 0 {
            list.push_str(&match lang {
                Lang::No => format!(" og {more} til"),
                Lang::En => format!(" and {more} more"),
            });
        }
        out.push(format!("{list}: {note}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn selections_in_the_manner_of_pxwebapi() {
        let regions = codes(&["EAK", "EK46", "4601", "4602", "EK03", "0301"]);
        assert_eq!(select("Region", "46*", &regions).unwrap(), vec![2, 3]);
        assert_eq!(select("Region", "*", &regions).unwrap().len(), 6);
        assert_eq!(
            select("Region", "EK*,0301", &regions).unwrap(),
            vec![1, 4, 5]
        );
        assert_eq!(select("Region", "460?", &regions).unwrap(), vec![2, 3]);
        assert!(select("Region", "9999", &regions).is_err());
        assert!(select("Region", "99*", &regions).is_err());
        let years = [2020, 2021, 2022, 2023, 2024, 2025];
        assert_eq!(select_years("top(2)", &years).unwrap(), vec![2024, 2025]);
        assert_eq!(select_years("bottom(1)", &years).unwrap(), vec![2020]);
        assert_eq!(
            select_years("from(2024)", &years).unwrap(),
            vec![2024, 2025]
        );
        assert_eq!(
            select_years("range(2019,2021)", &years).unwrap(),
            vec![2019, 2020, 2021]
        );
        assert_eq!(select_years("2027,2020", &years).unwrap(), vec![2020, 2027]);
        assert_eq!(select_years("*", &years).unwrap().len(), 6);
        assert!(select_years("top(0)", &years).is_err());
        assert!(select_years("20x4", &years).is_err());
    }

    #[test]
    fn parses_pxwebapi_style_queries() {
        let r = DataRequest::parse(
            "i3",
            "valueCodes%5BRegion%5D=0301%2C4601&valueCodes[Tid]=from(2020)&outputFormat=csv&lang=en",
        )
        .unwrap();
        assert_eq!(r.figure, Figure::I3);
        assert_eq!(r.selections["Region"], "0301,4601");
        assert_eq!(r.selections["Tid"], "from(2020)");
        assert_eq!((r.format, r.lang), (Format::Csv, Lang::En));
        assert!(DataRequest::parse("I3", "colour=red").is_err());
        assert!(DataRequest::parse("I3", "codelist[Region]=agg_x").is_err());
        assert!(matches!(
            DataRequest::parse("X1", ""),
            Err(StatsError::NotFound(_))
        ));
        assert_eq!(percent_decode("a%2Cb+c%zz%4"), "a,b c%zz%4");
    }

    #[test]
    fn every_region_once_in_hierarchy_order() {
        let regions = all_regions();
        assert_eq!(regions.len(), 1 + 15 + 357);
        assert_eq!(regions[0], Region::Nation);
        assert_eq!(regions[1], Region::County("03".into()));
        assert_eq!(regions[2], Region::Municipality("0301".into()));
    }
}
