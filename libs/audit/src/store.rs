//! The file work of appending, done synchronously under the trail's lock: finding the
//! tail, repairing a torn last line, writing and syncing batches, retention.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use tracing::{info, warn};

use crate::format::{self, GENESIS};
use crate::{AuditError, AuditOptions, Entry, Record, io_error};

/// One segment file of the trail.
pub(crate) struct Segment {
    pub(crate) name: String,
    /// Its date, as days since 1970-01-01.
    pub(crate) days: i64,
    pub(crate) path: PathBuf,
}

/// The trail's segments in name order, which is date order and so entry order.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<Segment>, AuditError> {
    let mut segments = Vec::new();
    for item in fs::read_dir(dir).map_err(io_error(dir))? {
        let item = item.map_err(io_error(dir))?;
        let Some(name) = item.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(days) = format::segment_days(&name) {
            segments.push(Segment {
                path: item.path(),
                name,
                days,
            });
        }
    }
    segments.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(segments)
}

/// Where this writer knows the trail to end.
#[derive(Clone)]
struct Tail {
    seq: u64,
    hash: String,
    /// Name and length of the newest segment when this writer last looked. If either
    /// differs now, another process has written (or repaired) since.
    newest: Option<(String, u64)>,
}

/// A writer's hold on one trail directory.
pub(crate) struct Store {
    dir: PathBuf,
    options: AuditOptions,
    lock: File,
    lock_path: PathBuf,
    /// `None` when unknown: at first, and after any failed append (which may have left
    /// part of a batch behind), so the next append re-reads the tail.
    tail: Option<Tail>,
}

impl Store {
    /// Creates the directory if needed, repairs a torn tail and applies retention.
    pub(crate) fn open(dir: &Path, options: AuditOptions) -> Result<Store, AuditError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            options,
            lock,
            lock_path,
            tail: None,
        };
        {
            let _locked = Locked::acquire(&store.lock, &store.lock_path)?;
            let (tail, segments) = refresh(&store.dir, options)?;
            retention(&store.dir, options, &segments)?;
            store.tail = Some(tail);
        }
        Ok(store)
    }

    /// Appends `records` as consecutive entries; returns once written (and synced when
    /// `options.sync`). On error none, some or all of them may be in the trail.
    pub(crate) fn append(&mut self, records: Vec<Record>) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        let _locked = Locked::acquire(&self.lock, &self.lock_path)?;
        // Taken out, and put back only on success: a failure leaves the tail unknown.
        let known = self.tail.take();
        let mut segments = list_segments(&self.dir)?;
        let newest = match segments.last() {
            Some(s) => Some((s.name.clone(), file_len(&s.path)?)),
            None => None,
        };
        let tail = match known {
            Some(tail) if tail.newest == newest => tail,
            _ => {
                let (tail, now) = refresh(&self.dir, self.options)?;
                segments = now;
                tail
            }
        };

        // Lay out the batch: consecutive lines per segment, in one buffer each.
        let mut seq = tail.seq;
        let mut prev = tail.hash;
        let mut segment_days = segments.last().map(|s| s.days);
        let mut groups: Vec<(i64, Vec<u8>)> = Vec::new();
        for record in records {
            seq = seq.checked_add(1).ok_or_else(|| AuditError::Broken {
                file: self.dir.clone(),
                line: 0,
                seq: Some(seq),
                reason: "seq cannot grow past u64::MAX".to_owned(),
            })?;
            // Never back into an older segment, whatever the record's clock says.
            let day = format::day_of(format::clamp_ms(record.time_unix_ms));
            let day = segment_days.map_or(day, |newest| newest.max(day));
            segment_days = Some(day);
            if groups.last().is_none_or(|(d, _)| *d != day) {
                groups.push((day, Vec::new()));
            }
            let last = groups.len() - 1; // not empty: pushed just above if it was
            let buf = &mut groups[last].1;
            let entry = format::seal(seq, record, prev).map_err(|e| encode_error(&self.dir, e))?;
            serde_json::to_writer(&mut *buf, &entry).map_err(|e| encode_error(&self.dir, e))?;
            buf.push(b'\n');
            prev = entry.hash;
        }

        let mut newest = None;
        let mut started = false;
        for (day, buf) in groups {
            let name = format::segment_name(day);
            let path = self.dir.join(&name);
            let is_new = !segments.iter().any(|s| s.name == name);
            let mut file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path)
                .map_err(io_error(&path))?;
            // One write per segment: a crash leaves at most one torn line at the end.
            file.write_all(&buf).map_err(io_error(&path))?;
            if self.options.sync {
                file.sync_data().map_err(io_error(&path))?;
                if is_new {
                    // The new file's directory entry must be durable too.
                    sync_dir(&self.dir)?;
                }
            }
            let len = file.metadata().map_err(io_error(&path))?.len();
            newest = Some((name, len));
            started |= is_new;
        }
        self.tail = Some(Tail {
            seq,
            hash: prev,
            newest,
        });

        if started && self.options.retention_days > 0 {
            // The batch is safely written: a failure to delete old segments must not
            // be reported to its callers as a failure to record.
            if let Err(e) =
                list_segments(&self.dir).and_then(|s| retention(&self.dir, self.options, &s))
            {
                warn!(error = %e, "audit trail: retention failed");
            }
        }
        Ok(())
    }
}

/// Reads where the trail ends, under the lock, first repairing a torn last line.
/// Returns the tail and the segments as they are afterwards.
fn refresh(dir: &Path, options: AuditOptions) -> Result<(Tail, Vec<Segment>), AuditError> {
    let mut segments = list_segments(dir)?;
    // Only the newest segment can be torn: writes go to the newest segment or a newer
    // one, and every writer repairs before it writes.
    while let Some(last) = segments.last() {
        if repair_tail(&last.path, options.sync)? > 0 {
            break;
        }
        // Empty: created by a writer that died before its first line was complete.
        // Removing it keeps the newest segment the one holding the last entry, which
        // retention never deletes.
        fs::remove_file(&last.path).map_err(io_error(&last.path))?;
        warn!(file = %last.path.display(), "audit trail: removed an empty segment");
        segments.pop();
    }
    let Some(last) = segments.last() else {
        let tail = Tail {
            seq: 0,
            hash: GENESIS.to_owned(),
            newest: None,
        };
        return Ok((tail, segments));
    };
    let file = File::open(&last.path).map_err(io_error(&last.path))?;
    let len = file.metadata().map_err(io_error(&last.path))?.len();
    let line = last_line(&file, len).map_err(io_error(&last.path))?;
    let entry: Entry = serde_json::from_slice(&line).map_err(|e| AuditError::Broken {
        file: last.path.clone(),
        line: count_lines(&last.path).unwrap_or(0),
        seq: None,
        reason: format!("the last entry does not parse, so the chain cannot continue: {e}"),
    })?;
    let tail = Tail {
        seq: entry.seq,
        hash: entry.hash,
        newest: Some((last.name.clone(), len)),
    };
    Ok((tail, segments))
}

/// Truncates `path` after its last complete line; returns its length afterwards.
fn repair_tail(path: &Path, sync: bool) -> Result<u64, AuditError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)
        .map_err(io_error(path))?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    let keep = last_newline_before(&file, len)
        .map_err(io_error(path))?
        .map_or(0, |at| at + 1);
    file.set_len(keep).map_err(io_error(path))?;
    if sync {
        file.sync_data().map_err(io_error(path))?;
    }
    // That line's append never completed, so no caller was told it was recorded.
    warn!(
        file = %path.display(),
        dropped_bytes = len - keep,
        "audit trail: truncated a torn last line"
    );
    Ok(keep)
}

/// Deletes segments older than `retention_days` before the newest one's date; never the
/// newest segment itself.
fn retention(dir: &Path, options: AuditOptions, segments: &[Segment]) -> Result<(), AuditError> {
    let Some((newest, older)) = segments.split_last() else {
        return Ok(());
    };
    if options.retention_days == 0 {
        return Ok(());
    }
    let cutoff = newest.days - i64::from(options.retention_days);
    let mut removed = 0;
    for segment in older.iter().filter(|s| s.days < cutoff) {
        match fs::remove_file(&segment.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&segment.path)(e)),
        }
        info!(file = %segment.path.display(), "audit trail: retention removed a segment");
        removed += 1;
    }
    if removed > 0 && options.sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The last line of a file that ends with `"\n"` (without it).
fn last_line(file: &File, len: u64) -> std::io::Result<Vec<u8>> {
    let end = len.saturating_sub(1);
    let start = last_newline_before(file, end)?.map_or(0, |at| at + 1);
    let mut line = vec![0; (end - start) as usize];
    file.read_exact_at(&mut line, start)?;
    Ok(line)
}

/// Offset of the last `'\n'` in the first `end` bytes of `file`, scanning backwards in
/// chunks (segments can be large; their lines are short).
fn last_newline_before(file: &File, mut end: u64) -> std::io::Result<Option<u64>> {
    const CHUNK: u64 = 8192;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(at) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + at as u64));
        }
        end = start;
    }
    Ok(None)
}

/// Lines in a file (for naming the line of an error; not on any hot path).
fn count_lines(path: &Path) -> Option<u64> {
    let bytes = fs::read(path).ok()?;
    Some(bytes.iter().filter(|&&b| b == b'\n').count() as u64)
}

fn file_len(path: &Path) -> Result<u64, AuditError> {
    Ok(fs::metadata(path).map_err(io_error(path))?.len())
}

/// Makes created or removed directory entries durable.
fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

fn encode_error(dir: &Path, e: serde_json::Error) -> AuditError {
    io_error(dir)(e.into())
}

/// The exclusive `flock` on `DIR/lock`, held for one append; it serialises writers in
/// all processes (each `Store` has its own open file, so two in one process exclude
/// each other too).
struct Locked<'a> {
    file: &'a File,
}

impl<'a> Locked<'a> {
    fn acquire(file: &'a File, path: &Path) -> Result<Locked<'a>, AuditError> {
        loop {
            match flock(file, FlockOperation::LockExclusive) {
                Ok(()) => return Ok(Locked { file }),
                // A signal arrived while waiting for another writer: wait again.
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io_error(path)(e.into())),
            }
        }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Err(e) = flock(self.file, FlockOperation::Unlock) {
            // Closing the file would release it; until then other writers wait.
            warn!(error = %e, "audit trail: could not release the lock");
        }
    }
}
