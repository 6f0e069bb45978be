//! The ingest core, generic over the event log: decode → validate → pseudonymise →
//! check lifecycle rules → encode → append, idempotent by `event_id`.
//!
//! An append has two phases. [`Ingestor::begin`] runs synchronously under the
//! municipality's lock: it checks the batch against the write-side state, applies it
//! (with undo records, so a refused batch changes nothing) and enqueues it on the log,
//! which fixes its order. [`Completion::wait`] then waits until the log reports the
//! batch durable and resolves the acks. Batches of one municipality are therefore
//! validated and stored in the same order, while many batches share one group commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kpr_domain::date::Date;
use kpr_domain::event::{EventId, StoredEvent};
use kpr_domain::municipality::{MunicipalityCode, Registry};
use kpr_domain::state::{MunicipalityState, NewEvent, ServiceKey, Undo};
use kpr_domain::validate::Rules;
use kpr_eventlog::{AppendTicket, EventLog, LogError, Position, ReadOptions, partition_for};
use kpr_wire::{decode_stored, pb};
use tokio::sync::watch;

use crate::error::{EventFieldViolation, EventPrecondition, IngestError};
use crate::pseudonym::Pseudonymiser;

/// Settings of the ingest service.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Most events in one batch.
    pub batch_events_max: u32,
    /// Accept synthetic test ids (month + 80). Off in production.
    pub allow_synthetic_ids: bool,
    /// The partitions this node writes (`None`: all). Each partition must have exactly
    /// one writing node, so lifecycle rules see every earlier event of a municipality.
    pub owned_partitions: Option<BTreeSet<u32>>,
    /// Where the owners of other partitions are, to name them in a refusal.
    pub owners: BTreeMap<u32, String>,
}

impl IngestConfig {
    /// A node that owns every partition (the embedded default).
    pub fn single_node(batch_events_max: u32, allow_synthetic_ids: bool) -> IngestConfig {
        IngestConfig {
            batch_events_max,
            allow_synthetic_ids,
            owned_partitions: None,
            owners: BTreeMap::new(),
        }
    }

    fn owns(&self, partition: u32) -> bool {
        self.owned_partitions
            .as_ref()
            .is_none_or(|owned| owned.contains(&partition))
    }
}

/// The acknowledgement of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The event id as sent.
    pub event_id: String,
    /// Where it is stored.
    pub position: Position,
    /// It had been stored before (same id, same content).
    pub duplicate: bool,
}

/// Outcome of a batch as duplicates arriving while it is in flight see it.
type BatchOutcome = Option<Result<Arc<Vec<Position>>, LogError>>;

/// Where an accepted event is.
#[derive(Clone, Debug)]
enum Location {
    Durable(Position),
    /// In a batch that is enqueued but not yet durable: the batch's outcome and the
    /// event's index among the batch's new events.
    Pending(watch::Receiver<BatchOutcome>, u32),
}

/// What the write-side state keeps per event besides the domain record.
#[derive(Clone, Debug)]
struct Meta {
    digest: [u8; 32],
    location: Location,
}

/// How an ack of the current batch is found.
enum Source {
    /// The i-th new event of this batch.
    New(u32),
    /// Stored before (or in flight in an earlier batch).
    Existing(Location),
    /// A repeat, within this batch, of the i-th new event.
    Repeat(u32),
}

/// Statistics of a start-up rebuild.
#[derive(Clone, Copy, Debug, Default)]
pub struct RebuildStats {
    /// Records read.
    pub records: u64,
    /// Seconds taken.
    pub seconds: f64,
}

/// The write side of the register over one log.
pub struct Ingestor<L> {
    log: Arc<L>,
    states: BTreeMap<MunicipalityCode, Mutex<MunicipalityState<Meta>>>,
    pseudonymiser: Pseudonymiser,
    config: IngestConfig,
    accepting: AtomicBool,
    failure: Mutex<Option<String>>,
}

/// The second phase of an append: waits for durability.
#[must_use = "an append is acknowledged only after `wait`"]
pub struct Completion {
    /// Outcome of the batch's own append, when it appended anything. A task spawned
    /// by `begin` resolves it, so a caller that goes away (a cancelled request) never
    /// leaves the batch's events pending in the state.
    outcome: Option<watch::Receiver<BatchOutcome>>,
    acks: Vec<(String, Source)>,
}

pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// "Today" for date rules: the calendar day in Norway, taken generously (UTC+2) so
/// that an event dated today in Norway is never refused as being in the future.
fn today() -> Date {
    Date::from_unix_ms(now_unix_ms() + 2 * 3_600_000)
}

impl<L: EventLog> Ingestor<L> {
    /// An ingestor over `log`, with its write-side state rebuilt from the log.
    pub async fn open(
        log: Arc<L>,
        pseudonymiser: Pseudonymiser,
        config: IngestConfig,
    ) -> Result<(Arc<Self>, RebuildStats), IngestError> {
        let states = Registry::get()
            .municipalities()
            .map(|m| (m.code, Mutex::new(MunicipalityState::default())))
            .collect();
        let ingestor = Ingestor {
            log,
            states,
            pseudonymiser,
            config,
            accepting: AtomicBool::new(true),
            failure: Mutex::new(None),
        };
        let stats = ingestor.rebuild().await?;
        Ok((Arc::new(ingestor), stats))
    }

    /// The log this ingestor appends to.
    pub fn log(&self) -> &Arc<L> {
        &self.log
    }

    async fn rebuild(&self) -> Result<RebuildStats, IngestError> {
        let started = Instant::now();
        let mut records = 0u64;
        for partition in (0..self.log.partition_count()).filter(|p| self.config.owns(*p)) {
            let mut from = 0u64;
            loop {
                let batch = self
                    .log
                    .read(
                        partition,
                        from,
                        ReadOptions {
                            records_max: 8192,
                            wait_ms_max: 0,
                        },
                    )
                    .await
                    .map_err(|e| IngestError::Unavailable(e.to_string()))?;
                let Some(last) = batch.last() else { break };
                from = last.position.offset + 1;
                for record in batch {
                    let (event, meta) = decode_stored(&record.payload).map_err(|e| {
                        IngestError::Internal(format!(
                            "record {}/{} does not decode: {e}",
                            record.position.partition, record.position.offset
                        ))
                    })?;
                    let mut state = self.lock(&event.envelope.municipality)?;
                    apply(
                        &mut state,
                        &event,
                        Meta {
                            digest: meta.content_digest,
                            location: Location::Durable(record.position),
                        },
                    );
                    records += 1;
                }
            }
        }
        Ok(RebuildStats {
            records,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn lock(
        &self,
        municipality: &MunicipalityCode,
    ) -> Result<MutexGuard<'_, MunicipalityState<Meta>>, IngestError> {
        self.states
            .get(municipality)
            .ok_or_else(|| {
                IngestError::Internal(format!("no state for municipality {municipality}"))
            })?
            .lock()
            .map_err(|_| IngestError::Internal("municipality state lock poisoned".into()))
    }

    /// Why the ingestor stopped taking writes after a failed append (the log cannot
    /// take writes: disk full, an I/O error), if it has.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Stops taking appends (graceful shutdown); appends in flight finish.
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }

    fn fail(&self, reason: &str) {
        self.accepting.store(false, Ordering::SeqCst);
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert_with(|| reason.to_string());
        }
    }

    /// Validates, applies and enqueues a batch (phase one of an append).
    ///
    /// `bound` is the municipality the caller may write (from its token); `None` only
    /// when authentication is off. It is checked before anything else is looked at, so a
    /// caller learns nothing about another municipality's events.
    pub fn begin(
        self: &Arc<Self>,
        bound: Option<MunicipalityCode>,
        events: &[pb::Event],
    ) -> Result<Completion, IngestError> {
        if let Some(bound) = bound {
            crate::binding::check(bound, events)?;
        }
        if !self.accepting.load(Ordering::SeqCst) {
            let reason = self.failure.lock().ok().and_then(|f| f.clone());
            return Err(IngestError::Unavailable(
                reason.unwrap_or_else(|| "the register is shutting down".into()),
            ));
        }
        if events.is_empty() {
            return Err(IngestError::invalid(vec![EventFieldViolation::batch(
                "events",
                "a batch needs at least one event",
            )]));
        }
        if events.len() > self.config.batch_events_max as usize {
            return Err(IngestError::invalid(vec![EventFieldViolation::batch(
                "events",
                format!(
                    "the batch has {} events; the limit is {} events per batch (batch_events_max)",
                    events.len(),
                    self.config.batch_events_max
                ),
            )]));
        }
        let received_at = now_unix_ms();
        let rules = Rules {
            today: today(),
            allow_synthetic_ids: self.config.allow_synthetic_ids,
        };
        let prepared = crate::prepare::prepare(&self.pseudonymiser, events, &rules, received_at)?;
        // Every event was prepared (or the batch was refused above): acks and
        // violations below index the request by position.
        let (Some(first), true) = (prepared.first(), prepared.len() == events.len()) else {
            return Err(IngestError::Internal(
                "a batch was only partly prepared".into(),
            ));
        };
        let municipality = first.0.envelope.municipality;
        let partition = partition_for(municipality.as_str().as_bytes(), self.log.partition_count());
        if !self.config.owns(partition) {
            return Err(IngestError::NotOwner {
                municipality: municipality.to_string(),
                partition,
                owner: self.config.owners.get(&partition).cloned(),
            });
        }
        let mut state = self.lock(&municipality)?;
        let (outcome_tx, outcome_rx) = watch::channel(None);
        let mut undo: Vec<Undo> = Vec::new();
        let mut field = Vec::new();
        let mut preconditions = Vec::new();
        let mut acks = Vec::with_capacity(events.len());
        let mut new_ids: Vec<EventId> = Vec::new();
        let mut payloads = Vec::new();
        let mut seen: HashMap<EventId, (u32, [u8; 32])> = HashMap::new();
        for (index, (event, digest, bytes)) in prepared.iter().enumerate() {
            let id = event.envelope.event_id;
            let sent_id = events[index].event_id.clone();
            if let Some((new_index, first_digest)) = seen.get(&id) {
                if first_digest == digest {
                    acks.push((sent_id, Source::Repeat(*new_index)));
                } else {
                    field.push(EventFieldViolation::at(
                        index,
                        "event_id",
                        "event_id appears twice in this batch with different content",
                    ));
                }
                continue;
            }
            if let Some(existing) = state.event(&id) {
                if existing.meta.digest == *digest {
                    acks.push((sent_id, Source::Existing(existing.meta.location.clone())));
                } else {
                    field.push(EventFieldViolation::at(
                        index,
                        "event_id",
                        "event_id was used before for an event with different content",
                    ));
                }
                continue;
            }
            let service = service_key(event);
            let check = state.check(NewEvent {
                event_id: id,
                person: &event.envelope.person,
                service: service.as_ref(),
                payload: &event.payload,
            });
            match check {
                Err(violation) => preconditions.push(EventPrecondition {
                    event_index: index as u32,
                    violation,
                }),
                Ok(()) => {
                    let new_index = new_ids.len() as u32;
                    let meta = Meta {
                        digest: *digest,
                        location: Location::Pending(outcome_rx.clone(), new_index),
                    };
                    undo.push(apply(&mut state, event, meta));
                    seen.insert(id, (new_index, *digest));
                    new_ids.push(id);
                    payloads.push(bytes.clone());
                    acks.push((sent_id, Source::New(new_index)));
                }
            }
        }
        let refusal = if !field.is_empty() {
            Some(IngestError::invalid(field))
        } else if !preconditions.is_empty() {
            Some(IngestError::FailedPrecondition {
                violations: preconditions,
            })
        } else {
            None
        };
        let ticket = match refusal {
            Some(error) => Err(error),
            None if payloads.is_empty() => Ok(None),
            None => {
                let partition =
                    partition_for(municipality.as_str().as_bytes(), self.log.partition_count());
                self.log
                    .append(partition, payloads)
                    .map(Some)
                    .map_err(IngestError::from)
            }
        };
        match ticket {
            Err(error) => {
                for u in undo.into_iter().rev() {
                    state.undo(u);
                }
                Err(error)
            }
            Ok(None) => Ok(Completion {
                outcome: None,
                acks,
            }),
            Ok(Some(ticket)) => {
                drop(state);
                let outcome = outcome_tx.subscribe();
                let ingestor = Arc::clone(self);
                tokio::spawn(async move {
                    ingestor
                        .settle(municipality, new_ids, ticket, outcome_tx)
                        .await
                });
                Ok(Completion {
                    outcome: Some(outcome),
                    acks,
                })
            }
        }
    }

    fn mark_durable(
        &self,
        municipality: &MunicipalityCode,
        ids: &[EventId],
        positions: &[Position],
    ) {
        if let Ok(mut state) = self.lock(municipality) {
            for (id, position) in ids.iter().zip(positions) {
                if let Some(meta) = state.meta_mut(id) {
                    meta.location = Location::Durable(*position);
                }
            }
        }
    }

    /// Phase one and two together.
    pub async fn append(
        self: &Arc<Self>,
        bound: Option<MunicipalityCode>,
        events: &[pb::Event],
    ) -> Result<Vec<Ack>, IngestError> {
        self.begin(bound, events)?.wait().await
    }

    /// Waits for a batch's durability, records its positions in the state (or stops
    /// the ingestor when the write failed) and publishes the outcome.
    async fn settle(
        self: Arc<Self>,
        municipality: MunicipalityCode,
        new_ids: Vec<EventId>,
        ticket: AppendTicket,
        outcome: watch::Sender<BatchOutcome>,
    ) {
        match ticket.await {
            Ok(positions) => {
                let positions = Arc::new(positions);
                self.mark_durable(&municipality, &new_ids, &positions);
                let _ = outcome.send(Some(Ok(positions)));
            }
            Err(error) => {
                // The state already holds this batch; only a restart, which rebuilds
                // the state from the log, makes it trustworthy again.
                tracing::error!(error = %error, "append failed; ingest stops accepting writes");
                self.fail(&format!(
                    "an append failed; restart the register to recover: {error}"
                ));
                let _ = outcome.send(Some(Err(error)));
            }
        }
    }
}

/// Waits for a batch outcome; `None` when the batch's writer went away.
async fn outcome_of(mut receiver: watch::Receiver<BatchOutcome>) -> BatchOutcome {
    receiver
        .wait_for(Option::is_some)
        .await
        .map(|o| o.clone())
        .ok()
        .flatten()
}

impl Completion {
    /// Waits until the batch is durable and returns one ack per event in request order.
    pub async fn wait(self) -> Result<Vec<Ack>, IngestError> {
        let positions = match self.outcome {
            None => Arc::new(Vec::new()),
            Some(receiver) => match outcome_of(receiver).await {
                Some(Ok(positions)) => positions,
                Some(Err(error)) => {
                    return Err(IngestError::Unavailable(format!(
                        "an append failed; restart the register to recover: {error}"
                    )));
                }
                None => return Err(IngestError::Unavailable("the log writer went away".into())),
            },
        };
        let mut acks = Vec::with_capacity(self.acks.len());
        for (event_id, source) in self.acks {
            let (position, duplicate) = match source {
                Source::New(i) => (positions.get(i as usize).copied(), false),
                Source::Repeat(i) => (positions.get(i as usize).copied(), true),
                Source::Existing(Location::Durable(p)) => (Some(p), true),
                Source::Existing(Location::Pending(receiver, i)) => {
                    match outcome_of(receiver).await {
                        Some(Ok(positions)) => (positions.get(i as usize).copied(), true),
                        _ => {
                            return Err(IngestError::Unavailable(
                                "the earlier append of this event failed; retry".into(),
                            ));
                        }
                    }
                }
            };
            let position = position.ok_or_else(|| {
                IngestError::Internal("the log returned fewer positions than records".into())
            })?;
            acks.push(Ack {
                event_id,
                position,
                duplicate,
            });
        }
        Ok(acks)
    }
}

fn service_key(event: &StoredEvent) -> Option<ServiceKey> {
    (!event.envelope.service_id.is_empty()).then(|| ServiceKey {
        source_system: event.envelope.source_system.clone(),
        service_id: event.envelope.service_id.clone(),
    })
}

fn apply(state: &mut MunicipalityState<Meta>, event: &StoredEvent, meta: Meta) -> Undo {
    state.apply(
        event.envelope.event_id,
        event.envelope.person,
        service_key(event),
        event.payload.clone(),
        meta,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kpr_eventlog::memory::MemoryLog;

    /// A log that refuses appends as if its queue were full (unit-test double).
    struct FullLog(MemoryLog);

    impl EventLog for FullLog {
        fn partition_count(&self) -> u32 {
            self.0.partition_count()
        }
        fn append(&self, _: u32, _: Vec<Bytes>) -> Result<AppendTicket, LogError> {
            Err(LogError::QueueFull {
                capacity_batches: 1,
            })
        }
        async fn read(
            &self,
            p: u32,
            from: u64,
            o: ReadOptions,
        ) -> Result<Vec<kpr_eventlog::Record>, LogError> {
            self.0.read(p, from, o).await
        }
        async fn end_offset(&self, p: u32) -> Result<u64, LogError> {
            self.0.end_offset(p).await
        }
        async fn close(&self) -> Result<(), LogError> {
            self.0.close().await
        }
    }

    fn config() -> IngestConfig {
        IngestConfig::single_node(10, true)
    }

    fn id(n: u8) -> String {
        // 15 May 1942, synthetic month, individual numbers tried until control digits exist.
        (0..500u32)
            .find_map(|i| {
                let nine: Vec<u8> = format!("1585{:02}{i:03}", 40 + n % 50)
                    .bytes()
                    .map(|b| b - b'0')
                    .collect();
                kpr_domain::national_id::with_control_digits(nine.try_into().ok()?)
            })
            .map(|d| d.iter().map(|x| char::from(b'0' + x)).collect())
            .unwrap()
    }

    fn check(event_id: &str, person: u8) -> pb::Event {
        pb::Event {
            event_id: event_id.into(),
            municipality: "0301".into(),
            source_system: "Gerica".into(),
            recorded_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            person: Some(pb::Person {
                national_id: id(person),
                birth_year: None,
                sex: 0,
            }),
            payload: Some(pb::Payload {
                kind: Some(pb::payload::Kind::HealthCheck(pb::HealthCheck {
                    kind: pb::HealthCheckKind::Dental as i32,
                    date: "2024-03-01".into(),
                    at_risk: None,
                    plan_made: None,
                })),
            }),
            ..Default::default()
        }
    }

    const E1: &str = "11111111-1111-4111-8111-111111111111";
    const E2: &str = "22222222-2222-4222-8222-222222222222";

    #[tokio::test]
    async fn duplicates_in_and_across_batches_are_stored_once() {
        let log = Arc::new(MemoryLog::new(4));
        let (ingestor, _) = Ingestor::open(Arc::clone(&log), Pseudonymiser::new([7; 32]), config())
            .await
            .unwrap();
        let acks = ingestor
            .append(None, &[check(E1, 1), check(E1, 1), check(E2, 2)])
            .await
            .unwrap();
        assert_eq!(
            acks.iter().map(|a| a.duplicate).collect::<Vec<_>>(),
            vec![false, true, false]
        );
        assert_eq!(acks[0].position, acks[1].position);
        let again = ingestor.append(None, &[check(E2, 2)]).await.unwrap();
        assert_eq!(
            (again[0].position, again[0].duplicate),
            (acks[2].position, true)
        );
        let partition = acks[0].position.partition;
        assert_eq!(log.end_offset(partition).await.unwrap(), 2);

        // A restart rebuilds the idempotency index from the log.
        let (reopened, stats) = Ingestor::open(
            Arc::new(log.reopen()),
            Pseudonymiser::new([7; 32]),
            config(),
        )
        .await
        .unwrap();
        assert_eq!(stats.records, 2);
        assert!(reopened.append(None, &[check(E1, 1)]).await.unwrap()[0].duplicate);
        let other = reopened.append(None, &[check(E1, 3)]).await.unwrap_err();
        assert!(
            matches!(other, IngestError::InvalidArgument { ref violations } if violations[0].field == "events[0].event_id")
        );
    }

    #[tokio::test]
    async fn a_cancelled_request_still_settles_its_batch() {
        let log = Arc::new(MemoryLog::new(2));
        let (ingestor, _) = Ingestor::open(Arc::clone(&log), Pseudonymiser::new([7; 32]), config())
            .await
            .unwrap();
        // The caller goes away after phase one (a cancelled gRPC request).
        drop(ingestor.begin(None, &[check(E1, 1)]).unwrap());
        let acks = ingestor
            .append(None, &[check(E1, 1)])
            .await
            .expect("a resend after a cancelled request is acknowledged");
        assert!(acks[0].duplicate);
        assert_eq!(log.end_offset(acks[0].position.partition).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_full_queue_is_resource_exhausted_and_changes_nothing() {
        let memory = MemoryLog::new(2);
        let full = Arc::new(FullLog(memory.reopen()));
        let (ingestor, _) = Ingestor::open(full, Pseudonymiser::new([7; 32]), config())
            .await
            .unwrap();
        let error = ingestor.append(None, &[check(E1, 1)]).await.unwrap_err();
        assert!(matches!(
            error,
            IngestError::QueueFull {
                capacity_batches: 1
            }
        ));
        assert_eq!(
            crate::error::to_status(&error).code(),
            tonic::Code::ResourceExhausted
        );
        // The refused event was undone: the same id with other content is not a conflict.
        let error = ingestor.append(None, &[check(E1, 2)]).await.unwrap_err();
        assert!(matches!(error, IngestError::QueueFull { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn a_closed_log_is_unavailable() {
        let log = Arc::new(MemoryLog::new(2));
        let (ingestor, _) = Ingestor::open(Arc::clone(&log), Pseudonymiser::new([7; 32]), config())
            .await
            .unwrap();
        log.close().await.unwrap();
        let error = ingestor.append(None, &[check(E1, 1)]).await.unwrap_err();
        assert_eq!(
            crate::error::to_status(&error).code(),
            tonic::Code::Unavailable
        );
        ingestor.stop_accepting();
        assert!(matches!(
            ingestor.append(None, &[check(E2, 1)]).await.unwrap_err(),
            IngestError::Unavailable(_)
        ));
    }

    #[tokio::test]
    async fn batch_bounds_are_named() {
        let (ingestor, _) = Ingestor::open(
            Arc::new(MemoryLog::new(1)),
            Pseudonymiser::new([7; 32]),
            config(),
        )
        .await
        .unwrap();
        let long: Vec<pb::Event> = (0..11)
            .map(|i| check(&format!("00000000-0000-4000-8000-{i:012}"), 1))
            .collect();
        let error = ingestor.append(None, &long).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the limit is 10 events per batch"),
            "{error}"
        );
        assert!(ingestor.append(None, &[]).await.is_err());
    }
}
