//! The bad-input corpus: every case is refused with the event, field or rule named,
//! and afterwards the log is byte-for-byte what it was before.

use kpr_wire::pb;
use kpr_wire::pb::payload::Kind;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::*;

enum Expect {
    /// INVALID_ARGUMENT with this field path among the violations.
    Field(&'static str),
    /// FAILED_PRECONDITION with this rule.
    Rule(&'static str),
    /// Refused by the message size bound, which the error names.
    TooLarge,
    /// PERMISSION_DENIED: the token's municipality is not this one (named).
    Denied(&'static str),
}

struct Case {
    name: &'static str,
    batch: Vec<pb::Event>,
    expect: Expect,
}

const M: &str = "0301";

fn with(mut e: pb::Event, f: impl FnOnce(&mut pb::Event)) -> pb::Event {
    f(&mut e);
    e
}

fn decided_with(f: impl FnOnce(&mut pb::ServiceDecided)) -> Kind {
    let Kind::ServiceDecided(mut d) = decided("15", Some(5.0), 30) else {
        unreachable!()
    };
    f(&mut d);
    Kind::ServiceDecided(d)
}

fn assessment(scores: Vec<(i32, u32)>) -> Kind {
    Kind::FunctionalAssessment(pb::FunctionalAssessment {
        date: days_ago(3),
        scores: scores
            .into_iter()
            .map(|(variable, score)| pb::Score { variable, score })
            .collect(),
    })
}

fn correction(corrects: &str, action: pb::CorrectionAction, replacement: Option<Kind>) -> Kind {
    Kind::Correction(Box::new(pb::Correction {
        corrects_event_id: corrects.to_string(),
        action: action as i32,
        replacement: replacement.map(|k| Box::new(pb::Payload { kind: Some(k) })),
    }))
}

/// What the corpus builds on: persons with services in known states.
struct Baseline {
    events: Vec<pb::Event>,
    p_running: String,
    p_ended: String,
    p_refused: String,
    p_dead: String,
    running_decision_id: String,
    check_id: String,
}

fn baseline() -> Baseline {
    let p_running = synthetic_id(101);
    let p_ended = synthetic_id(102);
    let p_refused = synthetic_id(103);
    let p_dead = synthetic_id(104);
    let mut events = episode(M, 101, "S-RUN");
    let running_decision_id = events[1].event_id.clone();
    events.extend(episode(M, 102, "S-END"));
    events.push(event(
        M,
        &p_ended,
        "S-END",
        Kind::ServiceEnded(pb::ServiceEnded {
            end_date: days_ago(5),
            reason: pb::EndReason::NoLongerNeeded as i32,
        }),
    ));
    events.push(event(
        M,
        &p_refused,
        "S-REF",
        decided_with(|d| {
            d.code = "1".into();
            d.outcome = pb::DecisionOutcome::Refused as i32;
            d.hours = None;
        }),
    ));
    events.push(event(
        M,
        &p_dead,
        "",
        Kind::PersonDied(pb::PersonDied {
            date_of_death: days_ago(10),
        }),
    ));
    let check = event(M, &p_running, "", health_check(4));
    let check_id = check.event_id.clone();
    events.push(check);
    Baseline {
        events,
        p_running,
        p_ended,
        p_refused,
        p_dead,
        running_decision_id,
        check_id,
    }
}

fn corpus(b: &Baseline) -> Vec<Case> {
    let p = &b.p_running;
    let ok = || event(M, p, "", health_check(2));
    let svc = |kind: Kind| event(M, p, "S-NEW", kind);
    let bad_k2 = {
        let mut id = p.clone().into_bytes();
        id[10] = b'0' + (id[10] - b'0' + 1) % 10;
        String::from_utf8(id).unwrap()
    };
    let bad_k1 = {
        let mut id = p.clone().into_bytes();
        id[9] = b'0' + (id[9] - b'0' + 5) % 10;
        String::from_utf8(id).unwrap()
    };
    let field = Expect::Field;
    let rule = Expect::Rule;
    let case = |name, batch, expect| Case {
        name,
        batch,
        expect,
    };
    let mut cases = vec![
        case("empty batch", vec![], field("events")),
        case(
            "batch longer than batch_events_max",
            (0..101).map(|_| ok()).collect(),
            field("events"),
        ),
        case(
            "message larger than message_bytes_max",
            vec![with(ok(), |e| e.source_version = "x".repeat(300 * 1024))],
            Expect::TooLarge,
        ),
        case(
            "missing event_id",
            vec![with(ok(), |e| e.event_id.clear())],
            field("events[0].event_id"),
        ),
        case(
            "malformed event_id",
            vec![with(ok(), |e| e.event_id = "not-a-uuid".into())],
            field("events[0].event_id"),
        ),
        case(
            "nil event_id",
            vec![with(ok(), |e| {
                e.event_id = "00000000-0000-0000-0000-000000000000".into()
            })],
            field("events[0].event_id"),
        ),
        case(
            "missing municipality",
            vec![with(ok(), |e| e.municipality.clear())],
            field("events[0].municipality"),
        ),
        case(
            "unknown municipality",
            vec![with(ok(), |e| e.municipality = "9999".into())],
            field("events[0].municipality"),
        ),
        case(
            "municipality not 4 digits",
            vec![with(ok(), |e| e.municipality = "301".into())],
            field("events[0].municipality"),
        ),
        case(
            "2020 code for a 2024 date",
            vec![with(ok(), |e| e.municipality = "3001".into())],
            field("events[0].municipality"),
        ),
        case(
            "1507 before 2024 without successor",
            vec![with(svc(applied("15", 0)), |e| {
                e.municipality = "1507".into();
                e.payload = Some(pb::Payload {
                    kind: Some(Kind::ServiceApplied(pb::ServiceApplied {
                        code: "15".into(),
                        application_date: "2023-06-01".into(),
                    })),
                });
            })],
            field("events[0].municipality"),
        ),
        case(
            "1507 after 2024",
            vec![with(ok(), |e| {
                e.municipality = "1507".into();
                e.successor_municipality = "1508".into();
            })],
            field("events[0].municipality"),
        ),
        case(
            "successor for an unsplit municipality",
            vec![with(ok(), |e| e.successor_municipality = "1508".into())],
            field("events[0].successor_municipality"),
        ),
        case(
            // With a token bound to one municipality a mixed batch always holds an
            // event the caller may not write: refused before validation looks at it.
            "batch mixing municipalities",
            vec![ok(), with(ok(), |e| e.municipality = "4601".into())],
            Expect::Denied("4601"),
        ),
        case(
            "missing person",
            vec![with(ok(), |e| e.person = None)],
            field("events[0].person"),
        ),
        case(
            "national id too short",
            vec![with(ok(), |e| {
                e.person.as_mut().unwrap().national_id = "1234567890".into()
            })],
            field("events[0].person.national_id"),
        ),
        case(
            "national id with a letter",
            vec![with(ok(), |e| {
                e.person.as_mut().unwrap().national_id = "1234567890a".into()
            })],
            field("events[0].person.national_id"),
        ),
        case(
            "national id first control digit",
            vec![with(ok(), |e| {
                e.person.as_mut().unwrap().national_id = bad_k1.clone()
            })],
            field("events[0].person.national_id"),
        ),
        case(
            "national id second control digit",
            vec![
                ok(),
                with(ok(), |e| {
                    e.person.as_mut().unwrap().national_id = bad_k2.clone()
                }),
            ],
            field("events[1].person.national_id"),
        ),
        case(
            "national id date digits",
            vec![with(ok(), |e| {
                e.person.as_mut().unwrap().national_id = invalid_date_id()
            })],
            field("events[0].person.national_id"),
        ),
        case(
            "birth year contradicts the id",
            vec![with(ok(), |e| {
                e.person.as_mut().unwrap().birth_year = Some(1999)
            })],
            field("events[0].person.birth_year"),
        ),
        case(
            "sex contradicts the id",
            vec![with(ok(), |e| {
                e.person.as_mut().unwrap().sex = opposite_sex(p)
            })],
            field("events[0].person.sex"),
        ),
        case(
            "missing source_system",
            vec![with(ok(), |e| e.source_system.clear())],
            field("events[0].source_system"),
        ),
        case(
            "source_system too long",
            vec![with(ok(), |e| e.source_system = "G".repeat(200))],
            field("events[0].source_system"),
        ),
        case(
            "missing recorded_at",
            vec![with(ok(), |e| e.recorded_at = None)],
            field("events[0].recorded_at"),
        ),
        case(
            "recorded_at out of range",
            vec![
                with(ok(), |e| {
                    e.recorded_at = Some(prost_types::Timestamp {
                        seconds: i64::MAX,
                        nanos: 0,
                    })
                }),
                ok(),
            ],
            field("events[0].recorded_at"),
        ),
        case(
            "recorded_at more than a year ahead",
            vec![with(ok(), |e| {
                e.recorded_at = Some(prost_types::Timestamp {
                    seconds: 4_000_000_000,
                    nanos: 0,
                })
            })],
            field("events[0].recorded_at"),
        ),
        case(
            "missing payload",
            vec![with(ok(), |e| e.payload = None)],
            field("events[0].payload"),
        ),
        case(
            "empty payload",
            vec![with(ok(), |e| e.payload = Some(pb::Payload { kind: None }))],
            field("events[0].payload"),
        ),
        case(
            "service event without service_id",
            vec![event(M, p, "", applied("15", 3))],
            field("events[0].service_id"),
        ),
        case(
            "service_id on a health check",
            vec![with(ok(), |e| e.service_id = "S-1".into())],
            field("events[0].service_id"),
        ),
        case(
            "unknown service code",
            vec![svc(applied("30", 3))],
            field("events[0].payload.service_applied.code"),
        ),
        case(
            "retired code 12",
            vec![svc(applied("12", 3))],
            field("events[0].payload.service_applied.code"),
        ),
        case(
            "retired code 16",
            vec![svc(applied("16", 3))],
            field("events[0].payload.service_applied.code"),
        ),
        case(
            "code not a number",
            vec![svc(applied("ab", 3))],
            field("events[0].payload.service_applied.code"),
        ),
        case(
            "zero hours",
            vec![svc(decided("15", Some(0.0), 3))],
            field("events[0].payload.service_decided.hours_per_week"),
        ),
        case(
            "hours above 168",
            vec![svc(decided("15", Some(168.5), 3))],
            field("events[0].payload.service_decided.hours_per_week"),
        ),
        case(
            "hours NaN",
            vec![svc(decided("15", Some(f64::NAN), 3))],
            field("events[0].payload.service_decided.hours_per_week"),
        ),
        case(
            "monthly hours above 168 a week",
            vec![svc(decided_with(|d| {
                d.hours = Some(pb::service_decided::Hours::HoursPerMonth(800.0))
            }))],
            field("events[0].payload.service_decided.hours_per_month"),
        ),
        case(
            "hours missing for an hours service",
            vec![svc(decided("15", None, 3))],
            field("events[0].payload.service_decided.hours_per_week"),
        ),
        case(
            "hours for a presence service",
            vec![svc(decided("6", Some(2.0), 3))],
            field("events[0].payload.service_decided.hours_per_week"),
        ),
        case(
            "code 8 without sub-code",
            vec![svc(decided("8", None, 3))],
            field("events[0].payload.service_decided.respite_kind"),
        ),
        case(
            "sub-code on code 15",
            vec![svc(decided_with(|d| {
                d.respite_kind = pb::RespiteKind::Rolling as i32
            }))],
            field("events[0].payload.service_decided.respite_kind"),
        ),
        case(
            "valid_to before valid_from",
            vec![svc(decided_with(|d| d.valid_to = days_ago(60)))],
            field("events[0].payload.service_decided.valid_to"),
        ),
        case(
            "invalid organisation number",
            vec![svc(decided_with(|d| {
                d.provider_org_number = "974760674".into()
            }))],
            field("events[0].payload.service_decided.provider_org_number"),
        ),
        case(
            "impossible date",
            vec![svc(decided_with(|d| d.decision_date = "2023-02-30".into()))],
            field("events[0].payload.service_decided.decision_date"),
        ),
        case(
            "malformed date",
            vec![svc(decided_with(|d| d.decision_date = "01.02.2024".into()))],
            field("events[0].payload.service_decided.decision_date"),
        ),
        case(
            "date before 1900",
            vec![svc(Kind::ServiceApplied(pb::ServiceApplied {
                code: "15".into(),
                application_date: "1899-12-31".into(),
            }))],
            field("events[0].payload.service_applied.application_date"),
        ),
        case(
            "date more than a year ahead",
            vec![svc(started(-400))],
            field("events[0].payload.service_started.start_date"),
        ),
        case(
            "missing outcome",
            vec![svc(decided_with(|d| d.outcome = 0))],
            field("events[0].payload.service_decided.outcome"),
        ),
        case(
            "unknown outcome value",
            vec![svc(decided_with(|d| d.outcome = 7))],
            field("events[0].payload.service_decided.outcome"),
        ),
        case(
            "health check in the future",
            vec![event(M, p, "", health_check(-2))],
            field("events[0].payload.health_check.date"),
        ),
        case(
            "nutrition screening without at_risk",
            vec![event(
                M,
                p,
                "",
                Kind::HealthCheck(pb::HealthCheck {
                    kind: pb::HealthCheckKind::NutritionScreening as i32,
                    date: days_ago(1),
                    at_risk: None,
                    plan_made: None,
                }),
            )],
            field("events[0].payload.health_check.at_risk"),
        ),
        case(
            "death in the future",
            vec![event(
                M,
                p,
                "",
                Kind::PersonDied(pb::PersonDied {
                    date_of_death: days_ago(-3),
                }),
            )],
            field("events[0].payload.person_died.date_of_death"),
        ),
        case(
            "assessment score 6",
            vec![event(M, p, "", assessment(vec![(1, 6)]))],
            field("events[0].payload.functional_assessment.scores[0].score"),
        ),
        case(
            "assessment score beyond 32 bits of u8",
            vec![event(M, p, "", assessment(vec![(1, u32::MAX)]))],
            field("events[0].payload.functional_assessment.scores[0].score"),
        ),
        case(
            "national id in service_id",
            vec![event(M, p, &format!("S-{p}"), applied("15", 3))],
            field("events[0].service_id"),
        ),
        case(
            "national id written 6+5 in source_version",
            vec![with(ok(), |e| {
                e.source_version = format!("{} {}", &p[..6], &p[6..])
            })],
            field("events[0].source_version"),
        ),
        case(
            "national id in source_system",
            vec![with(ok(), |e| e.source_system = format!("Gerica/{p}"))],
            field("events[0].source_system"),
        ),
        case(
            "assessment variable twice",
            vec![event(M, p, "", assessment(vec![(1, 2), (1, 3)]))],
            field("events[0].payload.functional_assessment.scores[1].variable"),
        ),
        case(
            "assessment unknown variable",
            vec![event(M, p, "", assessment(vec![(18, 2)]))],
            field("events[0].payload.functional_assessment.scores[0].variable"),
        ),
        case(
            "waiting list for code 15",
            vec![event(
                M,
                p,
                "",
                Kind::WaitingListEntered(pb::WaitingListEntered {
                    code: "15".into(),
                    date: days_ago(2),
                }),
            )],
            field("events[0].payload.waiting_list_entered.code"),
        ),
        case(
            "REPLACE without replacement",
            vec![event(
                M,
                p,
                "",
                correction(&b.check_id, pb::CorrectionAction::Replace, None),
            )],
            field("events[0].payload.correction.replacement"),
        ),
        case(
            "VOID with a replacement",
            vec![event(
                M,
                p,
                "",
                correction(
                    &b.check_id,
                    pb::CorrectionAction::Void,
                    Some(health_check(3)),
                ),
            )],
            field("events[0].payload.correction.replacement"),
        ),
        case(
            "correction with a malformed target",
            vec![event(
                M,
                p,
                "",
                correction("nope", pb::CorrectionAction::Void, None),
            )],
            field("events[0].payload.correction.corrects_event_id"),
        ),
        case(
            "replacement with a bad field",
            vec![event(
                M,
                p,
                "",
                correction(
                    &b.check_id,
                    pb::CorrectionAction::Replace,
                    Some(health_check(-5)),
                ),
            )],
            field("events[0].payload.correction.replacement.health_check.date"),
        ),
        case(
            "pause without reason",
            vec![event(
                M,
                p,
                "S-RUN",
                Kind::ServicePaused(pb::ServicePaused {
                    date: days_ago(1),
                    reason: 0,
                }),
            )],
            field("events[0].payload.service_paused.reason"),
        ),
        case(
            "end without reason",
            vec![event(
                M,
                p,
                "S-RUN",
                Kind::ServiceEnded(pb::ServiceEnded {
                    end_date: days_ago(1),
                    reason: 0,
                }),
            )],
            field("events[0].payload.service_ended.reason"),
        ),
        case(
            "event_id reused with other content",
            vec![with(ok(), |e| e.event_id = b.check_id.clone())],
            field("events[0].event_id"),
        ),
        case(
            "event_id twice in one batch, different content",
            vec![
                with(ok(), |e| {
                    e.event_id = "00000000-0000-4000-8000-ffffffffffff".into()
                }),
                with(event(M, p, "", health_check(5)), |e| {
                    e.event_id = "00000000-0000-4000-8000-ffffffffffff".into()
                }),
            ],
            field("events[1].event_id"),
        ),
        // Lifecycle rules.
        case(
            "start without a decision",
            vec![svc(started(1))],
            rule("START_NEEDS_GRANTED_DECISION"),
        ),
        case(
            "start of a refused service",
            vec![event(M, &b.p_refused, "S-REF", started(1))],
            rule("START_NEEDS_GRANTED_DECISION"),
        ),
        case(
            "second start",
            vec![event(M, p, "S-RUN", started(1))],
            rule("SERVICE_ALREADY_STARTED"),
        ),
        case(
            "start long before validity",
            vec![svc(decided("15", Some(3.0), 3)), svc(started(70))],
            rule("START_BEFORE_VALIDITY"),
        ),
        case(
            "second end",
            vec![event(
                M,
                &b.p_ended,
                "S-END",
                Kind::ServiceEnded(pb::ServiceEnded {
                    end_date: days_ago(1),
                    reason: pb::EndReason::Other as i32,
                }),
            )],
            rule("SERVICE_ALREADY_ENDED"),
        ),
        case(
            "end before start",
            vec![event(
                M,
                p,
                "S-RUN",
                Kind::ServiceEnded(pb::ServiceEnded {
                    end_date: days_ago(25),
                    reason: pb::EndReason::Other as i32,
                }),
            )],
            rule("END_BEFORE_START"),
        ),
        case(
            "resume without pause",
            vec![event(
                M,
                p,
                "S-RUN",
                Kind::ServiceResumed(pb::ServiceResumed { date: days_ago(1) }),
            )],
            rule("SERVICE_NOT_PAUSED"),
        ),
        case(
            "pause twice",
            vec![
                event(
                    M,
                    p,
                    "S-RUN",
                    Kind::ServicePaused(pb::ServicePaused {
                        date: days_ago(3),
                        reason: pb::PauseReason::SpecialistCareStay as i32,
                    }),
                ),
                event(
                    M,
                    p,
                    "S-RUN",
                    Kind::ServicePaused(pb::ServicePaused {
                        date: days_ago(2),
                        reason: pb::PauseReason::Other as i32,
                    }),
                ),
            ],
            rule("SERVICE_ALREADY_PAUSED"),
        ),
        case(
            "hours change before start",
            vec![
                svc(decided("15", Some(3.0), 3)),
                svc(Kind::ServiceHoursChanged(pb::ServiceHoursChanged {
                    effective_date: days_ago(1),
                    hours: Some(pb::service_hours_changed::Hours::HoursPerWeek(4.0)),
                })),
            ],
            rule("SERVICE_NOT_STARTED"),
        ),
        case(
            "hours change after end",
            vec![event(
                M,
                &b.p_ended,
                "S-END",
                Kind::ServiceHoursChanged(pb::ServiceHoursChanged {
                    effective_date: days_ago(1),
                    hours: Some(pb::service_hours_changed::Hours::HoursPerWeek(4.0)),
                }),
            )],
            rule("SERVICE_ALREADY_ENDED"),
        ),
        case(
            "event after death",
            vec![event(M, &b.p_dead, "", health_check(1))],
            rule("EVENT_AFTER_DEATH"),
        ),
        case(
            "second death",
            vec![event(
                M,
                &b.p_dead,
                "",
                Kind::PersonDied(pb::PersonDied {
                    date_of_death: days_ago(2),
                }),
            )],
            rule("ALREADY_DIED"),
        ),
        case(
            "correction of an unknown event",
            vec![event(
                M,
                p,
                "",
                correction(
                    "00000000-0000-4000-8000-eeeeeeeeeeee",
                    pb::CorrectionAction::Void,
                    None,
                ),
            )],
            rule("CORRECTED_EVENT_NOT_FOUND"),
        ),
        case(
            "correction from another municipality",
            vec![event(
                "4601",
                p,
                "",
                correction(&b.check_id, pb::CorrectionAction::Void, None),
            )],
            rule("CORRECTED_EVENT_NOT_FOUND"),
        ),
        case(
            "decision before the application",
            vec![event(M, p, "S-RUN", decided("15", Some(4.0), 50))],
            rule("DECISION_BEFORE_APPLICATION"),
        ),
        case(
            "replacement of another kind",
            vec![event(
                M,
                p,
                "",
                correction(
                    &b.check_id,
                    pb::CorrectionAction::Replace,
                    Some(Kind::PersonDied(pb::PersonDied {
                        date_of_death: days_ago(1),
                    })),
                ),
            )],
            rule("REPLACEMENT_KIND_MISMATCH"),
        ),
        case(
            "void that breaks the history",
            vec![event(
                M,
                p,
                "S-RUN",
                correction(&b.running_decision_id, pb::CorrectionAction::Void, None),
            )],
            rule("CORRECTION_BREAKS_HISTORY"),
        ),
        case(
            "service_id of another person",
            vec![event(
                M,
                &b.p_ended,
                "S-RUN",
                Kind::ServiceResumed(pb::ServiceResumed { date: days_ago(1) }),
            )],
            rule("SERVICE_OF_ANOTHER_PERSON"),
        ),
    ];
    cases.retain(|c| !c.name.is_empty());
    cases
}

fn invalid_date_id() -> String {
    // 30 February 1950, synthetic month, with valid control digits.
    for individual in 0..500u32 {
        let digits = format!("308250{individual:03}");
        let nine: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
        if let Some(id) = kpr_domain::national_id::with_control_digits(nine.try_into().unwrap()) {
            return id.iter().map(|d| char::from(b'0' + d)).collect();
        }
    }
    unreachable!()
}

fn opposite_sex(id: &str) -> i32 {
    let digit9 = id.as_bytes()[8] - b'0';
    if digit9 % 2 == 1 {
        pb::Sex::Female as i32
    } else {
        pb::Sex::Male as i32
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_refused_precisely_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline();
    let server = InProcess::start(config(dir.path())).await;
    let mut client = server.client().await;
    client
        .append(server.authed(pb::AppendRequest {
            events: base.events.clone(),
        }))
        .await
        .unwrap();
    server.stop().await;
    let before = read_log(dir.path()).await;
    assert_eq!(before.len(), base.events.len());

    let server = InProcess::start(config(dir.path())).await;
    let mut client = server.client().await;
    let cases = corpus(&base);
    assert!(
        cases.len() > 40,
        "the corpus has only {} cases",
        cases.len()
    );
    let ids = [
        &base.p_running,
        &base.p_ended,
        &base.p_refused,
        &base.p_dead,
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let status = match client
            .append(server.authed(pb::AppendRequest {
                events: case.batch.clone(),
            }))
            .await
        {
            Ok(ok) => {
                failures.push(format!(
                    "{}: accepted ({} acks)",
                    case.name,
                    ok.into_inner().acks.len()
                ));
                continue;
            }
            Err(status) => status,
        };
        if ids.iter().any(|id| status.message().contains(id.as_str())) {
            failures.push(format!(
                "{}: the error text contains a national id",
                case.name
            ));
        }
        let found = match &case.expect {
            Expect::Field(path) => {
                let fields: Vec<String> = status
                    .get_details_bad_request()
                    .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                    .unwrap_or_default();
                (status.code() == Code::InvalidArgument && fields.iter().any(|f| f == path))
                    .then_some(())
                    .ok_or(format!("{:?} {fields:?}", status.code()))
            }
            Expect::Rule(rule) => {
                let rules: Vec<String> = status
                    .get_details_precondition_failure()
                    .map(|p| p.violations.into_iter().map(|v| v.r#type).collect())
                    .unwrap_or_default();
                (status.code() == Code::FailedPrecondition && rules.iter().any(|r| r == rule))
                    .then_some(())
                    .ok_or(format!("{:?} {rules:?}", status.code()))
            }
            Expect::Denied(other) => {
                let reason = status.get_details_error_info().map(|i| i.reason);
                (status.code() == Code::PermissionDenied
                    && reason.as_deref() == Some("WRONG_MUNICIPALITY")
                    && status.message().contains(other))
                .then_some(())
                .ok_or(format!("{:?} {reason:?}", status.code()))
            }
            Expect::TooLarge => {
                let named = status.message().contains(&(256 * 1024).to_string());
                (matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted) && named)
                    .then_some(())
                    .ok_or(format!("{:?} {}", status.code(), status.message()))
            }
        };
        if let Err(got) = found {
            failures.push(format!("{}: got {got}: {}", case.name, status.message()));
        }
    }
    server.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let after = read_log(dir.path()).await;
    assert_eq!(after, before, "the log changed");
}
