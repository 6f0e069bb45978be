//! `kpr-bench`: the register's benchmarks, apart from the operator's binary so that
//! `kpr` links no PostgreSQL client and carries no load generator.
//!
//! - `kpr-bench read`: rebuild events/s and peak RSS (in a fresh process), query
//!   latency per figure, on the demo population or the national data set (`--scale`).
//! - `kpr-bench ingest`: durable gRPC ingest against an in-process `kpr serve` (or the
//!   `kpr ingest` role on Kafka), unary and batched, at peak and half of peak.
//! - `kpr-bench all`: ingest, then read at 1 M and 20 M events.
//!
//! `--postgres` adds the side-by-side PostgreSQL baseline. Figures are `key=value`
//! lines on standard output; docs/benchmarks.md has the latest and their commands.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

mod postgres;
mod run;

/// The same allocator as the `kpr` binary, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum What {
    /// Rebuild and queries.
    Read,
    /// Durable gRPC ingest.
    Ingest,
    /// Ingest, then read at 1 M and 20 M events.
    All,
}

#[derive(Debug, Parser)]
#[command(
    name = "kpr-bench",
    version,
    about = "The register's benchmarks: rebuild, queries and durable ingest, with baselines"
)]
struct Cli {
    /// What to measure: `read` (rebuild and queries), `ingest` (durable gRPC ingest),
    /// or `all`: ingest (and on Kafka with --kafka), then read on the national data set
    /// at 1 M events (with the baselines asked for) and at 20 M events.
    #[arg(value_enum, default_value_t = What::Read)]
    what: What,
    /// Seconds per ingest phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Persons in the demo population.
    #[arg(long, default_value_t = 2000)]
    persons: u32,
    /// Load the national data set at this share of the country instead of the demo
    /// population, and print its calibration against the published figures.
    #[arg(long)]
    scale: Option<f64>,
    /// Years of history of the national data set (with --scale).
    #[arg(long, default_value_t = 10)]
    years: u32,
    /// Rounds of every figure per region.
    #[arg(long, default_value_t = 20)]
    repeat: u32,
    /// Keep the written log in this data directory, and reuse it when it holds one
    /// (read benchmark).
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Kafka-protocol brokers (`host:port`). `read`: also copy the log there and
    /// rebuild from it. `ingest`: run against the Kafka backend (the `kpr ingest` role,
    /// in-process, on a fresh topic) instead of `kpr serve` on sled.
    #[arg(long, value_name = "BROKERS")]
    kafka: Option<String>,
    /// Also run the PostgreSQL baseline side by side (installs Debian's package if
    /// missing, starts its own server on loopback, stops it by PID).
    #[arg(long, env = "KPR_BENCH_POSTGRES")]
    postgres: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

async fn bench(args: Cli) -> anyhow::Result<()> {
    match args.what {
        What::Read => {
            let source = match args.scale {
                Some(scale) => run::Source::National {
                    scale,
                    years: args.years,
                },
                None => run::Source::Demo {
                    persons: args.persons,
                },
            };
            run::run(run::ReadArgs {
                source,
                repeat: args.repeat,
                keep: args.keep,
                kafka: args.kafka,
                postgres: args.postgres,
            })
            .await
        }
        What::Ingest => {
            let figures = run::run_ingest(args.seconds, args.kafka.as_deref()).await?;
            if args.postgres {
                postgres::run_ingest(&figures, args.seconds).await?;
            }
            Ok(())
        }
        What::All => {
            let figures = run::run_ingest(args.seconds, None).await?;
            if args.postgres {
                postgres::run_ingest(&figures, args.seconds).await?;
            }
            if let Some(brokers) = &args.kafka {
                run::run_ingest(args.seconds, Some(brokers)).await?;
            }
            // 1 M events with every baseline; then a national decade (~20 M),
            // kept in --keep when given.
            for (scale, keep, kafka, postgres) in [
                (0.05, None, args.kafka.clone(), args.postgres),
                (1.0, args.keep.clone(), None, false),
            ] {
                run::run(run::ReadArgs {
                    source: run::Source::National {
                        scale,
                        years: args.years,
                    },
                    repeat: args.repeat,
                    keep,
                    kafka,
                    postgres,
                })
                .await?;
            }
            Ok(())
        }
    }
}
