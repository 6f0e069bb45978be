//! Reading the trail back and checking its chain. Neither takes the lock: they run
//! beside live writers, whose appends only ever add complete lines at the end.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use tracing::debug;

use crate::format::{self, GENESIS};
use crate::store::list_segments;
use crate::{AuditError, Entry, VerifyReport, io_error};

/// Every entry in order, over all segments, parsed but not checked (see [`verify`]);
/// for `kpr audit` listings. A line that does not parse is an error.
pub fn read(dir: &Path) -> Result<Vec<Entry>, AuditError> {
    let mut entries: Vec<Entry> = Vec::new();
    scan(dir, |file, line_no, line| {
        let entry = serde_json::from_slice(line).map_err(|e| AuditError::Broken {
            file: file.to_path_buf(),
            line: line_no,
            seq: entries.last().map(|prev| prev.seq.saturating_add(1)),
            reason: format!("not a valid entry: {e}"),
        })?;
        entries.push(entry);
        Ok(())
    })?;
    Ok(entries)
}

/// Checks the whole chain: every line is an entry in canonical form, `seq` grows by
/// exactly 1 across lines and segments, every `prev` is the previous entry's `hash`
/// (64 zeros before `seq` 1) and every `hash` matches its entry's content. Returns
/// [`AuditError::Broken`] naming the first line that fails.
pub fn verify(dir: &Path) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport {
        entries: 0,
        first_seq: 0,
        last_seq: 0,
        head: GENESIS.to_owned(),
        anchored: false,
    };
    scan(dir, |file, line_no, line| {
        // The seq this line should have, to name where the chain breaks.
        let expected = (report.entries > 0).then(|| report.last_seq.saturating_add(1));
        let broken = |seq: Option<u64>, reason: String| AuditError::Broken {
            file: file.to_path_buf(),
            line: line_no,
            seq,
            reason,
        };
        let entry: Entry = serde_json::from_slice(line)
            .map_err(|e| broken(expected, format!("not a valid entry: {e}")))?;
        let at = expected.or(Some(entry.seq));
        // Canonical bytes, so that no byte can change without breaking the chain, even
        // one JSON would not mind (white space, escapes, number spelling).
        let canonical = serde_json::to_vec(&entry).map_err(|e| io_error(file)(e.into()))?;
        if canonical != line {
            return Err(broken(
                at,
                "not in canonical form (the line is not its entry's serialization)".to_owned(),
            ));
        }
        if !format::is_hash(&entry.prev) || !format::is_hash(&entry.hash) {
            return Err(broken(
                at,
                "prev or hash is not 64 lowercase hex digits".to_owned(),
            ));
        }
        if report.entries == 0 {
            if entry.seq == 0 {
                return Err(broken(at, "seq 0 (entries count from 1)".to_owned()));
            }
            if entry.seq == 1 && entry.prev != GENESIS {
                return Err(broken(
                    at,
                    "the first entry's prev is not 64 zeros".to_owned(),
                ));
            }
            // A first entry past 1 follows segments removed by retention: its prev is
            // the anchor, taken on trust.
            report.first_seq = entry.seq;
            report.anchored = entry.seq > 1;
        } else {
            if Some(entry.seq) != report.last_seq.checked_add(1) {
                return Err(broken(
                    at,
                    format!(
                        "seq {} follows seq {} (an entry is missing, duplicated or out of order)",
                        entry.seq, report.last_seq
                    ),
                ));
            }
            if entry.prev != report.head {
                return Err(broken(
                    at,
                    format!("prev does not match the hash of entry {}", report.last_seq),
                ));
            }
        }
        let hash = format::content_hash(&entry).map_err(|e| io_error(file)(e.into()))?;
        if hash != entry.hash {
            return Err(broken(at, "hash does not match its content".to_owned()));
        }
        report.entries += 1;
        report.last_seq = entry.seq;
        report.head = entry.hash;
        Ok(())
    })?;
    Ok(report)
}

/// Calls `each(file, line number (1-based), line without "\n")` for every complete line
/// of every segment, in order.
fn scan(
    dir: &Path,
    mut each: impl FnMut(&Path, u64, &[u8]) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    let segments = list_segments(dir)?;
    let mut opened_any = false;
    for (i, segment) in segments.iter().enumerate() {
        let path = segment.path.as_path();
        let file = match File::open(path) {
            Ok(file) => file,
            // Retention of a live writer removed the oldest segments since the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !opened_any => continue,
            Err(e) => return Err(io_error(path)(e)),
        };
        opened_any = true;
        let newest = i + 1 == segments.len();
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut line = Vec::new();
        let mut line_no = 0;
        loop {
            line.clear();
            if reader
                .read_until(b'\n', &mut line)
                .map_err(io_error(path))?
                == 0
            {
                break;
            }
            line_no += 1;
            if line.pop() != Some(b'\n') {
                if newest {
                    // An append in progress, or one torn by a crash (never acknowledged,
                    // and truncated by the next writer): not an entry yet.
                    debug!(file = %path.display(), line = line_no, "audit trail: skipped an incomplete last line");
                    break;
                }
                // Older segments are complete before a newer one is started.
                return Err(AuditError::Broken {
                    file: path.to_path_buf(),
                    line: line_no,
                    seq: None,
                    reason: "a segment other than the newest does not end with a newline"
                        .to_owned(),
                });
            }
            each(path, line_no, &line)?;
        }
    }
    Ok(())
}
