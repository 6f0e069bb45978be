//! The write-side state of one municipality and the lifecycle rules that need it
//! (SPEC 4): a start needs a granted decision, at most one end, pause and resume in
//! order, nothing after a death, corrections of existing events only.
//!
//! The state is a fold over the municipality's stored events (`apply`), so the
//! ingest service rebuilds it from the log at start-up. New events are checked with
//! `check` before they are applied; a batch is applied event by event with an undo
//! record, so a refused batch leaves the state exactly as it was.
//!
//! Scope: the state is per municipality. Lifecycle rules see the events of the
//! municipality the event belongs to (a death reported by another municipality is not
//! seen here); this is what lets one writer per municipality validate alone, in one
//! process or on a Kafka partition owner.

use std::collections::HashMap;

use crate::date::Date;
use crate::event::{CorrectionAction, Decision, EventId, Outcome, Payload, PayloadKind};
use crate::person::PersonRef;
use crate::person::Pseudonym;
use crate::service::Measure;

/// A lifecycle rule an event breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Precondition {
    /// Rule name, e.g. `START_NEEDS_GRANTED_DECISION`.
    pub rule: &'static str,
    /// The earlier event, service or person it conflicts with.
    pub subject: String,
    /// A sentence for a person, without a final period.
    pub description: String,
}

fn violation(
    rule: &'static str,
    subject: impl Into<String>,
    description: impl Into<String>,
) -> Precondition {
    Precondition {
        rule,
        subject: subject.into(),
        description: description.into(),
    }
}

/// Identity of a service episode within a municipality (SPEC 5.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// EHR product.
    pub source_system: String,
    /// The EHR's id of the episode.
    pub service_id: String,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "service {}/{}", self.source_system, self.service_id)
    }
}

/// The lifecycle of one service episode, folded from its effective events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// Latest application date.
    pub applied: Option<Date>,
    /// The decision in force (latest in log order) and its event.
    pub decision: Option<(Decision, EventId)>,
    /// Start date and event.
    pub started: Option<(Date, EventId)>,
    /// End date and event.
    pub ended: Option<(Date, EventId)>,
    /// Open pause: date and event.
    pub paused: Option<(Date, EventId)>,
}

/// An event the state knows, with the caller's attachment (the ingest service keeps
/// the content digest and log position there).
#[derive(Clone, Debug)]
pub struct EventRecord<T> {
    /// The person.
    pub person: Pseudonym,
    /// The service, for service events and corrections of them.
    pub service: Option<ServiceKey>,
    /// The payload as sent.
    pub payload: Payload,
    /// Attachment.
    pub meta: T,
}

#[derive(Clone, Debug, Default)]
struct ServiceRecord {
    /// Service events in log order (corrections excluded).
    events: Vec<EventId>,
    state: ServiceState,
}

#[derive(Clone, Debug, Default)]
struct PersonRecord {
    /// PersonDied events in log order.
    deaths: Vec<EventId>,
    /// Effective date of death and its event.
    death: Option<(Date, EventId)>,
    /// Events about the person that belong to no service (assessments, checks,
    /// waiting-list entries, deaths), in log order.
    events: Vec<EventId>,
    /// Birth year and sex as the latest event gave them.
    facts: Option<PersonRef>,
}

/// What the state knows of one person, for read models.
#[derive(Clone, Copy, Debug)]
pub struct PersonView<'a> {
    /// Birth year and sex from the latest event.
    pub facts: Option<PersonRef>,
    /// Effective date of death.
    pub death: Option<Date>,
    /// Non-service events in log order (use `effective_payload` for their content).
    pub events: &'a [EventId],
}

/// Write-side state of one municipality.
#[derive(Debug)]
pub struct MunicipalityState<T> {
    events: HashMap<EventId, EventRecord<T>>,
    services: HashMap<ServiceKey, ServiceRecord>,
    persons: HashMap<Pseudonym, PersonRecord>,
    /// Corrections naming an event, in log order.
    corrections_of: HashMap<EventId, Vec<EventId>>,
}

impl<T> Default for MunicipalityState<T> {
    fn default() -> Self {
        MunicipalityState {
            events: HashMap::new(),
            services: HashMap::new(),
            persons: HashMap::new(),
            corrections_of: HashMap::new(),
        }
    }
}

/// What `apply` changed, so that `undo` can restore it.
#[derive(Debug)]
pub struct Undo {
    event_id: EventId,
    service: Option<(ServiceKey, Option<ServiceMark>)>,
    person: (Pseudonym, Option<PersonMark>),
    corrections_of: Option<(EventId, Option<Vec<EventId>>)>,
}

/// A service record as it was before an apply: `apply` only appends to its event list
/// and refolds its state, so the list's length and the old state restore it (a copy
/// of the whole record would make each apply cost as much as the service's history).
#[derive(Debug)]
struct ServiceMark {
    events_len: usize,
    state: ServiceState,
}

/// A person record as it was before an apply (appends only, as for services).
#[derive(Debug)]
struct PersonMark {
    deaths_len: usize,
    death: Option<(Date, EventId)>,
    events_len: usize,
    facts: Option<PersonRef>,
}

impl ServiceRecord {
    fn mark(&self) -> ServiceMark {
        ServiceMark {
            events_len: self.events.len(),
            state: self.state.clone(),
        }
    }

    fn restore(&mut self, mark: ServiceMark) {
        self.events.truncate(mark.events_len);
        self.state = mark.state;
    }
}

impl PersonRecord {
    fn mark(&self) -> PersonMark {
        PersonMark {
            deaths_len: self.deaths.len(),
            death: self.death,
            events_len: self.events.len(),
            facts: self.facts,
        }
    }

    fn restore(&mut self, mark: PersonMark) {
        self.deaths.truncate(mark.deaths_len);
        self.death = mark.death;
        self.events.truncate(mark.events_len);
        self.facts = mark.facts;
    }
}

/// A new event as the state sees it.
#[derive(Clone, Copy, Debug)]
pub struct NewEvent<'a> {
    /// Its id.
    pub event_id: EventId,
    /// Its person.
    pub person: &'a PersonRef,
    /// Its service episode, if it names one (`service_id` non-empty).
    pub service: Option<&'a ServiceKey>,
    /// Its payload.
    pub payload: &'a Payload,
}

impl<T> MunicipalityState<T> {
    /// A known event.
    pub fn event(&self, id: &EventId) -> Option<&EventRecord<T>> {
        self.events.get(id)
    }

    /// Mutable attachment of a known event.
    pub fn meta_mut(&mut self, id: &EventId) -> Option<&mut T> {
        self.events.get_mut(id).map(|r| &mut r.meta)
    }

    /// Number of events known.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The folded state of a service, if any event named it.
    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceState> {
        self.services.get(key).map(|s| &s.state)
    }

    /// Every service episode with its events in log order (corrections excluded).
    pub fn services(&self) -> impl Iterator<Item = (&ServiceKey, &[EventId])> {
        self.services.iter().map(|(k, r)| (k, r.events.as_slice()))
    }

    /// The person a service belongs to (the person of its first event).
    pub fn service_person(&self, events: &[EventId]) -> Option<Pseudonym> {
        events
            .first()
            .and_then(|id| self.events.get(id))
            .map(|r| r.person)
    }

    /// Every person with what the state knows of them.
    pub fn persons(&self) -> impl Iterator<Item = (&Pseudonym, PersonView<'_>)> {
        self.persons.iter().map(|(p, r)| {
            (
                p,
                PersonView {
                    facts: r.facts,
                    death: r.death.map(|(d, _)| d),
                    events: &r.events,
                },
            )
        })
    }

    /// Effective date of death of a person, if reported here.
    pub fn death(&self, person: &Pseudonym) -> Option<Date> {
        self.persons
            .get(person)
            .and_then(|p| p.death.map(|(d, _)| d))
    }

    /// The payload an event counts as, after corrections: `None` when voided. The
    /// latest effective correction naming the event wins (SPEC 4 and 5.4).
    pub fn effective_payload(&self, id: &EventId) -> Option<Payload> {
        Overlay {
            state: self,
            extra: None,
        }
        .effective(id)
    }

    /// The effective date of an event: its payload's, or for a correction the
    /// corrected event's (SPEC 5.4).
    pub fn effective_date(&self, id: &EventId) -> Option<Date> {
        let mut record = self.events.get(id)?;
        for _ in 0..64 {
            match &record.payload {
                Payload::Correction(c) => record = self.events.get(&c.corrects)?,
                p => return p.effective_date(),
            }
        }
        None
    }

    /// The event a correction chain ends at (the first non-correction).
    fn ultimate_target(&self, id: &EventId) -> Option<EventId> {
        let mut current = *id;
        for _ in 0..64 {
            match &self.events.get(&current)?.payload {
                Payload::Correction(c) => current = c.corrects,
                _ => return Some(current),
            }
        }
        None
    }

    /// Checks the lifecycle rules for a new event against the current state.
    pub fn check(&self, event: NewEvent<'_>) -> Result<(), Precondition> {
        let pseudonym = &event.person.pseudonym;
        if let Payload::Correction(c) = event.payload {
            return self.check_correction(event, c);
        }
        if let (Some(death), Some(date)) = (self.death(pseudonym), event.payload.effective_date())
            && date > death
            && event.payload.kind() != PayloadKind::PersonDied
        {
            let death_event = self
                .persons
                .get(pseudonym)
                .and_then(|p| p.death.map(|(_, e)| e));
            return Err(violation(
                "EVENT_AFTER_DEATH",
                death_event
                    .map(|e| format!("event {e}"))
                    .unwrap_or_default(),
                format!("the person died on {death}; an event dated {date} is after the death"),
            ));
        }
        match event.payload {
            Payload::PersonDied { .. } => {
                if let Some((date, id)) = self.persons.get(pseudonym).and_then(|p| p.death) {
                    return Err(violation(
                        "ALREADY_DIED",
                        format!("event {id}"),
                        format!("a death on {date} is already recorded for this person"),
                    ));
                }
                Ok(())
            }
            p if p.kind().is_service_event() => {
                let Some(key) = event.service else {
                    return Err(violation(
                        "SERVICE_ID_REQUIRED",
                        "",
                        "service events need a service_id",
                    ));
                };
                let record = self.services.get(key);
                if let Some(record) = record
                    && let Some(first) = record.events.first()
                    && let Some(owner) = self.events.get(first)
                    && owner.person != *pseudonym
                {
                    return Err(violation(
                        "SERVICE_OF_ANOTHER_PERSON",
                        format!("{key}"),
                        "this service_id belongs to another person",
                    ));
                }
                let state = record.map(|r| &r.state).cloned().unwrap_or_default();
                check_service_step(&state, key, p)
            }
            _ => Ok(()),
        }
    }

    fn check_correction(
        &self,
        event: NewEvent<'_>,
        c: &crate::event::Correction,
    ) -> Result<(), Precondition> {
        let Some(target) = self.events.get(&c.corrects) else {
            return Err(violation(
                "CORRECTED_EVENT_NOT_FOUND",
                format!("event {}", c.corrects),
                "the corrected event is not a stored event of this municipality",
            ));
        };
        if target.person != event.person.pseudonym {
            return Err(violation(
                "CORRECTION_PERSON_MISMATCH",
                format!("event {}", c.corrects),
                "a correction must name the same person as the event it corrects",
            ));
        }
        if target.service.as_ref() != event.service {
            return Err(violation(
                "CORRECTION_SERVICE_MISMATCH",
                format!("event {}", c.corrects),
                "a correction must carry the same service_id as the event it corrects",
            ));
        }
        if let CorrectionAction::Replace(replacement) = &c.action {
            if replacement.kind() != target.payload.kind() {
                return Err(violation(
                    "REPLACEMENT_KIND_MISMATCH",
                    format!("event {}", c.corrects),
                    format!(
                        "the replacement is a {} but the corrected event is a {}",
                        replacement.kind().field_name(),
                        target.payload.kind().field_name()
                    ),
                ));
            }
            if let (Some(death), Some(date)) = (
                self.death(&event.person.pseudonym),
                replacement.effective_date(),
            ) && date > death
                && replacement.kind() != PayloadKind::PersonDied
            {
                return Err(violation(
                    "EVENT_AFTER_DEATH",
                    "",
                    format!(
                        "the person died on {death}; a replacement dated {date} is after the death"
                    ),
                ));
            }
        }
        // Check the history the correction would leave behind.
        let Some(ultimate) = self.ultimate_target(&c.corrects) else {
            return Err(violation(
                "CORRECTED_EVENT_NOT_FOUND",
                format!("event {}", c.corrects),
                "the correction chain does not end at a stored event",
            ));
        };
        let overlay = Overlay {
            state: self,
            extra: Some((event.event_id, event.payload)),
        };
        if let Some(key) = &self.events.get(&ultimate).and_then(|r| r.service.clone())
            && let Some(record) = self.services.get(key)
        {
            fold_service(&record.events, |id| overlay.effective(id), key, true).map_err(|v| {
                violation(
                    "CORRECTION_BREAKS_HISTORY",
                    v.subject,
                    format!(
                        "after this correction the service history breaks {}: {}",
                        v.rule, v.description
                    ),
                )
            })?;
        }
        if let Some(person) = self.persons.get(&event.person.pseudonym) {
            let deaths = person
                .deaths
                .iter()
                .filter(|id| overlay.effective(id).is_some())
                .count();
            if deaths > 1 {
                return Err(violation(
                    "ALREADY_DIED",
                    "",
                    "after this correction the person would have two deaths",
                ));
            }
        }
        Ok(())
    }

    /// Applies an event (already checked, or read back from the log) and returns what
    /// `undo` needs to take it back.
    pub fn apply(
        &mut self,
        event_id: EventId,
        person_ref: PersonRef,
        service: Option<ServiceKey>,
        payload: Payload,
        meta: T,
    ) -> Undo {
        let person = person_ref.pseudonym;
        let mut undo = Undo {
            event_id,
            service: None,
            person: (person, self.persons.get(&person).map(PersonRecord::mark)),
            corrections_of: None,
        };
        let kind = payload.kind();
        {
            let record = self.persons.entry(person).or_default();
            record.facts = Some(person_ref);
            if !kind.is_service_event() && kind != PayloadKind::Correction {
                record.events.push(event_id);
            }
        }
        let corrects = match &payload {
            Payload::Correction(c) => Some(c.corrects),
            _ => None,
        };
        self.events.insert(
            event_id,
            EventRecord {
                person,
                service: service.clone(),
                payload,
                meta,
            },
        );

        if let Some(target) = corrects {
            undo.corrections_of = Some((target, self.corrections_of.get(&target).cloned()));
            self.corrections_of
                .entry(target)
                .or_default()
                .push(event_id);
            let ultimate = self.ultimate_target(&target);
            let key = ultimate
                .and_then(|u| self.events.get(&u))
                .and_then(|r| r.service.clone());
            if let Some(key) = key {
                undo.service = Some((
                    key.clone(),
                    self.services.get(&key).map(ServiceRecord::mark),
                ));
                self.refold_service(&key);
            }
            self.refold_person(&person);
        } else if kind.is_service_event() {
            if let Some(key) = service {
                undo.service = Some((
                    key.clone(),
                    self.services.get(&key).map(ServiceRecord::mark),
                ));
                let record = self.services.entry(key.clone()).or_default();
                record.events.push(event_id);
                let effective = self.effective_payload(&event_id);
                if let (Some(record), Some(p)) = (self.services.get_mut(&key), effective) {
                    step_service(&mut record.state, event_id, &p);
                }
            }
        } else if kind == PayloadKind::PersonDied {
            self.persons
                .entry(person)
                .or_default()
                .deaths
                .push(event_id);
            self.refold_person(&person);
        }
        undo
    }

    /// Takes back the last applied event. Undo records must be undone in reverse order.
    pub fn undo(&mut self, undo: Undo) {
        self.events.remove(&undo.event_id);
        if let Some((key, previous)) = undo.service {
            match (previous, self.services.get_mut(&key)) {
                (Some(mark), Some(record)) => record.restore(mark),
                (Some(_), None) => {}
                (None, _) => {
                    self.services.remove(&key);
                }
            }
        }
        match (undo.person.1, self.persons.get_mut(&undo.person.0)) {
            (Some(mark), Some(record)) => record.restore(mark),
            (Some(_), None) => {}
            (None, _) => {
                self.persons.remove(&undo.person.0);
            }
        }
        if let Some((target, previous)) = undo.corrections_of {
            match previous {
                Some(list) => self.corrections_of.insert(target, list),
                None => self.corrections_of.remove(&target),
            };
        }
    }

    fn refold_service(&mut self, key: &ServiceKey) {
        let Some(record) = self.services.get(key) else {
            return;
        };
        let state = fold_service(&record.events, |id| self.effective_payload(id), key, false)
            .unwrap_or_default();
        if let Some(record) = self.services.get_mut(key) {
            record.state = state;
        }
    }

    fn refold_person(&mut self, person: &Pseudonym) {
        let Some(record) = self.persons.get(person) else {
            return;
        };
        let death = record
            .deaths
            .iter()
            .find_map(|id| match self.effective_payload(id) {
                Some(Payload::PersonDied { date_of_death }) => Some((date_of_death, *id)),
                _ => None,
            });
        if let Some(record) = self.persons.get_mut(person) {
            record.death = death;
        }
    }
}

/// The state, optionally with one more (not yet applied) correction: what a
/// correction would leave behind is checked through it.
struct Overlay<'a, T> {
    state: &'a MunicipalityState<T>,
    extra: Option<(EventId, &'a Payload)>,
}

impl<T> Overlay<'_, T> {
    fn effective(&self, id: &EventId) -> Option<Payload> {
        self.effective_depth(id, 0)
    }

    fn effective_depth(&self, id: &EventId, depth: u32) -> Option<Payload> {
        // Correction chains are bounded by the log, but guard the recursion anyway.
        if depth > 64 {
            return None;
        }
        if let Some((extra_id, extra)) = self.extra
            && extra_id == *id
        {
            return Some(extra.clone());
        }
        let record = self.state.events.get(id)?;
        let mut current = Some(record.payload.clone());
        let existing = self
            .state
            .corrections_of
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let extra = match self.extra {
            Some((extra_id, Payload::Correction(c))) if c.corrects == *id => Some(extra_id),
            _ => None,
        };
        // The latest effective correction naming the event wins; a voided correction
        // has no effect.
        for correction_id in existing.iter().copied().chain(extra) {
            if let Some(Payload::Correction(c)) = self.effective_depth(&correction_id, depth + 1) {
                current = match c.action {
                    CorrectionAction::Void => None,
                    CorrectionAction::Replace(p) => Some(*p),
                };
            }
        }
        current
    }
}

/// Folds a service's events (log order) into its state. With `strict`, every step is
/// checked as if the events arrived now, and the first broken rule is returned.
fn fold_service(
    events: &[EventId],
    effective: impl Fn(&EventId) -> Option<Payload>,
    key: &ServiceKey,
    strict: bool,
) -> Result<ServiceState, Precondition> {
    let mut state = ServiceState::default();
    for id in events {
        let Some(payload) = effective(id) else {
            continue;
        };
        if strict {
            check_service_step(&state, key, &payload)?;
        }
        step_service(&mut state, *id, &payload);
    }
    Ok(state)
}

/// The lifecycle rules of one service event against the service's state.
fn check_service_step(
    state: &ServiceState,
    key: &ServiceKey,
    payload: &Payload,
) -> Result<(), Precondition> {
    let started = || {
        state.started.ok_or_else(|| {
            violation(
                "SERVICE_NOT_STARTED",
                key.to_string(),
                "the service has not started",
            )
        })
    };
    let not_ended = || match state.ended {
        Some((date, id)) => Err(violation(
            "SERVICE_ALREADY_ENDED",
            format!("event {id}"),
            format!("the service ended on {date}"),
        )),
        None => Ok(()),
    };
    match payload {
        // An application after a decision is a new application (for example for more
        // hours); the next decision is checked against it.
        Payload::ServiceApplied { .. } => Ok(()),
        Payload::ServiceDecided(d) => match state.applied {
            Some(applied) if d.decision_date < applied => Err(violation(
                "DECISION_BEFORE_APPLICATION",
                key.to_string(),
                format!(
                    "decision_date {} is before the application date {applied}",
                    d.decision_date
                ),
            )),
            _ => Ok(()),
        },
        Payload::ServiceStarted { start_date } => {
            let Some((decision, decision_id)) = &state.decision else {
                return Err(violation(
                    "START_NEEDS_GRANTED_DECISION",
                    key.to_string(),
                    "the service has no decision",
                ));
            };
            if decision.outcome != Outcome::Granted {
                return Err(violation(
                    "START_NEEDS_GRANTED_DECISION",
                    format!("event {decision_id}"),
                    "the decision in force refused the service",
                ));
            }
            if let Some((date, id)) = state.started {
                return Err(violation(
                    "SERVICE_ALREADY_STARTED",
                    format!("event {id}"),
                    format!("the service started on {date}"),
                ));
            }
            let earliest = decision.valid_from.add_days(-30);
            if *start_date < earliest {
                return Err(violation(
                    "START_BEFORE_VALIDITY",
                    format!("event {decision_id}"),
                    format!(
                        "start_date {start_date} is more than 30 days before valid_from {}",
                        decision.valid_from
                    ),
                ));
            }
            Ok(())
        }
        Payload::ServiceHoursChanged { .. } => {
            started()?;
            not_ended()?;
            match &state.decision {
                Some((d, id)) if d.code.measure() != Measure::Hours => Err(violation(
                    "SERVICE_NOT_MEASURED_IN_HOURS",
                    format!("event {id}"),
                    format!("service {} is not measured in hours", d.code.number()),
                )),
                _ => Ok(()),
            }
        }
        Payload::ServicePaused { date, .. } => {
            let (start, _) = started()?;
            not_ended()?;
            if let Some((paused, id)) = state.paused {
                return Err(violation(
                    "SERVICE_ALREADY_PAUSED",
                    format!("event {id}"),
                    format!("the service has been paused since {paused}"),
                ));
            }
            if *date < start {
                return Err(violation(
                    "PAUSE_BEFORE_START",
                    key.to_string(),
                    format!("pause date {date} is before the start {start}"),
                ));
            }
            Ok(())
        }
        Payload::ServiceResumed { date } => {
            not_ended()?;
            let Some((paused, id)) = state.paused else {
                return Err(violation(
                    "SERVICE_NOT_PAUSED",
                    key.to_string(),
                    "only a paused service can be resumed",
                ));
            };
            if *date < paused {
                return Err(violation(
                    "RESUME_BEFORE_PAUSE",
                    format!("event {id}"),
                    format!("resume date {date} is before the pause {paused}"),
                ));
            }
            Ok(())
        }
        Payload::ServiceEnded { end_date, .. } => {
            if let Some((date, id)) = state.ended {
                return Err(violation(
                    "SERVICE_ALREADY_ENDED",
                    format!("event {id}"),
                    format!("the service already ended on {date}"),
                ));
            }
            let (start, id) = started()?;
            if *end_date < start {
                return Err(violation(
                    "END_BEFORE_START",
                    format!("event {id}"),
                    format!("end_date {end_date} is before start_date {start}"),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// One step of the service fold (no checks: the log is the truth).
fn step_service(state: &mut ServiceState, id: EventId, payload: &Payload) {
    match payload {
        Payload::ServiceApplied {
            application_date, ..
        } => state.applied = Some(*application_date),
        Payload::ServiceDecided(d) => state.decision = Some((d.clone(), id)),
        Payload::ServiceStarted { start_date } if state.started.is_none() => {
            state.started = Some((*start_date, id))
        }
        Payload::ServicePaused { date, .. } => state.paused = Some((*date, id)),
        Payload::ServiceResumed { .. } => state.paused = None,
        Payload::ServiceEnded { end_date, .. } if state.ended.is_none() => {
            state.ended = Some((*end_date, id))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Correction, EndReason, PauseReason};
    use crate::person::Sex;
    use crate::service::ServiceCode;

    fn d(days: i32) -> Date {
        Date::from_ymd(2025, 1, 1).unwrap().add_days(days)
    }

    fn id(n: u8) -> EventId {
        EventId([n; 16])
    }

    const ALICE: PersonRef = PersonRef {
        pseudonym: Pseudonym([1; 32]),
        birth_year: 1940,
        sex: Sex::Female,
    };
    const BOB: PersonRef = PersonRef {
        pseudonym: Pseudonym([2; 32]),
        birth_year: 1941,
        sex: Sex::Male,
    };

    fn key() -> ServiceKey {
        ServiceKey {
            source_system: "Gerica".into(),
            service_id: "S1".into(),
        }
    }

    fn decision(outcome: Outcome) -> Payload {
        Payload::ServiceDecided(Decision {
            code: ServiceCode::from_number(15).unwrap(),
            respite_kind: None,
            outcome,
            decision_date: d(0),
            valid_from: d(0),
            valid_to: None,
            hours: Some(crate::event::CentiHours(500)),
            provider_org_number: None,
        })
    }

    /// Given these events (checked and applied in order), when this one arrives,
    /// then `check` says this.
    fn given_when(
        given: &[(u8, PersonRef, bool, Payload)],
        when: (u8, PersonRef, bool, Payload),
    ) -> Result<(), &'static str> {
        let mut state: MunicipalityState<()> = MunicipalityState::default();
        for (n, person, is_service, payload) in given {
            let service = is_service.then(key);
            state
                .check(NewEvent {
                    event_id: id(*n),
                    person,
                    service: service.as_ref(),
                    payload,
                })
                .expect("given events are valid");
            state.apply(id(*n), *person, service, payload.clone(), ());
        }
        let (n, person, is_service, payload) = when;
        let service = is_service.then(key);
        state
            .check(NewEvent {
                event_id: id(n),
                person: &person,
                service: service.as_ref(),
                payload: &payload,
            })
            .map_err(|v| v.rule)
    }

    fn start(days: i32) -> Payload {
        Payload::ServiceStarted {
            start_date: d(days),
        }
    }

    fn void(n: u8) -> Payload {
        Payload::Correction(Correction {
            corrects: id(n),
            action: CorrectionAction::Void,
        })
    }

    #[test]
    fn start_needs_a_granted_decision() {
        assert_eq!(
            given_when(&[], (1, ALICE, true, start(1))),
            Err("START_NEEDS_GRANTED_DECISION")
        );
        assert_eq!(
            given_when(
                &[(1, ALICE, true, decision(Outcome::Refused))],
                (2, ALICE, true, start(1))
            ),
            Err("START_NEEDS_GRANTED_DECISION")
        );
        assert_eq!(
            given_when(
                &[(1, ALICE, true, decision(Outcome::Granted))],
                (2, ALICE, true, start(1))
            ),
            Ok(())
        );
        assert_eq!(
            given_when(
                &[(1, ALICE, true, decision(Outcome::Granted))],
                (2, ALICE, true, start(-31))
            ),
            Err("START_BEFORE_VALIDITY")
        );
        let started = [
            (1, ALICE, true, decision(Outcome::Granted)),
            (2, ALICE, true, start(1)),
        ];
        assert_eq!(
            given_when(&started, (3, ALICE, true, start(2))),
            Err("SERVICE_ALREADY_STARTED")
        );
        assert_eq!(
            given_when(&started, (3, BOB, true, start(2))),
            Err("SERVICE_OF_ANOTHER_PERSON")
        );
    }

    #[test]
    fn pause_resume_and_end_in_order() {
        let started = vec![
            (1, ALICE, true, decision(Outcome::Granted)),
            (2, ALICE, true, start(1)),
        ];
        let pause = Payload::ServicePaused {
            date: d(5),
            reason: PauseReason::SpecialistCareStay,
        };
        assert_eq!(
            given_when(
                &started,
                (3, ALICE, true, Payload::ServiceResumed { date: d(6) })
            ),
            Err("SERVICE_NOT_PAUSED")
        );
        let mut paused = started.clone();
        paused.push((3, ALICE, true, pause.clone()));
        assert_eq!(
            given_when(&paused, (4, ALICE, true, pause)),
            Err("SERVICE_ALREADY_PAUSED")
        );
        assert_eq!(
            given_when(
                &paused,
                (4, ALICE, true, Payload::ServiceResumed { date: d(4) })
            ),
            Err("RESUME_BEFORE_PAUSE")
        );
        assert_eq!(
            given_when(
                &paused,
                (4, ALICE, true, Payload::ServiceResumed { date: d(6) })
            ),
            Ok(())
        );
        let end = |days| Payload::ServiceEnded {
            end_date: d(days),
            reason: EndReason::Other,
        };
        assert_eq!(
            given_when(&started, (3, ALICE, true, end(0))),
            Err("END_BEFORE_START")
        );
        let mut paused_then_ended = paused.clone();
        paused_then_ended.push((4, ALICE, true, end(9)));
        assert_eq!(
            given_when(
                &paused_then_ended,
                (5, ALICE, true, Payload::ServiceResumed { date: d(10) })
            ),
            Err("SERVICE_ALREADY_ENDED")
        );
        let mut ended = started.clone();
        ended.push((3, ALICE, true, end(9)));
        assert_eq!(
            given_when(&ended, (4, ALICE, true, end(10))),
            Err("SERVICE_ALREADY_ENDED")
        );
        assert_eq!(
            given_when(
                &ended,
                (
                    4,
                    ALICE,
                    true,
                    Payload::ServiceHoursChanged {
                        effective_date: d(10),
                        hours: crate::event::CentiHours(100)
                    }
                )
            ),
            Err("SERVICE_ALREADY_ENDED")
        );
    }

    #[test]
    fn nothing_after_a_death_unless_the_death_is_voided() {
        let died = [(
            1,
            ALICE,
            false,
            Payload::PersonDied {
                date_of_death: d(10),
            },
        )];
        let check = |days| Payload::HealthCheck {
            kind: crate::event::CheckKind::Physician,
            date: d(days),
            at_risk: None,
            plan_made: None,
        };
        assert_eq!(
            given_when(&died, (2, ALICE, false, check(11))),
            Err("EVENT_AFTER_DEATH")
        );
        assert_eq!(
            given_when(&died, (2, ALICE, false, check(10))),
            Ok(()),
            "a person is alive on the day of death"
        );
        assert_eq!(given_when(&died, (2, BOB, false, check(11))), Ok(()));
        assert_eq!(
            given_when(
                &died,
                (
                    2,
                    ALICE,
                    false,
                    Payload::PersonDied {
                        date_of_death: d(9)
                    }
                )
            ),
            Err("ALREADY_DIED")
        );
        let voided = [died[0].clone(), (2, ALICE, false, void(1))];
        assert_eq!(given_when(&voided, (3, ALICE, false, check(11))), Ok(()));
        // Voiding the void brings the death back.
        let revived = [
            voided[0].clone(),
            voided[1].clone(),
            (3, ALICE, false, void(2)),
        ];
        assert_eq!(
            given_when(&revived, (4, ALICE, false, check(11))),
            Err("EVENT_AFTER_DEATH")
        );
    }

    #[test]
    fn corrections_must_leave_a_valid_history() {
        let started = [
            (1, ALICE, true, decision(Outcome::Granted)),
            (2, ALICE, true, start(1)),
        ];
        assert_eq!(
            given_when(&started, (3, ALICE, true, void(1))),
            Err("CORRECTION_BREAKS_HISTORY")
        );
        assert_eq!(
            given_when(&started, (3, ALICE, true, void(9))),
            Err("CORRECTED_EVENT_NOT_FOUND")
        );
        assert_eq!(
            given_when(&started, (3, BOB, true, void(2))),
            Err("CORRECTION_PERSON_MISMATCH")
        );
        assert_eq!(
            given_when(&started, (3, ALICE, false, void(2))),
            Err("CORRECTION_SERVICE_MISMATCH")
        );
        // Voiding the start lets the service start again.
        let restart = [
            started[0].clone(),
            started[1].clone(),
            (3, ALICE, true, void(2)),
        ];
        assert_eq!(given_when(&restart, (4, ALICE, true, start(3))), Ok(()));
        let replace = Payload::Correction(Correction {
            corrects: id(2),
            action: CorrectionAction::Replace(Box::new(decision(Outcome::Granted))),
        });
        assert_eq!(
            given_when(&started, (3, ALICE, true, replace)),
            Err("REPLACEMENT_KIND_MISMATCH")
        );
    }

    #[test]
    fn undo_restores_the_state_exactly() {
        let mut state: MunicipalityState<()> = MunicipalityState::default();
        state.apply(id(1), ALICE, Some(key()), decision(Outcome::Granted), ());
        let before = (
            state.event_count(),
            state.service(&key()).cloned(),
            state.death(&ALICE.pseudonym),
        );
        let undo = vec![
            state.apply(id(2), ALICE, Some(key()), start(1), ()),
            state.apply(
                id(3),
                ALICE,
                None,
                Payload::PersonDied {
                    date_of_death: d(3),
                },
                (),
            ),
            state.apply(id(4), ALICE, Some(key()), void(2), ()),
        ];
        assert_ne!(state.event_count(), before.0);
        for u in undo.into_iter().rev() {
            state.undo(u);
        }
        assert_eq!(
            (
                state.event_count(),
                state.service(&key()).cloned(),
                state.death(&ALICE.pseudonym)
            ),
            before
        );
    }

    #[test]
    fn undo_restores_person_and_service_records_exactly() {
        let mut state: MunicipalityState<()> = MunicipalityState::default();
        state.apply(id(1), ALICE, Some(key()), decision(Outcome::Granted), ());
        state.apply(
            id(2),
            ALICE,
            Some(key()),
            Payload::ServiceStarted { start_date: d(1) },
            (),
        );
        state.apply(
            id(3),
            ALICE,
            None,
            Payload::PersonDied {
                date_of_death: d(9),
            },
            (),
        );
        let records = |state: &MunicipalityState<()>| {
            (
                state.service(&key()).cloned(),
                state.death(&ALICE.pseudonym),
                state
                    .persons()
                    .map(|(p, v)| (*p, v.events.to_vec()))
                    .collect::<Vec<_>>(),
            )
        };
        let before = records(&state);
        // A refused batch: applied in order, undone in reverse order.
        let undo = [
            state.apply(
                id(4),
                ALICE,
                Some(key()),
                Payload::ServiceEnded {
                    end_date: d(5),
                    reason: EndReason::Died,
                },
                (),
            ),
            state.apply(
                id(5),
                ALICE,
                None,
                Payload::PersonDied {
                    date_of_death: d(3),
                },
                (),
            ),
            state.apply(
                id(6),
                BOB,
                None,
                Payload::PersonDied {
                    date_of_death: d(4),
                },
                (),
            ),
        ];
        assert_eq!(state.death(&BOB.pseudonym), Some(d(4)));
        for u in undo.into_iter().rev() {
            state.undo(u);
        }
        assert_eq!(before, records(&state));
        assert!(state.event(&id(4)).is_none() && state.event(&id(6)).is_none());
        assert_eq!(state.death(&BOB.pseudonym), None);
        assert_eq!(state.event_count(), 3);
    }
}
