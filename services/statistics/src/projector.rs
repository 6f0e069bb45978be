//! The projector: tails every partition of the log and folds what it reads into the
//! read model. It runs in the `kpr serve` process beside ingest.
//!
//! The fold is pure (kpr-projection); this module only reads, decodes and applies, in
//! per-partition order. A record that does not decode stops the projector with an
//! error rather than being skipped.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use kpr_eventlog::{EventLog, ReadOptions};
use kpr_projection::model::ReadModel;
use tokio::sync::watch;

use crate::error::StatsError;
use crate::store::ProjectionStore;

/// Records read per partition and round.
const READ_RECORDS_MAX: u32 = 4096;
/// Pause when every partition is caught up.
const IDLE_WAIT: Duration = Duration::from_millis(20);

/// Reads everything the log holds now into `model` (catch-up), returning how many
/// records were applied. `progress` is called after each chunk with the total so far.
pub async fn catch_up<L: EventLog>(
    log: &L,
    model: &RwLock<ReadModel>,
    store: Option<&ProjectionStore>,
    mut progress: impl FnMut(u64),
) -> Result<u64, StatsError> {
    let mut applied = 0;
    loop {
        let round = poll_once(log, model, store).await?;
        applied += round;
        progress(applied);
        if round == 0 {
            return Ok(applied);
        }
    }
}

/// One pass over every partition from the model's position; returns records applied.
async fn poll_once<L: EventLog>(
    log: &L,
    model: &RwLock<ReadModel>,
    store: Option<&ProjectionStore>,
) -> Result<u64, StatsError> {
    let mut applied = 0;
    for partition in 0..log.partition_count() {
        let from = {
            let m = model
                .read()
                .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?;
            m.position()
                .iter()
                .find(|(p, _)| *p == partition)
                .map_or(0, |(_, next)| *next)
        };
        let records = log
            .read(
                partition,
                from,
                ReadOptions {
                    records_max: READ_RECORDS_MAX,
                    wait_ms_max: 0,
                },
            )
            .await
            .map_err(|e| StatsError::Unavailable(e.to_string()))?;
        if records.is_empty() {
            continue;
        }
        let mut decoded = Vec::with_capacity(records.len());
        for record in &records {
            let (event, _) = kpr_wire::decode_stored(&record.payload).map_err(|e| {
                StatsError::Internal(format!(
                    "record {}/{} does not decode: {e}",
                    record.position.partition, record.position.offset
                ))
            })?;
            decoded.push((record.position, event));
        }
        // Records and checkpoint first, atomically; the in-memory fold after. A crash
        // in between restarts from the store, which already holds the chunk.
        if let Some(store) = store {
            store.save(partition, &records)?;
        }
        let mut m = model
            .write()
            .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?;
        // Count what was read, not what was new: a chunk of duplicates is progress too,
        // and "caught up" means nothing was read.
        applied += decoded.len() as u64;
        for (position, event) in &decoded {
            m.apply(position.partition, position.offset, event);
        }
    }
    Ok(applied)
}

/// Tails the log until `stop` turns true.
pub async fn run<L: EventLog>(
    log: Arc<L>,
    model: Arc<RwLock<ReadModel>>,
    store: Option<Arc<ProjectionStore>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), StatsError> {
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        // A failing round (the log unreachable, a store write failing) is retried with
        // a pause; the model stays at its last consistent position meanwhile.
        let applied = match poll_once(&*log, &model, store.as_deref()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "projector round failed; retrying");
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        if applied == 0 {
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(IDLE_WAIT) => {}
            }
        }
    }
}
