//! A snapshot of what the figures need, taken from the read model for one region:
//! every person's facts (from all municipalities: SPEC 5.4 takes need level, checks and
//! death from wherever they were recorded), and the region's service episodes,
//! decisions and waiting-list entries.

use std::collections::HashMap;
use std::sync::Arc;

use kpr_domain::date::Date;
use kpr_domain::event::{CheckKind, Outcome, Variable};
use kpr_domain::municipality::MunicipalityCode;
use kpr_domain::person::{Pseudonym, Sex};
use kpr_domain::service::ServiceCode;

use crate::episode::Episode;
use crate::fact::Fact;
use crate::model::ReadModel;
use crate::population::Region;

/// A recorded health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// Kind.
    pub kind: CheckKind,
    /// Date.
    pub date: Date,
    /// Nutrition screening: at risk.
    pub at_risk: Option<bool>,
    /// Nutrition screening: plan made.
    pub plan_made: Option<bool>,
}

/// What the figures know of a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// Birth year.
    pub birth_year: u16,
    /// Sex.
    pub sex: Sex,
    /// Earliest effective date of death recorded anywhere.
    pub death: Option<Date>,
    /// Assessments: date and valid scores, in (date, recording order) order.
    pub assessments: Vec<(Date, Vec<(Variable, u8)>)>,
    /// Health checks.
    pub checks: Vec<Check>,
}

impl Person {
    /// Alive on `day` (a person is alive on the day of death).
    pub fn alive_on(&self, day: Date) -> bool {
        self.death.is_none_or(|d| day <= d)
    }
}

/// A decision as the processing-time figure sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionView {
    /// Code decided on.
    pub code: ServiceCode,
    /// Outcome.
    pub outcome: Outcome,
    /// Decision date.
    pub date: Date,
    /// Application date of the latest application before it, if any.
    pub application: Option<Date>,
}

/// A service episode of the region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// Municipality it belongs to.
    pub municipality: MunicipalityCode,
    /// Its person.
    pub person: Pseudonym,
    /// The episode, when a decision is in force.
    pub episode: Option<Episode>,
    /// Every effective decision, in log order.
    pub decisions: Vec<DecisionView>,
}

/// A waiting-list entry (code 21) of the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitingEntry {
    /// Municipality whose list it is.
    pub municipality: MunicipalityCode,
    /// The person.
    pub person: Pseudonym,
    /// Date of entry.
    pub date: Date,
}

/// Every person known anywhere, with the facts figures need.
pub type People = HashMap<Pseudonym, Person, crate::model::FoldHash>;

/// Everything a figure reads, for one region.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every person known anywhere (shared between the regions of one model position).
    pub people: Arc<People>,
    /// The region's service episodes.
    pub services: Vec<ServiceView>,
    /// The region's waiting-list entries.
    pub waiting: Vec<WaitingEntry>,
}

/// Gathers every person's facts from every municipality, in code order (first facts
/// win, so the result does not depend on the order partitions were folded in).
pub fn people(model: &ReadModel) -> People {
    let mut people = People::default();
    let mut facts = Vec::new();
    for (_, state) in model.municipalities() {
        for view in state.persons() {
            let (birth_year, sex) = view.facts();
            let person = people.entry(view.pseudonym()).or_insert_with(|| Person {
                birth_year,
                sex,
                death: None,
                assessments: Vec::new(),
                checks: Vec::new(),
            });
            if let Some(death) = view.death() {
                person.death = Some(person.death.map_or(death, |d| d.min(death)));
            }
            facts.clear();
            view.facts_into(&mut facts);
            for fact in &facts {
                match *fact {
                    Fact::Assessed { date, start, len } => person
                        .assessments
                        .push((date, view.scores(start, len).to_vec())),
                    Fact::Checked {
                        kind,
                        date,
                        at_risk,
                        plan_made,
                    } => person.checks.push(Check {
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
        // Stable: equal dates keep recording order.
        person.assessments.sort_by_key(|(date, _)| *date);
    }
    people
}

impl Snapshot {
    /// Takes the snapshot of `region` from `model`.
    pub fn take(model: &ReadModel, region: &Region) -> Snapshot {
        Snapshot::take_with(model, region, Arc::new(people(model)))
    }

    /// Takes the snapshot of `region` with `people` already gathered from `model`.
    pub fn take_with(model: &ReadModel, region: &Region, people: Arc<People>) -> Snapshot {
        let mut snapshot = Snapshot {
            people,
            services: Vec::new(),
            waiting: Vec::new(),
        };
        let mut facts = Vec::new();
        for (code, state) in model
            .municipalities()
            .filter(|(c, _)| region.contains(c.as_str()))
        {
            for view in state.persons() {
                facts.clear();
                view.facts_into(&mut facts);
                for fact in &facts {
                    if let Fact::Waiting { date } = *fact {
                        snapshot.waiting.push(WaitingEntry {
                            municipality: *code,
                            person: view.pseudonym(),
                            date,
                        });
                    }
                }
            }
            snapshot.services.reserve(state.services().len());
            for service in state.services() {
                let person = service.person();
                facts.clear();
                service.facts_into(&mut facts);
                let death = snapshot.people.get(&person).and_then(|p| p.death);
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
                        } => decisions.push(DecisionView {
                            code,
                            outcome,
                            date,
                            application,
                        }),
                        _ => {}
                    }
                }
                snapshot.services.push(ServiceView {
                    municipality: *code,
                    person,
                    episode: Episode::from_events(&facts, death),
                    decisions,
                });
            }
        }
        snapshot
    }
}
