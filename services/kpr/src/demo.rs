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
    let mut client = connect(endpoint, Duration::from_secs(30)).await?;
    let bar = if progress {
        ProgressBar::new(total_events)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} demo {bar:40} {pos}/{len} events {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let requests: Vec<pb::AppendRequest> = batches
        .into_iter()
        .map(|b| pb::AppendRequest { events: b.events })
        .collect();
    let sizes: Vec<u64> = requests.iter().map(|r| r.events.len() as u64).collect();
    let mut answers = client
        .append_stream(tokio_stream::iter(requests))
        .await
        .context("append stream refused")?
        .into_inner();
    let mut summary = DemoSummary::default();
    while let Some(answer) = answers.message().await.context("append stream failed")? {
        summary.batches += 1;
        let size = sizes.get(answer.batch_index as usize).copied().unwrap_or(0);
        match answer.result {
            Some(pb::append_stream_response::Result::Appended(ok)) => {
                let duplicates = ok.acks.iter().filter(|a| a.duplicate).count() as u64;
                summary.duplicates += duplicates;
                summary.stored += ok.acks.len() as u64 - duplicates;
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
        bar.inc(size);
    }
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
