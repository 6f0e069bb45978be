//! A service episode as the statistics see it (SPEC 5.1): built from the episode's
//! effective events in log order (corrections already applied) and the person's date
//! of death, it answers "active on day X", "hours on day X" and "active days in P".

use kpr_domain::date::Date;
use kpr_domain::event::{CentiHours, EndReason, Outcome};

use crate::fact::Fact;
use kpr_domain::service::ServiceCode;

/// One service episode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Episode {
    /// Code of the decision in force (the latest in log order).
    pub code: ServiceCode,
    /// The decision in force granted the service.
    pub granted: bool,
    /// Decision date of the decision in force.
    pub decision_date: Date,
    /// Latest application date, if the service was applied for.
    pub application_date: Option<Date>,
    /// Start date.
    pub start: Option<Date>,
    /// End date and reason.
    pub end: Option<(Date, EndReason)>,
    /// Last active day: the earliest of end date, `valid_to` and date of death.
    pub last_day: Option<Date>,
    /// Pauses `[from, to)`, paired in log order; `None` = not resumed.
    pub pauses: Vec<(Date, Option<Date>)>,
    /// Hours of the decision in force.
    pub decided_hours: Option<CentiHours>,
    /// Hours changes: effective date, log sequence, hours.
    pub hours_changes: Vec<(Date, u32, CentiHours)>,
}

impl Episode {
    /// Builds the episode from its effective events in log order, or `None` when no
    /// decision is in force (an application alone is no episode).
    pub fn from_events<'a>(
        events: impl IntoIterator<Item = &'a Fact>,
        death: Option<Date>,
    ) -> Option<Episode> {
        let mut decision = None;
        let mut application_date = None;
        let mut start = None;
        let mut end = None;
        let mut pauses: Vec<(Date, Option<Date>)> = Vec::new();
        let mut hours_changes = Vec::new();
        for (seq, fact) in events.into_iter().enumerate() {
            match *fact {
                Fact::Applied { date } => application_date = Some(date),
                Fact::Decided {
                    code,
                    outcome,
                    date,
                    valid_to,
                    hours,
                } => decision = Some((code, outcome, date, valid_to.get(), hours.get())),
                Fact::Started { date } => {
                    start.get_or_insert(date);
                }
                Fact::HoursChanged { date, hours } => hours_changes.push((date, seq as u32, hours)),
                Fact::Paused { date }
                    if pauses.last().is_none_or(|(_, resumed)| resumed.is_some()) =>
                {
                    pauses.push((date, None));
                }
                Fact::Resumed { date } => {
                    if let Some(open) = pauses.last_mut().filter(|(_, resumed)| resumed.is_none()) {
                        open.1 = Some(date);
                    }
                }
                Fact::Ended { date, reason } => {
                    end.get_or_insert((date, reason));
                }
                _ => {}
            }
        }
        let (code, outcome, decision_date, valid_to, decided_hours) = decision?;
        let last_day = [end.map(|(d, _)| d), valid_to, death]
            .into_iter()
            .flatten()
            .min();
        Some(Episode {
            code,
            granted: outcome == Outcome::Granted,
            decision_date,
            application_date,
            start,
            end,
            last_day,
            pauses,
            decided_hours,
            hours_changes,
        })
    }

    fn paused_on(&self, day: Date) -> bool {
        self.pauses
            .iter()
            .any(|(from, to)| *from <= day && to.is_none_or(|to| day < to))
    }

    /// Whether the service is active on `day`.
    pub fn active_on(&self, day: Date) -> bool {
        self.granted
            && self.start.is_some_and(|s| s <= day)
            && self.last_day.is_none_or(|last| day <= last)
            && !self.paused_on(day)
    }

    /// Hours per week on `day` (the decision's, overridden by the latest change in
    /// effect; among changes on one date the later in log order wins).
    pub fn hours_on(&self, day: Date) -> Option<CentiHours> {
        self.hours_changes
            .iter()
            .filter(|(date, _, _)| *date <= day)
            .max_by_key(|(date, seq, _)| (*date, *seq))
            .map(|(_, _, h)| *h)
            .or(self.decided_hours)
    }

    /// Number of active days within `[from, to]`.
    pub fn active_days(&self, from: Date, to: Date) -> u32 {
        if !self.granted {
            return 0;
        }
        let Some(start) = self.start else { return 0 };
        let first = from.max(start);
        let last = self.last_day.map_or(to, |l| l.min(to));
        if last < first {
            return 0;
        }
        let span = first.days_until(last) + 1;
        // Paused days inside [first, last]; pauses never overlap (paired in log order),
        // but clip each to the window.
        let paused: i32 = self
            .pauses
            .iter()
            .map(|(p_from, p_to)| {
                let a = (*p_from).max(first);
                let b = p_to.map_or(last, |t| t.add_days(-1)).min(last);
                if b < a { 0 } else { a.days_until(b) + 1 }
            })
            .sum();
        (span - paused).max(0) as u32
    }

    /// Whether the service is active on at least one day of `[from, to]`.
    pub fn active_during(&self, from: Date, to: Date) -> bool {
        self.active_days(from, to) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpr_domain::event::{Decision, PauseReason, Payload};

    fn facts(payloads: &[Payload]) -> Vec<Fact> {
        payloads
            .iter()
            .filter_map(Fact::of_service_payload)
            .collect()
    }

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    fn decided(valid_to: Option<&str>, hours: u32) -> Payload {
        Payload::ServiceDecided(Decision {
            code: ServiceCode::from_number(15).unwrap(),
            respite_kind: None,
            outcome: Outcome::Granted,
            decision_date: d("2024-01-01"),
            valid_from: d("2024-01-01"),
            valid_to: valid_to.map(d),
            hours: Some(CentiHours(hours)),
            provider_org_number: None,
        })
    }

    /// Active days counted one by one: the reference the interval arithmetic must match.
    fn brute_days(e: &Episode, from: Date, to: Date) -> u32 {
        let mut n = 0;
        let mut day = from;
        while day <= to {
            n += u32::from(e.active_on(day));
            day = day.add_days(1);
        }
        n
    }

    #[test]
    fn frames_of_spec_5_1() {
        let events = vec![
            decided(Some("2024-12-31"), 500),
            Payload::ServiceStarted {
                start_date: d("2024-02-01"),
            },
            Payload::ServicePaused {
                date: d("2024-03-01"),
                reason: PauseReason::SpecialistCareStay,
            },
            Payload::ServiceResumed {
                date: d("2024-03-11"),
            },
            Payload::ServiceHoursChanged {
                effective_date: d("2024-04-01"),
                hours: CentiHours(700),
            },
            Payload::ServiceHoursChanged {
                effective_date: d("2024-04-01"),
                hours: CentiHours(800),
            },
            Payload::ServiceEnded {
                end_date: d("2024-06-30"),
                reason: EndReason::NoLongerNeeded,
            },
        ];
        let e = Episode::from_events(&facts(&events), None).unwrap();
        assert!(!e.active_on(d("2024-01-31")));
        assert!(e.active_on(d("2024-02-01")));
        assert!(!e.active_on(d("2024-03-01")) && !e.active_on(d("2024-03-10")));
        assert!(e.active_on(d("2024-03-11")), "the resume day is active");
        assert!(e.active_on(d("2024-06-30")), "the end day is active");
        assert!(!e.active_on(d("2024-07-01")));
        assert_eq!(e.hours_on(d("2024-03-31")), Some(CentiHours(500)));
        assert_eq!(
            e.hours_on(d("2024-04-01")),
            Some(CentiHours(800)),
            "later in log order wins"
        );
        // February 29 days + March 21 + April 30 + May 31 + June 30.
        assert_eq!(
            e.active_days(d("2024-01-01"), d("2024-12-31")),
            29 + 21 + 30 + 31 + 30
        );
        assert_eq!(
            e.active_days(d("2024-01-01"), d("2024-12-31")),
            brute_days(&e, d("2024-01-01"), d("2024-12-31"))
        );
    }

    #[test]
    fn death_and_valid_to_cut_the_episode() {
        let events = vec![
            decided(Some("2024-05-31"), 100),
            Payload::ServiceStarted {
                start_date: d("2024-02-01"),
            },
        ];
        let e = Episode::from_events(&facts(&events), Some(d("2024-04-15"))).unwrap();
        assert_eq!(e.last_day, Some(d("2024-04-15")));
        assert!(e.active_on(d("2024-04-15")), "alive on the day of death");
        assert!(!e.active_on(d("2024-04-16")));
        let unpaused = vec![
            decided(None, 100),
            Payload::ServiceStarted {
                start_date: d("2024-02-01"),
            },
            Payload::ServicePaused {
                date: d("2024-03-01"),
                reason: PauseReason::Other,
            },
        ];
        let e = Episode::from_events(&facts(&unpaused), None).unwrap();
        assert_eq!(
            e.active_days(d("2024-01-01"), d("2024-12-31")),
            29,
            "a pause without resume lasts to the last day"
        );
        assert_eq!(
            Episode::from_events(
                &facts(&[Payload::ServiceStarted {
                    start_date: d("2024-01-01")
                }]),
                None
            ),
            None
        );
    }

    #[test]
    fn interval_days_equal_day_by_day_counting() {
        // Deterministic variety of pause patterns and windows.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as i32
        };
        let base = d("2024-01-01");
        for _ in 0..300 {
            let mut events = vec![
                decided(None, 100),
                Payload::ServiceStarted {
                    start_date: base.add_days(next(60)),
                },
            ];
            let mut day = base.add_days(60);
            for _ in 0..next(4) {
                day = day.add_days(next(20));
                events.push(Payload::ServicePaused {
                    date: day,
                    reason: PauseReason::Other,
                });
                if next(3) > 0 {
                    day = day.add_days(1 + next(15));
                    events.push(Payload::ServiceResumed { date: day });
                }
            }
            if next(2) == 0 {
                events.push(Payload::ServiceEnded {
                    end_date: day.add_days(next(40)),
                    reason: EndReason::Other,
                });
            }
            let e = Episode::from_events(&facts(&events), None).unwrap();
            let from = base.add_days(next(120));
            let to = from.add_days(next(200));
            assert_eq!(
                e.active_days(from, to),
                brute_days(&e, from, to),
                "{events:?} {from} {to}"
            );
        }
    }
}
