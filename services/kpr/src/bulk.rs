//! Bulk loading: synthetic batches written straight into a log, without gRPC. Each
//! event goes through ingest's own prepare step (`kpr_ingest::prepare`: decoded,
//! validated with synthetic ids allowed, pseudonymised, encoded with its digest), and each batch is appended whole to its municipality's
//! partition. Lifecycle rules are not checked here: the generators' own tests run
//! every event through them.
//!
//! Three stages overlap so that both cores work: a thread runs the generator, a
//! second thread prepares batches (validate, pseudonymise, encode), and the caller's
//! task appends them, keeping up to [`TICKETS_IN_FLIGHT_MAX`] appends unacknowledged.

use std::collections::VecDeque;

use anyhow::Context;
use bytes::Bytes;
use kpr_domain::date::Date;
use kpr_domain::validate::Rules;
use kpr_eventlog::{AppendTicket, EventLog, LogError, partition_for};
use kpr_ingest::Pseudonymiser;
use kpr_synth::Batch;

/// Appends enqueued and not yet awaited.
pub const TICKETS_IN_FLIGHT_MAX: usize = 64;

/// Batches waiting between two stages.
const STAGE_QUEUE_BATCHES_MAX: usize = 32;

/// A batch ready to append.
struct Prepared {
    partition: u32,
    payloads: Vec<Bytes>,
}

/// Writes every batch of `batches` into `log` (validated, pseudonymised with `key`
/// and encoded as ingest does, one append per batch to the partition of its
/// municipality) and waits until all are durable. `progress` is called with the
/// number of events written so far after each append. Returns the number of events
/// written. Stops at the first event the register would refuse.
pub async fn write_log<L: EventLog>(
    log: &L,
    batches: impl Iterator<Item = Batch> + Send + 'static,
    today: Date,
    key: &Pseudonymiser,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<u64> {
    let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<Batch>(STAGE_QUEUE_BATCHES_MAX);
    let (ready_tx, mut ready_rx) =
        tokio::sync::mpsc::channel::<anyhow::Result<Prepared>>(STAGE_QUEUE_BATCHES_MAX);
    let generator = std::thread::Builder::new()
        .name("kpr-bulk-generate".into())
        .spawn(move || {
            for batch in batches {
                if raw_tx.send(batch).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the generator thread")?;
    let partition_count = log.partition_count();
    let key = key.clone();
    let preparer = std::thread::Builder::new()
        .name("kpr-bulk-prepare".into())
        .spawn(move || {
            let rules = Rules {
                today,
                allow_synthetic_ids: true,
            };
            for batch in raw_rx {
                let prepared = prepare(&batch, &rules, &key, partition_count);
                let failed = prepared.is_err();
                if ready_tx.blocking_send(prepared).is_err() || failed {
                    break;
                }
            }
        })
        .context("cannot start the preparing thread")?;

    let mut in_flight: VecDeque<(AppendTicket, u64)> = VecDeque::new();
    let mut written = 0u64;
    let mut outcome: anyhow::Result<()> = Ok(());
    while let Some(prepared) = ready_rx.recv().await {
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        if prepared.payloads.is_empty() {
            continue;
        }
        let events = prepared.payloads.len() as u64;
        if in_flight.len() >= TICKETS_IN_FLIGHT_MAX
            && let Err(e) = settle_oldest(&mut in_flight, &mut written, &mut progress).await
        {
            outcome = Err(e);
            break;
        }
        // A full queue: wait for the oldest append, then try once more per ticket
        // still in flight (bounded by their number).
        let mut payloads = prepared.payloads;
        let ticket = loop {
            match log.append(prepared.partition, payloads.clone()) {
                Ok(ticket) => break Ok(ticket),
                Err(LogError::QueueFull { .. }) if !in_flight.is_empty() => {
                    if let Err(e) = settle_oldest(&mut in_flight, &mut written, &mut progress).await
                    {
                        break Err(e);
                    }
                }
                Err(e) => break Err(anyhow::Error::new(e).context("append refused")),
            }
        };
        payloads.clear();
        match ticket {
            Ok(ticket) => in_flight.push_back((ticket, events)),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    // Stop the stages (dropping the receiver ends them) before waiting for them.
    drop(ready_rx);
    while !in_flight.is_empty() {
        let settled = settle_oldest(&mut in_flight, &mut written, &mut progress).await;
        if outcome.is_ok() {
            outcome = settled;
        }
    }
    let _ = tokio::task::spawn_blocking(move || {
        let _ = preparer.join();
        let _ = generator.join();
    })
    .await;
    outcome.map(|()| written)
}

/// Awaits the oldest append in flight.
async fn settle_oldest(
    in_flight: &mut VecDeque<(AppendTicket, u64)>,
    written: &mut u64,
    progress: &mut impl FnMut(u64),
) -> anyhow::Result<()> {
    let Some((ticket, events)) = in_flight.pop_front() else {
        return Ok(());
    };
    ticket.await.context("append failed")?;
    *written += events;
    progress(*written);
    Ok(())
}

/// Prepares one batch with ingest's own step (`kpr_ingest::prepare`): the same
/// validation, pseudonyms, digests and bytes as if it had come through gRPC.
fn prepare(
    batch: &Batch,
    rules: &Rules,
    key: &Pseudonymiser,
    partition_count: u32,
) -> anyhow::Result<Prepared> {
    let prepared = kpr_ingest::prepare::prepare(key, &batch.events, rules, 0)
        .map_err(|e| anyhow::anyhow!("a batch was refused: {e}"))?;
    let partition = prepared
        .first()
        .map(|(event, _, _)| {
            partition_for(
                event.envelope.municipality.as_str().as_bytes(),
                partition_count,
            )
        })
        .unwrap_or(0);
    Ok(Prepared {
        partition,
        payloads: prepared.into_iter().map(|(_, _, bytes)| bytes).collect(),
    })
}
