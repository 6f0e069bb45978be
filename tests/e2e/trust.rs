//! Who may write and read, checked against the real binary with real TLS (certificates
//! made here with rcgen), real signed tokens and the real audit trail: TLS and mutual
//! TLS on every listener, tokens refused in every way they can be wrong, the
//! municipality binding, HTTP 401/403 with their challenges, refusals that reveal
//! nothing of another municipality, and an audit trail that lists every call once and
//! notices one changed byte.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kpr::http_client::{Client, HttpResponse};
use kpr::trust::ClientConfig;
use kpr_wire::pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::*;

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kpr test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "Gerica test client");
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        cert: write("server.pem", server.pem()),
        key: write("server.key", server_key.serialize_pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
    }
}

/// `kpr serve` with TLS on all three listeners.
struct Secure {
    child: Child,
    grpc: u16,
    stats: u16,
    admin: u16,
    stderr: PathBuf,
}

impl Secure {
    fn start(data: &Path, pki: &Pki, extra: &[&str]) -> Secure {
        Secure::start_probing(data, pki, extra, https(pki, None, false))
    }

    /// Starts and waits for `/health`, asked with `probe` (mutual TLS needs a client
    /// certificate even for that).
    fn start_probing(data: &Path, pki: &Pki, extra: &[&str], probe: Client) -> Secure {
        let (grpc, stats, admin) = (free_port(), free_port(), free_port());
        let stderr = data.with_extension("stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_kpr"))
            .args([
                "serve",
                "--data",
                data.to_str().unwrap(),
                "--allow-synthetic-ids",
            ])
            .args(["--addr", &format!("127.0.0.1:{grpc}")])
            .args(["--stats-addr", &format!("127.0.0.1:{stats}")])
            .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
            .args(["--tls-cert", pki.cert.to_str().unwrap()])
            .args(["--tls-key", pki.key.to_str().unwrap()])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let server = Secure {
            child,
            grpc,
            stats,
            admin,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while probe
            .get(&server.url(stats, "/health"))
            .map(|r| r.status)
            .ok()
            != Some(200)
        {
            assert!(
                Instant::now() < deadline,
                "kpr serve did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self, port: u16, path: &str) -> String {
        format!("https://127.0.0.1:{port}{path}")
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.grpc)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stops with SIGTERM and waits (the audit trail is flushed on the way).
    fn stop(mut self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        let _ = self.child.wait();
    }
}

impl Drop for Secure {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_config(pki: &Pki, with_cert: bool) -> ClientConfig {
    ClientConfig {
        ca_file: Some(pki.ca.clone()),
        cert: with_cert.then(|| pki.client_cert.clone()),
        key: with_cert.then(|| pki.client_key.clone()),
        ..ClientConfig::default()
    }
}

fn https(pki: &Pki, token: Option<String>, with_cert: bool) -> Client {
    kpr::trust::http_client(&client_config(pki, with_cert), token).unwrap()
}

async fn get(client: Client, url: String) -> anyhow::Result<HttpResponse> {
    tokio::task::spawn_blocking(move || client.get(&url))
        .await
        .unwrap()
}

/// A token signed by the data directory's local issuer key, with any header and
/// claims (for the ways a token can be wrong).
fn forged(data: &Path, header: jsonwebtoken::Header, claims: &serde_json::Value) -> String {
    let der = std::fs::read(kpr::trust::issuer_dir(data).join("issuer-es256.p8")).unwrap();
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&der),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_over_tls_takes_only_valid_tokens_bound_to_the_batch_municipality() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let data = dir.path().join("data");
    let server = Secure::start(&data, &pki, &[]);
    let mut client = kpr::demo::connect_with(
        &server.endpoint(),
        &client_config(&pki, false),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let oslo = pb::AppendRequest {
        events: vec![event("0301", &synthetic_id(1), "", health_check(2))],
    };

    // No token at all.
    let status = client.append(oslo.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Every way a token can be wrong: refused as unauthenticated, naming why.
    let kid = kpr_auth::LocalIssuer::load(&kpr::trust::issuer_dir(&data))
        .unwrap()
        .kid()
        .to_string();
    let header = || {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.clone());
        h
    };
    let claims = |iss: &str, aud: &str, exp: u64| {
        serde_json::json!({
            "iss": iss, "aud": aud, "exp": exp, "nbf": now() - 60, "client_id": "ehr",
            "scope": "kpr:ingest", "helseid://claims/client/claims/orgnr_parent": "958935420"
        })
    };
    let good_claims = claims(kpr_auth::LOCAL_ISSUER, "kpr", now() + 600);
    let public_jwks = std::fs::read(kpr::trust::issuer_dir(&data).join("jwks.json")).unwrap();
    let mut hmac_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hmac_header.typ = Some("at+jwt".into());
    hmac_header.kid = Some(kid.clone());
    let foreign_dir = tempfile::tempdir().unwrap();
    let (foreign, _) = kpr_auth::LocalIssuer::load_or_create(foreign_dir.path()).unwrap();
    let bad_tokens = [
        (
            "expired",
            forged(
                &data,
                header(),
                &claims(kpr_auth::LOCAL_ISSUER, "kpr", now() - 3600),
            ),
            "expired",
        ),
        (
            "wrong audience",
            forged(
                &data,
                header(),
                &claims(kpr_auth::LOCAL_ISSUER, "other-api", now() + 600),
            ),
            "not meant for this register",
        ),
        (
            "wrong issuer",
            forged(
                &data,
                header(),
                &claims("https://evil.example", "kpr", now() + 600),
            ),
            "issuer",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"none","typ":"at+jwt"}"#),
                b64url(good_claims.to_string().as_bytes())
            ),
            "algorithm none",
        ),
        (
            "HMAC with a secret",
            jsonwebtoken::encode(
                &hmac_header,
                &good_claims,
                &jsonwebtoken::EncodingKey::from_secret(b"secret").unwrap(),
            )
            .unwrap(),
            "algorithm HS256",
        ),
        (
            "HMAC keyed with the public JWKS (key confusion)",
            jsonwebtoken::encode(
                &hmac_header,
                &good_claims,
                &jsonwebtoken::EncodingKey::from_secret(&public_jwks).unwrap(),
            )
            .unwrap(),
            "algorithm HS256",
        ),
        (
            "a key the register does not trust",
            foreign
                .mint(&kpr_auth::MintRequest {
                    client_id: "ehr".into(),
                    roles: vec![kpr_auth::Role::Ingest],
                    org_number: Some("958935420".into()),
                    audience: "kpr".into(),
                    ttl_seconds: 600,
                    now_unix: now(),
                })
                .unwrap(),
            "does not trust",
        ),
        ("not a JWT", "hello".to_string(), "malformed"),
    ];
    for (what, token, says) in &bad_tokens {
        let status = client
            .append(bearer(token, oslo.clone()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        assert!(
            status.message().contains(says),
            "{what}: {}",
            status.message()
        );
    }

    // A valid token of another municipality: PERMISSION_DENIED naming both.
    let bergen = token(&data, "4601");
    let status = client
        .append(bearer(&bergen, oslo.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("4601") && status.message().contains("0301"),
        "{}",
        status.message()
    );
    assert_eq!(
        status.get_details_error_info().map(|i| i.reason),
        Some("WRONG_MUNICIPALITY".into())
    );
    // A statistics token cannot write; an ingest token of an unbound organisation neither.
    let status = client
        .append(bearer(&statistics_token(&data), oslo.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let unbound = forged(
        &data,
        header(),
        &serde_json::json!({"iss": kpr_auth::LOCAL_ISSUER, "aud": "kpr", "exp": now() + 600,
            "client_id": "ehr", "scope": "kpr:ingest",
            "helseid://claims/client/claims/orgnr_parent": "974760673"}),
    );
    let status = client
        .append(bearer(&unbound, oslo.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("974760673"),
        "{}",
        status.message()
    );

    // A pre-2024 code is compared by its 2024 successor: Bærum's 3024 is 3201 now.
    let mut baerum = event("3024", &synthetic_id(2), "", health_check(1200));
    baerum.event_id = new_id();
    let status = client
        .append(bearer(
            &token(&data, "0301"),
            pb::AppendRequest {
                events: vec![baerum.clone()],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("3201"), "{}", status.message());
    let accepted = client
        .append(bearer(
            &token(&data, "3201"),
            pb::AppendRequest {
                events: vec![baerum],
            },
        ))
        .await;
    assert!(accepted.is_ok(), "{accepted:?}");

    // And a valid token appends as before.
    let ok = client
        .append(bearer(&token(&data, "0301"), oslo.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.acks.len(), 1);

    // Streams carry the token in their metadata.
    let refused = client
        .append_stream(tokio_stream::iter(vec![oslo.clone()]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let mut answers = client
        .append_stream(bearer(&bergen, tokio_stream::iter(vec![oslo.clone()])))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    assert!(
        matches!(&answer.result, Some(pb::append_stream_response::Result::Rejected(r)) if r.code == Code::PermissionDenied as i32),
        "{answer:?}"
    );

    server.stop();
    // Only the two accepted events are in the log: every refusal stored nothing.
    let records = read_log(&data).await;
    assert_eq!(records.len(), 2, "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_send_a_tls_client_hello_to_https_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    for command in [
        vec![
            "demo",
            "--persons",
            "1",
            "--quiet",
            "--token",
            "x",
            "--endpoint",
        ],
        vec!["stats", "T2", "--endpoint"],
        vec![
            "publish",
            "--name",
            "r",
            "--year",
            "2024",
            "--token",
            "x",
            "--admin-endpoint",
        ],
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_kpr"))
            .args(&command)
            .arg(&url)
            .args(["--ca-file", pki.ca.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (mut socket, _) = listener.accept().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut first = [0u8; 6];
        socket.read_exact(&mut first).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        // A TLS record of type handshake (22), version 3.x, whose first message is a
        // ClientHello (1).
        assert_eq!(first[0], 0x16, "{command:?}: first bytes {first:02x?}");
        assert_eq!(first[1], 0x03, "{command:?}: first bytes {first:02x?}");
        assert_eq!(first[5], 0x01, "{command:?}: first bytes {first:02x?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_tables_releases_and_as_known_at_need_an_operator_token() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let data = dir.path().join("data");
    let server = Secure::start(&data, &pki, &[]);
    let year = today().year() - 1;
    let exact = server.url(
        server.admin,
        &format!("/v1/tables/T2?region=EAK&year={year}&exact=true"),
    );
    let at = server.url(
        server.admin,
        &format!("/v1/tables/T2?region=EAK&year={year}&at=0:0"),
    );
    let public = server.url(
        server.stats,
        &format!("/v1/tables/T2?region=EAK&year={year}"),
    );

    let anonymous = get(https(&pki, None, false), exact.clone()).await.unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some(r#"Bearer realm="kpr""#)
    );
    let statistician = https(&pki, Some(statistics_token(&data)), false);
    for url in [&exact, &at] {
        let r = get(statistician.clone(), url.clone()).await.unwrap();
        assert_eq!(r.status, 403, "{url}: {}", r.body);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|c| c.contains("insufficient_scope") && c.contains("kpr:operator")),
            "{:?}",
            r.headers
        );
    }
    let bad = get(https(&pki, Some("garbage".into()), false), public.clone())
        .await
        .unwrap();
    assert_eq!(
        bad.status, 401,
        "a bad token is refused even where none is needed"
    );
    assert!(
        bad.header("www-authenticate")
            .is_some_and(|c| c.contains("invalid_token"))
    );
    let operator = https(&pki, Some(operator_token(&data)), false);
    for url in [&exact, &at, &public] {
        let r = get(operator.clone(), url.clone()).await.unwrap();
        assert_eq!(r.status, 200, "{url}: {}", r.body);
    }
    // Published tables stay open to anonymous readers (the default).
    assert_eq!(
        get(https(&pki, None, false), public.clone())
            .await
            .unwrap()
            .status,
        200
    );

    // Publishing a release: 401 without a token, 403 with a statistics one, 201 as operator.
    let release = server.url(server.admin, &format!("/v1/releases/r1?year={year}"));
    let post = |client: Client, url: String| async move {
        tokio::task::spawn_blocking(move || client.post(&url))
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        post(https(&pki, None, false), release.clone()).await.status,
        401
    );
    assert_eq!(
        post(statistician.clone(), release.clone()).await.status,
        403
    );
    assert_eq!(post(operator.clone(), release.clone()).await.status, 201);
    // Plain HTTP to a TLS listener gets no table.
    assert!(
        kpr::http_client::get(&public.replace("https://", "http://"))
            .map(|r| r.status != 200)
            .unwrap_or(true)
    );
    server.stop();

    // With --tables-need-token the published tables need a statistics token too.
    let server = Secure::start(&data, &pki, &["--tables-need-token"]);
    let public = server.url(
        server.stats,
        &format!("/v1/tables/T2?region=EAK&year={year}"),
    );
    assert_eq!(
        get(https(&pki, None, false), public.clone())
            .await
            .unwrap()
            .status,
        401
    );
    let statistician = https(&pki, Some(statistics_token(&data)), false);
    assert_eq!(get(statistician, public).await.unwrap().status, 200);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let data = dir.path().join("data");
    let ca = pki.ca.to_str().unwrap().to_string();
    let server = Secure::start_probing(
        &data,
        &pki,
        &["--tls-client-ca", &ca],
        https(&pki, None, true),
    );
    let health = server.url(server.stats, "/health");
    assert!(
        get(https(&pki, None, false), health.clone()).await.is_err(),
        "an HTTPS client without a certificate was served"
    );
    let without = kpr::demo::connect_with(
        &server.endpoint(),
        &client_config(&pki, false),
        Duration::from_secs(2),
    )
    .await;
    let refused = match without {
        Err(_) => true,
        Ok(mut c) => c
            .append(bearer(
                &token(&data, "0301"),
                pb::AppendRequest {
                    events: vec![event("0301", &synthetic_id(3), "", health_check(1))],
                },
            ))
            .await
            .is_err(),
    };
    assert!(refused, "a gRPC client without a certificate was served");
    let mut with = kpr::demo::connect_with(
        &server.endpoint(),
        &client_config(&pki, true),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let ok = with
        .append(bearer(
            &token(&data, "0301"),
            pb::AppendRequest {
                events: vec![event("0301", &synthetic_id(3), "", health_check(1))],
            },
        ))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    server.stop();
}

#[test]
fn no_auth_and_plaintext_are_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, says) in [
        (
            vec!["--no-auth"],
            "--no-auth is allowed on loopback addresses only",
        ),
        (vec![], "no --tls-cert"),
    ] {
        let data = dir.path().join(format!("data-{}", flags.len()));
        let out = Command::new(env!("CARGO_BIN_EXE_kpr"))
            .args(["serve", "--data", data.to_str().unwrap()])
            .args(["--addr", &format!("0.0.0.0:{}", free_port())])
            .args(["--stats-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
            .args(&flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} started");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert!(
            !kpr::serve::log_dir(&data).exists(),
            "{flags:?}: a log was created"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_tells_a_caller_nothing_of_another_municipality() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let data = dir.path().join("data");
    let server = Secure::start(&data, &pki, &[]);
    let mut client = kpr::demo::connect_with(
        &server.endpoint(),
        &client_config(&pki, false),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    // Oslo records a death.
    let person = synthetic_id(40);
    let death = event(
        "0301",
        &person,
        "",
        pb::payload::Kind::PersonDied(pb::PersonDied {
            date_of_death: days_ago(5),
        }),
    );
    client
        .append(bearer(
            &token(&data, "0301"),
            pb::AppendRequest {
                events: vec![death.clone()],
            },
        ))
        .await
        .unwrap();
    // Bergen's token probes Oslo with events after the death, and tries to void it.
    let probe = pb::AppendRequest {
        events: vec![
            event("0301", &person, "", health_check(1)),
            event(
                "0301",
                &person,
                "",
                pb::payload::Kind::Correction(Box::new(pb::Correction {
                    corrects_event_id: death.event_id.clone(),
                    action: pb::CorrectionAction::Void as i32,
                    replacement: None,
                })),
            ),
        ],
    };
    let bergen = token(&data, "4601");
    let status = client.append(bearer(&bergen, probe)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let everything = format!("{} {:?}", status.message(), status.details());
    assert!(!everything.contains(&death.event_id), "{everything}");
    assert!(!everything.contains(&days_ago(5)), "{everything}");
    // The same person under Bergen: Bergen's own state knows nothing of Oslo's death.
    let own = client
        .append(bearer(
            &bergen,
            pb::AppendRequest {
                events: vec![event("4601", &person, "", health_check(1))],
            },
        ))
        .await;
    assert!(own.is_ok(), "{own:?}");
    // Oslo itself is told about its own death event.
    let status = client
        .append(bearer(
            &token(&data, "0301"),
            pb::AppendRequest {
                events: vec![event("0301", &person, "", health_check(1))],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("EVENT_AFTER_DEATH"),
        "{}",
        status.message()
    );
    server.stop();
    // The death is still there, unvoided: Oslo's log holds the death, Bergen's check.
    assert_eq!(read_log(&data).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_in_the_audit_trail_once_and_a_changed_byte_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let data = dir.path().join("data");
    let server = Secure::start(&data, &pki, &[]);
    let mut client = kpr::demo::connect_with(
        &server.endpoint(),
        &client_config(&pki, false),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let ids: Vec<String> = (50..53).map(synthetic_id).collect();
    let batch = |i: usize| pb::AppendRequest {
        events: vec![event("0301", &ids[i], "", health_check(1))],
    };
    let oslo = token(&data, "0301");
    // 1: appended; 2: no token; 3: wrong municipality.
    let acked = client
        .append(bearer(&oslo, batch(0)))
        .await
        .unwrap()
        .into_inner();
    client.append(batch(1)).await.unwrap_err();
    client
        .append(bearer(&token(&data, "4601"), batch(2)))
        .await
        .unwrap_err();
    // 4: a public table (anonymous); 5: an exact one without a token; 6: with one.
    let year = today().year() - 1;
    let public = server.url(
        server.stats,
        &format!("/v1/tables/T2?region=0301&year={year}"),
    );
    let exact = server.url(
        server.admin,
        &format!("/v1/tables/T2?region=0301&year={year}&exact=true"),
    );
    assert_eq!(
        get(https(&pki, None, false), public).await.unwrap().status,
        200
    );
    assert_eq!(
        get(https(&pki, None, false), exact.clone())
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        get(https(&pki, Some(operator_token(&data)), false), exact)
            .await
            .unwrap()
            .status,
        200
    );
    server.stop();
    // 7: an operator command.
    let minted = Command::new(env!("CARGO_BIN_EXE_kpr"))
        .args(["auth", "token", "--data", data.to_str().unwrap()])
        .args(["--municipality", "5001", "--role", "ingest", "--ttl", "15m"])
        .output()
        .unwrap();
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );

    let listed = Command::new(env!("CARGO_BIN_EXE_kpr"))
        .args([
            "audit",
            "--data",
            data.to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let entries: Vec<serde_json::Value> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let field = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
    let shapes: Vec<(String, String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                field(e, "method")
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                field(e, "outcome"),
                field(e, "client"),
                field(e, "rule"),
            )
        })
        .collect();
    let expected = [
        ("/kpr.v1.IngestService/Append", "OK", "test-ehr-0301", ""),
        (
            "/kpr.v1.IngestService/Append",
            "UNAUTHENTICATED",
            "anonymous",
            "NO_TOKEN",
        ),
        (
            "/kpr.v1.IngestService/Append",
            "PERMISSION_DENIED",
            "test-ehr-4601",
            "WRONG_MUNICIPALITY",
        ),
        ("GET /v1/tables/T2", "200", "anonymous", ""),
        ("GET /v1/tables/T2", "401", "anonymous", "NO_TOKEN"),
        ("GET /v1/tables/T2", "200", "test-operator", ""),
    ];
    for (method, outcome, client, rule) in expected {
        let n = shapes
            .iter()
            .filter(|s| s.0 == method && s.1 == outcome && s.2 == client && s.3 == rule)
            .count();
        assert_eq!(n, 1, "{method} {outcome} {client} {rule} in {shapes:#?}");
    }
    assert_eq!(entries.len(), expected.len() + 1, "{shapes:#?}");
    let first = &entries[0];
    assert_eq!(field(first, "municipality"), "0301");
    assert_eq!(first["events"].as_u64(), Some(1));
    assert_eq!(field(first, "org"), "958935420");
    assert_eq!(field(first, "role"), "ingest");
    assert_eq!(
        field(first, "positions"),
        format!(
            "{}:{}-{}",
            acked.acks[0].partition, acked.acks[0].offset, acked.acks[0].offset
        )
    );
    assert!(first["bytes_in"].as_u64().unwrap() > 0 && first["bytes_out"].as_u64().unwrap() > 0);
    let last = entries.last().unwrap();
    assert_eq!(field(last, "channel"), "cli");
    assert!(
        field(last, "method").starts_with("auth token ingest"),
        "{last}"
    );
    assert_eq!(field(last, "municipality"), "5001");

    // No raw national id anywhere in the trail.
    let audit_dir = kpr::trust::audit_dir(&data);
    let mut text = String::new();
    for entry in std::fs::read_dir(&audit_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    for id in &ids {
        assert!(
            !text.contains(id.as_str()),
            "a national id is in the audit trail"
        );
    }

    let verify = |expect_ok: bool| {
        let out = Command::new(env!("CARGO_BIN_EXE_kpr"))
            .args(["audit", "verify", "--data", data.to_str().unwrap()])
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), expect_ok, "{said}");
        said
    };
    assert!(verify(true).contains("ok: 7 entries"));
    // One changed byte in the fourth entry (a digit of its bytes_out) is found and named.
    let segment = std::fs::read_dir(&audit_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let line_start: usize = bytes
        .split(|b| *b == b'\n')
        .take(3)
        .map(|l| l.len() + 1)
        .sum();
    let at = line_start
        + find(&bytes[line_start..], b"\"bytes_out\":").unwrap()
        + "\"bytes_out\":".len();
    bytes[at] = if bytes[at] == b'9' {
        b'8'
    } else {
        bytes[at] + 1
    };
    std::fs::write(&segment, &bytes).unwrap();
    let said = verify(false);
    assert!(said.contains("entry 4"), "{said}");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
