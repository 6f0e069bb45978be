//! `kpr demo`: generates a deterministic synthetic population (kpr-synth) and pushes
//! it through the real gRPC API of a running register, with a progress bar: one
//! stream per municipality, each with that municipality's token.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kpr_wire::pb;
use kpr_wire::pb::ingest_service_client::IngestServiceClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::trust::ClientConfig;

/// What a demo run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct DemoSummary {
    /// Batches sent.
    pub batches: u64,
    /// Events newly stored.
    pub stored: u64,
    /// Events acknowledged as duplicates (already stored).
    pub duplicates: u64,
    /// Batches refused.
    pub rejected_batches: u64,
    /// Seconds taken.
    pub seconds: f64,
}

/// Connects to `endpoint` (plaintext `http://`, no token), retrying while the server
/// starts (up to `wait`).
pub async fn connect(
    endpoint: &str,
    wait: Duration,
) -> anyhow::Result<IngestServiceClient<Channel>> {
    connect_with(endpoint, &ClientConfig::default(), wait).await
}

/// Connects to `endpoint` with the TLS settings of `client`.
pub async fn connect_with(
    endpoint: &str,
    client: &ClientConfig,
    wait: Duration,
) -> anyhow::Result<IngestServiceClient<Channel>> {
    let channel = crate::trust::channel(endpoint, client, wait).await?;
    Ok(IngestServiceClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024))
}

/// `request` with `authorization: Bearer <token>` when there is a token.
pub fn authorized<T>(request: T, token: Option<&str>) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(request);
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .context("the token is not a valid header value")?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// Pushes the demo population to the register at `endpoint`.
pub async fn run(
    endpoint: &str,
    client: &ClientConfig,
    config: &kpr_synth::DemoConfig,
    progress: bool,
) -> anyhow::Result<DemoSummary> {
    let batches = kpr_synth::generate(config);
    let total_events: u64 = batches.iter().map(|b| b.events.len() as u64).sum();
    push(
        endpoint,
        client,
        batches.into_iter(),
        Some(total_events),
        progress,
    )
    .await
}

/// Pushes the national data set (kpr-synth `national`) to the register at `endpoint`,
/// generating it while it is sent.
pub async fn run_national(
    endpoint: &str,
    client: &ClientConfig,
    config: &kpr_synth::NationalConfig,
    progress: bool,
) -> anyhow::Result<DemoSummary> {
    push(
        endpoint,
        client,
        kpr_synth::national(config),
        None,
        progress,
    )
    .await
}

/// Batches generated ahead of the streams.
const AHEAD_BATCHES_MAX: usize = 32;
/// Streams per connection: below the server's concurrent-stream bound (256).
const STREAMS_PER_CONNECTION: usize = 128;

/// What the answers of the streams add up to.
#[derive(Default)]
struct Counts {
    batches: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
}

/// Sends `batches` over one AppendStream per municipality (a token is bound to one
/// municipality, and a stream carries one token); a thread generates them while
/// earlier ones are sent. `total_events`, when known, sizes the progress bar.
async fn push(
    endpoint: &str,
    client_config: &ClientConfig,
    batches: impl Iterator<Item = kpr_synth::Batch> + Send + 'static,
    total_events: Option<u64>,
    progress: bool,
) -> anyhow::Result<DemoSummary> {
    let tokens = crate::trust::Tokens::from_config(client_config)?;
    let first = connect_with(endpoint, client_config, Duration::from_secs(30)).await?;
    let mut connections = vec![first];
    let bar = match (progress, total_events) {
        (false, _) => ProgressBar::hidden(),
        (true, Some(total)) => ProgressBar::new(total),
        (true, None) => ProgressBar::new_spinner(),
    };
    let template = if total_events.is_some() {
        "{spinner} demo {bar:40} {pos}/{len} events {per_sec} eta {eta}"
    } else {
        "{spinner} demo {pos} events {per_sec} {elapsed}"
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<kpr_synth::Batch>(AHEAD_BATCHES_MAX);
    let generator = std::thread::Builder::new()
        .name("kpr-demo-generate".into())
        .spawn(move || {
            for batch in batches {
                if tx.blocking_send(batch).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the generator thread")?;
    let counts = Arc::new(Counts::default());
    let mut streams: HashMap<String, mpsc::Sender<pb::AppendRequest>> = HashMap::new();
    let mut readers = tokio::task::JoinSet::new();
    while let Some(batch) = rx.recv().await {
        if !streams.contains_key(&batch.municipality) {
            let index = streams.len();
            if index / STREAMS_PER_CONNECTION >= connections.len() {
                connections
                    .push(connect_with(endpoint, client_config, Duration::from_secs(30)).await?);
            }
            let mut client = connections[index / STREAMS_PER_CONNECTION].clone();
            let token = tokens.for_municipality(&batch.municipality)?;
            let (stream_tx, stream_rx) = mpsc::channel::<pb::AppendRequest>(AHEAD_BATCHES_MAX);
            let request = authorized(ReceiverStream::new(stream_rx), token.as_deref())?;
            let mut answers = client
                .append_stream(request)
                .await
                .with_context(|| format!("append stream for {} refused", batch.municipality))?
                .into_inner();
            let counts = Arc::clone(&counts);
            let bar = bar.clone();
            let municipality = batch.municipality.clone();
            readers.spawn(async move {
                while let Some(answer) = answers
                    .message()
                    .await
                    .with_context(|| format!("append stream for {municipality} failed"))?
                {
                    counts.batches.fetch_add(1, Ordering::Relaxed);
                    match answer.result {
                        Some(pb::append_stream_response::Result::Appended(ok)) => {
                            let duplicates = ok.acks.iter().filter(|a| a.duplicate).count() as u64;
                            counts.duplicates.fetch_add(duplicates, Ordering::Relaxed);
                            counts
                                .stored
                                .fetch_add(ok.acks.len() as u64 - duplicates, Ordering::Relaxed);
                            bar.inc(ok.acks.len() as u64);
                        }
                        Some(pb::append_stream_response::Result::Rejected(r)) => {
                            counts.rejected.fetch_add(1, Ordering::Relaxed);
                            let line = format!(
                                "{municipality}: batch {} refused: {}",
                                answer.batch_index, r.message
                            );
                            // A hidden bar (--quiet, or no terminal) prints nothing: the
                            // reason goes to stderr then, so scripts and logs see it.
                            if bar.is_hidden() {
                                eprintln!("{line}");
                            } else {
                                bar.println(line);
                            }
                        }
                        None => bail!("an answer without a result"),
                    }
                }
                Ok(())
            });
            streams.insert(batch.municipality.clone(), stream_tx);
        }
        let Some(stream) = streams.get(&batch.municipality) else {
            continue;
        };
        let request = pb::AppendRequest {
            events: batch.events,
        };
        if stream.send(request).await.is_err() {
            // The stream ended early; its reader reports why.
            break;
        }
    }
    drop(streams);
    let mut failure = None;
    while let Some(done) = readers.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(anyhow::anyhow!("a stream task failed: {e}"))),
        }
    }
    bar.finish_and_clear();
    drop(rx);
    let _ = tokio::task::spawn_blocking(move || generator.join()).await;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(DemoSummary {
        batches: counts.batches.load(Ordering::Relaxed),
        stored: counts.stored.load(Ordering::Relaxed),
        duplicates: counts.duplicates.load(Ordering::Relaxed),
        rejected_batches: counts.rejected.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    })
}
