//! `kpr serve`: the one-process embedded register (sled log + ingest + health +
//! reflection on one gRPC address), with graceful shutdown.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use kpr_eventlog::EventLog;
use kpr_eventlog_sled::{SledLog, SledOptions};
use kpr_ingest::{IngestConfig, IngestGrpc, Ingestor, Pseudonymiser};
use kpr_statistics::Statistics;
use kpr_statistics::http::Surface;
use kpr_wire::pb::ingest_service_server::IngestServiceServer;
use tokio::net::TcpListener;

/// Where the pseudonymisation key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A file holding 64 hex digits (must exist).
    File(PathBuf),
    /// 64 hex digits given directly (from an environment variable).
    Hex(String),
    /// `pseudonym.key` in the data directory, created on first start.
    DataDir,
}

impl KeySource {
    /// The key as the operator gave it: `--pseudonym-key-file`, else 64 hex digits in
    /// `KPR_PSEUDONYM_KEY`, else the data directory's own key file.
    pub fn from_flag(file: Option<PathBuf>) -> KeySource {
        match (file, std::env::var("KPR_PSEUDONYM_KEY")) {
            (Some(path), _) => KeySource::File(path),
            (None, Ok(hex)) => KeySource::Hex(hex),
            (None, Err(_)) => KeySource::DataDir,
        }
    }
}

/// Settings of `kpr serve`.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Data directory (holds `log/` and the key file).
    pub data_dir: PathBuf,
    /// Partitions of a new log.
    pub partitions: u32,
    /// The pseudonymisation key.
    pub key: KeySource,
    /// Accept synthetic test ids.
    pub allow_synthetic_ids: bool,
    /// Most events per batch.
    pub batch_events_max: u32,
    /// Largest gRPC message, in bytes.
    pub message_bytes_max: usize,
    /// Append queue capacity, in batches.
    pub queue_capacity_batches: u32,
    /// fdatasync after each group commit.
    pub sync_data: bool,
    /// TLS, authentication and the audit trail.
    pub trust: crate::trust::TrustConfig,
}

/// The sled log directory inside a data directory.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

const KEY_FILE: &str = "pseudonym.key";
/// How often the server looks whether the log has stopped taking writes.
const FAILURE_POLL: std::time::Duration = std::time::Duration::from_millis(250);
/// How long a graceful shutdown waits for open connections.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
const KEY_FINGERPRINT_FILE: &str = "pseudonym.key.fingerprint";

/// Loads the key and checks it is the key this data directory was written with:
/// pseudonyms made under another key would split every person in two.
pub fn load_key(config: &ServeConfig) -> anyhow::Result<Pseudonymiser> {
    private_dir(&config.data_dir)?;
    let key = match &config.key {
        KeySource::File(path) => Pseudonymiser::read_file(path)?,
        KeySource::Hex(text) => Pseudonymiser::from_hex(text, "KPR_PSEUDONYM_KEY")?,
        KeySource::DataDir => {
            let path = config.data_dir.join(KEY_FILE);
            // A new key beside an existing log would split every person in two; refuse
            // before anything is written, so the operator can restore the key.
            if !path.exists() && log_dir(&config.data_dir).exists() {
                bail!(
                    "{} holds a log but no {KEY_FILE}; restore the key it was written with (or give --pseudonym-key-file); refusing to start, nothing written",
                    config.data_dir.display()
                );
            }
            let (key, created) = Pseudonymiser::load_or_create(&path)?;
            if created {
                tracing::info!(path = %path.display(), "created a new pseudonymisation key (mode 0600); back it up");
            }
            key
        }
    };
    let fingerprint = kpr_ingest::pseudonym::hex(&key.pseudonym("kpr key fingerprint v1"));
    let path = config.data_dir.join(KEY_FINGERPRINT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(stored) if stored.trim() == fingerprint => {}
        Ok(_) => bail!(
            "the pseudonymisation key differs from the one this data directory was written with ({}); refusing to start",
            path.display()
        ),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound && !log_dir(&config.data_dir).exists() =>
        {
            std::fs::write(&path, format!("{fingerprint}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?
        }
        // A log without a fingerprint: we cannot tell whether this key wrote it, and a
        // wrong key would split every person in two.
        Err(e) => bail!(
            "{} is unreadable ({e}) but the data directory already holds a log; restore the fingerprint with the log's key, refusing to start",
            path.display()
        ),
    }
    Ok(key)
}

/// Creates `dir` (and its parents) readable by its owner only, and makes an existing
/// one private: the data directory holds health events, pseudonymised or not. Files
/// created inside are private through the process's umask (set in `main`).
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
        tracing::warn!(dir = %dir.display(), old_mode = format!("{mode:03o}"), "the data directory was readable by others; made it 0700");
    }
    Ok(())
}

/// The sockets `kpr serve` listens on.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC (ingest, health, reflection).
    pub grpc: TcpListener,
    /// Public statistics HTTP (disclosure-controlled).
    pub stats: Option<TcpListener>,
    /// Operator HTTP (exact numbers on request); loopback by default.
    pub admin: Option<TcpListener>,
}

/// Uses the population imported into the data directory (`kpr refdata import`), if any.
fn with_population(stats: Statistics, data_dir: &Path) -> anyhow::Result<Statistics> {
    Ok(match crate::refdata::load(data_dir)? {
        Some(population) => {
            tracing::info!(years = ?population.years().collect::<Vec<_>>(), "using the imported population");
            stats.with_population(population)
        }
        None => stats,
    })
}

/// Server reflection of kpr's and health's protos, as `v1` and as `v1alpha`: grpcurl
/// 1.8 and Python's grpcio-reflection speak only `v1alpha`.
#[allow(clippy::type_complexity)]
pub fn reflection() -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(kpr_wire::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

/// Runs the register until `shutdown` resolves, then stops taking writes, lets the
/// requests in flight finish, flushes the log and returns.
pub async fn run(
    config: ServeConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Listeners {
        grpc: listener,
        stats: stats_listener,
        admin: admin_listener,
    } = listeners;
    let key = load_key(&config)?;
    crate::metrics::install();
    let gate = kpr_net::Gate::new(kpr_net::Limits::for_this_process());
    let mut addresses = vec![listener.local_addr()?];
    for l in [&stats_listener, &admin_listener].into_iter().flatten() {
        addresses.push(l.local_addr()?);
    }
    let trust = crate::trust::open(&config.trust, &config.data_dir, &addresses, gate.limits())?;
    tracing::info!(
        connections_max = gate.limits().connections_max,
        "connection limit (from the file limit)"
    );
    let options = SledOptions {
        partition_count: config.partitions,
        queue_capacity_batches: config.queue_capacity_batches,
        sync_data: config.sync_data,
        ..SledOptions::standard(config.partitions)
    };
    let log = Arc::new(SledLog::open(&log_dir(&config.data_dir), &options)?);
    let ingest_config =
        IngestConfig::single_node(config.batch_events_max, config.allow_synthetic_ids);
    let (ingestor, stats) = Ingestor::open(Arc::clone(&log), key, ingest_config).await?;
    tracing::info!(
        records = stats.records,
        seconds = stats.seconds,
        partitions = log.partition_count(),
        "write-side state rebuilt from the log"
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<IngestServiceServer<IngestGrpc<SledLog>>>()
        .await;
    health
        .set_serving::<kpr_wire::pb::statistics_service_server::StatisticsServiceServer<
            kpr_statistics::grpc::StatisticsGrpc,
        >>()
        .await;

    let (reflection, reflection_v1alpha) = reflection()?;
    let ingest = IngestGrpc::new(
        Arc::clone(&ingestor),
        Arc::clone(&trust.auth),
        Some(Arc::clone(&trust.audit)),
    )
    .into_server(config.message_bytes_max);

    let address = listener.local_addr()?;
    tracing::info!(%address, data = %config.data_dir.display(), tls = trust.tls.is_some(), authentication = trust.auth.is_on(), "serving kpr.v1.IngestService, grpc.health.v1 and reflection (v1, v1alpha)");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);

    // The read side in the same process: catch up with the log, then tail it.
    let (releases, projection) =
        kpr_statistics::store::open_stores(&config.data_dir.join("stats"))?;
    let restored = projection.load()?;
    for (partition, next) in restored.position() {
        let end = log.end_offset(partition).await?;
        anyhow::ensure!(
            next <= end,
            "the projection store is ahead of the log (partition {partition}: {next} > {end}); move {} away to rebuild it",
            config.data_dir.join("stats").display()
        );
    }
    tracing::info!(
        events = restored.event_count(),
        "read model restored from the projection store"
    );
    let projection = Arc::new(projection);
    let model = Arc::new(RwLock::new(restored));
    let caught_up =
        kpr_statistics::projector::catch_up(&*log, &model, Some(&projection), |_| {}).await?;
    let reflected = model
        .read()
        .map(|m| kpr_eventlog::position_text(&m.reflected()))
        .unwrap_or_default();
    tracing::info!(records = caught_up, position = %reflected, "read model caught up with the log");
    let stats = Arc::new(
        with_population(Statistics::new(Arc::clone(&model)), &config.data_dir)?
            .with_prefix(Arc::new(kpr_statistics::api::LogPrefix(Arc::clone(&log))))
            .with_releases(releases),
    );
    // Health tells the truth: once an append has failed (disk full, an I/O error) the
    // ingestor refuses writes until a restart, and health says NOT_SERVING within a
    // quarter of a second (gRPC health and HTTP readiness), so a load balancer stops sending writes here.
    let watcher = {
        let ingestor = Arc::clone(&ingestor);
        let health = health.clone();
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(FAILURE_POLL);
            loop {
                ticks.tick().await;
                if let Some(reason) = ingestor.failure() {
                    tracing::error!(
                        reason,
                        "the log cannot take writes: health NOT_SERVING until a restart"
                    );
                    health
                        .set_not_serving::<IngestServiceServer<IngestGrpc<SledLog>>>()
                        .await;
                    health
                        .set_service_status("", tonic_health::ServingStatus::NotServing)
                        .await;
                    stats.set_not_ready(Some(format!("the log cannot take writes ({reason})")));
                    return;
                }
            }
        })
    };
    let model_watch = tokio::spawn(crate::metrics::watch_model(
        Arc::clone(&log),
        Arc::clone(&model),
    ));
    let projector = tokio::spawn(kpr_statistics::projector::run(
        Arc::clone(&log),
        Arc::clone(&model),
        Some(Arc::clone(&projection)),
        stop_rx.clone(),
    ));
    let mut http_servers = Vec::new();
    for (listener, surface) in [
        (stats_listener, Surface::Public),
        (admin_listener, Surface::Admin),
    ] {
        if let Some(listener) = listener {
            tracing::info!(address = %listener.local_addr()?, ?surface, "serving statistics over HTTP");
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            http_servers.push(tokio::spawn(kpr_statistics::http::serve(
                listener,
                Arc::clone(&gate),
                Arc::clone(&stats),
                surface,
                trust.access(),
                trust.http_tls(),
                stopped,
            )));
        }
    }
    let stopping = {
        let ingestor = Arc::clone(&ingestor);
        let stats_stopping = Arc::clone(&stats);
        async move {
            shutdown.await;
            tracing::info!("shutting down: no new writes, finishing requests in flight");
            ingestor.stop_accepting();
            stats_stopping.set_not_ready(Some("shutting down".into()));
            health
                .set_not_serving::<IngestServiceServer<IngestGrpc<SledLog>>>()
                .await;
            let _ = stop_tx.send(true);
        }
    };
    let statistics_grpc =
        kpr_statistics::grpc::StatisticsGrpc::new(Arc::clone(&stats), trust.access()).into_server();
    let server = kpr_net::grpc_server(gate.limits(), trust.tls.as_ref())?
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(statistics_grpc)
        .serve_with_incoming_shutdown(gate.incoming(listener), stopping);
    // Connections that stay open (an idle stream) must not hold the shutdown forever:
    // after the grace period the server stops waiting. Appends already enqueued are
    // made durable by `log.close` either way.
    let grace_expired = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = server => served?,
        () = grace_expired => tracing::warn!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "connections still open after the grace period; stopping anyway"),
    }
    for server in http_servers {
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "statistics HTTP server stopped with an error")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "statistics HTTP task failed"),
            Err(_) => tracing::warn!("statistics HTTP server did not stop within the grace period"),
        }
    }
    match projector.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "projector stopped with an error"),
        Err(e) => tracing::error!(error = %e, "projector task failed"),
    }
    watcher.abort();
    model_watch.abort();
    log.close().await?;
    if let Err(e) = trust.audit.close().await {
        tracing::error!(error = %e, "the audit trail did not close cleanly");
    }
    tracing::info!("log flushed; stopped");
    Ok(())
}
