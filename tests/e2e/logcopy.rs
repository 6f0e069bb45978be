//! `kpr log copy` sled → Kafka → sled round-trips the log exactly (needs the broker
//! named by KPR_TEST_KAFKA_BROKERS; scripts/test.sh starts one on loopback).

use kpr::logcopy::{Location, copy};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_to_kafka_to_sled_round_trips_exactly() {
    let brokers = std::env::var("KPR_TEST_KAFKA_BROKERS")
        .unwrap_or_else(|_| panic!("KPR_TEST_KAFKA_BROKERS is not set: this test needs a Kafka-protocol broker (scripts/test.sh starts one)"));
    let first = tempfile::tempdir().unwrap();
    let mut serve_config = config(first.path());
    serve_config.batch_events_max = 1000;
    serve_config.message_bytes_max = 16 * 1024 * 1024;
    let server = InProcess::start(serve_config).await;
    let mut demo = kpr_synth::DemoConfig::standard(today());
    demo.persons = 150;
    let summary = kpr::demo::run(&server.endpoint, &client_config(&server.data), &demo, false)
        .await
        .unwrap();
    server.stop().await;

    let topic = format!("kpr-copy-{}", std::process::id());
    let kafka = Location::Kafka { brokers, topic };
    let second = tempfile::tempdir().unwrap();
    assert_eq!(
        copy(&Location::Sled(first.path().to_path_buf()), &kafka, false)
            .await
            .unwrap(),
        summary.stored
    );
    assert!(
        copy(&Location::Sled(first.path().to_path_buf()), &kafka, false)
            .await
            .is_err(),
        "copying into a non-empty log is refused"
    );
    assert_eq!(
        copy(&kafka, &Location::Sled(second.path().to_path_buf()), false)
            .await
            .unwrap(),
        summary.stored
    );

    // The same records in the same order and at the same positions per partition.
    let original = read_log(first.path()).await;
    let round_trip = read_log(second.path()).await;
    assert_eq!(original.len() as u64, summary.stored);
    assert_eq!(original, round_trip);
    // And so the same statistics, byte for byte.
    let year = today().year() - 1;
    for figure in ["T2", "I1", "I15"] {
        let query = format!("region=EAK&year={year}&format=json-stat");
        let a = kpr::stats::offline_table(first.path(), figure, &query)
            .await
            .unwrap();
        let b = kpr::stats::offline_table(second.path(), figure, &query)
            .await
            .unwrap();
        assert_eq!(a.body, b.body, "{figure}");
    }
}
