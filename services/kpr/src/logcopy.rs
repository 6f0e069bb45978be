//! `kpr log copy`: moves a log between backends (sled ↔ Kafka), partition by
//! partition, keeping the order within each partition and every record's bytes (so
//! event ids, digests and everything the folds read are unchanged). Positions are the
//! target backend's own. The source must not be written to while it is copied.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use kpr_eventlog::{EventLog, ReadOptions};
use kpr_eventlog_kafka::{KafkaLog, KafkaOptions};
use kpr_eventlog_sled::{SledLog, SledOptions};

/// Records per appended batch on the target.
const COPY_BATCH_RECORDS: u32 = 2000;

/// A log location: `sled:DATA_DIR` (the data directory of a register) or
/// `kafka:BROKERS/TOPIC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A sled log in a register's data directory.
    Sled(PathBuf),
    /// A Kafka topic.
    Kafka {
        /// `host:port[,host:port]`.
        brokers: String,
        /// Topic.
        topic: String,
    },
}

impl Location {
    /// Parses `sled:DIR` or `kafka:BROKERS/TOPIC`.
    pub fn parse(text: &str) -> anyhow::Result<Location> {
        if let Some(dir) = text.strip_prefix("sled:") {
            return Ok(Location::Sled(PathBuf::from(dir)));
        }
        if let Some(rest) = text.strip_prefix("kafka:") {
            let (brokers, topic) = rest
                .rsplit_once('/')
                .context("a Kafka location is kafka:BROKERS/TOPIC")?;
            anyhow::ensure!(
                !brokers.is_empty() && !topic.is_empty(),
                "a Kafka location is kafka:BROKERS/TOPIC"
            );
            return Ok(Location::Kafka {
                brokers: brokers.to_string(),
                topic: topic.to_string(),
            });
        }
        bail!("a log location is sled:DATA_DIR or kafka:BROKERS/TOPIC, not {text:?}")
    }
}

/// Either backend, chosen at the edge.
pub enum AnyLog {
    /// sled.
    Sled(SledLog),
    /// Kafka.
    Kafka(KafkaLog),
}

impl AnyLog {
    /// Opens a location; `partitions` is used when the log has to be created.
    pub async fn open(location: &Location, partitions: u32) -> anyhow::Result<AnyLog> {
        Ok(match location {
            Location::Sled(dir) => AnyLog::Sled(SledLog::open(
                &crate::serve::log_dir(dir),
                &SledOptions::standard(partitions),
            )?),
            Location::Kafka { brokers, topic } => {
                AnyLog::Kafka(KafkaLog::open(KafkaOptions::new(brokers, topic, partitions)).await?)
            }
        })
    }

    fn partition_count(&self) -> u32 {
        match self {
            AnyLog::Sled(l) => l.partition_count(),
            AnyLog::Kafka(l) => l.partition_count(),
        }
    }

    /// Reads from a partition.
    pub async fn read(
        &self,
        partition: u32,
        from: u64,
        records_max: u32,
    ) -> anyhow::Result<Vec<kpr_eventlog::Record>> {
        let options = ReadOptions {
            records_max,
            wait_ms_max: 0,
        };
        Ok(match self {
            AnyLog::Sled(l) => l.read(partition, from, options).await?,
            AnyLog::Kafka(l) => l.read(partition, from, options).await?,
        })
    }

    async fn append(&self, partition: u32, payloads: Vec<Bytes>) -> anyhow::Result<()> {
        match self {
            AnyLog::Sled(l) => l.append(partition, payloads)?.await?,
            AnyLog::Kafka(l) => l.append(partition, payloads)?.await?,
        };
        Ok(())
    }

    async fn is_empty(&self) -> anyhow::Result<bool> {
        for p in 0..self.partition_count() {
            let end = match self {
                AnyLog::Sled(l) => l.end_offset(p).await?,
                AnyLog::Kafka(l) => l.end_offset(p).await?,
            };
            if end > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Closes the log (flushes what is queued).
    pub async fn close(&self) -> anyhow::Result<()> {
        match self {
            AnyLog::Sled(l) => l.close().await?,
            AnyLog::Kafka(l) => l.close().await?,
        }
        Ok(())
    }
}

/// Copies every record of `from` into the empty log `to`; returns the count.
pub async fn copy(from: &Location, to: &Location, progress: bool) -> anyhow::Result<u64> {
    if let Location::Sled(dir) = from {
        anyhow::ensure!(
            crate::serve::log_dir(dir).exists(),
            "no sled log in {}",
            dir.display()
        );
    }
    let source = AnyLog::open(from, 1).await?;
    anyhow::ensure!(
        !source.is_empty().await?,
        "the source log is empty (a mistyped topic or directory?)"
    );
    let partitions = source.partition_count();
    let target = AnyLog::open(to, partitions).await?;
    anyhow::ensure!(
        target.partition_count() == partitions,
        "the target has {} partitions, the source {partitions}",
        target.partition_count()
    );
    anyhow::ensure!(
        target.is_empty().await?,
        "the target log is not empty; copy only into a new log"
    );
    let bar = if progress {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} log copy {pos} records {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let started = Instant::now();
    let mut copied = 0u64;
    for partition in 0..partitions {
        let mut from_offset = 0u64;
        loop {
            let records = source
                .read(partition, from_offset, COPY_BATCH_RECORDS)
                .await?;
            let Some(last) = records.last() else { break };
            from_offset = last.position.offset + 1;
            copied += records.len() as u64;
            target
                .append(partition, records.into_iter().map(|r| r.payload).collect())
                .await?;
            bar.set_position(copied);
        }
    }
    bar.finish_and_clear();
    target.close().await?;
    source.close().await?;
    tracing::info!(
        records = copied,
        seconds = started.elapsed().as_secs_f64(),
        "log copied"
    );
    Ok(copied)
}
