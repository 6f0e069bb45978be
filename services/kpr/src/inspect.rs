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
/// checking checksums, decoding and offset order.
pub async fn scan(log_dir: &Path) -> anyhow::Result<LogReport> {
    if !log_dir.exists() {
        anyhow::bail!("no log at {}", log_dir.display());
    }
    let log = SledLog::open(log_dir, &SledOptions::standard(1))
        .with_context(|| format!("cannot open {}", log_dir.display()))?;
    let mut report = LogReport::default();
    for partition in 0..log.partition_count() {
        let mut from = 0u64;
        let mut last: Option<u64> = None;
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
