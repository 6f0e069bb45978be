//! `kpr`: the one binary operators run.
//!
//! - `kpr serve`: the embedded register (sled log, gRPC ingest, health, reflection).
//! - `kpr demo`: push a deterministic synthetic population through the gRPC API.
//! - `kpr inspect`: summarise a stopped register's log.
//! - `kpr verify`: check every record of a stopped register's log (exit 1 on damage).

use anyhow::Context;
use clap::{Parser, Subcommand};
use cli::audit::{AuditArgs, audit};
use cli::auth::{AuthCommand, auth_token};
use cli::data::{DataArgs, LogCommand, RefdataCommand};
use cli::demo::DemoArgs;
use cli::health::{HealthArgs, health};
use cli::serve::ServeArgs;
use cli::split::{IngestArgs, ProjectArgs, StatisticsArgs};
use cli::stats::{AuditReleaseArgs, PublishArgs, StatsArgs};

mod cli;

#[derive(Debug, Parser)]
#[command(
    name = "kpr",
    version,
    about = "Event-sourced care-service register for Norwegian municipalities"
)]
struct Cli {
    /// How log lines are written to stderr: `text` (for people) or `json` (one JSON
    /// object per line, for log collectors). Also `KPR_LOG_FORMAT`.
    #[arg(long, global = true, env = "KPR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the register on its embedded sled log, serving gRPC.
    Serve(ServeArgs),
    /// Push a deterministic synthetic population through the gRPC API.
    Demo(DemoArgs),
    /// Summarise the log of a stopped register.
    Inspect(DataArgs),
    /// Check every record of a stopped register's log; exit 1 on any problem.
    Verify(DataArgs),
    /// Print a statistics table (SPEC 5.2) from a running register, or from a stopped
    /// register's log with --data.
    Stats(StatsArgs),
    /// Recompute the read model from the whole log of a stopped register, with a progress bar.
    Rebuild(DataArgs),
    /// Freeze a release of every figure for every region at the current log position.
    Publish(PublishArgs),
    /// Re-derive a release from the log at its position, compare it byte for byte with
    /// what is stored, and audit it as linked tables (exit 1 if either fails).
    AuditRelease(AuditReleaseArgs),
    /// Reference data: `kpr refdata import --data DIR FILE` stores a newer population CSV.
    #[command(subcommand)]
    Refdata(RefdataCommand),
    /// Log operations: `kpr log copy --from sled:DIR --to kafka:BROKERS/TOPIC` (and back).
    #[command(subcommand)]
    Log(LogCommand),
    /// Access tokens: `kpr auth token --municipality 0301 --role ingest` mints one from
    /// the local issuer of a data directory.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// The audit trail: list who did what (`kpr audit`), or check its hash chain
    /// (`kpr audit verify`).
    Audit(AuditArgs),
    /// Ask a running register's gRPC health service (exit 0 when SERVING): for
    /// container probes, which cannot speak TLS themselves.
    Health(HealthArgs),
    /// Split deployment: an ingest node writing its partitions of the Kafka topic.
    Ingest(IngestArgs),
    /// Split deployment: a projector node (local store; publishes to TOPIC.projection).
    Project(ProjectArgs),
    /// Split deployment: a statistics node serving what projector nodes publish.
    Statistics(StatisticsArgs),
}

/// mimalloc instead of the system allocator: the ingest path (HTTP/2 frames, protobuf
/// messages, sled nodes) makes many small short-lived allocations, which glibc's
/// malloc serves at a measurable cost (ARCHITECTURE.md, "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Everything this binary writes (the log, stores, keys, releases, audit) is for its
    // owner only, whatever the operator's umask: the files hold health events.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    cli::operator_panic_hook();
    let cli = Cli::parse();
    let filter =
        || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if cli.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => cli::serve::serve(args).await,
            Command::Demo(args) => cli::demo::demo(args).await,
            Command::Inspect(args) => cli::data::inspect(args).await,
            Command::Verify(args) => cli::data::verify(args).await,
            Command::Rebuild(args) => cli::data::rebuild(args).await,
            Command::Stats(args) => cli::stats::stats(args).await,
            Command::Publish(args) => cli::stats::publish(args).await,
            Command::AuditRelease(args) => cli::stats::audit_release(args).await,
            Command::Refdata(RefdataCommand::Import(args)) => cli::data::refdata_import(args),
            Command::Log(LogCommand::Copy(args)) => cli::data::log_copy(args).await,
            Command::Auth(AuthCommand::Token(args)) => auth_token(args),
            Command::Audit(args) => audit(args),
            Command::Health(args) => health(args).await,
            Command::Ingest(args) => cli::split::ingest(args).await,
            Command::Project(args) => cli::split::project(args).await,
            Command::Statistics(args) => cli::split::statistics(args).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn parses_serve_flags() {
        let cli = Cli::try_parse_from([
            "kpr",
            "serve",
            "--data",
            "/tmp/x",
            "--addr",
            "127.0.0.1:0",
            "--allow-synthetic-ids",
        ])
        .unwrap();
        match cli.command {
            Command::Serve(a) => {
                assert_eq!(a.data, PathBuf::from("/tmp/x"));
                assert!(a.allow_synthetic_ids);
                assert_eq!(a.partitions, 16);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["kpr", "serve", "--addr", "not-an-address"]).is_err());
    }
}
