//! The Kafka backend reaches a broker over TLS through `--kafka-config` settings
//! (librdkafka built with OpenSSL). tansu speaks no TLS itself, so a TLS terminator
//! (rustls, the register's own acceptor) sits in front of a tansu of this test's own
//! that advertises the terminator's address: every connection the client makes, the
//! bootstrap one and the partition leader's, goes through TLS.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use kpr_eventlog::{EventLog, ReadOptions};
use kpr_eventlog_kafka::{KafkaLog, KafkaOptions};

use crate::support::*;

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Accepts TLS on `listener` and forwards the plaintext to `backend`.
async fn terminate_tls(
    listener: tokio::net::TcpListener,
    acceptor: kpr_net::TlsAcceptor,
    backend: u16,
) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(socket).await else {
                return;
            };
            let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_log_works_through_tls_given_as_kafka_config() {
    let tansu = std::env::var("KPR_TEST_TANSU").unwrap_or_else(|_| {
        panic!(
            "KPR_TEST_TANSU is not set: this test needs the tansu binary (scripts/test.sh sets it)"
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::trust::pki(dir.path());
    let acceptor = kpr_net::TlsFiles {
        cert: pki.cert.clone(),
        key: pki.key.clone(),
        client_ca: None,
    }
    .load(kpr_net::Limits::default())
    .unwrap()
    .http;
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_port = front.local_addr().unwrap().port();
    let back_port = free_port();
    let broker_dir = tempfile::tempdir().unwrap();
    let _broker = Broker(
        Command::new(&tansu)
            .current_dir(broker_dir.path())
            .args(["broker", "--listener-url"])
            .arg(format!("tcp://127.0.0.1:{back_port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{front_port}"))
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        eventually(Duration::from_secs(20), || std::net::TcpStream::connect((
            "127.0.0.1",
            back_port
        ))
        .is_ok())
        .await,
        "tansu did not start"
    );
    tokio::spawn(terminate_tls(front, acceptor, back_port));

    let brokers = format!("127.0.0.1:{front_port}");
    let mut options = KafkaOptions::new(&brokers, "kpr-tls", 2);
    options.client_config = kpr::split::parse_kafka_config(&[
        "security.protocol=ssl".to_string(),
        format!("ssl.ca.location={}", pki.ca.display()),
        // The test certificate names 127.0.0.1 and localhost.
        "ssl.endpoint.identification.algorithm=https".to_string(),
    ])
    .unwrap();
    let log = tokio::time::timeout(Duration::from_secs(60), KafkaLog::open(options))
        .await
        .expect("opening the log over TLS timed out")
        .unwrap();
    let payloads: Vec<Bytes> = (0..3).map(|i| Bytes::from(format!("record {i}"))).collect();
    let positions = log.append(1, payloads.clone()).unwrap().await.unwrap();
    assert_eq!(positions.len(), 3);
    let mut read = Vec::new();
    for _ in 0..100 {
        read = log
            .read(
                1,
                0,
                ReadOptions {
                    records_max: 10,
                    wait_ms_max: 200,
                },
            )
            .await
            .unwrap();
        if read.len() == 3 {
            break;
        }
    }
    assert_eq!(
        read.into_iter().map(|r| r.payload).collect::<Vec<_>>(),
        payloads
    );
    log.close().await.unwrap();

    // Without the TLS settings the client gets nowhere: the front speaks TLS only.
    let plain = tokio::time::timeout(
        Duration::from_secs(8),
        KafkaLog::open(KafkaOptions::new(&brokers, "kpr-tls-plain", 1)),
    )
    .await;
    assert!(
        !matches!(plain, Ok(Ok(_))),
        "a plaintext client opened the log through the TLS front"
    );
}
