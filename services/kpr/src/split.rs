//! The split deployment on Apache Kafka: `kpr ingest`, `kpr project` and
//! `kpr statistics` as separate processes (ARCHITECTURE.md, "Split deployment").
//!
//! - Ingest nodes own disjoint sets of partitions (static configuration); a request for
//!   a municipality in another node's partition is refused with FAILED_PRECONDITION
//!   naming the owner.
//! - A projector node folds the event topic into its local store (records and offsets
//!   in one atomic write) and publishes one snapshot per changed municipality to the
//!   compacted topic `<topic>.projection`.
//! - Statistics nodes read that topic (latest snapshot per municipality) into their
//!   read model and serve the statistics API over HTTP and gRPC.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use kpr_domain::municipality::MunicipalityCode;
use kpr_eventlog::{EventLog, ReadOptions};
use kpr_eventlog_kafka::keyed::KeyedTopic;
use kpr_eventlog_kafka::{KafkaLog, KafkaOptions};
use kpr_ingest::{IngestConfig, IngestGrpc, Ingestor};
use kpr_projection::model::ReadModel;
use kpr_statistics::Statistics;
use kpr_statistics::http::Surface;
use kpr_statistics::published::MunicipalitySnapshot;
use kpr_wire::pb::ingest_service_server::IngestServiceServer;
use tokio::net::TcpListener;

use crate::serve::{KeySource, ServeConfig, load_key};

/// How often a projector publishes the municipalities that changed.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(200);

/// Where the event topic is.
#[derive(Clone, Debug)]
pub struct KafkaTopic {
    /// Brokers.
    pub brokers: String,
    /// Event topic.
    pub topic: String,
    /// Partitions when the topic is created.
    pub partitions: u32,
    /// Replication factor when topics are created.
    pub replication: i32,
    /// librdkafka settings for every client (TLS and SASL to the brokers).
    pub client_config: Vec<(String, String)>,
}

impl KafkaTopic {
    fn projection_topic(&self) -> String {
        format!("{}.projection", self.topic)
    }

    async fn open_log(&self) -> anyhow::Result<KafkaLog> {
        let mut options = KafkaOptions::new(&self.brokers, &self.topic, self.partitions);
        options.replication = self.replication;
        options.client_config = self.client_config.clone();
        Ok(KafkaLog::open(options).await?)
    }
}

/// Parses `--kafka-config key=value` settings.
pub fn parse_kafka_config(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| {
            let (key, value) = item
                .split_once('=')
                .with_context(|| format!("--kafka-config {item:?}: give key=value"))?;
            anyhow::ensure!(!key.trim().is_empty(), "--kafka-config {item:?}: empty key");
            Ok((key.trim().to_string(), value.to_string()))
        })
        .collect()
}

/// Parses partition sets such as `0-7,12`.
pub fn parse_partitions(text: &str) -> anyhow::Result<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse()?, b.parse()?);
                anyhow::ensure!(a <= b, "bad partition range {part}");
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse()?);
            }
        }
    }
    Ok(out)
}

/// Parses owners such as `0-7=http://ingest-0:50051;8-15=http://ingest-1:50051`.
pub fn parse_owners(text: &str) -> anyhow::Result<BTreeMap<u32, String>> {
    let mut out = BTreeMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (partitions, owner) = entry
            .split_once('=')
            .context("owners are PARTITIONS=ADDRESS;…")?;
        for p in parse_partitions(partitions)? {
            anyhow::ensure!(
                out.insert(p, owner.to_string()).is_none(),
                "partition {p} has two owners"
            );
        }
    }
    Ok(out)
}

/// `kpr ingest`: an ingest node over the Kafka log.
pub async fn run_ingest(
    kafka: KafkaTopic,
    data_dir: PathBuf,
    key: KeySource,
    ingest: IngestConfig,
    listener: TcpListener,
    trust: crate::trust::TrustConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let serve_config = ServeConfig {
        data_dir,
        partitions: kafka.partitions,
        key,
        allow_synthetic_ids: ingest.allow_synthetic_ids,
        batch_events_max: ingest.batch_events_max,
        message_bytes_max: 16 * 1024 * 1024,
        queue_capacity_batches: 0,
        sync_data: true,
        trust,
    };
    let key = load_key(&serve_config)?;
    crate::metrics::install();
    let gate = kpr_net::Gate::new(kpr_net::Limits::for_this_process());
    let trust = crate::trust::open(
        &serve_config.trust,
        &serve_config.data_dir,
        &[listener.local_addr()?],
        gate.limits(),
    )?;
    let log = Arc::new(kafka.open_log().await?);
    let (ingestor, stats) = Ingestor::open(Arc::clone(&log), key, ingest).await?;
    tracing::info!(
        records = stats.records,
        seconds = stats.seconds,
        "ingest node: write-side state rebuilt from its partitions"
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<IngestServiceServer<IngestGrpc<KafkaLog>>>()
        .await;
    let (reflection, reflection_v1alpha) = crate::serve::reflection()?;
    let stopping = {
        let ingestor = Arc::clone(&ingestor);
        async move {
            shutdown.await;
            ingestor.stop_accepting();
        }
    };
    let ingest = IngestGrpc::new(
        ingestor,
        Arc::clone(&trust.auth),
        Some(Arc::clone(&trust.audit)),
    )
    .into_server(serve_config.message_bytes_max);
    kpr_net::grpc_server(gate.limits(), trust.tls.as_ref())?
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .serve_with_incoming_shutdown(gate.incoming(listener), stopping)
        .await?;
    log.close().await?;
    let _ = trust.audit.close().await;
    Ok(())
}

/// `kpr project`: a projector node. With `owned`, it folds only those partitions, so
/// projector nodes can share a topic (static assignment, like ingest ownership); each
/// publishes the municipalities of its partitions, and statistics nodes combine them.
pub async fn run_project(
    kafka: KafkaTopic,
    data_dir: PathBuf,
    owned: Option<BTreeSet<u32>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let log = kafka.open_log().await?;
    let output = KeyedTopic::open(
        &kafka.brokers,
        &kafka.projection_topic(),
        log.partition_count(),
        kafka.replication,
        &kafka.client_config,
    )
    .await?;
    let (_releases, store) = kpr_statistics::store::open_stores(&data_dir.join("projector"))?;
    // Restore: the model and each municipality's records from the store.
    let mut model = ReadModel::new();
    let mut by_municipality: BTreeMap<MunicipalityCode, Vec<(u32, u64, bytes::Bytes)>> =
        BTreeMap::new();
    for (partition, offset, bytes) in store.records()? {
        let (event, _) =
            kpr_wire::decode_stored(&bytes).context("a stored record does not decode")?;
        model.apply(partition, offset, &event);
        by_municipality
            .entry(event.envelope.municipality)
            .or_default()
            .push((partition, offset, bytes));
    }
    // A store ahead of the topic means the topic was replaced or restored: warn (the
    // high watermark is only a hint on some Kafka-protocol brokers, so this is not a
    // hard stop here; deploy/OPERATIONS.md says to rebuild projector stores after a restore).
    for (partition, next) in model.position() {
        let end = log.end_offset(partition).await?;
        if next > end {
            tracing::warn!(
                partition,
                next,
                end,
                "the projector store seems ahead of the topic; rebuild it if the topic was restored"
            );
        }
    }
    tracing::info!(
        events = model.event_count(),
        "projector node: restored from its store"
    );
    // Publish everything once after a (re)start: a snapshot replaces, so this is safe.
    let mut changed: BTreeSet<MunicipalityCode> = by_municipality.keys().copied().collect();
    let mut last_publish = Instant::now() - PUBLISH_INTERVAL;
    tokio::pin!(shutdown);
    loop {
        let mut applied = 0u64;
        for partition in
            (0..log.partition_count()).filter(|p| owned.as_ref().is_none_or(|o| o.contains(p)))
        {
            let from = model
                .position()
                .iter()
                .find(|(p, _)| *p == partition)
                .map_or(0, |(_, next)| *next);
            let records = log
                .read(
                    partition,
                    from,
                    ReadOptions {
                        records_max: 4096,
                        wait_ms_max: 0,
                    },
                )
                .await?;
            if records.is_empty() {
                continue;
            }
            // Records and offsets first, in one atomic write; then the fold.
            store.save(partition, &records)?;
            for record in records {
                let (event, _) =
                    kpr_wire::decode_stored(&record.payload).context("a record does not decode")?;
                if model.apply(record.position.partition, record.position.offset, &event) {
                    applied += 1;
                }
                let code = event.envelope.municipality;
                by_municipality.entry(code).or_default().push((
                    record.position.partition,
                    record.position.offset,
                    record.payload,
                ));
                changed.insert(code);
            }
        }
        if !changed.is_empty() && (applied == 0 || last_publish.elapsed() >= PUBLISH_INTERVAL) {
            let position = model.position();
            let counts = model.reflected();
            for code in std::mem::take(&mut changed) {
                let records = by_municipality.get(&code).cloned().unwrap_or_default();
                let snapshot = MunicipalitySnapshot {
                    position: position.clone(),
                    counts: counts.clone(),
                    records,
                };
                output
                    .publish(code.as_str().as_bytes(), &snapshot.encode())
                    .await?;
            }
            last_publish = Instant::now();
            tracing::info!(events = model.event_count(), position = %kpr_eventlog::position_text(&model.reflected()), "projector node: published changed municipalities");
        }
        if applied == 0 {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }
}

/// `kpr statistics`: a statistics node serving what projector nodes publish. Its data
/// directory holds its audit trail (and the local issuer, if it trusts its own).
pub async fn run_statistics(
    kafka: KafkaTopic,
    data_dir: PathBuf,
    trust: crate::trust::TrustConfig,
    grpc: Option<TcpListener>,
    stats_listener: Option<TcpListener>,
    admin_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let gate = kpr_net::Gate::new(kpr_net::Limits::for_this_process());
    let mut addresses = Vec::new();
    for l in [&grpc, &stats_listener, &admin_listener]
        .into_iter()
        .flatten()
    {
        addresses.push(l.local_addr()?);
    }
    crate::serve::private_dir(&data_dir)?;
    crate::metrics::install();
    let trust = crate::trust::open(&trust, &data_dir, &addresses, gate.limits())?;
    let input = KeyedTopic::open(
        &kafka.brokers,
        &kafka.projection_topic(),
        kafka.partitions,
        kafka.replication,
        &kafka.client_config,
    )
    .await?;
    let model = Arc::new(RwLock::new(ReadModel::new()));
    let stats = Arc::new(Statistics::new(Arc::clone(&model)));
    // Not ready until it has read what the projector nodes had published when it
    // started: a node still filling up would answer with a fraction of the data.
    let ends = input.ends()?;
    stats.set_not_ready(Some(
        "filling up from the projection topic (not yet caught up)".into(),
    ));
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<kpr_wire::pb::statistics_service_server::StatisticsServiceServer<
            kpr_statistics::grpc::StatisticsGrpc,
        >>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let mut caught_up = false;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for (listener, surface) in [
        (stats_listener, Surface::Public),
        (admin_listener, Surface::Admin),
    ] {
        if let Some(listener) = listener {
            let mut stop = stop_rx.clone();
            servers.push(tokio::spawn(kpr_statistics::http::serve(
                listener,
                Arc::clone(&gate),
                Arc::clone(&stats),
                surface,
                trust.access(),
                trust.http_tls(),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )));
        }
    }
    if let Some(listener) = grpc {
        let mut stop = stop_rx.clone();
        let service = kpr_statistics::grpc::StatisticsGrpc::new(Arc::clone(&stats), trust.access())
            .into_server();
        tokio::spawn(
            kpr_net::grpc_server(gate.limits(), trust.tls.as_ref())?
                .add_service(health_service)
                .add_service(service)
                .serve_with_incoming_shutdown(gate.incoming(listener), async move {
                    let _ = stop.wait_for(|s| *s).await;
                }),
        );
    }
    tokio::pin!(shutdown);
    loop {
        let done = caught_up;
        tokio::select! {
            () = &mut shutdown => break,
            polled = async {
                // Checked before polling, so that everything counted as read has
                // been applied to the model.
                let read_all = if done { Ok(true) } else { input.has_read(&ends) };
                (read_all, input.poll(Duration::from_millis(100)))
            } => {
                let (read_all, polled) = polled;
                if !caught_up && read_all? {
                    caught_up = true;
                    stats.set_not_ready(None);
                    health
                        .set_serving::<kpr_wire::pb::statistics_service_server::StatisticsServiceServer<
                            kpr_statistics::grpc::StatisticsGrpc,
                        >>()
                        .await;
                    health.set_service_status("", tonic_health::ServingStatus::Serving).await;
                    tracing::info!(events = model.read().map(|m| m.event_count()).unwrap_or(0), "statistics node caught up with the projection topic: ready");
                }
                let Some((key, value)) = polled? else { continue };
                let code = std::str::from_utf8(&key).ok().and_then(|c| kpr_domain::Registry::get().municipality(c)).map(|m| m.code);
                let Some(code) = code else {
                    tracing::warn!("a projection snapshot with an unknown key; skipped");
                    continue;
                };
                let snapshot = MunicipalitySnapshot::decode(&value)?;
                let mut events = Vec::with_capacity(snapshot.records.len());
                for (_, _, bytes) in &snapshot.records {
                    events.push(kpr_wire::decode_stored(bytes).context("a published record does not decode")?.0);
                }
                let mut m = model.write().map_err(|_| anyhow::anyhow!("read model lock poisoned"))?;
                m.replace_municipality(code, &events);
                m.advance_to(&snapshot.position);
                m.advance_counts_to(&snapshot.counts);
                tracing::debug!(municipality = %code, events = events.len(), total = m.event_count(), "statistics node: snapshot applied");
            }
        }
    }
    stats.set_not_ready(Some("shutting down".into()));
    let _ = stop_tx.send(true);
    for server in servers {
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    }
    let _ = trust.audit.close().await;
    Ok(())
}
