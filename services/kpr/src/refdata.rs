//! `kpr refdata import`: population denominators from SSB table 07459, as SSB's API
//! returns it (JSON-stat 2.0), as SSB's CSV download, or in the shipped shape
//! (`aar,kommunenummer,kjonn,alder,personer`); see [`ssb`]. The file is converted to
//! the shipped shape, checked (a year whole or not at all), then stored in the data
//! directory, where `kpr serve` reads it at start beside the population shipped in the
//! binary.

pub mod ssb;

use std::path::{Path, PathBuf};

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::{Context, bail};
use kpr_domain::municipality::Registry;
use kpr_projection::population::Population;

/// Rows per municipality and year: two sexes × ages 0 to 105.
const ROWS_PER_MUNICIPALITY: usize = 2 * 106;
/// How far an imported year's national total may lie from the nearest shipped year's.
/// Norway's population changes by about 1 % a year; a file far off is a partial or a
/// wrong file, and would turn every rate of the year into nonsense.
const NATIONAL_CHANGE_MAX: f64 = 0.10;

/// Where an imported population lives in a data directory.
pub fn population_path(data: &Path) -> PathBuf {
    data.join("refdata").join("population.csv")
}

/// Checks `file` and stores it as the data directory's population; returns its years.
pub fn import(data: &Path, file: &Path) -> anyhow::Result<Vec<i32>> {
    let raw =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let text = ssb::to_shipped(&raw)
        .with_context(|| format!("{} is not a population table 07459", file.display()))?;
    let population = Population::from_csv(&text).with_context(|| {
        format!(
            "{} is not a population CSV of the 07459 shape",
            file.display()
        )
    })?;
    check_complete(&text, &population)
        .with_context(|| format!("{} was not imported", file.display()))?;
    let target = population_path(data);
    // Years imported before and not in this file are kept: importing 2028 after 2027
    // adds a year, it does not take one away.
    let years: BTreeSet<i32> = population.years().collect();
    let text = match std::fs::read_to_string(&target) {
        Ok(before) => {
            let mut merged = text.trim_end().to_string();
            merged.push('\n');
            for line in before.lines().skip(1) {
                let year = line.split(',').next().and_then(|y| y.parse::<i32>().ok());
                if year.is_some_and(|y| !years.contains(&y)) {
                    merged.push_str(line);
                    merged.push('\n');
                }
            }
            merged
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => text,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", target.display())),
    };
    let dir = target.parent().context("population path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Write then rename, so a reader never sees half a file.
    let partial = dir.join("population.csv.partial");
    std::fs::write(&partial, &text)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("cannot install {}", target.display()))?;
    Ok(population.years().collect())
}

/// A year is imported whole: every 2024 municipality, every sex and age once, and a
/// national total near the shipped figures. (A one-row file for 2027 once made the
/// national I3 of 2026 326 % and Bergen's denominator 0.)
fn check_complete(text: &str, population: &Population) -> anyhow::Result<()> {
    let expected: BTreeSet<&str> = Registry::get()
        .municipalities()
        .map(|m| m.code.as_str())
        .collect();
    let mut seen: HashSet<(&str, &str, &str, &str)> = HashSet::new();
    let mut rows: HashMap<(&str, &str), usize> = HashMap::new();
    for (index, line) in text.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.trim().split(',').collect();
        let [year, code, sex, age, _] = cols[..] else {
            continue; // blank lines; from_csv has checked the shape
        };
        let age = age.trim_end_matches('+');
        if !seen.insert((year, code, sex, age)) {
            bail!(
                "line {}: a second row for {year}, {code}, sex {sex}, age {age}",
                index + 1
            );
        }
        *rows.entry((year, code)).or_default() += 1;
    }
    for year in population.years() {
        let present: BTreeSet<&str> = population.municipalities(year).collect();
        if let Some(unknown) = present.difference(&expected).next() {
            bail!("{year}: {unknown} is not a 2024 municipality code");
        }
        let missing: Vec<&&str> = expected.difference(&present).collect();
        if let Some(first) = missing.first() {
            bail!(
                "{year}: {} of the {} municipalities are missing (first {first}); a year is imported whole",
                missing.len(),
                expected.len()
            );
        }
        let year_text = year.to_string();
        for code in &present {
            let n = rows.get(&(year_text.as_str(), *code)).copied().unwrap_or(0);
            if n != ROWS_PER_MUNICIPALITY {
                bail!(
                    "{year} {code}: {n} rows, but a municipality has {ROWS_PER_MUNICIPALITY} (sexes 1 and 2 × ages 0-105)"
                );
            }
        }
        let shipped = Population::embedded();
        if let Some(near) = shipped.nearest_year(year) {
            let total = |p: &Population, y: i32| {
                p.municipalities(y)
                    .filter_map(|code| p.by_sex_and_age(y, code))
                    .map(|c| c.iter().flatten().map(|n| u64::from(*n)).sum::<u64>())
                    .sum::<u64>() as f64
            };
            let (new, old) = (total(population, year), total(shipped, near));
            if old > 0.0 && ((new - old) / old).abs() > NATIONAL_CHANGE_MAX {
                bail!(
                    "{year}: the national total {new:.0} is {:+.1} % from {near}'s {old:.0}; more than {:.0} % is not a population",
                    (new - old) / old * 100.0,
                    NATIONAL_CHANGE_MAX * 100.0
                );
            }
        }
    }
    Ok(())
}

/// The population of a data directory: the shipped years with the imported ones added
/// (an imported year replaces the shipped one), if anything was imported.
pub fn load(data: &Path) -> anyhow::Result<Option<Population>> {
    let path = population_path(data);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let imported =
        Population::from_csv(&text).with_context(|| format!("{} is damaged", path.display()))?;
    Ok(Some(Population::embedded().merged_with(imported)))
}
