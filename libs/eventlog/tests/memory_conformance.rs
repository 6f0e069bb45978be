//! The conformance suite against the in-memory log.

// Test harness code: a failed setup must panic.
#![allow(clippy::expect_used)]

use kpr_eventlog::memory::MemoryLog;
use kpr_eventlog::testsuite::Harness;

struct Memory {
    last: Option<MemoryLog>,
}

impl Harness for Memory {
    type Log = MemoryLog;

    async fn create(&mut self, partition_count: u32) -> MemoryLog {
        let log = MemoryLog::new(partition_count);
        self.last = Some(log.reopen());
        log
    }

    async fn reopen(&mut self) -> MemoryLog {
        self.last.as_ref().expect("create before reopen").reopen()
    }
}

kpr_eventlog::eventlog_conformance!(Memory { last: None });
