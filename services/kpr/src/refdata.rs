//! `kpr refdata import`: population denominators from a newer CSV of the shipped shape
//! (SSB table 07459: `aar,kommunenummer,kjonn,alder,personer`). The file is checked,
//! then stored in the data directory, where `kpr serve` reads it at start instead of
//! the population shipped in the binary.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kpr_projection::population::Population;

/// Where an imported population lives in a data directory.
pub fn population_path(data: &Path) -> PathBuf {
    data.join("refdata").join("population.csv")
}

/// Checks `file` and stores it as the data directory's population; returns its years.
pub fn import(data: &Path, file: &Path) -> anyhow::Result<Vec<i32>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let population = Population::from_csv(&text).with_context(|| {
        format!(
            "{} is not a population CSV of the 07459 shape",
            file.display()
        )
    })?;
    let target = population_path(data);
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
