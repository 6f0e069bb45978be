//! The event log interface the register is built on, what both the embedded sled
//! backend and Apache Kafka can promise, and nothing more: a fixed number of
//! partitions, a total order within each partition, reads from any offset, waiting for
//! new records, and durability once an append's ticket resolves.
//!
//! **Architecture invariant:** this crate moves opaque payloads. It knows nothing of
//! municipalities, events or protobuf; callers choose the partition with
//! [`partition_for`], the one partitioner every backend shares, so a replay gives the
//! same result on any backend.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::oneshot;

pub mod memory;
#[cfg(feature = "testsuite")]
pub mod testsuite;

/// Where a record is stored. Offsets strictly increase within a partition; gaps are
/// allowed, so never compute `offset + 1`: continue from the last record read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Partition number, `0..partition_count`.
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
}

/// One stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its position.
    pub position: Position,
    /// Its payload, as appended.
    pub payload: Bytes,
}

/// Bounds of one read.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Most records to return.
    pub records_max: u32,
    /// How long to wait for a record when the partition is caught up; an empty result
    /// after the wait means "caught up".
    pub wait_ms_max: u32,
}

/// Errors of a log backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The bounded append queue is full; retry later.
    #[error("the log's append queue is full ({capacity_batches} batches); retry later")]
    QueueFull {
        /// Queue capacity in batches.
        capacity_batches: u32,
    },
    /// The log cannot take writes now (shutting down, or a write failed and the log
    /// stopped to protect what it holds).
    #[error("the log cannot accept writes: {0}")]
    Unavailable(String),
    /// A partition number outside `0..partition_count`.
    #[error("partition {partition} does not exist (the log has {count})")]
    NoSuchPartition {
        /// Requested partition.
        partition: u32,
        /// Number of partitions.
        count: u32,
    },
    /// A stored record failed its checksum or framing.
    #[error("record at partition {partition} offset {offset} is corrupt: {reason}")]
    Corrupt {
        /// Partition.
        partition: u32,
        /// Offset.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Any other storage failure.
    #[error("storage error: {0}")]
    Storage(String),
}

impl LogError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LogError::QueueFull { .. } | LogError::Unavailable(_))
    }
}

/// Resolves to the positions of an appended batch once it is durable.
#[derive(Debug)]
pub struct AppendTicket {
    receiver: oneshot::Receiver<Result<Vec<Position>, LogError>>,
}

impl AppendTicket {
    /// A ticket and the sender that resolves it.
    pub fn channel() -> (
        oneshot::Sender<Result<Vec<Position>, LogError>>,
        AppendTicket,
    ) {
        let (sender, receiver) = oneshot::channel();
        (sender, AppendTicket { receiver })
    }
}

impl Future for AppendTicket {
    type Output = Result<Vec<Position>, LogError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver).poll(cx).map(|r| match r {
            Ok(result) => result,
            Err(_) => Err(LogError::Unavailable(
                "the log writer stopped before the batch was durable".into(),
            )),
        })
    }
}

/// A partitioned, durable, append-only log.
pub trait EventLog: Send + Sync + 'static {
    /// Number of partitions, fixed when the log was created.
    fn partition_count(&self) -> u32;

    /// Enqueues one batch for `partition` and returns at once. The batch is stored
    /// whole or not at all, its records get consecutive positions in call order, and
    /// batches of one partition are stored in the order of the calls that enqueued
    /// them. The ticket resolves once the batch is durable. A full queue is refused
    /// at once with [`LogError::QueueFull`].
    fn append(&self, partition: u32, payloads: Vec<Bytes>) -> Result<AppendTicket, LogError>;

    /// Reads up to `records_max` durable records of `partition` with offset
    /// `>= from_offset`, waiting up to `wait_ms_max` when there are none yet.
    fn read(
        &self,
        partition: u32,
        from_offset: u64,
        options: ReadOptions,
    ) -> impl Future<Output = Result<Vec<Record>, LogError>> + Send;

    /// The offset after the last durable record of `partition` (0 when empty): a
    /// reader that has read everything below it is caught up.
    fn end_offset(&self, partition: u32) -> impl Future<Output = Result<u64, LogError>> + Send;

    /// Stops taking appends, waits until every enqueued batch is durable, and
    /// releases the writer. Reads keep working.
    fn close(&self) -> impl Future<Output = Result<(), LogError>> + Send;
}

/// A log position written the one way answers, headers, manifests and log lines write
/// it: `partition:n` pairs in partition order joined by commas (`0:120,3:55`).
pub fn position_text(position: &[(u32, u64)]) -> String {
    let mut pairs = position.to_vec();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(p, n)| format!("{p}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The partition of a key (FNV-1a, 32 bit, modulo the count). Every backend and every
/// caller uses this one function, so a log copied between backends keeps its order.
pub fn partition_for(key: &[u8], partition_count: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partition_count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitioner_is_stable() {
        // Pinned values: changing the partitioner would reorder every existing log.
        // FNV-1a 32 computed apart from this code: "0301" hashes to 4 192 864 423.
        assert_eq!(partition_for(b"0301", 16), 7);
        assert_eq!(partition_for(b"0301", 7), 6);
        assert_eq!(partition_for(b"4601", 16), 4);
        assert_eq!(partition_for(b"5001", 16), 3);
        assert_eq!(partition_for(b"1508", 16), 11);
        assert_eq!(partition_for(b"1508", 7), 1);
        assert_eq!(partition_for(b"", 16), 0x811c_9dc5 % 16);
        assert_eq!(partition_for(b"0301", 1), 0);
        assert_eq!(partition_for(b"0301", 0), 0);
    }
}
