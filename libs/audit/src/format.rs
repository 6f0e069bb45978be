//! The byte-level format: times, segment names, entry hashes.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Entry, Record};

/// `prev` of the trail's first entry.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const MS_PER_DAY: i64 = 86_400_000;

/// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: RFC 3339 (and the segment
/// names) have four-digit years, so instants outside are clamped to this range.
pub(crate) const MIN_MS: i64 = -62_167_219_200_000;
pub(crate) const MAX_MS: i64 = 253_402_300_799_999;

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`; eras of 400 years make it exact for any day).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // shift the epoch to 0000-03-01, so leap days end a year
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`] (for valid dates).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The stored instant of a record's time.
pub(crate) fn clamp_ms(time_unix_ms: i64) -> i64 {
    time_unix_ms.clamp(MIN_MS, MAX_MS)
}

/// The UTC day (days since 1970-01-01) of a clamped instant.
pub(crate) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY)
}

/// RFC 3339 UTC with milliseconds: `"2026-12-03T17:38:51.123Z"`.
pub(crate) fn format_time(time_unix_ms: i64) -> String {
    let ms = clamp_ms(time_unix_ms);
    let (year, month, day) = civil_from_days(day_of(ms));
    let of_day = ms.rem_euclid(MS_PER_DAY);
    let (hour, minute) = (of_day / 3_600_000, of_day / 60_000 % 60);
    let (second, milli) = (of_day / 1000 % 60, of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// `audit-YYYYMMDD.jsonl` of a day.
pub(crate) fn segment_name(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("audit-{year:04}{month:02}{day:02}.jsonl")
}

/// The day of a segment file name, `None` if the name is not exactly a segment's (so
/// other files in the directory, such as `lock`, are left alone).
pub(crate) fn segment_days(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| digits.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let days = days_from_civil(year, month, day);
    // The round trip rejects impossible dates such as 20260230.
    (civil_from_days(days) == (year, month, day)).then_some(days)
}

/// The entry as hashed: every field but `hash`, in the stored order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    time: &'a str,
    client: &'a str,
    org: &'a str,
    role: &'a str,
    channel: &'a str,
    method: &'a str,
    municipality: &'a str,
    events: u64,
    positions: &'a str,
    outcome: &'a str,
    rule: &'a str,
    bytes_in: u64,
    bytes_out: u64,
    prev: &'a str,
}

/// The hash an entry should carry: lowercase hex SHA-256 of its compact JSON without
/// the `hash` field.
pub(crate) fn content_hash(entry: &Entry) -> serde_json::Result<String> {
    let hashed = Hashed {
        seq: entry.seq,
        time: &entry.time,
        client: &entry.client,
        org: &entry.org,
        role: &entry.role,
        channel: &entry.channel,
        method: &entry.method,
        municipality: &entry.municipality,
        events: entry.events,
        positions: &entry.positions,
        outcome: &entry.outcome,
        rule: &entry.rule,
        bytes_in: entry.bytes_in,
        bytes_out: entry.bytes_out,
        prev: &entry.prev,
    };
    let digest = Sha256::digest(serde_json::to_vec(&hashed)?);
    Ok(hex(&digest))
}

/// The entry `record` becomes at `seq` after the entry whose hash is `prev`.
pub(crate) fn seal(seq: u64, record: Record, prev: String) -> serde_json::Result<Entry> {
    let mut entry = Entry {
        seq,
        time: format_time(record.time_unix_ms),
        client: record.client,
        org: record.org,
        role: record.role,
        channel: record.channel,
        method: record.method,
        municipality: record.municipality,
        events: record.events,
        positions: record.positions,
        outcome: record.outcome,
        rule: record.rule,
        bytes_in: record.bytes_in,
        bytes_out: record.bytes_out,
        prev,
        hash: String::new(),
    };
    entry.hash = content_hash(&entry)?;
    Ok(entry)
}

/// Whether `s` looks like a hash: exactly 64 lowercase hex digits.
pub(crate) fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
