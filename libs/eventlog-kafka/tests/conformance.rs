//! The event-log conformance suite against a real Kafka-protocol broker, named by
//! `KPR_TEST_KAFKA_BROKERS` (scripts/test.sh starts one on loopback). Without a broker
//! every check fails and says why: a skipped check must not look like a pass.

// Test harness code: a failed setup must panic.
#![allow(clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU32, Ordering};

use kpr_eventlog::testsuite::Harness;
use kpr_eventlog_kafka::{KafkaLog, KafkaOptions};

static TOPICS: AtomicU32 = AtomicU32::new(0);

fn brokers() -> String {
    std::env::var("KPR_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!("KPR_TEST_KAFKA_BROKERS is not set: the Kafka conformance suite needs a broker (scripts/test.sh starts one on 127.0.0.1)")
    })
}

struct Kafka {
    topic: Option<String>,
}

impl Harness for Kafka {
    type Log = KafkaLog;

    async fn create(&mut self, partition_count: u32) -> KafkaLog {
        let topic = format!(
            "kpr-conformance-{}-{}",
            std::process::id(),
            TOPICS.fetch_add(1, Ordering::SeqCst)
        );
        self.topic = Some(topic.clone());
        KafkaLog::open(KafkaOptions::new(&brokers(), &topic, partition_count))
            .await
            .expect("open")
    }

    async fn reopen(&mut self) -> KafkaLog {
        let topic = self.topic.clone().expect("create before reopen");
        KafkaLog::open(KafkaOptions::new(&brokers(), &topic, 1))
            .await
            .expect("reopen")
    }
}

kpr_eventlog::eventlog_conformance!(Kafka { topic: None });
