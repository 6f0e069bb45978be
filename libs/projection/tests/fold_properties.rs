//! Properties of the read model over a realistic synthetic population (kpr-synth):
//! folding in chunks or in another partition interleaving equals folding whole,
//! re-applying a position is a no-op, and municipality figures add up to county and
//! national figures.

// Test code: a failed step must panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kpr_domain::date::Date;
use kpr_domain::event::StoredEvent;
use kpr_domain::person::Pseudonym;
use kpr_domain::validate::{Rules, validate};
use kpr_projection::figures::{Figure, Query, compute};
use kpr_projection::model::ReadModel;
use kpr_projection::population::{Population, Region};
use kpr_projection::table::Table;

const PARTITIONS: u32 = 4;

/// The demo population as stored events with their positions, in log order per partition.
fn log(persons: u32) -> (Vec<(u32, u64, StoredEvent)>, Date) {
    log_seeded(persons, 1)
}

/// The population of `seed` (a different random population per seed).
fn log_seeded(persons: u32, seed: u64) -> (Vec<(u32, u64, StoredEvent)>, Date) {
    let today = Date::from_ymd(2025, 6, 30).unwrap();
    let mut config = kpr_synth::DemoConfig::standard(today);
    config.persons = persons;
    config.seed = seed;
    let rules = Rules {
        today,
        allow_synthetic_ids: true,
    };
    let mut next = vec![0u64; PARTITIONS as usize];
    let mut out = Vec::new();
    for batch in kpr_synth::generate(&config) {
        for raw in batch.events {
            let submitted = kpr_wire::decode_submitted(&raw).unwrap();
            let resolved = validate(&submitted, &rules).unwrap();
            let mut pseudonym = [0u8; 32];
            pseudonym[..11].copy_from_slice(submitted.person.national_id.as_bytes());
            let event: StoredEvent = submitted.into_stored(resolved, Pseudonym(pseudonym));
            let partition =
                kpr_eventlog::partition_for(resolved.municipality.as_str().as_bytes(), PARTITIONS);
            let offset = next[partition as usize];
            next[partition as usize] += 1;
            out.push((partition, offset, event));
        }
    }
    (out, today)
}

fn tables(model: &ReadModel, region: Region, year: i32) -> Vec<Table> {
    Figure::ALL
        .iter()
        .map(|f| {
            let mut t = compute(
                model,
                Population::embedded(),
                &Query::for_year(*f, region.clone(), year).unwrap(),
            );
            t.meta.log_position.clear();
            t
        })
        .collect()
}

#[test]
fn chunked_interleaved_and_repeated_folds_agree() {
    // Several random populations (each with corrections, deaths, pauses...), and chunk
    // sizes that fall anywhere in a batch.
    for (seed, chunk) in [(1, 37), (11, 1), (23, 500), (97, 13)] {
        chunked_equals_whole(seed, chunk);
    }
}

fn chunked_equals_whole(seed: u64, chunk_size: usize) {
    let (log, today) = log_seeded(300, seed);
    let mut whole = ReadModel::new();
    for (p, o, e) in &log {
        assert!(whole.apply(*p, *o, e));
    }
    // Partition by partition (another interleaving), with every chunk delivered twice.
    let mut chunked = ReadModel::new();
    for partition in 0..PARTITIONS {
        let mine: Vec<_> = log.iter().filter(|(p, _, _)| *p == partition).collect();
        for chunk in mine.chunks(chunk_size) {
            for (p, o, e) in chunk {
                chunked.apply(*p, *o, e);
            }
            for (p, o, e) in chunk {
                assert!(!chunked.apply(*p, *o, e), "a position was applied twice");
            }
        }
    }
    assert_eq!(whole.event_count(), chunked.event_count());
    assert_eq!(whole.position(), chunked.position());
    let year = today.year() - 1;
    for region in [
        Region::Nation,
        Region::County("03".into()),
        Region::Municipality("4601".into()),
    ] {
        assert_eq!(
            tables(&whole, region.clone(), year),
            tables(&chunked, region, year)
        );
    }
}

#[test]
fn municipalities_add_up_to_counties_and_the_nation() {
    let (log, today) = log(600);
    let mut model = ReadModel::new();
    for (p, o, e) in &log {
        model.apply(*p, *o, e);
    }
    let year = today.year() - 1;
    let municipalities: Vec<String> = model.municipalities().map(|(c, _)| c.to_string()).collect();
    assert!(municipalities.len() >= 5);
    // Synthetic persons never move, so person counts add up exactly.
    for figure in [Figure::T1, Figure::T2, Figure::T4] {
        let national = compute(
            &model,
            Population::embedded(),
            &Query::for_year(figure, Region::Nation, year).unwrap(),
        );
        let mut sum = vec![0.0; national.values.len()];
        for m in &municipalities {
            let t = compute(
                &model,
                Population::embedded(),
                &Query::for_year(figure, Region::Municipality(m.clone()), year).unwrap(),
            );
            for (s, v) in sum.iter_mut().zip(&t.values) {
                *s += v.unwrap_or(0.0);
            }
        }
        let national: Vec<f64> = national.values.iter().map(|v| v.unwrap_or(0.0)).collect();
        assert_eq!(sum, national, "{figure:?}");
        assert!(national.iter().sum::<f64>() > 0.0, "{figure:?} is empty");
    }
    let county = compute(
        &model,
        Population::embedded(),
        &Query::for_year(Figure::T2, Region::County("15".into()), year).unwrap(),
    );
    let one = compute(
        &model,
        Population::embedded(),
        &Query::for_year(Figure::T2, Region::Municipality("1508".into()), year).unwrap(),
    );
    assert_eq!(
        county.values, one.values,
        "1508 is the only demo municipality in county 15"
    );
}

#[test]
fn every_figure_has_consistent_shape_and_values() {
    let (log, today) = log(600);
    let mut model = ReadModel::new();
    for (p, o, e) in &log {
        model.apply(*p, *o, e);
    }
    for table in tables(&model, Region::Nation, today.year() - 1) {
        let size: usize = table.sizes().iter().product();
        assert_eq!(table.values.len(), size, "{}", table.figure);
        assert_eq!(
            table.measures.len(),
            table.dimensions.last().unwrap().categories.len(),
            "{}",
            table.figure
        );
        for (i, v) in table.values.iter().enumerate() {
            if let Some(v) = v {
                assert!(
                    v.is_finite() && *v >= 0.0,
                    "{} cell {i} = {v}",
                    table.figure
                );
            }
        }
        assert!(
            table.values.iter().any(|v| v.is_some_and(|v| v > 0.0)),
            "{} has no data",
            table.figure
        );
    }
}
