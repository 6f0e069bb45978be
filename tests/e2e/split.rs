//! The split deployment as separate processes against a real Kafka-protocol broker
//! (KPR_TEST_KAFKA_BROKERS; scripts/test.sh starts one): an ingest node, two projector
//! nodes on disjoint partitions and a statistics node take the demo data over gRPC and
//! serve the same statistics as `kpr serve` on the same events (CSV and JSON-stat, byte
//! for byte); killing and restarting a projector loses and double-counts nothing; an
//! ingest node refuses municipalities it does not own, naming the owner.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kpr_wire::pb;
use tonic_types::StatusExt;

use crate::support::*;

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(args: &[&str], log: &std::path::Path) -> Node {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Node(
        Command::new(env!("CARGO_BIN_EXE_kpr"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    )
}

async fn fetch(url: String) -> kpr::http_client::HttpResponse {
    fetch_as(url, None).await
}

async fn fetch_as(url: String, token: Option<&str>) -> kpr::http_client::HttpResponse {
    let client = kpr::http_client::Client {
        tls: None,
        token: token.map(str::to_string),
        server_name: None,
        timeout: None,
    };
    tokio::task::spawn_blocking(move || client.get(&url))
        .await
        .unwrap()
        .unwrap()
}

/// An admin listener and the operator token it takes.
struct Admin<'a> {
    url: &'a str,
    token: String,
}

/// Waits until every listed table of the split deployment equals the reference's.
async fn same_tables(
    split_admin: &Admin<'_>,
    reference_admin: &Admin<'_>,
    year: i32,
) -> Result<(), String> {
    let figures = [
        "T1", "T2", "T3", "T4", "I1", "I6", "I8", "I12", "I14", "I15", "I16", "I17", "I18",
    ];
    let mut last = String::new();
    for _ in 0..900 {
        let mut all = true;
        for figure in figures {
            for query in [
                format!("region=EAK&year={year}&format=csv&exact=true"),
                format!("region=0301&year={year}&format=csv"),
                // JSON-stat states the log position: records per partition, the same
                // for the same events on sled and on Kafka, so byte for byte too.
                format!("region=EAK&year={year}&format=json-stat"),
            ] {
                let a = fetch_as(
                    format!("{}/v1/tables/{figure}?{query}", split_admin.url),
                    Some(&split_admin.token),
                )
                .await;
                let b = fetch_as(
                    format!("{}/v1/tables/{figure}?{query}", reference_admin.url),
                    Some(&reference_admin.token),
                )
                .await;
                if a.status != 200 || a.body != b.body {
                    all = false;
                    last = format!(
                        "{figure} {query}: split {} {:?}…",
                        a.status,
                        &a.body.chars().take(120).collect::<String>()
                    );
                    break;
                }
            }
            if !all {
                break;
            }
        }
        if all {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_roles_serve_what_kpr_serve_serves_and_survive_a_projector_kill() {
    let brokers = std::env::var("KPR_TEST_KAFKA_BROKERS")
        .unwrap_or_else(|_| panic!("KPR_TEST_KAFKA_BROKERS is not set: this test needs a Kafka-protocol broker (scripts/test.sh starts one)"));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("nodes.log");
    let topic = format!("kpr-split-{}", std::process::id());
    let (ingest_port, stats_port, admin_port) = (free_port(), free_port(), free_port());
    let kafka = [
        "--kafka-brokers",
        brokers.as_str(),
        "--topic",
        topic.as_str(),
        "--partitions",
        "4",
    ];
    let ingest_data = dir.path().join("ingest");
    let project_data = dir.path().join("project");
    let ingest_addr = format!("127.0.0.1:{ingest_port}");
    let _ingest = node(
        &[
            &["ingest"][..],
            &kafka,
            &[
                "--data",
                ingest_data.to_str().unwrap(),
                "--addr",
                &ingest_addr,
                "--allow-synthetic-ids",
            ],
        ]
        .concat(),
        &log,
    );
    // Two projector nodes share the topic, each folding half of the partitions.
    let project_data_b = dir.path().join("project-b");
    let project_args: Vec<&str> = [
        &["project"][..],
        &kafka,
        &[
            "--data",
            project_data.to_str().unwrap(),
            "--partitions-owned",
            "0-1",
        ],
    ]
    .concat();
    let mut projector = node(&project_args, &log);
    let _projector_b = node(
        &[
            &["project"][..],
            &kafka,
            &[
                "--data",
                project_data_b.to_str().unwrap(),
                "--partitions-owned",
                "2-3",
            ],
        ]
        .concat(),
        &log,
    );
    let stats_addr = format!("127.0.0.1:{stats_port}");
    let admin_addr = format!("127.0.0.1:{admin_port}");
    // The statistics node trusts the ingest node's local issuer through its public
    // key set, as it would trust HelseID's JWKS.
    let jwks = kpr::trust::issuer_dir(&ingest_data).join("jwks.json");
    assert!(
        eventually(Duration::from_secs(30), || jwks.exists()).await,
        "the ingest node made no issuer: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let statistics_data = dir.path().join("statistics");
    let _statistics = node(
        &[
            &["statistics"][..],
            &kafka,
            &[
                "--stats-addr",
                &stats_addr,
                "--admin-addr",
                &admin_addr,
                "--data",
                statistics_data.to_str().unwrap(),
                "--auth-jwks",
                jwks.to_str().unwrap(),
                "--auth-issuer",
                kpr_auth::LOCAL_ISSUER,
            ],
        ]
        .concat(),
        &log,
    );

    // The reference: the embedded register with the same partition count.
    let reference_dir = tempfile::tempdir().unwrap();
    let mut reference_config = config(reference_dir.path());
    reference_config.batch_events_max = 1000;
    reference_config.message_bytes_max = 16 * 1024 * 1024;
    let reference = InProcess::start(reference_config).await;

    let mut demo = kpr_synth::DemoConfig::standard(today());
    demo.persons = 150;
    let split_summary = kpr::demo::run(
        &format!("http://{ingest_addr}"),
        &client_config(&ingest_data),
        &demo,
        false,
    )
    .await
    .unwrap();
    let reference_summary = kpr::demo::run(
        &reference.endpoint,
        &client_config(&reference.data),
        &demo,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        split_summary.rejected_batches,
        0,
        "nodes log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(split_summary.stored, reference_summary.stored);
    let year = today().year() - 1;
    let split_admin_url = format!("http://{admin_addr}");
    let split_admin = Admin {
        url: &split_admin_url,
        token: operator_token(&ingest_data),
    };
    let reference_admin = Admin {
        url: &reference.admin,
        token: operator_token(&reference.data),
    };
    if let Err(e) = same_tables(&split_admin, &reference_admin, year).await {
        panic!(
            "the split deployment does not serve what kpr serve serves: {e}\nnodes log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    // The public surface of the statistics node protects, like kpr serve's.
    let public = fetch(format!(
        "http://{stats_addr}/v1/tables/T2?region=EAK&year={year}&format=csv"
    ))
    .await;
    let reference_public = fetch(format!(
        "{}/v1/tables/T2?region=EAK&year={year}&format=csv",
        reference.stats
    ))
    .await;
    assert_eq!(public.body, reference_public.body);
    assert_eq!(
        fetch(format!(
            "http://{stats_addr}/v1/tables/T2?region=EAK&year={year}&exact=true"
        ))
        .await
        .status,
        403
    );

    // Kill the projector hard, write more, restart it: nothing lost, nothing twice.
    projector.0.kill().unwrap();
    projector.0.wait().unwrap();
    demo.seed = 2;
    demo.persons = 60;
    kpr::demo::run(
        &format!("http://{ingest_addr}"),
        &client_config(&ingest_data),
        &demo,
        false,
    )
    .await
    .unwrap();
    kpr::demo::run(
        &reference.endpoint,
        &client_config(&reference.data),
        &demo,
        false,
    )
    .await
    .unwrap();
    let _projector_again = node(&project_args, &log);
    if let Err(e) = same_tables(&split_admin, &reference_admin, year).await {
        panic!(
            "after a projector restart the tables differ: {e}\nnodes log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    // A statistics node started now, when the topic holds everything, says it is not
    // ready until it has read it all: the first answer it calls ready is complete.
    let (late_stats, late_admin) = (free_port(), free_port());
    let late_data = dir.path().join("statistics-late");
    let _late = node(
        &[
            &["statistics"][..],
            &kafka,
            &[
                "--stats-addr",
                &format!("127.0.0.1:{late_stats}"),
                "--admin-addr",
                &format!("127.0.0.1:{late_admin}"),
                "--data",
                late_data.to_str().unwrap(),
                "--auth-jwks",
                jwks.to_str().unwrap(),
                "--auth-issuer",
                kpr_auth::LOCAL_ISSUER,
            ],
        ]
        .concat(),
        &log,
    );
    let complete = fetch_as(
        format!("{split_admin_url}/v1/tables/T2?region=EAK&year={year}&format=csv&exact=true"),
        Some(&split_admin.token),
    )
    .await;
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    loop {
        let ready = get(&format!("http://127.0.0.1:{late_stats}/health/ready")).await;
        if let Ok(r) = &ready {
            answers.push(r.status);
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 503, "{}", r.body);
            assert!(r.body.contains("filling up"), "{}", r.body);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the late statistics node never became ready: {answers:?}\nnodes log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live = get(&format!("http://127.0.0.1:{late_stats}/health/live"))
        .await
        .unwrap();
    assert_eq!(live.status, 200);
    let first = fetch_as(
        format!("http://127.0.0.1:{late_admin}/v1/tables/T2?region=EAK&year={year}&format=csv&exact=true"),
        Some(&split_admin.token),
    )
    .await;
    assert_eq!(
        (first.header("x-kpr-log-position"), &first.body),
        (complete.header("x-kpr-log-position"), &complete.body),
        "ready, but not caught up (readiness answers: {answers:?})"
    );
    eprintln!("late statistics node: readiness answers before ready {answers:?}");

    // An ingest node refuses municipalities of partitions it does not own, naming the owner.
    let other_port = free_port();
    let other_addr = format!("127.0.0.1:{other_port}");
    let owned_partition = kpr_eventlog::partition_for(b"0301", 4);
    let owned = owned_partition.to_string();
    let others: Vec<String> = (0..4)
        .filter(|p| *p != owned_partition)
        .map(|p| p.to_string())
        .collect();
    let owners = format!("{}=http://{ingest_addr}", others.join(","));
    let _other = node(
        &[
            &["ingest"][..],
            &kafka,
            &[
                "--data",
                ingest_data.to_str().unwrap(),
                "--addr",
                &other_addr,
                "--allow-synthetic-ids",
                "--partitions-owned",
                &owned,
                "--owners",
                &owners,
            ],
        ]
        .concat(),
        &log,
    );
    let mut client = kpr::demo::connect(&format!("http://{other_addr}"), Duration::from_secs(30))
        .await
        .unwrap();
    let not_owned = ["4601", "5001", "1103", "3203", "1804", "5601"]
        .into_iter()
        .find(|m| kpr_eventlog::partition_for(m.as_bytes(), 4) != owned_partition)
        .unwrap();
    let status = client
        .append(authed(
            &ingest_data,
            pb::AppendRequest {
                events: vec![event(not_owned, &synthetic_id(900), "", health_check(1))],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains(&ingest_addr),
        "{}",
        status.message()
    );
    assert_eq!(
        status.get_details_error_info().map(|i| i.reason),
        Some("WRONG_INGEST_NODE".to_string())
    );
    let owned_ok = client
        .append(authed(
            &ingest_data,
            pb::AppendRequest {
                events: vec![event("0301", &synthetic_id(901), "", health_check(1))],
            },
        ))
        .await;
    assert!(owned_ok.is_ok(), "{owned_ok:?}");
    reference.stop().await;
}
