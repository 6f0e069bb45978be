//! Events as the domain sees them: an envelope and one payload, with values already
//! parsed (dates, codes, hours). The envelope is generic over the person so that the
//! same types carry a raw person between decoding and pseudonymisation, and a
//! pseudonymised one everywhere after.

use crate::date::Date;
use crate::municipality::MunicipalityCode;
use crate::person::{PersonRef, RawPerson, Sex};
use crate::service::ServiceCode;

/// The sender-chosen UUID of an event (the idempotency key), as 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub [u8; 16]);

impl std::fmt::Debug for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventId({self})")
    }
}

impl std::fmt::Display for EventId {
    /// Hyphenated lowercase UUID form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Hours per week in hundredths (0.01 h), the stored unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CentiHours(pub u32);

impl CentiHours {
    /// The upper bound: 168 hours per week.
    pub const MAX: CentiHours = CentiHours(16_800);

    /// As fractional hours.
    pub fn hours(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

/// Outcome of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Granted.
    Granted,
    /// Refused.
    Refused,
}

/// Sub-code of service 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RespiteKind {
    /// 08.01 rolling.
    Rolling,
    /// 08.02 not rolling.
    NotRolling,
}

/// Why a service ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The person died.
    Died,
    /// Moved to an institution.
    ToInstitution,
    /// No longer needed.
    NoLongerNeeded,
    /// Moved out of the municipality.
    MovedOut,
    /// Other.
    Other,
}

/// Why a service was paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PauseReason {
    /// A stay in specialist care.
    SpecialistCareStay,
    /// Travel.
    Travel,
    /// Other or not given.
    Other,
}

/// Kind of health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckKind {
    /// Physician's assessment.
    Physician,
    /// Dental check.
    Dental,
    /// Medication review.
    MedicationReview,
    /// Nutrition screening.
    NutritionScreening,
}

/// The 17 functional assessment variables, numbered as in the protos (1-17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variable(u8);

/// Area of a functional assessment variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Social participation, daily decisions, behaviour control, memory, communication.
    SocialCognitive,
    /// Housework, shopping, cooking, managing own health.
    Practical,
    /// Hygiene, dressing, eating, toileting, moving indoors and outdoors.
    PersonalCare,
    /// Vision and hearing (not used for the need level).
    Senses,
}

impl Variable {
    /// The variable with proto number `n` (1-17).
    pub fn from_number(n: u32) -> Option<Variable> {
        (1..=17).contains(&n).then_some(Variable(n as u8))
    }

    /// Its proto number.
    pub fn number(self) -> u8 {
        self.0
    }

    /// Its area.
    pub fn area(self) -> Area {
        match self.0 {
            1..=5 => Area::SocialCognitive,
            6..=9 => Area::Practical,
            10..=15 => Area::PersonalCare,
            _ => Area::Senses,
        }
    }
}

/// A decision (vedtak).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Service code.
    pub code: ServiceCode,
    /// Sub-code, required for code 8.
    pub respite_kind: Option<RespiteKind>,
    /// Granted or refused.
    pub outcome: Outcome,
    /// Decision date.
    pub decision_date: Date,
    /// First day of validity.
    pub valid_from: Date,
    /// Last day of validity, if limited.
    pub valid_to: Option<Date>,
    /// Hours per week, for codes measured in hours.
    pub hours: Option<CentiHours>,
    /// Provider organisation number, if given.
    pub provider_org_number: Option<String>,
}

/// One payload of SPEC 4.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    /// An application.
    ServiceApplied {
        /// Service code.
        code: ServiceCode,
        /// Application date.
        application_date: Date,
    },
    /// A decision.
    ServiceDecided(Decision),
    /// The service began.
    ServiceStarted {
        /// Start date.
        start_date: Date,
    },
    /// New hours from a date.
    ServiceHoursChanged {
        /// Effective date.
        effective_date: Date,
        /// New hours per week.
        hours: CentiHours,
    },
    /// Paused from a date.
    ServicePaused {
        /// First paused day.
        date: Date,
        /// Reason.
        reason: PauseReason,
    },
    /// Resumed on a date (the day is active again).
    ServiceResumed {
        /// Resume date.
        date: Date,
    },
    /// Ended on a date (the day itself is still active).
    ServiceEnded {
        /// End date.
        end_date: Date,
        /// Reason.
        reason: EndReason,
    },
    /// Entered the waiting list for a long-term stay.
    WaitingListEntered {
        /// Always 21.
        code: ServiceCode,
        /// Date of entry.
        date: Date,
    },
    /// A functional assessment.
    FunctionalAssessment {
        /// Date.
        date: Date,
        /// Scores 1-5 or 9, at most one per variable, in variable order.
        scores: Vec<(Variable, u8)>,
    },
    /// A health check.
    HealthCheck {
        /// Kind.
        kind: CheckKind,
        /// Date.
        date: Date,
        /// Nutrition screening: at risk.
        at_risk: Option<bool>,
        /// Nutrition screening: plan made.
        plan_made: Option<bool>,
    },
    /// Death.
    PersonDied {
        /// Date of death.
        date_of_death: Date,
    },
    /// A correction of an earlier event.
    Correction(Correction),
}

/// A correction (SPEC 4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Correction {
    /// The corrected event.
    pub corrects: EventId,
    /// VOID, or REPLACE with a replacement payload.
    pub action: CorrectionAction,
}

/// What a correction does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CorrectionAction {
    /// The corrected event counts as never sent.
    Void,
    /// The corrected event counts as if this payload had been sent in its place.
    Replace(Box<Payload>),
}

/// Payload kinds, for messages and for "same kind" checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// ServiceApplied.
    ServiceApplied,
    /// ServiceDecided.
    ServiceDecided,
    /// ServiceStarted.
    ServiceStarted,
    /// ServiceHoursChanged.
    ServiceHoursChanged,
    /// ServicePaused.
    ServicePaused,
    /// ServiceResumed.
    ServiceResumed,
    /// ServiceEnded.
    ServiceEnded,
    /// WaitingListEntered.
    WaitingListEntered,
    /// FunctionalAssessment.
    FunctionalAssessment,
    /// HealthCheck.
    HealthCheck,
    /// PersonDied.
    PersonDied,
    /// Correction.
    Correction,
}

impl PayloadKind {
    /// The proto field name of the payload.
    pub fn field_name(self) -> &'static str {
        match self {
            PayloadKind::ServiceApplied => "service_applied",
            PayloadKind::ServiceDecided => "service_decided",
            PayloadKind::ServiceStarted => "service_started",
            PayloadKind::ServiceHoursChanged => "service_hours_changed",
            PayloadKind::ServicePaused => "service_paused",
            PayloadKind::ServiceResumed => "service_resumed",
            PayloadKind::ServiceEnded => "service_ended",
            PayloadKind::WaitingListEntered => "waiting_list_entered",
            PayloadKind::FunctionalAssessment => "functional_assessment",
            PayloadKind::HealthCheck => "health_check",
            PayloadKind::PersonDied => "person_died",
            PayloadKind::Correction => "correction",
        }
    }

    /// Whether the payload belongs to a service episode (needs a service_id).
    pub fn is_service_event(self) -> bool {
        matches!(
            self,
            PayloadKind::ServiceApplied
                | PayloadKind::ServiceDecided
                | PayloadKind::ServiceStarted
                | PayloadKind::ServiceHoursChanged
                | PayloadKind::ServicePaused
                | PayloadKind::ServiceResumed
                | PayloadKind::ServiceEnded
        )
    }
}

impl Payload {
    /// The kind of this payload.
    pub fn kind(&self) -> PayloadKind {
        match self {
            Payload::ServiceApplied { .. } => PayloadKind::ServiceApplied,
            Payload::ServiceDecided(_) => PayloadKind::ServiceDecided,
            Payload::ServiceStarted { .. } => PayloadKind::ServiceStarted,
            Payload::ServiceHoursChanged { .. } => PayloadKind::ServiceHoursChanged,
            Payload::ServicePaused { .. } => PayloadKind::ServicePaused,
            Payload::ServiceResumed { .. } => PayloadKind::ServiceResumed,
            Payload::ServiceEnded { .. } => PayloadKind::ServiceEnded,
            Payload::WaitingListEntered { .. } => PayloadKind::WaitingListEntered,
            Payload::FunctionalAssessment { .. } => PayloadKind::FunctionalAssessment,
            Payload::HealthCheck { .. } => PayloadKind::HealthCheck,
            Payload::PersonDied { .. } => PayloadKind::PersonDied,
            Payload::Correction(_) => PayloadKind::Correction,
        }
    }

    /// The effective date (SPEC 5.4). A correction has none of its own: its effective
    /// date is the corrected event's, which only the state knows.
    pub fn effective_date(&self) -> Option<Date> {
        Some(match self {
            Payload::ServiceApplied {
                application_date, ..
            } => *application_date,
            Payload::ServiceDecided(d) => d.decision_date,
            Payload::ServiceStarted { start_date } => *start_date,
            Payload::ServiceHoursChanged { effective_date, .. } => *effective_date,
            Payload::ServicePaused { date, .. } | Payload::ServiceResumed { date } => *date,
            Payload::ServiceEnded { end_date, .. } => *end_date,
            Payload::WaitingListEntered { date, .. }
            | Payload::FunctionalAssessment { date, .. }
            | Payload::HealthCheck { date, .. } => *date,
            Payload::PersonDied { date_of_death } => *date_of_death,
            Payload::Correction(_) => return None,
        })
    }
}

/// The envelope of SPEC 4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<P> {
    /// Idempotency key.
    pub event_id: EventId,
    /// 2024 municipality code the event counts under.
    pub municipality: MunicipalityCode,
    /// The code as sent, when it differs from `municipality`.
    pub municipality_as_sent: Option<String>,
    /// EHR product.
    pub source_system: String,
    /// EHR product version.
    pub source_version: String,
    /// When the EHR registered the fact (Unix ms).
    pub recorded_at_unix_ms: i64,
    /// The person.
    pub person: P,
    /// The EHR's id of the service episode; empty for events that are not about a service.
    pub service_id: String,
}

/// An event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<P> {
    /// Envelope.
    pub envelope: Envelope<P>,
    /// Payload.
    pub payload: Payload,
}

/// An event as sent, after syntactic decoding (raw person, municipality not resolved).
#[derive(Clone, Debug, PartialEq)]
pub struct Submitted {
    /// Idempotency key.
    pub event_id: EventId,
    /// Municipality code as sent.
    pub municipality: String,
    /// Successor for 1507, as sent (may be empty).
    pub successor_municipality: String,
    /// EHR product.
    pub source_system: String,
    /// EHR version.
    pub source_version: String,
    /// When the EHR registered it (Unix ms).
    pub recorded_at_unix_ms: i64,
    /// Person as sent.
    pub person: RawPerson,
    /// Service episode id as sent.
    pub service_id: String,
    /// Payload.
    pub payload: Payload,
}

/// What a validated submission says about its person, for pseudonymisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersonFacts {
    /// Birth year (from the id or the event).
    pub birth_year: u16,
    /// Sex (from the id or the event).
    pub sex: Sex,
}

/// A stored event as the write side and projections read it back.
pub type StoredEvent = Event<PersonRef>;
