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
    /// The data directory (its local issuer signs the tests' tokens).
    pub data: std::path::PathBuf,
    pub endpoint: String,
    /// Public statistics HTTP base URL (http://127.0.0.1:port).
    pub stats: String,
    /// Admin statistics HTTP base URL.
    pub admin: String,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A made-up organisation number (it passes mod-11) bound to Haram 1580, which has
/// none in refdata: the suite's servers load it from `DATA/bindings.csv`.
pub const HARAM_TEST_ORG: &str = "999999999";

fn bindings_file(data: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(data).unwrap();
    let path = data.join("bindings.csv");
    std::fs::write(&path, format!("{HARAM_TEST_ORG},1580\n")).unwrap();
    path
}

pub fn config(data: &Path) -> ServeConfig {
    let mut trust = kpr::trust::TrustConfig::local();
    trust.bindings_file = Some(bindings_file(data));
    ServeConfig {
        trust,
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
        let data = config.data_dir.clone();
        // The issuer exists before the server starts, so tokens can be minted at once.
        kpr_auth::LocalIssuer::load_or_create(&kpr::trust::issuer_dir(&data)).unwrap();
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
        register_admin(&admin_url, &data);
        InProcess {
            data,
            endpoint,
            stats: stats_url,
            admin: admin_url,
            stop: Some(stop),
            handle,
        }
    }

    /// An ingest token for `municipality`, from this register's local issuer.
    pub fn token(&self, municipality: &str) -> String {
        token(&self.data, municipality)
    }

    /// `request` signed with the token of its first event's municipality.
    pub fn authed(&self, request: pb::AppendRequest) -> tonic::Request<pb::AppendRequest> {
        authed(&self.data, request)
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
            .arg("--auth-bindings")
            .arg(bindings_file(data))
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

/// The local issuer of `data`, waiting (up to 60 s: two loaded cores start slowly) for
/// a starting server to make it.
fn issuer(data: &Path) -> kpr_auth::LocalIssuer {
    let dir = kpr::trust::issuer_dir(data);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match kpr_auth::LocalIssuer::load(&dir) {
            Ok(issuer) => return issuer,
            Err(e) if Instant::now() >= deadline => {
                panic!("no local issuer in {}: {e}", dir.display())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn mint(data: &Path, client_id: &str, roles: &[kpr_auth::Role], org: Option<String>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    issuer(data)
        .mint(&kpr_auth::MintRequest {
            client_id: client_id.to_string(),
            roles: roles.to_vec(),
            org_number: org,
            audience: kpr_auth::DEFAULT_AUDIENCE.into(),
            ttl_seconds: 3600,
            now_unix: now,
        })
        .unwrap()
}

/// An ingest token for `municipality` (a 2024 code) from the local issuer of `data`.
pub fn token(data: &Path, municipality: &str) -> String {
    let org = if municipality == "1580" {
        HARAM_TEST_ORG.to_string()
    } else {
        kpr_auth::Bindings::embedded()
            .org_number_of(municipality)
            .unwrap_or_else(|| panic!("no organisation number for {municipality}"))
            .to_string()
    };
    mint(
        data,
        &format!("test-ehr-{municipality}"),
        &[kpr_auth::Role::Ingest],
        Some(org),
    )
}

/// An operator token from the local issuer of `data`.
pub fn operator_token(data: &Path) -> String {
    mint(data, "test-operator", &[kpr_auth::Role::Operator], None)
}

/// A statistics token from the local issuer of `data`.
pub fn statistics_token(data: &Path) -> String {
    mint(
        data,
        "test-statistician",
        &[kpr_auth::Role::Statistics],
        None,
    )
}

/// `message` with `authorization: Bearer <token>`.
pub fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// The municipality a batch is written for: its first event's 2024 code (for an old
/// code, the successor it names or its first successor); 0301 for a code no registry
/// knows (validation refuses it whatever the token).
pub fn batch_municipality(request: &pb::AppendRequest) -> String {
    let Some(first) = request.events.first() else {
        return "0301".into();
    };
    if !first.successor_municipality.is_empty()
        && kpr_domain::Registry::get()
            .municipality(&first.successor_municipality)
            .is_some()
    {
        return first.successor_municipality.clone();
    }
    kpr_domain::Registry::get()
        .counts_under(&first.municipality)
        .first()
        .map_or_else(|| "0301".to_string(), |m| m.to_string())
}

/// `request` signed with an ingest token of its municipality from `data`'s issuer.
pub fn authed(data: &Path, request: pb::AppendRequest) -> tonic::Request<pb::AppendRequest> {
    let municipality = batch_municipality(&request);
    bearer(&token(data, &municipality), request)
}

/// The client settings that mint tokens from the local issuer of `data`.
pub fn client_config(data: &Path) -> kpr::trust::ClientConfig {
    kpr::trust::ClientConfig {
        issuer_data: Some(data.to_path_buf()),
        ..kpr::trust::ClientConfig::default()
    }
}

/// The operator listeners of the servers this test process started, and the data
/// directories whose issuer signs their tokens.
static ADMINS: std::sync::Mutex<Vec<(String, std::path::PathBuf)>> =
    std::sync::Mutex::new(Vec::new());

/// Notes that `admin_base` (http://host:port) is the operator listener of the register
/// in `data`: [`http_get`] and [`http_post`] then send it an operator token.
pub fn register_admin(admin_base: &str, data: &Path) {
    ADMINS
        .lock()
        .unwrap()
        .push((admin_base.to_string(), data.to_path_buf()));
}

fn client_for(url: &str) -> kpr::http_client::Client {
    let data = ADMINS
        .lock()
        .unwrap()
        .iter()
        // The newest first: a port of a stopped server can be given to a later one.
        .rev()
        .find(|(base, _)| url.starts_with(&format!("{base}/")))
        .map(|(_, data)| data.clone());
    kpr::http_client::Client {
        tls: None,
        token: data.map(|d| operator_token(&d)),
        server_name: None,
        timeout: None,
    }
}

/// GET as the suite's statistician (anonymous) or, on a registered operator listener,
/// as its operator.
pub fn http_get(url: &str) -> anyhow::Result<kpr::http_client::HttpResponse> {
    client_for(url).get(url)
}

/// [`http_get`] from async code (on the blocking pool).
pub async fn get(url: &str) -> anyhow::Result<kpr::http_client::HttpResponse> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || http_get(&url)).await?
}

/// POST like [`http_get`].
pub fn http_post(url: &str) -> anyhow::Result<kpr::http_client::HttpResponse> {
    let mut client = client_for(url);
    // Publishing protects a whole release as linked tables: minutes in a debug build.
    client.timeout = Some(std::time::Duration::from_secs(900));
    client.post(url)
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

/// A stopped register in `data` whose log holds the demo population of `persons`
/// (every batch accepted, more than a thousand events).
pub async fn demo_log(data: &Path, persons: u32) {
    let mut serve_config = config(data);
    serve_config.batch_events_max = 1000;
    serve_config.message_bytes_max = 16 * 1024 * 1024;
    let server = InProcess::start(serve_config).await;
    let mut demo = kpr_synth::DemoConfig::standard(today());
    demo.persons = persons;
    let summary = kpr::demo::run(&server.endpoint, &client_config(&server.data), &demo, false)
        .await
        .unwrap();
    assert!(
        summary.rejected_batches == 0 && summary.stored > 1000,
        "{summary:?}"
    );
    server.stop().await;
}

/// A running register (in process) fed the demo population of `persons` as of `day`,
/// returned once its statistics reflect every stored event.
pub async fn demo_served(persons: u32, day: Date, seed: u64) -> (tempfile::TempDir, InProcess) {
    let dir = tempfile::tempdir().unwrap();
    let mut serve_config = config(dir.path());
    serve_config.batch_events_max = 1000;
    serve_config.message_bytes_max = 16 * 1024 * 1024;
    let server = InProcess::start(serve_config).await;
    let mut demo = kpr_synth::DemoConfig::standard(day);
    demo.seed = seed;
    demo.persons = persons;
    let summary = kpr::demo::run(&server.endpoint, &client_config(&server.data), &demo, false)
        .await
        .unwrap();
    assert_eq!(summary.rejected_batches, 0, "{summary:?}");
    // Asked of the admin listener, exactly: a public answer of a year waits for the
    // year's whole frame to be protected, once per model move, which is not what
    // "caught up" is about.
    let url = format!(
        "{}/v1/tables/T2?region=EAK&year=2024&format=csv&exact=true",
        server.admin
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reflected: u64 = get(&url)
            .await
            .map(|r| {
                r.header("x-kpr-log-position")
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|p| p.split_once(':')?.1.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        if reflected == summary.stored {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the statistics reflect {reflected} of the {} stored events",
            summary.stored
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (dir, server)
}

/// Every record of a stopped register's log, partition by partition.
pub async fn read_log(data: &Path) -> Vec<Record> {
    // A stopped in-process server's last handles on the log (blocking tasks finishing
    // after the listeners closed) go a moment later, under load up to seconds; sled's
    // file lock goes with them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        match SledLog::open(&kpr::serve::log_dir(data), &SledOptions::standard(1)) {
            Ok(log) => break log,
            Err(e) if Instant::now() < deadline && e.to_string().contains("lock") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot open the stopped register's log: {e}"),
        }
    };
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
