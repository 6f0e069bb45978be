//! The conformance suite every [`EventLog`] backend must pass (enabled by the
//! `testsuite` feature). A backend's tests implement [`Harness`] and invoke
//! [`eventlog_conformance!`](crate::eventlog_conformance), which makes one `#[tokio::test]` per check.

// This module is test code shipped behind a feature: a failed check must panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{EventLog, LogError, Position, ReadOptions, partition_for};

/// How the suite gets logs from a backend.
pub trait Harness: Send {
    /// The backend.
    type Log: EventLog;
    /// A new, empty log with `partition_count` partitions.
    fn create(&mut self, partition_count: u32) -> impl Future<Output = Self::Log> + Send;
    /// Opens again the log last created, after `close` and drop of every handle.
    fn reopen(&mut self) -> impl Future<Output = Self::Log> + Send;
}

fn opts(records_max: u32, wait_ms_max: u32) -> ReadOptions {
    ReadOptions {
        records_max,
        wait_ms_max,
    }
}

fn payload(tag: &str, i: usize) -> Bytes {
    Bytes::from(format!("{tag}-{i:05}"))
}

async fn read_all<L: EventLog>(log: &L, partition: u32, from: u64) -> Vec<crate::Record> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let batch = log
            .read(partition, next, opts(1000, 0))
            .await
            .expect("read");
        let Some(last) = batch.last() else { return out };
        next = last.position.offset + 1;
        out.extend(batch);
    }
}

/// Appended payloads read back as they were, at the positions the ticket returned.
pub async fn round_trip<H: Harness>(h: &mut H) {
    let log = h.create(4).await;
    let payloads: Vec<Bytes> = (0..10).map(|i| payload("rt", i)).collect();
    let positions = log
        .append(2, payloads.clone())
        .expect("enqueue")
        .await
        .expect("durable");
    assert_eq!(positions.len(), 10);
    assert!(positions.iter().all(|p| p.partition == 2));
    let records = read_all(&log, 2, 0).await;
    assert_eq!(
        records
            .iter()
            .map(|r| r.payload.clone())
            .collect::<Vec<_>>(),
        payloads
    );
    assert_eq!(
        records.iter().map(|r| r.position).collect::<Vec<_>>(),
        positions
    );
    assert!(
        read_all(&log, 1, 0).await.is_empty(),
        "other partitions stay empty"
    );
    // Offsets may have gaps: the end lies above the last record, and nothing is there.
    let end = log.end_offset(2).await.expect("end");
    assert!(end > positions[9].offset);
    assert!(
        log.read(2, end, opts(10, 0))
            .await
            .expect("read at end")
            .is_empty()
    );
    assert!(
        log.read(2, positions[9].offset + 1, opts(10, 0))
            .await
            .expect("read after last")
            .is_empty()
    );
    log.close().await.expect("close");
}

/// Offsets strictly increase in the order batches were enqueued, per partition.
pub async fn per_partition_order<H: Harness>(h: &mut H) {
    let log = h.create(3).await;
    let mut tickets = Vec::new();
    for i in 0..30 {
        let partition = (i % 3) as u32;
        tickets.push((
            partition,
            i,
            log.append(partition, vec![payload("ord", i), payload("ord2", i)])
                .expect("enqueue"),
        ));
    }
    let mut last: [Option<Position>; 3] = [None; 3];
    for (partition, _, ticket) in tickets {
        let positions = ticket.await.expect("durable");
        assert_eq!(positions.len(), 2);
        assert!(positions[0] < positions[1]);
        if let Some(previous) = last[partition as usize] {
            assert!(
                positions[0] > previous,
                "a later batch got an earlier offset"
            );
        }
        last[partition as usize] = Some(positions[1]);
    }
    for partition in 0..3u32 {
        let records = read_all(&log, partition, 0).await;
        let expected: Vec<Bytes> = (0..30)
            .filter(|i| i % 3 == partition as usize)
            .flat_map(|i| [payload("ord", i), payload("ord2", i)])
            .collect();
        assert_eq!(
            records
                .iter()
                .map(|r| r.payload.clone())
                .collect::<Vec<_>>(),
            expected
        );
        assert!(
            records
                .windows(2)
                .all(|w| w[0].position.offset < w[1].position.offset)
        );
    }
    log.close().await.expect("close");
}

/// A read from the middle starts at that record; `records_max` is respected.
pub async fn read_from_middle<H: Harness>(h: &mut H) {
    let log = h.create(1).await;
    let positions = log
        .append(0, (0..20).map(|i| payload("mid", i)).collect())
        .expect("enqueue")
        .await
        .expect("durable");
    let from = positions[7].offset;
    let records = log.read(0, from, opts(5, 0)).await.expect("read");
    assert_eq!(records.len(), 5);
    assert_eq!(records[0].position, positions[7]);
    assert_eq!(records[0].payload, payload("mid", 7));
    assert_eq!(records[4].payload, payload("mid", 11));
    let rest = read_all(&log, 0, from).await;
    assert_eq!(rest.len(), 13);
    let none = log
        .read(0, positions[19].offset + 1, opts(5, 0))
        .await
        .expect("read at end");
    assert!(none.is_empty());
    log.close().await.expect("close");
}

/// A caught-up read waits and returns empty; an append during the wait wakes it.
pub async fn caught_up_reads_wait<H: Harness>(h: &mut H)
where
    H::Log: 'static,
{
    let log = Arc::new(h.create(2).await);
    let end = log.end_offset(1).await.expect("end");
    let started = Instant::now();
    let empty = log.read(1, end, opts(10, 100)).await.expect("read");
    assert!(empty.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "a caught-up read returned before its wait"
    );

    let reader = {
        let log = Arc::clone(&log);
        tokio::spawn(async move { log.read(1, end, opts(10, 30_000)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.append(1, vec![payload("wake", 0)])
        .expect("enqueue")
        .await
        .expect("durable");
    let woke = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("reader woke")
        .expect("join")
        .expect("read");
    assert_eq!(woke.len(), 1);
    assert_eq!(woke[0].payload, payload("wake", 0));
    log.close().await.expect("close");
}

/// Batches appended concurrently are stored whole: each batch's records are
/// contiguous in its partition and in batch order.
pub async fn atomic_batches<H: Harness>(h: &mut H)
where
    H::Log: 'static,
{
    let log = Arc::new(h.create(2).await);
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for batch in 0..10 {
                let payloads: Vec<Bytes> = (0..(1 + (writer + batch) % 7))
                    .map(|i| Bytes::from(format!("w{writer}-b{batch}-{i}")))
                    .collect();
                let positions = loop {
                    match log.append(writer as u32 % 2, payloads.clone()) {
                        Ok(ticket) => break ticket.await.expect("durable"),
                        Err(LogError::QueueFull { .. }) => {
                            tokio::time::sleep(Duration::from_millis(1)).await
                        }
                        Err(e) => panic!("append failed: {e}"),
                    }
                };
                out.push((payloads, positions));
            }
            out
        }));
    }
    let mut batches = Vec::new();
    for t in tasks {
        batches.extend(t.await.expect("join"));
    }
    for partition in 0..2u32 {
        let records = read_all(&*log, partition, 0).await;
        for (payloads, positions) in batches.iter().filter(|(_, p)| p[0].partition == partition) {
            let start = records
                .iter()
                .position(|r| r.position == positions[0])
                .expect("batch start stored");
            let stored: Vec<Bytes> = records[start..start + payloads.len()]
                .iter()
                .map(|r| r.payload.clone())
                .collect();
            assert_eq!(&stored, payloads, "a batch was split or interleaved");
        }
        let expected: usize = batches
            .iter()
            .filter(|(_, p)| p[0].partition == partition)
            .map(|(p, _)| p.len())
            .sum();
        assert_eq!(
            records.len(),
            expected,
            "records stored that no batch acknowledged, or lost"
        );
    }
    log.close().await.expect("close");
}

/// Everything acknowledged survives close and reopen; appends continue after it.
pub async fn survives_reopen<H: Harness>(h: &mut H) {
    let log = h.create(3).await;
    let first = log
        .append(1, (0..50).map(|i| payload("re", i)).collect())
        .expect("enqueue")
        .await
        .expect("durable");
    log.close().await.expect("close");
    assert!(
        log.append(1, vec![payload("late", 0)]).is_err(),
        "a closed log took an append"
    );
    drop(log);
    let log = h.reopen().await;
    assert_eq!(log.partition_count(), 3);
    let records = read_all(&log, 1, 0).await;
    assert_eq!(records.len(), 50);
    assert_eq!(
        records.iter().map(|r| r.position).collect::<Vec<_>>(),
        first
    );
    let next = log
        .append(1, vec![payload("after", 0)])
        .expect("enqueue")
        .await
        .expect("durable");
    assert!(next[0].offset > first[49].offset);
    log.close().await.expect("close");
}

/// Partitions outside the log are refused; empty batches store nothing.
pub async fn bounds<H: Harness>(h: &mut H) {
    let log = h.create(2).await;
    assert!(matches!(
        log.append(2, vec![payload("x", 0)]),
        Err(LogError::NoSuchPartition {
            partition: 2,
            count: 2
        })
    ));
    assert!(log.read(5, 0, opts(1, 0)).await.is_err());
    let none = log
        .append(0, Vec::new())
        .expect("enqueue")
        .await
        .expect("durable");
    assert!(none.is_empty());
    assert_eq!(log.end_offset(0).await.expect("end"), 0);
    assert!(partition_for(b"0301", log.partition_count()) < 2);
    log.close().await.expect("close");
}

/// Generates one `#[tokio::test]` per conformance check for a harness expression.
#[macro_export]
macro_rules! eventlog_conformance {
    ($harness:expr) => {
        $crate::eventlog_conformance!(@each $harness; round_trip per_partition_order read_from_middle caught_up_reads_wait atomic_batches survives_reopen bounds);
    };
    (@each $harness:expr; $($check:ident)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let mut harness = $harness;
                $crate::testsuite::$check(&mut harness).await;
            }
        )*
    };
}
