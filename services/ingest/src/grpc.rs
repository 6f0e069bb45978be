//! `kpr.v1.IngestService` over tonic: thin handlers that hand the request to the
//! [`Ingestor`] and map its answer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kpr_eventlog::EventLog;
use kpr_wire::pb;
use kpr_wire::pb::ingest_service_server::{IngestService, IngestServiceServer};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{IngestError, to_rejection, to_status};
use crate::ingestor::{Ack, Ingestor};

/// Batches of one stream that may be waiting for durability at once.
pub const STREAM_BATCHES_IN_FLIGHT_MAX: usize = 64;

/// The gRPC face of an [`Ingestor`].
pub struct IngestGrpc<L> {
    ingestor: Arc<Ingestor<L>>,
}

impl<L: EventLog> IngestGrpc<L> {
    /// A service over `ingestor`.
    pub fn new(ingestor: Arc<Ingestor<L>>) -> IngestGrpc<L> {
        IngestGrpc { ingestor }
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
    /// A begun batch and its completion task.
    Batch(u64, tokio::task::JoinHandle<Result<Vec<Ack>, IngestError>>),
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
        let events = request.into_inner().events;
        match self.ingestor.append(&events).await {
            Ok(acks) => Ok(Response::new(response(acks))),
            Err(error) => Err(to_status(&error)),
        }
    }

    type AppendStreamStream = AnswerStream;

    async fn append_stream(
        &self,
        request: Request<Streaming<pb::AppendRequest>>,
    ) -> Result<Response<AnswerStream>, Status> {
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
                        let pending = match ingestor.begin(&request.events) {
                            Ok(completion) => tokio::spawn(completion.wait()),
                            Err(error) => {
                                tokio::spawn(async move { Err::<Vec<Ack>, IngestError>(error) })
                            }
                        };
                        Pending::Batch(index, pending)
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
                let (batch_index, pending) = match item {
                    Pending::Batch(index, pending) => (index, pending),
                    Pending::Failed(status) => {
                        let _ = answer_tx.send(Err(status)).await;
                        break;
                    }
                };
                let outcome = pending.await.unwrap_or_else(|e| {
                    Err(IngestError::Internal(format!("append task failed: {e}")))
                });
                let answer = match outcome {
                    Ok(acks) => Ok(pb::AppendStreamResponse {
                        batch_index,
                        result: Some(pb::append_stream_response::Result::Appended(response(acks))),
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
