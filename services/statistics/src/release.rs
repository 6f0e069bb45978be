//! Releases (SPEC 7): a named, frozen set of published tables. Publishing computes
//! every figure for the nation, every county and every municipality at one log
//! position, protects and renders them, and stores the bytes in one atomic write;
//! fetching a release later returns those bytes, identical after more events and after
//! any rebuild.

use std::path::Path;

use kpr_domain::municipality::Registry;
use kpr_projection::figures::{Figure, Query, compute_from};
use kpr_projection::population::Region;

use crate::api::{Format, Rendered, Statistics, render, span_of};
use crate::disclosure;
use crate::error::StatsError;
use crate::labels::Lang;
use crate::linked;
use crate::present;
use kpr_projection::table::Table;

/// What a release is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Name.
    pub name: String,
    /// Year (D = 31 December, P = the year).
    pub year: i32,
    /// Log position frozen, `partition:records` pairs.
    pub log_position: String,
    /// Tables stored.
    pub tables: u64,
}

/// The release store (its own sled database in the data directory).
#[derive(Debug)]
pub struct ReleaseStore {
    db: sled::Db,
    tables: sled::Tree,
    manifests: sled::Tree,
    /// One publish at a time: the name check and the writes happen under it, so a
    /// second publish of a name can never overwrite the first.
    publishing: std::sync::Mutex<()>,
}

fn storage(e: impl std::fmt::Display) -> StatsError {
    StatsError::Internal(format!("release store: {e}"))
}

fn key(name: &str, figure: &str, region: &str, format: Format) -> Vec<u8> {
    let format = match format {
        Format::JsonStat => "json-stat",
        Format::Csv => "csv",
    };
    format!("{name}\u{0}{figure}\u{0}{region}\u{0}{format}").into_bytes()
}

/// Stored form of a rendered table: five header lines, then the body.
fn encode(r: &Rendered) -> Vec<u8> {
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        r.content_type,
        r.log_position,
        r.definition_version,
        r.population_year.map(|y| y.to_string()).unwrap_or_default(),
        r.exact,
        r.body
    )
    .into_bytes()
}

fn decode(bytes: &[u8]) -> Result<Rendered, StatsError> {
    let text = std::str::from_utf8(bytes).map_err(storage)?;
    let mut parts = text.splitn(6, '\n');
    let mut next = || {
        parts
            .next()
            .ok_or_else(|| storage("truncated release entry"))
    };
    let content_type = match next()? {
        t if t.starts_with("application/json") => Format::JsonStat.content_type(),
        _ => Format::Csv.content_type(),
    };
    let log_position = next()?.to_string();
    let definition_version = next()?.parse().map_err(storage)?;
    let population_year = next()?.parse().ok();
    let exact = next()? == "true";
    let body = next()?.to_string();
    Ok(Rendered {
        content_type,
        body,
        log_position,
        definition_version,
        population_year,
        exact,
    })
}

/// Whether a release name is acceptable: 1-64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_name(name: &str) -> bool {
    // It starts with a letter or digit, so `.`, `..` and hidden-file names are out: they
    // are path segments a URL cannot carry back to the release.
    name.len() <= 64
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl ReleaseStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<ReleaseStore, StatsError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .open()
            .map_err(storage)?;
        ReleaseStore::open_in(&db)
    }

    /// Opens the store in an already open sled database.
    pub fn open_in(db: &sled::Db) -> Result<ReleaseStore, StatsError> {
        let db = db.clone();
        let tables = db.open_tree("release_tables").map_err(storage)?;
        let manifests = db.open_tree("releases").map_err(storage)?;
        Ok(ReleaseStore {
            db,
            tables,
            manifests,
            publishing: std::sync::Mutex::new(()),
        })
    }

    /// Computes and stores release `name` of `year` from the current read model; with
    /// `audit`, also audits the release as linked tables ([`linked::summarise`]: which
    /// suppressed person counts all its published cells together give away).
    pub fn publish(
        &self,
        stats: &Statistics,
        name: &str,
        year: i32,
        audit: bool,
    ) -> Result<(Manifest, Option<linked::Summary>), StatsError> {
        if !(1900..=9999).contains(&year) {
            return Err(StatsError::BadRequest("year must be 1900-9999".into()));
        }
        let _one_at_a_time = self
            .publishing
            .lock()
            .map_err(|_| StatsError::Internal("publish lock poisoned".into()))?;
        if !valid_name(name) {
            return Err(StatsError::BadRequest(
                "a release name is 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
                    .into(),
            ));
        }
        if self.manifests.contains_key(name).map_err(storage)? {
            return Err(StatsError::Conflict(format!(
                "release {name} exists; releases are never overwritten"
            )));
        }
        let model = stats
            .model()
            .read()
            .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?;
        let position = model.reflected();
        let mut regions = vec![Region::Nation];
        regions.extend(
            Registry::get()
                .counties()
                .map(|(c, _)| Region::County(c.to_string())),
        );
        regions.extend(
            Registry::get()
                .municipalities()
                .map(|m| Region::Municipality(m.code.to_string())),
        );
        // Every table of the release first (so that the release can be audited as a
        // whole), each protected by the per-table rules of SPEC 6.
        let mut all: Vec<Table> = Vec::new();
        let mut rest: Vec<(Query, Region)> = Vec::new();
        for region in regions {
            let snapshot = stats.snapshot(&model, &position, &region)?;
            for figure in Figure::ALL {
                let query = Query::for_year(figure, region.clone(), year)
                    .ok_or_else(|| StatsError::BadRequest("year out of range".into()))?;
                let mut table = compute_from(&snapshot, &position, stats.population(), &query);
                disclosure::protect(&mut table);
                all.push(table);
                rest.push((query, region.clone()));
            }
        }
        let summary = audit.then(|| {
            let started = std::time::Instant::now();
            let (summary, _) = linked::summarise(&all);
            tracing::info!(
                release = name,
                seconds = started.elapsed().as_secs_f64(),
                findings = summary.lines().join("; "),
                "release audited as linked tables"
            );
            summary
        });
        let mut batch = sled::Batch::default();
        let mut tables = 0u64;
        for (mut table, (query, region)) in all.into_iter().zip(rest) {
            // Released in Norwegian, with notes and rounded values, and stored as
            // bytes: what a release says never changes afterwards.
            present::present(&mut table, &query, Lang::No, span_of(&model, &region));
            for format in [Format::JsonStat, Format::Csv] {
                batch.insert(
                    key(name, &query.figure.id(), &region.code(), format),
                    encode(&render(&table, format)),
                );
                tables += 1;
            }
        }
        let manifest = Manifest {
            name: name.to_string(),
            year,
            log_position: kpr_eventlog::position_text(&position),
            tables,
        };
        drop(model);
        // Tables first, manifest last: a release is visible only once complete.
        self.tables.apply_batch(batch).map_err(storage)?;
        self.manifests
            .insert(
                name,
                format!(
                    "{}\n{}\n{}",
                    manifest.year, manifest.log_position, manifest.tables
                )
                .into_bytes(),
            )
            .map_err(storage)?;
        self.db.flush().map_err(storage)?;
        Ok((manifest, summary))
    }

    /// A table of a release.
    pub fn table(
        &self,
        name: &str,
        figure: &str,
        region: &str,
        format: Format,
    ) -> Result<Rendered, StatsError> {
        if !self.manifests.contains_key(name).map_err(storage)? {
            return Err(StatsError::NotFound(format!("no release {name}")));
        }
        let figure = Figure::parse(figure)
            .ok_or_else(|| StatsError::NotFound(format!("no figure {figure}")))?;
        let region = crate::api::parse_region(region)?.code();
        match self
            .tables
            .get(key(name, &figure.id(), &region, format))
            .map_err(storage)?
        {
            Some(bytes) => decode(&bytes),
            None => Err(StatsError::NotFound(format!(
                "release {name} has no {} for {region}",
                figure.id()
            ))),
        }
    }

    /// Every release.
    pub fn list(&self) -> Result<Vec<Manifest>, StatsError> {
        let mut out = Vec::new();
        for item in self.manifests.iter() {
            let (name, value) = item.map_err(storage)?;
            let text = String::from_utf8_lossy(&value).to_string();
            let mut lines = text.lines();
            out.push(Manifest {
                name: String::from_utf8_lossy(&name).to_string(),
                year: lines.next().and_then(|l| l.parse().ok()).unwrap_or(0),
                log_position: lines.next().unwrap_or_default().to_string(),
                tables: lines.next().and_then(|l| l.parse().ok()).unwrap_or(0),
            });
        }
        Ok(out)
    }
}
