//! `kpr`: the one binary operators run.
//!
//! - `kpr serve`: the embedded register (sled log, gRPC ingest, health, reflection).
//! - `kpr demo`: push a deterministic synthetic population through the gRPC API.
//! - `kpr inspect`: summarise a stopped register's log.
//! - `kpr verify`: check every record of a stopped register's log (exit 1 on damage).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use kpr::serve::{KeySource, ServeConfig, log_dir};

#[derive(Debug, Parser)]
#[command(
    name = "kpr",
    version,
    about = "Event-sourced care-service register for Norwegian municipalities"
)]
struct Cli {
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
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Data directory (created if missing).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    data: PathBuf,
    /// gRPC listen address; loopback unless you mean otherwise.
    #[arg(long, env = "KPR_ADDR", default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// Partitions of a new log (an existing log keeps its own).
    #[arg(long, env = "KPR_PARTITIONS", default_value_t = 16)]
    partitions: u32,
    /// File with the 64-hex-digit pseudonymisation key (default: DATA/pseudonym.key, created on first start).
    #[arg(long, env = "KPR_PSEUDONYM_KEY_FILE")]
    pseudonym_key_file: Option<PathBuf>,
    /// Accept synthetic test ids (month + 80). Never in production.
    #[arg(long, env = "KPR_ALLOW_SYNTHETIC_IDS")]
    allow_synthetic_ids: bool,
    /// Most events in one append batch.
    #[arg(long, env = "KPR_BATCH_EVENTS_MAX", default_value_t = 5000)]
    batch_events_max: u32,
    /// Largest gRPC message in bytes.
    #[arg(long, env = "KPR_MESSAGE_BYTES_MAX", default_value_t = 16 * 1024 * 1024)]
    message_bytes_max: usize,
    /// Capacity of the append queue in batches (RESOURCE_EXHAUSTED beyond it).
    #[arg(long, env = "KPR_QUEUE_CAPACITY_BATCHES", default_value_t = 8192)]
    queue_capacity_batches: u32,
    /// Skip the fdatasync after each group commit: survives a killed process, not a power loss.
    #[arg(long, env = "KPR_NO_SYNC_DATA")]
    no_sync_data: bool,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Address of a running register.
    #[arg(long, env = "KPR_ENDPOINT", default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// Seed of the synthetic population.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of persons.
    #[arg(long, default_value_t = 2000)]
    persons: u32,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct DataArgs {
    /// Data directory of a stopped register.
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    data: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Demo(args) => demo(args).await,
            Command::Inspect(args) => {
                let report = kpr::inspect::scan(&log_dir(&args.data)).await?;
                print!("{}", kpr::inspect::render(&report));
                Ok(())
            }
            Command::Verify(args) => {
                let report = kpr::inspect::scan(&log_dir(&args.data)).await?;
                if report.problems.is_empty() {
                    println!(
                        "ok: {} records, every checksum and decode holds, offsets in order",
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
        }
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let key = match (args.pseudonym_key_file, std::env::var("KPR_PSEUDONYM_KEY")) {
        (Some(path), _) => KeySource::File(path),
        (None, Ok(hex)) => KeySource::Hex(hex),
        (None, Err(_)) => KeySource::DataDir,
    };
    let config = ServeConfig {
        data_dir: args.data,
        partitions: args.partitions,
        key,
        allow_synthetic_ids: args.allow_synthetic_ids,
        batch_events_max: args.batch_events_max,
        message_bytes_max: args.message_bytes_max,
        queue_capacity_batches: args.queue_capacity_batches,
        sync_data: !args.no_sync_data,
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    kpr::serve::run(config, listener, shutdown_signal()).await
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let today = kpr_domain::Date::from_unix_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    );
    let mut config = kpr_synth::DemoConfig::standard(today);
    config.seed = args.seed;
    config.persons = args.persons;
    let summary = kpr::demo::run(&args.endpoint, &config, !args.quiet).await?;
    println!(
        "demo: {} batches, {} events stored, {} already stored (duplicates), {} batches refused, {:.1} s ({:.0} events/s)",
        summary.batches,
        summary.stored,
        summary.duplicates,
        summary.rejected_batches,
        summary.seconds,
        (summary.stored + summary.duplicates) as f64 / summary.seconds.max(1e-9)
    );
    if summary.rejected_batches > 0 {
        anyhow::bail!("{} demo batches were refused", summary.rejected_batches);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
