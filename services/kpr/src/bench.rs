//! `kpr bench`: figures for the read side on the demo population or the national data
//! set. It writes the events into a fresh sled log (validated and pseudonymised as
//! ingest does, without gRPC: `crate::bulk`), rebuilds the read model from that log (read, CRC check, decode, fold) and
//! times statistics queries per municipality and for the nation. Output is one
//! `key=value` line per figure, for scripts.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::Context;
use kpr_domain::date::Date;
use kpr_eventlog::EventLog;
use kpr_eventlog_sled::{SledLog, SledOptions};
use kpr_ingest::Pseudonymiser;
use kpr_projection::figures::Figure;
use kpr_projection::model::ReadModel;
use kpr_statistics::{Statistics, TableRequest};

/// Which synthetic data the read benchmark loads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source {
    /// The demo population with this many persons.
    Demo {
        /// Persons.
        persons: u32,
    },
    /// The national data set (kpr-synth `national`) at `scale` with `years` of history
    /// before the current year.
    National {
        /// Share of the country.
        scale: f64,
        /// Years of history.
        years: u32,
    },
}

/// Writes the data of `source` into a new sled log in `dir` (validated and
/// pseudonymised as ingest does, see [`crate::bulk`]); returns the event count.
async fn write_source(dir: &std::path::Path, source: Source, today: Date) -> anyhow::Result<u64> {
    let log = SledLog::open(
        dir,
        &SledOptions {
            sync_data: false,
            ..SledOptions::standard(16)
        },
    )?;
    let key = Pseudonymiser::new([42; 32]);
    let written = match source {
        Source::Demo { persons } => {
            let mut config = kpr_synth::DemoConfig::standard(today);
            config.persons = persons;
            let batches = kpr_synth::generate(&config).into_iter();
            crate::bulk::write_log(&log, batches, today, &key, |_| {}).await?
        }
        Source::National { scale, years } => {
            let config = national_config(scale, years, today);
            let batches = kpr_synth::national(&config);
            crate::bulk::write_log(&log, batches, today, &key, |_| {}).await?
        }
    };
    log.close().await?;
    Ok(written)
}

/// Where a rebuild's time goes: reading records (sled + CRC), decoding, folding.
async fn phases(log: &SledLog) -> anyhow::Result<()> {
    use kpr_eventlog::ReadOptions;
    let (mut read_s, mut decode_s, mut fold_s) = (0.0, 0.0, 0.0);
    let mut model = ReadModel::new();
    let mut n = 0u64;
    for partition in 0..log.partition_count() {
        let mut from = 0;
        loop {
            let t = Instant::now();
            let records = log
                .read(
                    partition,
                    from,
                    ReadOptions {
                        records_max: 4096,
                        wait_ms_max: 0,
                    },
                )
                .await?;
            read_s += t.elapsed().as_secs_f64();
            let Some(last) = records.last() else { break };
            from = last.position.offset + 1;
            let t = Instant::now();
            let mut decoded = Vec::with_capacity(records.len());
            for r in &records {
                decoded.push((r.position, kpr_wire::decode_stored(&r.payload)?.0));
            }
            decode_s += t.elapsed().as_secs_f64();
            let t = Instant::now();
            for (position, event) in &decoded {
                model.apply(position.partition, position.offset, event);
            }
            fold_s += t.elapsed().as_secs_f64();
            n += records.len() as u64;
        }
    }
    println!(
        "bench.rebuild.phases events={n} read_s={read_s:.3} decode_s={decode_s:.3} fold_s={fold_s:.3} model_mib={:.1}",
        model.heap_bytes() as f64 / 1048576.0
    );
    Ok(())
}

/// The national data set the benchmark loads.
fn national_config(scale: f64, years: u32, today: Date) -> kpr_synth::NationalConfig {
    kpr_synth::NationalConfig {
        scale,
        first_year: today.year() - years.min(100) as i32,
        ..kpr_synth::NationalConfig::standard(today)
    }
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
pub async fn run(source: Source, repeat: u32) -> anyhow::Result<()> {
    let today = Date::from_unix_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    );
    let dir = std::env::temp_dir().join(format!("kpr-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let events = write_source(&dir, source, today)
        .await
        .context("cannot write the benchmark log")?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "bench.write events={events} seconds={seconds:.3} events_per_s={:.0}",
        events as f64 / seconds.max(1e-9)
    );
    if let Source::National { scale, years } = source {
        // History runs from 1 January `years` before this year up to today.
        let first_of_year = Date::from_ymd(today.year(), 1, 1).unwrap_or(today);
        let span = f64::from(years) + f64::from(first_of_year.days_until(today) + 1) / 365.0;
        println!(
            "bench.generate scale={scale} years={span:.2} events={events} events_per_year={:.0}",
            events as f64 / span.max(1e-9)
        );
    }

    let log = SledLog::open(&dir, &SledOptions::standard(16))?;
    phases(&log).await?;
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
    if let Source::National { scale, years } = source {
        let config = national_config(scale, years, today);
        let started = Instant::now();
        let lines = kpr_synth::calibration::national_figures(
            &model,
            config.first_year,
            today.year() - 1,
            scale,
        );
        for line in &lines {
            println!(
                "bench.calibration figure={} {} register={:.4} published={:.4}",
                line.figure, line.key, line.register, line.published
            );
        }
        println!(
            "bench.calibration_seconds={:.3}",
            started.elapsed().as_secs_f64()
        );
    }
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

/// The disk's own rate of 4 KiB write + `fdatasync` in `dir`, per second (context for
/// durable ingest figures).
fn fsync_rate(dir: &std::path::Path, seconds: f64) -> anyhow::Result<f64> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0u8; 4096];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        file.write_all(&block)?;
        file.sync_data()?;
        n += 1;
    }
    let _ = std::fs::remove_file(&path);
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn ingest_event(counter: u64, today: Date) -> kpr_wire::pb::Event {
    use kpr_wire::pb;
    let municipalities = [
        "0301", "4601", "5001", "1103", "3203", "1508", "1804", "5601",
    ];
    let birth = Date::from_ymd(
        1930 + (counter % 60) as i32,
        1 + (counter % 12) as u32,
        1 + (counter % 28) as u32,
    )
    .unwrap_or(today);
    pb::Event {
        event_id: format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), counter),
        municipality: municipalities[(counter % municipalities.len() as u64) as usize].to_string(),
        source_system: "Bench".into(),
        recorded_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        person: Some(pb::Person {
            national_id: kpr_synth::synthetic_id(counter, birth, counter.is_multiple_of(2)),
            birth_year: None,
            sex: 0,
        }),
        payload: Some(pb::Payload {
            kind: Some(pb::payload::Kind::HealthCheck(pb::HealthCheck {
                kind: pb::HealthCheckKind::Physician as i32,
                date: today.add_days(-((counter % 300) as i32) - 1).to_string(),
                at_risk: None,
                plan_made: None,
            })),
        }),
        ..Default::default()
    }
}

/// One ingest phase: `clients` concurrent gRPC clients, each sending batches of
/// `batch` events (one municipality per batch), for `seconds`, optionally paced to
/// `target_events_per_s` in total. Returns events/s and the sorted latencies (ms).
async fn ingest_phase(
    endpoint: &str,
    clients: u32,
    batch: u32,
    seconds: f64,
    target_events_per_s: Option<f64>,
    today: Date,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(rand_base() & !7));
    let deadline = Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let interval = target_events_per_s.map(|rate| {
        std::time::Duration::from_secs_f64(f64::from(clients) * f64::from(batch) / rate.max(1.0))
    });
    let mut tasks = Vec::new();
    for client_index in 0..clients {
        let mut client = crate::demo::connect(endpoint, std::time::Duration::from_secs(30)).await?;
        // Clients spread over the municipalities (and so the partitions).
        let residue = u64::from(client_index % 8);
        let counter = Arc::clone(&counter);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut events = 0u64;
            let mut next = Instant::now();
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += interval;
                }
                // One municipality per batch: consecutive counters of one residue.
                let base = counter
                    .fetch_add(u64::from(batch) * 8, std::sync::atomic::Ordering::Relaxed)
                    + residue;
                let request = kpr_wire::pb::AppendRequest {
                    events: (0..u64::from(batch))
                        .map(|i| ingest_event(base + i * 8, today))
                        .collect(),
                };
                let started = Instant::now();
                if client.append(request).await.is_ok() {
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                    events += u64::from(batch);
                }
            }
            (events, latencies)
        }));
    }
    let started = Instant::now();
    let mut events = 0u64;
    let mut latencies = Vec::new();
    for task in tasks {
        let (n, l) = task.await?;
        events += n;
        latencies.extend(l);
    }
    latencies.sort_by(f64::total_cmp);
    Ok((
        events as f64 / started.elapsed().as_secs_f64().max(1e-9),
        latencies,
    ))
}

/// A counter base that differs between runs of the benchmark against one data dir.
fn rand_base() -> u64 {
    u64::from(std::process::id()) << 32
}

/// Durable ingest through gRPC against an in-process `kpr serve` (sled, fdatasync on):
/// unary requests from 64 clients and 100-event batches, at peak and at half of peak.
pub async fn run_ingest(seconds: f64) -> anyhow::Result<()> {
    let today = Date::from_unix_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    );
    let dir = std::env::temp_dir().join(format!("kpr-bench-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    println!("bench.disk fsync_per_s={:.0}", fsync_rate(&dir, 1.0)?);
    let config = crate::serve::ServeConfig {
        data_dir: dir.clone(),
        partitions: 16,
        key: crate::serve::KeySource::DataDir,
        allow_synthetic_ids: true,
        batch_events_max: 5000,
        message_bytes_max: 16 * 1024 * 1024,
        queue_capacity_batches: 65_536,
        sync_data: true,
    };
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", grpc.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve::run(
        config,
        crate::serve::Listeners {
            grpc,
            stats: None,
            admin: None,
        },
        async move {
            let _ = stopped.await;
        },
    ));
    for (name, clients, batch) in [("unary", 64u32, 1u32), ("batch100", 16, 100)] {
        let (peak, latencies) =
            ingest_phase(&endpoint, clients, batch, seconds, None, today).await?;
        println!(
            "bench.ingest mode={name} clients={clients} load=peak events_per_s={peak:.0} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2}",
            percentile_ms(&latencies, 0.5),
            percentile_ms(&latencies, 0.99),
            percentile_ms(&latencies, 0.999)
        );
        let (half, latencies) =
            ingest_phase(&endpoint, clients, batch, seconds, Some(peak / 2.0), today).await?;
        println!(
            "bench.ingest mode={name} clients={clients} load=half events_per_s={half:.0} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2}",
            percentile_ms(&latencies, 0.5),
            percentile_ms(&latencies, 0.99),
            percentile_ms(&latencies, 0.999)
        );
    }
    let _ = stop.send(());
    server.await??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
