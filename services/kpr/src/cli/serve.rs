//! `kpr serve`: the embedded register.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kpr::serve::{KeySource, ServeConfig};

use crate::cli::args::TrustArgs;
use crate::cli::shutdown_signal;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory (created if missing).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    pub data: PathBuf,
    /// gRPC listen address; loopback unless you mean otherwise.
    #[arg(long, env = "KPR_ADDR", default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    /// Public statistics HTTP address (disclosure-controlled tables) [default: 127.0.0.1:8080].
    #[arg(long, env = "KPR_STATS_ADDR")]
    pub stats_addr: Option<SocketAddr>,
    /// Operator HTTP address (exact tables with exact=true); keep it on loopback [default: 127.0.0.1:8081].
    #[arg(long, env = "KPR_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// Partitions of a new log (an existing log keeps its own).
    #[arg(long, env = "KPR_PARTITIONS", default_value_t = 16)]
    pub partitions: u32,
    /// File with the 64-hex-digit pseudonymisation key (default: DATA/pseudonym.key, created on first start).
    #[arg(long, env = "KPR_PSEUDONYM_KEY_FILE")]
    pub pseudonym_key_file: Option<PathBuf>,
    /// Accept synthetic test ids (month + 80). Never in production.
    #[arg(long, env = "KPR_ALLOW_SYNTHETIC_IDS")]
    pub allow_synthetic_ids: bool,
    /// Most events in one append batch.
    #[arg(long, env = "KPR_BATCH_EVENTS_MAX", default_value_t = 5000)]
    pub batch_events_max: u32,
    /// Largest gRPC message in bytes.
    #[arg(long, env = "KPR_MESSAGE_BYTES_MAX", default_value_t = 16 * 1024 * 1024)]
    pub message_bytes_max: usize,
    /// Capacity of the append queue in batches (RESOURCE_EXHAUSTED beyond it).
    #[arg(long, env = "KPR_QUEUE_CAPACITY_BATCHES", default_value_t = 8192)]
    pub queue_capacity_batches: u32,
    /// Skip the fdatasync after each group commit: survives a killed process, not a power loss.
    #[arg(long, env = "KPR_NO_SYNC_DATA")]
    pub no_sync_data: bool,
    #[command(flatten)]
    pub trust: TrustArgs,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let key = KeySource::from_flag(args.pseudonym_key_file);
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

pub const DEFAULT_STATS_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:8081";

/// Binds an HTTP listener. A configured address must bind; the default address is
/// skipped with a warning when it is taken (another register on this machine).
pub async fn http_listener(
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
