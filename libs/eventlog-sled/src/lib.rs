//! The embedded backend of the event log, on sled.
//!
//! One writer thread owns every write. Appends are queued on a bounded channel (a full
//! queue is refused at once); the writer takes everything queued, writes it as one
//! atomic sled batch, flushes once and, with `sync_data` on, forces the database file
//! to the drive with `fdatasync` before it resolves the tickets of every batch in the
//! group (group commit). Readers see only records whose flush has finished, so nothing
//! a reader saw can be lost in a crash.
//!
//! Layout (version 2): tree `records` holds *chunks*: key = partition (u32 big-endian)
//! ++ offset of the chunk's first record (u64 big-endian), value = one or more framed
//! records of consecutive offsets, each length (u32 BE) ++ CRC32 of the payload (u32
//! BE) ++ payload. A group commit writes the records of one partition as few chunks of
//! at most [`CHUNK_BYTES_MAX`] (a record larger than that is a chunk alone), so sled
//! does one insert per chunk rather than per record; a chunk never spans two group
//! commits. Version 1 stored one record per key, which is a chunk of one record: a
//! version-1 log is read as it is and marked version 2 when opened. Tree `meta` holds
//! the partition count and the layout version. The CRC and length are checked on
//! every read. Beside the chunks, `records` holds per partition the head of a hash chain
//! over its records (key `FF FF FF FF` ++ partition: records u64 ++ SHA-256 head),
//! written in the same atomic batch as the records; and the file `commits` beside
//! sled's repeats the heads after every group commit (module `commits`), so a log that
//! sled opens shorter than it was (a truncated or damaged file) is refused.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kpr_eventlog::{AppendTicket, EventLog, LogError, Position, ReadOptions, Record};
use tokio::sync::{Notify, oneshot};

mod commits;
use commits::CommitFile;
pub use commits::Head;

/// Layout version written to `meta`.
const LAYOUT_VERSION: u32 = 2;
/// The layout with one record per key, which version 2 reads as chunks of one record.
const LAYOUT_VERSION_RECORDS: u32 = 1;
/// Most bytes of one chunk. sled writes a whole leaf (up to 17 entries) as one item
/// of its log when it consolidates a page, and an item over a quarter of a segment
/// (128 KiB by default) goes to a separate blob file, which neither sled's flush nor
/// our `fdatasync` of the database file forces to the drive. A full leaf of chunks
/// must therefore stay well below 128 KiB.
pub const CHUNK_BYTES_MAX: usize = 6 * 1024;
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

/// The key of a partition's chain head: after every record key (no partition is
/// `u32::MAX`).
fn chain_key(partition: u32) -> [u8; 8] {
    let mut k = [0xFF; 8];
    k[4..].copy_from_slice(&partition.to_be_bytes());
    k
}

fn encode_head(head: &Head) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..8].copy_from_slice(&head.records.to_be_bytes());
    v[8..].copy_from_slice(&head.chain);
    v
}

fn decode_head(v: &[u8]) -> Result<Head, LogError> {
    if v.len() != 40 {
        return Err(storage("a chain head is not 40 bytes"));
    }
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&v[8..]);
    Ok(Head {
        records: u64::from_be_bytes(v[..8].try_into().map_err(storage)?),
        chain,
    })
}

/// Appends one framed record (length, CRC32, payload) to `chunk`.
fn frame_into(chunk: &mut Vec<u8>, payload: &[u8]) {
    chunk.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    chunk.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    chunk.extend_from_slice(payload);
}

/// The offset in a record key.
fn key_offset(k: &[u8]) -> Result<u64, LogError> {
    let bytes: [u8; 8] = k
        .get(4..12)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| storage("bad record key"))?;
    Ok(u64::from_be_bytes(bytes))
}

/// The records of the chunk stored at `first_offset`, each checked against its length
/// and CRC. The payloads share one copy of the chunk.
fn unframe(partition: u32, first_offset: u64, value: &[u8]) -> Result<Vec<Bytes>, LogError> {
    let whole = Bytes::copy_from_slice(value);
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < whole.len() || out.is_empty() {
        let corrupt = |reason: &str| LogError::Corrupt {
            partition,
            offset: first_offset + out.len() as u64,
            reason: reason.to_string(),
        };
        let Some(header) = whole.get(at..at + HEADER_BYTES) else {
            return Err(corrupt("shorter than its header"));
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let start = at + HEADER_BYTES;
        if whole.len() - start < len {
            return Err(corrupt("length does not match the header (torn record)"));
        }
        let payload = whole.slice(start..start + len);
        if crc32fast::hash(&payload) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        out.push(payload);
        at = start + len;
    }
    Ok(out)
}

impl SledLog {
    /// Opens (or creates) the log in `dir`. Only one process may open a directory.
    /// A log sled cannot read (it panics on some kinds of damage) is an error naming the
    /// directory, not a crash.
    pub fn open(dir: &Path, options: &SledOptions) -> Result<SledLog, LogError> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            SledLog::open_checked(dir, options)
        })) {
            Ok(opened) => opened,
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "it stopped".into());
                Err(LogError::Storage(format!(
                    "the log in {} is damaged: sled cannot read it ({reason}); restore the log from a backup",
                    dir.display()
                )))
            }
        }
    }

    fn open_checked(dir: &Path, options: &SledOptions) -> Result<SledLog, LogError> {
        std::fs::create_dir_all(dir).map_err(storage)?;
        // Read before sled touches anything: it says what the log must hold.
        let recorded = commits::read(dir)?;
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
                if let Some((_, heads)) = &recorded
                    && heads.iter().any(|h| h.records > 0)
                {
                    return Err(LogError::Storage(format!(
                        "the log in {} is empty or unreadable, but its commit record says it holds {} records; refusing to open it (restore the log from a backup)",
                        dir.display(),
                        heads.iter().map(|h| h.records).sum::<u64>()
                    )));
                }
                let count = options.partition_count.max(1);
                meta.insert("partition_count", &count.to_be_bytes())
                    .map_err(storage)?;
                meta.insert("layout_version", &LAYOUT_VERSION.to_be_bytes())
                    .map_err(storage)?;
                db.flush().map_err(storage)?;
                count
            }
        };
        let layout = match meta.get("layout_version").map_err(storage)? {
            Some(v) => u32::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| storage("meta.layout_version is not a u32"))?,
            ),
            None => LAYOUT_VERSION,
        };
        match layout {
            LAYOUT_VERSION => {}
            LAYOUT_VERSION_RECORDS => {
                // Every version-1 value is a chunk of one record: only the mark changes.
                meta.insert("layout_version", &LAYOUT_VERSION.to_be_bytes())
                    .map_err(storage)?;
                db.flush().map_err(storage)?;
            }
            other => {
                return Err(storage(format!("unknown sled log layout version {other}")));
            }
        }
        let mut next = Vec::with_capacity(partition_count as usize);
        for p in 0..partition_count {
            let last = records
                .range(key(p, 0)..=key(p, u64::MAX))
                .next_back()
                .transpose()
                .map_err(storage)?;
            next.push(match last {
                Some((k, v)) => {
                    let first = key_offset(&k)?;
                    first + unframe(p, first, &v)?.len() as u64
                }
                None => 0,
            });
        }
        let mut heads = Vec::with_capacity(next.len());
        for (p, &n) in (0u32..).zip(&next) {
            let head = match records.get(chain_key(p)).map_err(storage)? {
                Some(v) => decode_head(&v)?,
                None if n == 0 => Head::EMPTY,
                // A log written before chain heads: computed once from its records.
                None => chain_of(&records, p)?,
            };
            if head.records != n {
                return Err(LogError::Storage(format!(
                    "the log in {} is damaged: partition {p} holds {n} records but its chain head counts {}",
                    dir.display(),
                    head.records
                )));
            }
            heads.push(head);
        }
        let commit_file = match &recorded {
            Some((seq, recorded)) => {
                commits::check(dir, &heads, recorded)?;
                CommitFile::open(dir, *seq, &heads)?
            }
            None => {
                if heads.iter().any(|h| h.records > 0) {
                    tracing::warn!(dir = %dir.display(), "the log has no commit record (written before them); writing one now");
                }
                CommitFile::open(dir, 0, &heads)?
            }
        };
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
            heads,
            commits: commit_file,
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

    /// The chain head of every partition, as stored with the records (for `kpr
    /// verify`, which recomputes them from the records).
    pub fn chain_heads(&self) -> Result<Vec<Head>, LogError> {
        (0..self.partition_count)
            .map(|p| match self.records.get(chain_key(p)).map_err(storage)? {
                Some(v) => decode_head(&v),
                None => Ok(Head::EMPTY),
            })
            .collect()
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
        // The chunk holding `from_offset` starts at or before it.
        let start = match self
            .records
            .range(key(partition, 0)..=key(partition, from_offset))
            .next_back()
            .transpose()
            .map_err(storage)?
        {
            Some((k, _)) => key_offset(&k)?,
            None => from_offset,
        };
        let mut out = Vec::new();
        for item in self
            .records
            .range(key(partition, start)..key(partition, end))
        {
            let (k, v) = item.map_err(storage)?;
            let first = key_offset(&k)?;
            for (offset, payload) in (first..).zip(unframe(partition, first, &v)?) {
                if offset < from_offset {
                    continue;
                }
                if out.len() >= records_max as usize || offset >= end {
                    return Ok(out);
                }
                out.push(Record {
                    position: Position { partition, offset },
                    payload,
                });
            }
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
            Ok(()) => {
                metrics::gauge!("kpr_log_queue_batches").increment(1.0);
                Ok(ticket)
            }
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
    /// Chain head per partition, as durable.
    heads: Vec<Head>,
    commits: CommitFile,
}

/// The chain head of partition `p` computed from its stored records.
fn chain_of(records: &sled::Tree, p: u32) -> Result<Head, LogError> {
    let mut head = Head::EMPTY;
    for item in records.range(key(p, 0)..=key(p, u64::MAX)) {
        let (k, v) = item.map_err(storage)?;
        for payload in unframe(p, key_offset(&k)?, &v)? {
            head = head.next(&payload);
        }
    }
    Ok(head)
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
        if let Err(e) = self.commits.sync() {
            tracing::error!(error = %e, "the commit record could not be synced at close");
        }
    }

    fn commit(&mut self, group: Vec<Job>) {
        metrics::gauge!("kpr_log_queue_batches").decrement(group.len() as f64);
        let already_failed = self.failed.lock().ok().and_then(|f| f.clone());
        if let Some(reason) = already_failed {
            for job in group {
                let _ = job.reply.send(Err(LogError::Unavailable(reason.clone())));
            }
            return;
        }
        let mut batch = sled::Batch::default();
        let mut next = self.next.clone();
        let mut heads = self.heads.clone();
        let mut results = Vec::with_capacity(group.len());
        // The open chunk per partition: its first offset and its bytes.
        let mut chunks: Vec<Option<(u64, Vec<u8>)>> = vec![None; next.len()];
        for job in &group {
            let p = job.partition as usize;
            let mut positions = Vec::with_capacity(job.payloads.len());
            for payload in &job.payloads {
                let framed = HEADER_BYTES + payload.len();
                if let Some((first, bytes)) = chunks[p].take_if(|(_, bytes)| {
                    !bytes.is_empty() && bytes.len() + framed > CHUNK_BYTES_MAX
                }) {
                    batch.insert(&key(job.partition, first), bytes);
                }
                let (_, chunk) = chunks[p].get_or_insert_with(|| {
                    (next[p], Vec::with_capacity(framed.min(CHUNK_BYTES_MAX)))
                });
                frame_into(chunk, payload);
                heads[p] = heads[p].next(payload);
                positions.push(Position {
                    partition: job.partition,
                    offset: next[p],
                });
                next[p] += 1;
            }
            results.push(positions);
        }
        for (p, chunk) in (0u32..).zip(chunks) {
            if let Some((first, bytes)) = chunk {
                batch.insert(&key(p, first), bytes);
                batch.insert(&chain_key(p), &encode_head(&heads[p as usize])[..]);
            }
        }
        let started = std::time::Instant::now();
        let written = self
            .records
            .apply_batch(batch)
            .and_then(|_| self.db.flush().map(|_| ()))
            .map_err(|e| e.to_string())
            .and_then(|_| {
                let synced = std::time::Instant::now();
                let result = match &self.sync_file {
                    Some(file) => file.sync_data().map_err(|e| e.to_string()),
                    None => Ok(()),
                };
                metrics::histogram!("kpr_log_fsync_seconds").record(synced.elapsed().as_secs_f64());
                result
            });
        metrics::histogram!("kpr_log_group_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("kpr_log_group_commit_batches").record(group.len() as f64);
        match written {
            Ok(()) => {
                self.next = next;
                self.heads = heads;
                // After the fdatasync: the record never names more than is durable.
                if let Err(e) = self.commits.write(&self.heads) {
                    let reason = format!("the commit record cannot be written: {e}");
                    tracing::error!(error = %reason, "refusing further appends");
                    if let Ok(mut failed) = self.failed.lock() {
                        *failed = Some(reason);
                    }
                }
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

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut chunk = Vec::new();
        frame_into(&mut chunk, payload);
        chunk
    }

    #[test]
    fn framing_detects_tears_and_flips() {
        let framed = frame(b"hello");
        assert_eq!(
            unframe(0, 0, &framed).unwrap(),
            vec![Bytes::from_static(b"hello")]
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
        assert!(matches!(unframe(0, 3, &[]), Err(LogError::Corrupt { .. })));
    }

    #[test]
    fn a_chunk_holds_consecutive_records_and_names_the_damaged_one() {
        let mut chunk = frame(b"first");
        frame_into(&mut chunk, b"second");
        frame_into(&mut chunk, b"third");
        let records = unframe(0, 10, &chunk).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[2], Bytes::from_static(b"third"));
        let torn = &chunk[..chunk.len() - 2];
        assert!(matches!(
            unframe(0, 10, torn),
            Err(LogError::Corrupt { offset: 12, .. })
        ));
    }

    #[tokio::test]
    async fn groups_are_chunked_and_read_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log = SledLog::open(dir.path(), &SledOptions::standard(2)).unwrap();
        // Records of 1 KiB: a 20-record batch spans several chunks.
        let payload = |i: u32| Bytes::from(vec![i as u8; 1024]);
        let first = log.append(1, (0..20).map(payload).collect()).unwrap();
        let second = log.append(1, (20..23).map(payload).collect()).unwrap();
        first.await.unwrap();
        second.await.unwrap();
        let chunks = log.records.scan_prefix(1u32.to_be_bytes()).count();
        assert!((4..23).contains(&chunks), "{chunks} chunks");
        for from in 0..24u64 {
            let records = log
                .read(
                    1,
                    from,
                    ReadOptions {
                        records_max: 5,
                        wait_ms_max: 0,
                    },
                )
                .await
                .unwrap();
            let expected: Vec<u64> = (from..23).take(5).collect();
            assert_eq!(
                records
                    .iter()
                    .map(|r| r.position.offset)
                    .collect::<Vec<_>>(),
                expected
            );
            for r in &records {
                assert_eq!(r.payload, payload(r.position.offset as u32));
            }
        }
        log.close().await.unwrap();
        drop(log);
        let reopened = SledLog::open(dir.path(), &SledOptions::standard(2)).unwrap();
        assert_eq!(reopened.end_offset(1).await.unwrap(), 23);
        assert_eq!(reopened.end_offset(0).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_version_1_log_is_read_and_continued() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A version-1 log as the previous layout wrote it: one record per key.
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let meta = db.open_tree("meta").unwrap();
            meta.insert("partition_count", &1u32.to_be_bytes()).unwrap();
            meta.insert("layout_version", &1u32.to_be_bytes()).unwrap();
            let records = db.open_tree("records").unwrap();
            for offset in 0..3u64 {
                records
                    .insert(key(0, offset), frame(format!("old {offset}").as_bytes()))
                    .unwrap();
            }
            db.flush().unwrap();
        }
        let log = SledLog::open(dir.path(), &SledOptions::standard(1)).unwrap();
        assert_eq!(log.end_offset(0).await.unwrap(), 3);
        let positions = log
            .append(0, vec![Bytes::from_static(b"new")])
            .unwrap()
            .await
            .unwrap();
        assert_eq!(positions[0].offset, 3);
        let records = log
            .read(
                0,
                1,
                ReadOptions {
                    records_max: 10,
                    wait_ms_max: 0,
                },
            )
            .await
            .unwrap();
        let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_ref()).collect();
        assert_eq!(payloads, vec![&b"old 1"[..], b"old 2", b"new"]);
    }
}
