//! Deterministic synthetic populations of care-service events, for `kpr demo` and for
//! tests.
//!
//! [`generate`] turns a [`DemoConfig`] into batches of API events (`kpr.v1.Event`) that
//! the register accepts when they are sent in the returned order to a deployment that
//! allows synthetic test ids: every person has a valid synthetic national id (month +
//! 80), every date lies between 1 January of `first_year` and `today` (only the
//! `valid_to` of a time-limited decision may lie ahead, less than a year), and each
//! service follows its lifecycle (applied → decided → started → hours changed, paused,
//! resumed → ended). Each batch holds the events of one municipality, at most
//! [`BATCH_EVENTS_MAX`] of them.
//!
//! The population is meant to look like Norwegian municipal care (SPEC section 9): most
//! recipients are 67-95 years old, home nursing is the most common service, followed by
//! practical help and safety alarms; heavy users move to long-term stays after a
//! waiting-list entry; residents get yearly health checks; people die, ending their
//! services; and a few events are corrected.
//!
//! Same config, same output, byte for byte: the generator reads no clock and draws all
//! randomness from a small SplitMix64 generator seeded by the config. Event ids are
//! version-4-shaped UUIDs derived from the seed and a counter; `recorded_at` is the
//! effective day of the event (a correction: the day it was made) at a working-hours
//! time.

pub mod calibration;
mod ids;
pub mod national;
mod person;
mod rng;

use std::collections::HashSet;

use kpr_domain::Date;
use kpr_wire::pb;

pub use ids::synthetic_id;
pub use national::{NationalConfig, national};

use ids::{EventIds, org_number};
use person::Window;
use rng::{Rng, mix, stream};

/// Most events in one [`Batch`].
pub const BATCH_EVENTS_MAX: usize = 500;

/// What population to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoConfig {
    /// Seed of every random choice: the same config gives the same events.
    pub seed: u64,
    /// Number of persons (care-service users).
    pub persons: u32,
    /// 2024 municipality codes the persons live in (each person in one of them,
    /// weighted by the municipality's size where known).
    pub municipalities: Vec<String>,
    /// The last day events may be dated (nothing lies in the future).
    pub today: Date,
    /// First year of history: events are dated from 1 January of this year.
    pub first_year: i32,
}

impl DemoConfig {
    /// The demo population: seed 1, 2000 persons in eight municipalities of different
    /// sizes and counties (Oslo, Stavanger, Bergen, Trondheim, Ålesund, Asker, Bodø,
    /// Alta), with history from 1 January three years before `today`.
    pub fn standard(today: Date) -> DemoConfig {
        DemoConfig {
            seed: 1,
            persons: 2000,
            municipalities: [
                "0301", "1103", "4601", "5001", "1508", "3203", "1804", "5601",
            ]
            .map(String::from)
            .to_vec(),
            today,
            first_year: today.year() - 3,
        }
    }
}

/// One append request's worth of events, all of one municipality.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The 2024 municipality code of every event in the batch.
    pub municipality: String,
    /// The events, in the order they must be sent.
    pub events: Vec<pb::Event>,
}

/// The EHR product a municipality uses.
#[derive(Clone, Copy, Debug)]
struct System {
    name: &'static str,
    version: &'static str,
    /// Prefix of the EHR's service-episode ids.
    prefix: &'static str,
    /// Whether the product also sends birth year and sex (consistent with the id).
    sends_person_facts: bool,
}

const SYSTEMS: [System; 4] = [
    System {
        name: "Gerica",
        version: "24.2.1",
        prefix: "GER",
        sends_person_facts: false,
    },
    System {
        name: "Profil",
        version: "9.18.0",
        prefix: "PRF",
        sends_person_facts: true,
    },
    System {
        name: "CosDoc",
        version: "5.4.2",
        prefix: "CD",
        sends_person_facts: false,
    },
    System {
        name: "Lifecare",
        version: "2.31",
        prefix: "LC",
        sends_person_facts: false,
    },
];

fn system_for(municipality: &str) -> System {
    let index = match municipality {
        "0301" | "4601" | "1508" => 0,
        "1103" | "1804" => 1,
        "5001" | "5601" => 2,
        "3203" => 3,
        other => other.bytes().map(usize::from).sum::<usize>() % SYSTEMS.len(),
    };
    SYSTEMS[index % SYSTEMS.len()]
}

/// Relative number of care-service users: roughly the population in thousands for the
/// standard municipalities, a mid-sized town otherwise.
fn municipality_weight(code: &str) -> u32 {
    match code {
        "0301" => 717,
        "4601" => 291,
        "5001" => 214,
        "1103" => 148,
        "3203" => 98,
        "1508" => 58,
        "1804" => 53,
        "5601" => 21,
        _ => 30,
    }
}

/// One event with its sort key within its municipality.
struct Row {
    key: (Date, u8, u32, u32),
    event: pb::Event,
}

/// Generates the population of `config` as batches in sending order.
///
/// Each batch holds events of one municipality only, at most [`BATCH_EVENTS_MAX`]; the
/// events of a municipality are ordered by effective day (each person's lifecycle
/// order within a day), and the municipalities' batches are interleaved round-robin.
/// Returns no batches when there are no persons or no municipalities.
pub fn generate(config: &DemoConfig) -> Vec<Batch> {
    let mut municipalities: Vec<&String> = Vec::new();
    for code in &config.municipalities {
        if !municipalities.contains(&code) {
            municipalities.push(code);
        }
    }
    if municipalities.is_empty() || config.persons == 0 {
        return Vec::new();
    }
    let today = config.today;
    let start = Date::from_ymd(config.first_year, 1, 1)
        .unwrap_or(today)
        .min(today);
    let window = Window { start, today };
    let weights: Vec<(usize, u32)> = municipalities
        .iter()
        .enumerate()
        .map(|(i, m)| (i, municipality_weight(m)))
        .collect();
    let systems: Vec<System> = municipalities.iter().map(|m| system_for(m)).collect();
    let providers: Vec<Vec<String>> = (0..municipalities.len())
        .map(|i| {
            let mut r = Rng::derive(config.seed, stream::PROVIDER, i as u64);
            (0..3).map(|_| org_number(&mut r)).collect()
        })
        .collect();

    let mut ids = EventIds::new(config.seed);
    let mut used_ids: HashSet<String> = HashSet::new();
    let mut rows: Vec<Vec<Row>> = municipalities.iter().map(|_| Vec::new()).collect();
    for index in 0..config.persons {
        let m = Rng::derive(config.seed, stream::MUNICIPALITY, u64::from(index))
            .weighted(&weights)
            .unwrap_or(0);
        let system = systems[m];
        let prefix = format!("{}-{index:06}-", system.prefix);
        let history = person::history(
            config.seed,
            index,
            &window,
            &prefix,
            &providers[m],
            &mut ids,
        );
        let mut national_id = String::new();
        for attempt in 0..1000u64 {
            national_id = synthetic_id(
                mix(config.seed ^ mix((u64::from(index) << 16) | attempt)),
                history.birth,
                history.female,
            );
            if used_ids.insert(national_id.clone()) {
                break;
            }
        }
        let person = api_person(national_id, &history, system);
        push_rows(
            &mut rows[m],
            history,
            index,
            municipalities[m],
            system,
            &person,
        );
    }

    let mut chunks: Vec<std::vec::IntoIter<Batch>> = Vec::new();
    for (m, list) in rows.into_iter().enumerate() {
        chunks.push(into_batches(list, municipalities[m], BATCH_EVENTS_MAX).into_iter());
    }
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for chunk in &mut chunks {
            if let Some(batch) = chunk.next() {
                out.push(batch);
            }
        }
        if out.len() == before {
            break;
        }
    }
    out
}

/// The API person of a history: the id, and birth year and sex when the EHR product
/// sends them.
fn api_person(national_id: String, history: &person::History, system: System) -> pb::Person {
    let sex = if history.female {
        pb::Sex::Female
    } else {
        pb::Sex::Male
    };
    pb::Person {
        national_id,
        birth_year: system
            .sends_person_facts
            .then(|| history.birth.year().max(0) as u32),
        sex: if system.sends_person_facts {
            sex as i32
        } else {
            pb::Sex::Unspecified as i32
        },
    }
}

/// Adds the events of person `index` (its drafts in envelopes) to `rows`.
fn push_rows(
    rows: &mut Vec<Row>,
    history: person::History,
    index: u32,
    municipality: &str,
    system: System,
    person: &pb::Person,
) {
    for draft in history.drafts {
        let event = pb::Event {
            event_id: draft.event_id,
            municipality: municipality.to_string(),
            successor_municipality: String::new(),
            source_system: system.name.to_string(),
            source_version: system.version.to_string(),
            recorded_at: Some(prost_types::Timestamp {
                seconds: i64::from(draft.day.days()) * 86_400 + i64::from(draft.second),
                nanos: 0,
            }),
            person: Some(person.clone()),
            service_id: draft.service_id,
            payload: Some(pb::Payload {
                kind: Some(draft.kind),
            }),
        };
        rows.push(Row {
            key: (draft.day, draft.phase, index, draft.seq),
            event,
        });
    }
}

/// Sorts the rows of one municipality into sending order and cuts them into batches
/// of at most `batch_events` events.
fn into_batches(mut rows: Vec<Row>, municipality: &str, batch_events: usize) -> Vec<Batch> {
    rows.sort_by_key(|row| row.key);
    let batch_events = batch_events.max(1);
    let mut batches = Vec::with_capacity(rows.len().div_ceil(batch_events));
    let mut events = Vec::with_capacity(batch_events.min(rows.len()));
    for row in rows {
        events.push(row.event);
        if events.len() == batch_events {
            batches.push(Batch {
                municipality: municipality.to_string(),
                events: std::mem::take(&mut events),
            });
        }
    }
    if !events.is_empty() {
        batches.push(Batch {
            municipality: municipality.to_string(),
            events,
        });
    }
    batches
}

#[cfg(test)]
mod tests;
