//! The split roles on Apache Kafka: `kpr ingest`, `kpr project`, `kpr statistics`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kpr::serve::KeySource;

use crate::cli::args::TrustArgs;
use crate::cli::serve::{DEFAULT_ADMIN_ADDR, DEFAULT_STATS_ADDR, http_listener};
use crate::cli::shutdown_signal;

#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Kafka brokers, host:port[,host:port].
    #[arg(long, env = "KPR_KAFKA_BROKERS")]
    pub kafka_brokers: String,
    /// The event topic.
    #[arg(long, env = "KPR_TOPIC", default_value = "kpr-events")]
    pub topic: String,
    /// Partitions when the topic is created (fixed afterwards).
    #[arg(long, env = "KPR_PARTITIONS", default_value_t = 16)]
    pub partitions: u32,
    /// Replication factor when topics are created.
    #[arg(long, env = "KPR_REPLICATION", default_value_t = 1)]
    pub replication: i32,
    /// A librdkafka setting for every Kafka client, key=value (repeatable): TLS and
    /// SASL to the brokers, e.g. security.protocol=SASL_SSL, ssl.ca.location=/etc/kafka/ca.pem,
    /// sasl.mechanism=SCRAM-SHA-512, sasl.username=…, sasl.password=….
    #[arg(long = "kafka-config", value_name = "KEY=VALUE")]
    pub kafka_config: Vec<String>,
}

impl KafkaArgs {
    pub fn topic(&self) -> anyhow::Result<kpr::split::KafkaTopic> {
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
pub struct IngestArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Data directory (the pseudonymisation key and its fingerprint).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    pub data: PathBuf,
    /// gRPC listen address.
    #[arg(long, env = "KPR_ADDR", default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    /// Partitions this node writes, e.g. 0-7,12 (default: all). Exactly one node per partition.
    #[arg(long, env = "KPR_PARTITIONS_OWNED")]
    pub partitions_owned: Option<String>,
    /// Owners of the other partitions, e.g. "8-15=http://ingest-1:50051", named in refusals.
    #[arg(long, env = "KPR_OWNERS", default_value = "")]
    pub owners: String,
    /// File with the 64-hex-digit pseudonymisation key (the same on every ingest node).
    #[arg(long, env = "KPR_PSEUDONYM_KEY_FILE")]
    pub pseudonym_key_file: Option<PathBuf>,
    /// Accept synthetic test ids (month + 80). Never in production.
    #[arg(long, env = "KPR_ALLOW_SYNTHETIC_IDS")]
    pub allow_synthetic_ids: bool,
    /// Most events in one append batch.
    #[arg(long, env = "KPR_BATCH_EVENTS_MAX", default_value_t = 5000)]
    pub batch_events_max: u32,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Debug, Args)]
pub struct ProjectArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Partitions this projector folds, e.g. 0-7 (default: all).
    #[arg(long, env = "KPR_PARTITIONS_OWNED")]
    pub partitions_owned: Option<String>,
    /// Local data directory (the projector's store).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatisticsArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// gRPC address for kpr.v1.StatisticsService.
    #[arg(long, env = "KPR_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Public statistics HTTP address [default: 127.0.0.1:8080].
    #[arg(long, env = "KPR_STATS_ADDR")]
    pub stats_addr: Option<SocketAddr>,
    /// Operator HTTP address (exact tables); keep it on loopback [default: 127.0.0.1:8081].
    #[arg(long, env = "KPR_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// Data directory (the audit trail; the local issuer if no --auth-jwks).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    pub data: PathBuf,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `kpr ingest`.
pub async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let key = KeySource::from_flag(args.pseudonym_key_file);
    let owned = args
        .partitions_owned
        .as_deref()
        .map(kpr::split::parse_partitions)
        .transpose()?;
    let config = kpr_ingest::IngestConfig {
        batch_events_max: args.batch_events_max,
        allow_synthetic_ids: args.allow_synthetic_ids,
        owned_partitions: owned,
        owners: kpr::split::parse_owners(&args.owners)?,
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    kpr::split::run_ingest(
        args.kafka.topic()?,
        args.data,
        key,
        config,
        listener,
        args.trust.config(),
        shutdown_signal(),
    )
    .await
}

/// `kpr project`.
pub async fn project(args: ProjectArgs) -> anyhow::Result<()> {
    let owned = args
        .partitions_owned
        .as_deref()
        .map(kpr::split::parse_partitions)
        .transpose()?;
    kpr::split::run_project(args.kafka.topic()?, args.data, owned, shutdown_signal()).await
}

/// `kpr statistics`.
pub async fn statistics(args: StatisticsArgs) -> anyhow::Result<()> {
    let grpc = match args.addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?,
        ),
        None => None,
    };
    let stats = http_listener(args.stats_addr, DEFAULT_STATS_ADDR, "stats").await?;
    let admin = http_listener(args.admin_addr, DEFAULT_ADMIN_ADDR, "admin").await?;
    kpr::split::run_statistics(
        args.kafka.topic()?,
        args.data,
        args.trust.config(),
        grpc,
        stats,
        admin,
        shutdown_signal(),
    )
    .await
}
