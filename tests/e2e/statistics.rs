//! The read side as statisticians and operators use it: tables served over HTTP by
//! `kpr serve`, current with the log, disclosure-controlled on the public listener,
//! exact (and marked so) only on the admin listener, and equal to a full rebuild.

use std::time::Duration;

use kpr::http_client::{HttpResponse, get};

use crate::support::*;

async fn fetch(url: String) -> HttpResponse {
    tokio::task::spawn_blocking(move || get(&url))
        .await
        .unwrap()
        .unwrap()
}

fn position_total(response: &HttpResponse) -> u64 {
    response
        .header("x-kpr-log-position")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| {
            pair.split_once(':')
                .and_then(|(_, o)| o.parse::<u64>().ok())
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_tables_are_current_protected_and_equal_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve_config = config(dir.path());
    serve_config.batch_events_max = 1000;
    serve_config.message_bytes_max = 16 * 1024 * 1024;
    let server = InProcess::start(serve_config).await;
    let mut demo = kpr_synth::DemoConfig::standard(today());
    demo.persons = 300;
    let summary = kpr::demo::run(&server.endpoint, &demo, false)
        .await
        .unwrap();
    assert_eq!(summary.rejected_batches, 0);
    let year = today().year() - 1;
    let query = |rest: &str| format!("region=EAK&year={year}&{rest}");

    // Current: the read model catches up with every acknowledged event.
    let mut caught_up = false;
    for _ in 0..200 {
        let r = fetch(format!(
            "{}/v1/tables/T2?{}",
            server.admin,
            query("format=csv&exact=true")
        ))
        .await;
        if position_total(&r) == summary.stored {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        caught_up,
        "the read model did not reach the {} stored events",
        summary.stored
    );

    // Public: disclosure-controlled, never exact.
    let public = fetch(format!(
        "{}/v1/tables/T2?{}",
        server.stats,
        query("format=csv")
    ))
    .await;
    assert_eq!(public.status, 200, "{}", public.body);
    assert_eq!(public.header("x-kpr-exact"), Some("false"));
    assert_eq!(public.header("x-kpr-definition-version"), Some("1"));
    assert!(
        public
            .header("content-type")
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        public.body.contains(",:"),
        "a 300-person population has small cells to suppress"
    );
    let refused = fetch(format!(
        "{}/v1/tables/T2?{}",
        server.stats,
        query("format=csv&exact=true")
    ))
    .await;
    assert_eq!(refused.status, 403);
    let json = fetch(format!(
        "{}/v1/tables/I1?{}",
        server.stats,
        query("format=json-stat")
    ))
    .await;
    assert_eq!(json.status, 200);
    assert!(
        json.body
            .starts_with("{\"version\":\"2.0\",\"class\":\"dataset\""),
        "{}",
        &json.body[..80.min(json.body.len())]
    );
    assert!(json.body.contains("\"log_position\""));
    assert_eq!(
        fetch(format!("{}/v1/tables/X7?{}", server.stats, query("")))
            .await
            .status,
        404
    );
    assert_eq!(
        fetch(format!("{}/v1/tables/T1?region=EAK", server.stats))
            .await
            .status,
        400
    );

    // Admin: exact and marked; the exact numbers equal a rebuild from the log.
    let figures = [
        "T1", "T2", "T3", "T4", "I1", "I4", "I6", "I8", "I12", "I14", "I15", "I16", "I17",
    ];
    let mut served = Vec::new();
    for figure in figures {
        let r = fetch(format!(
            "{}/v1/tables/{figure}?{}",
            server.admin,
            query("format=csv&exact=true")
        ))
        .await;
        assert_eq!(r.status, 200, "{figure}: {}", r.body);
        assert_eq!(r.header("x-kpr-exact"), Some("true"));
        assert!(
            !r.body.contains(",:"),
            "{figure}: exact tables suppress nothing"
        );
        served.push((figure, r));
    }
    server.stop().await;
    for (figure, r) in served {
        let rebuilt =
            kpr::stats::offline_table(dir.path(), figure, &query("format=csv&exact=true"))
                .await
                .unwrap();
        assert_eq!(
            rebuilt.body, r.body,
            "{figure}: incremental and rebuilt tables differ"
        );
        assert_eq!(
            Some(rebuilt.log_position.as_str()),
            r.header("x-kpr-log-position")
        );
    }
}
