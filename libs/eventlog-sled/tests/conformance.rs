//! The event-log conformance suite against a real sled database in a temp dir.

// Test harness code: a failed setup must panic.
#![allow(clippy::expect_used)]

use kpr_eventlog::testsuite::Harness;
use kpr_eventlog_sled::{SledLog, SledOptions};

struct Sled {
    dirs: Vec<tempfile::TempDir>,
}

impl Harness for Sled {
    type Log = SledLog;

    async fn create(&mut self, partition_count: u32) -> SledLog {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = SledLog::open(dir.path(), &SledOptions::standard(partition_count)).expect("open");
        self.dirs.push(dir);
        log
    }

    async fn reopen(&mut self) -> SledLog {
        let dir = self.dirs.last().expect("create before reopen");
        SledLog::open(dir.path(), &SledOptions::standard(1)).expect("reopen")
    }
}

kpr_eventlog::eventlog_conformance!(Sled { dirs: Vec::new() });
