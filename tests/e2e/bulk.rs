//! Bulk loading (`kpr::bulk`, behind `kpr demo --national` and the benchmarks) writes
//! what gRPC ingest writes: the same stored events, in the same order, with the same
//! idempotency digests, since both call `kpr_ingest::prepare`.

use std::sync::Arc;

use kpr_eventlog::EventLog;
use kpr_eventlog_sled::{SledLog, SledOptions};
use kpr_ingest::Pseudonymiser;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_loading_stores_what_grpc_ingest_stores() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    let mut serve_config = config(&served);
    serve_config.batch_events_max = 1000;
    serve_config.message_bytes_max = 16 * 1024 * 1024;
    let server = InProcess::start(serve_config).await;
    let mut demo = kpr_synth::DemoConfig::standard(today());
    demo.persons = 150;
    let summary = kpr::demo::run(&server.endpoint, &client_config(&server.data), &demo, false)
        .await
        .unwrap();
    assert_eq!(summary.rejected_batches, 0);
    server.stop().await;
    let ingested = read_log(&served).await;

    let key = Pseudonymiser::read_file(&served.join("pseudonym.key")).unwrap();
    let bulk_dir = dir.path().join("bulk");
    let log = Arc::new(
        SledLog::open(&kpr::serve::log_dir(&bulk_dir), &SledOptions::standard(4)).unwrap(),
    );
    let written = kpr::bulk::write_log(
        &*log,
        kpr_synth::generate(&demo).into_iter(),
        today(),
        &key,
        |_| {},
    )
    .await
    .unwrap();
    log.close().await.unwrap();
    drop(log);
    let bulk = read_log(&bulk_dir).await;
    assert_eq!(written as usize, ingested.len());
    assert_eq!(bulk.len(), ingested.len());
    // The demo sends each municipality over a stream of its own (one token each), so
    // municipalities sharing a partition interleave in arrival order; within each
    // municipality the order is the one sent, on both paths.
    let by_municipality = |records: &[kpr_eventlog::Record]| {
        let mut out: std::collections::BTreeMap<(u32, String), Vec<_>> = Default::default();
        for r in records {
            let (event, meta) = kpr_wire::decode_stored(&r.payload).unwrap();
            out.entry((
                r.position.partition,
                event.envelope.municipality.to_string(),
            ))
            .or_default()
            .push((event, meta.content_digest));
        }
        out
    };
    let (a, b) = (by_municipality(&ingested), by_municipality(&bulk));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (key, events) in &a {
        assert_eq!(events, &b[key], "partition and municipality {key:?}");
    }
}
