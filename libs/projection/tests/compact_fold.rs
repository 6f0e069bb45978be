//! The read model's compact fold against the write side's state: for synthetic
//! populations with extra corrections injected (voids, replacements, corrections of
//! corrections, corrections of deaths), the snapshot taken from the read model equals
//! the snapshot built straight from `kpr_domain::state::MunicipalityState`, the fold
//! that accepted the events.

// Test code: a failed step must panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use kpr_domain::date::Date;
use kpr_domain::event::{
    Correction, CorrectionAction, EventId, Outcome, Payload, StoredEvent, Variable,
};
use kpr_domain::municipality::MunicipalityCode;
use kpr_domain::person::Pseudonym;
use kpr_domain::state::{MunicipalityState, ServiceKey};
use kpr_domain::validate::{Rules, validate};
use kpr_projection::episode::Episode;
use kpr_projection::fact::Fact;
use kpr_projection::model::ReadModel;
use kpr_projection::population::Region;
use kpr_projection::snapshot::{Check, Snapshot};

fn population(persons: u32, seed: u64) -> Vec<StoredEvent> {
    let today = Date::from_ymd(2025, 6, 30).unwrap();
    let mut config = kpr_synth::DemoConfig::standard(today);
    config.persons = persons;
    config.seed = seed;
    let rules = Rules {
        today,
        allow_synthetic_ids: true,
    };
    let mut out = Vec::new();
    for batch in kpr_synth::generate(&config) {
        for raw in batch.events {
            let submitted = kpr_wire::decode_submitted(&raw).unwrap();
            let resolved = validate(&submitted, &rules).unwrap();
            let mut pseudonym = [0u8; 32];
            pseudonym[..11].copy_from_slice(submitted.person.national_id.as_bytes());
            out.push(submitted.into_stored(resolved, Pseudonym(pseudonym)));
        }
    }
    out
}

/// Adds corrections the generator does not make: every 41st event voided, every 53rd
/// replaced (dates moved a week), every 3rd of those corrections voided in turn, every
/// death voided, and one correction naming an event that comes later.
fn with_corrections(events: Vec<StoredEvent>) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut counter = 0u64;
    let mut next_id = |base: &EventId| {
        counter += 1;
        let mut id = base.0;
        id[..8].copy_from_slice(&(counter | 1 << 63).to_be_bytes());
        EventId(id)
    };
    let mut corrections = 0;
    for (i, event) in events.into_iter().enumerate() {
        let mut extra = Vec::new();
        let shifted = match &event.payload {
            Payload::ServiceStarted { start_date } => Some(Payload::ServiceStarted {
                start_date: start_date.add_days(7),
            }),
            Payload::ServiceDecided(d) if i % 2 == 0 => {
                let mut d = d.clone();
                d.outcome = Outcome::Refused;
                Some(Payload::ServiceDecided(d))
            }
            Payload::HealthCheck { .. } => Some(Payload::PersonDied {
                date_of_death: Date::from_ymd(2024, 1, 1).unwrap(),
            }),
            _ => None,
        };
        let action = if matches!(event.payload, Payload::PersonDied { .. }) || i % 41 == 0 {
            Some(CorrectionAction::Void)
        } else if i % 53 == 0 {
            shifted.map(|p| CorrectionAction::Replace(Box::new(p)))
        } else {
            None
        };
        if let Some(action) = action {
            let mut correction = event.clone();
            correction.envelope.event_id = next_id(&event.envelope.event_id);
            correction.payload = Payload::Correction(Correction {
                corrects: event.envelope.event_id,
                action,
            });
            corrections += 1;
            if corrections % 3 == 0 {
                let mut undo = correction.clone();
                undo.envelope.event_id = next_id(&event.envelope.event_id);
                undo.payload = Payload::Correction(Correction {
                    corrects: correction.envelope.event_id,
                    action: CorrectionAction::Void,
                });
                extra.push(correction);
                extra.push(undo);
            } else {
                extra.push(correction);
            }
        }
        if i == 10 {
            // A correction that names an event arriving later (the fold keeps it).
            let mut early = event.clone();
            early.envelope.event_id = next_id(&event.envelope.event_id);
            early.payload = Payload::Correction(Correction {
                corrects: EventId([0xee; 16]),
                action: CorrectionAction::Void,
            });
            out.push(early);
        }
        if i == 20 {
            let mut late = event.clone();
            late.envelope.event_id = EventId([0xee; 16]);
            out.push(late);
        }
        out.push(event);
        out.extend(extra);
    }
    out
}

/// The snapshot as the read model built it before it went compact: straight from the
/// write side's state.
fn reference(events: &[StoredEvent], region: &Region) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut states: BTreeMap<MunicipalityCode, MunicipalityState<()>> = BTreeMap::new();
    for event in events {
        let envelope = &event.envelope;
        let state = states.entry(envelope.municipality).or_default();
        if state.event(&envelope.event_id).is_some() {
            continue;
        }
        let service = (!envelope.service_id.is_empty()).then(|| ServiceKey {
            source_system: envelope.source_system.clone(),
            service_id: envelope.service_id.clone(),
        });
        let _ = state.apply(
            envelope.event_id,
            envelope.person,
            service,
            event.payload.clone(),
            (),
        );
    }
    type Facts = (
        u16,
        String,
        Option<Date>,
        Vec<(Date, Vec<(Variable, u8)>)>,
        Vec<Check>,
    );
    let mut people: BTreeMap<Pseudonym, Facts> = BTreeMap::new();
    for state in states.values() {
        for (pseudonym, view) in state.persons() {
            let Some(facts) = view.facts else { continue };
            let person = people.entry(*pseudonym).or_insert_with(|| {
                (
                    facts.birth_year,
                    format!("{:?}", facts.sex),
                    None,
                    Vec::new(),
                    Vec::new(),
                )
            });
            if let Some(death) = view.death {
                person.2 = Some(person.2.map_or(death, |d: Date| d.min(death)));
            }
            for id in view.events {
                match state.effective_payload(id) {
                    Some(Payload::FunctionalAssessment { date, scores }) => {
                        person.3.push((date, scores))
                    }
                    Some(Payload::HealthCheck {
                        kind,
                        date,
                        at_risk,
                        plan_made,
                    }) => person.4.push(Check {
                        kind,
                        date,
                        at_risk,
                        plan_made,
                    }),
                    _ => {}
                }
            }
        }
    }
    for person in people.values_mut() {
        person.3.sort_by_key(|(date, _)| *date);
    }
    let mut services = Vec::new();
    let mut waiting = Vec::new();
    for (code, state) in states.iter().filter(|(c, _)| region.contains(c.as_str())) {
        for (pseudonym, view) in state.persons() {
            for id in view.events {
                if let Some(Payload::WaitingListEntered { date, .. }) = state.effective_payload(id)
                {
                    waiting.push(format!("{code} {pseudonym:?} {date}"));
                }
            }
        }
        for (_, events) in state.services() {
            let Some(person) = state.service_person(events) else {
                continue;
            };
            let facts: Vec<Fact> = events
                .iter()
                .filter_map(|id| state.effective_payload(id))
                .filter_map(|p| Fact::of_service_payload(&p))
                .collect();
            let death = people.get(&person).and_then(|p| p.2);
            let mut decisions = Vec::new();
            let mut application = None;
            for fact in &facts {
                match *fact {
                    Fact::Applied { date } => application = Some(date),
                    Fact::Decided {
                        code,
                        outcome,
                        date,
                        ..
                    } => decisions.push(format!("{code:?} {outcome:?} {date} {application:?}")),
                    _ => {}
                }
            }
            services.push(format!(
                "{code} {person:?} {:?} {decisions:?}",
                Episode::from_events(&facts, death)
            ));
        }
    }
    services.sort();
    waiting.sort();
    let people = people
        .iter()
        .map(|(p, (year, sex, death, assessments, checks))| {
            format!("{p:?} {year} {sex} {death:?} {assessments:?} {checks:?}")
        })
        .collect();
    (people, services, waiting)
}

fn compact(model: &ReadModel, region: &Region) -> (Vec<String>, Vec<String>, Vec<String>) {
    let snapshot = Snapshot::take(model, region);
    let mut people: Vec<(Pseudonym, String)> = snapshot
        .people
        .iter()
        .map(|(p, person)| {
            (
                *p,
                format!(
                    "{p:?} {} {:?} {:?} {:?} {:?}",
                    person.birth_year, person.sex, person.death, person.assessments, person.checks
                ),
            )
        })
        .collect();
    people.sort();
    let mut services: Vec<String> = snapshot
        .services
        .iter()
        .map(|s| {
            let decisions: Vec<String> = s
                .decisions
                .iter()
                .map(|d| {
                    format!(
                        "{:?} {:?} {} {:?}",
                        d.code, d.outcome, d.date, d.application
                    )
                })
                .collect();
            format!(
                "{} {:?} {:?} {decisions:?}",
                s.municipality, s.person, s.episode
            )
        })
        .collect();
    services.sort();
    let mut waiting: Vec<String> = snapshot
        .waiting
        .iter()
        .map(|w| format!("{} {:?} {}", w.municipality, w.person, w.date))
        .collect();
    waiting.sort();
    (
        people.into_iter().map(|(_, s)| s).collect(),
        services,
        waiting,
    )
}

#[test]
fn compact_fold_equals_the_write_side_state() {
    for (persons, seed) in [(300, 1), (400, 7)] {
        let events = with_corrections(population(persons, seed));
        let voids = events
            .iter()
            .filter(|e| matches!(&e.payload, Payload::Correction(c) if c.action == CorrectionAction::Void))
            .count();
        assert!(
            voids > 20,
            "the test population needs corrections ({voids})"
        );
        let mut model = ReadModel::new();
        for (offset, event) in events.iter().enumerate() {
            model.apply(0, offset as u64, event);
        }
        for region in [
            Region::Nation,
            Region::County("46".into()),
            Region::Municipality("0301".into()),
        ] {
            let (want_people, want_services, want_waiting) = reference(&events, &region);
            let (people, services, waiting) = compact(&model, &region);
            assert!(!want_services.is_empty());
            assert_eq!(want_people.len(), people.len(), "{region:?}: persons");
            for (want, got) in want_people.iter().zip(&people) {
                assert_eq!(want, got, "{region:?}: a person differs");
            }
            assert_eq!(want_services.len(), services.len(), "{region:?}: services");
            for (want, got) in want_services.iter().zip(&services) {
                assert_eq!(want, got, "{region:?}: a service differs");
            }
            assert_eq!(want_waiting, waiting, "{region:?}: waiting list");
        }
    }
}
