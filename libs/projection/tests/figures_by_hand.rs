//! Figures of SPEC 5.2 on a small log whose answers are worked out by hand.

// Test code: a failed step must panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kpr_domain::date::Date;
use kpr_domain::event::{
    CentiHours, CheckKind, Correction, CorrectionAction, Decision, EndReason, Envelope, Event,
    EventId, Outcome, Payload, StoredEvent, Variable,
};
use kpr_domain::municipality::Registry;
use kpr_domain::person::{PersonRef, Pseudonym, Sex};
use kpr_domain::service::ServiceCode;
use kpr_projection::figures::{Figure, Query, compute};
use kpr_projection::model::ReadModel;
use kpr_projection::population::{Population, Region};
use kpr_projection::table::Table;

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

struct Log {
    model: ReadModel,
    next: u64,
}

const A: PersonRef = PersonRef {
    pseudonym: Pseudonym([1; 32]),
    birth_year: 1940,
    sex: Sex::Female,
};
const B: PersonRef = PersonRef {
    pseudonym: Pseudonym([2; 32]),
    birth_year: 1950,
    sex: Sex::Male,
};
const C: PersonRef = PersonRef {
    pseudonym: Pseudonym([3; 32]),
    birth_year: 1930,
    sex: Sex::Female,
};

impl Log {
    fn push(&mut self, person: PersonRef, service: &str, payload: Payload) -> EventId {
        self.next += 1;
        let id = EventId([self.next as u8; 16]);
        let event: StoredEvent = Event {
            envelope: Envelope {
                event_id: id,
                municipality: Registry::get().municipality("0301").unwrap().code,
                municipality_as_sent: None,
                source_system: "Gerica".into(),
                source_version: "1".into(),
                recorded_at_unix_ms: 0,
                person,
                service_id: service.into(),
            },
            payload,
        };
        assert!(self.model.apply(0, self.next, &event));
        id
    }
}

fn decided(code: u32, date: &str, hours: Option<u32>) -> Payload {
    Payload::ServiceDecided(Decision {
        code: ServiceCode::from_number(code).unwrap(),
        respite_kind: None,
        outcome: Outcome::Granted,
        decision_date: d(date),
        valid_from: d(date),
        valid_to: None,
        hours: hours.map(|h| CentiHours(h * 100)),
        provider_org_number: None,
    })
}

fn applied(code: u32, date: &str) -> Payload {
    Payload::ServiceApplied {
        code: ServiceCode::from_number(code).unwrap(),
        application_date: d(date),
    }
}

fn started(date: &str) -> Payload {
    Payload::ServiceStarted {
        start_date: d(date),
    }
}

fn model() -> ReadModel {
    let mut log = Log {
        model: ReadModel::new(),
        next: 0,
    };
    // A: long-term stay from 1 March 2024, extensive needs, physician check in June.
    log.push(A, "A-21", applied(21, "2024-02-01"));
    log.push(A, "A-21", decided(21, "2024-02-20", None));
    log.push(A, "A-21", started("2024-03-01"));
    log.push(
        A,
        "",
        Payload::HealthCheck {
            kind: CheckKind::Physician,
            date: d("2024-06-01"),
            at_risk: None,
            plan_made: None,
        },
    );
    let scores: Vec<(Variable, u8)> = (1..=15)
        .map(|v| {
            (
                Variable::from_number(v).unwrap(),
                if v >= 10 { 4 } else { 2 },
            )
        })
        .collect();
    log.push(
        A,
        "",
        Payload::FunctionalAssessment {
            date: d("2024-05-01"),
            scores,
        },
    );
    // B: home nursing 10 h from January, 40 h from December; practical help 2 h.
    log.push(B, "B-15", applied(15, "2024-01-01"));
    log.push(B, "B-15", decided(15, "2024-01-05", Some(10)));
    log.push(B, "B-15", started("2024-01-10"));
    log.push(
        B,
        "B-15",
        Payload::ServiceHoursChanged {
            effective_date: d("2024-12-01"),
            hours: CentiHours(4000),
        },
    );
    log.push(B, "B-1", decided(1, "2024-02-01", Some(2)));
    log.push(B, "B-1", started("2024-02-01"));
    // C: a short stay of 10 days in May, then death; a wrong check, voided.
    log.push(C, "C-18", decided(18, "2024-04-25", None));
    log.push(C, "C-18", started("2024-05-01"));
    log.push(
        C,
        "C-18",
        Payload::ServiceEnded {
            end_date: d("2024-05-10"),
            reason: EndReason::NoLongerNeeded,
        },
    );
    let wrong = log.push(
        C,
        "",
        Payload::HealthCheck {
            kind: CheckKind::Dental,
            date: d("2024-06-01"),
            at_risk: None,
            plan_made: None,
        },
    );
    log.push(
        C,
        "",
        Payload::Correction(Correction {
            corrects: wrong,
            action: CorrectionAction::Void,
        }),
    );
    log.push(
        C,
        "",
        Payload::PersonDied {
            date_of_death: d("2024-08-01"),
        },
    );
    log.model
}

fn table(model: &ReadModel, figure: Figure) -> Table {
    compute(
        model,
        Population::embedded(),
        &Query::for_year(figure, Region::Municipality("0301".into()), 2024).unwrap(),
    )
}

/// The value at the categories with these codes (one per dimension, in order).
fn cell(t: &Table, codes: &[&str]) -> Option<f64> {
    let coords: Vec<usize> = t
        .dimensions
        .iter()
        .zip(codes)
        .map(|(dim, code)| {
            dim.categories
                .iter()
                .position(|c| c.code == *code)
                .unwrap_or_else(|| panic!("{} has no {code}", dim.id))
        })
        .collect();
    t.values[t.offset(&coords)]
}

#[test]
fn recipients_hours_and_days() {
    let m = model();
    let t2 = table(&m, Figure::T2);
    assert_eq!(
        cell(
            &t2,
            &["0301", "21", "080-089", "2", "2024-12-31", "personer"]
        ),
        Some(1.0)
    );
    assert_eq!(
        cell(&t2, &["0301", "21", "080+", "0", "2024-12-31", "personer"]),
        Some(1.0)
    );
    assert_eq!(
        cell(
            &t2,
            &["0301", "15", "067-079", "1", "2024-12-31", "personer"]
        ),
        Some(1.0)
    );
    assert_eq!(
        cell(&t2, &["0301", "18", "999", "0", "2024-12-31", "personer"]),
        Some(0.0),
        "C's stay ended in May"
    );
    let t1 = table(&m, Figure::T1);
    assert_eq!(
        cell(&t1, &["0301", "18", "090+", "2", "2024", "personer"]),
        Some(1.0)
    );
    let t3 = table(&m, Figure::T3);
    assert_eq!(
        cell(&t3, &["0301", "15", "2024-12-31", "timer"]),
        Some(40.0)
    );
    assert_eq!(
        cell(&t3, &["0301", "15", "2024-12-31", "timer_snitt"]),
        Some(40.0)
    );
    let t4 = table(&m, Figure::T4);
    assert_eq!(cell(&t4, &["0301", "18", "2024", "dogn"]), Some(10.0));
    assert_eq!(
        cell(&t4, &["0301", "21", "2024", "dogn"]),
        Some(306.0),
        "1 March to 31 December 2024"
    );
}

#[test]
fn indicators() {
    let m = model();
    let i1 = table(&m, Figure::I1);
    assert_eq!(cell(&i1, &["0301", "2024-12-31", "teller"]), Some(1.0));
    let population_80 = cell(&i1, &["0301", "2024-12-31", "nevner"]).unwrap();
    assert!(
        population_80 > 10_000.0,
        "Oslo has tens of thousands aged 80+: {population_80}"
    );
    assert_eq!(
        i1.meta.population_year,
        Some(2025),
        "31.12.2024 uses the population of 1.1.2025"
    );
    assert_eq!(
        cell(&table(&m, Figure::I3), &["0301", "2024-12-31", "teller"]),
        Some(0.0),
        "B is 74"
    );
    let i6 = table(&m, Figure::I6);
    assert_eq!(
        cell(&i6, &["0301", "2024-12-31", "timer_snitt"]),
        Some(42.0)
    );
    let i7 = table(&m, Figure::I7);
    assert_eq!(cell(&i7, &["0301", "2024-12-31", "andel"]), Some(1.0));
    let i8 = table(&m, Figure::I8);
    assert_eq!(
        cell(&i8, &["0301", "long_term", "2024-12-31", "andel"]),
        Some(1.0)
    );
    assert_eq!(
        cell(&i8, &["0301", "home_67", "2024-12-31", "omfattende"]),
        Some(0.0)
    );
    assert_eq!(
        cell(&table(&m, Figure::I9), &["0301", "2024", "teller"]),
        Some(1.0)
    );
    assert_eq!(
        cell(&table(&m, Figure::I10), &["0301", "2024-12-31", "andel"]),
        Some(1.0)
    );
    assert_eq!(
        cell(&table(&m, Figure::I13), &["0301", "2024-12-31", "teller"]),
        Some(0.0)
    );
    let i14 = table(&m, Figure::I14);
    assert_eq!(
        cell(&i14, &["0301", "999", "0", "2024", "teller"]),
        Some(3.0)
    );
    assert_eq!(
        cell(&i14, &["0301", "999", "2", "2024", "teller"]),
        Some(2.0)
    );
    let i15 = table(&m, Figure::I15);
    assert_eq!(cell(&i15, &["0301", "home", "2024", "median"]), Some(4.0));
    assert_eq!(
        cell(&i15, &["0301", "institution", "2024", "median"]),
        Some(19.0)
    );
    let i16 = table(&m, Figure::I16);
    assert_eq!(
        cell(&i16, &["0301", "institution", "2024", "antall"]),
        Some(2.0)
    );
    assert_eq!(
        cell(&i16, &["0301", "institution", "2024", "median"]),
        Some(6.0),
        "waits of 6 (C) and 10 (A) days"
    );
    assert_eq!(
        cell(&i16, &["0301", "institution", "2024", "p90"]),
        Some(10.0)
    );
    let i18 = table(&m, Figure::I18);
    assert_eq!(
        cell(&i18, &["0301", "2024", "nevner"]),
        Some(0.0),
        "no code-19 stays"
    );
}
