//! Releases (SPEC 7): a named, frozen set of published tables. Publishing computes
//! every figure for the nation, every county and every municipality at one log
//! position, protects and renders them, and stores the bytes in one atomic write;
//! fetching a release later returns those bytes, identical after more events and after
//! any rebuild.

use std::path::Path;

use kpr_domain::municipality::Registry;
use kpr_projection::figures::{Figure, Query, compute_from};
use kpr_projection::model::ReadModel;
use kpr_projection::population::Region;
use kpr_projection::snapshot::{Snapshot, people};

use crate::api::{Format, Rendered, Statistics, render, span_of};
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

/// Protected tables, the query and region of each, and what the protection did.
pub(crate) type Protected = (Vec<Table>, Vec<(Query, Region)>, linked::Protection);

/// The tables of a release of `year` from one model generation at `position`: every
/// figure for the nation, each county and each municipality, in that order, protected
/// together as linked tables; with the query and region of each. `live`: the model is
/// the service's own (its snapshots are cached), not a fold of a prefix.
pub(crate) fn protected_tables(
    model: &ReadModel,
    position: &[(u32, u64)],
    stats: &Statistics,
    year: i32,
    live: bool,
) -> Result<Protected, StatsError> {
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
    let mut all: Vec<Table> = Vec::new();
    let mut rest: Vec<(Query, Region)> = Vec::new();
    let people = (!live).then(|| std::sync::Arc::new(people(model)));
    for region in regions {
        let snapshot = match &people {
            None => stats.snapshot(model, position, &region)?,
            Some(people) => std::sync::Arc::new(Snapshot::take_with(
                model,
                &region,
                std::sync::Arc::clone(people),
            )),
        };
        for figure in Figure::ALL {
            let query = Query::for_year(figure, region.clone(), year)
                .ok_or_else(|| StatsError::BadRequest("year out of range".into()))?;
            all.push(compute_from(
                &snapshot,
                position,
                stats.population(),
                &query,
            ));
            rest.push((query, region.clone()));
        }
    }
    let protection = linked::protect(&mut all);
    Ok((all, rest, protection))
}

/// The stored entries of a release's tables: key and bytes, two formats each.
fn entries(
    name: &str,
    model: &ReadModel,
    tables: Vec<Table>,
    rest: Vec<(Query, Region)>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(2 * tables.len());
    for (mut table, (query, region)) in tables.into_iter().zip(rest) {
        // Released in Norwegian, with notes and rounded values, and stored as bytes:
        // what a release says never changes afterwards.
        present::present(&mut table, &query, Lang::No, span_of(model, &region));
        for format in [Format::JsonStat, Format::Csv] {
            out.push((
                key(name, &query.figure.id(), &region.code(), format),
                encode(&render(&table, format)),
            ));
        }
    }
    out
}

/// What [`ReleaseStore::audit`] found.
#[derive(Clone, Debug)]
pub struct ReleaseAudit {
    /// The release.
    pub manifest: Manifest,
    /// Stored tables the log reproduces byte for byte.
    pub identical: u64,
    /// Stored tables it does not (the first few, as `figure region format`), and how many.
    pub differing: (Vec<String>, u64),
    /// The linked-tables audit of the reproduced tables.
    pub summary: linked::Summary,
}

impl ReleaseAudit {
    /// Whether the release is reproduced exactly and gives nothing away.
    pub fn holds(&self) -> bool {
        self.differing.1 == 0 && self.summary.holds()
    }
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
        // The frame the public listener serves at this position: the release is cut
        // from it, so both say the same.
        let frame = stats.frame(&model, &position, year)?;
        let all = frame.tables.clone();
        let rest = frame.queries.clone();
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
        for (key, bytes) in entries(name, &model, all, rest) {
            batch.insert(key, bytes);
            tables += 1;
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

    /// The manifest of release `name`.
    pub fn manifest(&self, name: &str) -> Result<Manifest, StatsError> {
        let value = self
            .manifests
            .get(name)
            .map_err(storage)?
            .ok_or_else(|| StatsError::NotFound(format!("no release {name}")))?;
        let text = String::from_utf8_lossy(&value).to_string();
        let mut lines = text.lines();
        let year = lines.next().and_then(|l| l.parse().ok());
        let log_position = lines.next().map(str::to_string);
        let tables = lines.next().and_then(|l| l.parse().ok());
        match (year, log_position, tables) {
            (Some(year), Some(log_position), Some(tables)) => Ok(Manifest {
                name: name.to_string(),
                year,
                log_position,
                tables,
            }),
            _ => Err(StatsError::Internal(format!(
                "release store: the manifest of {name} is damaged"
            ))),
        }
    }

    /// Re-derives release `name` from `model` (the log folded to the release's
    /// position, which the caller does) and compares it with what is stored: the same
    /// computation and protection must give the same bytes. Then audits the tables as
    /// linked tables, as a reader holding the release would attack them.
    pub fn audit(
        &self,
        stats: &Statistics,
        model: &ReadModel,
        name: &str,
    ) -> Result<ReleaseAudit, StatsError> {
        let manifest = self.manifest(name)?;
        let position = model.reflected();
        let (tables, rest, _) = protected_tables(model, &position, stats, manifest.year, false)?;
        let (summary, _) = linked::summarise(&tables);
        let mut identical = 0u64;
        let mut differing = (Vec::new(), 0u64);
        for (key, bytes) in entries(name, model, tables, rest) {
            let stored = self.tables.get(&key).map_err(storage)?;
            if stored.as_deref() == Some(bytes.as_slice()) {
                identical += 1;
            } else {
                differing.1 += 1;
                if differing.0.len() < 10 {
                    let words: Vec<String> = key
                        .split(|&b| b == 0)
                        .skip(1)
                        .map(|w| String::from_utf8_lossy(w).to_string())
                        .collect();
                    differing.0.push(words.join(" "));
                }
            }
        }
        Ok(ReleaseAudit {
            manifest,
            identical,
            differing,
            summary,
        })
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
