//! Shared helpers: starting servers, building valid events, reading a stopped log.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kpr::serve::{KeySource, ServeConfig};
use kpr_domain::date::Date;
use kpr_domain::national_id::with_control_digits;
use kpr_eventlog::{EventLog, ReadOptions, Record};
use kpr_eventlog_sled::{SledLog, SledOptions};
use kpr_wire::pb;
use kpr_wire::pb::ingest_service_client::IngestServiceClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A register running in this process on 127.0.0.1:0.
pub struct InProcess {
    pub endpoint: String,
    /// Public statistics HTTP base URL (http://127.0.0.1:port).
    pub stats: String,
    /// Admin statistics HTTP base URL.
    pub admin: String,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub fn config(data: &Path) -> ServeConfig {
    ServeConfig {
        data_dir: data.to_path_buf(),
        partitions: 4,
        key: KeySource::DataDir,
        allow_synthetic_ids: true,
        batch_events_max: 100,
        message_bytes_max: 256 * 1024,
        queue_capacity_batches: 1024,
        sync_data: false,
    }
}

impl InProcess {
    pub async fn start(config: ServeConfig) -> InProcess {
        let bind = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
        let (grpc, stats, admin) = (bind().await, bind().await, bind().await);
        let url = |l: &tokio::net::TcpListener| format!("http://{}", l.local_addr().unwrap());
        let (endpoint, stats_url, admin_url) = (url(&grpc), url(&stats), url(&admin));
        let listeners = kpr::serve::Listeners {
            grpc,
            stats: Some(stats),
            admin: Some(admin),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(kpr::serve::run(config, listeners, async move {
            let _ = stopped.await;
        }));
        InProcess {
            endpoint,
            stats: stats_url,
            admin: admin_url,
            stop: Some(stop),
            handle,
        }
    }

    pub async fn client(&self) -> IngestServiceClient<Channel> {
        kpr::demo::connect(&self.endpoint, Duration::from_secs(20))
            .await
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.handle.await.unwrap().unwrap();
    }
}

/// The real `kpr` binary as a child process.
pub struct Binary {
    pub child: Child,
    pub endpoint: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Binary {
    pub fn start(data: &Path, port: u16, stderr_path: &Path, extra: &[&str]) -> Binary {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_path)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kpr"))
            .args([
                "serve",
                "--data",
                data.to_str().unwrap(),
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--allow-synthetic-ids",
                "--stats-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Binary {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A fresh event id (unique within this test process).
pub fn new_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// A valid synthetic national id (month + 80) born in 1940 + (n % 40).
pub fn synthetic_id(n: u32) -> String {
    let year = 40 + (n % 40);
    let day = 1 + (n % 28);
    let month = 1 + (n / 28) % 12 + 80;
    for individual in (n * 7 % 400)..500 {
        let digits = format!("{day:02}{month:02}{year:02}{individual:03}");
        let nine: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
        if let Some(id) = with_control_digits(nine.try_into().unwrap()) {
            return id.iter().map(|d| char::from(b'0' + d)).collect();
        }
    }
    panic!("no valid id for {n}")
}

pub fn today() -> Date {
    Date::from_unix_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

/// A date `days` before today, as text.
pub fn days_ago(days: i32) -> String {
    today().add_days(-days).to_string()
}

pub fn event(
    municipality: &str,
    national_id: &str,
    service_id: &str,
    kind: pb::payload::Kind,
) -> pb::Event {
    pb::Event {
        event_id: new_id(),
        municipality: municipality.to_string(),
        successor_municipality: String::new(),
        source_system: "Gerica".into(),
        source_version: "9.1".into(),
        recorded_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        person: Some(pb::Person {
            national_id: national_id.to_string(),
            birth_year: None,
            sex: 0,
        }),
        service_id: service_id.to_string(),
        payload: Some(pb::Payload { kind: Some(kind) }),
    }
}

pub fn applied(code: &str, days: i32) -> pb::payload::Kind {
    pb::payload::Kind::ServiceApplied(pb::ServiceApplied {
        code: code.into(),
        application_date: days_ago(days),
    })
}

pub fn decided(code: &str, hours: Option<f64>, days: i32) -> pb::payload::Kind {
    pb::payload::Kind::ServiceDecided(pb::ServiceDecided {
        code: code.into(),
        respite_kind: 0,
        outcome: pb::DecisionOutcome::Granted as i32,
        decision_date: days_ago(days),
        valid_from: days_ago(days),
        valid_to: String::new(),
        hours: hours.map(pb::service_decided::Hours::HoursPerWeek),
        provider_org_number: String::new(),
    })
}

pub fn started(days: i32) -> pb::payload::Kind {
    pb::payload::Kind::ServiceStarted(pb::ServiceStarted {
        start_date: days_ago(days),
    })
}

pub fn health_check(days: i32) -> pb::payload::Kind {
    pb::payload::Kind::HealthCheck(pb::HealthCheck {
        kind: pb::HealthCheckKind::Physician as i32,
        date: days_ago(days),
        at_risk: None,
        plan_made: None,
    })
}

/// A full home-nursing episode (applied, decided, started) for one person.
pub fn episode(municipality: &str, person: u32, service_id: &str) -> Vec<pb::Event> {
    let id = synthetic_id(person);
    vec![
        event(municipality, &id, service_id, applied("15", 40)),
        event(municipality, &id, service_id, decided("15", Some(6.5), 30)),
        event(municipality, &id, service_id, started(20)),
    ]
}

/// Every record of a stopped register's log, partition by partition.
pub async fn read_log(data: &Path) -> Vec<Record> {
    let log = SledLog::open(&kpr::serve::log_dir(data), &SledOptions::standard(1)).unwrap();
    let mut out = Vec::new();
    for partition in 0..log.partition_count() {
        let mut from = 0;
        loop {
            let batch = log
                .read(
                    partition,
                    from,
                    ReadOptions {
                        records_max: 10_000,
                        wait_ms_max: 0,
                    },
                )
                .await
                .unwrap();
            let Some(last) = batch.last() else { break };
            from = last.position.offset + 1;
            out.extend(batch);
        }
    }
    log.close().await.unwrap();
    out
}

/// Waits until `f` returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}
