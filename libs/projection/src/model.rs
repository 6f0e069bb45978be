//! The read model: a pure fold of the log into per-municipality state, with the log
//! position it reflects. Applying a position at or below the checkpoint of its
//! partition is a no-op, so redelivery after a crash does no harm.
//!
//! The fold keeps exactly what the figures read, compactly (a national decade is about
//! 20 million events): each event becomes a 16-byte [`Fact`] in a slot of its
//! municipality, slots of one service episode or one person are chained in log order,
//! and event ids are indexed for idempotency and corrections. The indexes (event ids,
//! persons, services) are hash tables of `u32` positions whose keys live once, in the
//! vectors the positions point into; service ids share one text arena. Corrections count as the
//! write side's rules say (`kpr_domain::state`): a VOIDed event as never sent, a
//! REPLACEd one as its replacement, the latest effective correction naming an event
//! winning, a voided correction having no effect. `tests/compact_fold.rs` checks the
//! snapshot taken from this fold against one taken from the write side's state.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::HashTable;

use kpr_domain::date::Date;
use kpr_domain::event::{CorrectionAction, EventId, Payload, StoredEvent, Variable};
use kpr_domain::municipality::MunicipalityCode;
use kpr_domain::person::{Pseudonym, Sex};

use crate::fact::Fact;

/// A fast hasher for keys that are already well mixed or short (event ids,
/// pseudonyms, service ids): a folded 64×64→128-bit multiply per 8 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct FoldHash;

/// The hasher [`FoldHash`] builds.
#[derive(Clone, Copy, Debug)]
pub struct FoldHasher(u64);

fn fold(x: u64) -> u64 {
    let m = u128::from(x).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    (m as u64) ^ ((m >> 64) as u64)
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = fold(self.0 ^ u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.0 = fold(self.0 ^ u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = fold(self.0 ^ u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.0 = fold(self.0 ^ u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.0 = fold(self.0 ^ i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for FoldHash {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(0x243f_6a88_85a3_08d3)
    }
}

type FastMap<K, V> = HashMap<K, V, FoldHash>;

fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    FoldHash.hash_one(value)
}

fn service_hash(system: u16, id: &str) -> u64 {
    let mut hasher = FoldHash.build_hasher();
    hasher.write_u16(system);
    hasher.write(id.as_bytes());
    hasher.finish()
}

/// No slot.
const NONE: u32 = u32::MAX >> 1;
/// The bit of [`Slot::link`] that says a correction names the slot.
const CORRECTED: u32 = 1 << 31;

/// One event of a municipality (20 bytes).
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// What it says.
    fact: Fact,
    /// Low 31 bits: the next slot of the same service or person in log order (for a
    /// correction: the slot it names), [`NONE`] at the end. Top bit: [`CORRECTED`].
    link: u32,
}

impl Slot {
    fn next(&self) -> u32 {
        self.link & !CORRECTED
    }

    fn corrected(&self) -> bool {
        self.link & CORRECTED != 0
    }

    fn set_next(&mut self, next: u32) {
        self.link = (self.link & CORRECTED) | next;
    }
}

/// One service episode.
#[derive(Clone, Debug)]
struct ServiceRec {
    /// Person of its first event.
    person: u32,
    first: u32,
    last: u32,
    /// Its service id: `service_text[text_start..text_start + text_len]`.
    text_start: u32,
    text_len: u16,
    /// Index into `systems`.
    system: u16,
}

impl ServiceRec {
    fn id<'a>(&self, text: &'a str) -> &'a str {
        let start = self.text_start as usize;
        text.get(start..start + usize::from(self.text_len))
            .unwrap_or("")
    }
}

/// One person as this municipality knows them.
#[derive(Clone, Debug)]
struct PersonRec {
    pseudonym: Pseudonym,
    birth_year: u16,
    sex: Sex,
    /// Non-service events (assessments, checks, waiting-list entries, deaths).
    first: u32,
    last: u32,
    /// Effective date of death: the first death in log order still in effect.
    death: Option<Date>,
}

/// The fold of one municipality's events.
#[derive(Clone, Debug, Default)]
pub struct Municipality {
    /// Slots by event id (`slot_ids[slot]`).
    ids: HashTable<u32>,
    slots: Vec<Slot>,
    /// The event id of each slot.
    slot_ids: Vec<EventId>,
    systems: Vec<String>,
    /// Services by (system, service id) of `service_list[i]`.
    services: HashTable<u32>,
    service_text: String,
    service_list: Vec<ServiceRec>,
    /// Persons by pseudonym of `person_list[i]`.
    persons: HashTable<u32>,
    person_list: Vec<PersonRec>,
    /// Corrections naming a slot, in log order.
    corrections_of: FastMap<u32, Vec<u32>>,
    /// Corrections naming an event not (yet) known, by its id.
    pending: HashMap<EventId, Vec<u32>>,
    scores: Vec<(Variable, u8)>,
    replacements: Vec<Fact>,
    /// Earliest and latest effective date of the events held (corrections have none).
    span: Option<(Date, Date)>,
}

/// A service episode of a municipality, for snapshots.
#[derive(Clone, Copy, Debug)]
pub struct ServiceRef<'a> {
    municipality: &'a Municipality,
    rec: &'a ServiceRec,
}

impl ServiceRef<'_> {
    /// The person of the service's first event.
    pub fn person(&self) -> Pseudonym {
        self.municipality.person_list[self.rec.person as usize].pseudonym
    }

    /// The service's effective facts in log order (voided events left out, replaced
    /// ones as their replacement), appended to `out`.
    pub fn facts_into(&self, out: &mut Vec<Fact>) {
        self.municipality.chain_facts(self.rec.first, out);
    }
}

/// A person as one municipality knows them, for snapshots.
#[derive(Clone, Copy, Debug)]
pub struct PersonRef<'a> {
    municipality: &'a Municipality,
    rec: &'a PersonRec,
}

impl PersonRef<'_> {
    /// Pseudonym.
    pub fn pseudonym(&self) -> Pseudonym {
        self.rec.pseudonym
    }

    /// Birth year and sex as the latest event about the person gave them.
    pub fn facts(&self) -> (u16, Sex) {
        (self.rec.birth_year, self.rec.sex)
    }

    /// Effective date of death recorded here.
    pub fn death(&self) -> Option<Date> {
        self.rec.death
    }

    /// The person's effective non-service facts in log order, appended to `out`.
    pub fn facts_into(&self, out: &mut Vec<Fact>) {
        self.municipality.chain_facts(self.rec.first, out);
    }

    /// The valid scores of an assessment fact.
    pub fn scores(&self, start: u32, len: u8) -> &[(Variable, u8)] {
        let start = start as usize;
        self.municipality
            .scores
            .get(start..start + usize::from(len))
            .unwrap_or(&[])
    }
}

impl Municipality {
    /// Number of events folded.
    pub fn event_count(&self) -> usize {
        self.slots.len()
    }

    /// Every service episode, in the order they were first named.
    pub fn services(&self) -> impl ExactSizeIterator<Item = ServiceRef<'_>> {
        self.service_list.iter().map(move |rec| ServiceRef {
            municipality: self,
            rec,
        })
    }

    /// Every person, in the order they were first named.
    pub fn persons(&self) -> impl Iterator<Item = PersonRef<'_>> {
        self.person_list.iter().map(move |rec| PersonRef {
            municipality: self,
            rec,
        })
    }

    /// Bytes held, approximately (for the benchmark's accounting).
    pub fn heap_bytes(&self) -> usize {
        self.heap_parts().iter().map(|(_, bytes)| bytes).sum()
    }

    /// Bytes held per table, approximately.
    pub fn heap_parts(&self) -> [(&'static str, usize); 6] {
        use std::mem::size_of;
        [
            (
                "ids",
                self.ids.allocation_size() + self.slot_ids.capacity() * size_of::<EventId>(),
            ),
            ("slots", self.slots.capacity() * size_of::<Slot>()),
            (
                "services",
                self.services.allocation_size()
                    + self.service_text.capacity()
                    + self.service_list.capacity() * size_of::<ServiceRec>(),
            ),
            (
                "persons",
                self.persons.allocation_size()
                    + self.person_list.capacity() * size_of::<PersonRec>(),
            ),
            (
                "corrections",
                self.corrections_of.capacity() * (size_of::<(u32, Vec<u32>)>() + 1)
                    + self.replacements.capacity() * size_of::<Fact>(),
            ),
            (
                "scores",
                self.scores.capacity() * size_of::<(Variable, u8)>(),
            ),
        ]
    }

    fn chain_facts(&self, mut slot: u32, out: &mut Vec<Fact>) {
        while let Some(s) = self.slots.get(slot as usize) {
            if let Some(fact) = self.effective(slot, 0) {
                out.push(fact);
            }
            slot = s.next();
        }
    }

    /// The fact a slot counts as after corrections: `None` when voided.
    fn effective(&self, slot: u32, depth: u32) -> Option<Fact> {
        let s = self.slots.get(slot as usize)?;
        if !s.corrected() {
            return Some(s.fact);
        }
        // Correction chains are bounded by the log, but guard the recursion anyway.
        if depth > 64 {
            return None;
        }
        let mut current = Some(s.fact);
        for correction in self
            .corrections_of
            .get(&slot)
            .map_or(&[][..], Vec::as_slice)
        {
            if let Some(Fact::Corrects { replacement }) = self.effective(*correction, depth + 1) {
                current = replacement.and_then(|i| self.replacements.get(i as usize).copied());
            }
        }
        current
    }

    fn fact_of(&mut self, payload: &Payload) -> Fact {
        match payload {
            Payload::WaitingListEntered { date, .. } => Fact::Waiting { date: *date },
            Payload::FunctionalAssessment { date, scores } => {
                let start = self.scores.len() as u32;
                let len = scores.len().min(usize::from(u8::MAX));
                self.scores.extend_from_slice(&scores[..len]);
                Fact::Assessed {
                    date: *date,
                    start,
                    len: len as u8,
                }
            }
            Payload::HealthCheck {
                kind,
                date,
                at_risk,
                plan_made,
            } => Fact::Checked {
                kind: *kind,
                date: *date,
                at_risk: *at_risk,
                plan_made: *plan_made,
            },
            Payload::PersonDied { date_of_death } => Fact::Died {
                date: *date_of_death,
            },
            Payload::Correction(c) => {
                let replacement = match &c.action {
                    CorrectionAction::Void => None,
                    CorrectionAction::Replace(p) => {
                        let fact = self.fact_of(p);
                        self.replacements.push(fact);
                        Some(self.replacements.len() as u32 - 1)
                    }
                };
                Fact::Corrects { replacement }
            }
            // The service payloads; `of_service_payload` knows every one of them.
            service => {
                Fact::of_service_payload(service).unwrap_or(Fact::Corrects { replacement: None })
            }
        }
    }

    fn person_index(&mut self, person: &kpr_domain::person::PersonRef) -> u32 {
        let next = self.person_list.len() as u32;
        let list = &self.person_list;
        let index = *self
            .persons
            .entry(
                hash_of(&person.pseudonym),
                |&i| list.get(i as usize).map(|r| &r.pseudonym) == Some(&person.pseudonym),
                |&i| list.get(i as usize).map_or(0, |r| hash_of(&r.pseudonym)),
            )
            .or_insert(next)
            .get();
        if index == next {
            self.person_list.push(PersonRec {
                pseudonym: person.pseudonym,
                birth_year: person.birth_year,
                sex: person.sex,
                first: NONE,
                last: NONE,
                death: None,
            });
        } else if let Some(rec) = self.person_list.get_mut(index as usize) {
            rec.birth_year = person.birth_year;
            rec.sex = person.sex;
        }
        index
    }

    fn service_index(&mut self, source_system: &str, service_id: &str, person: u32) -> u32 {
        let system = match self.systems.iter().position(|s| s == source_system) {
            Some(i) => i as u16,
            None => {
                self.systems.push(source_system.to_string());
                (self.systems.len() - 1) as u16
            }
        };
        let next = self.service_list.len() as u32;
        let (list, text) = (&self.service_list, &self.service_text);
        let index = *self
            .services
            .entry(
                service_hash(system, service_id),
                |&i| {
                    list.get(i as usize)
                        .is_some_and(|r| r.system == system && r.id(text) == service_id)
                },
                |&i| {
                    list.get(i as usize)
                        .map_or(0, |r| service_hash(r.system, r.id(text)))
                },
            )
            .or_insert(next)
            .get();
        if index == next {
            let text_start = self.service_text.len() as u32;
            self.service_text.push_str(service_id);
            self.service_list.push(ServiceRec {
                person,
                first: NONE,
                last: NONE,
                text_start,
                text_len: service_id.len().min(usize::from(u16::MAX)) as u16,
                system,
            });
        }
        index
    }

    /// Recomputes a person's effective death: the first death in log order still in
    /// effect.
    fn refold_death(&mut self, person: u32) {
        let Some(rec) = self.person_list.get(person as usize) else {
            return;
        };
        let mut slot = rec.first;
        let mut death = None;
        while let Some(s) = self.slots.get(slot as usize) {
            if matches!(s.fact, Fact::Died { .. })
                && let Some(Fact::Died { date }) = self.effective(slot, 0)
            {
                death = Some(date);
                break;
            }
            slot = s.next();
        }
        if let Some(rec) = self.person_list.get_mut(person as usize) {
            rec.death = death;
        }
    }

    /// Folds one event; false when its id was folded before.
    fn apply(&mut self, event: &StoredEvent) -> bool {
        let envelope = &event.envelope;
        let slot = self.slots.len() as u32;
        let id = envelope.event_id;
        let ids = &self.slot_ids;
        match self.ids.entry(
            hash_of(&id),
            |&s| ids.get(s as usize) == Some(&id),
            |&s| ids.get(s as usize).map_or(0, hash_of),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => return false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(slot);
            }
        }
        // Every path below pushes exactly one slot, keeping `slot_ids` parallel.
        self.slot_ids.push(id);
        if let Some(day) = event.payload.effective_date() {
            self.span = Some(
                self.span
                    .map_or((day, day), |(first, last)| (first.min(day), last.max(day))),
            );
        }
        let person = self.person_index(&envelope.person);
        let fact = self.fact_of(&event.payload);
        let mut new = Slot { fact, link: NONE };
        // Corrections that arrived before the event they name.
        if !self.pending.is_empty()
            && let Some(waiting) = self.pending.remove(&envelope.event_id)
        {
            new.link |= CORRECTED;
            self.corrections_of.insert(slot, waiting);
        }
        if let Payload::Correction(c) = &event.payload {
            let ids = &self.slot_ids;
            let target = self
                .ids
                .find(hash_of(&c.corrects), |&s| {
                    ids.get(s as usize) == Some(&c.corrects)
                })
                .copied()
                .unwrap_or(NONE);
            new.set_next(target);
            self.slots.push(new);
            match self.slots.get_mut(target as usize) {
                Some(target_slot) => {
                    target_slot.link |= CORRECTED;
                    self.corrections_of.entry(target).or_default().push(slot);
                }
                None => self.pending.entry(c.corrects).or_default().push(slot),
            }
            // A correction may move the person's death (it names the same person as
            // the event it corrects).
            self.refold_death(person);
            return true;
        }
        let chain = if fact.is_service_fact() {
            if envelope.service_id.is_empty() {
                None
            } else {
                let service =
                    self.service_index(&envelope.source_system, &envelope.service_id, person);
                self.service_list
                    .get_mut(service as usize)
                    .map(|r| (&mut r.first, &mut r.last))
            }
        } else {
            self.person_list
                .get_mut(person as usize)
                .map(|r| (&mut r.first, &mut r.last))
        };
        let mut previous = NONE;
        if let Some((first, last)) = chain {
            previous = *last;
            if *first == NONE {
                *first = slot;
            }
            *last = slot;
        }
        if let Some(p) = self.slots.get_mut(previous as usize) {
            p.set_next(slot);
        }
        self.slots.push(new);
        if matches!(fact, Fact::Died { .. }) {
            self.refold_death(person);
        }
        true
    }

    /// Gives back spare capacity (after a rebuild, when the model stops growing fast).
    fn shrink(&mut self) {
        let ids = &self.slot_ids;
        self.ids
            .shrink_to_fit(|&s| ids.get(s as usize).map_or(0, hash_of));
        self.slots.shrink_to_fit();
        self.slot_ids.shrink_to_fit();
        let (list, text) = (&self.service_list, &self.service_text);
        self.services.shrink_to_fit(|&i| {
            list.get(i as usize)
                .map_or(0, |r| service_hash(r.system, r.id(text)))
        });
        self.service_text.shrink_to_fit();
        self.service_list.shrink_to_fit();
        let persons = &self.person_list;
        self.persons
            .shrink_to_fit(|&i| persons.get(i as usize).map_or(0, |r| hash_of(&r.pseudonym)));
        self.person_list.shrink_to_fit();
        self.scores.shrink_to_fit();
        self.replacements.shrink_to_fit();
    }
}

/// The fold of a log.
#[derive(Debug, Default)]
pub struct ReadModel {
    /// Next offset to apply, per partition.
    next: BTreeMap<u32, u64>,
    municipalities: BTreeMap<MunicipalityCode, Municipality>,
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
    /// nothing but the position) when that position, or that event id in its
    /// municipality, was applied before.
    pub fn apply(&mut self, partition: u32, offset: u64, event: &StoredEvent) -> bool {
        let next = self.next.entry(partition).or_insert(0);
        if offset < *next {
            return false;
        }
        *next = offset + 1;
        self.generation += 1;
        *self.counts.entry(partition).or_insert(0) += 1;
        // Idempotent by event id as well as by position: an event the log holds twice
        // (a copy, a replay into a new topic) counts once.
        let applied = self
            .municipalities
            .entry(event.envelope.municipality)
            .or_default()
            .apply(event);
        if applied {
            self.events += 1;
        }
        applied
    }

    /// Replaces everything known of one municipality by the fold of `events` (its
    /// events in log order, as a projector node published them).
    pub fn replace_municipality<'a>(
        &mut self,
        code: MunicipalityCode,
        events: impl IntoIterator<Item = &'a StoredEvent>,
    ) {
        self.generation += 1;
        let mut state = Municipality::default();
        for event in events {
            state.apply(event);
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

    /// Earliest and latest effective date of the events held in the municipalities
    /// `keep` accepts (`None` when they hold none): what answers call "the data".
    pub fn span_where(&self, keep: impl Fn(&MunicipalityCode) -> bool) -> Option<(Date, Date)> {
        self.municipalities
            .iter()
            .filter(|(code, _)| keep(code))
            .filter_map(|(_, state)| state.span)
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    }

    /// The state of each municipality with events, in code order.
    pub fn municipalities(&self) -> impl Iterator<Item = (&MunicipalityCode, &Municipality)> {
        self.municipalities.iter()
    }

    /// Gives back the spare capacity the fold's tables grew (call after a rebuild).
    pub fn shrink(&mut self) {
        for state in self.municipalities.values_mut() {
            state.shrink();
        }
    }

    /// Approximate bytes the fold holds per table, summed over municipalities.
    pub fn heap_parts(&self) -> Vec<(&'static str, usize)> {
        let mut parts: Vec<(&'static str, usize)> = Vec::new();
        for state in self.municipalities.values() {
            for (name, bytes) in state.heap_parts() {
                match parts.iter_mut().find(|(n, _)| *n == name) {
                    Some(part) => part.1 += bytes,
                    None => parts.push((name, bytes)),
                }
            }
        }
        parts
    }

    /// Approximate bytes the fold holds (for the benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.municipalities
            .values()
            .map(Municipality::heap_bytes)
            .sum()
    }
}
