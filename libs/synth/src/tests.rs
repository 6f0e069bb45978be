//! Tests of the generator against the register's real rules.

use std::collections::{BTreeMap, HashMap, HashSet};

use kpr_domain::event::{Outcome, Payload, PayloadKind};
use kpr_domain::person::{PersonRef, Pseudonym};
use kpr_domain::state::{MunicipalityState, NewEvent, ServiceKey};
use kpr_domain::validate::{Rules, validate};
use kpr_domain::{Date, MunicipalityCode};
use kpr_wire::decode_submitted;

use super::*;

fn today() -> Date {
    Date::from_ymd(2025, 6, 15).unwrap()
}

fn small(seed: u64, persons: u32, today: Date) -> DemoConfig {
    DemoConfig {
        seed,
        persons,
        ..DemoConfig::standard(today)
    }
}

fn pseudonym(national_id: &str) -> Pseudonym {
    let mut bytes = [0u8; 32];
    for (b, c) in bytes.iter_mut().zip(national_id.bytes()) {
        *b = c;
    }
    Pseudonym(bytes)
}

/// What the rules run saw.
#[derive(Default)]
struct Seen {
    kinds: BTreeMap<&'static str, usize>,
    decided_codes: BTreeMap<u8, usize>,
    refused: usize,
    events: usize,
    persons: usize,
    died: usize,
}

/// Sends every event through decoding, field validation and the lifecycle state, in
/// batch order, and asserts that each is accepted.
fn run_through_rules(config: &DemoConfig) -> Seen {
    let rules = Rules {
        today: config.today,
        allow_synthetic_ids: true,
    };
    let window_start = Date::from_ymd(config.first_year, 1, 1).unwrap();
    let mut states: HashMap<MunicipalityCode, MunicipalityState<()>> = HashMap::new();
    let mut event_ids = HashSet::new();
    let mut home: HashMap<Pseudonym, (MunicipalityCode, u16)> = HashMap::new();
    let mut dead: HashSet<Pseudonym> = HashSet::new();
    let mut seen = Seen::default();
    for (b, batch) in generate(config).iter().enumerate() {
        assert!(!batch.events.is_empty() && batch.events.len() <= BATCH_EVENTS_MAX);
        assert!(config.municipalities.contains(&batch.municipality));
        for (i, event) in batch.events.iter().enumerate() {
            let at = format!("batch {b} event {i}");
            assert_eq!(event.municipality, batch.municipality, "{at}");
            let submitted =
                decode_submitted(event).unwrap_or_else(|v| panic!("{at}: not decoded: {v:?}"));
            let resolved = validate(&submitted, &rules)
                .unwrap_or_else(|v| panic!("{at}: refused: {v:?} {:?}", submitted.payload));
            assert_eq!(resolved.municipality.as_str(), batch.municipality, "{at}");
            assert!(
                event_ids.insert(submitted.event_id),
                "{at}: event id used twice"
            );

            let pseudonym = pseudonym(&submitted.person.national_id);
            let (municipality, birth_year) = *home
                .entry(pseudonym)
                .or_insert((resolved.municipality, resolved.person.birth_year));
            assert_eq!(
                municipality, resolved.municipality,
                "{at}: a person lives in one municipality"
            );
            assert_eq!(birth_year, resolved.person.birth_year, "{at}");
            assert!(
                !dead.contains(&pseudonym),
                "{at}: an event after PersonDied"
            );

            // Every date in the window, never in the future.
            let recorded = Date::from_unix_ms(submitted.recorded_at_unix_ms);
            assert!(
                recorded >= window_start && recorded <= config.today,
                "{at}: recorded_at {recorded}"
            );
            let effective = match &submitted.payload {
                Payload::Correction(c) => match &c.action {
                    kpr_domain::event::CorrectionAction::Replace(p) => p.effective_date(),
                    kpr_domain::event::CorrectionAction::Void => None,
                },
                p => p.effective_date(),
            };
            if let Some(day) = effective {
                assert!(
                    day >= window_start && day <= config.today,
                    "{at}: date {day} outside the window"
                );
                assert!(day <= recorded, "{at}: recorded before it happened");
            }
            if let Payload::ServiceDecided(d) = &submitted.payload {
                assert!(
                    d.valid_from >= window_start && d.valid_from <= config.today,
                    "{at}: valid_from {}",
                    d.valid_from
                );
                *seen.decided_codes.entry(d.code.number()).or_default() += 1;
                if d.outcome == Outcome::Refused {
                    seen.refused += 1;
                }
            }

            let person = PersonRef {
                pseudonym,
                birth_year: resolved.person.birth_year,
                sex: resolved.person.sex,
            };
            let service = (!submitted.service_id.is_empty()).then(|| ServiceKey {
                source_system: submitted.source_system.clone(),
                service_id: submitted.service_id.clone(),
            });
            let state = states.entry(resolved.municipality).or_default();
            state
                .check(NewEvent {
                    event_id: submitted.event_id,
                    person: &person,
                    service: service.as_ref(),
                    payload: &submitted.payload,
                })
                .unwrap_or_else(|p| {
                    panic!(
                        "{at}: lifecycle rule {} ({}): {} — {:?}",
                        p.rule, p.subject, p.description, submitted.payload
                    )
                });
            state.apply(
                submitted.event_id,
                person,
                service,
                submitted.payload.clone(),
                (),
            );

            let kind = submitted.payload.kind();
            if kind == PayloadKind::PersonDied {
                dead.insert(pseudonym);
                seen.died += 1;
            }
            *seen.kinds.entry(kind.field_name()).or_default() += 1;
            seen.events += 1;
        }
    }
    seen.persons = home.len();
    seen
}

#[test]
fn same_config_same_output() {
    let config = small(7, 300, today());
    let a = generate(&config);
    let b = generate(&config);
    assert_eq!(a, b);
    assert!(!a.is_empty());
    let other = generate(&small(8, 300, today()));
    assert_ne!(a, other);
}

#[test]
fn batches_hold_one_municipality_and_at_most_500_events() {
    let config = DemoConfig::standard(today());
    let batches = generate(&config);
    let mut municipalities = HashSet::new();
    for batch in &batches {
        assert!(!batch.events.is_empty());
        assert!(batch.events.len() <= BATCH_EVENTS_MAX);
        assert!(
            batch
                .events
                .iter()
                .all(|e| e.municipality == batch.municipality)
        );
        municipalities.insert(batch.municipality.clone());
    }
    assert_eq!(municipalities.len(), config.municipalities.len());
}

#[test]
fn every_event_of_the_standard_population_is_accepted() {
    let config = DemoConfig::standard(today());
    let seen = run_through_rules(&config);
    println!(
        "standard population: {} events, {} persons, {} deaths, {} refused decisions",
        seen.events, seen.persons, seen.died, seen.refused
    );
    for (kind, count) in &seen.kinds {
        println!("  {kind:24} {count:6}");
    }
    println!("decisions by code: {:?}", seen.decided_codes);
    assert_eq!(
        seen.kinds.len(),
        12,
        "all payload kinds occur: {:?}",
        seen.kinds.keys()
    );
    assert!(seen.refused > 0);
    assert!(
        seen.persons > 1900,
        "nearly every person has events: {}",
        seen.persons
    );
    // Home nursing is the most common service.
    let most = seen
        .decided_codes
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, _)| *c);
    assert_eq!(most, Some(15));
    for code in [1, 3, 4, 5, 6, 8, 11, 15, 18, 19, 20, 21, 26, 27, 28, 29] {
        assert!(
            seen.decided_codes.contains_key(&code),
            "code {code} never decided"
        );
    }
}

#[test]
fn other_seeds_and_days_are_accepted_too() {
    for (seed, today, first_year) in [
        (2, Date::from_ymd(2024, 2, 29).unwrap(), 2021),
        (3, Date::from_ymd(2026, 1, 1).unwrap(), 2026),
        (4, Date::from_ymd(2025, 12, 31).unwrap(), 2020),
        (5, Date::from_ymd(2030, 7, 1).unwrap(), 2027),
    ] {
        let config = DemoConfig {
            first_year,
            ..small(seed, 400, today)
        };
        let seen = run_through_rules(&config);
        assert!(seen.events > 0);
    }
}

#[test]
fn empty_configs_give_no_batches() {
    assert!(generate(&small(1, 0, today())).is_empty());
    let config = DemoConfig {
        municipalities: Vec::new(),
        ..DemoConfig::standard(today())
    };
    assert!(generate(&config).is_empty());
}
