//! `kpr inspect` and `kpr verify`: read a stopped register's log and report.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use kpr_eventlog::{EventLog, ReadOptions};
use kpr_eventlog_sled::{SledLog, SledOptions};
use kpr_wire::decode_stored;

/// What a full read of the log found.
#[derive(Debug, Default)]
pub struct LogReport {
    /// Records per partition.
    pub per_partition: BTreeMap<u32, u64>,
    /// Records per municipality.
    pub per_municipality: BTreeMap<String, u64>,
    /// Records per payload kind.
    pub per_kind: BTreeMap<&'static str, u64>,
    /// Total records.
    pub records: u64,
    /// Problems found (checksum, decode, order).
    pub problems: Vec<String>,
}

/// Reads every record of the log in `log_dir` (sled; the register must be stopped),
/// checking checksums, decoding and offset order. The log itself is never written:
/// sled writes on open (recovery, a new segment), so the scan opens a private copy,
/// and `log_dir` may be read-only. A log sled cannot read (it panics on some damage)
/// is reported as damage of that directory, not as a crash.
pub async fn scan(log_dir: &Path) -> anyhow::Result<LogReport> {
    if !log_dir.exists() {
        anyhow::bail!("no log at {}", log_dir.display());
    }
    let copy = private_copy(log_dir)?;
    let copied = copy.path().to_path_buf();
    match tokio::spawn(async move { scan_copy(&copied).await }).await {
        Ok(result) => {
            result.with_context(|| format!("cannot read the log in {}", log_dir.display()))
        }
        Err(e) => {
            let reason = e
                .try_into_panic()
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_else(|| "the reader stopped".into());
            anyhow::bail!(
                "the log in {} is damaged: sled cannot read it ({reason})",
                log_dir.display()
            )
        }
    }
}

/// A private copy of the sled log in `log_dir`, for commands that only read it: sled
/// writes on open (recovery, a new segment), and the original may be read-only or a
/// backup that must stay as it is. Removed when dropped.
pub fn private_copy(log_dir: &Path) -> anyhow::Result<tempfile::TempDir> {
    let copy = tempfile::Builder::new()
        .prefix("kpr-read-")
        .tempdir()
        .context("cannot make a private copy of the log to read (set TMPDIR)")?;
    copy_dir(log_dir, copy.path())?;
    Ok(copy)
}

/// Copies the files of a sled directory (one level of subdirectories: `blobs/`).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
        }
    }
    Ok(())
}

async fn scan_copy(log_dir: &Path) -> anyhow::Result<LogReport> {
    let log = SledLog::open(log_dir, &SledOptions::standard(1)).context("sled cannot open it")?;
    let mut report = LogReport::default();
    let stored_heads = log.chain_heads()?;
    for partition in 0..log.partition_count() {
        let mut from = 0u64;
        let mut last: Option<u64> = None;
        let mut head = kpr_eventlog_sled::Head::EMPTY;
        loop {
            let records = match log
                .read(
                    partition,
                    from,
                    ReadOptions {
                        records_max: 8192,
                        wait_ms_max: 0,
                    },
                )
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    report.problems.push(e.to_string());
                    break;
                }
            };
            let Some(tail) = records.last() else { break };
            from = tail.position.offset + 1;
            for record in records {
                if let Some(previous) = last
                    && record.position.offset <= previous
                {
                    report.problems.push(format!(
                        "partition {partition}: offset {} after {previous}",
                        record.position.offset
                    ));
                }
                last = Some(record.position.offset);
                head = head.next(&record.payload);
                *report.per_partition.entry(partition).or_default() += 1;
                report.records += 1;
                match decode_stored(&record.payload) {
                    Ok((event, _)) => {
                        *report
                            .per_municipality
                            .entry(event.envelope.municipality.to_string())
                            .or_default() += 1;
                        *report
                            .per_kind
                            .entry(event.payload.kind().field_name())
                            .or_default() += 1;
                    }
                    Err(e) => report.problems.push(format!(
                        "partition {partition} offset {}: {e}",
                        record.position.offset
                    )),
                }
            }
        }
        // The records read must hash to the chain head stored with them (which the
        // commit record beside the log was checked against when the log opened).
        if let Some(stored) = stored_heads.get(partition as usize)
            && *stored != head
        {
            report.problems.push(format!(
                "partition {partition}: {} records read hash to {}, the stored chain head says {} records, {}",
                head.records,
                head.chain_hex(),
                stored.records,
                stored.chain_hex()
            ));
        }
    }
    log.close().await?;
    Ok(report)
}

/// The report as sorted text for the terminal.
pub fn render(report: &LogReport) -> String {
    let mut out = format!("records: {}\n", report.records);
    out.push_str("by partition:\n");
    for (p, n) in &report.per_partition {
        out.push_str(&format!("  {p:>4}  {n}\n"));
    }
    out.push_str("by municipality:\n");
    for (m, n) in &report.per_municipality {
        out.push_str(&format!("  {m}  {n}\n"));
    }
    out.push_str("by event kind:\n");
    for (k, n) in &report.per_kind {
        out.push_str(&format!("  {k:<24}  {n}\n"));
    }
    out
}
