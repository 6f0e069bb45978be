//! API event (`kpr.v1.Event`) → domain submission. This is the syntactic half of
//! validation: required fields present, dates and UUIDs well formed, enum values known,
//! hours in range. The semantic half is `kpr_domain::validate`.

use kpr_domain::date::Date;
use kpr_domain::event::{
    CentiHours, CheckKind, Correction, CorrectionAction, Decision, EndReason, EventId, Outcome,
    PauseReason, Payload, RespiteKind, Submitted, Variable,
};
use kpr_domain::person::{RawPerson, Sex};
use kpr_domain::service::ServiceCode;
use kpr_domain::validate::{FieldViolation, centihours_from_weekly};

use crate::pb;

/// Collects violations while decoding one event.
struct Decoder {
    out: Vec<FieldViolation>,
}

impl Decoder {
    fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.out.push(FieldViolation::new(field, description));
    }

    fn date(&mut self, field: &str, text: &str) -> Option<Date> {
        if text.is_empty() {
            self.push(field, format!("{} is required (YYYY-MM-DD)", leaf(field)));
            return None;
        }
        self.optional_date(field, text)
    }

    fn optional_date(&mut self, field: &str, text: &str) -> Option<Date> {
        if text.is_empty() {
            return None;
        }
        match Date::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.push(field, format!("{}: {e}", leaf(field)));
                None
            }
        }
    }

    fn code(&mut self, field: &str, text: &str) -> Option<ServiceCode> {
        if text.is_empty() {
            self.push(field, "service code is required");
            return None;
        }
        match ServiceCode::parse(text) {
            Ok(c) => Some(c),
            Err(e) => {
                self.push(field, e.to_string());
                None
            }
        }
    }

    fn uuid(&mut self, field: &str, text: &str) -> Option<EventId> {
        if text.is_empty() {
            self.push(field, format!("{} is required (a UUID)", leaf(field)));
            return None;
        }
        match uuid::Uuid::try_parse(text) {
            Ok(u) if u.is_nil() => {
                self.push(field, "the nil UUID is not an event id");
                None
            }
            Ok(u) => Some(EventId(*u.as_bytes())),
            Err(_) => {
                self.push(
                    field,
                    format!(
                        "{} must be a UUID such as 0f8fad5b-d9cb-469f-a165-70867728950e",
                        leaf(field)
                    ),
                );
                None
            }
        }
    }

    fn required_enum<E>(
        &mut self,
        field: &str,
        raw: i32,
        convert: impl Fn(E) -> Option<E>,
    ) -> Option<E>
    where
        E: TryFrom<i32>,
    {
        match E::try_from(raw).ok().and_then(convert) {
            Some(v) => Some(v),
            None if raw == 0 => {
                self.push(field, format!("{} is required", leaf(field)));
                None
            }
            None => {
                self.push(field, format!("unknown value {raw} for {}", leaf(field)));
                None
            }
        }
    }

    fn hours(
        &mut self,
        field_base: &str,
        weekly: Option<f64>,
        monthly: Option<f64>,
    ) -> Option<CentiHours> {
        let (field, value) = match (weekly, monthly) {
            (Some(w), _) => (format!("{field_base}.hours_per_week"), w),
            (None, Some(m)) => (format!("{field_base}.hours_per_month"), m / 4.0),
            (None, None) => return None,
        };
        match centihours_from_weekly(value) {
            Ok(h) => Some(h),
            Err(e) => {
                self.push(field, e);
                None
            }
        }
    }
}

fn leaf(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

fn sex_from_pb(value: pb::Sex) -> Option<Sex> {
    match value {
        pb::Sex::Unspecified => None,
        pb::Sex::Male => Some(Sex::Male),
        pb::Sex::Female => Some(Sex::Female),
        pb::Sex::Unknown => Some(Sex::Unknown),
    }
}

/// Decodes an API event into a submission, or lists every malformed field (paths
/// relative to the event).
pub fn decode_submitted(event: &pb::Event) -> Result<Submitted, Vec<FieldViolation>> {
    let mut d = Decoder { out: Vec::new() };
    let event_id = d.uuid("event_id", &event.event_id);
    let recorded_at_unix_ms = match &event.recorded_at {
        None => {
            d.push("recorded_at", "recorded_at is required");
            None
        }
        Some(ts) if !(0..1_000_000_000).contains(&ts.nanos) => {
            d.push("recorded_at", "recorded_at.nanos must be in [0, 1e9)");
            None
        }
        Some(ts) => {
            // Years 1 to 9999 are the only representable ones; anything else is refused
            // here rather than wrapped into range later.
            let ms = ts
                .seconds
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(i64::from(ts.nanos / 1_000_000)));
            match ms {
                Some(ms) if (-62_135_596_800_000..=253_402_300_799_999).contains(&ms) => Some(ms),
                _ => {
                    d.push(
                        "recorded_at",
                        "recorded_at is out of range (years 1 to 9999)",
                    );
                    None
                }
            }
        }
    };
    let person = match &event.person {
        None => {
            d.push("person", "person is required");
            None
        }
        Some(p) => {
            let sex = match pb::Sex::try_from(p.sex) {
                Ok(s) => sex_from_pb(s),
                Err(_) => {
                    d.push("person.sex", format!("unknown value {} for sex", p.sex));
                    None
                }
            };
            Some(RawPerson {
                national_id: p.national_id.trim().to_string(),
                birth_year: p.birth_year,
                sex,
            })
        }
    };
    let payload = match &event.payload {
        Some(p) => decode_payload(&mut d, "payload", p),
        None => {
            d.push("payload", "payload is required: set exactly one event kind");
            None
        }
    };
    match (event_id, recorded_at_unix_ms, person, payload) {
        (Some(event_id), Some(recorded_at_unix_ms), Some(person), Some(payload))
            if d.out.is_empty() =>
        {
            Ok(Submitted {
                event_id,
                municipality: event.municipality.clone(),
                successor_municipality: event.successor_municipality.clone(),
                source_system: event.source_system.clone(),
                source_version: event.source_version.clone(),
                recorded_at_unix_ms,
                person,
                service_id: event.service_id.clone(),
                payload,
            })
        }
        _ => Err(d.out),
    }
}

fn decode_payload(d: &mut Decoder, prefix: &str, payload: &pb::Payload) -> Option<Payload> {
    use pb::payload::Kind;
    let Some(kind) = &payload.kind else {
        d.push(prefix, "payload is empty: set exactly one event kind");
        return None;
    };
    let f = |name: &str, field: &str| format!("{prefix}.{name}.{field}");
    let before = d.out.len();
    let decoded = match kind {
        Kind::ServiceApplied(m) => {
            let code = d.code(&f("service_applied", "code"), &m.code);
            let date = d.date(
                &f("service_applied", "application_date"),
                &m.application_date,
            );
            Payload::ServiceApplied {
                code: code?,
                application_date: date?,
            }
        }
        Kind::ServiceDecided(m) => decode_decision(d, &format!("{prefix}.service_decided"), m)?,
        Kind::ServiceStarted(m) => Payload::ServiceStarted {
            start_date: d.date(&f("service_started", "start_date"), &m.start_date)?,
        },
        Kind::ServiceHoursChanged(m) => {
            let base = format!("{prefix}.service_hours_changed");
            let date = d.date(&format!("{base}.effective_date"), &m.effective_date);
            let (weekly, monthly) = match m.hours {
                Some(pb::service_hours_changed::Hours::HoursPerWeek(h)) => (Some(h), None),
                Some(pb::service_hours_changed::Hours::HoursPerMonth(h)) => (None, Some(h)),
                None => {
                    d.push(format!("{base}.hours_per_week"), "hours are required");
                    (None, None)
                }
            };
            let hours = d.hours(&base, weekly, monthly);
            Payload::ServiceHoursChanged {
                effective_date: date?,
                hours: hours?,
            }
        }
        Kind::ServicePaused(m) => {
            let date = d.date(&f("service_paused", "date"), &m.date);
            let reason = d.required_enum(
                &f("service_paused", "reason"),
                m.reason,
                |r: pb::PauseReason| match r {
                    pb::PauseReason::Unspecified => None,
                    pb::PauseReason::SpecialistCareStay => {
                        Some(pb::PauseReason::SpecialistCareStay)
                    }
                    other => Some(other),
                },
            );
            let reason = match reason? {
                pb::PauseReason::SpecialistCareStay => PauseReason::SpecialistCareStay,
                pb::PauseReason::Travel => PauseReason::Travel,
                _ => PauseReason::Other,
            };
            Payload::ServicePaused {
                date: date?,
                reason,
            }
        }
        Kind::ServiceResumed(m) => Payload::ServiceResumed {
            date: d.date(&f("service_resumed", "date"), &m.date)?,
        },
        Kind::ServiceEnded(m) => {
            let date = d.date(&f("service_ended", "end_date"), &m.end_date);
            let reason = d.required_enum(
                &f("service_ended", "reason"),
                m.reason,
                |r: pb::EndReason| match r {
                    pb::EndReason::Unspecified => None,
                    pb::EndReason::Died => Some(pb::EndReason::Died),
                    other => Some(other),
                },
            );
            let reason = match reason? {
                pb::EndReason::Died => EndReason::Died,
                pb::EndReason::ToInstitution => EndReason::ToInstitution,
                pb::EndReason::NoLongerNeeded => EndReason::NoLongerNeeded,
                pb::EndReason::MovedOut => EndReason::MovedOut,
                _ => EndReason::Other,
            };
            Payload::ServiceEnded {
                end_date: date?,
                reason,
            }
        }
        Kind::WaitingListEntered(m) => {
            let code = d.code(&f("waiting_list_entered", "code"), &m.code);
            let date = d.date(&f("waiting_list_entered", "date"), &m.date);
            Payload::WaitingListEntered {
                code: code?,
                date: date?,
            }
        }
        Kind::FunctionalAssessment(m) => {
            let base = format!("{prefix}.functional_assessment");
            let date = d.date(&format!("{base}.date"), &m.date);
            let mut scores = Vec::with_capacity(m.scores.len());
            for (i, s) in m.scores.iter().enumerate() {
                match Variable::from_number(s.variable as u32) {
                    Some(v) if s.variable > 0 => match u8::try_from(s.score) {
                        Ok(score) => scores.push((v, score)),
                        // Reported as sent: a clamped value would name a number the
                        // caller never wrote.
                        Err(_) => d.push(
                            format!("{base}.scores[{i}].score"),
                            format!(
                                "score must be 1 to 5, or 9 for not relevant; got {}",
                                s.score
                            ),
                        ),
                    },
                    _ => d.push(
                        format!("{base}.scores[{i}].variable"),
                        format!("unknown assessment variable {}", s.variable),
                    ),
                }
            }
            Payload::FunctionalAssessment {
                date: date?,
                scores,
            }
        }
        Kind::HealthCheck(m) => {
            let date = d.date(&f("health_check", "date"), &m.date);
            let kind = d.required_enum(
                &f("health_check", "kind"),
                m.kind,
                |k: pb::HealthCheckKind| {
                    match k {
                        pb::HealthCheckKind::Unspecified => None,
                        pb::HealthCheckKind::Physician => Some(CheckKind::Physician),
                        pb::HealthCheckKind::Dental => Some(CheckKind::Dental),
                        pb::HealthCheckKind::MedicationReview => Some(CheckKind::MedicationReview),
                        pb::HealthCheckKind::NutritionScreening => {
                            Some(CheckKind::NutritionScreening)
                        }
                    }
                    .map(|_| k)
                },
            );
            let kind = match kind? {
                pb::HealthCheckKind::Physician => CheckKind::Physician,
                pb::HealthCheckKind::Dental => CheckKind::Dental,
                pb::HealthCheckKind::MedicationReview => CheckKind::MedicationReview,
                _ => CheckKind::NutritionScreening,
            };
            Payload::HealthCheck {
                kind,
                date: date?,
                at_risk: m.at_risk,
                plan_made: m.plan_made,
            }
        }
        Kind::PersonDied(m) => Payload::PersonDied {
            date_of_death: d.date(&f("person_died", "date_of_death"), &m.date_of_death)?,
        },
        Kind::Correction(m) => {
            let base = format!("{prefix}.correction");
            let corrects = d.uuid(&format!("{base}.corrects_event_id"), &m.corrects_event_id);
            let action = d.required_enum(
                &format!("{base}.action"),
                m.action,
                |a: pb::CorrectionAction| match a {
                    pb::CorrectionAction::Unspecified => None,
                    other => Some(other),
                },
            );
            let action = match (action?, &m.replacement) {
                (pb::CorrectionAction::Void, None) => CorrectionAction::Void,
                (pb::CorrectionAction::Void, Some(_)) => {
                    d.push(format!("{base}.replacement"), "VOID takes no replacement");
                    return None;
                }
                (_, None) => {
                    d.push(
                        format!("{base}.replacement"),
                        "REPLACE needs a replacement payload",
                    );
                    return None;
                }
                (_, Some(r)) => CorrectionAction::Replace(Box::new(decode_payload(
                    d,
                    &format!("{base}.replacement"),
                    r,
                )?)),
            };
            Payload::Correction(Correction {
                corrects: corrects?,
                action,
            })
        }
    };
    (d.out.len() == before).then_some(decoded)
}

fn decode_decision(d: &mut Decoder, base: &str, m: &pb::ServiceDecided) -> Option<Payload> {
    let f = |name: &str| format!("{base}.{name}");
    let code = d.code(&f("code"), &m.code);
    let outcome = d.required_enum(&f("outcome"), m.outcome, |o: pb::DecisionOutcome| match o {
        pb::DecisionOutcome::Unspecified => None,
        other => Some(other),
    });
    let respite_kind = match pb::RespiteKind::try_from(m.respite_kind) {
        Ok(pb::RespiteKind::Unspecified) => None,
        Ok(pb::RespiteKind::Rolling) => Some(RespiteKind::Rolling),
        Ok(pb::RespiteKind::NotRolling) => Some(RespiteKind::NotRolling),
        Err(_) => {
            d.push(
                f("respite_kind"),
                format!("unknown value {} for respite_kind", m.respite_kind),
            );
            None
        }
    };
    let decision_date = d.date(&f("decision_date"), &m.decision_date);
    let valid_from = d.date(&f("valid_from"), &m.valid_from);
    let valid_to = d.optional_date(&f("valid_to"), &m.valid_to);
    let (weekly, monthly) = match m.hours {
        Some(pb::service_decided::Hours::HoursPerWeek(h)) => (Some(h), None),
        Some(pb::service_decided::Hours::HoursPerMonth(h)) => (None, Some(h)),
        None => (None, None),
    };
    let hours = d.hours(base, weekly, monthly);
    let outcome = match outcome? {
        pb::DecisionOutcome::Refused => Outcome::Refused,
        _ => Outcome::Granted,
    };
    let provider_org_number =
        (!m.provider_org_number.is_empty()).then(|| m.provider_org_number.clone());
    Some(Payload::ServiceDecided(Decision {
        code: code?,
        respite_kind,
        outcome,
        decision_date: decision_date?,
        valid_from: valid_from?,
        valid_to,
        hours,
        provider_org_number,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: pb::payload::Kind) -> pb::Event {
        pb::Event {
            event_id: "11111111-1111-4111-8111-111111111111".into(),
            municipality: "0301".into(),
            source_system: "Gerica".into(),
            recorded_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            person: Some(pb::Person {
                national_id: "x".into(),
                birth_year: None,
                sex: 0,
            }),
            service_id: "S".into(),
            payload: Some(pb::Payload { kind: Some(kind) }),
            ..Default::default()
        }
    }

    #[test]
    fn missing_dates_are_named() {
        let e = event(pb::payload::Kind::ServiceApplied(pb::ServiceApplied {
            code: "15".into(),
            application_date: String::new(),
        }));
        let v = decode_submitted(&e).unwrap_err();
        assert_eq!(v[0].field, "payload.service_applied.application_date");
    }

    #[test]
    fn decodes_a_decision() {
        let e = event(pb::payload::Kind::ServiceDecided(pb::ServiceDecided {
            code: "15".into(),
            outcome: pb::DecisionOutcome::Granted as i32,
            decision_date: "2024-01-02".into(),
            valid_from: "2024-01-03".into(),
            hours: Some(pb::service_decided::Hours::HoursPerMonth(30.0)),
            ..Default::default()
        }));
        let s = decode_submitted(&e).unwrap();
        match s.payload {
            Payload::ServiceDecided(d) => assert_eq!(d.hours, Some(CentiHours(750))),
            other => panic!("{other:?}"),
        }
    }
}
