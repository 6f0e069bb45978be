//! The crash test: the real `kpr` binary is killed with SIGKILL at random moments
//! while many writers append; after every restart each acknowledged event is present
//! exactly once, in order, and nothing is torn.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kpr_wire::pb;
use kpr_wire::pb::ingest_service_client::IngestServiceClient;

use crate::support::*;

const WRITERS: u32 = 24;
const MUNICIPALITIES: [&str; 4] = ["0301", "4601", "5001", "1103"];

/// Batch `k` of writer `w`: a new episode is applied and decided in one batch and
/// started in the next, so starts after a crash need the state rebuilt from the log.
fn batch(w: u32, k: u32) -> Vec<pb::Event> {
    let municipality = MUNICIPALITIES[(w % 4) as usize];
    let person = synthetic_id(1000 + w);
    let service = format!("W{w}-S{}", k / 2);
    let mut events = if k.is_multiple_of(2) {
        vec![
            event(municipality, &person, &service, applied("15", 40)),
            event(
                municipality,
                &person,
                &service,
                decided("15", Some(2.0 + f64::from(k % 7)), 30),
            ),
        ]
    } else {
        vec![event(municipality, &person, &service, started(20))]
    };
    events.push(event(
        municipality,
        &person,
        "",
        health_check((k % 300) as i32 + 1),
    ));
    // Deterministic ids, so a resend after a crash is the same event.
    for (i, e) in events.iter_mut().enumerate() {
        e.event_id = format!("{w:08x}-{k:04x}-4{i:03x}-8000-00000000c0de");
    }
    events
}

struct Shared {
    acked: Mutex<HashMap<String, (u32, u64)>>,
    order: Mutex<BTreeMap<u32, Vec<(u32, u64)>>>,
    stop: AtomicBool,
}

async fn writer(w: u32, endpoint: String, data: std::path::PathBuf, shared: Arc<Shared>) -> u32 {
    let mut k = 0u32;
    let mut client: Option<IngestServiceClient<tonic::transport::Channel>> = None;
    loop {
        if shared.stop.load(Ordering::SeqCst) && k.is_multiple_of(2) {
            return k;
        }
        let events = batch(w, k);
        let c = match client.as_mut() {
            Some(c) => c,
            None => match IngestServiceClient::connect(endpoint.clone()).await {
                Ok(c) => client.insert(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        match tokio::time::timeout(
            Duration::from_secs(10),
            c.append(authed(
                &data,
                pb::AppendRequest {
                    events: events.clone(),
                },
            )),
        )
        .await
        {
            Ok(Ok(reply)) => {
                let acks = reply.into_inner().acks;
                assert_eq!(acks.len(), events.len());
                let mut acked = shared.acked.lock().unwrap();
                for a in &acks {
                    if let Some(previous) =
                        acked.insert(a.event_id.clone(), (a.partition, a.offset))
                    {
                        assert_eq!(
                            previous,
                            (a.partition, a.offset),
                            "an event was acknowledged at two positions"
                        );
                    }
                }
                shared
                    .order
                    .lock()
                    .unwrap()
                    .entry(w)
                    .or_default()
                    .push((acks[0].partition, acks[0].offset));
                k += 1;
            }
            Ok(Err(status)) => {
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::Unknown
                            | tonic::Code::Cancelled
                            | tonic::Code::ResourceExhausted
                    ),
                    "writer {w} batch {k}: unexpected refusal {status:?}"
                );
                client = None;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => client = None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_event() {
    let cycles: u32 = std::env::var("KPR_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    assert!(cycles >= 1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("server.log");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let shared = Arc::new(Shared {
        acked: Mutex::new(HashMap::new()),
        order: Mutex::new(BTreeMap::new()),
        stop: AtomicBool::new(false),
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(
                w,
                endpoint.clone(),
                data.clone(),
                Arc::clone(&shared),
            ))
        })
        .collect();

    // A small deterministic PRNG picks the kill moments.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut acked_before_kill = Vec::new();
    for cycle in 0..cycles {
        // Half the cycles run with fdatasync on the ack path, half without: a killed
        // process must lose nothing either way.
        let extra: &[&str] = if cycle.is_multiple_of(2) {
            &["--no-sync-data"]
        } else {
            &[]
        };
        let mut server = Binary::start(&data, port, &log_path, extra);
        let before = shared.acked.lock().unwrap().len();
        // Let writers get going, then kill at a random moment.
        let grew = eventually(Duration::from_secs(30), || {
            shared.acked.lock().unwrap().len() > before
        })
        .await;
        assert!(
            grew,
            "no append succeeded after a restart; server log: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(next() % 300)).await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        acked_before_kill.push(shared.acked.lock().unwrap().len());
    }

    // Final run: writers finish their episodes, then a graceful stop.
    let mut server = Binary::start(&data, port, &log_path, &[]);
    let before = shared.acked.lock().unwrap().len();
    assert!(
        eventually(Duration::from_secs(30), || shared
            .acked
            .lock()
            .unwrap()
            .len()
            > before + 100)
        .await
    );
    shared.stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    unsafe_sigterm(server.child.id());
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "kpr serve did not exit 0 on SIGTERM: {status:?}"
    );

    // Every acknowledged event is in the log exactly once, at its acknowledged position.
    let records = read_log(&data).await;
    let mut positions: HashMap<String, Vec<(u32, u64)>> = HashMap::new();
    for r in &records {
        let (event, _) =
            kpr_wire::decode_stored(&r.payload).expect("every record decodes: nothing torn");
        positions
            .entry(event.envelope.event_id.to_string())
            .or_default()
            .push((r.position.partition, r.position.offset));
    }
    let acked = shared.acked.lock().unwrap();
    assert!(
        acked.len() > 1000,
        "too little was written to prove anything: {}",
        acked.len()
    );
    for (id, position) in acked.iter() {
        assert_eq!(
            positions.get(id).map(Vec::as_slice),
            Some(&[*position][..]),
            "event {id}"
        );
    }
    let duplicates: Vec<_> = positions.iter().filter(|(_, p)| p.len() > 1).collect();
    assert!(duplicates.is_empty(), "stored twice: {duplicates:?}");
    // Nothing but what writers sent, and each writer's batches in the order sent.
    let sent: HashSet<&String> = positions.keys().collect();
    assert!(
        sent.iter().all(|id| id.ends_with("00000000c0de")),
        "a record no writer sent"
    );
    for (w, order) in shared.order.lock().unwrap().iter() {
        assert!(
            order
                .windows(2)
                .all(|p| p[0].0 == p[1].0 && p[0].1 < p[1].1),
            "writer {w} out of order"
        );
    }
    eprintln!(
        "crash test: {cycles} SIGKILL cycles, {} events acknowledged, {} records in the log; acknowledged before each kill: {acked_before_kill:?}",
        acked.len(),
        records.len()
    );
}

fn unsafe_sigterm(pid: u32) {
    // SAFETY: sending a signal to our own child process by its pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
}
