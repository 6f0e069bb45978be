//! What the statistics keep of one event: a small `Copy` value instead of the whole
//! payload. Fields no figure reads (provider, respite sub-code, `valid_from`, pause
//! reasons, the envelope's versions and timestamps) are dropped; assessment scores and
//! replacement payloads live in side tables of the municipality, referred to by index,
//! so a fact is 16 bytes whatever the event (optional dates and hours of a decision
//! are kept in four bytes each, [`OptDate`] and [`OptHours`]).

use kpr_domain::date::Date;
use kpr_domain::event::{CentiHours, CheckKind, EndReason, Outcome, Payload};
use kpr_domain::service::ServiceCode;

/// An optional date in four bytes. No event date is `i32::MIN` days from 1970 (dates
/// are validated to years 1–9999), so that value stands for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptDate(i32);

impl OptDate {
    /// Packs an optional date.
    pub fn new(date: Option<Date>) -> OptDate {
        OptDate(date.map_or(i32::MIN, Date::days))
    }

    /// The date, if there is one.
    pub fn get(self) -> Option<Date> {
        (self.0 != i32::MIN).then(|| Date::from_days(self.0))
    }
}

/// Optional hours per week in four bytes (`u32::MAX` centi-hours stands for none;
/// validated hours are at most 168).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptHours(u32);

impl OptHours {
    /// Packs optional hours.
    pub fn new(hours: Option<CentiHours>) -> OptHours {
        OptHours(hours.map_or(u32::MAX, |h| h.0))
    }

    /// The hours, if given.
    pub fn get(self) -> Option<CentiHours> {
        (self.0 != u32::MAX).then_some(CentiHours(self.0))
    }
}

/// One event's content as the figures see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    /// Application for a service.
    Applied {
        /// Application date.
        date: Date,
    },
    /// Decision (the latest in log order is in force).
    Decided {
        /// Code decided on.
        code: ServiceCode,
        /// Granted or refused.
        outcome: Outcome,
        /// Decision date.
        date: Date,
        /// Last day of validity.
        valid_to: OptDate,
        /// Hours per week.
        hours: OptHours,
    },
    /// Service started.
    Started {
        /// Start date.
        date: Date,
    },
    /// Hours changed.
    HoursChanged {
        /// Effective date.
        date: Date,
        /// New hours per week.
        hours: CentiHours,
    },
    /// Service paused.
    Paused {
        /// First paused day.
        date: Date,
    },
    /// Service resumed.
    Resumed {
        /// First active day again.
        date: Date,
    },
    /// Service ended.
    Ended {
        /// Last active day.
        date: Date,
        /// Why.
        reason: EndReason,
    },
    /// Entered the waiting list for a long-term stay.
    Waiting {
        /// Date of entry.
        date: Date,
    },
    /// Functional assessment; its valid scores are `scores[start..start + len]` of the
    /// municipality's score table.
    Assessed {
        /// Assessment date.
        date: Date,
        /// First score in the side table.
        start: u32,
        /// Number of scores.
        len: u8,
    },
    /// Health check.
    Checked {
        /// Kind of check.
        kind: CheckKind,
        /// Date.
        date: Date,
        /// Nutrition screening: at risk.
        at_risk: Option<bool>,
        /// Nutrition screening: plan made.
        plan_made: Option<bool>,
    },
    /// Death.
    Died {
        /// Date of death.
        date: Date,
    },
    /// A correction of another event: void, or replace by the fact at `replacement` in
    /// the municipality's replacement table.
    Corrects {
        /// Replacement, `None` for VOID.
        replacement: Option<u32>,
    },
}

impl Fact {
    /// The date the fact takes effect on, if it has one of its own.
    pub fn date(&self) -> Option<Date> {
        match *self {
            Fact::Applied { date }
            | Fact::Decided { date, .. }
            | Fact::Started { date }
            | Fact::HoursChanged { date, .. }
            | Fact::Paused { date }
            | Fact::Resumed { date }
            | Fact::Ended { date, .. }
            | Fact::Waiting { date }
            | Fact::Assessed { date, .. }
            | Fact::Checked { date, .. }
            | Fact::Died { date } => Some(date),
            Fact::Corrects { .. } => None,
        }
    }

    /// The fact of a service payload (`None` for payloads of other kinds).
    pub fn of_service_payload(payload: &Payload) -> Option<Fact> {
        Some(match payload {
            Payload::ServiceApplied {
                application_date, ..
            } => Fact::Applied {
                date: *application_date,
            },
            Payload::ServiceDecided(d) => Fact::Decided {
                code: d.code,
                outcome: d.outcome,
                date: d.decision_date,
                valid_to: OptDate::new(d.valid_to),
                hours: OptHours::new(d.hours),
            },
            Payload::ServiceStarted { start_date } => Fact::Started { date: *start_date },
            Payload::ServiceHoursChanged {
                effective_date,
                hours,
            } => Fact::HoursChanged {
                date: *effective_date,
                hours: *hours,
            },
            Payload::ServicePaused { date, .. } => Fact::Paused { date: *date },
            Payload::ServiceResumed { date } => Fact::Resumed { date: *date },
            Payload::ServiceEnded { end_date, reason } => Fact::Ended {
                date: *end_date,
                reason: *reason,
            },
            // Named one by one, no wildcard: a new event kind must be placed here.
            Payload::WaitingListEntered { .. }
            | Payload::FunctionalAssessment { .. }
            | Payload::HealthCheck { .. }
            | Payload::PersonDied { .. }
            | Payload::Correction(_) => return None,
        })
    }

    /// A fact of a service's lifecycle (kept in the service's event list).
    pub fn is_service_fact(&self) -> bool {
        matches!(
            self,
            Fact::Applied { .. }
                | Fact::Decided { .. }
                | Fact::Started { .. }
                | Fact::HoursChanged { .. }
                | Fact::Paused { .. }
                | Fact::Resumed { .. }
                | Fact::Ended { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_is_small() {
        assert!(
            std::mem::size_of::<Fact>() <= 16,
            "{}",
            std::mem::size_of::<Fact>()
        );
    }

    #[test]
    fn packed_options_round_trip() {
        for date in [None, Date::from_ymd(1, 1, 1), Date::from_ymd(2024, 2, 29)] {
            assert_eq!(OptDate::new(date).get(), date);
        }
        for hours in [None, Some(CentiHours(0)), Some(CentiHours(16_800))] {
            assert_eq!(OptHours::new(hours).get(), hours);
        }
    }
}
