//! Golden tables as served: a fixed synthetic population pushed through gRPC, then
//! tables fetched over HTTP and compared byte for byte with the files under
//! services/statistics/testdata/served_*. Refresh with UPDATE_EXPECT=1 and review the
//! diff like code. The Python suite reads the same files with pyjstat.

use std::path::PathBuf;
use std::time::Duration;

use kpr_domain::date::Date;

use crate::support::*;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../statistics/testdata")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_tables_match_their_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve_config = config(dir.path());
    serve_config.batch_events_max = 1000;
    serve_config.message_bytes_max = 16 * 1024 * 1024;
    let server = InProcess::start(serve_config).await;
    let mut demo = kpr_synth::DemoConfig::standard(Date::from_ymd(2025, 6, 30).unwrap());
    demo.seed = 7;
    demo.persons = 150;
    let summary = kpr::demo::run(&server.endpoint, &client_config(&server.data), &demo, false)
        .await
        .unwrap();
    assert_eq!(summary.rejected_batches, 0);
    let mut caught_up = false;
    for _ in 0..200 {
        let url = format!(
            "{}/v1/tables/T2?region=EAK&year=2024&format=csv&exact=true",
            server.admin
        );
        let r = tokio::task::spawn_blocking(move || http_get(&url))
            .await
            .unwrap()
            .unwrap();
        let total: u64 = r
            .header("x-kpr-log-position")
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.split_once(':')?.1.parse::<u64>().ok())
            .sum();
        if total == summary.stored {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(caught_up);
    let update = std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, figure, region, format) in [
        ("served_t2", "T2", "EAK", "json-stat"),
        ("served_t2", "T2", "EAK", "csv"),
        ("served_i1", "I1", "0301", "json-stat"),
        ("served_i1", "I1", "0301", "csv"),
        ("served_t1", "T1", "EK46", "json-stat"),
        ("served_t1", "T1", "EK46", "csv"),
        ("served_i15", "I15", "EAK", "json-stat"),
        ("served_i15", "I15", "EAK", "csv"),
    ] {
        let url = format!(
            "{}/v1/tables/{figure}?region={region}&year=2024&format={format}",
            server.stats
        );
        let r = tokio::task::spawn_blocking(move || http_get(&url))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 200, "{figure}: {}", r.body);
        let path = golden_dir().join(format!(
            "{name}.{}",
            if format == "csv" { "csv" } else { "json" }
        ));
        if update {
            std::fs::write(&path, &r.body).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(r.body.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    server.stop().await;
    assert!(
        stale.is_empty(),
        "served tables differ from their golden files (UPDATE_EXPECT=1 refreshes them): {stale:?}"
    );
}
