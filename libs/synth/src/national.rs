//! The national data set: every one of the 357 municipalities of 2024, each sized by
//! its real population (Statistics Norway 07459, embedded in kpr-projection), with
//! care-service recipients by age and sex at rates calibrated to the published
//! national figures of SPEC 9 (see [`crate::calibration`]).
//!
//! The model. For every municipality, sex and single year of age, a share of the
//! inhabitants is in care when the window opens (the stock, registered in its first
//! weeks), and a share enters care in each year of the window. Every person then lives
//! the life of the shared person model (`person::life`): services by age and need
//! profile, a long-term stay for many heavy elderly users, death; in addition a person
//! leaves care after some years (the need ends or they move away), which keeps the
//! number in care steady over a decade. Entry and stock shares follow from the
//! published share of each age band that gets services during a year and the mean time
//! a person stays in care: entering `D / (L + 1)` a year and `D·L / (L + 1)` in care at
//! any time give `D` during a year when a stay lasts `L` years on average.
//!
//! Streaming: [`national`] returns an iterator that plans one municipality at a time
//! (who enters care and when) and generates its persons in chunks, so memory is
//! bounded by one municipality's plan and one chunk of events, never the whole data
//! set (a decade of the whole country is about 20 million events). Within a chunk the
//! events are in effective-date order; each person's events keep their lifecycle
//! order. Same config, same batches.

use std::collections::VecDeque;

use kpr_domain::Date;
use kpr_projection::population::{AGE_TOP, Population};

use crate::ids::{EventIds, IdSlots, org_number};
use crate::person::{self, Age, Knobs, Subject, Window};
use crate::rng::{Rng, stream};
use crate::{Batch, Row, System, api_person, into_batches, push_rows, system_for};

/// Most events a national batch may hold (a gRPC append request stays well below the
/// message size limit).
pub const NATIONAL_BATCH_EVENTS_MAX: usize = 5000;

/// Persons generated together, sorted by date and cut into batches.
const CHUNK_PERSONS: usize = 4096;

/// Year whose population sizes the municipalities that exist in 2024.
const MUNICIPALITY_YEAR: i32 = 2024;

/// What national data set to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct NationalConfig {
    /// Seed of every random choice: the same config gives the same events.
    pub seed: u64,
    /// First year of history: events are dated from 1 January of this year.
    pub first_year: i32,
    /// The last day events may be dated (nothing lies in the future).
    pub today: Date,
    /// Share of every municipality's population that is modelled: 1.0 is the whole
    /// country, 0.05 five percent of it. Every municipality gets at least one person.
    pub scale: f64,
    /// Events per batch (1 to [`NATIONAL_BATCH_EVENTS_MAX`]).
    pub batch_events: usize,
}

impl NationalConfig {
    /// The whole country (scale 1.0) with a decade of history: from 1 January ten
    /// years before `today`'s year, seed 1, batches of 500 events.
    pub fn standard(today: Date) -> NationalConfig {
        NationalConfig {
            seed: 1,
            first_year: today.year() - 10,
            today,
            scale: 1.0,
            batch_events: 500,
        }
    }
}

/// The detailed age bands' published share of inhabitants with a service during a
/// year (SPEC 9, 2022): 0-17, 18-49, 50-66, 67-79, 80-89, 90+.
pub const PUBLISHED_BAND_SHARES: [f64; 6] = [0.017, 0.037, 0.047, 0.126, 0.447, 0.880];

/// Per age band, the levers of entry into and exit from care. Calibrated by running
/// the data set through the register (`calibration`): a share enters in a year, a
/// share is in care when the window opens; persons age into the next band while in
/// care, so the oldest band needs fewer direct entries than its published share.
#[derive(Clone, Copy, Debug)]
struct BandModel {
    /// Share of the band's inhabitants entering care in a year.
    entering: f64,
    /// Share of the band's inhabitants in care when the window opens.
    stock: f64,
    /// Mean years until the need ends or the person moves (unless death or a
    /// long-term stay comes first).
    leave_years: f64,
    /// Ratio of women's to men's rate in the band.
    female_ratio: f64,
}

const fn band(entering: f64, stock: f64, leave_years: f64, female_ratio: f64) -> BandModel {
    BandModel {
        entering,
        stock,
        leave_years,
        female_ratio,
    }
}

const BANDS: [BandModel; 6] = [
    band(0.0070, 0.0134, 4.0, 0.75),
    band(0.0100, 0.0320, 4.0, 1.0),
    band(0.0135, 0.0410, 3.5, 1.1),
    band(0.0340, 0.105, 3.5, 1.3),
    band(0.125, 0.360, 4.0, 1.5),
    band(0.120, 0.800, 5.0, 1.35),
];

/// The person model's levers for the national data set.
const KNOBS: Knobs = Knobs {
    profiles: [
        [60, 30, 10],
        [60, 30, 10],
        [60, 30, 10],
        [62, 28, 10],
        [50, 32, 18],
        [40, 34, 26],
    ],
    resident_at_entry: 0.8,
    long_term: [0.06, 0.30, 0.88],
    mortality: 1.0,
    resident_mortality: 0.75,
    mortality_by_age_reached: true,
    resident_need: 0.55,
    home_for_elderly: 1.0,
    assessed: 0.94,
    services_within_days: Some(730),
};

/// The 2024 municipality codes, in code order.
pub fn municipalities() -> Vec<String> {
    Population::embedded()
        .municipalities(MUNICIPALITY_YEAR)
        .map(String::from)
        .collect()
}

/// The national data set of `config` as a stream of batches, municipality by
/// municipality in code order. Each batch holds events of one municipality only.
pub fn national(config: &NationalConfig) -> National {
    let today = config.today;
    let start = Date::from_ymd(config.first_year, 1, 1)
        .unwrap_or(today)
        .min(today);
    let population = Population::embedded();
    National {
        config: NationalConfig {
            batch_events: config.batch_events.clamp(1, NATIONAL_BATCH_EVENTS_MAX),
            scale: if config.scale.is_finite() {
                config.scale.max(0.0)
            } else {
                0.0
            },
            ..config.clone()
        },
        window: Window { start, today },
        population,
        sexes: female_shares(population),
        codes: municipalities(),
        next_code: 0,
        current: None,
        queue: VecDeque::new(),
        slots: IdSlots::default(),
    }
}

/// Iterator over the national data set's batches (see [`national`]).
pub struct National {
    config: NationalConfig,
    window: Window,
    population: &'static Population,
    /// Per band, the men's and women's rate factors (their population-weighted mean
    /// is 1).
    sexes: [[f64; 2]; 6],
    codes: Vec<String>,
    next_code: usize,
    current: Option<Municipality>,
    queue: VecDeque<Batch>,
    slots: IdSlots,
}

/// The municipality being generated.
struct Municipality {
    code: String,
    system: System,
    providers: Vec<String>,
    ids: EventIds,
    subjects: Vec<Subject>,
    next: usize,
    events: u64,
    /// Extra persons generated because the planned ones gave no events.
    extra: u32,
}

impl Iterator for National {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        // Bounded: each round either yields, generates a chunk, or moves on to the
        // next municipality.
        loop {
            if let Some(batch) = self.queue.pop_front() {
                return Some(batch);
            }
            if let Some(mut m) = self.current.take() {
                if m.next < m.subjects.len() {
                    self.generate_chunk(&mut m);
                    self.current = Some(m);
                } else if m.events == 0 && m.extra < 16 {
                    // A tiny municipality whose persons gave no events: one more.
                    m.extra += 1;
                    m.subjects.push(fallback_subject(&self.window, m.extra));
                    self.current = Some(m);
                }
                continue;
            }
            let code = self.codes.get(self.next_code)?.clone();
            self.next_code += 1;
            self.current = Some(self.plan(code));
        }
    }
}

impl National {
    /// Who in municipality `code` enters care, and when.
    fn plan(&self, code: String) -> Municipality {
        let number = code.parse::<u64>().unwrap_or(0);
        let seed = self.config.seed;
        let mut r = Rng::derive(seed, stream::NATIONAL_PLAN, number);
        let window = self.window;
        let mut subjects = Vec::new();
        let last_year = window.today.year();
        for year in window.start.year()..=last_year {
            // The denominators of year Y are the population on 1 January Y+1 (SPEC 2).
            let Some(counts) = self
                .population
                .nearest_year(year + 1)
                .and_then(|y| self.population.by_sex_and_age(y, &code))
            else {
                continue;
            };
            let Some(first) = Date::from_ymd(year, 1, 1) else {
                continue;
            };
            let first = first.max(window.start);
            let last = Date::from_ymd(year, 12, 31)
                .unwrap_or(window.today)
                .min(window.today.add_days(-10));
            if last < first {
                continue;
            }
            let year_share = f64::from(first.days_until(last) + 1) / 365.0;
            for (sex, by_age) in counts.iter().enumerate() {
                for (age, inhabitants) in by_age.iter().enumerate().take(AGE_TOP + 1) {
                    let age = age as i32;
                    if age == 0 {
                        continue;
                    }
                    let band = Age::of_years(age);
                    let model = BANDS[band.index()];
                    let factor = self.sexes[band.index()][sex];
                    let inhabitants = f64::from(*inhabitants) * self.config.scale * factor;
                    let female = sex == 1;
                    if year == window.start.year() {
                        let stock = inhabitants * model.stock;
                        for _ in 0..draw_count(&mut r, stock) {
                            let entry = window.start.add_days(r.between(0, 60)).min(last);
                            subjects.push(subject(
                                &mut r,
                                &window,
                                band,
                                year - age,
                                female,
                                entry,
                            ));
                        }
                    }
                    for _ in 0..draw_count(&mut r, inhabitants * model.entering * year_share) {
                        let entry = day_between(&mut r, first, last);
                        subjects.push(subject(&mut r, &window, band, year - age, female, entry));
                    }
                }
            }
        }
        if subjects.is_empty() {
            subjects.push(fallback_subject(&window, 0));
        }
        let mut m_rng = Rng::derive(seed, stream::NATIONAL_MUNICIPALITY, number);
        Municipality {
            system: system_for(&code),
            providers: (0..3).map(|_| org_number(&mut m_rng)).collect(),
            ids: EventIds::new(m_rng.next_u64()),
            code,
            subjects,
            next: 0,
            events: 0,
            extra: 0,
        }
    }

    /// Generates the next chunk of persons of `m` into the queue.
    fn generate_chunk(&mut self, m: &mut Municipality) {
        let number = m.code.parse::<u64>().unwrap_or(0);
        let end = (m.next + CHUNK_PERSONS).min(m.subjects.len());
        let mut rows: Vec<Row> = Vec::new();
        for index in m.next..end {
            let mut subject = m.subjects[index];
            let Some((birth, national_id)) = self.slots.allocate(subject.birth, subject.female)
            else {
                continue;
            };
            subject.birth = birth;
            subject.entry = subject.entry.max(birth.add_days(30));
            if subject.entry > self.window.today {
                continue;
            }
            let index = index as u32;
            let prefix = format!("{}-{index:06}-", m.system.prefix);
            let r = Rng::derive(
                self.config.seed,
                stream::NATIONAL_PERSON,
                (number << 32) | u64::from(index),
            );
            let history = person::life(
                r,
                &subject,
                &KNOBS,
                &self.window,
                &prefix,
                &m.providers,
                &mut m.ids,
            );
            let person = api_person(national_id, &history, m.system);
            push_rows(&mut rows, history, index, &m.code, m.system, &person);
        }
        m.next = end;
        m.events += rows.len() as u64;
        self.queue
            .extend(into_batches(rows, &m.code, self.config.batch_events));
    }
}

/// A person planned for entry into care: born in `birth_year` (a random day), of age
/// group `band` at entry, leaving care after an exponentially distributed time.
fn subject(
    r: &mut Rng,
    window: &Window,
    band: Age,
    birth_year: i32,
    female: bool,
    entry: Date,
) -> Subject {
    let birth = Date::from_ymd(birth_year, 1, 1)
        .unwrap_or(entry)
        .add_days(r.between(0, 364));
    let birth = if birth.year() == birth_year {
        birth
    } else {
        birth.add_days(-1)
    };
    // Leaving care: a monthly chance, so the time is about exponential with the
    // band's mean.
    let monthly = 1.0 / (12.0 * BANDS[band.index()].leave_years);
    let mut leave = None;
    let mut day = entry.add_days(30);
    while day < window.today {
        if r.chance(monthly) {
            leave = Some(
                day.add_days(r.between(0, 29))
                    .min(window.today.add_days(-1)),
            );
            break;
        }
        day = day.add_days(30);
    }
    let leave_reason = if r.chance(0.15) {
        kpr_wire::pb::EndReason::MovedOut
    } else {
        kpr_wire::pb::EndReason::NoLongerNeeded
    } as i32;
    Subject {
        age: band,
        birth,
        female,
        entry,
        leave,
        leave_reason,
    }
}

/// An 85-year-old woman in care from the first days of the window, for a municipality
/// whose planned persons gave no events.
fn fallback_subject(window: &Window, attempt: u32) -> Subject {
    let entry = window
        .start
        .add_days(attempt as i32)
        .min(window.today.add_days(-10).max(window.start));
    let birth = Date::from_ymd(entry.year() - 85, 3, 1)
        .unwrap_or(entry)
        .add_days(attempt as i32);
    Subject {
        age: Age::Old80,
        birth,
        female: true,
        entry,
        leave: None,
        leave_reason: 0,
    }
}

/// `expected` rounded to a whole number of persons at random (the fraction is the
/// chance of one more), so small municipalities get persons at the right rate.
fn draw_count(r: &mut Rng, expected: f64) -> u32 {
    if expected.is_nan() || expected <= 0.0 {
        return 0;
    }
    let whole = expected.floor();
    whole as u32 + u32::from(r.chance(expected - whole))
}

/// A uniformly drawn day in `lo..=hi`.
fn day_between(r: &mut Rng, lo: Date, hi: Date) -> Date {
    lo.add_days(r.between(0, lo.days_until(hi)))
}

/// Per band, the factors on men's and women's rates: their ratio is the band's
/// `female_ratio` and their mean over the nation's population of the band is 1.
fn female_shares(population: &Population) -> [[f64; 2]; 6] {
    let mut inhabitants = [[0f64; 2]; 6];
    for code in population.municipalities(MUNICIPALITY_YEAR) {
        let Some(counts) = population.by_sex_and_age(MUNICIPALITY_YEAR, code) else {
            continue;
        };
        for (sex, by_age) in counts.iter().enumerate() {
            for (age, n) in by_age.iter().enumerate() {
                inhabitants[Age::of_years(age as i32).index()][sex] += f64::from(*n);
            }
        }
    }
    let mut out = [[1.0; 2]; 6];
    for (band, [men, women]) in inhabitants.iter().enumerate() {
        let ratio = BANDS[band].female_ratio;
        let total = men + women;
        if total > 0.0 {
            let male = total / (men + ratio * women);
            out[band] = [male, male * ratio];
        }
    }
    out
}
