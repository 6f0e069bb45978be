//! `kpr.v1.IngestService` over tonic: thin handlers that hand the request to the
//! [`Ingestor`] and map its answer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kpr_audit::{AuditLog, Record};
use kpr_auth::{Authenticator, Caller, Role};
use kpr_domain::municipality::MunicipalityCode;
use kpr_eventlog::EventLog;
use kpr_wire::pb;
use kpr_wire::pb::ingest_service_server::{IngestService, IngestServiceServer};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{IngestError, code, rule_of, to_rejection, to_status};
use crate::ingestor::{Ack, Ingestor};

/// Batches of one stream that may be waiting for durability at once.
pub const STREAM_BATCHES_IN_FLIGHT_MAX: usize = 64;

/// The gRPC face of an [`Ingestor`]: authenticates each call, binds it to the
/// caller's municipality and records it in the audit trail.
pub struct IngestGrpc<L> {
    ingestor: Arc<Ingestor<L>>,
    auth: Arc<Authenticator>,
    audit: Option<Arc<AuditLog>>,
}

const APPEND: &str = "/kpr.v1.IngestService/Append";
const APPEND_STREAM: &str = "/kpr.v1.IngestService/AppendStream";

/// A refused caller (if it was identified) and why.
type Refused = Box<(Option<Caller>, IngestError)>;

/// Who is writing, once the token has been checked.
struct Writer {
    caller: Option<Caller>,
    /// The one municipality it may write (`None` only with authentication off).
    bound: Option<MunicipalityCode>,
}

impl<L: EventLog> IngestGrpc<L> {
    /// A service over `ingestor`, checking callers with `auth` and recording every call
    /// in `audit` (when given).
    pub fn new(
        ingestor: Arc<Ingestor<L>>,
        auth: Arc<Authenticator>,
        audit: Option<Arc<AuditLog>>,
    ) -> IngestGrpc<L> {
        IngestGrpc {
            ingestor,
            auth,
            audit,
        }
    }

    /// The caller of a request, with the ingest role and a municipality binding.
    fn writer(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Writer, Refused> {
        let caller = self
            .auth
            .authenticate(kpr_net::authorization(metadata))
            .map_err(|e| Box::new((None, IngestError::Auth(e))))?;
        if !self.auth.is_on() {
            return Ok(Writer {
                caller: Some(caller),
                bound: None,
            });
        }
        if let Err(e) = caller.require(Role::Ingest) {
            return Err(Box::new((Some(caller), IngestError::Auth(e))));
        }
        match caller.municipality {
            Some(bound) => Ok(Writer {
                bound: Some(bound),
                caller: Some(caller),
            }),
            None => {
                let org = caller.org_number.clone().unwrap_or_else(|| "none".into());
                Err(Box::new((
                    Some(caller),
                    IngestError::Auth(kpr_auth::AuthError::Unbound { org }),
                )))
            }
        }
    }

    /// The tonic server for this service, with the message size bound applied.
    pub fn into_server(self, message_bytes_max: usize) -> IngestServiceServer<Self> {
        IngestServiceServer::new(self)
            .max_decoding_message_size(message_bytes_max)
            .max_encoding_message_size(message_bytes_max)
    }
}

fn response(acks: Vec<Ack>) -> pb::AppendResponse {
    pb::AppendResponse {
        acks: acks
            .into_iter()
            .map(|a| pb::Ack {
                event_id: a.event_id,
                partition: a.position.partition,
                offset: a.position.offset,
                duplicate: a.duplicate,
            })
            .collect(),
    }
}

/// What the inbound half of a stream hands to the answering half, in request order.
enum Pending {
    /// A begun batch, its completion task, its events and size (for the audit trail).
    Batch(
        u64,
        tokio::task::JoinHandle<Result<Vec<Ack>, IngestError>>,
        Vec<pb::Event>,
        u64,
    ),
    /// The stream failed (e.g. a message over the size bound): answer with this and stop.
    Failed(Status),
}

type AnswerStream = Pin<Box<dyn Stream<Item = Result<pb::AppendStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<L: EventLog> IngestService for IngestGrpc<L> {
    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let bytes_in = prost::Message::encoded_len(request.get_ref()) as u64;
        let writer = self.writer(request.metadata());
        let events = request.into_inner().events;
        let (caller, outcome) = match writer {
            Ok(writer) => (
                writer.caller,
                self.ingestor.append(writer.bound, &events).await,
            ),
            Err(refused) => {
                let (caller, error) = *refused;
                (caller, Err(error))
            }
        };
        let answer = outcome.map(response);
        let entry = audit_entry(APPEND, caller.as_ref(), &events, &answer, bytes_in);
        record(self.audit.as_deref(), entry).await?;
        answer.map(Response::new).map_err(|e| to_status(&e))
    }

    type AppendStreamStream = AnswerStream;

    async fn append_stream(
        &self,
        request: Request<Streaming<pb::AppendRequest>>,
    ) -> Result<Response<AnswerStream>, Status> {
        let writer = match self.writer(request.metadata()) {
            Ok(writer) => writer,
            Err(refused) => {
                let (caller, error) = *refused;
                let entry = audit_entry(APPEND_STREAM, caller.as_ref(), &[], &Err(error), 0);
                let status = match &entry.1 {
                    Some(status) => status.clone(),
                    None => Status::internal("refused"),
                };
                record(self.audit.as_deref(), entry).await?;
                return Err(status);
            }
        };
        let bound = writer.bound;
        let caller = writer.caller;
        let audit = self.audit.clone();
        let mut inbound = request.into_inner();
        let (pending_tx, mut pending_rx) = mpsc::channel(STREAM_BATCHES_IN_FLIGHT_MAX);
        let (answer_tx, answer_rx) = mpsc::channel(STREAM_BATCHES_IN_FLIGHT_MAX);
        let ingestor = Arc::clone(&self.ingestor);
        let stopped = Arc::new(AtomicBool::new(false));
        // Phase one runs here, in stream order, so batches are validated and enqueued
        // in the order they were sent; phase two runs concurrently.
        let inbound_stopped = Arc::clone(&stopped);
        tokio::spawn(async move {
            let mut index = 0u64;
            loop {
                let item = match inbound.message().await {
                    Ok(Some(_)) if inbound_stopped.load(Ordering::SeqCst) => break,
                    Ok(Some(request)) => {
                        let bytes_in = prost::Message::encoded_len(&request) as u64;
                        let pending = match ingestor.begin(bound, &request.events) {
                            Ok(completion) => tokio::spawn(completion.wait()),
                            Err(error) => {
                                tokio::spawn(async move { Err::<Vec<Ack>, IngestError>(error) })
                            }
                        };
                        Pending::Batch(index, pending, request.events, bytes_in)
                    }
                    Ok(None) => break,
                    // A message over the size bound, or one that does not decode: the
                    // client hears why, after the answers to the batches before it.
                    Err(status) => Pending::Failed(status),
                };
                let last = matches!(item, Pending::Failed(_));
                if pending_tx.send(item).await.is_err() || last {
                    break;
                }
                index += 1;
            }
        });
        // Answers go out in request order.
        tokio::spawn(async move {
            while let Some(item) = pending_rx.recv().await {
                let (batch_index, pending, events, bytes_in) = match item {
                    Pending::Batch(index, pending, events, bytes_in) => {
                        (index, pending, events, bytes_in)
                    }
                    Pending::Failed(status) => {
                        let _ = answer_tx.send(Err(status)).await;
                        break;
                    }
                };
                let outcome = pending.await.unwrap_or_else(|e| {
                    Err(IngestError::Internal(format!("append task failed: {e}")))
                });
                let outcome = outcome.map(response);
                let entry =
                    audit_entry(APPEND_STREAM, caller.as_ref(), &events, &outcome, bytes_in);
                if let Err(status) = record(audit.as_deref(), entry).await {
                    let _ = answer_tx.send(Err(status)).await;
                    stopped.store(true, Ordering::SeqCst);
                    break;
                }
                let answer = match outcome {
                    Ok(acks) => Ok(pb::AppendStreamResponse {
                        batch_index,
                        result: Some(pb::append_stream_response::Result::Appended(acks)),
                    }),
                    Err(error) => match to_rejection(&error) {
                        Some(rejection) => Ok(pb::AppendStreamResponse {
                            batch_index,
                            result: Some(pb::append_stream_response::Result::Rejected(rejection)),
                        }),
                        None => Err(to_status(&error)),
                    },
                };
                let fatal = answer.is_err();
                if answer_tx.send(answer).await.is_err() || fatal {
                    // No further batch of this stream is begun after a fatal answer.
                    stopped.store(true, Ordering::SeqCst);
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(answer_rx))))
    }
}

/// The audit entry of one append (or refusal), and the status of a refusal.
fn audit_entry(
    method: &str,
    caller: Option<&Caller>,
    events: &[pb::Event],
    answer: &Result<pb::AppendResponse, IngestError>,
    bytes_in: u64,
) -> (Record, Option<Status>) {
    let (outcome, rule, bytes_out, positions, status) = match answer {
        Ok(response) => {
            let mut by_partition: std::collections::BTreeMap<u32, (u64, u64)> =
                std::collections::BTreeMap::new();
            for ack in &response.acks {
                let span = by_partition
                    .entry(ack.partition)
                    .or_insert((ack.offset, ack.offset));
                span.0 = span.0.min(ack.offset);
                span.1 = span.1.max(ack.offset);
            }
            // The position notation of answers and log lines (`partition:…`, commas),
            // with the offsets the batch took as a range.
            let positions: Vec<String> = by_partition
                .iter()
                .map(|(p, (from, to))| format!("{p}:{from}-{to}"))
                .collect();
            (
                "OK".to_string(),
                String::new(),
                prost::Message::encoded_len(response) as u64,
                positions.join(","),
                None,
            )
        }
        Err(error) => {
            let status = to_status(error);
            (
                kpr_net::code_name(code(error)).to_string(),
                rule_of(error),
                status.message().len() as u64 + status.details().len() as u64,
                String::new(),
                Some(status),
            )
        }
    };
    count(events, &outcome, &rule);
    let record = Record {
        time_unix_ms: crate::ingestor::now_unix_ms(),
        client: caller.map_or_else(|| "anonymous".to_string(), |c| c.client_id.clone()),
        org: caller
            .and_then(|c| c.org_number.clone())
            .unwrap_or_default(),
        role: Role::Ingest.name().to_string(),
        channel: "grpc".into(),
        method: method.to_string(),
        // As sent (bounded): the audit trail says what was asked for, also when refused.
        municipality: events
            .first()
            .map(|e| e.municipality.chars().take(8).collect())
            .unwrap_or_default(),
        events: events.len() as u64,
        positions,
        outcome,
        rule,
        bytes_in,
        bytes_out,
    };
    (record, status)
}

/// The ingest metrics of one append: batches and events by municipality and outcome,
/// refusals by municipality and rule. The municipality label is a 2024 code or
/// "other" (a label per arbitrary text sent would let a client grow the metrics).
fn count(events: &[pb::Event], outcome: &str, rule: &str) {
    let sent = events.first().map_or("", |e| e.municipality.as_str());
    let municipality = kpr_domain::municipality::Registry::get()
        .municipality(sent)
        .map_or_else(|| "other".to_string(), |m| m.code.to_string());
    let outcome = outcome.to_string();
    metrics::counter!("kpr_ingest_batches_total", "municipality" => municipality.clone(), "outcome" => outcome.clone())
        .increment(1);
    metrics::counter!("kpr_ingest_events_total", "municipality" => municipality.clone(), "outcome" => outcome)
        .increment(events.len() as u64);
    if !rule.is_empty() {
        metrics::counter!("kpr_ingest_refusals_total", "municipality" => municipality, "rule" => rule.to_string())
            .increment(1);
    }
}

/// Records an entry; a call that cannot be recorded is answered UNAVAILABLE (an
/// acknowledged append it carried is durable, and its retry is a duplicate).
async fn record(audit: Option<&AuditLog>, entry: (Record, Option<Status>)) -> Result<(), Status> {
    let Some(audit) = audit else {
        return Ok(());
    };
    audit.record(entry.0).await.map_err(|e| {
        tracing::error!(error = %e, "cannot write the audit trail");
        Status::unavailable("the audit trail cannot be written; retry later")
    })
}
