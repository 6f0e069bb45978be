//! Tests against real files in temporary directories.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::format::{self, GENESIS, days_from_civil, format_time, segment_days, segment_name};
use crate::{AuditError, AuditLog, AuditOptions, Entry, Record, read, record_blocking, verify};

const DAY_MS: i64 = 86_400_000;

/// 2026-12-03T17:38:51.123Z.
const T0: i64 = 1_796_319_531_123;

fn fast() -> AuditOptions {
    AuditOptions {
        retention_days: 0,
        sync: false,
    }
}

fn record(i: u64, time_unix_ms: i64) -> Record {
    Record {
        time_unix_ms,
        client: format!("client-{}", i % 7),
        org: "974760673".to_owned(),
        role: "ingest".to_owned(),
        channel: "grpc".to_owned(),
        method: "/kpr.v1.IngestService/Append".to_owned(),
        municipality: "0301".to_owned(),
        events: i,
        positions: format!("{}:{}-{}", i % 8, i * 100, i * 100 + 99),
        outcome: if i.is_multiple_of(5) {
            "PERMISSION_DENIED"
        } else {
            "OK"
        }
        .to_owned(),
        rule: if i.is_multiple_of(5) {
            "token expired"
        } else {
            ""
        }
        .to_owned(),
        bytes_in: i * 10,
        bytes_out: 7,
    }
}

/// A trail of `n` entries (seq 1..=n, `events` = seq) written one by one without a runtime.
fn trail(dir: &Path, n: u64, time_unix_ms: i64) {
    for i in 1..=n {
        record_blocking(dir, fast(), record(i, time_unix_ms + i as i64)).unwrap();
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
}

/// The broken place verify reports: (file, line, seq, reason).
fn broken(dir: &Path) -> (PathBuf, u64, Option<u64>, String) {
    match verify(dir) {
        Err(AuditError::Broken {
            file,
            line,
            seq,
            reason,
        }) => (file, line, seq, reason),
        other => panic!("expected a broken trail, got {other:?}"),
    }
}

/// Byte range of line `no` (1-based, without its "\n") in `bytes`.
fn line_range(bytes: &[u8], no: usize) -> std::ops::Range<usize> {
    let mut start = 0;
    for _ in 1..no {
        start += bytes[start..].iter().position(|&b| b == b'\n').unwrap() + 1;
    }
    let len = bytes[start..].iter().position(|&b| b == b'\n').unwrap();
    start..start + len
}

#[test]
fn time_is_formatted_as_rfc3339_utc_with_milliseconds() {
    let cases = [
        (0, "1970-01-01T00:00:00.000Z"),
        (T0, "2026-12-03T17:38:51.123Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (68_169_600_000, "1972-02-29T00:00:00.000Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"), // 2000 is a leap year
        (951_868_800_000, "2000-03-01T00:00:00.000Z"),
        (1_735_603_200_000, "2024-12-31T00:00:00.000Z"), // day 366
        (1_735_689_599_999, "2024-12-31T23:59:59.999Z"),
        (4_107_542_399_999, "2100-02-28T23:59:59.999Z"), // 2100 is not
        (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
        (i64::MIN, "0000-01-01T00:00:00.000Z"), // clamped to four-digit years
        (i64::MAX, "9999-12-31T23:59:59.999Z"),
    ];
    for (ms, want) in cases {
        assert_eq!(format_time(ms), want, "{ms}");
    }
    assert_eq!(format::MIN_MS, days_from_civil(0, 1, 1) * DAY_MS);
    assert_eq!(format::MAX_MS, days_from_civil(10_000, 1, 1) * DAY_MS - 1);
}

#[test]
fn calendar_and_segment_names_round_trip() {
    // Every day from 1900 to 2200 converts both ways and names a segment that parses back.
    let (first, last) = (days_from_civil(1900, 1, 1), days_from_civil(2200, 12, 31));
    assert_eq!(last - first + 1, 301 * 365 + 73); // leap years 1904..=2196 but not 2100
    let mut previous = None;
    for days in first..=last {
        let (y, m, d) = format::civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
        let name = segment_name(days);
        assert_eq!(segment_days(&name), Some(days), "{name}");
        assert!(
            previous.as_ref().is_none_or(|p: &String| *p < name),
            "names sort by date"
        );
        previous = Some(name);
    }
    assert_eq!(
        segment_name(days_from_civil(2026, 12, 3)),
        "audit-20261203.jsonl"
    );
    for bad in [
        "audit-20260230.jsonl",
        "audit-2026123.jsonl",
        "audit-2026120a.jsonl",
        "audit-20261203.json",
        "lock",
    ] {
        assert_eq!(segment_days(bad), None, "{bad}");
    }
}

#[test]
fn stored_line_is_byte_stable() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = record(5, T0);
    r.method = "GET /v1/tables/T2 \"x\"\nø".to_owned(); // needs escapes; non-ASCII stays raw
    record_blocking(dir.path(), fast(), r).unwrap();
    let body = concat!(
        r#"{"seq":1,"time":"2026-12-03T17:38:51.123Z","client":"client-5","org":"974760673","#,
        r#""role":"ingest","channel":"grpc","method":"GET /v1/tables/T2 \"x\"\nø","#,
        r#""municipality":"0301","events":5,"positions":"5:500-599","outcome":"PERMISSION_DENIED","#,
        r#""rule":"token expired","bytes_in":50,"bytes_out":7,"#,
        r#""prev":"0000000000000000000000000000000000000000000000000000000000000000"}"#
    );
    let hash: String = Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let want = format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
    let files = segments(dir.path());
    assert_eq!(files, [dir.path().join("audit-20261203.jsonl")]);
    assert_eq!(fs::read_to_string(&files[0]).unwrap(), want);
    assert_eq!(verify(dir.path()).unwrap().head, hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_records_verifies_and_reads_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), fast()).unwrap();
    // Spanning midnight, so the chain crosses two segments.
    let start = days_from_civil(2026, 12, 3) * DAY_MS + DAY_MS - 150_000;
    let mut want = Vec::new();
    for i in 1..=300 {
        let r = record(i, start + i as i64 * 1000);
        log.record(r.clone()).await.unwrap();
        want.push(r);
    }
    log.close().await.unwrap();

    let report = verify(dir.path()).unwrap();
    assert_eq!(
        (report.entries, report.first_seq, report.last_seq),
        (300, 1, 300)
    );
    assert!(!report.anchored);
    assert_eq!(segments(dir.path()).len(), 2);
    let entries = read(dir.path()).unwrap();
    assert_eq!(entries.len(), 300);
    let mut prev = GENESIS.to_owned();
    for (i, (entry, r)) in entries.iter().zip(&want).enumerate() {
        assert_eq!(entry.seq, i as u64 + 1);
        assert_eq!(entry.time, format_time(r.time_unix_ms));
        let got = (
            &entry.client,
            &entry.org,
            &entry.role,
            &entry.channel,
            &entry.method,
        );
        assert_eq!(got, (&r.client, &r.org, &r.role, &r.channel, &r.method));
        let got = (
            &entry.municipality,
            entry.events,
            &entry.positions,
            &entry.outcome,
        );
        assert_eq!(got, (&r.municipality, r.events, &r.positions, &r.outcome));
        assert_eq!(
            (&entry.rule, entry.bytes_in, entry.bytes_out),
            (&r.rule, r.bytes_in, r.bytes_out)
        );
        assert_eq!(entry.prev, prev);
        prev = entry.hash.clone();
    }
    assert_eq!(report.head, prev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_are_all_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), AuditOptions::default()).unwrap();
    let tasks: Vec<_> = (1..=500)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.record(record(i, T0)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(verify(dir.path()).unwrap().entries, 500);
    let events: BTreeSet<u64> = read(dir.path()).unwrap().iter().map(|e| e.events).collect();
    assert_eq!(events, (1..=500).collect());
}

#[test]
fn flipping_any_byte_of_a_line_breaks_it() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path(), 20, T0);
    let file = segments(dir.path()).remove(0);
    let original = fs::read(&file).unwrap();
    for no in [10, 20] {
        let range = line_range(&original, no);
        for at in range {
            for mask in [0x01, 0x20] {
                let mut bytes = original.clone();
                bytes[at] ^= mask;
                fs::write(&file, &bytes).unwrap();
                let (f, line, seq, reason) = broken(dir.path());
                let context = format!("byte {at} ^ {mask:#x} of line {no}: {reason}");
                assert_eq!(
                    (f.as_path(), line, seq),
                    (file.as_path(), no as u64, Some(no as u64)),
                    "{context}"
                );
            }
        }
    }

    // What each kind of change is reported as: a digit changed to another keeps the
    // line valid JSON in canonical form, so only the chain's own checks catch it.
    let line = line_range(&original, 10);
    let text = std::str::from_utf8(&original[line.clone()])
        .unwrap()
        .to_owned();
    let cases = [
        (r#""client":"client-"#, "hash does not match its content"),
        (r#""events":"#, "hash does not match its content"),
        (r#""prev":""#, "prev does not match the hash of entry 9"),
        (r#""hash":""#, "hash does not match its content"),
    ];
    for (after, want) in cases {
        let at = line.start + text.find(after).unwrap() + after.len();
        let mut bytes = original.clone();
        bytes[at] = if bytes[at] == b'2' { b'3' } else { b'2' };
        fs::write(&file, &bytes).unwrap();
        assert_eq!(broken(dir.path()).1, 10);
        let (_, _, seq, reason) = broken(dir.path());
        assert_eq!((seq, reason.as_str()), (Some(10), want), "{after}");
    }
    fs::write(&file, &original).unwrap();
    assert_eq!(verify(dir.path()).unwrap().entries, 20);
}

#[test]
fn a_changed_seq_breaks_at_that_position() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path(), 12, T0);
    let file = segments(dir.path()).remove(0);
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, text.replace(r#"{"seq":10,"#, r#"{"seq":19,"#)).unwrap();
    let (_, line, seq, reason) = broken(dir.path());
    assert_eq!((line, seq), (10, Some(10)));
    assert_eq!(
        reason,
        "seq 19 follows seq 9 (an entry is missing, duplicated or out of order)"
    );
    let message = verify(dir.path()).unwrap_err().to_string();
    let want = format!(
        "audit trail broken at entry 10 ({} line 10): seq 19",
        file.display()
    );
    assert!(message.starts_with(&want), "{message}");
}

#[test]
fn valid_but_non_canonical_json_breaks_the_line() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path(), 5, T0);
    let file = segments(dir.path()).remove(0);
    let original = fs::read_to_string(&file).unwrap();
    let line3 = original.lines().nth(2).unwrap().to_owned();
    let variants = [
        line3.replacen(r#""events":3"#, r#""events": 3"#, 1),
        line3.replacen(r#""client":"c"#, r#""client":"\u0063"#, 1),
        line3.replacen(r#""events":3"#, r#""events":3.0"#, 1),
        format!("{line3}\r"),
        format!(" {line3}"),
    ];
    for variant in variants {
        assert_ne!(variant, line3);
        fs::write(&file, original.replacen(&line3, &variant, 1)).unwrap();
        let (_, line, seq, reason) = broken(dir.path());
        assert_eq!((line, seq), (3, Some(3)), "{variant}: {reason}");
    }
}

#[test]
fn removed_or_reordered_entries_break_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path(), 20, T0);
    let file = segments(dir.path()).remove(0);
    let original = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let join = |lines: &[&str]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();

    // A middle line deleted: the gap is where entry 10 should be.
    let mut deleted = lines.clone();
    deleted.remove(9);
    fs::write(&file, join(&deleted)).unwrap();
    let (_, line, seq, reason) = broken(dir.path());
    assert_eq!((line, seq), (10, Some(10)));
    assert!(reason.starts_with("seq 11 follows seq 9"), "{reason}");

    // Two lines swapped.
    let mut swapped = lines.clone();
    swapped.swap(9, 10);
    fs::write(&file, join(&swapped)).unwrap();
    let (_, line, seq, reason) = broken(dir.path());
    assert_eq!((line, seq), (10, Some(10)));
    assert!(reason.starts_with("seq 11 follows seq 9"), "{reason}");

    // A line duplicated.
    let mut doubled = lines.clone();
    doubled.insert(10, lines[9]);
    fs::write(&file, join(&doubled)).unwrap();
    assert_eq!(broken(dir.path()).2, Some(11));

    // An empty line.
    let mut empty = lines.clone();
    empty.insert(5, "");
    fs::write(&file, join(&empty)).unwrap();
    let (_, line, seq, _) = broken(dir.path());
    assert_eq!((line, seq), (6, Some(6)));

    // The first entry deleted cannot be told from retention: the chain then starts at
    // an anchor. (Keep first_seq and head elsewhere to notice.)
    fs::write(&file, join(&lines[1..])).unwrap();
    let report = verify(dir.path()).unwrap();
    assert!(report.anchored);
    assert_eq!((report.first_seq, report.entries), (2, 19));

    // But a first entry claiming seq 1 must start from the genesis.
    let forged = lines[1].replacen(r#"{"seq":2,"#, r#"{"seq":1,"#, 1);
    fs::write(&file, join(&[&forged])).unwrap();
    assert_eq!(
        broken(dir.path()).3,
        "the first entry's prev is not 64 zeros"
    );
}

#[test]
fn a_missing_or_misplaced_segment_breaks_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    for day in 0..3 {
        for i in 1..=4 {
            record_blocking(dir.path(), fast(), record(i, T0 + day * DAY_MS)).unwrap();
        }
    }
    let files = segments(dir.path());
    assert_eq!(files.len(), 3);
    assert_eq!(verify(dir.path()).unwrap().entries, 12);

    // A flip in the second file names that file and its own line number.
    let original = fs::read(&files[1]).unwrap();
    let mut bytes = original.clone();
    let at = line_range(&bytes, 2).start + 40;
    bytes[at] ^= 0x01;
    fs::write(&files[1], &bytes).unwrap();
    let (file, line, seq, _) = broken(dir.path());
    assert_eq!((file, line, seq), (files[1].clone(), 2, Some(6)));
    fs::write(&files[1], &original).unwrap();

    // The middle segment gone: the third file's first line does not follow.
    fs::rename(&files[1], dir.path().join("kept-aside")).unwrap();
    let (file, line, seq, reason) = broken(dir.path());
    assert_eq!((file, line, seq), (files[2].clone(), 1, Some(5)));
    assert!(reason.starts_with("seq 9 follows seq 4"), "{reason}");

    // Put back under an earlier date: out of order.
    fs::rename(
        dir.path().join("kept-aside"),
        dir.path().join("audit-19991231.jsonl"),
    )
    .unwrap();
    let (file, line, seq, _) = broken(dir.path());
    assert_eq!((file, line, seq), (files[0].clone(), 1, Some(9)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_truncated_on_open_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), fast()).unwrap();
    for i in 1..=5 {
        log.record(record(i, T0)).await.unwrap();
    }
    log.close().await.unwrap();
    let file = segments(dir.path()).remove(0);
    let complete = fs::read(&file).unwrap();
    let mut torn = fs::OpenOptions::new().append(true).open(&file).unwrap();
    torn.write_all(br#"{"seq":6,"time":"2026-12-03T1"#).unwrap();
    drop(torn);
    // Readers skip the incomplete line.
    assert_eq!(verify(dir.path()).unwrap().entries, 5);

    let log = AuditLog::open(dir.path(), fast()).unwrap();
    assert_eq!(
        fs::read(&file).unwrap(),
        complete,
        "the partial line is gone"
    );
    log.record(record(6, T0)).await.unwrap();
    log.close().await.unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.entries, report.last_seq), (6, 6));
    assert_eq!(read(dir.path()).unwrap()[5].events, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_torn_by_another_process_is_repaired_before_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), fast()).unwrap();
    log.record(record(1, T0)).await.unwrap();
    // Another writer appended two entries, then crashed in the middle of a third.
    record_blocking(dir.path(), fast(), record(2, T0)).unwrap();
    record_blocking(dir.path(), fast(), record(3, T0)).unwrap();
    let file = segments(dir.path()).remove(0);
    let mut torn = fs::OpenOptions::new().append(true).open(&file).unwrap();
    torn.write_all(br#"{"seq":4,"ti"#).unwrap();
    drop(torn);

    log.record(record(4, T0)).await.unwrap();
    log.close().await.unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.entries, report.last_seq), (4, 4));
    let events: Vec<u64> = read(dir.path()).unwrap().iter().map(|e| e.events).collect();
    assert_eq!(events, [1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_parallel_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let a = AuditLog::open(dir.path(), AuditOptions::default()).unwrap();
    let b = AuditLog::open(dir.path(), fast()).unwrap();
    let cli_dir = dir.path().to_path_buf();
    let cli = std::thread::spawn(move || {
        for i in 0..40 {
            record_blocking(&cli_dir, fast(), record(2_000_000 + i, T0)).unwrap();
        }
    });
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (log, id) = if i % 2 == 0 {
            (a.clone(), i)
        } else {
            (b.clone(), 1_000_000 + i)
        };
        tasks.push(tokio::spawn(
            async move { log.record(record(id, T0)).await },
        ));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    cli.join().unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();

    let report = verify(dir.path()).unwrap();
    assert_eq!(report.entries, 340);
    let events: BTreeSet<u64> = read(dir.path()).unwrap().iter().map(|e| e.events).collect();
    let want: BTreeSet<u64> = (0..300)
        .map(|i| if i % 2 == 0 { i } else { 1_000_000 + i })
        .chain((0..40).map(|i| 2_000_000 + i))
        .collect();
    assert_eq!(events, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_segments_at_open_and_the_trail_is_anchored() {
    let dir = tempfile::tempdir().unwrap();
    let today = days_from_civil(2026, 12, 3);
    for (i, age) in [100, 50, 31, 30, 0].into_iter().enumerate() {
        record_blocking(
            dir.path(),
            fast(),
            record(i as u64 + 1, (today - age) * DAY_MS + 5),
        )
        .unwrap();
    }
    assert_eq!(segments(dir.path()).len(), 5);

    let keep = AuditOptions {
        retention_days: 30,
        sync: false,
    };
    let log = AuditLog::open(dir.path(), keep).unwrap();
    let names: Vec<PathBuf> = segments(dir.path());
    assert_eq!(
        names,
        [
            dir.path().join(segment_name(today - 30)),
            dir.path().join(segment_name(today))
        ]
    );
    log.record(record(6, today * DAY_MS + 10)).await.unwrap();
    log.close().await.unwrap();
    let report = verify(dir.path()).unwrap();
    assert!(report.anchored);
    assert_eq!(
        (report.entries, report.first_seq, report.last_seq),
        (3, 4, 6)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_applies_when_a_new_days_segment_starts() {
    let dir = tempfile::tempdir().unwrap();
    let today = days_from_civil(2026, 12, 3);
    let keep = AuditOptions {
        retention_days: 30,
        sync: true,
    };
    let log = AuditLog::open(dir.path(), keep).unwrap();
    for (i, age) in [40, 35, 30, 0].into_iter().enumerate() {
        log.record(record(i as u64 + 1, (today - age) * DAY_MS))
            .await
            .unwrap();
        if age == 30 {
            assert_eq!(
                segments(dir.path()).len(),
                3,
                "nothing is older than 30 days yet"
            );
        }
    }
    log.close().await.unwrap();
    assert_eq!(segments(dir.path()).len(), 2);
    let report = verify(dir.path()).unwrap();
    assert!(report.anchored);
    assert_eq!((report.first_seq, report.last_seq), (3, 4));

    // 0 keeps everything.
    let all = tempfile::tempdir().unwrap();
    for (i, age) in [4000, 0].into_iter().enumerate() {
        record_blocking(all.path(), fast(), record(i as u64, (today - age) * DAY_MS)).unwrap();
    }
    assert_eq!(segments(all.path()).len(), 2);
}

#[test]
fn a_clock_stepping_back_stays_in_the_newest_segment() {
    let dir = tempfile::tempdir().unwrap();
    record_blocking(dir.path(), fast(), record(1, T0)).unwrap();
    record_blocking(dir.path(), fast(), record(2, T0 - 3 * DAY_MS)).unwrap();
    assert_eq!(
        segments(dir.path()),
        [dir.path().join("audit-20261203.jsonl")]
    );
    let entries = read(dir.path()).unwrap();
    assert_eq!(
        entries[1].time, "2026-11-30T17:38:51.123Z",
        "the time is kept as given"
    );
    assert_eq!(verify(dir.path()).unwrap().entries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_after_close_fail_with_closed() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), fast()).unwrap();
    log.record(record(1, T0)).await.unwrap();
    log.close().await.unwrap();
    assert!(matches!(
        log.record(record(2, T0)).await,
        Err(AuditError::Closed)
    ));
    log.close().await.unwrap();
    assert_eq!(verify(dir.path()).unwrap().entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_is_reported_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), fast()).unwrap();
    log.record(record(1, T0)).await.unwrap();
    // A directory squatting on the next day's segment name: the append fails.
    fs::create_dir(dir.path().join("audit-20261204.jsonl")).unwrap();
    let failed = log.record(record(2, T0 + DAY_MS)).await;
    assert!(matches!(failed, Err(AuditError::Io { .. })), "{failed:?}");
    fs::remove_dir(dir.path().join("audit-20261204.jsonl")).unwrap();
    log.record(record(3, T0 + DAY_MS)).await.unwrap();
    log.close().await.unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.entries, report.last_seq), (2, 2));
}

#[test]
fn open_needs_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        AuditLog::open(dir.path(), fast()),
        Err(AuditError::NoRuntime)
    ));
}

#[test]
fn files_are_private_to_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let trail_dir = dir.path().join("audit");
    record_blocking(&trail_dir, fast(), record(1, T0)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&trail_dir), 0o700);
    assert_eq!(mode(&trail_dir.join("lock")), 0o600);
    assert_eq!(mode(&segments(&trail_dir)[0]), 0o600);
}

#[test]
fn an_empty_trail_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!(
        (
            report.entries,
            report.first_seq,
            report.last_seq,
            report.anchored
        ),
        (0, 0, 0, false)
    );
    assert_eq!(report.head, GENESIS);
    assert_eq!(read(dir.path()).unwrap(), Vec::<Entry>::new());
    assert!(matches!(
        verify(&dir.path().join("missing")),
        Err(AuditError::Io { .. })
    ));
}
