//! The stored-event codec: domain `StoredEvent` plus what the register adds
//! (receive time, content digest) ↔ the bytes of `kpr.v1.StoredEvent`.
//!
//! Decoding is strict: a record that does not decode to a valid event is an error the
//! caller must stop on, never a record to skip silently.

use bytes::Bytes;
use kpr_domain::date::Date;
use kpr_domain::event::{
    CentiHours, CheckKind, Correction, CorrectionAction, Decision, EndReason, Envelope, Event,
    EventId, Outcome, PauseReason, Payload, RespiteKind, StoredEvent, Variable,
};
use kpr_domain::municipality::Registry;
use kpr_domain::person::{PersonRef, Pseudonym, Sex};
use kpr_domain::service::ServiceCode;
use prost::Message;

use crate::pb;

/// The current format version of stored events.
pub const FORMAT_VERSION: u32 = 1;

/// What the register adds to an event when it accepts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredMeta {
    /// SHA-256 over the event as sent (pseudonymised): the idempotency comparison.
    pub content_digest: [u8; 32],
    /// When the batch was accepted (Unix ms).
    pub received_at_unix_ms: i64,
}

/// Why stored bytes are not a valid event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not a protobuf `StoredEvent`.
    #[error("stored event does not decode: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A format version this build does not know.
    #[error("stored event has format version {0}; this build reads up to {FORMAT_VERSION}")]
    UnknownVersion(u32),
    /// A field has a value no valid event has.
    #[error("stored event field {field} is invalid")]
    Invalid {
        /// Which field.
        field: &'static str,
    },
}

fn invalid(field: &'static str) -> DecodeError {
    DecodeError::Invalid { field }
}

/// Encodes a stored event.
pub fn encode_stored(event: &StoredEvent, meta: &StoredMeta) -> Bytes {
    let e = &event.envelope;
    let stored = pb::StoredEvent {
        format_version: FORMAT_VERSION,
        event_id: e.event_id.0.to_vec(),
        municipality: e.municipality.as_str().to_string(),
        municipality_as_sent: e.municipality_as_sent.clone().unwrap_or_default(),
        source_system: e.source_system.clone(),
        source_version: e.source_version.clone(),
        recorded_at_unix_ms: e.recorded_at_unix_ms,
        received_at_unix_ms: meta.received_at_unix_ms,
        person: Some(pb::StoredPerson {
            pseudonym: e.person.pseudonym.0.to_vec(),
            birth_year: u32::from(e.person.birth_year),
            sex: sex_to_pb(e.person.sex) as i32,
        }),
        service_id: e.service_id.clone(),
        content_digest: meta.content_digest.to_vec(),
        payload: Some(payload_to_pb(&event.payload)),
    };
    Bytes::from(stored.encode_to_vec())
}

/// Encodes a payload.
fn payload_to_pb(payload: &Payload) -> pb::StoredPayload {
    use pb::stored_payload::Kind;
    let ymd = |d: Date| d.yyyymmdd();
    let kind = match payload {
        Payload::ServiceApplied {
            code,
            application_date,
        } => Kind::ServiceApplied(pb::StoredServiceApplied {
            code: u32::from(code.number()),
            application_date: ymd(*application_date),
        }),
        Payload::ServiceDecided(d) => Kind::ServiceDecided(pb::StoredServiceDecided {
            code: u32::from(d.code.number()),
            respite_kind: match d.respite_kind {
                None => pb::RespiteKind::Unspecified,
                Some(RespiteKind::Rolling) => pb::RespiteKind::Rolling,
                Some(RespiteKind::NotRolling) => pb::RespiteKind::NotRolling,
            } as i32,
            outcome: match d.outcome {
                Outcome::Granted => pb::DecisionOutcome::Granted,
                Outcome::Refused => pb::DecisionOutcome::Refused,
            } as i32,
            decision_date: ymd(d.decision_date),
            valid_from: ymd(d.valid_from),
            valid_to: d.valid_to.map(ymd).unwrap_or(0),
            centihours_per_week: d.hours.map(|h| h.0).unwrap_or(0),
            provider_org_number: d.provider_org_number.clone().unwrap_or_default(),
        }),
        Payload::ServiceStarted { start_date } => Kind::ServiceStarted(pb::StoredServiceStarted {
            start_date: ymd(*start_date),
        }),
        Payload::ServiceHoursChanged {
            effective_date,
            hours,
        } => Kind::ServiceHoursChanged(pb::StoredServiceHoursChanged {
            effective_date: ymd(*effective_date),
            centihours_per_week: hours.0,
        }),
        Payload::ServicePaused { date, reason } => Kind::ServicePaused(pb::StoredServicePaused {
            date: ymd(*date),
            reason: match reason {
                PauseReason::SpecialistCareStay => pb::PauseReason::SpecialistCareStay,
                PauseReason::Travel => pb::PauseReason::Travel,
                PauseReason::Other => pb::PauseReason::Other,
            } as i32,
        }),
        Payload::ServiceResumed { date } => {
            Kind::ServiceResumed(pb::StoredServiceResumed { date: ymd(*date) })
        }
        Payload::ServiceEnded { end_date, reason } => Kind::ServiceEnded(pb::StoredServiceEnded {
            end_date: ymd(*end_date),
            reason: match reason {
                EndReason::Died => pb::EndReason::Died,
                EndReason::ToInstitution => pb::EndReason::ToInstitution,
                EndReason::NoLongerNeeded => pb::EndReason::NoLongerNeeded,
                EndReason::MovedOut => pb::EndReason::MovedOut,
                EndReason::Other => pb::EndReason::Other,
            } as i32,
        }),
        Payload::WaitingListEntered { code, date } => {
            Kind::WaitingListEntered(pb::StoredWaitingListEntered {
                code: u32::from(code.number()),
                date: ymd(*date),
            })
        }
        Payload::FunctionalAssessment { date, scores } => {
            Kind::FunctionalAssessment(pb::StoredFunctionalAssessment {
                date: ymd(*date),
                scores: scores
                    .iter()
                    .map(|(v, s)| pb::StoredScore {
                        variable: i32::from(v.number()),
                        score: u32::from(*s),
                    })
                    .collect(),
            })
        }
        Payload::HealthCheck {
            kind,
            date,
            at_risk,
            plan_made,
        } => Kind::HealthCheck(pb::StoredHealthCheck {
            kind: match kind {
                CheckKind::Physician => pb::HealthCheckKind::Physician,
                CheckKind::Dental => pb::HealthCheckKind::Dental,
                CheckKind::MedicationReview => pb::HealthCheckKind::MedicationReview,
                CheckKind::NutritionScreening => pb::HealthCheckKind::NutritionScreening,
            } as i32,
            date: ymd(*date),
            at_risk: *at_risk,
            plan_made: *plan_made,
        }),
        Payload::PersonDied { date_of_death } => Kind::PersonDied(pb::StoredPersonDied {
            date_of_death: ymd(*date_of_death),
        }),
        Payload::Correction(c) => Kind::Correction(Box::new(pb::StoredCorrection {
            corrects_event_id: c.corrects.0.to_vec(),
            action: match c.action {
                CorrectionAction::Void => pb::CorrectionAction::Void,
                CorrectionAction::Replace(_) => pb::CorrectionAction::Replace,
            } as i32,
            replacement: match &c.action {
                CorrectionAction::Void => None,
                CorrectionAction::Replace(p) => Some(Box::new(payload_to_pb(p))),
            },
        })),
    };
    pb::StoredPayload { kind: Some(kind) }
}

fn sex_to_pb(sex: Sex) -> pb::Sex {
    match sex {
        Sex::Male => pb::Sex::Male,
        Sex::Female => pb::Sex::Female,
        Sex::Unknown => pb::Sex::Unknown,
    }
}

/// Decodes stored bytes back to the event and what the register added.
pub fn decode_stored(bytes: &[u8]) -> Result<(StoredEvent, StoredMeta), DecodeError> {
    let stored = pb::StoredEvent::decode(bytes)?;
    if stored.format_version != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(stored.format_version));
    }
    let event_id = EventId(
        stored
            .event_id
            .as_slice()
            .try_into()
            .map_err(|_| invalid("event_id"))?,
    );
    let municipality = Registry::get()
        .municipality(&stored.municipality)
        .map(|m| m.code)
        .ok_or_else(|| invalid("municipality"))?;
    let person = stored.person.ok_or_else(|| invalid("person"))?;
    let pseudonym = Pseudonym(
        person
            .pseudonym
            .as_slice()
            .try_into()
            .map_err(|_| invalid("person.pseudonym"))?,
    );
    let sex = match pb::Sex::try_from(person.sex) {
        Ok(pb::Sex::Male) => Sex::Male,
        Ok(pb::Sex::Female) => Sex::Female,
        Ok(pb::Sex::Unknown) => Sex::Unknown,
        _ => return Err(invalid("person.sex")),
    };
    let content_digest: [u8; 32] = stored
        .content_digest
        .as_slice()
        .try_into()
        .map_err(|_| invalid("content_digest"))?;
    let payload = payload_from_pb(stored.payload.as_ref().ok_or_else(|| invalid("payload"))?)?;
    let event = Event {
        envelope: Envelope {
            event_id,
            municipality,
            municipality_as_sent: (!stored.municipality_as_sent.is_empty())
                .then_some(stored.municipality_as_sent),
            source_system: stored.source_system,
            source_version: stored.source_version,
            recorded_at_unix_ms: stored.recorded_at_unix_ms,
            person: PersonRef {
                pseudonym,
                birth_year: u16::try_from(person.birth_year)
                    .map_err(|_| invalid("person.birth_year"))?,
                sex,
            },
            service_id: stored.service_id,
        },
        payload,
    };
    Ok((
        event,
        StoredMeta {
            content_digest,
            received_at_unix_ms: stored.received_at_unix_ms,
        },
    ))
}

fn date(value: u32, field: &'static str) -> Result<Date, DecodeError> {
    Date::from_yyyymmdd(value).ok_or_else(|| invalid(field))
}

fn code(value: u32, field: &'static str) -> Result<ServiceCode, DecodeError> {
    ServiceCode::from_number(value).map_err(|_| invalid(field))
}

fn payload_from_pb(payload: &pb::StoredPayload) -> Result<Payload, DecodeError> {
    use pb::stored_payload::Kind;
    let kind = payload.kind.as_ref().ok_or_else(|| invalid("payload"))?;
    Ok(match kind {
        Kind::ServiceApplied(m) => Payload::ServiceApplied {
            code: code(m.code, "code")?,
            application_date: date(m.application_date, "application_date")?,
        },
        Kind::ServiceDecided(m) => Payload::ServiceDecided(Decision {
            code: code(m.code, "code")?,
            respite_kind: match pb::RespiteKind::try_from(m.respite_kind) {
                Ok(pb::RespiteKind::Unspecified) => None,
                Ok(pb::RespiteKind::Rolling) => Some(RespiteKind::Rolling),
                Ok(pb::RespiteKind::NotRolling) => Some(RespiteKind::NotRolling),
                Err(_) => return Err(invalid("respite_kind")),
            },
            outcome: match pb::DecisionOutcome::try_from(m.outcome) {
                Ok(pb::DecisionOutcome::Granted) => Outcome::Granted,
                Ok(pb::DecisionOutcome::Refused) => Outcome::Refused,
                _ => return Err(invalid("outcome")),
            },
            decision_date: date(m.decision_date, "decision_date")?,
            valid_from: date(m.valid_from, "valid_from")?,
            valid_to: if m.valid_to == 0 {
                None
            } else {
                Some(date(m.valid_to, "valid_to")?)
            },
            hours: (m.centihours_per_week > 0).then_some(CentiHours(m.centihours_per_week)),
            provider_org_number: (!m.provider_org_number.is_empty())
                .then(|| m.provider_org_number.clone()),
        }),
        Kind::ServiceStarted(m) => Payload::ServiceStarted {
            start_date: date(m.start_date, "start_date")?,
        },
        Kind::ServiceHoursChanged(m) => Payload::ServiceHoursChanged {
            effective_date: date(m.effective_date, "effective_date")?,
            hours: CentiHours(m.centihours_per_week),
        },
        Kind::ServicePaused(m) => Payload::ServicePaused {
            date: date(m.date, "date")?,
            reason: match pb::PauseReason::try_from(m.reason) {
                Ok(pb::PauseReason::SpecialistCareStay) => PauseReason::SpecialistCareStay,
                Ok(pb::PauseReason::Travel) => PauseReason::Travel,
                _ => PauseReason::Other,
            },
        },
        Kind::ServiceResumed(m) => Payload::ServiceResumed {
            date: date(m.date, "date")?,
        },
        Kind::ServiceEnded(m) => Payload::ServiceEnded {
            end_date: date(m.end_date, "end_date")?,
            reason: match pb::EndReason::try_from(m.reason) {
                Ok(pb::EndReason::Died) => EndReason::Died,
                Ok(pb::EndReason::ToInstitution) => EndReason::ToInstitution,
                Ok(pb::EndReason::NoLongerNeeded) => EndReason::NoLongerNeeded,
                Ok(pb::EndReason::MovedOut) => EndReason::MovedOut,
                Ok(pb::EndReason::Other) => EndReason::Other,
                _ => return Err(invalid("reason")),
            },
        },
        Kind::WaitingListEntered(m) => Payload::WaitingListEntered {
            code: code(m.code, "code")?,
            date: date(m.date, "date")?,
        },
        Kind::FunctionalAssessment(m) => Payload::FunctionalAssessment {
            date: date(m.date, "date")?,
            scores: m
                .scores
                .iter()
                .map(|s| {
                    let v = Variable::from_number(s.variable as u32)
                        .ok_or_else(|| invalid("scores.variable"))?;
                    Ok((
                        v,
                        u8::try_from(s.score).map_err(|_| invalid("scores.score"))?,
                    ))
                })
                .collect::<Result<_, DecodeError>>()?,
        },
        Kind::HealthCheck(m) => Payload::HealthCheck {
            kind: match pb::HealthCheckKind::try_from(m.kind) {
                Ok(pb::HealthCheckKind::Physician) => CheckKind::Physician,
                Ok(pb::HealthCheckKind::Dental) => CheckKind::Dental,
                Ok(pb::HealthCheckKind::MedicationReview) => CheckKind::MedicationReview,
                Ok(pb::HealthCheckKind::NutritionScreening) => CheckKind::NutritionScreening,
                _ => return Err(invalid("kind")),
            },
            date: date(m.date, "date")?,
            at_risk: m.at_risk,
            plan_made: m.plan_made,
        },
        Kind::PersonDied(m) => Payload::PersonDied {
            date_of_death: date(m.date_of_death, "date_of_death")?,
        },
        Kind::Correction(m) => Payload::Correction(Correction {
            corrects: EventId(
                m.corrects_event_id
                    .as_slice()
                    .try_into()
                    .map_err(|_| invalid("corrects_event_id"))?,
            ),
            action: match pb::CorrectionAction::try_from(m.action) {
                Ok(pb::CorrectionAction::Void) => CorrectionAction::Void,
                Ok(pb::CorrectionAction::Replace) => {
                    CorrectionAction::Replace(Box::new(payload_from_pb(
                        m.replacement
                            .as_deref()
                            .ok_or_else(|| invalid("replacement"))?,
                    )?))
                }
                _ => return Err(invalid("action")),
            },
        }),
    })
}
