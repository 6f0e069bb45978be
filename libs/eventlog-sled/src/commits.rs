//! The commit record: a small file beside sled's, `commits`, that says after each group
//! commit how many records every partition holds and the head of its hash chain
//! (SHA-256 over the previous head and each record's payload, in offset order).
//!
//! sled recovers from a truncated or damaged file by silently stopping at the damage:
//! it then opens as a shorter, or an empty, log. The commit record lives outside sled's
//! file, so such a log is noticed when it is opened: fewer records than the commit
//! record names, or other bytes at the same count, is refused, naming the partition and
//! both counts.
//!
//! The file holds two slots of fixed size (16 + 40 × partitions bytes: sequence u64,
//! partition count u32, per partition records u64 and chain head 32 bytes, CRC32 of the
//! rest); writes alternate between them in place, so a torn write leaves the other
//! slot, one commit older, and the newest valid slot is the record. It is written after
//! the group's `fdatasync` of sled's file, so it never names more than is durable, and
//! forced to the drive at most every [`SYNC_EVERY`]: after a power loss it may lag the
//! log by that much, which is allowed (a lagging record is a prefix of the log).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use kpr_eventlog::LogError;
use sha2::{Digest, Sha256};

/// File name inside the log directory.
pub const FILE: &str = "commits";
/// How often the commit record is forced to the drive.
const SYNC_EVERY: Duration = Duration::from_millis(200);

/// One partition's state: records held and the head of the hash chain over them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Records in the partition (the next offset).
    pub records: u64,
    /// SHA-256 chain head over every record's payload in offset order.
    pub chain: [u8; 32],
}

impl Head {
    /// The head of an empty partition.
    pub const EMPTY: Head = Head {
        records: 0,
        chain: [0; 32],
    };

    /// The head after one more record with `payload`.
    pub fn next(&self, payload: &[u8]) -> Head {
        let mut hasher = Sha256::new();
        hasher.update(self.chain);
        hasher.update(payload);
        Head {
            records: self.records + 1,
            chain: hasher.finalize().into(),
        }
    }

    /// The chain head as hex.
    pub fn chain_hex(&self) -> String {
        self.chain.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn slot_len(partitions: usize) -> usize {
    8 + 4 + 40 * partitions + 4
}

fn encode(seq: u64, heads: &[Head]) -> Vec<u8> {
    let mut out = Vec::with_capacity(slot_len(heads.len()));
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(heads.len() as u32).to_be_bytes());
    for head in heads {
        out.extend_from_slice(&head.records.to_be_bytes());
        out.extend_from_slice(&head.chain);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<(u64, Vec<Head>)> {
    if bytes.len() < 16 {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_be_bytes() != crc {
        return None;
    }
    let seq = u64::from_be_bytes(body.get(0..8)?.try_into().ok()?);
    let n = u32::from_be_bytes(body.get(8..12)?.try_into().ok()?) as usize;
    if body.len() != 12 + 40 * n {
        return None;
    }
    let heads = (0..n)
        .map(|i| {
            let at = 12 + 40 * i;
            Some(Head {
                records: u64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?),
                chain: body.get(at + 8..at + 40)?.try_into().ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((seq, heads))
}

/// The newest valid commit record in `dir`: `Ok(None)` when there is no file (a new
/// log, or one written before commit records), an error when the file exists but no
/// slot is readable.
pub fn read(dir: &Path) -> Result<Option<(u64, Vec<Head>)>, LogError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LogError::Storage(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    // The slot size follows from the partition count in the first slot's header; try
    // both halves of the file.
    let half = bytes.len() / 2;
    let slots = [&bytes[..half], &bytes[half..]];
    let best = slots
        .iter()
        .filter_map(|slot| decode(slot))
        .max_by_key(|(seq, _)| *seq);
    match best {
        Some(found) => Ok(Some(found)),
        None => Err(LogError::Storage(format!(
            "{} is damaged: neither of its slots is readable; the log cannot be shown complete",
            path.display()
        ))),
    }
}

/// Compares what sled holds with the commit record; `Err` names the first partition
/// that holds less, or other records, than the record says.
pub fn check(dir: &Path, held: &[Head], recorded: &[Head]) -> Result<(), LogError> {
    let damaged = |what: String| {
        LogError::Storage(format!(
            "the log in {} is incomplete or altered: {what}; refusing to open it (restore the log from a backup)",
            dir.display()
        ))
    };
    if held.len() != recorded.len() {
        return Err(damaged(format!(
            "the commit record names {} partitions, the log has {}",
            recorded.len(),
            held.len()
        )));
    }
    for (p, (h, r)) in held.iter().zip(recorded).enumerate() {
        if h.records < r.records {
            return Err(damaged(format!(
                "partition {p}: the commit record says {} records, the log holds {}",
                r.records, h.records
            )));
        }
        if h.records == r.records && h.chain != r.chain {
            return Err(damaged(format!(
                "partition {p}: {} records as recorded, but their hash chain differs",
                h.records
            )));
        }
    }
    Ok(())
}

/// The commit record being written by the log's writer thread.
pub struct CommitFile {
    file: File,
    seq: u64,
    synced: Instant,
    dirty: bool,
}

impl CommitFile {
    /// Opens (creating) the file and writes `heads` as the record at once, synced.
    pub fn open(dir: &Path, seq: u64, heads: &[Head]) -> Result<CommitFile, LogError> {
        let path = dir.join(FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| LogError::Storage(format!("cannot open {}: {e}", path.display())))?;
        let len = (2 * slot_len(heads.len())) as u64;
        file.set_len(len)
            .map_err(|e| LogError::Storage(format!("cannot size {}: {e}", path.display())))?;
        let mut commits = CommitFile {
            file,
            seq,
            synced: Instant::now(),
            dirty: false,
        };
        commits.write(heads)?;
        commits.sync()?;
        Ok(commits)
    }

    /// Writes `heads` as the newest record (into the older slot).
    pub fn write(&mut self, heads: &[Head]) -> Result<(), LogError> {
        self.seq += 1;
        let slot = encode(self.seq, heads);
        let at = (self.seq % 2) * slot.len() as u64;
        self.file
            .write_all_at(&slot, at)
            .map_err(|e| LogError::Storage(format!("cannot write the commit record: {e}")))?;
        self.dirty = true;
        if self.synced.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Forces the record to the drive.
    pub fn sync(&mut self) -> Result<(), LogError> {
        if self.dirty {
            self.file
                .sync_data()
                .map_err(|e| LogError::Storage(format!("cannot sync the commit record: {e}")))?;
            self.dirty = false;
        }
        self.synced = Instant::now();
        Ok(())
    }
}
