//! The ingest service's errors, and the one place they become gRPC statuses.

use std::collections::HashMap;
use std::time::Duration;

use kpr_domain::state::Precondition;
use kpr_domain::validate::FieldViolation;
use kpr_eventlog::LogError;
use kpr_wire::pb;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A malformed field of one event (or of the batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFieldViolation {
    /// Index of the event in the batch (0 for batch-level violations).
    pub event_index: u32,
    /// Full path, e.g. `events[3].payload.service_decided.hours_per_week`.
    pub field: String,
    /// What is wrong.
    pub description: String,
}

impl EventFieldViolation {
    /// A violation of a field of event `index` (`field` relative to the event).
    pub fn at(index: usize, field: &str, description: impl Into<String>) -> EventFieldViolation {
        EventFieldViolation {
            event_index: index as u32,
            field: format!("events[{index}].{field}"),
            description: description.into(),
        }
    }

    /// A violation of the batch as a whole.
    pub fn batch(field: &str, description: impl Into<String>) -> EventFieldViolation {
        EventFieldViolation {
            event_index: 0,
            field: field.to_string(),
            description: description.into(),
        }
    }

    /// From a domain violation of event `index`.
    pub fn from_domain(index: usize, v: FieldViolation) -> EventFieldViolation {
        EventFieldViolation::at(index, &v.field, v.description)
    }
}

/// A lifecycle rule one event breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPrecondition {
    /// Index of the event in the batch.
    pub event_index: u32,
    /// The rule and what it conflicts with.
    pub violation: Precondition,
}

/// Why an append was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Malformed input.
    #[error("{}", summary_fields(violations))]
    InvalidArgument {
        /// Every malformed field found.
        violations: Vec<EventFieldViolation>,
    },
    /// Lifecycle rules broken.
    #[error("{}", summary_preconditions(violations))]
    FailedPrecondition {
        /// Every broken rule found.
        violations: Vec<EventPrecondition>,
    },
    /// The batch's municipality is written by another ingest node.
    #[error("municipality {municipality} (partition {partition}) is written by another ingest node{}", owner.as_ref().map(|o| format!(": send it to {o}")).unwrap_or_default())]
    NotOwner {
        /// The municipality.
        municipality: String,
        /// Its partition.
        partition: u32,
        /// The owner's address, when configured.
        owner: Option<String>,
    },
    /// No valid token, or a token that does not allow this call.
    #[error("{0}")]
    Auth(kpr_auth::AuthError),
    /// The append queue is full.
    #[error("the ingest queue is full ({capacity_batches} batches); retry later")]
    QueueFull {
        /// Capacity in batches.
        capacity_batches: u32,
    },
    /// The log cannot take writes.
    #[error("the register cannot accept writes now: {0}")]
    Unavailable(String),
    /// A bug or a corrupt log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl IngestError {
    /// Malformed input.
    pub fn invalid(violations: Vec<EventFieldViolation>) -> IngestError {
        IngestError::InvalidArgument { violations }
    }
}

impl From<LogError> for IngestError {
    fn from(e: LogError) -> IngestError {
        match e {
            LogError::QueueFull { capacity_batches } => IngestError::QueueFull { capacity_batches },
            LogError::Unavailable(reason) => IngestError::Unavailable(reason),
            other => IngestError::Internal(other.to_string()),
        }
    }
}

const SUMMARY_ITEMS_MAX: usize = 5;
/// Bytes of violations (field or subject plus description, before protobuf and base64)
/// the status details carry at most. The details travel in the
/// `grpc-status-details-bin` trailer, a third larger in base64, and default gRPC
/// clients refuse a trailer block above 8 KiB (grpc-core) or 16 KiB: past that a client
/// sees RESOURCE_EXHAUSTED instead of the refusal. The message says when more exist.
pub const DETAILS_BYTES_MAX: usize = 3072;
/// What one violation costs in the details beyond its strings (tags and lengths).
const DETAIL_OVERHEAD_BYTES: usize = 8;
/// Longest message (`grpc-message`, percent-encoded in a header), in bytes.
const MESSAGE_BYTES_MAX: usize = 512;

/// How many of the items, each of the given size in bytes, fit in the details.
fn details_fit(sizes: impl Iterator<Item = usize>) -> usize {
    let mut total = 0;
    sizes
        .take_while(|size| {
            total += size + DETAIL_OVERHEAD_BYTES;
            total <= DETAILS_BYTES_MAX
        })
        .count()
}

fn field_details_fit(violations: &[EventFieldViolation]) -> usize {
    details_fit(
        violations
            .iter()
            .map(|v| v.field.len() + v.description.len()),
    )
}

fn precondition_details_fit(violations: &[EventPrecondition]) -> usize {
    details_fit(
        violations
            .iter()
            .map(|v| v.violation.rule.len() + subject(v).len() + v.violation.description.len()),
    )
}

fn details_note(count: usize, shown: usize) -> String {
    if count > shown {
        format!(" (the details list the first {shown})")
    } else {
        String::new()
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

fn summary_fields(violations: &[EventFieldViolation]) -> String {
    let mut text = format!(
        "{} invalid field(s){}: ",
        violations.len(),
        details_note(violations.len(), field_details_fit(violations))
    );
    let shown: Vec<String> = violations
        .iter()
        .take(SUMMARY_ITEMS_MAX)
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect();
    text.push_str(&shown.join("; "));
    if violations.len() > SUMMARY_ITEMS_MAX {
        text.push_str("; …");
    }
    text
}

fn summary_preconditions(violations: &[EventPrecondition]) -> String {
    let mut text = format!(
        "{} lifecycle rule(s) broken{}: ",
        violations.len(),
        details_note(violations.len(), precondition_details_fit(violations))
    );
    let shown: Vec<String> = violations
        .iter()
        .take(SUMMARY_ITEMS_MAX)
        .map(|v| {
            format!(
                "events[{}]: {} ({})",
                v.event_index, v.violation.rule, v.violation.description
            )
        })
        .collect();
    text.push_str(&shown.join("; "));
    if violations.len() > SUMMARY_ITEMS_MAX {
        text.push_str("; …");
    }
    text
}

const ERROR_DOMAIN: &str = "kpr.register";

fn code_of(error: &IngestError) -> Code {
    match error {
        IngestError::InvalidArgument { .. } => Code::InvalidArgument,
        IngestError::FailedPrecondition { .. } | IngestError::NotOwner { .. } => {
            Code::FailedPrecondition
        }
        IngestError::Auth(e) if e.is_unauthenticated() => Code::Unauthenticated,
        IngestError::Auth(_) => Code::PermissionDenied,
        IngestError::QueueFull { .. } => Code::ResourceExhausted,
        IngestError::Unavailable(_) => Code::Unavailable,
        IngestError::Internal(_) => Code::Internal,
    }
}

fn subject(v: &EventPrecondition) -> String {
    if v.violation.subject.is_empty() {
        format!("events[{}]", v.event_index)
    } else {
        format!("events[{}] vs {}", v.event_index, v.violation.subject)
    }
}

/// The gRPC status of an ingest error: the only place ingest errors become statuses.
/// Details follow google.rpc's error model (BadRequest, PreconditionFailure,
/// QuotaFailure, RetryInfo, ErrorInfo), so generic clients can read them.
pub fn to_status(error: &IngestError) -> Status {
    let code = code_of(error);
    let mut details = ErrorDetails::new();
    let reason = match error {
        IngestError::InvalidArgument { violations } => {
            for v in violations.iter().take(field_details_fit(violations)) {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
            "INVALID_EVENT"
        }
        IngestError::FailedPrecondition { violations } => {
            for v in violations.iter().take(precondition_details_fit(violations)) {
                details.add_precondition_failure_violation(
                    v.violation.rule,
                    subject(v),
                    v.violation.description.clone(),
                );
            }
            "LIFECYCLE_RULE"
        }
        IngestError::NotOwner {
            partition, owner, ..
        } => {
            let mut metadata = HashMap::from([("partition".to_string(), partition.to_string())]);
            if let Some(owner) = owner {
                metadata.insert("owner".to_string(), owner.clone());
            }
            details.set_error_info("WRONG_INGEST_NODE", ERROR_DOMAIN, metadata);
            return Status::with_error_details(code, error.to_string(), details);
        }
        IngestError::Auth(e) => e.rule(),
        IngestError::QueueFull { capacity_batches } => {
            details.add_quota_failure_violation(
                "ingest queue",
                format!("the queue holds {capacity_batches} batches"),
            );
            details.set_retry_info(Some(Duration::from_millis(100)));
            "QUEUE_FULL"
        }
        IngestError::Unavailable(_) => {
            details.set_retry_info(Some(Duration::from_secs(1)));
            "LOG_UNAVAILABLE"
        }
        IngestError::Internal(cause) => {
            tracing::error!(cause = %cause, "internal error in ingest");
            return Status::internal("internal error; the operator's log has the cause");
        }
    };
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, bounded(error.to_string(), MESSAGE_BYTES_MAX), details)
}

/// The short reason of a refusal, for the audit trail: the error-info reason, and for
/// lifecycle refusals the first rule broken.
pub fn rule_of(error: &IngestError) -> String {
    match error {
        IngestError::InvalidArgument { .. } => "INVALID_EVENT".into(),
        IngestError::FailedPrecondition { violations } => violations
            .first()
            .map(|v| v.violation.rule.to_string())
            .unwrap_or_else(|| "LIFECYCLE_RULE".into()),
        IngestError::NotOwner { .. } => "WRONG_INGEST_NODE".into(),
        IngestError::Auth(e) => e.rule().into(),
        IngestError::QueueFull { .. } => "QUEUE_FULL".into(),
        IngestError::Unavailable(_) => "LOG_UNAVAILABLE".into(),
        IngestError::Internal(_) => "INTERNAL".into(),
    }
}

/// The gRPC code of an ingest error.
pub fn code(error: &IngestError) -> Code {
    code_of(error)
}

/// The streaming form of a refusal; `None` for errors that end the stream.
pub fn to_rejection(error: &IngestError) -> Option<pb::Rejection> {
    let code = code_of(error) as i32;
    let message = error.to_string();
    match error {
        IngestError::InvalidArgument { violations } => Some(pb::Rejection {
            code,
            message,
            field_violations: violations
                .iter()
                .map(|v| pb::FieldViolation {
                    event_index: v.event_index,
                    field: v.field.clone(),
                    description: v.description.clone(),
                })
                .collect(),
            precondition_violations: Vec::new(),
        }),
        IngestError::FailedPrecondition { violations } => Some(pb::Rejection {
            code,
            message,
            field_violations: Vec::new(),
            precondition_violations: violations
                .iter()
                .map(|v| pb::PreconditionViolation {
                    event_index: v.event_index,
                    r#type: v.violation.rule.to_string(),
                    subject: subject(v),
                    description: v.violation.description.clone(),
                })
                .collect(),
        }),
        IngestError::QueueFull { .. } | IngestError::NotOwner { .. } | IngestError::Auth(_) => {
            Some(pb::Rejection {
                code,
                message,
                field_violations: Vec::new(),
                precondition_violations: Vec::new(),
            })
        }
        IngestError::Unavailable(_) | IngestError::Internal(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_of_many_violations_fit_a_default_clients_trailer() {
        let violations: Vec<EventFieldViolation> = (0..60)
            .map(|i| {
                EventFieldViolation::at(
                    i,
                    "payload.service_decided.hours_per_week",
                    "hours per week must be in (0, 168]; got 1e308 — and a long explanation "
                        .repeat(3),
                )
            })
            .collect();
        let status = to_status(&IngestError::invalid(violations));
        assert_eq!(status.code(), Code::InvalidArgument);
        // base64 in the trailer: 4/3 of the encoded details, under 8 KiB with the message.
        let trailer = status.details().len() * 4 / 3 + status.message().len() * 3;
        assert!(trailer < 8 * 1024, "trailer of {trailer} bytes");
        let shown = status
            .get_details_bad_request()
            .map(|b| b.field_violations.len());
        assert!(matches!(shown, Some(n) if n > 0 && n < 60), "{shown:?}");
        assert!(
            status.message().starts_with(&format!(
                "60 invalid field(s) (the details list the first {})",
                shown.unwrap_or(0)
            )),
            "{}",
            status.message()
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let text = bounded("ø".repeat(2000), MESSAGE_BYTES_MAX);
        assert!(text.len() <= MESSAGE_BYTES_MAX && text.ends_with('…'));
    }
}
