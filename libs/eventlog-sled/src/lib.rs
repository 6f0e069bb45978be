//! The embedded backend of the event log, on sled.
//!
//! One writer thread owns every write. Appends are queued on a bounded channel (a full
//! queue is refused at once); the writer takes everything queued, writes it as one
//! atomic sled batch, flushes once and, with `sync_data` on, forces the database file
//! to the drive with `fdatasync` before it resolves the tickets of every batch in the
//! group (group commit). Readers see only records whose flush has finished, so nothing
//! a reader saw can be lost in a crash.
//!
//! Layout: tree `records`, key = partition (u32 big-endian) ++ offset (u64
//! big-endian), value = length (u32 BE) ++ CRC32 of the payload (u32 BE) ++ payload.
//! Tree `meta` holds the partition count and the layout version. The CRC and length are
//! checked on every read.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kpr_eventlog::{AppendTicket, EventLog, LogError, Position, ReadOptions, Record};
use tokio::sync::{Notify, oneshot};

/// Layout version written to `meta`.
const LAYOUT_VERSION: u32 = 1;
/// Most payload bytes one group commit takes before it flushes.
const GROUP_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most batches one group commit takes before it flushes.
const GROUP_BATCHES_MAX: usize = 4096;
/// Size of the record header (length + CRC32).
const HEADER_BYTES: usize = 8;

/// How to open a sled log.
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// Partition count for a new log; an existing log keeps its own.
    pub partition_count: u32,
    /// Capacity of the append queue, in batches.
    pub queue_capacity_batches: u32,
    /// Force the database file to the drive (`fdatasync`) after each group commit,
    /// so acknowledged events survive a power loss, not only a killed process.
    pub sync_data: bool,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
}

impl SledOptions {
    /// The defaults for `kpr serve`.
    pub fn standard(partition_count: u32) -> SledOptions {
        SledOptions {
            partition_count,
            queue_capacity_batches: 8192,
            sync_data: true,
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

struct Job {
    partition: u32,
    payloads: Vec<Bytes>,
    reply: oneshot::Sender<Result<Vec<Position>, LogError>>,
}

/// Durable end offset and wake-up per partition.
struct Watermarks {
    end: Vec<AtomicU64>,
    notify: Vec<Notify>,
}

/// The sled log.
pub struct SledLog {
    db: sled::Db,
    records: sled::Tree,
    partition_count: u32,
    queue_capacity_batches: u32,
    sender: Mutex<Option<SyncSender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    marks: Arc<Watermarks>,
    failed: Arc<Mutex<Option<String>>>,
    path: PathBuf,
}

impl std::fmt::Debug for SledLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLog")
            .field("path", &self.path)
            .field("partition_count", &self.partition_count)
            .finish()
    }
}

fn storage(e: impl std::fmt::Display) -> LogError {
    LogError::Storage(e.to_string())
}

fn key(partition: u32, offset: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&partition.to_be_bytes());
    k[4..].copy_from_slice(&offset.to_be_bytes());
    k
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_BYTES + payload.len());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn unframe(partition: u32, offset: u64, value: &[u8]) -> Result<Bytes, LogError> {
    let corrupt = |reason: &str| LogError::Corrupt {
        partition,
        offset,
        reason: reason.to_string(),
    };
    if value.len() < HEADER_BYTES {
        return Err(corrupt("shorter than its header"));
    }
    let len = u32::from_be_bytes([value[0], value[1], value[2], value[3]]) as usize;
    let crc = u32::from_be_bytes([value[4], value[5], value[6], value[7]]);
    let payload = &value[HEADER_BYTES..];
    if payload.len() != len {
        return Err(corrupt("length does not match the header (torn record)"));
    }
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(Bytes::copy_from_slice(payload))
}

impl SledLog {
    /// Opens (or creates) the log in `dir`. Only one process may open a directory.
    pub fn open(dir: &Path, options: &SledOptions) -> Result<SledLog, LogError> {
        std::fs::create_dir_all(dir).map_err(storage)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| {
                LogError::Storage(format!(
                    "cannot open the sled log in {}: {e}",
                    dir.display()
                ))
            })?;
        let meta = db.open_tree("meta").map_err(storage)?;
        let records = db.open_tree("records").map_err(storage)?;
        let partition_count = match meta.get("partition_count").map_err(storage)? {
            Some(v) => {
                let bytes: [u8; 4] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| storage("meta.partition_count is not a u32"))?;
                u32::from_be_bytes(bytes)
            }
            None => {
                let count = options.partition_count.max(1);
                meta.insert("partition_count", &count.to_be_bytes())
                    .map_err(storage)?;
                meta.insert("layout_version", &LAYOUT_VERSION.to_be_bytes())
                    .map_err(storage)?;
                db.flush().map_err(storage)?;
                count
            }
        };
        if let Some(v) = meta.get("layout_version").map_err(storage)?
            && v.as_ref() != LAYOUT_VERSION.to_be_bytes()
        {
            return Err(storage("unknown sled log layout version"));
        }
        let mut next = Vec::with_capacity(partition_count as usize);
        for p in 0..partition_count {
            let last = records
                .range(key(p, 0)..=key(p, u64::MAX))
                .next_back()
                .transpose()
                .map_err(storage)?;
            next.push(match last {
                Some((k, _)) => {
                    u64::from_be_bytes(k[4..12].try_into().map_err(|_| storage("bad record key"))?)
                        + 1
                }
                None => 0,
            });
        }
        let marks = Arc::new(Watermarks {
            end: next.iter().map(|&n| AtomicU64::new(n)).collect(),
            notify: (0..partition_count).map(|_| Notify::new()).collect(),
        });
        let failed = Arc::new(Mutex::new(None));
        let sync_file = if options.sync_data {
            Some(File::open(dir.join("db")).map_err(storage)?)
        } else {
            None
        };
        let (sender, receiver) =
            std::sync::mpsc::sync_channel(options.queue_capacity_batches.max(1) as usize);
        let writer = Writer {
            db: db.clone(),
            records: records.clone(),
            next,
            marks: Arc::clone(&marks),
            failed: Arc::clone(&failed),
            sync_file,
        };
        let handle = std::thread::Builder::new()
            .name("kpr-sled-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(storage)?;
        Ok(SledLog {
            db,
            records,
            partition_count,
            queue_capacity_batches: options.queue_capacity_batches.max(1),
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(handle)),
            marks,
            failed,
            path: dir.to_path_buf(),
        })
    }

    fn check_partition(&self, partition: u32) -> Result<(), LogError> {
        if partition >= self.partition_count {
            return Err(LogError::NoSuchPartition {
                partition,
                count: self.partition_count,
            });
        }
        Ok(())
    }

    /// Bytes sled reports on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    fn read_now(
        &self,
        partition: u32,
        from_offset: u64,
        records_max: u32,
    ) -> Result<Vec<Record>, LogError> {
        let end = self.marks.end[partition as usize].load(Ordering::Acquire);
        if from_offset >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self
            .records
            .range(key(partition, from_offset)..key(partition, end))
        {
            if out.len() >= records_max as usize {
                break;
            }
            let (k, v) = item.map_err(storage)?;
            let offset =
                u64::from_be_bytes(k[4..12].try_into().map_err(|_| storage("bad record key"))?);
            out.push(Record {
                position: Position { partition, offset },
                payload: unframe(partition, offset, &v)?,
            });
        }
        Ok(out)
    }
}

impl EventLog for SledLog {
    fn partition_count(&self) -> u32 {
        self.partition_count
    }

    fn append(&self, partition: u32, payloads: Vec<Bytes>) -> Result<AppendTicket, LogError> {
        self.check_partition(partition)?;
        if let Some(reason) = self.failed.lock().map_err(storage)?.clone() {
            return Err(LogError::Unavailable(reason));
        }
        let (reply, ticket) = AppendTicket::channel();
        let guard = self.sender.lock().map_err(storage)?;
        let Some(sender) = guard.as_ref() else {
            return Err(LogError::Unavailable("the log is closed".into()));
        };
        match sender.try_send(Job {
            partition,
            payloads,
            reply,
        }) {
            Ok(()) => Ok(ticket),
            Err(TrySendError::Full(_)) => Err(LogError::QueueFull {
                capacity_batches: self.queue_capacity_batches,
            }),
            Err(TrySendError::Disconnected(_)) => {
                Err(LogError::Unavailable("the log writer has stopped".into()))
            }
        }
    }

    async fn read(
        &self,
        partition: u32,
        from_offset: u64,
        options: ReadOptions,
    ) -> Result<Vec<Record>, LogError> {
        self.check_partition(partition)?;
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(u64::from(options.wait_ms_max));
        loop {
            let notified = self.marks.notify[partition as usize].notified();
            let records = self.read_now(partition, from_offset, options.records_max)?;
            if !records.is_empty() || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(records);
            }
        }
    }

    async fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        self.check_partition(partition)?;
        Ok(self.marks.end[partition as usize].load(Ordering::Acquire))
    }

    async fn close(&self) -> Result<(), LogError> {
        // Dropping the sender lets the writer drain the queue and stop.
        drop(self.sender.lock().map_err(storage)?.take());
        let handle = self.writer.lock().map_err(storage)?.take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(storage)?
                .map_err(|_| storage("the sled writer thread panicked"))?;
        }
        self.db.flush_async().await.map(|_| ()).map_err(storage)
    }
}

impl Drop for SledLog {
    fn drop(&mut self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Ok(mut writer) = self.writer.lock()
            && let Some(handle) = writer.take()
        {
            let _ = handle.join();
        }
    }
}

/// The writer thread's state.
struct Writer {
    db: sled::Db,
    records: sled::Tree,
    next: Vec<u64>,
    marks: Arc<Watermarks>,
    failed: Arc<Mutex<Option<String>>>,
    sync_file: Option<File>,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Job>) {
        while let Ok(first) = receiver.recv() {
            let mut group = vec![first];
            let mut bytes: usize = group[0].payloads.iter().map(Bytes::len).sum();
            while group.len() < GROUP_BATCHES_MAX && bytes < GROUP_BYTES_MAX {
                match receiver.try_recv() {
                    Ok(job) => {
                        bytes += job.payloads.iter().map(Bytes::len).sum::<usize>();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
        }
    }

    fn commit(&mut self, group: Vec<Job>) {
        let already_failed = self.failed.lock().ok().and_then(|f| f.clone());
        if let Some(reason) = already_failed {
            for job in group {
                let _ = job.reply.send(Err(LogError::Unavailable(reason.clone())));
            }
            return;
        }
        let mut batch = sled::Batch::default();
        let mut next = self.next.clone();
        let mut results = Vec::with_capacity(group.len());
        for job in &group {
            let p = job.partition as usize;
            let mut positions = Vec::with_capacity(job.payloads.len());
            for payload in &job.payloads {
                batch.insert(&key(job.partition, next[p]), frame(payload));
                positions.push(Position {
                    partition: job.partition,
                    offset: next[p],
                });
                next[p] += 1;
            }
            results.push(positions);
        }
        let written = self
            .records
            .apply_batch(batch)
            .and_then(|_| self.db.flush().map(|_| ()))
            .map_err(|e| e.to_string())
            .and_then(|_| match &self.sync_file {
                Some(file) => file.sync_data().map_err(|e| e.to_string()),
                None => Ok(()),
            });
        match written {
            Ok(()) => {
                self.next = next;
                for (p, end) in self.next.iter().enumerate() {
                    if self.marks.end[p].swap(*end, Ordering::AcqRel) != *end {
                        self.marks.notify[p].notify_waiters();
                    }
                }
                for (job, positions) in group.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(positions));
                }
            }
            Err(reason) => {
                // A failed write leaves the store in an unknown state: stop taking
                // writes until an operator restarts the process, which re-reads the log.
                let reason = format!("a write to the sled log failed: {reason}");
                tracing::error!(error = %reason, "sled log write failed; refusing further appends");
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = Some(reason.clone());
                }
                for job in group {
                    let _ = job.reply.send(Err(LogError::Unavailable(reason.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_detects_tears_and_flips() {
        let framed = frame(b"hello");
        assert_eq!(
            unframe(0, 0, &framed).unwrap(),
            Bytes::from_static(b"hello")
        );
        assert!(matches!(
            unframe(0, 1, &framed[..framed.len() - 1]),
            Err(LogError::Corrupt { offset: 1, .. })
        ));
        let mut flipped = framed.clone();
        flipped[9] ^= 1;
        assert!(matches!(
            unframe(0, 2, &flipped),
            Err(LogError::Corrupt { .. })
        ));
        assert!(matches!(
            unframe(0, 3, &framed[..4]),
            Err(LogError::Corrupt { .. })
        ));
    }
}
