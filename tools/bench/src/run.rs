//! `kpr-bench read` and `ingest`: figures for the read side on the demo population or the national data
//! set. It writes the events into a fresh sled log (validated and pseudonymised as
//! ingest does, without gRPC: `kpr::bulk`), rebuilds the read model from that log (read, CRC check, decode, fold) and
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
/// pseudonymised as ingest does, see [`kpr::bulk`]); returns the event count.
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
            kpr::bulk::write_log(&log, batches, today, &key, |_| {}).await?
        }
        Source::National { scale, years } => {
            let config = national_config(scale, years, today);
            let batches = kpr_synth::national(&config);
            kpr::bulk::write_log(&log, batches, today, &key, |_| {}).await?
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

/// A `kB` figure of `/proc/self/status` (`VmHWM:` peak, `VmRSS:` now).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

pub(crate) fn percentile_ms(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// What `kpr-bench read` measures on.
#[derive(Clone, Debug)]
pub struct ReadArgs {
    /// The population written into the log.
    pub source: Source,
    /// Rounds of every figure per region.
    pub repeat: u32,
    /// A data directory to keep the written log in (and to reuse it when it holds one).
    pub keep: Option<std::path::PathBuf>,
    /// Brokers of a Kafka-protocol broker: also copy the log there and rebuild from it.
    pub kafka: Option<String>,
    /// Also run the PostgreSQL baseline (`bench_pg`) on the same log.
    pub postgres: bool,
}

/// Resets the peak resident set size the kernel reports (VmHWM), so that the next
/// phase's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Rebuilds a fresh read model from `log`; prints the figures under `backend`.
async fn rebuild<L: EventLog>(log: &L, backend: &str) -> anyhow::Result<ReadModel> {
    let rss_before = status_kib("VmRSS:");
    reset_peak_rss();
    let model = RwLock::new(ReadModel::new());
    let started = Instant::now();
    let folded = kpr_statistics::projector::catch_up(log, &model, None, |_| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    let model = model
        .into_inner()
        .map_err(|_| anyhow::anyhow!("read model lock poisoned"))?;
    println!(
        "bench.rebuild backend={backend} events={folded} seconds={seconds:.3} events_per_s={:.0} peak_rss_mib={:.1} model_mib={:.1}",
        folded as f64 / seconds.max(1e-9),
        peak_rss_kib() as f64 / 1024.0,
        model.heap_bytes() as f64 / 1048576.0
    );
    let parts: Vec<String> = model
        .heap_parts()
        .iter()
        .map(|(name, bytes)| format!("{name}_mib={:.1}", *bytes as f64 / 1048576.0))
        .collect();
    println!(
        "bench.rebuild.memory backend={backend} rss_before_mib={:.1} rss_now_mib={:.1} {}",
        rss_before as f64 / 1024.0,
        status_kib("VmRSS:") as f64 / 1024.0,
        parts.join(" ")
    );
    Ok(model)
}

/// Runs the read-side benchmark and prints its figures.
pub async fn run(args: ReadArgs) -> anyhow::Result<()> {
    let today = today();
    let (dir, keep) = match &args.keep {
        Some(dir) => (dir.clone(), true),
        None => (
            std::env::temp_dir().join(format!("kpr-bench-{}", std::process::id())),
            false,
        ),
    };
    let log_dir = kpr::serve::log_dir(&dir);
    if !(keep && log_dir.exists()) {
        let _ = std::fs::remove_dir_all(&dir);
        let started = Instant::now();
        let events = write_source(&log_dir, args.source, today)
            .await
            .context("cannot write the benchmark log")?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "bench.write events={events} seconds={seconds:.3} events_per_s={:.0}",
            events as f64 / seconds.max(1e-9)
        );
        if let Source::National { scale, years } = args.source {
            // History runs from 1 January `years` before this year up to today.
            let first_of_year = Date::from_ymd(today.year(), 1, 1).unwrap_or(today);
            let span = f64::from(years) + f64::from(first_of_year.days_until(today) + 1) / 365.0;
            println!(
                "bench.generate scale={scale} years={span:.2} events={events} events_per_year={:.0}",
                events as f64 / span.max(1e-9)
            );
        }
        // The rebuild runs in a fresh process, so that its peak memory is its own and
        // not the generator's.
        let mut child = std::process::Command::new(std::env::current_exe()?);
        child
            .args(["read", "--repeat", &args.repeat.to_string(), "--keep"])
            .arg(&dir);
        if let Some(brokers) = &args.kafka {
            child.args(["--kafka", brokers]);
        }
        if let Source::National { scale, years } = args.source {
            child.args(["--scale", &scale.to_string(), "--years", &years.to_string()]);
        }
        if args.postgres {
            child.arg("--postgres");
        }
        let status = child.status().context("cannot start the rebuild process")?;
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        anyhow::ensure!(status.success(), "the rebuild process failed: {status}");
        return Ok(());
    }

    // A rebuild reads the log once, front to back: sled's page cache is kept small.
    let log = SledLog::open(
        &log_dir,
        &SledOptions {
            cache_bytes: 16 * 1024 * 1024,
            ..SledOptions::standard(16)
        },
    )?;
    let model = rebuild(&log, "sled").await?;
    phases(&log).await?;
    let partitions = log.partition_count();
    log.close().await?;
    drop(log);
    if let Some(brokers) = &args.kafka {
        let topic = format!("kpr-bench-{}", std::process::id());
        let started = Instant::now();
        let copied = kpr::logcopy::copy(
            &kpr::logcopy::Location::Sled(dir.clone()),
            &kpr::logcopy::Location::Kafka {
                brokers: brokers.clone(),
                topic: topic.clone(),
            },
            false,
        )
        .await?;
        println!(
            "bench.kafka.copy records={copied} seconds={:.3}",
            started.elapsed().as_secs_f64()
        );
        let kafka = kpr_eventlog_kafka::KafkaLog::open(kpr_eventlog_kafka::KafkaOptions::new(
            brokers, &topic, partitions,
        ))
        .await?;
        let from_kafka = rebuild(&kafka, "kafka").await?;
        kafka.close().await?;
        anyhow::ensure!(
            from_kafka.event_count() == model.event_count()
                && from_kafka.reflected() == model.reflected(),
            "the Kafka rebuild differs from the sled rebuild"
        );
    }

    if let Source::National { scale, years } = args.source {
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
        // The first query of a figure computes it (the region's first also takes the
        // region's snapshot); the answer is then kept for the model's generation, so
        // the repeats measure serving it again.
        let mut warm_all = Vec::new();
        let mut cold_all = Vec::new();
        let mut snapshot_ms = 0.0;
        for (i, figure) in Figure::ALL.iter().enumerate() {
            let request = TableRequest::parse(
                &figure.id(),
                &format!("region={region}&year={year}&format=csv"),
            )?;
            let mut latencies = Vec::new();
            for _ in 0..args.repeat.max(2) {
                let started = Instant::now();
                let rendered = stats.render(&request)?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                std::hint::black_box(rendered);
            }
            let cold = latencies.remove(0);
            if i == 0 {
                snapshot_ms = cold;
            } else {
                cold_all.push(cold);
            }
            latencies.sort_by(f64::total_cmp);
            println!(
                "bench.query figure={} scope={scope} region={region} cold_ms={cold:.3} warm_p50_ms={:.4} warm_p99_ms={:.4}",
                figure.id(),
                percentile_ms(&latencies, 0.5),
                percentile_ms(&latencies, 0.99),
            );
            warm_all.extend(latencies);
        }
        warm_all.sort_by(f64::total_cmp);
        cold_all.sort_by(f64::total_cmp);
        println!(
            "bench.query figure=all scope={scope} region={region} snapshot_and_first_ms={snapshot_ms:.3} cold_p50_ms={:.3} cold_p99_ms={:.3} cold_max_ms={:.3} warm_queries={} warm_p50_ms={:.4} warm_p99_ms={:.4}",
            percentile_ms(&cold_all, 0.5),
            percentile_ms(&cold_all, 0.99),
            cold_all.last().copied().unwrap_or(0.0),
            warm_all.len(),
            percentile_ms(&warm_all, 0.5),
            percentile_ms(&warm_all, 0.99),
        );
    }
    if args.postgres {
        // The SQL baseline loads the same log the model was rebuilt from.
        crate::postgres::run_read(&log_dir, &stats, year, args.repeat).await?;
    }
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

/// The municipalities the ingest benchmark writes, one per client (by residue mod 8).
pub(crate) const BENCH_MUNICIPALITIES: [&str; 8] = [
    "0301", "4601", "5001", "1103", "3203", "1508", "1804", "5601",
];

pub(crate) fn ingest_event(counter: u64, today: Date) -> kpr_wire::pb::Event {
    use kpr_wire::pb;
    let municipalities = BENCH_MUNICIPALITIES;
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

/// Name prefix of the bench client's runtime threads (their CPU time is the client's).
const CLIENT_THREAD: &str = "kpr-bench-cli";
/// Linux reports process CPU times in ticks of 1/100 s (`USER_HZ`).
const TICKS_PER_S: f64 = 100.0;

/// utime + stime in seconds from the text of a `/proc/.../stat` file.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces; fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_S)
}

/// CPU seconds used so far by the whole process and by the bench client's threads.
fn cpu_seconds() -> (f64, f64) {
    let total = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_cpu_seconds(&s))
        .unwrap_or(0.0);
    let mut client = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let is_client = std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|c| c.starts_with(CLIENT_THREAD));
            if is_client {
                client += std::fs::read_to_string(task.path().join("stat"))
                    .ok()
                    .and_then(|s| stat_cpu_seconds(&s))
                    .unwrap_or(0.0);
            }
        }
    }
    (total, client)
}

/// What one ingest phase measured.
struct Phase {
    events: u64,
    seconds: f64,
    /// Sorted request latencies in milliseconds.
    latencies: Vec<f64>,
    /// CPU seconds of the server side (everything but the client's threads).
    server_cpu: f64,
    /// CPU seconds of the client's threads.
    client_cpu: f64,
}

/// One ingest phase: `clients` concurrent gRPC clients, each sending batches of
/// `batch` events (one municipality per batch), for `seconds`, optionally paced to
/// `target_events_per_s` in total.
async fn ingest_phase(
    endpoint: String,
    tokens: Arc<Vec<Option<String>>>,
    clients: u32,
    batch: u32,
    seconds: f64,
    target_events_per_s: Option<f64>,
    today: Date,
) -> anyhow::Result<Phase> {
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(rand_base() & !7));
    let interval = target_events_per_s.map(|rate| {
        std::time::Duration::from_secs_f64(f64::from(clients) * f64::from(batch) / rate.max(1.0))
    });
    let mut connected = Vec::new();
    for _ in 0..clients {
        connected.push(kpr::demo::connect(&endpoint, std::time::Duration::from_secs(30)).await?);
    }
    let (cpu_total, cpu_client) = cpu_seconds();
    let started = Instant::now();
    let deadline = started + std::time::Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for (client_index, mut client) in connected.into_iter().enumerate() {
        // Clients spread over the municipalities (and so the partitions).
        let residue = client_index as u64 % 8;
        let token = tokens.get(residue as usize).cloned().flatten();
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
                let sent = Instant::now();
                // A refused request is a fault of the benchmark (its events are valid
                // and new), not a figure: stop the run and say why.
                client
                    .append(kpr::demo::authorized(request, token.as_deref())?)
                    .await
                    .map_err(|status| anyhow::anyhow!("a benchmark request failed: {status}"))?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                events += u64::from(batch);
            }
            anyhow::Ok((events, latencies))
        }));
    }
    let mut events = 0u64;
    let mut latencies = Vec::new();
    for task in tasks {
        let (n, l) = task.await??;
        events += n;
        latencies.extend(l);
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let (cpu_total_end, cpu_client_end) = cpu_seconds();
    latencies.sort_by(f64::total_cmp);
    let client_cpu = cpu_client_end - cpu_client;
    Ok(Phase {
        events,
        seconds,
        latencies,
        server_cpu: (cpu_total_end - cpu_total - client_cpu).max(0.0),
        client_cpu,
    })
}

/// A counter base that differs between runs of the benchmark against one data dir,
/// and between the phases of one run: a phase that re-sent an earlier phase's events
/// would measure duplicate acknowledgements (nothing stored) on the register, and
/// refused batches on PostgreSQL. Phases get bits 28-31, 2^25 events each.
pub(crate) fn rand_base() -> u64 {
    static PHASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let phase = PHASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xf;
    (u64::from(std::process::id()) << 32) | (phase << 28)
}

/// Today, from the clock.
pub(crate) fn today() -> Date {
    Date::from_unix_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    )
}

/// One figure of `kpr-bench ingest` (one printed `bench.ingest` line).
#[derive(Clone, Debug, PartialEq)]
pub struct IngestFigure {
    /// The log behind the server: `sled` or `kafka`.
    pub backend: &'static str,
    /// `unary` (one event per request) or `batch100`.
    pub mode: &'static str,
    /// Concurrent clients.
    pub clients: u32,
    /// Events per request.
    pub batch: u32,
    /// `peak` (as fast as the clients can) or `half` (paced to half of peak).
    pub load: &'static str,
    /// Acknowledged events per second.
    pub events_per_s: f64,
    /// Request latency percentiles, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// CPU time of the server side (ingest, log, projector) per acknowledged event.
    pub server_cpu_us_per_event: f64,
    /// CPU time of the bench client's threads per acknowledged event.
    pub client_cpu_us_per_event: f64,
}

impl IngestFigure {
    fn new(
        backend: &'static str,
        mode: &'static str,
        clients: u32,
        batch: u32,
        load: &'static str,
        phase: &Phase,
    ) -> IngestFigure {
        let per_event = |cpu: f64| cpu * 1e6 / (phase.events.max(1) as f64);
        IngestFigure {
            server_cpu_us_per_event: per_event(phase.server_cpu),
            client_cpu_us_per_event: per_event(phase.client_cpu),
            ..IngestFigure::of_rate(
                backend,
                mode,
                clients,
                batch,
                load,
                phase.events as f64 / phase.seconds,
                &phase.latencies,
            )
        }
    }

    /// A baseline's figure from its rate and sorted latencies (no CPU split).
    pub fn of_rate(
        backend: &'static str,
        mode: &'static str,
        clients: u32,
        batch: u32,
        load: &'static str,
        events_per_s: f64,
        sorted_ms: &[f64],
    ) -> IngestFigure {
        IngestFigure {
            backend,
            mode,
            clients,
            batch,
            load,
            events_per_s,
            p50_ms: percentile_ms(sorted_ms, 0.5),
            p99_ms: percentile_ms(sorted_ms, 0.99),
            p999_ms: percentile_ms(sorted_ms, 0.999),
            server_cpu_us_per_event: f64::NAN,
            client_cpu_us_per_event: f64::NAN,
        }
    }

    fn print(&self) {
        // The sled lines keep the format they had before the Kafka backend was added.
        let backend = match self.backend {
            "sled" => String::new(),
            other => format!("backend={other} "),
        };
        println!(
            "bench.ingest {backend}mode={} clients={} load={} events_per_s={:.0} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2}",
            self.mode,
            self.clients,
            self.load,
            self.events_per_s,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms
        );
        println!(
            "bench.cpu backend={} mode={} load={} server_us_per_event={:.1} client_us_per_event={:.1}",
            self.backend,
            self.mode,
            self.load,
            self.server_cpu_us_per_event,
            self.client_cpu_us_per_event
        );
    }
}

/// Durable ingest through gRPC against an in-process server: `kpr serve` (sled,
/// fdatasync on), or with `kafka` the `kpr ingest` role on a fresh topic of those
/// brokers. Unary requests from 64 clients and 100-event batches from 16, each at
/// peak and at half of peak. The client runs on its own runtime threads, so its CPU
/// time is told apart from the server's. Prints and returns the figures.
pub async fn run_ingest(seconds: f64, kafka: Option<&str>) -> anyhow::Result<Vec<IngestFigure>> {
    let today = today();
    let dir = std::env::temp_dir().join(format!("kpr-bench-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", grpc.local_addr()?);
    // The clients hold one ingest token per municipality, from the register's local
    // issuer (created here, before the server starts, so both use the same key).
    kpr_auth::LocalIssuer::load_or_create(&kpr::trust::issuer_dir(&dir))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let (backend, server) = match kafka {
        None => {
            println!("bench.disk fsync_per_s={:.0}", fsync_rate(&dir, 1.0)?);
            let config = kpr::serve::ServeConfig {
                data_dir: dir.clone(),
                partitions: 16,
                key: kpr::serve::KeySource::DataDir,
                allow_synthetic_ids: true,
                batch_events_max: 5000,
                message_bytes_max: 16 * 1024 * 1024,
                queue_capacity_batches: 65_536,
                sync_data: true,
                // As users run it: tokens checked on every call, every call audited.
                trust: kpr::trust::TrustConfig::local(),
            };
            let listeners = kpr::serve::Listeners {
                grpc,
                stats: None,
                admin: None,
            };
            (
                "sled",
                tokio::spawn(kpr::serve::run(config, listeners, shutdown)),
            )
        }
        Some(brokers) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let topic = kpr::split::KafkaTopic {
                brokers: brokers.to_string(),
                topic: format!("kpr-bench-{}-{nanos}", std::process::id()),
                partitions: 16,
                replication: 1,
                client_config: Vec::new(),
            };
            let config = kpr_ingest::IngestConfig::single_node(5000, true);
            let server = kpr::split::run_ingest(
                topic,
                dir.clone(),
                kpr::serve::KeySource::DataDir,
                config,
                grpc,
                kpr::trust::TrustConfig::local(),
                shutdown,
            );
            ("kafka", tokio::spawn(server))
        }
    };
    let tokens = kpr::trust::Tokens::from_config(&kpr::trust::ClientConfig {
        issuer_data: Some(dir.clone()),
        ..kpr::trust::ClientConfig::default()
    })?;
    let tokens = Arc::new(
        BENCH_MUNICIPALITIES
            .iter()
            .map(|m| tokens.for_municipality(m))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()?;
    let mut figures = Vec::new();
    let mut outcome = Ok(());
    'phases: for (mode, clients, batch) in [("unary", 64u32, 1u32), ("batch100", 16, 100)] {
        let mut peak = None;
        for load in ["peak", "half"] {
            let target = peak.map(|p: f64| p / 2.0);
            let phase = client_runtime
                .spawn(ingest_phase(
                    endpoint.clone(),
                    Arc::clone(&tokens),
                    clients,
                    batch,
                    seconds,
                    target,
                    today,
                ))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|phase| phase);
            let phase = match phase {
                Ok(phase) => phase,
                Err(e) => {
                    outcome = Err(e);
                    break 'phases;
                }
            };
            let figure = IngestFigure::new(backend, mode, clients, batch, load, &phase);
            figure.print();
            peak = Some(figure.events_per_s);
            figures.push(figure);
        }
    }
    client_runtime.shutdown_background();
    let _ = stop.send(());
    server.await??;
    let _ = std::fs::remove_dir_all(&dir);
    outcome.map(|()| figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces() {
        // Fields 14 and 15 (utime, stime) in ticks of 1/100 s.
        let stat = "4242 (kpr bench) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9";
        assert_eq!(stat_cpu_seconds(stat), Some(3.0));
        assert_eq!(stat_cpu_seconds("4242 (kpr) S 1 2"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile_ms(&sorted, 0.5), 50.0);
        assert_eq!(percentile_ms(&sorted, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }

    /// The ingest benchmark against a real in-process register: every phase has its
    /// events acknowledged (a refused request fails the run), and its figures are
    /// consistent. Speeds are not asserted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ingest_benchmark_measures_acknowledged_events() {
        let figures = run_ingest(0.3, None).await.unwrap();
        let phases: Vec<(&str, &str)> = figures.iter().map(|f| (f.mode, f.load)).collect();
        assert_eq!(
            phases,
            [
                ("unary", "peak"),
                ("unary", "half"),
                ("batch100", "peak"),
                ("batch100", "half")
            ]
        );
        for f in &figures {
            assert_eq!(f.backend, "sled");
            assert!(f.events_per_s > 0.0, "{f:?}");
            assert!(f.p50_ms <= f.p99_ms && f.p99_ms <= f.p999_ms, "{f:?}");
            assert!(f.server_cpu_us_per_event > 0.0, "{f:?}");
        }
    }
}
