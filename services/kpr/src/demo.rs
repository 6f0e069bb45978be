//! `kpr demo`: generates a deterministic synthetic population (kpr-synth) and pushes
//! it through the real gRPC API of a running register, with a progress bar.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kpr_wire::pb;
use kpr_wire::pb::ingest_service_client::IngestServiceClient;
use tonic::transport::Channel;

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

/// Connects to `endpoint`, retrying while the server starts (up to `wait`).
pub async fn connect(
    endpoint: &str,
    wait: Duration,
) -> anyhow::Result<IngestServiceClient<Channel>> {
    let deadline = Instant::now() + wait;
    loop {
        match IngestServiceClient::connect(endpoint.to_string()).await {
            Ok(client) => {
                return Ok(client
                    .max_decoding_message_size(64 * 1024 * 1024)
                    .max_encoding_message_size(64 * 1024 * 1024));
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("cannot reach the register at {endpoint}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Pushes the demo population to the register at `endpoint` over one AppendStream.
pub async fn run(
    endpoint: &str,
    config: &kpr_synth::DemoConfig,
    progress: bool,
) -> anyhow::Result<DemoSummary> {
    let batches = kpr_synth::generate(config);
    let total_events: u64 = batches.iter().map(|b| b.events.len() as u64).sum();
    push(endpoint, batches.into_iter(), Some(total_events), progress).await
}

/// Pushes the national data set (kpr-synth `national`) to the register at `endpoint`
/// over one AppendStream, generating it while it is sent.
pub async fn run_national(
    endpoint: &str,
    config: &kpr_synth::NationalConfig,
    progress: bool,
) -> anyhow::Result<DemoSummary> {
    push(endpoint, kpr_synth::national(config), None, progress).await
}

/// Batches generated ahead of the stream.
const AHEAD_BATCHES_MAX: usize = 32;

/// Sends `batches` over one AppendStream; a thread generates them while earlier ones
/// are sent. `total_events`, when known, sizes the progress bar.
async fn push(
    endpoint: &str,
    batches: impl Iterator<Item = kpr_synth::Batch> + Send + 'static,
    total_events: Option<u64>,
    progress: bool,
) -> anyhow::Result<DemoSummary> {
    let mut client = connect(endpoint, Duration::from_secs(30)).await?;
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
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AppendRequest>(AHEAD_BATCHES_MAX);
    let generator = std::thread::Builder::new()
        .name("kpr-demo-generate".into())
        .spawn(move || {
            for batch in batches {
                let request = pb::AppendRequest {
                    events: batch.events,
                };
                if tx.blocking_send(request).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the generator thread")?;
    let mut answers = client
        .append_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .context("append stream refused")?
        .into_inner();
    let mut summary = DemoSummary::default();
    while let Some(answer) = answers.message().await.context("append stream failed")? {
        summary.batches += 1;
        match answer.result {
            Some(pb::append_stream_response::Result::Appended(ok)) => {
                let duplicates = ok.acks.iter().filter(|a| a.duplicate).count() as u64;
                summary.duplicates += duplicates;
                summary.stored += ok.acks.len() as u64 - duplicates;
                bar.inc(ok.acks.len() as u64);
            }
            Some(pb::append_stream_response::Result::Rejected(r)) => {
                summary.rejected_batches += 1;
                bar.println(format!(
                    "batch {} refused: {}",
                    answer.batch_index, r.message
                ));
            }
            None => bail!("an answer without a result"),
        }
    }
    bar.finish_and_clear();
    drop(answers);
    let _ = tokio::task::spawn_blocking(move || generator.join()).await;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
