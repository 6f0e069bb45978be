//! One person's history: who they are, which services they get and when, what is
//! assessed and checked, whether they die, and the odd correction. The result is a
//! list of drafts (payload, effective day, ordering phase) in an order that passes the
//! register's lifecycle rules.
//!
//! The model in brief. Every person enters care on an entry day in the window. Age
//! group and a need profile (light, medium, heavy) choose the services; a latent need
//! level (0-1, growing with time) drives hours and assessment scores. Heavy and some
//! medium elderly users move to a long-term stay (code 21) after a waiting-list entry,
//! which ends their home services. Hospital stays, short-term stays and travel pause
//! the home services that run across them. Mortality depends on age, profile and
//! residence; a death ends every running service (reason DIED) and is the person's
//! last event. Everything after `min(death, today)` is cut away.

use kpr_domain::Date;
use kpr_wire::pb;
use pb::payload::Kind;

use crate::ids::EventIds;
use crate::rng::{Rng, stream};

/// The period events may fall in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// First day (1 January of the first year).
    pub(crate) start: Date,
    /// Last day: nothing is dated after it.
    pub(crate) today: Date,
}

/// One event before its envelope is added.
#[derive(Clone, Debug)]
pub(crate) struct Draft {
    /// Effective day (for a correction: the day it is recorded).
    pub(crate) day: Date,
    /// Order within a day (see [`phase`]).
    pub(crate) phase: u8,
    /// Order of creation within the person.
    pub(crate) seq: u32,
    /// Second of the day of `recorded_at`.
    pub(crate) second: u32,
    /// Service episode, empty for non-service events.
    pub(crate) service_id: String,
    /// Event id.
    pub(crate) event_id: String,
    /// Payload.
    pub(crate) kind: Kind,
}

/// A generated person.
#[derive(Debug)]
pub(crate) struct History {
    /// Date of birth.
    pub(crate) birth: Date,
    /// Female (else male).
    pub(crate) female: bool,
    /// Events in log order.
    pub(crate) drafts: Vec<Draft>,
}

/// Order of events within one day, so that a service's lifecycle holds when the
/// events of a day are sorted by phase.
pub(crate) mod phase {
    pub(crate) const APPLIED: u8 = 0;
    pub(crate) const DECIDED: u8 = 1;
    pub(crate) const WAITING: u8 = 2;
    pub(crate) const STARTED: u8 = 3;
    pub(crate) const HOURS: u8 = 4;
    pub(crate) const PAUSED: u8 = 5;
    pub(crate) const RESUMED: u8 = 6;
    pub(crate) const ENDED: u8 = 7;
    pub(crate) const OBSERVED: u8 = 8;
    pub(crate) const CORRECTION: u8 = 9;
    pub(crate) const DIED: u8 = 10;
}

/// Age group at entry into care (the detailed bands of SPEC 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Age {
    Child,
    Young,
    Mid,
    Old67,
    Old80,
    Old90,
}

impl Age {
    /// The group of a person `years` old.
    pub(crate) fn of_years(years: i32) -> Age {
        match years {
            ..=17 => Age::Child,
            18..=49 => Age::Young,
            50..=66 => Age::Mid,
            67..=79 => Age::Old67,
            80..=89 => Age::Old80,
            _ => Age::Old90,
        }
    }

    /// Position in the band order (0-17 first).
    pub(crate) fn index(self) -> usize {
        match self {
            Age::Child => 0,
            Age::Young => 1,
            Age::Mid => 2,
            Age::Old67 => 3,
            Age::Old80 => 4,
            Age::Old90 => 5,
        }
    }

    fn elderly(self) -> bool {
        matches!(self, Age::Old67 | Age::Old80 | Age::Old90)
    }
}

/// Who enters care and when, as the caller chose it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subject {
    /// Age group at entry.
    pub(crate) age: Age,
    /// Date of birth.
    pub(crate) birth: Date,
    /// Female (else male).
    pub(crate) female: bool,
    /// First day in care (in the window, after the birth).
    pub(crate) entry: Date,
    /// The day the need ends or the person moves away, if before `today`: every
    /// running service ends then with `leave_reason`, and nothing follows. Ignored
    /// when a long-term stay begins on or before it (residents stay until death).
    pub(crate) leave: Option<Date>,
    /// End reason of the services running at `leave`.
    pub(crate) leave_reason: i32,
}

/// Levers of the person model. [`Knobs::DEMO`] is the demo population's setting; the
/// national generator calibrates its own.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Knobs {
    /// Weights of the light, medium and heavy need profiles per age group.
    pub(crate) profiles: [[u32; 3]; 6],
    /// Chance that an elderly heavy user in care at the start of the window already
    /// lives in a long-term stay.
    pub(crate) resident_at_entry: f64,
    /// Chance of a later long-term stay for elderly light, medium and heavy users.
    pub(crate) long_term: [f64; 3],
    /// Factor on the yearly mortality.
    pub(crate) mortality: f64,
    /// Factor on the yearly mortality of long-term residents.
    pub(crate) resident_mortality: f64,
    /// Mortality follows the age reached (else the age group at entry).
    pub(crate) mortality_by_age_reached: bool,
    /// Least latent need of a long-term resident (plus a fifth of the initial need).
    pub(crate) resident_need: f64,
    /// Chance that a user of more than presence-only services is assessed.
    pub(crate) assessed: f64,
    /// Chance that an elderly user whose services include no home service gets home
    /// nursing too (0 draws nothing).
    pub(crate) home_for_elderly: f64,
    /// Home services are applied for within this many days of entry (else at any
    /// time until `today`).
    pub(crate) services_within_days: Option<i32>,
}

impl Knobs {
    /// The demo population's levers.
    pub(crate) const DEMO: Knobs = Knobs {
        profiles: [
            [50, 37, 13],
            [50, 37, 13],
            [50, 37, 13],
            [60, 30, 10],
            [48, 34, 18],
            [36, 36, 28],
        ],
        resident_at_entry: 0.5,
        long_term: [0.03, 0.15, 0.75],
        mortality: 1.0,
        resident_mortality: 1.0,
        mortality_by_age_reached: false,
        resident_need: 0.72,
        home_for_elderly: 0.0,
        assessed: 0.97,
        services_within_days: None,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    Light,
    Medium,
    Heavy,
}

/// Codes measured in hours per week (SPEC 3).
fn hourly(code: u8) -> bool {
    matches!(code, 1 | 2 | 3 | 4 | 7 | 9 | 11 | 15 | 17 | 22)
}

/// Codes that are stays in an institution or handled apart from home services.
fn special(code: u8) -> bool {
    matches!(code, 8 | 18 | 19 | 20 | 21 | 25)
}

/// Services paused while the person is away (hospital, short-term stay, travel).
fn pausable(code: u8) -> bool {
    matches!(code, 1 | 3 | 4 | 5 | 15 | 17 | 22)
}

/// Probability that a person of this kind has each service at some point.
fn service_table(age: Age, profile: Profile) -> &'static [(u8, f64)] {
    use Profile::{Heavy, Light, Medium};
    match (age, profile) {
        (Age::Child, Light) => &[(11, 0.35), (7, 0.20), (9, 0.40), (2, 0.10), (8, 0.20)],
        (Age::Child, Medium) => &[
            (11, 0.50),
            (7, 0.35),
            (8, 0.40),
            (9, 0.30),
            (2, 0.08),
            (15, 0.08),
            (4, 0.04),
        ],
        (Age::Child, Heavy) => &[
            (11, 0.50),
            (7, 0.35),
            (8, 0.45),
            (3, 0.25),
            (15, 0.20),
            (14, 0.06),
            (9, 0.20),
        ],
        (Age::Young | Age::Mid, Light) => &[
            (15, 0.50),
            (1, 0.25),
            (9, 0.25),
            (29, 0.12),
            (2, 0.20),
            (6, 0.06),
            (4, 0.05),
            (28, 0.02),
            (19, 0.04),
            (5, 0.03),
        ],
        (Age::Young | Age::Mid, Medium) => &[
            (15, 0.60),
            (1, 0.35),
            (9, 0.28),
            (29, 0.30),
            (2, 0.25),
            (4, 0.12),
            (11, 0.06),
            (7, 0.04),
            (6, 0.08),
            (19, 0.08),
            (18, 0.04),
            (25, 0.03),
            (14, 0.02),
            (22, 0.01),
            (17, 0.01),
            (26, 0.01),
            (20, 0.02),
        ],
        (Age::Young | Age::Mid, Heavy) => &[
            (15, 0.55),
            (3, 0.30),
            (1, 0.35),
            (29, 0.35),
            (9, 0.15),
            (11, 0.15),
            (7, 0.06),
            (14, 0.05),
            (23, 0.03),
            (22, 0.03),
            (19, 0.08),
            (4, 0.10),
            (17, 0.02),
            (6, 0.06),
        ],
        (_, Light) => &[
            (6, 0.45),
            (1, 0.38),
            (15, 0.55),
            (5, 0.10),
            (27, 0.06),
            (28, 0.04),
            (4, 0.03),
            (2, 0.06),
            (29, 0.04),
            (19, 0.08),
            (9, 0.03),
            (25, 0.02),
            (18, 0.06),
        ],
        (_, Medium) => &[
            (15, 0.95),
            (1, 0.50),
            (6, 0.45),
            (5, 0.18),
            (4, 0.15),
            (18, 0.30),
            (19, 0.14),
            (20, 0.06),
            (8, 0.05),
            (29, 0.14),
            (17, 0.03),
            (22, 0.01),
            (25, 0.07),
            (26, 0.02),
            (27, 0.14),
            (28, 0.06),
            (2, 0.08),
            (11, 0.03),
            (7, 0.02),
            (9, 0.03),
        ],
        (_, Heavy) => &[
            (15, 0.92),
            (1, 0.40),
            (6, 0.35),
            (5, 0.12),
            (4, 0.15),
            (18, 0.35),
            (19, 0.10),
            (20, 0.10),
            (8, 0.07),
            (29, 0.10),
            (17, 0.05),
            (22, 0.03),
            (25, 0.08),
            (26, 0.05),
            (27, 0.10),
            (28, 0.08),
            (24, 0.04),
            (11, 0.04),
            (7, 0.03),
        ],
    }
}

/// Yearly probability of death.
fn annual_mortality(age: Age, profile: Profile, resident: bool) -> f64 {
    if resident {
        return match age {
            Age::Old90 => 0.40,
            Age::Old80 => 0.30,
            Age::Old67 => 0.22,
            _ => 0.10,
        };
    }
    let base = match age {
        Age::Child => 0.002,
        Age::Young => 0.004,
        Age::Mid => 0.01,
        Age::Old67 => 0.03,
        Age::Old80 => 0.06,
        Age::Old90 => 0.12,
    };
    base * match profile {
        Profile::Light => 0.8,
        Profile::Medium => 1.5,
        Profile::Heavy => 3.0,
    }
}

/// A uniformly drawn day in `lo..=hi` (`lo` when the range is empty).
fn day_between(r: &mut Rng, lo: Date, hi: Date) -> Date {
    lo.add_days(r.between(0, lo.days_until(hi)))
}

/// Hours in half-hour steps in `lo..=hi`.
fn half_hours(r: &mut Rng, lo: f64, hi: f64) -> f64 {
    f64::from(r.between((lo * 2.0) as i32, (hi * 2.0) as i32)) / 2.0
}

/// A service episode as planned, before cutting at the horizon.
#[derive(Clone, Debug)]
struct Episode {
    code: u8,
    respite_kind: i32,
    applied: Option<Date>,
    decided: Date,
    refused: bool,
    valid_from: Date,
    valid_to: Option<Date>,
    hours: f64,
    monthly: bool,
    provider: String,
    start: Option<Date>,
    /// Renewal decisions: decision date, valid_from, valid_to.
    renewals: Vec<(Date, Date, Date)>,
    hours_changes: Vec<(Date, f64)>,
    /// Pause day, resume day, reason.
    pauses: Vec<(Date, Option<Date>, i32)>,
    end: Option<(Date, i32)>,
}

impl Episode {
    fn new(code: u8, decided: Date) -> Episode {
        Episode {
            code,
            respite_kind: 0,
            applied: None,
            decided,
            refused: false,
            valid_from: decided,
            valid_to: None,
            hours: 0.0,
            monthly: false,
            provider: String::new(),
            start: Some(decided),
            renewals: Vec::new(),
            hours_changes: Vec::new(),
            pauses: Vec::new(),
            end: None,
        }
    }

    /// Whether the episode has started before `day` and has not ended by then.
    fn runs_at(&self, day: Date) -> bool {
        !self.refused
            && self.start.is_some_and(|s| s < day)
            && self.end.is_none_or(|(e, _)| e > day)
    }
}

/// A period away from home: a hospital stay, a short-term stay or travel.
#[derive(Clone, Copy, Debug)]
struct Away {
    from: Date,
    to: Date,
    pause_reason: i32,
    /// Service code of the stay, when the municipality provides it.
    stay: Option<u8>,
    end_reason: i32,
}

fn overlaps(away: &[Away], from: Date, to: Date) -> bool {
    away.iter()
        .any(|a| from <= a.to.add_days(3) && a.from <= to.add_days(3))
}

/// Where a long-term stay begins.
#[derive(Clone, Copy, Debug)]
struct LongTerm {
    applied: Option<Date>,
    waiting: Date,
    decided: Date,
    start: Date,
}

/// Builds the drafts of one person.
struct Builder<'a> {
    r: Rng,
    window: Window,
    horizon: Date,
    death: Option<Date>,
    /// Leaving care (day, end reason of the services then running).
    leave: Option<(Date, i32)>,
    service_prefix: &'a str,
    next_service: u32,
    ids: &'a mut EventIds,
    drafts: Vec<Draft>,
}

impl Builder<'_> {
    fn push(&mut self, day: Date, phase: u8, service_id: &str, kind: Kind) -> bool {
        if day > self.horizon || day < self.window.start {
            return false;
        }
        let second = 6 * 3600 + u32::from(phase) * 2400 + self.r.below(2400);
        self.drafts.push(Draft {
            day,
            phase,
            seq: self.drafts.len() as u32,
            second,
            service_id: service_id.to_string(),
            event_id: self.ids.next_id(),
            kind,
        });
        true
    }

    fn new_service_id(&mut self) -> String {
        self.next_service += 1;
        format!("{}{:02}", self.service_prefix, self.next_service)
    }

    fn decision(
        ep: &Episode,
        decided: Date,
        valid_from: Date,
        valid_to: Option<Date>,
        hours: f64,
    ) -> Kind {
        let granted = !ep.refused;
        let hours = (granted && hourly(ep.code)).then_some({
            if ep.monthly {
                pb::service_decided::Hours::HoursPerMonth(hours * 4.0)
            } else {
                pb::service_decided::Hours::HoursPerWeek(hours)
            }
        });
        Kind::ServiceDecided(pb::ServiceDecided {
            code: ep.code.to_string(),
            respite_kind: ep.respite_kind,
            outcome: if granted {
                pb::DecisionOutcome::Granted as i32
            } else {
                pb::DecisionOutcome::Refused as i32
            },
            decision_date: decided.to_string(),
            valid_from: valid_from.to_string(),
            valid_to: valid_to.map(|d| d.to_string()).unwrap_or_default(),
            hours,
            provider_org_number: if granted {
                ep.provider.clone()
            } else {
                String::new()
            },
        })
    }

    /// Emits an episode, cut at the horizon; a service still running at a death ends
    /// on the death day with reason DIED.
    fn emit(&mut self, ep: &Episode) {
        let h = self.horizon;
        let first = ep.applied.unwrap_or(ep.decided);
        if first > h {
            return;
        }
        let sid = self.new_service_id();
        if let Some(applied) = ep.applied {
            self.push(
                applied,
                phase::APPLIED,
                &sid,
                Kind::ServiceApplied(pb::ServiceApplied {
                    code: ep.code.to_string(),
                    application_date: applied.to_string(),
                }),
            );
        }
        let decision = Builder::decision(ep, ep.decided, ep.valid_from, ep.valid_to, ep.hours);
        if !self.push(ep.decided, phase::DECIDED, &sid, decision) || ep.refused {
            return;
        }
        let Some(start) = ep.start.filter(|s| *s <= h) else {
            return;
        };
        let start = start.max(ep.decided);
        let end = ep
            .end
            .filter(|(d, _)| *d <= h)
            .map(|(d, reason)| (d.max(start), reason));
        let before_end = |d: Date| end.is_none_or(|(e, _)| d < e);

        // Renewals (a new decision for the same episode), with the hours then in force.
        for (decided, from, to) in &ep.renewals {
            if *decided > start && before_end(*decided) {
                let hours = ep
                    .hours_changes
                    .iter()
                    .filter(|(d, _)| d <= decided)
                    .map(|(_, x)| *x)
                    .next_back()
                    .unwrap_or(ep.hours);
                let kind = Builder::decision(ep, *decided, *from, Some(*to), hours);
                self.push(*decided, phase::DECIDED, &sid, kind);
            }
        }
        self.push(
            start,
            phase::STARTED,
            &sid,
            Kind::ServiceStarted(pb::ServiceStarted {
                start_date: start.to_string(),
            }),
        );
        if hourly(ep.code) {
            for (day, hours) in &ep.hours_changes {
                if *day > start && before_end(*day) {
                    let kind = Kind::ServiceHoursChanged(pb::ServiceHoursChanged {
                        effective_date: day.to_string(),
                        hours: Some(pb::service_hours_changed::Hours::HoursPerWeek(*hours)),
                    });
                    self.push(*day, phase::HOURS, &sid, kind);
                }
            }
        }
        let mut last = start;
        for (pause, resume, reason) in &ep.pauses {
            if *pause <= last || !before_end(*pause) || *pause > h {
                continue;
            }
            self.push(
                *pause,
                phase::PAUSED,
                &sid,
                Kind::ServicePaused(pb::ServicePaused {
                    date: pause.to_string(),
                    reason: *reason,
                }),
            );
            match resume {
                Some(resume) if *resume > *pause && *resume <= h && before_end(*resume) => {
                    self.push(
                        *resume,
                        phase::RESUMED,
                        &sid,
                        Kind::ServiceResumed(pb::ServiceResumed {
                            date: resume.to_string(),
                        }),
                    );
                    last = *resume;
                }
                // Still paused at the end, at the horizon or at the death.
                _ => break,
            }
        }
        let end = match end {
            Some(end) => Some(end),
            None if self.death == Some(h) => Some((h, pb::EndReason::Died as i32)),
            None => match self.leave {
                Some((day, reason)) if day == h => Some((h, reason)),
                _ => None,
            },
        };
        if let Some((day, reason)) = end {
            self.push(
                day,
                phase::ENDED,
                &sid,
                Kind::ServiceEnded(pb::ServiceEnded {
                    end_date: day.to_string(),
                    reason,
                }),
            );
        }
    }
}

/// What the generator knows about the person while planning.
#[derive(Clone, Copy, Debug)]
struct Person {
    age: Age,
    profile: Profile,
    birth: Date,
    entry: Date,
    need0: f64,
    dementia: bool,
    resident_need: f64,
    services_within_days: Option<i32>,
    assessed: f64,
}

impl Person {
    /// Latent need on `day`: grows about 0.05 a year, at least 0.72 in a long-term stay.
    fn need(&self, day: Date, long_term_start: Option<Date>) -> f64 {
        let years = f64::from(self.entry.days_until(day).max(0)) / 365.0;
        let mut need = self.need0 + 0.05 * years;
        if long_term_start.is_some_and(|s| s <= day) {
            need = need.max(self.resident_need + 0.2 * self.need0);
        }
        need.min(0.98)
    }
}

/// Generates the history of person `index`.
pub(crate) fn history(
    seed: u64,
    index: u32,
    window: &Window,
    service_prefix: &str,
    providers: &[String],
    ids: &mut EventIds,
) -> History {
    let mut r = Rng::derive(seed, stream::PERSON, u64::from(index));
    let today = window.today;

    let age = r
        .weighted(&[
            (Age::Child, 4),
            (Age::Young, 14),
            (Age::Mid, 12),
            (Age::Old67, 22),
            (Age::Old80, 30),
            (Age::Old90, 18),
        ])
        .unwrap_or(Age::Old80);
    let (lo, hi, p_female) = match age {
        Age::Child => (3, 17, 0.42),
        Age::Young => (18, 49, 0.48),
        Age::Mid => (50, 66, 0.50),
        Age::Old67 => (67, 79, 0.55),
        Age::Old80 => (80, 89, 0.64),
        Age::Old90 => (90, 102, 0.72),
    };
    let age_years = r.between(lo, hi);
    let female = r.chance(p_female);
    let birth_year = today.year() - age_years;
    let birth = Date::from_ymd(birth_year, 1, 1)
        .unwrap_or(today)
        .add_days(r.between(0, 364));

    let span = window.start.days_until(today);
    let latest_entry = today.add_days(-10).max(window.start);
    let mut entry = if r.chance(0.45) {
        window.start.add_days(r.between(0, 90))
    } else {
        window.start.add_days(r.between(0, span))
    };
    entry = entry
        .min(latest_entry)
        .max(birth.add_days(if age == Age::Child { 730 } else { 1 }));
    if entry > latest_entry {
        entry = latest_entry;
    }
    let subject = Subject {
        age,
        birth,
        female,
        entry,
        leave: None,
        leave_reason: 0,
    };
    life(
        r,
        &subject,
        &Knobs::DEMO,
        window,
        service_prefix,
        providers,
        ids,
    )
}

/// Generates the history of `subject` from its entry into care, drawing from `r`.
pub(crate) fn life(
    mut r: Rng,
    subject: &Subject,
    knobs: &Knobs,
    window: &Window,
    service_prefix: &str,
    providers: &[String],
    ids: &mut EventIds,
) -> History {
    let today = window.today;
    let Subject {
        age,
        birth,
        female,
        entry,
        ..
    } = *subject;
    let [light, medium, heavy] = knobs.profiles[age.index()];
    let profile = r
        .weighted(&[
            (Profile::Light, light),
            (Profile::Medium, medium),
            (Profile::Heavy, heavy),
        ])
        .unwrap_or(Profile::Light);
    let need0 = match profile {
        Profile::Light => r.uniform(0.05, 0.30),
        Profile::Medium => r.uniform(0.36, 0.58),
        Profile::Heavy => r.uniform(0.66, 0.92),
    };
    let dementia = age.elderly()
        && r.chance(match profile {
            Profile::Light => 0.03,
            Profile::Medium => 0.1,
            Profile::Heavy => 0.5,
        });
    let person = Person {
        age,
        profile,
        birth,
        entry,
        need0,
        dementia,
        resident_need: knobs.resident_need,
        services_within_days: knobs.services_within_days,
        assessed: knobs.assessed,
    };

    // Long-term stay.
    let early = entry <= window.start.add_days(90);
    let resident_at_entry =
        age.elderly() && profile == Profile::Heavy && early && r.chance(knobs.resident_at_entry);
    let applied_21 = if resident_at_entry {
        Some(entry)
    } else {
        match (age, profile) {
            (a, Profile::Heavy) if a.elderly() => r
                .chance(knobs.long_term[2])
                .then(|| entry.add_days(r.between(30, 720))),
            (a, Profile::Medium) if a.elderly() => r
                .chance(knobs.long_term[1])
                .then(|| entry.add_days(r.between(180, 1200))),
            (a, Profile::Light) if a.elderly() => r
                .chance(knobs.long_term[0])
                .then(|| entry.add_days(r.between(365, 1300))),
            (Age::Mid, Profile::Heavy) => {
                r.chance(0.05).then(|| entry.add_days(r.between(60, 900)))
            }
            _ => None,
        }
    };
    let long_term = applied_21.map(|applied| {
        let waiting = applied.add_days(if resident_at_entry {
            r.between(0, 5)
        } else {
            r.between(3, 20)
        });
        let wait = if resident_at_entry {
            r.between(0, 14)
        } else {
            match r.weighted(&[(0, 50), (1, 35), (2, 15)]) {
                Some(0) => r.between(0, 30),
                Some(1) => r.between(31, 90),
                _ => r.between(91, 200),
            }
        };
        let (decided, start) = if r.chance(0.5) {
            (waiting, waiting.add_days(wait))
        } else {
            let decided = waiting.add_days(wait);
            (decided, decided.add_days(r.between(0, 7)))
        };
        LongTerm {
            applied: r.chance(0.9).then_some(applied),
            waiting,
            decided,
            start,
        }
    });
    let s21 = long_term.map(|l| l.start);
    // Leaving care: not once the way to a long-term stay has begun (residents stay
    // until they die).
    let leave = subject.leave.filter(|l| {
        *l < today
            && long_term.is_none_or(|lt| lt.applied.unwrap_or(lt.waiting).min(lt.waiting) > *l)
    });

    // Death: a monthly hazard from entry on, higher once in a long-term stay.
    let mut death = None;
    let mut t = entry.add_days(20);
    let last_alive_check = leave.unwrap_or(today);
    while t <= last_alive_check {
        let resident = s21.is_some_and(|s| t >= s);
        let age_now = if knobs.mortality_by_age_reached {
            Age::of_years(t.year() - birth.year())
        } else {
            age
        };
        let yearly = annual_mortality(age_now, profile, resident)
            * knobs.mortality
            * if resident {
                knobs.resident_mortality
            } else {
                1.0
            };
        if r.chance(yearly * 30.0 / 365.0) {
            death = Some(t.add_days(r.between(0, 29)).min(today));
            break;
        }
        t = t.add_days(30);
    }
    // A death after leaving care is not the register's business.
    let death = death.filter(|d| leave.is_none_or(|l| *d <= l));
    let leave = leave.filter(|_| death.is_none());
    let horizon = death.or(leave).unwrap_or(today);
    // Home services run until the long-term stay begins.
    let home_end = s21.unwrap_or(today).min(today);

    // Which services.
    let mut codes: Vec<u8> = service_table(age, profile)
        .iter()
        .filter(|(_, p)| r.chance(*p))
        .map(|(c, _)| *c)
        .collect();
    if resident_at_entry {
        codes.retain(|c| *c == 24);
    }
    if codes.is_empty() && !resident_at_entry {
        codes.push(match (age, profile) {
            (Age::Child, _) => 11,
            (a, Profile::Light) if a.elderly() => 6,
            _ => 15,
        });
    }
    // Elderly users without a home service get home nursing as well, now and then.
    if knobs.home_for_elderly > 0.0
        && age.elderly()
        && !resident_at_entry
        && !codes.iter().any(|c| matches!(c, 1 | 2 | 3 | 7 | 11 | 15))
        && r.chance(knobs.home_for_elderly)
    {
        codes.insert(0, 15);
    }

    let mut episodes: Vec<Episode> = Vec::new();
    for &code in codes.iter().filter(|c| !special(**c)) {
        if let Some(ep) = home_episode(&mut r, window, &person, code, s21, providers) {
            episodes.push(ep);
        }
    }

    // Periods away from home.
    let mut away: Vec<Away> = Vec::new();
    if let Some(s) = s21
        && !resident_at_entry
        && r.chance(0.5)
    {
        let from = s.add_days(-r.between(14, 60)).max(entry.add_days(7));
        if from < s {
            let code = if r.chance(0.6) { 18 } else { 20 };
            away.push(Away {
                from,
                to: s,
                pause_reason: pb::PauseReason::Other as i32,
                stay: Some(code),
                end_reason: pb::EndReason::ToInstitution as i32,
            });
        }
    }
    let stay_limit = match s21 {
        Some(s) => s.add_days(-5),
        None => today,
    };
    for &code in codes.iter().filter(|c| matches!(**c, 18 | 19 | 20 | 25)) {
        let count = if r.chance(0.3) { 2 } else { 1 };
        for _ in 0..count {
            let len = match code {
                18 => r.between(7, 28),
                19 => r.between(14, 42),
                20 => r.between(5, 21),
                _ => r.between(1, 4),
            };
            let from = day_between(&mut r, entry.add_days(7), home_end.add_days(-3));
            let to = from.add_days(len);
            if from <= entry || (s21.is_some() && to >= stay_limit) || overlaps(&away, from, to) {
                continue;
            }
            let end_reason = match code {
                19 => r.weighted(&[
                    (pb::EndReason::NoLongerNeeded, 80),
                    (pb::EndReason::Other, 12),
                    (pb::EndReason::ToInstitution, 8),
                ]),
                25 => r.weighted(&[
                    (pb::EndReason::NoLongerNeeded, 70),
                    (pb::EndReason::Other, 30),
                ]),
                _ => r.weighted(&[
                    (pb::EndReason::NoLongerNeeded, 85),
                    (pb::EndReason::Other, 15),
                ]),
            }
            .unwrap_or(pb::EndReason::NoLongerNeeded) as i32;
            away.push(Away {
                from,
                to,
                pause_reason: pb::PauseReason::Other as i32,
                stay: Some(code),
                end_reason,
            });
        }
    }
    // Hospital stays (specialist care) while living at home, about one chance a year.
    let p_hospital = match (age.elderly(), profile) {
        (true, Profile::Light) => 0.12,
        (true, Profile::Medium) => 0.30,
        (true, Profile::Heavy) => 0.45,
        _ => 0.10,
    };
    let mut year_start = entry;
    while year_start < home_end {
        let year_end = year_start.add_days(364).min(home_end);
        if r.chance(p_hospital) {
            let from = day_between(&mut r, year_start.add_days(1), year_end);
            let to = from.add_days(r.between(2, 14));
            if (s21.is_none() || to < stay_limit) && !overlaps(&away, from, to) {
                away.push(Away {
                    from,
                    to,
                    pause_reason: pb::PauseReason::SpecialistCareStay as i32,
                    stay: None,
                    end_reason: 0,
                });
            }
        }
        year_start = year_start.add_days(365);
    }
    if profile != Profile::Heavy && r.chance(0.08) {
        let from = day_between(&mut r, entry.add_days(30), home_end);
        let to = from.add_days(r.between(7, 21));
        if (s21.is_none() || to < stay_limit) && !overlaps(&away, from, to) {
            away.push(Away {
                from,
                to,
                pause_reason: pb::PauseReason::Travel as i32,
                stay: None,
                end_reason: 0,
            });
        }
    }
    away.sort_by_key(|a| a.from);

    // Pause home services across the periods away; stays become episodes of their own.
    for a in &away {
        for ep in episodes.iter_mut().filter(|e| pausable(e.code)) {
            if ep.runs_at(a.from) {
                ep.pauses.push((a.from, Some(a.to), a.pause_reason));
            }
        }
    }
    for a in away.iter().filter(|a| a.stay.is_some()) {
        let code = a.stay.unwrap_or(18);
        let decided = a.from.add_days(-r.between(0, 3)).max(window.start);
        let mut ep = Episode::new(code, decided);
        if code != 25 && r.chance(if code == 19 { 0.8 } else { 0.6 }) {
            ep.applied = Some(decided.add_days(-r.between(0, 10)).max(window.start));
        }
        ep.valid_from = a.from.min(today);
        let planned = if r.chance(0.3) {
            a.to.add_days(r.between(1, 7))
        } else {
            a.to
        };
        ep.valid_to = Some(planned.min(today.add_days(364)));
        ep.start = Some(a.from);
        ep.end = Some((a.to, a.end_reason));
        episodes.push(ep);
    }
    if codes.contains(&8)
        && let Some(ep) = respite_episode(&mut r, window, &person, s21)
    {
        episodes.push(ep);
    }

    // The long-term stay itself.
    if let Some(l) = long_term {
        let mut ep = Episode::new(21, l.decided);
        ep.applied = l.applied;
        ep.valid_from = l.start.min(today).max(l.decided);
        ep.start = Some(l.start);
        if r.chance(0.2)
            && let Some(p) = pick(&mut r, providers)
        {
            ep.provider = p;
        }
        let mut year_start = l.start;
        while year_start < today {
            if r.chance(0.25) {
                let from = day_between(&mut r, year_start.add_days(1), year_start.add_days(364));
                ep.pauses.push((
                    from,
                    Some(from.add_days(r.between(2, 10))),
                    pb::PauseReason::SpecialistCareStay as i32,
                ));
            }
            year_start = year_start.add_days(365);
        }
        episodes.push(ep);
    }

    // A refused application now and then.
    if r.chance(0.08) {
        let pool: &[u8] = match age {
            Age::Child => &[3, 8, 11],
            Age::Young | Age::Mid => &[29, 3, 1, 9],
            _ if s21.is_none() => &[21, 1, 29, 4, 6, 21],
            _ => &[1, 29, 4, 6],
        };
        if let Some(code) = pick(&mut r, pool) {
            let applied = day_between(&mut r, entry, home_end);
            let decided = applied.add_days(r.between(5, 40));
            let mut ep = Episode::new(code, decided);
            ep.applied = Some(applied);
            ep.refused = true;
            ep.start = None;
            if code == 8 {
                ep.respite_kind = pb::RespiteKind::NotRolling as i32;
            }
            episodes.push(ep);
        }
    }

    let mut b = Builder {
        r,
        window: *window,
        horizon,
        death,
        leave: leave.map(|l| (l, subject.leave_reason)),
        service_prefix,
        next_service: 0,
        ids,
        drafts: Vec::new(),
    };
    for ep in &episodes {
        b.emit(ep);
    }
    if let Some(l) = long_term {
        b.push(
            l.waiting,
            phase::WAITING,
            "",
            Kind::WaitingListEntered(pb::WaitingListEntered {
                code: "21".to_string(),
                date: l.waiting.to_string(),
            }),
        );
    }
    assessments(&mut b, &person, &codes, s21);
    health_checks(&mut b, &person, &episodes, s21);
    if let Some(day) = death {
        b.push(
            day,
            phase::DIED,
            "",
            Kind::PersonDied(pb::PersonDied {
                date_of_death: day.to_string(),
            }),
        );
    }
    corrections(&mut b);
    let mut drafts = b.drafts;
    drafts.sort_by_key(|d| (d.day, d.phase, d.seq));
    History {
        birth,
        female,
        drafts,
    }
}

fn pick<T: Clone>(r: &mut Rng, items: &[T]) -> Option<T> {
    items.get(r.below(items.len() as u32) as usize).cloned()
}

/// Hours per week a decision grants.
fn initial_hours(r: &mut Rng, code: u8, need: f64, age: Age) -> f64 {
    match code {
        1 if need < 0.35 => half_hours(r, 0.5, 2.0),
        1 if need < 0.63 => half_hours(r, 1.5, 4.0),
        1 => half_hours(r, 3.0, 10.0),
        2 => half_hours(r, 2.0, 6.0),
        3 if age == Age::Child => half_hours(r, 10.0, 40.0),
        3 => half_hours(r, 15.0, 60.0),
        4 => half_hours(r, 6.0, 20.0),
        7 => half_hours(r, 3.0, 15.0),
        9 => half_hours(r, 1.0, 5.0),
        11 => half_hours(r, 4.0, 25.0),
        15 if need < 0.35 => half_hours(r, 0.5, 2.0),
        15 if need < 0.63 => half_hours(r, 2.5, 8.0),
        15 => half_hours(r, 22.0, 60.0),
        17 => half_hours(r, 6.0, 25.0),
        22 => half_hours(r, 20.0, 70.0),
        _ => half_hours(r, 1.0, 5.0),
    }
}

/// A new number of hours, different from `old`.
fn changed_hours(r: &mut Rng, code: u8, old: f64) -> f64 {
    let step = half_hours(r, 0.5, (old * 0.4).clamp(1.0, 8.0));
    let up = if code == 15 {
        r.chance(0.75)
    } else {
        r.chance(0.5)
    };
    let new = if up || old - step < 0.5 {
        old + step
    } else {
        old - step
    };
    new.clamp(0.5, 168.0)
}

/// A home-based (non-stay) service episode, or `None` when it would begin only after
/// the long-term stay.
fn home_episode(
    r: &mut Rng,
    window: &Window,
    p: &Person,
    code: u8,
    s21: Option<Date>,
    providers: &[String],
) -> Option<Episode> {
    let today = window.today;
    let until = match s21 {
        Some(s) if code != 24 => s.add_days(-30).min(today),
        _ => today,
    };
    let until = p
        .services_within_days
        .map_or(until, |days| until.min(p.entry.add_days(days)));
    let applied = if r.chance(0.65) {
        p.entry.add_days(r.between(0, 30))
    } else {
        day_between(r, p.entry, until)
    };
    let applied = applied.min(until).max(p.entry);
    let processing = match code {
        15 => r.between(0, 7),
        6 => r.between(3, 20),
        1 => r.between(5, 35),
        5 => r.between(2, 14),
        4 | 9 | 11 => r.between(10, 50),
        29 => r.between(20, 120),
        3 => r.between(20, 90),
        14 | 23 | 24 => r.between(0, 10),
        _ => r.between(5, 30),
    };
    let decided = applied.add_days(processing);
    let mut ep = Episode::new(code, decided);
    if r.chance(if code == 15 { 0.7 } else { 0.88 }) {
        ep.applied = Some(applied);
    }
    let p_refused = match code {
        1 => 0.07,
        29 => 0.15,
        3 => 0.12,
        11 => 0.10,
        9 => 0.06,
        4 => 0.05,
        6 | 15 => 0.02,
        _ => 0.03,
    };
    if r.chance(p_refused) {
        ep.refused = true;
        ep.start = None;
        return Some(ep);
    }
    ep.valid_from = if r.chance(0.08) {
        decided.add_days(-r.between(1, 14))
    } else {
        decided.add_days(r.between(0, 7))
    }
    .min(today)
    .max(window.start);
    let wait = match code {
        15 => r.between(0, 3),
        6 => r.between(0, 14),
        1 => r.between(0, 21),
        5 => r.between(0, 10),
        4 => r.between(0, 30),
        29 => r.between(0, 90),
        3 => r.between(0, 30),
        _ => r.between(0, 14),
    };
    let mut start = ep.valid_from.add_days(wait).max(decided);
    if r.chance(0.05) {
        start = ep.valid_from.add_days(-r.between(1, 10)).max(decided);
    }
    if let Some(s) = s21
        && code != 24
        && start >= s
    {
        return None;
    }
    ep.start = Some(start);
    if hourly(code) {
        ep.hours = initial_hours(
            r,
            code,
            p.need(decided, None) + if p.dementia { 0.2 } else { 0.0 },
            p.age,
        );
        ep.monthly = matches!(code, 9 | 11) && r.chance(0.4);
    }
    if matches!(code, 1 | 3 | 15 | 17 | 22)
        && r.chance(0.12)
        && let Some(org) = pick(r, providers)
    {
        ep.provider = org;
    }

    // How it ends, if it does.
    let p_end = match (code, p.profile) {
        (15, Profile::Light) => 0.35,
        (15, _) => 0.12,
        (1, _) | (9, _) => 0.15,
        (4, _) | (17, _) | (22, _) => 0.2,
        (5, _) => 0.25,
        (6, _) | (29, _) => 0.05,
        (26..=28, _) => 0.1,
        (14 | 23 | 24, _) => 0.3,
        _ => 0.1,
    };
    let mut end = r.chance(p_end).then(|| {
        let reason = if r.chance(0.85) {
            pb::EndReason::NoLongerNeeded
        } else {
            pb::EndReason::Other
        };
        (start.add_days(r.between(30, 900)), reason as i32)
    });
    match code {
        2 => {
            let to = ep.valid_from.add_days(r.between(60, 180)).max(start);
            ep.valid_to = Some(to.min(today.add_days(364)));
            if r.chance(0.8) {
                end = Some((to, pb::EndReason::NoLongerNeeded as i32));
            }
        }
        3 | 7 | 9 | 11 => {
            // Decisions for a year at a time, renewed before they lapse.
            let mut to = ep
                .valid_from
                .add_days(364)
                .max(start)
                .min(today.add_days(364));
            ep.valid_to = Some(to);
            for _ in 0..6 {
                let renewal = to.add_days(-r.between(5, 40));
                if renewal > today {
                    break;
                }
                if !r.chance(0.85) {
                    if end.is_none_or(|(e, _)| e > to) {
                        end = Some((to, pb::EndReason::NoLongerNeeded as i32));
                    }
                    break;
                }
                let from = to.add_days(1);
                if from > today {
                    // The renewal for the next period is not known yet.
                    break;
                }
                let next = from.add_days(364).min(today.add_days(364)).max(from);
                ep.renewals.push((renewal, from, next));
                to = next;
            }
        }
        _ => {}
    }
    if let Some(s) = s21
        && code != 24
        && end.is_none_or(|(e, _)| e > s)
    {
        end = Some((s, pb::EndReason::ToInstitution as i32));
    }
    ep.end = end.map(|(d, reason)| (d.max(start), reason));

    if hourly(code) {
        let count = match code {
            15 => r.between(0, 3),
            1 | 3 | 4 => r.between(0, 2),
            _ => r.between(0, 1),
        };
        let last = ep.end.map(|(d, _)| d).unwrap_or(today);
        let mut days: Vec<Date> = (0..count)
            .map(|_| day_between(r, start.add_days(14), last.add_days(-1)))
            .collect();
        days.sort();
        days.dedup();
        let mut hours = ep.hours;
        for day in days {
            hours = changed_hours(r, code, hours);
            ep.hours_changes.push((day, hours));
        }
    }
    Some(ep)
}

/// A respite stay in an institution (code 8): rolling (a week at a time, paused in
/// between) or a single stay.
fn respite_episode(r: &mut Rng, window: &Window, p: &Person, s21: Option<Date>) -> Option<Episode> {
    let today = window.today;
    let until = s21.map(|s| s.add_days(-60)).unwrap_or(today).min(today);
    let applied = day_between(r, p.entry, until);
    let decided = applied.add_days(r.between(7, 30));
    let mut ep = Episode::new(8, decided);
    ep.applied = Some(applied);
    ep.valid_from = decided.add_days(r.between(0, 14)).min(today);
    let start = ep.valid_from.max(decided);
    if s21.is_some_and(|s| start >= s) {
        return None;
    }
    ep.start = Some(start);
    if r.chance(0.6) {
        ep.respite_kind = pb::RespiteKind::Rolling as i32;
        ep.valid_to = Some(ep.valid_from.add_days(364).min(today.add_days(364)));
        let mut at = start;
        let cycles = r.between(2, 8);
        for _ in 0..cycles {
            let pause = at.add_days(7);
            let resume = pause.add_days(r.between(14, 28));
            ep.pauses
                .push((pause, Some(resume), pb::PauseReason::Other as i32));
            at = resume;
        }
        if r.chance(0.5) {
            ep.end = Some((at.add_days(7), pb::EndReason::NoLongerNeeded as i32));
        }
    } else {
        ep.respite_kind = pb::RespiteKind::NotRolling as i32;
        let end = start.add_days(r.between(3, 14));
        ep.valid_to = Some(end.min(today.add_days(364)));
        ep.end = Some((end, pb::EndReason::NoLongerNeeded as i32));
    }
    if let Some(s) = s21
        && ep.end.is_none_or(|(e, _)| e > s)
    {
        ep.end = Some((s, pb::EndReason::ToInstitution as i32));
    }
    Some(ep)
}

const VARIABLES: [pb::AssessmentVariable; 17] = [
    pb::AssessmentVariable::SocialParticipation,
    pb::AssessmentVariable::DailyDecisions,
    pb::AssessmentVariable::BehaviourControl,
    pb::AssessmentVariable::Memory,
    pb::AssessmentVariable::Communication,
    pb::AssessmentVariable::Housework,
    pb::AssessmentVariable::Shopping,
    pb::AssessmentVariable::Cooking,
    pb::AssessmentVariable::ManagingOwnHealth,
    pb::AssessmentVariable::PersonalHygiene,
    pb::AssessmentVariable::Dressing,
    pb::AssessmentVariable::Eating,
    pb::AssessmentVariable::Toileting,
    pb::AssessmentVariable::MovingIndoors,
    pb::AssessmentVariable::MovingOutdoors,
    pb::AssessmentVariable::Vision,
    pb::AssessmentVariable::Hearing,
];

fn assessment(r: &mut Rng, p: &Person, day: Date, s21: Option<Date>) -> Kind {
    let need = p.need(day, s21);
    let age = f64::from(day.year() - p.birth.year());
    let scores = VARIABLES
        .iter()
        .map(|&variable| {
            let number = variable as i32;
            let area_need = match number {
                1..=5 => need * 0.8 + if p.dementia { 0.35 } else { 0.0 },
                6..=9 => need * 1.15,
                10..=15 => need,
                _ => (age - 60.0).max(0.0) / 50.0,
            };
            let mean = 1.0 + 4.0 * area_need.min(1.0);
            let value = (mean + r.uniform(-0.8, 0.8)).round().clamp(1.0, 5.0) as u32;
            let not_relevant = match number {
                // Children are not expected to manage housework, shopping, cooking or their own health.
                6..=9 if p.age == Age::Child => r.chance(0.5),
                _ => r.chance(0.02),
            };
            pb::Score {
                variable: number,
                score: if not_relevant { 9 } else { value },
            }
        })
        .collect();
    Kind::FunctionalAssessment(pb::FunctionalAssessment {
        date: day.to_string(),
        scores,
    })
}

/// A first assessment soon after entry, yearly reassessments for most, and one on
/// admission to a long-term stay. A few users of presence-only services are never
/// assessed (need level UNKNOWN).
fn assessments(b: &mut Builder<'_>, p: &Person, codes: &[u8], s21: Option<Date>) {
    let presence_only =
        !codes.is_empty() && codes.iter().all(|c| matches!(c, 5 | 6 | 26 | 27 | 28));
    let p_assessed = if presence_only { 0.5 } else { p.assessed };
    if !b.r.chance(p_assessed) {
        return;
    }
    let mut day = p.entry.add_days(b.r.between(0, 21));
    while day <= b.horizon {
        let kind = assessment(&mut b.r, p, day, s21);
        b.push(day, phase::OBSERVED, "", kind);
        if !b.r.chance(0.65) {
            break;
        }
        day = day.add_days(b.r.between(300, 450));
    }
    if let Some(s) = s21 {
        let day = s.add_days(b.r.between(0, 21));
        let kind = assessment(&mut b.r, p, day, s21);
        b.push(day, phase::OBSERVED, "", kind);
    }
}

fn check(kind: pb::HealthCheckKind, day: Date, nutrition: Option<(bool, bool)>) -> Kind {
    Kind::HealthCheck(pb::HealthCheck {
        kind: kind as i32,
        date: day.to_string(),
        at_risk: nutrition.map(|(at_risk, _)| at_risk),
        plan_made: nutrition.map(|(_, plan)| plan),
    })
}

/// Health checks: yearly for long-term residents (physician, medication review,
/// dental, nutrition screening for 67+), now and then for elderly home-nursing users.
fn health_checks(b: &mut Builder<'_>, p: &Person, episodes: &[Episode], s21: Option<Date>) {
    use pb::HealthCheckKind as K;
    let mut periods: Vec<(Date, Date, [f64; 4], f64)> = Vec::new();
    if let Some(s) = s21 {
        let mut from = s;
        while from <= b.horizon {
            periods.push((
                from,
                from.add_days(364),
                [0.85, 0.40, 0.80, if p.age.elderly() { 0.55 } else { 0.0 }],
                0.35,
            ));
            from = from.add_days(365);
        }
    }
    if p.age.elderly() {
        for ep in episodes.iter().filter(|e| e.code == 15 && !e.refused) {
            let Some(start) = ep.start else { continue };
            let last = ep.end.map(|(d, _)| d).unwrap_or(b.window.today);
            let mut from = start;
            while from <= last {
                periods.push((
                    from,
                    from.add_days(364).min(last),
                    [0.10, 0.05, 0.20, 0.12],
                    0.2,
                ));
                from = from.add_days(365);
            }
        }
    }
    for (from, to, probabilities, p_risk) in periods {
        for (kind, probability) in [
            K::Physician,
            K::Dental,
            K::MedicationReview,
            K::NutritionScreening,
        ]
        .into_iter()
        .zip(probabilities)
        {
            if !b.r.chance(probability) {
                continue;
            }
            let day = day_between(&mut b.r, from, to);
            let nutrition = (kind == K::NutritionScreening).then(|| {
                let at_risk = b.r.chance(p_risk);
                (at_risk, at_risk && b.r.chance(0.7))
            });
            b.push(day, phase::OBSERVED, "", check(kind, day, nutrition));
        }
    }
}

/// Now and then, a correction of something already sent: a duplicate assessment
/// voided, a health check re-dated or voided, hours corrected on a decision or an
/// hours change.
fn corrections(b: &mut Builder<'_>) {
    if !b.r.chance(0.05) {
        return;
    }
    let choice =
        b.r.weighted(&[(0u8, 3), (1, 3), (2, 2), (3, 2), (4, 1)])
            .unwrap_or(0);
    let candidates: Vec<usize> = b
        .drafts
        .iter()
        .enumerate()
        .filter(|(_, d)| match (&d.kind, choice) {
            (Kind::FunctionalAssessment(_), 0) => true,
            (Kind::HealthCheck(_), 1 | 4) => true,
            (Kind::ServiceHoursChanged(_), 2) => true,
            (Kind::ServiceDecided(m), 3) => m.hours.is_some(),
            _ => false,
        })
        .map(|(i, _)| i)
        .collect();
    let Some(index) = pick(&mut b.r, &candidates) else {
        return;
    };
    let target = b.drafts[index].clone();
    let (corrected, action, replacement) = match &target.kind {
        Kind::FunctionalAssessment(_) => {
            // Registered twice by mistake: the duplicate is voided.
            if !b.push(target.day, phase::OBSERVED, "", target.kind.clone()) {
                return;
            }
            let duplicate = b
                .drafts
                .last()
                .map(|d| d.event_id.clone())
                .unwrap_or_default();
            (duplicate, pb::CorrectionAction::Void, None)
        }
        Kind::HealthCheck(_) if choice == 4 => {
            (target.event_id.clone(), pb::CorrectionAction::Void, None)
        }
        Kind::HealthCheck(m) => {
            let Ok(old) = Date::parse(&m.date) else {
                return;
            };
            let earlier = old.add_days(-b.r.between(1, 10));
            let later = old.add_days(b.r.between(1, 10));
            let new = if earlier >= b.window.start {
                earlier
            } else if later <= b.horizon {
                later
            } else {
                return;
            };
            let mut m = m.clone();
            m.date = new.to_string();
            (
                target.event_id.clone(),
                pb::CorrectionAction::Replace,
                Some(Kind::HealthCheck(m)),
            )
        }
        Kind::ServiceHoursChanged(m) => {
            let Some(pb::service_hours_changed::Hours::HoursPerWeek(old)) = m.hours else {
                return;
            };
            let new = changed_hours(&mut b.r, 0, old);
            let mut m = m.clone();
            m.hours = Some(pb::service_hours_changed::Hours::HoursPerWeek(new));
            (
                target.event_id.clone(),
                pb::CorrectionAction::Replace,
                Some(Kind::ServiceHoursChanged(m)),
            )
        }
        Kind::ServiceDecided(m) => {
            let old = match m.hours {
                Some(pb::service_decided::Hours::HoursPerWeek(h)) => h,
                Some(pb::service_decided::Hours::HoursPerMonth(h)) => h / 4.0,
                None => return,
            };
            let new = changed_hours(&mut b.r, 0, old);
            let mut m = m.clone();
            m.hours = Some(pb::service_decided::Hours::HoursPerWeek(new));
            (
                target.event_id.clone(),
                pb::CorrectionAction::Replace,
                Some(Kind::ServiceDecided(m)),
            )
        }
        _ => return,
    };
    let day = target.day.add_days(b.r.between(0, 20)).min(b.horizon);
    let correction = pb::Correction {
        corrects_event_id: corrected,
        action: action as i32,
        replacement: replacement.map(|kind| Box::new(pb::Payload { kind: Some(kind) })),
    };
    b.push(
        day,
        phase::CORRECTION,
        &target.service_id,
        Kind::Correction(Box::new(correction)),
    );
}
