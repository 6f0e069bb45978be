//! The register's audit trail ("logging og innsyn i logg" in Normen): every call to the
//! register, allowed or denied, becomes one entry. The trail is append-only, durable
//! (an entry is acknowledged only once it is written and, in production, synced) and
//! tamper-evident: each entry carries the SHA-256 hash of the previous one.
//!
//! **The trail never holds person data.** Callers describe a call by who made it, what
//! it asked for and how it ended ([`Record`]); national identity numbers, names or event
//! contents are never passed here, so this crate has nothing to filter.
//!
//! # Writing
//! A server opens an [`AuditLog`] once and calls [`AuditLog::record`] for each call it
//! answers; a writer task batches whatever is queued into one write and one sync (group
//! commit). One-shot CLI commands without a runtime use [`record_blocking`]. Several
//! processes may append to one trail at once: every append holds an exclusive `flock`
//! on `DIR/lock` and first re-reads the tail if another process wrote since.
//!
//! # Storage format (byte-stable)
//! - The trail is a directory of segments `DIR/audit-YYYYMMDD.jsonl`, one per UTC day of
//!   the entries' `time`. A writer never goes back to an older segment: if a clock steps
//!   back, its entries go into the newest segment, so reading the segments in name order
//!   always gives the entries in `seq` order.
//! - One entry per line, each line ending with `"\n"`, in compact JSON as `serde_json`
//!   writes it, with the fields in this order: `seq, time, client, org, role, channel,
//!   method, municipality, events, positions, outcome, rule, bytes_in, bytes_out, prev,
//!   hash` (see [`Entry`]). `time` is RFC 3339 UTC with milliseconds
//!   (`"2026-12-03T17:38:51.123Z"`).
//! - `seq` counts 1, 2, 3, … with no gap over the whole trail.
//! - `hash` is the lowercase hex SHA-256 of the entry's compact JSON *without* the `hash`
//!   field (all other fields, same order, `prev` included); `prev` is the previous
//!   entry's `hash`, 64 zeros for `seq` 1. Each entry thereby commits to its content and
//!   to everything before it.
//! - Lines are canonical: [`verify`] re-serializes every parsed line and requires the
//!   same bytes, so any changed byte breaks verification, even one that keeps the JSON
//!   valid.
//! - Retention ([`AuditOptions::retention_days`]) deletes whole segments older than that
//!   many days before the newest segment's date. The first retained entry then has
//!   `seq > 1`, and its `prev` is accepted as the anchor ([`VerifyReport::anchored`]).
//!   The chain cannot tell this from someone deleting the oldest entries, nor notice the
//!   newest entries being cut off: keep [`VerifyReport::head`] and `first_seq` elsewhere
//!   to detect that.
//! - A line without its `"\n"` at the end of the newest segment is an append that never
//!   completed (a crash mid-write; it was never acknowledged). Readers skip it, and the
//!   next writer truncates it away.
//! - Files are created with mode 0600, the directory with 0700.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod format;
mod store;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

pub use verify::{read, verify};
pub use writer::{AuditLog, record_blocking};

/// One call to the register, as the caller of [`AuditLog::record`] describes it. It never
/// holds person data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When the call was answered, milliseconds since the Unix epoch (the caller's clock).
    /// Stored as [`Entry::time`]; instants outside years 0000–9999 are clamped to them.
    pub time_unix_ms: i64,
    /// The token's client id, `"anonymous"`, or `"cli:<user>"` for a local operator command.
    pub client: String,
    /// The organisation number from the token, `""` if none.
    pub org: String,
    /// The role the call needed or used (`"ingest"`, `"statistics"`, `"operator"`), `""` if none.
    pub role: String,
    /// How the call came in: `"grpc"`, `"http"` or `"cli"`.
    pub channel: String,
    /// What was called: `"/kpr.v1.IngestService/Append"`, `"GET /v1/tables/T2"`, `"rebuild"`, …
    pub method: String,
    /// The 4-digit municipality code the call was for, `""` if none.
    pub municipality: String,
    /// Events in the call (0 for reads).
    pub events: u64,
    /// Log positions the call touched, free text such as `"7:1200-1299"`, `""` if none.
    pub positions: String,
    /// `"OK"`, a gRPC code name (`"PERMISSION_DENIED"`) or an HTTP status (`"401"`).
    pub outcome: String,
    /// Why the call was refused (`"token expired"`, `"EVENT_AFTER_DEATH"`), `""` when OK.
    pub rule: String,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// One stored entry: a [`Record`] with its place in the chain. The field order is the
/// storage format's; do not reorder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the trail: 1, 2, 3, … with no gap.
    pub seq: u64,
    /// [`Record::time_unix_ms`] as RFC 3339 UTC with milliseconds, `"2026-12-03T17:38:51.123Z"`.
    pub time: String,
    /// See [`Record::client`].
    pub client: String,
    /// See [`Record::org`].
    pub org: String,
    /// See [`Record::role`].
    pub role: String,
    /// See [`Record::channel`].
    pub channel: String,
    /// See [`Record::method`].
    pub method: String,
    /// See [`Record::municipality`].
    pub municipality: String,
    /// See [`Record::events`].
    pub events: u64,
    /// See [`Record::positions`].
    pub positions: String,
    /// See [`Record::outcome`].
    pub outcome: String,
    /// See [`Record::rule`].
    pub rule: String,
    /// See [`Record::bytes_in`].
    pub bytes_in: u64,
    /// See [`Record::bytes_out`].
    pub bytes_out: u64,
    /// The previous entry's `hash` (64 lowercase hex digits), 64 zeros for `seq` 1.
    pub prev: String,
    /// Lowercase hex SHA-256 of this entry's compact JSON without the `hash` field.
    pub hash: String,
}

/// How a trail is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditOptions {
    /// Delete segments older than this many days before the newest entry's date; 0 keeps
    /// everything.
    pub retention_days: u32,
    /// `fdatasync` each batch before acknowledging it. True in production; tests may
    /// turn it off for speed.
    pub sync: bool,
}

impl Default for AuditOptions {
    /// Keep everything, sync every batch: the safe choice.
    fn default() -> Self {
        AuditOptions {
            retention_days: 0,
            sync: true,
        }
    }
}

/// What [`verify`] found in an intact trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of entries checked.
    pub entries: u64,
    /// `seq` of the first retained entry (0 for an empty trail).
    pub first_seq: u64,
    /// `seq` of the last entry (0 for an empty trail).
    pub last_seq: u64,
    /// `hash` of the last entry (64 zeros for an empty trail): record it elsewhere to
    /// detect later truncation of the trail.
    pub head: String,
    /// The first retained entry is not `seq` 1 (older segments were removed by
    /// retention), so its `prev` was taken on trust as the chain's anchor.
    pub anchored: bool,
}

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing a file of the trail failed.
    #[error("audit trail I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The trail does not verify: an entry was changed, removed, reordered or damaged.
    #[error(
        "audit trail broken at {} ({} line {line}): {reason}",
        seq.map_or_else(|| "an entry".to_owned(), |seq| format!("entry {seq}")),
        file.display()
    )]
    Broken {
        /// The segment holding the broken line.
        file: PathBuf,
        /// The broken line, 1-based within `file`.
        line: u64,
        /// Where in the chain it breaks: the seq that line should have (the previous
        /// entry's seq + 1), or the line's own seq if it is the trail's first line;
        /// `None` when that is unknown (the first line does not parse).
        seq: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// The [`AuditLog`] was closed (or its writer stopped after a failure).
    #[error("the audit trail is closed")]
    Closed,
    /// [`AuditLog::open`] was called outside a tokio runtime.
    #[error("AuditLog::open needs a tokio runtime (use record_blocking without one)")]
    NoRuntime,
}

impl AuditError {
    /// A copy of this error for each caller waiting on one failed batch (`io::Error` is
    /// not `Clone`, so its kind and message are carried over).
    fn duplicate(&self) -> AuditError {
        match self {
            AuditError::Io { path, source } => AuditError::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            AuditError::Broken {
                file,
                line,
                seq,
                reason,
            } => AuditError::Broken {
                file: file.clone(),
                line: *line,
                seq: *seq,
                reason: reason.clone(),
            },
            AuditError::Closed => AuditError::Closed,
            AuditError::NoRuntime => AuditError::NoRuntime,
        }
    }
}

/// Wraps an I/O error with the path it concerns, for `map_err`.
fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}
