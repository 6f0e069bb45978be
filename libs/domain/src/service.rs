//! Service codes (Volven 9151, SPEC 3): measure, group and the named code sets.

/// How a service is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Hours per week, part of the decision.
    Hours,
    /// Counted in days.
    Days,
    /// Presence only.
    Presence,
}

/// The 'group' column of SPEC 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceGroup {
    /// Home services.
    Home,
    /// Activity services.
    Activity,
    /// Welfare technology.
    WelfareTechnology,
    /// Institution services.
    Institution,
    /// Coercion measures.
    Coercion,
    /// Housing.
    Housing,
}

impl ServiceGroup {
    /// All groups in report order.
    pub const ALL: [ServiceGroup; 6] = [
        ServiceGroup::Home,
        ServiceGroup::Activity,
        ServiceGroup::WelfareTechnology,
        ServiceGroup::Institution,
        ServiceGroup::Coercion,
        ServiceGroup::Housing,
    ];

    /// Short machine name.
    pub fn name(self) -> &'static str {
        match self {
            ServiceGroup::Home => "home",
            ServiceGroup::Activity => "activity",
            ServiceGroup::WelfareTechnology => "welfare_technology",
            ServiceGroup::Institution => "institution",
            ServiceGroup::Coercion => "coercion",
            ServiceGroup::Housing => "housing",
        }
    }
}

/// A valid, current service code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceCode(u8);

/// One row of the code table.
#[derive(Clone, Copy, Debug)]
pub struct ServiceInfo {
    /// The code number.
    pub code: u8,
    /// Norwegian name.
    pub name_nb: &'static str,
    /// English name.
    pub name_en: &'static str,
    /// Measure.
    pub measure: Measure,
    /// Group.
    pub group: ServiceGroup,
}

use Measure::{Days as D, Hours as H, Presence as P};
use ServiceGroup as G;

/// The code table of SPEC 3, in code order.
pub const SERVICES: [ServiceInfo; 25] = [
    info(
        1,
        "Praktisk bistand – daglige gjøremål",
        "practical help, daily tasks",
        H,
        G::Home,
    ),
    info(
        2,
        "Praktisk bistand – opplæring – daglige gjøremål",
        "training in daily tasks",
        H,
        G::Home,
    ),
    info(
        3,
        "Brukerstyrt personlig assistanse (BPA)",
        "user-controlled personal assistance",
        H,
        G::Home,
    ),
    info(
        4,
        "Dagaktivitetstilbud",
        "day activity place",
        H,
        G::Activity,
    ),
    info(5, "Matombringing", "meals on wheels", P, G::Activity),
    info(6, "Trygghetsalarm", "safety alarm", P, G::WelfareTechnology),
    info(
        7,
        "Avlastning utenfor institusjon",
        "respite outside institution",
        H,
        G::Home,
    ),
    info(
        8,
        "Avlastning i institusjon",
        "respite stay in institution",
        D,
        G::Institution,
    ),
    info(9, "Støttekontakt", "support contact", H, G::Activity),
    info(11, "Omsorgsstønad", "caregiver allowance", H, G::Home),
    info(
        14,
        "Tvang – psykisk utviklingshemmede",
        "coercion measures",
        P,
        G::Coercion,
    ),
    info(
        15,
        "Helsetjenester i hjemmet",
        "home health care (home nursing)",
        H,
        G::Home,
    ),
    info(
        17,
        "Dagopphold i institusjon",
        "day stay in institution",
        H,
        G::Institution,
    ),
    info(
        18,
        "Tidsbegrenset opphold – utredning/behandling",
        "short-term stay, assessment/treatment",
        D,
        G::Institution,
    ),
    info(
        19,
        "Tidsbegrenset opphold – habilitering/rehabilitering",
        "short-term stay, (re)habilitation",
        D,
        G::Institution,
    ),
    info(
        20,
        "Tidsbegrenset opphold – annet",
        "short-term stay, other",
        D,
        G::Institution,
    ),
    info(
        21,
        "Langtidsopphold i institusjon",
        "long-term stay",
        D,
        G::Institution,
    ),
    info(
        22,
        "Nattopphold i institusjon",
        "night stay in institution",
        H,
        G::Institution,
    ),
    info(
        23,
        "Tvang – psykisk utviklingshemmede (annet grunnlag)",
        "coercion measures",
        P,
        G::Coercion,
    ),
    info(
        24,
        "Helsehjelp med tvang",
        "compulsory health care",
        P,
        G::Coercion,
    ),
    info(
        25,
        "Kommunal øyeblikkelig hjelp – døgnopphold",
        "municipal acute 24-hour bed",
        D,
        G::Institution,
    ),
    info(
        26,
        "Lokaliseringsteknologi",
        "location technology",
        P,
        G::WelfareTechnology,
    ),
    info(
        27,
        "Elektronisk medisineringsstøtte",
        "electronic medication support",
        P,
        G::WelfareTechnology,
    ),
    info(
        28,
        "Digitalt tilsyn",
        "digital supervision",
        P,
        G::WelfareTechnology,
    ),
    info(
        29,
        "Bolig kommunen disponerer for helse- og omsorgsformål",
        "municipal care housing",
        P,
        G::Housing,
    ),
];

const fn info(
    code: u8,
    name_nb: &'static str,
    name_en: &'static str,
    measure: Measure,
    group: ServiceGroup,
) -> ServiceInfo {
    ServiceInfo {
        code,
        name_nb,
        name_en,
        measure,
        group,
    }
}

/// Why a service code is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceCodeError {
    /// Not a number of one or two digits.
    #[error("service code must be a number such as \"15\"")]
    Format,
    /// Retired, with a successor to use instead.
    #[error("service code {code} is retired; use {successor} instead")]
    RetiredWithSuccessor {
        /// The retired code.
        code: u8,
        /// Its successor.
        successor: u8,
    },
    /// Retired, no successor.
    #[error("service code {0} is retired")]
    Retired(u8),
    /// Not in code set 9151.
    #[error("service code {0} is not in code set 9151")]
    Unknown(u32),
}

impl ServiceCode {
    /// Parses a code given as text ("15", "08").
    pub fn parse(text: &str) -> Result<ServiceCode, ServiceCodeError> {
        if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ServiceCodeError::Format);
        }
        let number: u32 = text
            .bytes()
            .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'));
        ServiceCode::from_number(number)
    }

    /// The code from its number, refusing retired and unknown codes.
    pub fn from_number(number: u32) -> Result<ServiceCode, ServiceCodeError> {
        match number {
            12 | 13 => Err(ServiceCodeError::RetiredWithSuccessor {
                code: number as u8,
                successor: 29,
            }),
            10 | 16 => Err(ServiceCodeError::Retired(number as u8)),
            n if SERVICES.iter().any(|s| u32::from(s.code) == n) => Ok(ServiceCode(n as u8)),
            n => Err(ServiceCodeError::Unknown(n)),
        }
    }

    /// The code number.
    pub fn number(self) -> u8 {
        self.0
    }

    /// The table row of this code.
    pub fn info(self) -> &'static ServiceInfo {
        // Every ServiceCode was built from the table, so the search always succeeds;
        // the fallback row keeps the function total.
        SERVICES
            .iter()
            .find(|s| s.code == self.0)
            .unwrap_or(&SERVICES[0])
    }

    /// Measure of this code.
    pub fn measure(self) -> Measure {
        self.info().measure
    }

    /// Group of this code.
    pub fn group(self) -> ServiceGroup {
        self.info().group
    }

    /// KOSTRA home services {1, 2, 3, 7, 11, 15}.
    pub fn is_home(self) -> bool {
        matches!(self.0, 1 | 2 | 3 | 7 | 11 | 15)
    }

    /// Short-term stays {18, 19, 20}.
    pub fn is_short(self) -> bool {
        matches!(self.0, 18..=20)
    }

    /// Long-term stay {21}.
    pub fn is_long(self) -> bool {
        self.0 == 21
    }

    /// Institution {8, 18, 19, 20, 21}.
    pub fn is_institution(self) -> bool {
        matches!(self.0, 8 | 18..=21)
    }

    /// Hours total {1, 2, 3, 4, 7, 9, 11, 15, 17, 22}.
    pub fn is_hours_total(self) -> bool {
        matches!(self.0, 1 | 2 | 3 | 4 | 7 | 9 | 11 | 15 | 17 | 22)
    }

    /// Stay-day codes of T4: 8, 18-21 and 25.
    pub fn is_stay_days(self) -> bool {
        matches!(self.0, 8 | 18..=21 | 25)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(ServiceCode::parse("15").unwrap().measure(), Measure::Hours);
        assert_eq!(ServiceCode::parse("08").unwrap().number(), 8);
        assert_eq!(
            ServiceCode::parse("12"),
            Err(ServiceCodeError::RetiredWithSuccessor {
                code: 12,
                successor: 29
            })
        );
        assert_eq!(ServiceCode::parse("16"), Err(ServiceCodeError::Retired(16)));
        assert_eq!(ServiceCode::parse("30"), Err(ServiceCodeError::Unknown(30)));
        assert_eq!(ServiceCode::parse("x"), Err(ServiceCodeError::Format));
        assert_eq!(ServiceCode::parse(""), Err(ServiceCodeError::Format));
    }

    #[test]
    fn table_is_in_code_order_and_groups_agree() {
        assert!(SERVICES.windows(2).all(|w| w[0].code < w[1].code));
        for s in SERVICES {
            let code = ServiceCode::from_number(u32::from(s.code)).unwrap();
            assert_eq!(code.is_home(), code.group() == ServiceGroup::Home);
        }
    }
}
