//! The read model: a pure fold of the log into per-municipality state, with the log
//! position it reflects. Applying a position at or below the checkpoint of its
//! partition is a no-op, so redelivery after a crash does no harm.
//!
//! The state per municipality is the same fold the write side keeps
//! (`kpr_domain::state::MunicipalityState`), so corrections count exactly as the rules
//! that accepted them say: a VOIDed event as never sent, a REPLACEd one as its
//! replacement, the latest effective correction winning.

use std::collections::BTreeMap;

use kpr_domain::event::StoredEvent;
use kpr_domain::municipality::MunicipalityCode;
use kpr_domain::state::{MunicipalityState, ServiceKey};

/// The fold of a log.
#[derive(Debug, Default)]
pub struct ReadModel {
    /// Next offset to apply, per partition.
    next: BTreeMap<u32, u64>,
    municipalities: BTreeMap<MunicipalityCode, MunicipalityState<()>>,
    events: u64,
    /// Bumped by every change; caches of derived data key on it.
    generation: u64,
    /// Records folded per partition: the position answers state. It is the same for
    /// the same events on any backend (Kafka offsets have gaps, sled's do not).
    counts: BTreeMap<u32, u64>,
}

impl ReadModel {
    /// An empty model.
    pub fn new() -> ReadModel {
        ReadModel::default()
    }

    /// Applies the event stored at `partition`/`offset`. Returns false (and changes
    /// nothing) when that position was applied before.
    pub fn apply(&mut self, partition: u32, offset: u64, event: &StoredEvent) -> bool {
        let next = self.next.entry(partition).or_insert(0);
        if offset < *next {
            return false;
        }
        *next = offset + 1;
        self.generation += 1;
        *self.counts.entry(partition).or_insert(0) += 1;
        let envelope = &event.envelope;
        let state = self
            .municipalities
            .entry(envelope.municipality)
            .or_default();
        // Idempotent by event id as well as by position: an event the log holds twice
        // (a copy, a replay into a new topic) counts once.
        if state.event(&envelope.event_id).is_some() {
            return false;
        }
        let service = (!envelope.service_id.is_empty()).then(|| ServiceKey {
            source_system: envelope.source_system.clone(),
            service_id: envelope.service_id.clone(),
        });
        // The undo record is for batch validation on the write side; a fold keeps
        // everything it applies.
        let _undo = state.apply(
            envelope.event_id,
            envelope.person,
            service,
            event.payload.clone(),
            (),
        );
        self.events += 1;
        true
    }

    /// Replaces everything known of one municipality by the fold of `events` (its
    /// events in log order, as a projector node published them).
    pub fn replace_municipality<'a>(
        &mut self,
        code: MunicipalityCode,
        events: impl IntoIterator<Item = &'a StoredEvent>,
    ) {
        self.generation += 1;
        let mut state = MunicipalityState::default();
        for event in events {
            let envelope = &event.envelope;
            if state.event(&envelope.event_id).is_some() {
                continue;
            }
            let service = (!envelope.service_id.is_empty()).then(|| ServiceKey {
                source_system: envelope.source_system.clone(),
                service_id: envelope.service_id.clone(),
            });
            let _undo = state.apply(
                envelope.event_id,
                envelope.person,
                service,
                event.payload.clone(),
                (),
            );
        }
        let added = state.event_count() as u64;
        let removed = self
            .municipalities
            .insert(code, state)
            .map_or(0, |old| old.event_count() as u64);
        self.events = self.events + added - removed.min(self.events + added);
    }

    /// The position answers reflect: records folded per partition (backend-neutral).
    pub fn reflected(&self) -> Vec<(u32, u64)> {
        self.counts.iter().map(|(p, n)| (*p, *n)).collect()
    }

    /// Moves the reflected record counts forward to at least `counts` (statistics
    /// nodes, from what projector nodes publish).
    pub fn advance_counts_to(&mut self, counts: &[(u32, u64)]) {
        self.generation += 1;
        for (partition, n) in counts {
            let entry = self.counts.entry(*partition).or_insert(0);
            *entry = (*entry).max(*n);
        }
    }

    /// A number that changes whenever the model changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Moves the reflected position forward to at least `position`.
    pub fn advance_to(&mut self, position: &[(u32, u64)]) {
        self.generation += 1;
        for (partition, next) in position {
            let entry = self.next.entry(*partition).or_insert(0);
            *entry = (*entry).max(*next);
        }
    }

    /// The log position reflected: next offset per partition that has records.
    pub fn position(&self) -> Vec<(u32, u64)> {
        self.next.iter().map(|(p, o)| (*p, *o)).collect()
    }

    /// Events applied.
    pub fn event_count(&self) -> u64 {
        self.events
    }

    /// The state of each municipality with events, in code order.
    pub fn municipalities(
        &self,
    ) -> impl Iterator<Item = (&MunicipalityCode, &MunicipalityState<()>)> {
        self.municipalities.iter()
    }
}
