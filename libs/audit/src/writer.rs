//! The writer task: callers queue records, the task writes whatever is queued as one
//! batch (one write and one sync per segment) and then answers all of them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::store::Store;
use crate::{AuditError, AuditOptions, Record};

/// Records waiting for the writer before `record` itself waits for room.
const QUEUE: usize = 65_536;
/// The most records in one batch, so one caller's wait stays bounded under load.
const MAX_BATCH: usize = 4096;

type Reply = oneshot::Sender<Result<(), AuditError>>;

enum Msg {
    Record(Box<Record>, Reply),
    /// Stop after everything queued before it; answered once stopped.
    Close(oneshot::Sender<()>),
}

/// An open audit trail with its writer task. Share it (it is returned in an [`Arc`]);
/// every [`record`](AuditLog::record) goes through the one writer.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    tx: mpsc::Sender<Msg>,
    closed: AtomicBool,
}

impl AuditLog {
    /// Opens (creating, mode 0700) the trail in `dir`, repairs a torn tail, applies
    /// retention, and starts the writer task on the current tokio runtime. It does that
    /// file work on the calling thread (it may wait for another process's append).
    pub fn open(dir: &Path, options: AuditOptions) -> Result<Arc<AuditLog>, AuditError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AuditError::NoRuntime)?;
        let store = Store::open(dir, options)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        runtime.spawn(run(store, rx, dir.to_path_buf()));
        Ok(Arc::new(AuditLog {
            dir: dir.to_path_buf(),
            tx,
            closed: AtomicBool::new(false),
        }))
    }

    /// The trail's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one entry; resolves once it is written (and synced when
    /// [`AuditOptions::sync`]). On an error the entry may or may not be in the trail.
    pub async fn record(&self, record: Record) -> Result<(), AuditError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AuditError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Record(Box::new(record), reply))
            .await
            .map_err(|_| AuditError::Closed)?;
        // A dropped reply means the writer stopped before reaching this record.
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes everything queued, then stops the writer; later records fail with
    /// [`AuditError::Closed`]. Closing again is a no-op.
    pub async fn close(&self) -> Result<(), AuditError> {
        self.closed.store(true, Ordering::Release);
        let (reply, stopped) = oneshot::channel();
        if self.tx.send(Msg::Close(reply)).await.is_err() {
            return Ok(()); // already stopped
        }
        // Either answer means the writer has stopped.
        let _ = stopped.await;
        Ok(())
    }
}

/// For one-shot CLI commands without a runtime: opens the trail (repairing and applying
/// retention like [`AuditLog::open`]), appends one entry under the lock, syncs it when
/// [`AuditOptions::sync`], and closes.
pub fn record_blocking(
    dir: &Path,
    options: AuditOptions,
    record: Record,
) -> Result<(), AuditError> {
    Store::open(dir, options)?.append(vec![record])
}

async fn run(store: Store, mut rx: mpsc::Receiver<Msg>, dir: PathBuf) {
    let mut closers = Vec::new();
    write_batches(store, &mut rx, &mut closers, &dir).await;
    // The store, and so the lock file, is released by now. Refuse what was queued after
    // the close (or the failure), and only then tell the closers the writer stopped.
    rx.close();
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Record(_, reply) => {
                let _ = reply.send(Err(AuditError::Closed));
            }
            Msg::Close(reply) => closers.push(reply),
        }
    }
    for closer in closers {
        let _ = closer.send(());
    }
}

/// Writes batches until a close message (collected into `closers`), the last
/// `AuditLog` is dropped, or the store is lost.
async fn write_batches(
    mut store: Store,
    rx: &mut mpsc::Receiver<Msg>,
    closers: &mut Vec<oneshot::Sender<()>>,
    dir: &Path,
) {
    while let Some(first) = rx.recv().await {
        // Group commit: take everything queued, up to MAX_BATCH, as one batch.
        let mut records = Vec::new();
        let mut replies = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(record, reply) => {
                    records.push(*record);
                    replies.push(reply);
                }
                Msg::Close(reply) => {
                    closers.push(reply);
                    break;
                }
            }
            if records.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !records.is_empty() {
            let count = records.len();
            // The file work blocks (lock, write, fdatasync): off the async workers.
            let done = tokio::task::spawn_blocking(move || {
                let result = store.append(records);
                (store, result)
            })
            .await;
            match done {
                Ok((back, result)) => {
                    store = back;
                    if let Err(e) = &result {
                        error!(error = %e, entries = count, "audit trail: append failed");
                    }
                    answer(replies, &result);
                }
                Err(e) => {
                    // The append panicked or was cancelled and took the store with it:
                    // this writer cannot go on.
                    error!(error = %e, entries = count, "audit trail: writer failed, closing");
                    let failed = Err(crate::io_error(dir)(std::io::Error::other(
                        "the audit writer task failed",
                    )));
                    answer(replies, &failed);
                    return;
                }
            }
        }
        if !closers.is_empty() {
            return;
        }
    }
}

/// Tells every caller of a batch how it went (a caller that gave up is no concern).
fn answer(replies: Vec<Reply>, result: &Result<(), AuditError>) {
    for reply in replies {
        let _ = reply.send(match result {
            Ok(()) => Ok(()),
            Err(e) => Err(e.duplicate()),
        });
    }
}
