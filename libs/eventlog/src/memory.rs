//! An in-memory log: the reference backend for unit tests and the conformance suite.
//! It is durable only as long as the process lives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::{AppendTicket, EventLog, LogError, Position, ReadOptions, Record};

/// A log kept in memory.
#[derive(Debug)]
pub struct MemoryLog {
    partitions: Arc<Vec<Mutex<Vec<Bytes>>>>,
    closed: Mutex<bool>,
    appended: Arc<Notify>,
}

impl MemoryLog {
    /// An empty log with `partition_count` partitions.
    pub fn new(partition_count: u32) -> MemoryLog {
        MemoryLog {
            partitions: Arc::new(
                (0..partition_count.max(1))
                    .map(|_| Mutex::new(Vec::new()))
                    .collect(),
            ),
            closed: Mutex::new(false),
            appended: Arc::new(Notify::new()),
        }
    }

    /// A new handle on the same records, open for appends: what reopening a durable
    /// log is for the other backends.
    pub fn reopen(&self) -> MemoryLog {
        MemoryLog {
            partitions: Arc::clone(&self.partitions),
            closed: Mutex::new(false),
            appended: Arc::clone(&self.appended),
        }
    }

    fn partition(&self, partition: u32) -> Result<&Mutex<Vec<Bytes>>, LogError> {
        self.partitions
            .get(partition as usize)
            .ok_or(LogError::NoSuchPartition {
                partition,
                count: self.partition_count(),
            })
    }
}

fn poisoned<T>(_: T) -> LogError {
    LogError::Storage("memory log lock poisoned".into())
}

impl EventLog for MemoryLog {
    fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    fn append(&self, partition: u32, payloads: Vec<Bytes>) -> Result<AppendTicket, LogError> {
        if *self.closed.lock().map_err(poisoned)? {
            return Err(LogError::Unavailable("the log is closed".into()));
        }
        let mut records = self.partition(partition)?.lock().map_err(poisoned)?;
        let first = records.len() as u64;
        let positions = (0..payloads.len() as u64)
            .map(|i| Position {
                partition,
                offset: first + i,
            })
            .collect();
        records.extend(payloads);
        drop(records);
        self.appended.notify_waiters();
        let (sender, ticket) = AppendTicket::channel();
        let _ = sender.send(Ok(positions));
        Ok(ticket)
    }

    async fn read(
        &self,
        partition: u32,
        from_offset: u64,
        options: ReadOptions,
    ) -> Result<Vec<Record>, LogError> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(u64::from(options.wait_ms_max));
        loop {
            let notified = self.appended.notified();
            {
                let records = self.partition(partition)?.lock().map_err(poisoned)?;
                let start = from_offset.min(records.len() as u64) as usize;
                let end = records.len().min(start + options.records_max as usize);
                if start < end {
                    return Ok(records[start..end]
                        .iter()
                        .enumerate()
                        .map(|(i, p)| Record {
                            position: Position {
                                partition,
                                offset: (start + i) as u64,
                            },
                            payload: p.clone(),
                        })
                        .collect());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        Ok(self.partition(partition)?.lock().map_err(poisoned)?.len() as u64)
    }

    async fn close(&self) -> Result<(), LogError> {
        *self.closed.lock().map_err(poisoned)? = true;
        Ok(())
    }
}
