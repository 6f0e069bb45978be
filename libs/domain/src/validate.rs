//! Field rules of SPEC 1-4 that need no state: ids, municipalities valid on the
//! event's date, codes, hours, date ranges, organisation numbers, and the rules that
//! tie fields of one event together. Lifecycle rules that need earlier events live
//! in `state`.
//!
//! Every violation names the field by its path in the API message (relative to the
//! event, for example `payload.service_decided.hours_per_week`) and never echoes a
//! national id.

use crate::date::Date;
use crate::event::{CentiHours, CorrectionAction, Payload, PayloadKind, PersonFacts, Submitted};
use crate::municipality::{MunicipalityCode, Registry};
use crate::national_id::check_national_id;
use crate::org::is_valid_org_number;
use crate::service::Measure;

/// A malformed field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path relative to the event, e.g. `person.national_id`.
    pub field: String,
    /// What is wrong, in a sentence without a final period.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> FieldViolation {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// The deployment's settings that field rules depend on.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// The day "today" (the caller reads the clock, not this module).
    pub today: Date,
    /// Accept synthetic test ids (month + 80).
    pub allow_synthetic_ids: bool,
}

/// Longest accepted `source_system`, `source_version` and `service_id`, in bytes.
pub const TEXT_FIELD_BYTES_MAX: usize = 128;
/// Earliest accepted effective date. Dates may lie up to one year ahead (SPEC 4),
/// except health checks and deaths, which cannot be reported before they happen.
pub const DATE_MIN: (i32, u32, u32) = (1900, 1, 1);

/// What a valid submission resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The 2024 municipality the event counts under.
    pub municipality: MunicipalityCode,
    /// Birth year and sex of the person.
    pub person: PersonFacts,
}

/// Hours per week from what the API carries (per week, or per month divided by 4).
pub fn centihours_from_weekly(hours_per_week: f64) -> Result<CentiHours, String> {
    if !hours_per_week.is_finite() || hours_per_week <= 0.0 || hours_per_week > 168.0 {
        return Err(format!(
            "hours per week must be in (0, 168]; got {hours_per_week}"
        ));
    }
    let centi = (hours_per_week * 100.0).round() as u32;
    if centi == 0 {
        return Err("hours per week must be at least 0.01".to_string());
    }
    Ok(CentiHours(centi.min(CentiHours::MAX.0)))
}

/// Checks every stateless rule of a submission and resolves its municipality and
/// person facts. All violations are returned, not only the first.
pub fn validate(event: &Submitted, rules: &Rules) -> Result<Resolved, Vec<FieldViolation>> {
    let mut out = Vec::new();
    check_text(&mut out, "source_system", &event.source_system, true);
    check_text(&mut out, "source_version", &event.source_version, false);
    let recorded = Date::from_unix_ms(event.recorded_at_unix_ms);
    check_date(
        &mut out,
        "recorded_at",
        recorded,
        rules,
        DateBound::YearAhead,
    );

    let kind = event.payload.kind();
    if kind.is_service_event() {
        if event.service_id.is_empty() {
            out.push(FieldViolation::new(
                "service_id",
                format!("service_id is required for {}", kind.field_name()),
            ));
        }
        check_text(&mut out, "service_id", &event.service_id, false);
    } else if kind != PayloadKind::Correction && !event.service_id.is_empty() {
        out.push(FieldViolation::new(
            "service_id",
            format!("service_id must be empty for {}", kind.field_name()),
        ));
    } else {
        check_text(&mut out, "service_id", &event.service_id, false);
    }

    check_payload(&mut out, "payload", &event.payload, rules);

    let date_for_code = payload_date(&event.payload).unwrap_or(recorded);
    let municipality = match Registry::get().resolve(
        &event.municipality,
        &event.successor_municipality,
        date_for_code,
    ) {
        Ok(code) => Some(code),
        Err(e) => {
            let field = match e {
                crate::municipality::MunicipalityError::BadSuccessor => "successor_municipality",
                _ => "municipality",
            };
            out.push(FieldViolation::new(field, e.to_string()));
            None
        }
    };
    let person = check_person(&mut out, event, rules);
    match (municipality, person) {
        (Some(municipality), Some(person)) if out.is_empty() => Ok(Resolved {
            municipality,
            person,
        }),
        _ => Err(out),
    }
}

/// The date a payload is about, looking through a correction to its replacement.
fn payload_date(payload: &Payload) -> Option<Date> {
    match payload {
        Payload::Correction(c) => match &c.action {
            CorrectionAction::Replace(r) => r.effective_date(),
            // A VOID counts on the corrected event's date, which only the state knows;
            // it names the event's municipality by the code valid then, so an old code
            // is accepted here (the corrected event must exist in its 2024 successor).
            CorrectionAction::Void => crate::municipality::reform_2024().add_days(-1).into(),
        },
        p => p.effective_date(),
    }
}

fn check_text(out: &mut Vec<FieldViolation>, field: &str, value: &str, required: bool) {
    if required && value.trim().is_empty() {
        out.push(FieldViolation::new(field, format!("{field} is required")));
    } else if value.len() > TEXT_FIELD_BYTES_MAX {
        out.push(FieldViolation::new(
            field,
            format!(
                "{field} is {} bytes; the limit is {TEXT_FIELD_BYTES_MAX} bytes",
                value.len()
            ),
        ));
    } else if value.chars().any(char::is_control) {
        out.push(FieldViolation::new(
            field,
            format!("{field} must not contain control characters"),
        ));
    } else if crate::national_id::contains_national_id(value) {
        // Free text is stored as sent: a national id here would reach the log raw.
        out.push(FieldViolation::new(
            field,
            format!("{field} contains what passes as a national id; free-text fields must not carry personal ids"),
        ));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DateBound {
    /// Up to one year after today.
    YearAhead,
    /// Not after today.
    NotFuture,
}

fn check_date(
    out: &mut Vec<FieldViolation>,
    field: &str,
    date: Date,
    rules: &Rules,
    bound: DateBound,
) {
    let min = Date::from_ymd(DATE_MIN.0, DATE_MIN.1, DATE_MIN.2).unwrap_or(date);
    if date < min {
        out.push(FieldViolation::new(
            field,
            format!("{date} is before 1900-01-01"),
        ));
        return;
    }
    match bound {
        DateBound::YearAhead if date > rules.today.add_days(365) => {
            out.push(FieldViolation::new(
                field,
                format!("{date} is more than one year ahead"),
            ));
        }
        DateBound::NotFuture if date > rules.today => {
            out.push(FieldViolation::new(
                field,
                format!("{date} is in the future"),
            ));
        }
        _ => {}
    }
}

fn check_payload(out: &mut Vec<FieldViolation>, prefix: &str, payload: &Payload, rules: &Rules) {
    let base = format!("{prefix}.{}", payload.kind().field_name());
    let f = |name: &str| format!("{base}.{name}");
    let year_ahead = DateBound::YearAhead;
    match payload {
        Payload::ServiceApplied {
            application_date, ..
        } => {
            check_date(
                out,
                &f("application_date"),
                *application_date,
                rules,
                DateBound::YearAhead,
            );
        }
        Payload::ServiceDecided(d) => {
            check_date(
                out,
                &f("decision_date"),
                d.decision_date,
                rules,
                DateBound::YearAhead,
            );
            check_date(out, &f("valid_from"), d.valid_from, rules, year_ahead);
            if let Some(valid_to) = d.valid_to {
                check_date(out, &f("valid_to"), valid_to, rules, DateBound::YearAhead);
                if valid_to < d.valid_from {
                    out.push(FieldViolation::new(
                        f("valid_to"),
                        format!("valid_to {valid_to} is before valid_from {}", d.valid_from),
                    ));
                }
            }
            let hourly = d.code.measure() == Measure::Hours;
            match (hourly, d.hours) {
                (true, None) if d.outcome == crate::event::Outcome::Granted => {
                    out.push(FieldViolation::new(
                        f("hours_per_week"),
                        format!(
                            "hours are required: service {} is measured in hours per week",
                            d.code.number()
                        ),
                    ))
                }
                (false, Some(_)) => out.push(FieldViolation::new(
                    f("hours_per_week"),
                    format!(
                        "service {} is not measured in hours; send no hours",
                        d.code.number()
                    ),
                )),
                _ => {}
            }
            match (d.code.number() == 8, d.respite_kind) {
                (true, None) => out.push(FieldViolation::new(f("respite_kind"), "service 8 needs its sub-code: RESPITE_KIND_ROLLING (08.01) or RESPITE_KIND_NOT_ROLLING (08.02)")),
                (false, Some(_)) => out.push(FieldViolation::new(f("respite_kind"), "respite_kind applies only to service 8")),
                _ => {}
            }
            if let Some(org) = &d.provider_org_number
                && !is_valid_org_number(org)
            {
                out.push(FieldViolation::new(
                    f("provider_org_number"),
                    "organisation number must be 9 digits with a valid mod-11 control digit",
                ));
            }
        }
        Payload::ServiceStarted { start_date } => {
            check_date(out, &f("start_date"), *start_date, rules, year_ahead)
        }
        Payload::ServiceHoursChanged { effective_date, .. } => check_date(
            out,
            &f("effective_date"),
            *effective_date,
            rules,
            year_ahead,
        ),
        Payload::ServicePaused { date, .. } | Payload::ServiceResumed { date } => {
            check_date(out, &f("date"), *date, rules, year_ahead)
        }
        Payload::ServiceEnded { end_date, .. } => {
            check_date(out, &f("end_date"), *end_date, rules, year_ahead)
        }
        Payload::WaitingListEntered { code, date } => {
            if code.number() != 21 {
                out.push(FieldViolation::new(
                    f("code"),
                    format!(
                        "the waiting list is for service 21 (long-term stay), not {}",
                        code.number()
                    ),
                ));
            }
            check_date(out, &f("date"), *date, rules, year_ahead);
        }
        Payload::FunctionalAssessment { date, scores } => {
            check_date(out, &f("date"), *date, rules, year_ahead);
            if scores.is_empty() {
                out.push(FieldViolation::new(
                    f("scores"),
                    "an assessment needs at least one score",
                ));
            }
            for (i, (variable, score)) in scores.iter().enumerate() {
                if !matches!(score, 1..=5 | 9) {
                    out.push(FieldViolation::new(
                        format!("{base}.scores[{i}].score"),
                        format!("score must be 1 to 5, or 9 for not relevant; got {score}"),
                    ));
                }
                if scores[..i].iter().any(|(v, _)| v == variable) {
                    out.push(FieldViolation::new(
                        format!("{base}.scores[{i}].variable"),
                        "variable is scored twice",
                    ));
                }
            }
        }
        Payload::HealthCheck {
            kind,
            date,
            at_risk,
            plan_made,
        } => {
            check_date(out, &f("date"), *date, rules, DateBound::NotFuture);
            let nutrition = *kind == crate::event::CheckKind::NutritionScreening;
            if nutrition && at_risk.is_none() {
                out.push(FieldViolation::new(
                    f("at_risk"),
                    "a nutrition screening must say whether the person is at risk",
                ));
            }
            if nutrition && at_risk == &Some(true) && plan_made.is_none() {
                out.push(FieldViolation::new(
                    f("plan_made"),
                    "a nutrition screening that finds risk must say whether a plan was made",
                ));
            }
            if !nutrition && (at_risk.is_some() || plan_made.is_some()) {
                out.push(FieldViolation::new(
                    f("at_risk"),
                    "at_risk and plan_made apply only to nutrition screenings",
                ));
            }
        }
        Payload::PersonDied { date_of_death } => check_date(
            out,
            &f("date_of_death"),
            *date_of_death,
            rules,
            DateBound::NotFuture,
        ),
        Payload::Correction(c) => {
            if let CorrectionAction::Replace(replacement) = &c.action {
                if replacement.kind() == PayloadKind::Correction {
                    // A correction of a correction names the corrected correction itself.
                    out.push(FieldViolation::new(f("replacement"), "a replacement must not be a correction; correct the correction by its own event_id"));
                } else {
                    check_payload(out, &f("replacement"), replacement, rules);
                }
            }
        }
    }
}

fn check_person(
    out: &mut Vec<FieldViolation>,
    event: &Submitted,
    rules: &Rules,
) -> Option<PersonFacts> {
    let person = &event.person;
    let facts = match check_national_id(&person.national_id, rules.allow_synthetic_ids) {
        Ok(facts) => facts,
        Err(e) => {
            out.push(FieldViolation::new("person.national_id", e.to_string()));
            return None;
        }
    };
    let max_year = rules.today.year();
    if let Some(year) = person.birth_year
        && !(1850..=max_year as u32).contains(&year)
    {
        out.push(FieldViolation::new(
            "person.birth_year",
            format!("birth year must be between 1850 and {max_year}; got {year}"),
        ));
        return None;
    }
    let birth_year = match (facts.birth_year, person.birth_year) {
        (Some(from_id), Some(given)) if u32::from(from_id) != given => {
            out.push(FieldViolation::new(
                "person.birth_year",
                "birth year contradicts the national id",
            ));
            return None;
        }
        (Some(from_id), _) => from_id,
        (None, Some(given)) => given as u16,
        (None, None) => {
            out.push(FieldViolation::new(
                "person.birth_year",
                "birth year is required: the national id does not give it",
            ));
            return None;
        }
    };
    let sex = match (facts.sex, person.sex) {
        (Some(from_id), Some(given)) if from_id != given => {
            out.push(FieldViolation::new(
                "person.sex",
                "sex contradicts the national id",
            ));
            return None;
        }
        (Some(from_id), _) => from_id,
        (None, Some(given)) => given,
        (None, None) => {
            out.push(FieldViolation::new(
                "person.sex",
                "sex is required (SEX_UNKNOWN allowed): the national id does not give it",
            ));
            return None;
        }
    };
    if i32::from(birth_year) > rules.today.year() {
        out.push(FieldViolation::new(
            "person.national_id",
            "the national id gives a birth year in the future",
        ));
        return None;
    }
    Some(PersonFacts { birth_year, sex })
}

impl Submitted {
    /// The event to store: the submission with its municipality resolved and the raw
    /// person replaced by the pseudonym and the facts validation established. The raw
    /// id is dropped here.
    pub fn into_stored(
        self,
        resolved: Resolved,
        pseudonym: crate::person::Pseudonym,
    ) -> crate::event::StoredEvent {
        let as_sent =
            (self.municipality != resolved.municipality.as_str()).then_some(self.municipality);
        crate::event::Event {
            envelope: crate::event::Envelope {
                event_id: self.event_id,
                municipality: resolved.municipality,
                municipality_as_sent: as_sent,
                source_system: self.source_system,
                source_version: self.source_version,
                recorded_at_unix_ms: self.recorded_at_unix_ms,
                person: crate::person::PersonRef {
                    pseudonym,
                    birth_year: resolved.person.birth_year,
                    sex: resolved.person.sex,
                },
                service_id: self.service_id,
            },
            payload: self.payload,
        }
    }
}
