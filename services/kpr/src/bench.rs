//! `kpr bench`: figures for the read side on the demo population. It writes the demo
//! events into a fresh sled log (validated and pseudonymised as ingest does, without
//! gRPC), rebuilds the read model from that log (read, CRC check, decode, fold) and
//! times statistics queries per municipality and for the nation. Output is one
//! `key=value` line per figure, for scripts.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use kpr_domain::date::Date;
use kpr_domain::validate::{Rules, validate};
use kpr_eventlog::{EventLog, partition_for};
use kpr_eventlog_sled::{SledLog, SledOptions};
use kpr_ingest::Pseudonymiser;
use kpr_projection::figures::Figure;
use kpr_projection::model::ReadModel;
use kpr_statistics::{Statistics, TableRequest};
use kpr_wire::{StoredMeta, decode_submitted, encode_stored};

/// Writes the demo population into a new sled log in `dir`; returns the event count.
async fn write_demo(dir: &std::path::Path, persons: u32, today: Date) -> anyhow::Result<u64> {
    let log = SledLog::open(
        dir,
        &SledOptions {
            sync_data: false,
            ..SledOptions::standard(16)
        },
    )?;
    let mut config = kpr_synth::DemoConfig::standard(today);
    config.persons = persons;
    let rules = Rules {
        today,
        allow_synthetic_ids: true,
    };
    let key = Pseudonymiser::new([42; 32]);
    let mut written = 0u64;
    for batch in kpr_synth::generate(&config) {
        let mut payloads = Vec::with_capacity(batch.events.len());
        let mut municipality = None;
        for raw in &batch.events {
            let submitted =
                decode_submitted(raw).map_err(|v| anyhow::anyhow!("demo event refused: {v:?}"))?;
            let resolved = validate(&submitted, &rules)
                .map_err(|v| anyhow::anyhow!("demo event refused: {v:?}"))?;
            municipality = Some(resolved.municipality);
            let pseudonym = key.pseudonym(&submitted.person.national_id);
            let event = submitted.into_stored(resolved, pseudonym);
            payloads.push(encode_stored(
                &event,
                &StoredMeta {
                    content_digest: [0; 32],
                    received_at_unix_ms: 0,
                },
            ));
        }
        let Some(municipality) = municipality else {
            continue;
        };
        written += payloads.len() as u64;
        let payloads: Vec<Bytes> = payloads;
        log.append(
            partition_for(municipality.as_str().as_bytes(), log.partition_count()),
            payloads,
        )?
        .await?;
    }
    log.close().await?;
    Ok(written)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile_ms(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs the read-side benchmark and prints its figures.
pub async fn run(persons: u32, repeat: u32) -> anyhow::Result<()> {
    let today = Date::from_unix_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    );
    let dir = std::env::temp_dir().join(format!("kpr-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let events = write_demo(&dir, persons, today)
        .await
        .context("cannot write the demo log")?;

    let log = SledLog::open(&dir, &SledOptions::standard(16))?;
    let model = RwLock::new(ReadModel::new());
    let started = Instant::now();
    let folded = kpr_statistics::projector::catch_up(&log, &model, None, |_| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    log.close().await?;
    drop(log);
    println!(
        "bench.rebuild events={folded} seconds={seconds:.3} events_per_s={:.0} peak_rss_mib={:.1}",
        folded as f64 / seconds.max(1e-9),
        peak_rss_kib() as f64 / 1024.0
    );
    anyhow::ensure!(folded == events, "rebuilt {folded} of {events} events");

    let model = model
        .into_inner()
        .map_err(|_| anyhow::anyhow!("read model lock poisoned"))?;
    let stats = Statistics::new(Arc::new(RwLock::new(model)));
    let year = today.year() - 1;
    for (scope, region) in [
        ("municipality", "0301"),
        ("county", "EK46"),
        ("nation", "EAK"),
    ] {
        let mut latencies = Vec::new();
        for _ in 0..repeat.max(1) {
            for figure in Figure::ALL {
                let request = TableRequest::parse(
                    &figure.id(),
                    &format!("region={region}&year={year}&format=csv"),
                )?;
                let started = Instant::now();
                let rendered = stats.render(&request)?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                std::hint::black_box(rendered);
            }
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "bench.query scope={scope} region={region} queries={} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
            latencies.len(),
            percentile_ms(&latencies, 0.5),
            percentile_ms(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0.0)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
