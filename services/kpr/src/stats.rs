//! `kpr stats` and `kpr rebuild`: statistics in the terminal, from a running register
//! (HTTP) or from a stopped register's log (rebuilt here), and a full rebuild of the
//! read model with a progress bar.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use kpr_domain::date::Date;
use kpr_eventlog::EventLog;
use kpr_eventlog_sled::{SledLog, SledOptions};
use kpr_projection::figures::{Figure, Query, compute};
use kpr_projection::model::ReadModel;
use kpr_projection::population::{Population, Region};
use kpr_statistics::{Format, Statistics, TableRequest};

use crate::serve::log_dir;

/// What a rebuild did.
#[derive(Debug, Clone, Copy)]
pub struct RebuildSummary {
    /// Events folded.
    pub events: u64,
    /// Seconds taken.
    pub seconds: f64,
}

/// Folds the whole log of a stopped register into a fresh read model, in memory only.
///
/// Read-only: it folds a private copy of the log, so the data directory is not
/// written (`kpr stats --data` on a stopped register or a backup).
pub async fn rebuild(data: &Path, progress: bool) -> anyhow::Result<(ReadModel, RebuildSummary)> {
    if !log_dir(data).exists() {
        anyhow::bail!("no log at {}", log_dir(data).display());
    }
    let copy = crate::inspect::private_copy(&log_dir(data))?;
    fold_log_at(copy.path(), progress, None)
        .await
        .with_context(|| format!("cannot read the log in {}", log_dir(data).display()))
}

/// What `kpr rebuild` found.
#[derive(Debug, Clone)]
pub struct StoreRebuild {
    /// Timing.
    pub summary: RebuildSummary,
    /// Events and position of the projection as it was stored before.
    pub before: (u64, Vec<(u32, u64)>),
    /// Events and position after the rebuild.
    pub after: (u64, Vec<(u32, u64)>),
    /// Whether every figure for the nation (last complete year) is the same exact
    /// table before and after.
    pub tables_equal: bool,
}

/// `kpr rebuild`: recomputes the stored projection of a stopped register from the log
/// from zero (releases are kept) and compares it with what was stored.
pub async fn rebuild_store(data: &Path, progress: bool) -> anyhow::Result<StoreRebuild> {
    let (_releases, store) = kpr_statistics::store::open_stores(&data.join("stats"))?;
    let old = store.load()?;
    // Folded beside the active store and switched to atomically: a rebuild killed at
    // any point leaves a whole store active (the old one, or the new one).
    let next = store.begin_rebuild()?;
    let (new, summary) = fold_log(data, progress, Some(&next)).await?;
    next.activate()?;
    let year = Date::from_unix_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    )
    .year()
        - 1;
    let mut tables_equal = true;
    for figure in Figure::ALL {
        if let Some(query) = Query::for_year(figure, Region::Nation, year) {
            let population = Population::embedded();
            tables_equal &= compute(&old, population, &query) == compute(&new, population, &query);
        }
    }
    Ok(StoreRebuild {
        summary,
        before: (old.event_count(), old.position()),
        after: (new.event_count(), new.position()),
        tables_equal,
    })
}

async fn fold_log(
    data: &Path,
    progress: bool,
    store: Option<&kpr_statistics::store::ProjectionStore>,
) -> anyhow::Result<(ReadModel, RebuildSummary)> {
    fold_log_at(&log_dir(data), progress, store).await
}

async fn fold_log_at(
    dir: &Path,
    progress: bool,
    store: Option<&kpr_statistics::store::ProjectionStore>,
) -> anyhow::Result<(ReadModel, RebuildSummary)> {
    let log = SledLog::open(dir, &SledOptions::standard(1))
        .with_context(|| format!("cannot open the log in {}", dir.display()))?;
    let mut total = 0u64;
    for p in 0..log.partition_count() {
        total += log.end_offset(p).await?;
    }
    let bar = if progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} rebuild {bar:40} {pos}/{len} events {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let model = RwLock::new(ReadModel::new());
    let started = Instant::now();
    let events =
        kpr_statistics::projector::catch_up(&log, &model, store, |n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    log.close().await?;
    let model = model
        .into_inner()
        .map_err(|_| anyhow::anyhow!("read model lock poisoned"))?;
    Ok((model, RebuildSummary { events, seconds }))
}

/// Computes a table offline from a stopped register's log (always exact: the operator
/// has the data directory).
pub async fn offline_table(
    data: &Path,
    figure: &str,
    query: &str,
) -> anyhow::Result<kpr_statistics::Rendered> {
    let request = TableRequest::parse(figure, query)?;
    let (model, _) = rebuild(data, false).await?;
    let mut stats = Statistics::new(Arc::new(RwLock::new(model)));
    if let Some(population) = crate::refdata::load(data)? {
        stats = stats.with_population(population);
    }
    Ok(stats.render(&TableRequest {
        exact: true,
        ..request
    })?)
}

/// Lays out CSV as aligned columns for the terminal.
pub fn to_terminal(csv: &str) -> String {
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:>width$}", width = widths[i]))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The query string for a table request from CLI parts.
pub fn query_string(
    region: &str,
    year: Option<i32>,
    date: Option<&str>,
    period: Option<&str>,
    format: Format,
    exact: bool,
) -> String {
    let mut parts = vec![format!("region={region}")];
    if let Some(y) = year {
        parts.push(format!("year={y}"));
    }
    if let Some(d) = date {
        parts.push(format!("date={d}"));
    }
    if let Some(p) = period {
        parts.push(format!("period={p}"));
    }
    parts.push(format!(
        "format={}",
        if format == Format::Csv {
            "csv"
        } else {
            "json-stat"
        }
    ));
    if exact {
        parts.push("exact=true".into());
    }
    parts.join("&")
}
