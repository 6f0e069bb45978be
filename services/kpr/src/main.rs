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
use cli::args::{ClientArgs, TrustArgs};
use cli::audit::{AuditArgs, audit};
use cli::auth::{AuthCommand, auth_token};
use cli::health::{HealthArgs, health};

mod cli;
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
    /// Print a statistics table (SPEC 5.2) from a running register, or from a stopped
    /// register's log with --data.
    Stats(StatsArgs),
    /// Recompute the read model from the whole log of a stopped register, with a progress bar.
    Rebuild(DataArgs),
    /// Freeze a release of every figure for every region at the current log position.
    Publish(PublishArgs),
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

#[derive(Debug, Args)]
struct KafkaArgs {
    /// Kafka brokers, host:port[,host:port].
    #[arg(long, env = "KPR_KAFKA_BROKERS")]
    kafka_brokers: String,
    /// The event topic.
    #[arg(long, env = "KPR_TOPIC", default_value = "kpr-events")]
    topic: String,
    /// Partitions when the topic is created (fixed afterwards).
    #[arg(long, env = "KPR_PARTITIONS", default_value_t = 16)]
    partitions: u32,
    /// Replication factor when topics are created.
    #[arg(long, env = "KPR_REPLICATION", default_value_t = 1)]
    replication: i32,
    /// A librdkafka setting for every Kafka client, key=value (repeatable): TLS and
    /// SASL to the brokers, e.g. security.protocol=SASL_SSL, ssl.ca.location=/etc/kafka/ca.pem,
    /// sasl.mechanism=SCRAM-SHA-512, sasl.username=…, sasl.password=….
    #[arg(long = "kafka-config", value_name = "KEY=VALUE")]
    kafka_config: Vec<String>,
}

impl KafkaArgs {
    fn topic(&self) -> anyhow::Result<kpr::split::KafkaTopic> {
        Ok(kpr::split::KafkaTopic {
            brokers: self.kafka_brokers.clone(),
            topic: self.topic.clone(),
            partitions: self.partitions,
            replication: self.replication,
            client_config: kpr::split::parse_kafka_config(&self.kafka_config)?,
        })
    }
}

#[derive(Debug, Args)]
struct IngestArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Data directory (the pseudonymisation key and its fingerprint).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    data: PathBuf,
    /// gRPC listen address.
    #[arg(long, env = "KPR_ADDR", default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// Partitions this node writes, e.g. 0-7,12 (default: all). Exactly one node per partition.
    #[arg(long, env = "KPR_PARTITIONS_OWNED")]
    partitions_owned: Option<String>,
    /// Owners of the other partitions, e.g. "8-15=http://ingest-1:50051", named in refusals.
    #[arg(long, env = "KPR_OWNERS", default_value = "")]
    owners: String,
    /// File with the 64-hex-digit pseudonymisation key (the same on every ingest node).
    #[arg(long, env = "KPR_PSEUDONYM_KEY_FILE")]
    pseudonym_key_file: Option<PathBuf>,
    /// Accept synthetic test ids (month + 80). Never in production.
    #[arg(long, env = "KPR_ALLOW_SYNTHETIC_IDS")]
    allow_synthetic_ids: bool,
    /// Most events in one append batch.
    #[arg(long, env = "KPR_BATCH_EVENTS_MAX", default_value_t = 5000)]
    batch_events_max: u32,
    #[command(flatten)]
    trust: TrustArgs,
}

#[derive(Debug, Args)]
struct ProjectArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Partitions this projector folds, e.g. 0-7 (default: all).
    #[arg(long, env = "KPR_PARTITIONS_OWNED")]
    partitions_owned: Option<String>,
    /// Local data directory (the projector's store).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    data: PathBuf,
}

#[derive(Debug, Args)]
struct StatisticsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// gRPC address for kpr.v1.StatisticsService.
    #[arg(long, env = "KPR_ADDR")]
    addr: Option<SocketAddr>,
    /// Public statistics HTTP address [default: 127.0.0.1:8080].
    #[arg(long, env = "KPR_STATS_ADDR")]
    stats_addr: Option<SocketAddr>,
    /// Operator HTTP address (exact tables); keep it on loopback [default: 127.0.0.1:8081].
    #[arg(long, env = "KPR_ADMIN_ADDR")]
    admin_addr: Option<SocketAddr>,
    /// Data directory (the audit trail; the local issuer if no --auth-jwks).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    data: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Copy a whole log to an empty one (sled or Kafka), keeping order and bytes.
    Copy(LogCopyArgs),
}

#[derive(Debug, Subcommand)]
enum RefdataCommand {
    /// Store a newer population CSV (SSB 07459) in the data directory.
    Import(RefdataImportArgs),
}

#[derive(Debug, Args)]
struct LogCopyArgs {
    /// Source: sled:DATA_DIR or kafka:BROKERS/TOPIC (nothing may write to it meanwhile).
    #[arg(long)]
    from: String,
    /// Target (must be empty): sled:DATA_DIR or kafka:BROKERS/TOPIC.
    #[arg(long)]
    to: String,
}

#[derive(Debug, Args)]
struct RefdataImportArgs {
    /// The CSV to import (SSB 07459 shape: aar,kommunenummer,kjonn,alder,personer).
    file: PathBuf,
    /// Data directory of the register (used from its next start).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    data: PathBuf,
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// Release name (1-64 of A-Z a-z 0-9 . _ -); never overwritten.
    #[arg(long)]
    name: String,
    /// Year of the release (D = 31 December, P = the year).
    #[arg(long)]
    year: i32,
    /// Admin endpoint of the running register.
    #[arg(
        long,
        env = "KPR_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:8081"
    )]
    admin_endpoint: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// Figure: T1-T4, I1-I18.
    figure: String,
    /// Region: a 2024 municipality code, EKnn for a county, EAK for the nation.
    #[arg(long, default_value = "EAK")]
    region: String,
    /// Year (D = 31 December, P = the year, unless --date/--period are given).
    #[arg(long)]
    year: Option<i32>,
    /// Status date D (YYYY-MM-DD).
    #[arg(long)]
    date: Option<String>,
    /// Period P (2024, 2024K3, 2024M07).
    #[arg(long)]
    period: Option<String>,
    /// Exact numbers (operator): asks the admin listener.
    #[arg(long)]
    exact: bool,
    /// Print CSV instead of aligned columns; `json-stat` prints JSON-stat.
    #[arg(long, default_value = "table")]
    output: String,
    /// Public statistics endpoint of a running register.
    #[arg(
        long,
        env = "KPR_STATS_ENDPOINT",
        default_value = "http://127.0.0.1:8080"
    )]
    endpoint: String,
    /// Admin endpoint of a running register (for --exact).
    #[arg(
        long,
        env = "KPR_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:8081"
    )]
    admin_endpoint: String,
    /// Compute offline from the log of a stopped register in this data directory (exact).
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Data directory (created if missing).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    data: PathBuf,
    /// gRPC listen address; loopback unless you mean otherwise.
    #[arg(long, env = "KPR_ADDR", default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// Public statistics HTTP address (disclosure-controlled tables) [default: 127.0.0.1:8080].
    #[arg(long, env = "KPR_STATS_ADDR")]
    stats_addr: Option<SocketAddr>,
    /// Operator HTTP address (exact tables with exact=true); keep it on loopback [default: 127.0.0.1:8081].
    #[arg(long, env = "KPR_ADMIN_ADDR")]
    admin_addr: Option<SocketAddr>,
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
    #[command(flatten)]
    trust: TrustArgs,
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
    /// Send the national data set (every municipality, sized by its population)
    /// instead of the demo population.
    #[arg(long)]
    national: bool,
    /// Share of the country in the national data set.
    #[arg(long, default_value_t = 1.0, requires = "national")]
    scale: f64,
    /// Years of history of the national data set.
    #[arg(long, default_value_t = 10, requires = "national")]
    years: u32,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct DataArgs {
    /// Data directory of a stopped register.
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    data: PathBuf,
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
    operator_panic_hook();
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
                quiet_panics();
                let report = kpr::inspect::scan(&log_dir(&args.data)).await?;
                print!("{}", kpr::inspect::render(&report));
                Ok(())
            }
            Command::Stats(args) => stats(args).await,
            Command::Auth(AuthCommand::Token(args)) => auth_token(args),
            Command::Audit(args) => audit(args),
            Command::Health(args) => health(args).await,
            Command::Ingest(args) => {
                let key = match (args.pseudonym_key_file, std::env::var("KPR_PSEUDONYM_KEY")) {
                    (Some(path), _) => KeySource::File(path),
                    (None, Ok(hex)) => KeySource::Hex(hex),
                    (None, Err(_)) => KeySource::DataDir,
                };
                let owned = args.partitions_owned.as_deref().map(kpr::split::parse_partitions).transpose()?;
                let config = kpr_ingest::IngestConfig {
                    batch_events_max: args.batch_events_max,
                    allow_synthetic_ids: args.allow_synthetic_ids,
                    owned_partitions: owned,
                    owners: kpr::split::parse_owners(&args.owners)?,
                };
                let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
                kpr::split::run_ingest(args.kafka.topic()?, args.data, key, config, listener, args.trust.config(), shutdown_signal()).await
            }
            Command::Project(args) => {
                let owned = args.partitions_owned.as_deref().map(kpr::split::parse_partitions).transpose()?;
                kpr::split::run_project(args.kafka.topic()?, args.data, owned, shutdown_signal()).await
            }
            Command::Statistics(args) => {
                let grpc = match args.addr {
                    Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?),
                    None => None,
                };
                let stats = http_listener(args.stats_addr, DEFAULT_STATS_ADDR, "stats").await?;
                let admin = http_listener(args.admin_addr, DEFAULT_ADMIN_ADDR, "admin").await?;
                kpr::split::run_statistics(args.kafka.topic()?, args.data, args.trust.config(), grpc, stats, admin, shutdown_signal()).await
            }
            Command::Log(LogCommand::Copy(args)) => {
                let from = kpr::logcopy::Location::parse(&args.from)?;
                let to = kpr::logcopy::Location::parse(&args.to)?;
                let copied = kpr::logcopy::copy(&from, &to, true).await?;
                println!("copied {copied} records from {} to {}", args.from, args.to);
                Ok(())
            }
            Command::Refdata(RefdataCommand::Import(args)) => {
                let imported = kpr::refdata::import(&args.data, &args.file);
                kpr::trust::record_cli(&args.data, format!("refdata import {}", args.file.display()), "", None, &imported.as_ref().map(|_| ()).map_err(|e| anyhow::anyhow!("{e}")))?;
                let years = imported?;
                println!(
                    "imported population for {years:?} into {}; restart kpr serve to use it",
                    kpr::refdata::population_path(&args.data).display()
                );
                Ok(())
            }
            Command::Publish(args) => {
                let url = format!(
                    "{}/v1/releases/{}?year={}",
                    args.admin_endpoint.trim_end_matches('/'),
                    args.name,
                    args.year
                );
                let client_config = args.client.config()?;
                let token = kpr::trust::Tokens::from_config(&client_config)?.for_role(kpr_auth::Role::Operator)?;
                let client = kpr::trust::http_client(&client_config, token)?;
                let response = tokio::task::spawn_blocking(move || client.post(&url))
                    .await??
                    .expect_status(201)?;
                print!("{}", response.body);
                Ok(())
            }
            Command::Rebuild(args) => {
                let rebuilt = kpr::stats::rebuild_store(&args.data, true).await;
                kpr::trust::record_cli(&args.data, "rebuild".into(), "", None, &rebuilt.as_ref().map(|_| ()).map_err(|e| anyhow::anyhow!("{e}")))?;
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
                    if r.tables_equal { "identical" } else { "DIFFERENT" }
                );
                anyhow::ensure!(r.before.1 != r.after.1 || r.tables_equal, "the rebuilt projection differs from the stored one at the same position");
                Ok(())
            }
            Command::Verify(args) => {
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
        trust: args.trust.config(),
    };
    let grpc = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let stats = http_listener(args.stats_addr, DEFAULT_STATS_ADDR, "stats").await?;
    let admin = http_listener(args.admin_addr, DEFAULT_ADMIN_ADDR, "admin").await?;
    kpr::serve::run(
        config,
        kpr::serve::Listeners { grpc, stats, admin },
        shutdown_signal(),
    )
    .await
}

const DEFAULT_STATS_ADDR: &str = "127.0.0.1:8080";
const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:8081";

/// Binds an HTTP listener. A configured address must bind; the default address is
/// skipped with a warning when it is taken (another register on this machine).
async fn http_listener(
    configured: Option<SocketAddr>,
    default: &str,
    what: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match configured {
        Some(addr) => Ok(Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for {what} on {addr}"))?,
        )),
        None => match tokio::net::TcpListener::bind(default).await {
            Ok(listener) => Ok(Some(listener)),
            Err(e) => {
                tracing::warn!(address = default, error = %e, "{what} HTTP not served: the default address is taken; set --{what}-addr");
                Ok(None)
            }
        },
    }
}

async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let format = if args.output == "json-stat" {
        kpr_statistics::Format::JsonStat
    } else {
        kpr_statistics::Format::Csv
    };
    let exact = args.exact || args.data.is_some();
    let query = kpr::stats::query_string(
        &args.region,
        args.year,
        args.date.as_deref(),
        args.period.as_deref(),
        format,
        exact,
    );
    let (body, position, exact) = match &args.data {
        Some(data) => {
            // Exact numbers from the log itself: an operator read, in the audit trail.
            let read = kpr::stats::offline_table(data, &args.figure, &query).await;
            let municipality = if args.region.len() == 4 {
                args.region.as_str()
            } else {
                ""
            };
            // A read-only copy of a data directory (a backup) cannot take the entry: the
            // read is still answered, and the operator is told.
            if let Err(e) = kpr::trust::record_cli(
                data,
                format!("stats {} {query} (offline, exact)", args.figure),
                municipality,
                None,
                &read
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e}")),
            ) {
                tracing::warn!(error = %e, "this offline read is not in the audit trail");
            }
            let r = read?;
            (r.body, r.log_position, r.exact)
        }
        None => {
            let base = if args.exact {
                &args.admin_endpoint
            } else {
                &args.endpoint
            };
            let url = format!(
                "{}/v1/tables/{}?{query}",
                base.trim_end_matches('/'),
                args.figure
            );
            let client_config = args.client.config()?;
            let role = if args.exact {
                kpr_auth::Role::Operator
            } else {
                kpr_auth::Role::Statistics
            };
            // Published tables are read anonymously unless a token is given.
            let token = match (&client_config.token, &client_config.issuer_data, args.exact) {
                (None, None, _) | (None, Some(_), false) => None,
                _ => kpr::trust::Tokens::from_config(&client_config)?.for_role(role)?,
            };
            let client = kpr::trust::http_client(&client_config, token)?;
            let response = tokio::task::spawn_blocking(move || client.get(&url))
                .await??
                .expect_status(200)?;
            let position = response
                .header("x-kpr-log-position")
                .unwrap_or_default()
                .to_string();
            let exact = response.header("x-kpr-exact") == Some("true");
            (response.body, position, exact)
        }
    };
    match args.output.as_str() {
        "table" => print!("{}", kpr::stats::to_terminal(&body)),
        _ => print!("{body}"),
    }
    eprintln!(
        "{} at log position {position}{}",
        args.figure.to_uppercase(),
        if exact {
            "; EXACT numbers, not disclosure-controlled"
        } else {
            ""
        }
    );
    Ok(())
}

/// For the commands that read a possibly damaged log: sled panics on some damage, and
/// the damage is reported as an error naming the directory instead of a panic message
/// and backtrace.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// What an unexpected panic prints: one line an operator can act on (the place and
/// the message), not Rust's panic text. Damage sled panics on is caught where the log
/// is opened and reported as an error naming the directory.
fn operator_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("kpr: internal error at {place}: {message}");
    }));
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
    let summary = if args.national {
        let config = kpr_synth::NationalConfig {
            seed: args.seed,
            scale: args.scale,
            first_year: today.year() - args.years.min(100) as i32,
            ..kpr_synth::NationalConfig::standard(today)
        };
        kpr::demo::run_national(&args.endpoint, &args.client.config()?, &config, !args.quiet)
            .await?
    } else {
        let mut config = kpr_synth::DemoConfig::standard(today);
        config.seed = args.seed;
        config.persons = args.persons;
        kpr::demo::run(&args.endpoint, &args.client.config()?, &config, !args.quiet).await?
    };
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
