//! Hostile clients and careless input against the real `kpr serve` binary: bounded
//! connections and streams, timeouts, heavy work off the request threads, caller errors
//! named as such, private files.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kpr::http_client::HttpResponse;
use kpr_wire::pb;
use tonic::Code;

use crate::support::*;

/// `kpr serve` started through `sh`, so a test can set the umask or the file limit.
struct Served {
    child: Child,
    data: std::path::PathBuf,
    grpc: u16,
    stats: u16,
    admin: u16,
    stderr: std::path::PathBuf,
}

impl Served {
    fn start(data: &Path, shell_prefix: &str) -> Served {
        let (grpc, stats, admin) = (free_port(), free_port(), free_port());
        let stderr = data.with_extension("stderr");
        let command = format!(
            "{shell_prefix} exec \"$0\" serve --data \"$1\" --addr 127.0.0.1:{grpc} \
             --stats-addr 127.0.0.1:{stats} --admin-addr 127.0.0.1:{admin} --allow-synthetic-ids"
        );
        let child = Command::new("sh")
            .args([
                "-c",
                &command,
                env!("CARGO_BIN_EXE_kpr"),
                data.to_str().unwrap(),
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        register_admin(&format!("http://127.0.0.1:{admin}"), data);
        let served = Served {
            child,
            data: data.to_path_buf(),
            grpc,
            stats,
            admin,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&served.url(stats, "/health"))
            .map(|r| r.status)
            .ok()
            != Some(200)
        {
            assert!(
                Instant::now() < deadline,
                "kpr serve did not start: {}",
                served.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    fn url(&self, port: u16, path: &str) -> String {
        format!("http://127.0.0.1:{port}{path}")
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kpr serve` expecting it to refuse to start; returns its stderr.
fn refused_start(data: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kpr"))
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--stats-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "kpr serve started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn fetch(url: String) -> HttpResponse {
    tokio::task::spawn_blocking(move || http_get(&url).unwrap())
        .await
        .unwrap()
}

/// Raises this test process's own file limit so that it can hold many connections.
fn raise_own_file_limit(wanted: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= wanted,
        "this environment's hard file limit ({hard}) is below the {wanted} the test needs"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        },
    )
    .unwrap();
}

fn demo(server: &Served, persons: u32) {
    let out = Command::new(env!("CARGO_BIN_EXE_kpr"))
        .args([
            "demo",
            "--issuer-data",
            server.data.to_str().unwrap(),
            "--endpoint",
            &server.endpoint(),
            "--persons",
            &persons.to_string(),
        ])
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn slowloris_connections_are_closed_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "");
    // 300 connections that start a request and never finish its headers.
    let mut conns: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.stats)).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    for conn in &mut conns {
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 512];
        // The server closes (0 bytes, or a reset), perhaps after a 408 answer.
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "partial-header connections were held for {took:?}"
    );
    // The listener still serves others.
    assert_eq!(
        http_get(&server.url(server.stats, "/health"))
            .unwrap()
            .status,
        200
    );
    eprintln!("300 slowloris connections closed after {took:?}");
}

/// Reads HTTP/2 frames until the server's first SETTINGS frame; returns its entries.
fn server_settings(stream: &mut TcpStream) -> Vec<(u16, u32)> {
    loop {
        let mut header = [0u8; 9];
        stream.read_exact(&mut header).unwrap();
        let len =
            (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).unwrap();
        if header[3] == 0x4 && header[4] & 0x1 == 0 {
            return payload
                .chunks_exact(6)
                .map(|e| {
                    (
                        u16::from_be_bytes([e[0], e[1]]),
                        u32::from_be_bytes([e[2], e[3], e[4], e[5]]),
                    )
                })
                .collect();
        }
    }
}

#[test]
fn a_raw_http2_connection_sees_a_bound_on_concurrent_streams() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "");
    let mut stream = TcpStream::connect(("127.0.0.1", server.grpc)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    stream.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).unwrap();
    let settings = server_settings(&mut stream);
    const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    let bound = settings
        .iter()
        .find(|(id, _)| *id == MAX_CONCURRENT_STREAMS)
        .map(|(_, v)| *v);
    assert_eq!(
        bound,
        Some(kpr_net::Limits::default().streams_max),
        "{settings:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_lock_out_a_new_client_under_a_1024_file_limit() {
    raise_own_file_limit(4096);
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "ulimit -n 1024 &&");
    // 1 100 connections that never send a byte, more than the server's file limit.
    let idle: Vec<TcpStream> = (0..1100)
        .map(|_| TcpStream::connect(("127.0.0.1", server.grpc)).unwrap())
        .collect();
    let started = Instant::now();
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(server.endpoint())
            .unwrap()
            .connect()
            .await?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(anyhow::Error::from)
            .map(|r| r.into_inner().status)
    };
    let status = tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .unwrap_or_else(|_| panic!("no health answer within 5 s; server log:\n{}", server.log()))
        .unwrap();
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    eprintln!(
        "health answered after {:?} with 1 100 idle connections open",
        started.elapsed()
    );
    let log = server.log();
    assert!(
        log.contains("connection limit reached"),
        "hitting the connection limit is not logged:\n{log}"
    );
    drop(idle);
}

#[test]
fn silent_connections_are_closed_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "");
    let mut conn = TcpStream::connect(("127.0.0.1", server.grpc)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    // The server speaks first (its HTTP/2 SETTINGS); read until it closes.
    let mut buf = [0u8; 64];
    let closed = loop {
        match conn.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => break e.kind() != std::io::ErrorKind::WouldBlock,
        }
    };
    let took = started.elapsed();
    let timeout = kpr_net::Limits::default().handshake_timeout;
    assert!(
        closed && took >= timeout - Duration::from_secs(1) && took < timeout * 2,
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_health_answers_while_as_known_at_queries_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "");
    demo(&server, 3000);
    let year = today().year() - 1;
    // Every record of partition 0..15: the whole log, folded afresh per query.
    let at: Vec<String> = (0..16).map(|p| format!("{p}:1000000000")).collect();
    let heavy = format!("/v1/tables/T2?region=EAK&year={year}&at={}", at.join(","));
    // Six folds, two at a time: long enough that a stalled health check would show.
    let queries: Vec<_> = (0..6)
        .map(|_| tokio::spawn(fetch(server.url(server.admin, &heavy))))
        .collect();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut answered_meanwhile = 0;
    while queries.iter().any(|q| !q.is_finished()) {
        let asked = Instant::now();
        let health = fetch(server.url(server.stats, "/health")).await;
        assert_eq!(health.status, 200);
        slowest = slowest.max(asked.elapsed());
        if queries.iter().any(|q| !q.is_finished()) {
            answered_meanwhile += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fold = started.elapsed();
    for q in queries {
        let r = q.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    eprintln!(
        "as-known-at folds took {fold:?}; {answered_meanwhile} health answers meanwhile, slowest {slowest:?}"
    );
    assert!(
        answered_meanwhile >= 3,
        "health was answered {answered_meanwhile} times during {fold:?} of folding"
    );
    assert!(
        slowest * 2 < fold,
        "health waited {slowest:?} while the folds took {fold:?}"
    );
}

/// A gRPC codec that sends raw bytes as the request message.
#[derive(Clone, Default)]
struct RawBytes;

struct RawEncoder;
struct NoDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for NoDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, _: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        Ok(Some(()))
    }
}

impl tonic::codec::Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = NoDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> NoDecoder {
        NoDecoder
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_argument_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Served::start(&data, "");
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    // 200 nested groups of an unknown field (15, start/end group): past prost's
    // recursion limit of 100.
    let mut nest_bomb = vec![0x7b_u8; 200];
    nest_bomb.extend(std::iter::repeat_n(0x7c_u8, 200));
    let cases: [(&str, Vec<u8>); 3] = [
        // events[0].event_id with bytes that are not UTF-8.
        ("invalid UTF-8", vec![0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe]),
        ("truncated", vec![0x0a, 0x10, 0x0a, 0x02]),
        ("nesting bomb", nest_bomb),
    ];
    for (name, bytes) in cases {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/kpr.v1.IngestService/Append");
        let status = grpc
            .unary(tonic::Request::new(bytes), path, RawBytes)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
    }
    drop(server);
    assert!(read_log(&data).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_violations_reach_a_default_client_as_the_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "");
    let mut client = pb::ingest_service_client::IngestServiceClient::connect(server.endpoint())
        .await
        .unwrap();
    let id = synthetic_id(1);
    let events: Vec<pb::Event> = (0..60)
        .map(|i| {
            let mut e = event("0301", &id, "", health_check(2));
            e.event_id = format!("not a uuid, event number {i} of a long batch");
            e
        })
        .collect();
    let status = client
        .append(authed(&server.data, pb::AppendRequest { events }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
    assert!(!details.field_violations.is_empty());
    assert!(
        status
            .message()
            .starts_with("60 invalid field(s) (the details list the first"),
        "{}",
        status.message()
    );
}

#[test]
fn release_names_are_a_safe_pattern_and_the_public_listener_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "");
    let year = today().year() - 1;
    for name in [".", "..", ".hidden", "-x"] {
        let mut s = TcpStream::connect(("127.0.0.1", server.admin)).unwrap();
        write!(
            s,
            "POST /v1/releases/{name}?year={year} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\n\r\n",
            operator_token(&server.data)
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{name}: {answer}");
        assert!(
            answer.contains("starting with a letter or digit"),
            "{name}: {answer}"
        );
    }
    let public =
        http_post(&server.url(server.stats, &format!("/v1/releases/r1?year={year}"))).unwrap();
    assert_eq!(public.status, 403);
    assert!(
        public.body.contains("releases are published") && public.body.contains("admin"),
        "{}",
        public.body
    );
}

fn modes(dir: &Path, out: &mut Vec<(std::path::PathBuf, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    out.push((
        dir.to_path_buf(),
        std::fs::metadata(dir).unwrap().permissions().mode(),
    ));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modes(&path, out);
        } else {
            out.push((
                path.clone(),
                std::fs::metadata(&path).unwrap().permissions().mode(),
            ));
        }
    }
}

#[test]
fn the_data_directory_is_private_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Served::start(&data, "umask 022 &&");
    demo(&server, 20);
    let published = http_post(&server.url(
        server.admin,
        &format!("/v1/releases/r1?year={}", today().year() - 1),
    ))
    .unwrap();
    assert_eq!(published.status, 201, "{}", published.body);
    drop(server);
    let mut found = Vec::new();
    modes(&data, &mut found);
    assert!(found.len() > 4, "{found:?}");
    for (path, mode) in found {
        let wanted = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode & 0o777 & !wanted,
            0,
            "{} is {:o}",
            path.display(),
            mode & 0o777
        );
        assert_eq!(mode & 0o077, 0, "{} is {:o}", path.display(), mode & 0o777);
    }
}

#[test]
fn an_exposed_or_missing_key_is_refused_and_nothing_is_written() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Served::start(&data, "");
    demo(&server, 5);
    drop(server);
    let key = data.join("pseudonym.key");

    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let refusal = refused_start(&data);
        assert!(
            refusal.contains("readable by group or others"),
            "{mode:o}: {refusal}"
        );
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    std::fs::remove_file(&key).unwrap();
    let refusal = refused_start(&data);
    assert!(
        refusal.contains("holds a log but no pseudonym.key"),
        "{refusal}"
    );
    assert!(!key.exists(), "a new key was written beside the old log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_id_in_free_text_is_refused_and_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Served::start(&data, "");
    let mut client = pb::ingest_service_client::IngestServiceClient::connect(server.endpoint())
        .await
        .unwrap();
    let person = synthetic_id(7);
    let other = synthetic_id(8);
    let status = client
        .append(authed(
            &server.data,
            pb::AppendRequest {
                events: vec![event(
                    "0301",
                    &person,
                    &format!("S-{other}"),
                    applied("15", 3),
                )],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = tonic_types::StatusExt::get_details_bad_request(&status)
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["events[0].service_id"], "{}", status.message());
    assert!(!status.message().contains(&other), "{}", status.message());
    drop(client);
    drop(server);
    let mut files = Vec::new();
    modes(&data, &mut files);
    for (path, _) in files.into_iter().filter(|(p, _)| p.is_file()) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(other.len()).any(|w| w == other.as_bytes()),
            "{} holds the national id",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_when_the_log_cannot_take_writes() {
    // A real write failure of the log: the file-size limit (EFBIG once sled's file grows
    // past 2 MiB), with SIGXFSZ ignored so the process sees the error, as with a full disk.
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "trap '' XFSZ; ulimit -f 4096 &&");
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = pb::ingest_service_client::IngestServiceClient::new(channel.clone());
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status_of = |service: &str| tonic_health::pb::HealthCheckRequest {
        service: service.to_string(),
    };
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let ready_url = server.url(server.stats, "/health/ready");
    let live_url = server.url(server.stats, "/health/live");
    assert_eq!(
        fetch(ready_url.clone()).await.status,
        200,
        "ready before the failure"
    );
    assert_eq!(
        health
            .check(status_of(""))
            .await
            .unwrap()
            .into_inner()
            .status,
        serving
    );
    let mut failed = None;
    for batch in 0..5000u32 {
        let events: Vec<pb::Event> = (0..100)
            .map(|i| event("0301", &synthetic_id(batch * 100 + i), "", health_check(1)))
            .collect();
        match client
            .append(authed(&server.data, pb::AppendRequest { events }))
            .await
        {
            Ok(_) => continue,
            Err(status) => {
                failed = Some(status);
                break;
            }
        }
    }
    let status = failed.expect("2 MiB of file limit never ran out");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let refused_at = Instant::now();
    let mut seen = Vec::new();
    loop {
        let whole = health
            .check(status_of(""))
            .await
            .unwrap()
            .into_inner()
            .status;
        let ingest = health
            .check(status_of("kpr.v1.IngestService"))
            .await
            .unwrap()
            .into_inner()
            .status;
        let ready = fetch(ready_url.clone()).await;
        seen.push((whole, ingest));
        if whole != serving && ingest != serving && ready.status == 503 {
            assert!(ready.body.contains("cannot take writes"), "{}", ready.body);
            break;
        }
        assert!(
            refused_at.elapsed() < Duration::from_secs(1),
            "health still SERVING (or HTTP ready) a second after the log failed: {seen:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The process is alive, only not ready: liveness must not restart it in a loop.
    assert_eq!(fetch(live_url).await.status, 200);
    // And further writes are refused, not half-taken.
    let again = client
        .append(authed(
            &server.data,
            pb::AppendRequest {
                events: vec![event("0301", &synthetic_id(1), "", health_check(1))],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_appends_and_refusals_per_municipality_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "");
    let mut client = pb::ingest_service_client::IngestServiceClient::connect(server.endpoint())
        .await
        .unwrap();
    let ok = pb::AppendRequest {
        events: (0..3)
            .map(|i| event("0301", &synthetic_id(i), "", health_check(1)))
            .collect(),
    };
    client.append(authed(&server.data, ok)).await.unwrap();
    let mut bad = event("4601", &synthetic_id(9), "S-1", applied("15", 3));
    bad.event_id = "not an id".into();
    for _ in 0..2 {
        client
            .append(authed(
                &server.data,
                pb::AppendRequest {
                    events: vec![bad.clone()],
                },
            ))
            .await
            .unwrap_err();
    }
    let year = today().year() - 1;
    assert_eq!(
        fetch(server.url(
            server.stats,
            &format!("/v1/tables/T2?region=0301&year={year}")
        ))
        .await
        .status,
        200
    );
    let metrics = fetch(server.url(server.admin, "/metrics")).await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    let value = |name: &str, labels: &[&str]| -> Option<f64> {
        metrics.body.lines().find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series.starts_with(name) && labels.iter().all(|l| series.contains(l)))
                .then(|| value.parse().ok())
                .flatten()
        })
    };
    assert_eq!(
        value(
            "kpr_ingest_events_total",
            &["municipality=\"0301\"", "outcome=\"OK\""]
        ),
        Some(3.0),
        "{}",
        metrics.body
    );
    assert_eq!(
        value(
            "kpr_ingest_refusals_total",
            &["municipality=\"4601\"", "rule=\"INVALID_EVENT\""]
        ),
        Some(2.0),
        "{}",
        metrics.body
    );
    for present in [
        "kpr_log_group_commit_seconds",
        "kpr_log_fsync_seconds",
        "kpr_query_seconds",
        "kpr_build_info",
    ] {
        assert!(
            metrics.body.contains(present),
            "no {present}: {}",
            metrics.body
        );
    }
    // Operators only: the public listener does not serve them.
    assert_eq!(
        fetch(server.url(server.stats, "/metrics")).await.status,
        403
    );
}

#[test]
fn the_demo_names_each_refusal_also_without_a_terminal() {
    // A production register (no synthetic ids) refuses the demo's synthetic persons.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (grpc, stats, admin) = (free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpr"))
        .args(["serve", "--data", data.to_str().unwrap()])
        .args(["--addr", &format!("127.0.0.1:{grpc}")])
        .args(["--stats-addr", &format!("127.0.0.1:{stats}")])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = token(&data, "0301"); // waits for the server's issuer
    let out = Command::new(env!("CARGO_BIN_EXE_kpr"))
        .args(["demo", "--quiet", "--persons", "20", "--issuer-data"])
        .arg(&data)
        .args(["--endpoint", &format!("http://127.0.0.1:{grpc}")])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("refused:") && stderr.contains("national_id"),
        "{stderr}"
    );
}
