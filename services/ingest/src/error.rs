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
/// Most violations carried in the status details: the details travel in a trailer,
/// and gRPC clients refuse trailers above 8-16 KiB. The message says when more exist.
pub const DETAILS_ITEMS_MAX: usize = 40;

fn details_note(count: usize) -> String {
    if count > DETAILS_ITEMS_MAX {
        format!(" (the details list the first {DETAILS_ITEMS_MAX})")
    } else {
        String::new()
    }
}

fn summary_fields(violations: &[EventFieldViolation]) -> String {
    let mut text = format!(
        "{} invalid field(s){}: ",
        violations.len(),
        details_note(violations.len())
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
        details_note(violations.len())
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
            for v in violations.iter().take(DETAILS_ITEMS_MAX) {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
            "INVALID_EVENT"
        }
        IngestError::FailedPrecondition { violations } => {
            for v in violations.iter().take(DETAILS_ITEMS_MAX) {
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
    Status::with_error_details(code, error.to_string(), details)
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
        IngestError::QueueFull { .. } | IngestError::NotOwner { .. } => Some(pb::Rejection {
            code,
            message,
            field_violations: Vec::new(),
            precondition_violations: Vec::new(),
        }),
        IngestError::Unavailable(_) | IngestError::Internal(_) => None,
    }
}
