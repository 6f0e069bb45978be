//! Tests of the generator against the register's real rules.

use std::collections::{BTreeMap, HashMap, HashSet};

use kpr_domain::event::{Outcome, Payload, PayloadKind};
use kpr_domain::person::{PersonRef, Pseudonym};
use kpr_domain::state::{MunicipalityState, NewEvent, ServiceKey};
use kpr_domain::validate::{Rules, validate};
use kpr_domain::{Date, MunicipalityCode};
use kpr_wire::decode_submitted;

use super::*;
use crate::person::Window;

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
    let batches = generate(config);
    for batch in &batches {
        assert!(batch.events.len() <= BATCH_EVENTS_MAX);
        assert!(config.municipalities.contains(&batch.municipality));
    }
    check_batches(batches, config.today, config.first_year)
}

/// Sends every event of `batches` through decoding, field validation and the lifecycle
/// state, in order, and asserts that each is accepted and dated in the window.
fn check_batches(batches: impl IntoIterator<Item = Batch>, today: Date, first_year: i32) -> Seen {
    let config = Window {
        start: Date::from_ymd(first_year, 1, 1).unwrap(),
        today,
    };
    let rules = Rules {
        today: config.today,
        allow_synthetic_ids: true,
    };
    let window_start = config.start;
    let mut states: HashMap<MunicipalityCode, MunicipalityState<()>> = HashMap::new();
    let mut event_ids = HashSet::new();
    let mut home: HashMap<Pseudonym, (MunicipalityCode, u16)> = HashMap::new();
    let mut dead: HashSet<Pseudonym> = HashSet::new();
    let mut seen = Seen::default();
    for (b, batch) in batches.into_iter().enumerate() {
        assert!(!batch.events.is_empty());
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

fn national_config(scale: f64, years: i32) -> NationalConfig {
    let today = Date::from_ymd(2026, 11, 23).unwrap();
    NationalConfig {
        scale,
        first_year: today.year() - years,
        ..NationalConfig::standard(today)
    }
}

#[test]
fn national_data_is_deterministic_and_bounded() {
    let config = NationalConfig {
        batch_events: 200,
        ..national_config(0.002, 2)
    };
    let a: Vec<Batch> = national(&config).collect();
    let b: Vec<Batch> = national(&config).collect();
    assert!(a == b, "same config, same batches");
    assert!(
        a.iter()
            .all(|b| !b.events.is_empty() && b.events.len() <= 200)
    );
    let other: Vec<Batch> = national(&NationalConfig { seed: 2, ..config })
        .take(3)
        .collect();
    assert_ne!(a[..3], other[..]);
}

#[test]
fn every_municipality_gets_accepted_events_with_unique_ids() {
    // A tiny scale still reaches every 2024 municipality.
    let config = national_config(0.002, 3);
    let batches: Vec<Batch> = national(&config).collect();
    let mut order: Vec<&str> = Vec::new();
    for batch in &batches {
        if order.last() != Some(&batch.municipality.as_str()) {
            order.push(&batch.municipality);
        }
    }
    assert_eq!(
        order.len(),
        357,
        "every municipality once, in one run of batches"
    );
    assert_eq!(order, national::municipalities());
    let mut ids: HashMap<String, (u16, String)> = HashMap::new();
    for event in batches.iter().flat_map(|b| &b.events) {
        let id = event.person.as_ref().unwrap().national_id.clone();
        let facts = kpr_domain::national_id::check_national_id(&id, true).unwrap();
        let owner = (facts.birth_year.unwrap(), event.municipality.clone());
        // One id is one person: same birth year, one municipality.
        assert_eq!(*ids.entry(id).or_insert_with(|| owner.clone()), owner);
    }
    let seen = check_batches(batches, config.today, config.first_year);
    println!(
        "national 0.2 %, 3 years: {} events, {} persons, {} deaths",
        seen.events, seen.persons, seen.died
    );
    assert_eq!(seen.persons, ids.len());
    assert!(seen.kinds.len() >= 11, "{:?}", seen.kinds.keys());
}

/// Folds the national data set into a read model, as the register would.
fn fold_national(config: &NationalConfig) -> (kpr_projection::model::ReadModel, u64) {
    let rules = Rules {
        today: config.today,
        allow_synthetic_ids: true,
    };
    let mut model = kpr_projection::model::ReadModel::new();
    let mut offset = 0u64;
    for batch in national(config) {
        for event in &batch.events {
            let submitted = decode_submitted(event).unwrap();
            let resolved = validate(&submitted, &rules).unwrap();
            let pseudonym = pseudonym(&submitted.person.national_id);
            let stored = submitted.into_stored(resolved, pseudonym);
            assert!(model.apply(0, offset, &stored));
            offset += 1;
        }
    }
    (model, offset)
}

#[test]
fn national_figures_land_near_the_published_ones() {
    let config = national_config(0.02, 4);
    let (model, events) = fold_national(&config);
    let year = config.today.year() - 1;
    let lines = calibration::national_figures(&model, config.first_year, year, config.scale);
    let years = f64::from(config.today.year() - config.first_year) + 323.0 / 365.0;
    println!(
        "national 2 %, {} years: {events} events, {:.0} a year",
        config.today.year() - config.first_year,
        events as f64 / years
    );
    for line in &lines {
        println!(
            "{:5} {:40} register={:.4} published={:.4}",
            line.figure, line.key, line.register, line.published
        );
    }
    let get = |figure: &str, key: &str| {
        lines
            .iter()
            .find(|l| l.figure == figure && l.key.starts_with(key))
            .unwrap_or_else(|| panic!("no {figure} {key}"))
    };
    for band in ["0-17", "18-49", "50-66", "67-79", "80-89", "90+"] {
        let line = get("T1", &format!("measure=share band={band} "));
        let relative = line.register / line.published;
        assert!(
            (0.8..=1.2).contains(&relative),
            "band {band}: {} vs {}",
            line.register,
            line.published
        );
    }
    // Steady: every year's number of recipients near the published one.
    for y in config.first_year..=year {
        let total = get("T1", &format!("measure=recipients year={y}"));
        assert!(
            (0.85..=1.15).contains(&(total.register / total.published)),
            "recipients in {y}: {}",
            total.register
        );
    }
    let women = get("T1", "measure=women_share");
    assert!((women.register - women.published).abs() <= 0.03);
    for level in ["some_limited", "medium_to_large", "extensive", "unknown"] {
        let line = get("need", &format!("level={level}"));
        assert!(
            (line.register - line.published).abs() <= 0.05,
            "need {level}: {} vs {}",
            line.register,
            line.published
        );
    }
    let extensive = get("I8", "group=long_term");
    assert!((extensive.register - extensive.published).abs() <= 0.08);
    let i1 = get("I1", "date=");
    assert!((0.08..=0.12).contains(&i1.register), "I1 {}", i1.register);
    let i3 = get("I3", "date=");
    assert!((0.23..=0.31).contains(&i3.register), "I3 {}", i3.register);
}
