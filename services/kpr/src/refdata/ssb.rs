//! Statistics Norway's own shapes of table 07459 (population by region, sex and single
//! year of age on 1 January), turned into the shipped CSV shape
//! (`aar,kommunenummer,kjonn,alder,personer`) before the import's checks run:
//!
//! - **JSON-stat 2.0** as SSB's API returns it (`"class":"dataset"`, dimensions
//!   `Region`, `Kjonn`, `Alder`, `Tid`, optionally `ContentsCode`, in any order; `index`
//!   as an array or an object; `value` as an array or a sparse object);
//! - **CSV** as SSB's pages and API download it: comma, semicolon or tab separated,
//!   title lines before the header allowed, one row per cell (a year column and one
//!   value column) or years as columns ("Personer 2025"), cells as codes ("0301"),
//!   code and text ("0301 Oslo", "1 Menn", "080 80 år", "105+ 105 år eller eldre") or, for
//!   sex and age, text alone ("Kvinner", "80 år").
//!
//! Regions that are not municipalities (the nation `0`, counties) are left out, as are
//! municipality codes outside the 2024 list that hold nobody (SSB lists past codes with
//! empty cells); a past code that holds people is refused, since its people would be
//! lost. A municipality of the 2024 list with a missing cell (`..`) is refused, naming
//! the cell. Whether every municipality, sex and age is there is checked afterwards,
//! on the converted text, by the same checks as a file of the shipped shape.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use kpr_domain::municipality::Registry;
use serde_json::Value;

/// The shipped header.
pub const HEADER: &str = "aar,kommunenummer,kjonn,alder,personer";

/// Which shape a file has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The shipped CSV.
    Shipped,
    /// JSON-stat 2.0.
    JsonStat,
    /// An SSB CSV download.
    SsbCsv,
}

/// Recognises the shape of `text`.
pub fn shape(text: &str) -> Shape {
    let text = text.trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('{') {
        Shape::JsonStat
    } else if text.lines().next().map(str::trim) == Some(HEADER) {
        Shape::Shipped
    } else {
        Shape::SsbCsv
    }
}

/// One cell as read: year, region code, sex (1, 2), age (0-105), persons (`None`
/// where SSB marks the cell empty).
type Cell = (i32, String, u8, u8, Option<u64>);

/// `text` in the shipped shape, whatever its shape.
pub fn to_shipped(text: &str) -> anyhow::Result<String> {
    let text = text.trim_start_matches('\u{feff}');
    let cells = match shape(text) {
        Shape::Shipped => return Ok(text.to_string()),
        Shape::JsonStat => from_json_stat(text).context("reading it as SSB's JSON-stat 2.0")?,
        Shape::SsbCsv => from_ssb_csv(text).context("reading it as an SSB CSV download")?,
    };
    keep_municipalities(cells)
}

/// Drops regions that are not 2024 municipalities (refusing one that holds people),
/// and writes the rest in the shipped shape, sorted.
fn keep_municipalities(cells: Vec<Cell>) -> anyhow::Result<String> {
    let registry = Registry::get();
    let mut kept: BTreeMap<(i32, String, u8, u8), u64> = BTreeMap::new();
    let mut past: BTreeMap<String, u64> = BTreeMap::new();
    for (year, region, sex, age, persons) in cells {
        let code = region.strip_prefix("K-").unwrap_or(&region).to_string();
        if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
            continue; // the nation, a county
        }
        if registry.municipality(&code).is_none() {
            *past.entry(code).or_default() += persons.unwrap_or(0);
            continue;
        }
        let Some(persons) = persons else {
            bail!(
                "{year} {code} sex {sex} age {age}: the cell has no value (SSB marks it '..' or '.')"
            );
        };
        if kept
            .insert((year, code.clone(), sex, age), persons)
            .is_some()
        {
            bail!("{year} {code} sex {sex} age {age}: the file has the cell twice");
        }
    }
    if let Some((code, persons)) = past.iter().find(|(_, n)| **n > 0) {
        bail!(
            "region {code} is not a 2024 municipality but holds {persons} persons; download the table with 2024 municipalities"
        );
    }
    if kept.is_empty() {
        bail!("the file holds no 2024 municipality");
    }
    let mut out = String::with_capacity(kept.len() * 24);
    out.push_str(HEADER);
    out.push('\n');
    for ((year, code, sex, age), persons) in kept {
        out.push_str(&format!("{year},{code},{sex},{age},{persons}\n"));
    }
    Ok(out)
}

/// Sex from a code or a label: 1 male, 2 female; `None` for a total.
fn sex_of(text: &str) -> anyhow::Result<Option<u8>> {
    let t = text.trim().to_lowercase();
    let code = t.split_whitespace().next().unwrap_or_default();
    Ok(match code {
        "1" | "menn" | "mann" | "males" | "male" | "m" => Some(1),
        "2" | "kvinner" | "kvinne" | "females" | "female" | "k" | "f" => Some(2),
        "0" | "begge" | "both" | "i" | "alle" | "total" => None,
        _ => bail!("Kjonn {text:?}: neither 1 (menn) nor 2 (kvinner)"),
    })
}

/// Age from a code or a label: `080`, `80`, `105+`, `80 år`, `105 år eller eldre`.
/// `None` for a total.
fn age_of(text: &str) -> anyhow::Result<Option<u8>> {
    let t = text.trim();
    let code = t.split_whitespace().next().unwrap_or_default();
    let lower = code.to_lowercase();
    if matches!(
        lower.as_str(),
        "999" | "f999" | "alle" | "all" | "total" | "i"
    ) {
        return Ok(None);
    }
    let digits = code.trim_end_matches('+');
    let age: u32 = digits
        .parse()
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
        .with_context(|| {
            format!("Alder {text:?}: single years of age 0-105 are needed (000-105+), not groups")
        })?;
    if age > 105 {
        bail!("Alder {text:?}: ages run 0-105 (105 meaning 105 or older)");
    }
    Ok(Some(age as u8))
}

fn year_of(text: &str) -> anyhow::Result<i32> {
    let t = text.trim();
    t.parse::<i32>()
        .ok()
        .filter(|y| (1900..=9999).contains(y))
        .with_context(|| format!("Tid {t:?} is not a year"))
}

/// A count, or `None` for SSB's missing-value marks.
fn persons_of(text: &str) -> anyhow::Result<Option<u64>> {
    let t: String = text
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
        .collect();
    if t.is_empty() || matches!(t.as_str(), ".." | "." | ":" | "-") {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .with_context(|| format!("{text:?} is not a count of persons"))
}

/// The region code of a cell: its first word ("0301 Oslo" → "0301").
fn region_of(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The category codes of a JSON-stat dimension, in index order.
fn json_codes(dimension: &Value, id: &str) -> anyhow::Result<Vec<String>> {
    let index = &dimension["category"]["index"];
    Ok(match index {
        Value::Array(items) => items
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("{id}: category index holds a non-string"))?,
        Value::Object(map) => {
            let mut pairs: Vec<(u64, String)> = map
                .iter()
                .map(|(k, v)| v.as_u64().map(|i| (i, k.clone())))
                .collect::<Option<Vec<_>>>()
                .with_context(|| format!("{id}: category index holds a non-number"))?;
            pairs.sort();
            pairs.into_iter().map(|(_, k)| k).collect()
        }
        // A dimension with one category may give only its label.
        _ => match dimension["category"]["label"].as_object() {
            Some(labels) if labels.len() == 1 => labels.keys().cloned().collect(),
            _ => bail!("{id}: no category index"),
        },
    })
}

fn from_json_stat(text: &str) -> anyhow::Result<Vec<Cell>> {
    let root: Value = serde_json::from_str(text).context("not JSON")?;
    // The JSON-stat 1 wrapper of SSB's older API: {"dataset": {...}}.
    let dataset = if root.get("dimension").is_none() && root.get("dataset").is_some() {
        &root["dataset"]
    } else {
        &root
    };
    if dataset.get("version").and_then(Value::as_str) != Some("2.0") {
        bail!("not JSON-stat 2.0 (ask SSB's API for json-stat2)");
    }
    let ids: Vec<String> = dataset["id"]
        .as_array()
        .context("no \"id\"")?
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    let sizes: Vec<usize> = dataset["size"]
        .as_array()
        .context("no \"size\"")?
        .iter()
        .map(|v| v.as_u64().unwrap_or(0) as usize)
        .collect();
    if ids.len() != sizes.len() {
        bail!("\"id\" and \"size\" differ in length");
    }
    let mut codes = Vec::new();
    for (id, size) in ids.iter().zip(&sizes) {
        let list = json_codes(&dataset["dimension"][id], id)?;
        if list.len() != *size {
            bail!("{id}: size says {size}, the index has {}", list.len());
        }
        codes.push(list);
    }
    let find = |names: &[&str]| {
        ids.iter()
            .position(|id| names.iter().any(|n| id.eq_ignore_ascii_case(n)))
    };
    let region = find(&["Region"]).context("no Region dimension")?;
    let sex = find(&["Kjonn", "Kjønn", "Sex"]).context("no Kjonn dimension")?;
    let age = find(&["Alder", "Age"]).context("no Alder dimension")?;
    let year = find(&["Tid", "Year", "Aar", "År"]).context("no Tid dimension")?;
    let contents = find(&["ContentsCode", "Contents"]);
    let persons_at = match contents {
        Some(c) => Some(
            codes[c]
                .iter()
                .position(|code| code.starts_with("Personer"))
                .or_else(|| (codes[c].len() == 1).then_some(0))
                .context("ContentsCode has no Personer measure")?,
        ),
        None => None,
    };
    for (i, id) in ids.iter().enumerate() {
        if ![Some(region), Some(sex), Some(age), Some(year), contents].contains(&Some(i))
            && sizes[i] != 1
        {
            bail!(
                "dimension {id} has {} categories; 07459 has one value per region, sex, age and year",
                sizes[i]
            );
        }
    }
    let cells: usize = sizes.iter().product();
    let value_at = |offset: usize| -> anyhow::Result<Option<u64>> {
        let v = match &dataset["value"] {
            Value::Array(values) => values.get(offset).cloned().unwrap_or(Value::Null),
            Value::Object(map) => map.get(&offset.to_string()).cloned().unwrap_or(Value::Null),
            _ => bail!("no \"value\""),
        };
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .map(Some)
                .with_context(|| format!("value {n} is not a count")),
            other => bail!("value {other} is not a number"),
        }
    };
    if let Value::Array(values) = &dataset["value"]
        && values.len() != cells
    {
        bail!("{} values for {cells} cells", values.len());
    }
    let mut out = Vec::new();
    let mut coords = vec![0usize; sizes.len()];
    for offset in 0..cells {
        let wanted = persons_at.is_none_or(|p| contents.is_some_and(|c| coords[c] == p));
        if wanted
            && let (Some(s), Some(a)) = (
                sex_of(&codes[sex][coords[sex]])?,
                age_of(&codes[age][coords[age]])?,
            )
        {
            out.push((
                year_of(&codes[year][coords[year]])?,
                region_of(&codes[region][coords[region]]),
                s,
                a,
                value_at(offset)?,
            ));
        }
        for i in (0..coords.len()).rev() {
            coords[i] += 1;
            if coords[i] < sizes[i] {
                break;
            }
            coords[i] = 0;
        }
    }
    Ok(out)
}

fn from_ssb_csv(text: &str) -> anyhow::Result<Vec<Cell>> {
    // The header: the first line with region, sex and age columns (a title line
    // before it may mention them in prose).
    let is_header = |line: &str| {
        let fields: Vec<String> = line
            .split([';', '\t', ','])
            .map(|f| f.trim().trim_matches('"').trim().to_lowercase())
            .collect();
        let has = |names: &[&str]| fields.iter().any(|f| names.contains(&f.as_str()));
        has(&["region", "kommune", "kommunenummer"])
            && has(&["kjønn", "kjonn", "sex"])
            && has(&["alder", "age"])
    };
    let (skip, header_line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| is_header(l))
        .context("no header line naming region, kjønn and alder")?;
    let delimiter = [b';', b'\t', b',']
        .into_iter()
        .max_by_key(|d| header_line.bytes().filter(|b| b == d).count())
        .unwrap_or(b',');
    let body: String = text.lines().skip(skip).collect::<Vec<_>>().join("\n");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(body.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .context("unreadable header")?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let column = |names: &[&str]| header.iter().position(|h| names.iter().any(|n| h == n));
    let region = column(&["region", "kommune", "kommunenummer"]).context("no region column")?;
    let sex = column(&["kjønn", "kjonn", "sex"]).context("no kjønn column")?;
    let age = column(&["alder", "age"]).context("no alder column")?;
    let year = column(&["år", "aar", "tid", "year"]);
    let contents = column(&["statistikkvariabel", "contentscode", "contents"]);
    // The value columns: all others; with a year column exactly one, else each names
    // its year ("2025", "Personer 2025").
    let others: Vec<usize> = (0..header.len())
        .filter(|i| ![Some(region), Some(sex), Some(age), year, contents].contains(&Some(*i)))
        .collect();
    let value_years: Vec<(usize, Option<i32>)> = match year {
        Some(_) => {
            let [only] = others[..] else {
                bail!(
                    "with a year column there must be one value column, found {}",
                    others.len()
                );
            };
            vec![(only, None)]
        }
        None => others
            .iter()
            .map(|&i| {
                let y = header[i]
                    .split(|c: char| !c.is_ascii_digit())
                    .find(|w| w.len() == 4)
                    .and_then(|w| w.parse().ok())
                    .with_context(|| format!("column {:?} names no year", header[i]))?;
                Ok((i, Some(y)))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let mut out = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("line {}", skip + n + 2))?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if let Some(c) = contents {
            let measure = record.get(c).unwrap_or_default().trim().to_lowercase();
            if !measure.is_empty()
                && !measure.starts_with("personer")
                && !measure.starts_with("persons")
            {
                continue;
            }
        }
        let field = |i: usize| record.get(i).unwrap_or_default();
        let line = skip + n + 2;
        let (Some(s), Some(a)) = (
            sex_of(field(sex)).with_context(|| format!("line {line}"))?,
            age_of(field(age)).with_context(|| format!("line {line}"))?,
        ) else {
            continue;
        };
        let region_code = region_of(field(region));
        if region_code.is_empty()
            || !region_code
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == 'K')
        {
            bail!(
                "line {line}: region {:?} carries no code; download with codes (or codes and text)",
                field(region)
            );
        }
        for (column, fixed_year) in &value_years {
            let y = match fixed_year {
                Some(y) => *y,
                None => {
                    year_of(field(year.unwrap_or(0))).with_context(|| format!("line {line}"))?
                }
            };
            let persons = persons_of(field(*column)).with_context(|| format!("line {line}"))?;
            out.push((y, region_code.clone(), s, a, persons));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_stat_in_the_shape_of_07459() {
        let text = include_str!("../../../../refdata/eksempel_07459_jsonstat2_konstruert.json");
        let csv = to_shipped(text).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], HEADER);
        // Region × Kjonn × Alder × Tid = 2 × 2 × 3 × 2 cells, sorted by year first.
        assert_eq!(lines.len(), 1 + 24);
        assert!(lines.contains(&"2025,0301,1,80,1653"), "{csv}");
        assert!(lines.contains(&"2025,0301,1,105,13"), "{csv}");
        assert!(lines.contains(&"2026,1151,2,105,0"), "{csv}");
    }

    #[test]
    fn csv_downloads_long_and_wide_with_codes_and_text() {
        let long = "\"07459: Befolkning, etter region, kjønn, alder, statistikkvariabel og år\"\n\n\
            \"region\";\"kjønn\";\"alder\";\"statistikkvariabel\";\"år\";\"Befolkning\"\n\
            \"0 Hele landet\";\"1 Menn\";\"080 80 år\";\"Personer\";\"2025\";\"25000\"\n\
            \"0301 Oslo\";\"1 Menn\";\"080 80 år\";\"Personer\";\"2025\";\"1653\"\n\
            \"0301 Oslo\";\"2 Kvinner\";\"105+ 105 år eller eldre\";\"Personer\";\"2025\";\"4\"\n\
            \"0101 Halden (-2019)\";\"2 Kvinner\";\"105+ 105 år eller eldre\";\"Personer\";\"2025\";\"..\"\n";
        assert_eq!(
            to_shipped(long).unwrap(),
            format!("{HEADER}\n2025,0301,1,80,1653\n2025,0301,2,105,4\n")
        );
        let wide = "region,kjønn,alder,Personer 2024,Personer 2025\n\
            0301,Kvinner,80 år,1700,1710\n";
        assert_eq!(
            to_shipped(wide).unwrap(),
            format!("{HEADER}\n2024,0301,2,80,1700\n2025,0301,2,80,1710\n")
        );
    }

    #[test]
    fn refusals_name_the_cell() {
        let missing = "region,kjønn,alder,år,personer\n0301 Oslo,1,080,2025,..\n";
        let e = format!("{:#}", to_shipped(missing).unwrap_err());
        assert!(
            e.contains("2025 0301 sex 1 age 80: the cell has no value"),
            "{e}"
        );
        let past = "region,kjønn,alder,år,personer\n0101 Halden,1,080,2025,12\n";
        let e = format!("{:#}", to_shipped(past).unwrap_err());
        assert!(
            e.contains("region 0101 is not a 2024 municipality but holds 12"),
            "{e}"
        );
        let groups = "region,kjønn,alder,år,personer\n0301,1,000-004,2025,12\n";
        let e = format!("{:#}", to_shipped(groups).unwrap_err());
        assert!(e.contains("single years of age"), "{e}");
        let names = "region,kjønn,alder,år,personer\nOslo,1,080,2025,12\n";
        let e = format!("{:#}", to_shipped(names).unwrap_err());
        assert!(e.contains("carries no code"), "{e}");
        assert!(to_shipped("{\"version\":\"1.0\"}").is_err());
    }
}
