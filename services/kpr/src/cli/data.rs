//! Commands on a stopped register's data directory: `inspect`, `verify`, `rebuild`,
//! `refdata import`, `log copy`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kpr::serve::log_dir;

use crate::cli::quiet_panics;

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data directory of a stopped register.
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    pub data: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Copy a whole log to an empty one (sled or Kafka), keeping order and bytes.
    Copy(LogCopyArgs),
}

#[derive(Debug, Subcommand)]
pub enum RefdataCommand {
    /// Store a newer population CSV (SSB 07459) in the data directory.
    Import(RefdataImportArgs),
}

#[derive(Debug, Args)]
pub struct LogCopyArgs {
    /// Source: sled:DATA_DIR or kafka:BROKERS/TOPIC (nothing may write to it meanwhile).
    #[arg(long)]
    pub from: String,
    /// Target (must be empty): sled:DATA_DIR or kafka:BROKERS/TOPIC.
    #[arg(long)]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct RefdataImportArgs {
    /// The CSV to import (SSB 07459 shape: aar,kommunenummer,kjonn,alder,personer).
    pub file: PathBuf,
    /// Data directory of the register (used from its next start).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    pub data: PathBuf,
}

/// `kpr inspect`.
pub async fn inspect(args: DataArgs) -> anyhow::Result<()> {
    quiet_panics();
    let report = kpr::inspect::scan(&log_dir(&args.data)).await?;
    print!("{}", kpr::inspect::render(&report));
    Ok(())
}

/// `kpr verify`.
pub async fn verify(args: DataArgs) -> anyhow::Result<()> {
    quiet_panics();
    let report = kpr::inspect::scan(&log_dir(&args.data)).await?;
    if report.problems.is_empty() {
        println!(
            "ok: {} records, every checksum and decode holds, offsets in order, hash chains and commit record agree",
            report.records
        );
        Ok(())
    } else {
        for p in &report.problems {
            println!("problem: {p}");
        }
        anyhow::bail!(
            "{} problem(s) in {} records",
            report.problems.len(),
            report.records
        )
    }
}

/// `kpr rebuild`.
pub async fn rebuild(args: DataArgs) -> anyhow::Result<()> {
    let rebuilt = kpr::stats::rebuild_store(&args.data, true).await;
    kpr::trust::record_cli(
        &args.data,
        "rebuild".into(),
        "",
        None,
        &rebuilt
            .as_ref()
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}")),
    )?;
    let r = rebuilt?;
    println!(
        "rebuilt the projection from the log: {} events in {:.2} s ({:.0} events/s); position {:?}",
        r.summary.events,
        r.summary.seconds,
        r.summary.events as f64 / r.summary.seconds.max(1e-9),
        r.after.1
    );
    println!(
        "before the rebuild the store held {} events at {:?}; national tables {}",
        r.before.0,
        r.before.1,
        if r.tables_equal {
            "identical"
        } else {
            "DIFFERENT"
        }
    );
    anyhow::ensure!(
        r.before.1 != r.after.1 || r.tables_equal,
        "the rebuilt projection differs from the stored one at the same position"
    );
    Ok(())
}

/// `kpr refdata import`.
pub fn refdata_import(args: RefdataImportArgs) -> anyhow::Result<()> {
    let imported = kpr::refdata::import(&args.data, &args.file);
    kpr::trust::record_cli(
        &args.data,
        format!("refdata import {}", args.file.display()),
        "",
        None,
        &imported
            .as_ref()
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}")),
    )?;
    let years = imported?;
    println!(
        "imported population for {years:?} into {}; restart kpr serve to use it",
        kpr::refdata::population_path(&args.data).display()
    );
    Ok(())
}

/// `kpr log copy`.
pub async fn log_copy(args: LogCopyArgs) -> anyhow::Result<()> {
    let from = kpr::logcopy::Location::parse(&args.from)?;
    let to = kpr::logcopy::Location::parse(&args.to)?;
    let copied = kpr::logcopy::copy(&from, &to, true).await?;
    println!("copied {copied} records from {} to {}", args.from, args.to);
    Ok(())
}
