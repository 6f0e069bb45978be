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
    let handle = tokio::runtime::Handle::current();
    let readers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(log.partition_count() as usize);
    if readers > 1 && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        // Reading and decoding run on one thread per core, folding on this one.
        applied = tokio::task::block_in_place(|| {
            parallel_pass(&handle, log, model, store, readers, &mut progress)
        })?;
    }
    loop {
        let round = poll_once(log, model, store).await?;
        applied += round;
        progress(applied);
        if round == 0 {
            if let Ok(mut m) = model.write() {
                m.shrink();
            }
            return Ok(applied);
        }
    }
}

/// A chunk read and decoded by a reader thread.
type Chunk = (
    u32,
    Vec<kpr_eventlog::Record>,
    Vec<(kpr_eventlog::Position, kpr_domain::event::StoredEvent)>,
);

/// One pass over every partition to its end as the pass began: `readers` threads read
/// and decode partitions (each partition by one thread, in order), this thread stores
/// and folds the chunks as they come. Returns records applied.
fn parallel_pass<L: EventLog>(
    handle: &tokio::runtime::Handle,
    log: &L,
    model: &RwLock<ReadModel>,
    store: Option<&ProjectionStore>,
    readers: usize,
    progress: &mut impl FnMut(u64),
) -> Result<u64, StatsError> {
    let starts: Vec<u64> = {
        let m = model
            .read()
            .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?;
        let position = m.position();
        (0..log.partition_count())
            .map(|p| {
                position
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map_or(0, |(_, next)| *next)
            })
            .collect()
    };
    let next_partition = std::sync::atomic::AtomicUsize::new(0);
    let (sender, receiver) =
        std::sync::mpsc::sync_channel::<Result<Chunk, StatsError>>(readers * 2);
    std::thread::scope(|scope| {
        for _ in 0..readers {
            let sender = sender.clone();
            let (starts, next_partition) = (&starts, &next_partition);
            scope.spawn(move || {
                loop {
                    let index = next_partition.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(start) = starts.get(index) else {
                        return;
                    };
                    let partition = index as u32;
                    let mut from = *start;
                    loop {
                        let chunk = handle
                            .block_on(log.read(
                                partition,
                                from,
                                ReadOptions {
                                    records_max: READ_RECORDS_MAX,
                                    wait_ms_max: 0,
                                },
                            ))
                            .map_err(|e| StatsError::Unavailable(e.to_string()))
                            .and_then(|records| {
                                let decoded = decode(&records)?;
                                Ok((partition, records, decoded))
                            });
                        let done = match &chunk {
                            Ok((_, records, _)) => match records.last() {
                                Some(last) => {
                                    from = last.position.offset + 1;
                                    false
                                }
                                None => true,
                            },
                            Err(_) => true,
                        };
                        if done && chunk.as_ref().is_ok() {
                            break;
                        }
                        if sender.send(chunk).is_err() || done {
                            return;
                        }
                    }
                }
            });
        }
        drop(sender);
        let mut applied = 0u64;
        for chunk in receiver {
            let (partition, records, decoded) = chunk?;
            applied += store_and_fold(model, store, partition, &records, &decoded)?;
            progress(applied);
        }
        Ok(applied)
    })
}

/// Stores a chunk of one partition with its checkpoint (atomically) and then folds it
/// into the model: a crash in between restarts from the store, which already holds
/// the chunk. Returns the records read — not only the new ones: a chunk of duplicates
/// is progress too, and "caught up" means nothing was read.
fn store_and_fold(
    model: &RwLock<ReadModel>,
    store: Option<&ProjectionStore>,
    partition: u32,
    records: &[kpr_eventlog::Record],
    decoded: &[(kpr_eventlog::Position, kpr_domain::event::StoredEvent)],
) -> Result<u64, StatsError> {
    if let Some(store) = store {
        store.save(partition, records)?;
    }
    let mut m = model
        .write()
        .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?;
    for (position, event) in decoded {
        m.apply(position.partition, position.offset, event);
    }
    Ok(decoded.len() as u64)
}

/// Decodes a chunk of records; a record that does not decode is an error.
fn decode(
    records: &[kpr_eventlog::Record],
) -> Result<Vec<(kpr_eventlog::Position, kpr_domain::event::StoredEvent)>, StatsError> {
    let mut decoded = Vec::with_capacity(records.len());
    for record in records {
        let (event, _) = kpr_wire::decode_stored(&record.payload).map_err(|e| {
            StatsError::Internal(format!(
                "record {}/{} does not decode: {e}",
                record.position.partition, record.position.offset
            ))
        })?;
        decoded.push((record.position, event));
    }
    Ok(decoded)
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
        let decoded = decode(&records)?;
        applied += store_and_fold(model, store, partition, &records, &decoded)?;
        // A chunk costs milliseconds of CPU and a sled read seldom waits, so without
        // this a round of 16 chunks would hold the runtime thread from other tasks
        // (ingest requests in `kpr serve`) until it ends.
        tokio::task::yield_now().await;
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
