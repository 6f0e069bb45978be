//! Norwegian national identity numbers: fødselsnummer, D-number, H-number, synthetic
//! test numbers, and the 2032 control-digit rule (SPEC 1 and 5.4).
//!
//! Nothing in this module stores, prints or returns the id itself: errors say what is
//! wrong without echoing digits, so they can go to a client or a log line.

use crate::date::Date;
use crate::person::Sex;

/// Kind of number, from the offsets in its date digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// Ordinary birth number.
    BirthNumber,
    /// D-number: first digit + 4.
    DNumber,
    /// H-number: third digit + 4.
    HNumber,
}

/// What an id says about its holder, once its control digits hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdFacts {
    /// Birth number, D- or H-number.
    pub kind: IdKind,
    /// Month + 80: a synthetic test number.
    pub synthetic: bool,
    /// Only the 2032 rule made the first control digit hold.
    pub rule_2032: bool,
    /// Birth year, when the id gives it.
    pub birth_year: Option<u16>,
    /// Sex, when the id gives it.
    pub sex: Option<Sex>,
}

/// Why an id is refused. The messages never contain the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty.
    #[error("national id is missing")]
    Missing,
    /// Not 11 ASCII digits.
    #[error("national id must be exactly 11 digits")]
    Format,
    /// First control digit does not hold (under neither rule).
    #[error("first control digit of the national id does not match")]
    ControlDigit1,
    /// Second control digit does not hold.
    #[error("second control digit of the national id does not match")]
    ControlDigit2,
    /// Day or month digits are not a date, after the D/H/synthetic offsets.
    #[error("date digits of the national id are not a valid date")]
    DateDigits,
    /// A synthetic test number where the deployment does not accept them.
    #[error("synthetic test ids are not accepted by this deployment")]
    SyntheticNotAllowed,
}

const WEIGHTS_1: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const WEIGHTS_2: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

/// Checks an id and derives what it gives. `allow_synthetic` is the deployment setting
/// for test numbers (month + 80).
pub fn check_national_id(text: &str, allow_synthetic: bool) -> Result<IdFacts, IdError> {
    if text.is_empty() {
        return Err(IdError::Missing);
    }
    let bytes = text.as_bytes();
    if bytes.len() != 11 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(IdError::Format);
    }
    let d: Vec<u32> = bytes.iter().map(|b| u32::from(b - b'0')).collect();

    let sum2: u32 = WEIGHTS_2.iter().zip(&d).map(|(w, x)| w * x).sum::<u32>() + d[10];
    if !sum2.is_multiple_of(11) {
        return Err(IdError::ControlDigit2);
    }
    // The first control digit carries weight 1 in the sum: the classic rule wants the
    // sum divisible by 11, the 2032 rule accepts remainders 0-3.
    let sum1: u32 = WEIGHTS_1.iter().zip(&d).map(|(w, x)| w * x).sum::<u32>() + d[9];
    let rule_2032 = match sum1 % 11 {
        0 => false,
        1..=3 => true,
        _ => return Err(IdError::ControlDigit1),
    };

    let mut day = d[0] * 10 + d[1];
    let mut month = d[2] * 10 + d[3];
    let year2 = d[4] * 10 + d[5];
    let individual = d[6] * 100 + d[7] * 10 + d[8];

    let mut kind = IdKind::BirthNumber;
    if day > 40 {
        day -= 40;
        kind = IdKind::DNumber;
    }
    let mut synthetic = false;
    if month > 80 {
        month -= 80;
        synthetic = true;
    } else if month > 40 {
        month -= 40;
        if kind == IdKind::DNumber {
            return Err(IdError::DateDigits);
        }
        kind = IdKind::HNumber;
    }
    if synthetic && !allow_synthetic {
        return Err(IdError::SyntheticNotAllowed);
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(IdError::DateDigits);
    }

    if rule_2032 {
        return Ok(IdFacts {
            kind,
            synthetic,
            rule_2032,
            birth_year: None,
            sex: None,
        });
    }
    let birth_year = century(individual, year2).map(|c| c + year2 as u16);
    if let Some(year) = birth_year
        && Date::from_ymd(i32::from(year), month, day).is_none()
    {
        return Err(IdError::DateDigits);
    }
    let sex = if d[8] % 2 == 1 {
        Sex::Male
    } else {
        Sex::Female
    };
    Ok(IdFacts {
        kind,
        synthetic,
        rule_2032,
        birth_year,
        sex: Some(sex),
    })
}

/// Whether free text carries something that passes as a national id: a run of exactly
/// 11 digits, or 6 + 5 digits split by one space, `-` or `.` (the way ids are
/// written), whose control digits and date hold (synthetic numbers included). Free-text
/// fields are stored as sent, so such text would put a raw id into the log.
pub fn contains_national_id(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let run = &text[start..i];
        if run.len() == 11 && check_national_id(run, true).is_ok() {
            return true;
        }
        // DDMMYY NNNNN: a 6-digit run, one separator, a 5-digit run.
        if run.len() == 6
            && i + 6 <= bytes.len()
            && matches!(bytes[i], b' ' | b'-' | b'.')
            && bytes[i + 1..i + 6].iter().all(u8::is_ascii_digit)
            && bytes.get(i + 6).is_none_or(|b| !b.is_ascii_digit())
        {
            let joined = format!("{run}{}", &text[i + 1..i + 6]);
            if check_national_id(&joined, true).is_ok() {
                return true;
            }
        }
    }
    false
}

/// The century from the individual number and the two-digit year (SPEC 5.4).
fn century(individual: u32, year2: u32) -> Option<u16> {
    match (individual, year2) {
        (0..=499, _) => Some(1900),
        (500..=749, 54..=99) => Some(1800),
        (500..=999, 0..=39) => Some(2000),
        (900..=999, 40..=99) => Some(1900),
        _ => None,
    }
}

/// Builds a valid id from its first nine digits by appending both control digits
/// (classic rule), or `None` when no classic control digit exists for them. Used by
/// generators of synthetic populations and by tests.
pub fn with_control_digits(first_nine: [u8; 9]) -> Option<[u8; 11]> {
    let d: Vec<u32> = first_nine.iter().map(|&x| u32::from(x)).collect();
    let k1 = match 11 - WEIGHTS_1.iter().zip(&d).map(|(w, x)| w * x).sum::<u32>() % 11 {
        11 => 0,
        10 => return None,
        k => k,
    };
    let mut ten = d.clone();
    ten.push(k1);
    let k2 = match 11 - WEIGHTS_2.iter().zip(&ten).map(|(w, x)| w * x).sum::<u32>() % 11 {
        11 => 0,
        10 => return None,
        k => k,
    };
    let mut out = [0u8; 11];
    out[..9].copy_from_slice(&first_nine);
    out[9] = k1 as u8;
    out[10] = k2 as u8;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(prefix: &str) -> String {
        // Try individual-number endings until control digits exist.
        let base: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
        assert_eq!(base.len(), 9);
        let mut nine = [0u8; 9];
        nine.copy_from_slice(&base);
        // Vary the middle digit of the individual number (keeps century range and sex)
        // until both control digits exist.
        for middle in 0..10u8 {
            nine[7] = (base[7] + middle) % 10;
            if let Some(id) = with_control_digits(nine) {
                return id.iter().map(|d| char::from(b'0' + d)).collect();
            }
        }
        panic!("no control digits for any variant of this prefix")
    }

    #[test]
    fn classic_birth_number() {
        // 15 May 1950, individual 123 (odd digit 9: male).
        let id = make("150550123");
        let facts = check_national_id(&id, false).unwrap();
        assert_eq!(facts.kind, IdKind::BirthNumber);
        assert_eq!(facts.birth_year, Some(1950));
        assert_eq!(facts.sex, Some(Sex::Male));
        assert!(!facts.rule_2032);
    }

    #[test]
    fn centuries() {
        assert_eq!(
            check_national_id(&make("010160500"), false).map(|f| f.birth_year),
            Ok(Some(1860))
        );
        assert_eq!(
            check_national_id(&make("010110500"), false).map(|f| f.birth_year),
            Ok(Some(2010))
        );
        assert_eq!(
            check_national_id(&make("010145900"), false).map(|f| f.birth_year),
            Ok(Some(1945))
        );
        assert_eq!(
            check_national_id(&make("010145600"), false).map(|f| f.birth_year),
            Ok(None)
        );
    }

    #[test]
    fn d_h_and_synthetic_numbers() {
        assert_eq!(
            check_national_id(&make("550550124"), false).map(|f| f.kind),
            Ok(IdKind::DNumber)
        );
        let h = check_national_id(&make("154550124"), false).unwrap();
        assert_eq!((h.kind, h.sex), (IdKind::HNumber, Some(Sex::Female)));
        let synthetic = make("158550124");
        assert_eq!(
            check_national_id(&synthetic, false),
            Err(IdError::SyntheticNotAllowed)
        );
        assert!(check_national_id(&synthetic, true).unwrap().synthetic);
    }

    #[test]
    fn refuses_bad_digits() {
        let id = make("150550123");
        let mut wrong = id.clone().into_bytes();
        wrong[10] = b'0' + (wrong[10] - b'0' + 1) % 10;
        assert_eq!(
            check_national_id(std::str::from_utf8(&wrong).unwrap(), false),
            Err(IdError::ControlDigit2)
        );
        assert_eq!(check_national_id("1234567890", false), Err(IdError::Format));
        assert_eq!(
            check_national_id("1505501234a", false),
            Err(IdError::Format)
        );
        assert_eq!(check_national_id("", false), Err(IdError::Missing));
        assert_eq!(
            check_national_id(&make("310250123"), false),
            Err(IdError::DateDigits)
        );
    }

    #[test]
    fn rule_2032_ids_give_no_year_or_sex() {
        // Find a first control digit that leaves remainder 2, then a matching second one.
        let nine = [1u8, 5, 0, 5, 5, 0, 1, 2, 3];
        let base: u32 = WEIGHTS_1
            .iter()
            .zip(&nine)
            .map(|(w, &x)| w * u32::from(x))
            .sum();
        let k1 = (0..10u32).find(|k| (base + k) % 11 == 2).unwrap();
        let mut ten: Vec<u32> = nine.iter().map(|&x| u32::from(x)).collect();
        ten.push(k1);
        let s2: u32 = WEIGHTS_2.iter().zip(&ten).map(|(w, x)| w * x).sum();
        let k2 = (0..10u32).find(|k| (s2 + k).is_multiple_of(11));
        if let Some(k2) = k2 {
            let id: String = ten
                .iter()
                .chain(std::iter::once(&k2))
                .map(|d| char::from(b'0' + *d as u8))
                .collect();
            let facts = check_national_id(&id, false).unwrap();
            assert!(facts.rule_2032);
            assert_eq!((facts.birth_year, facts.sex), (None, None));
        } else {
            panic!("pick another prefix for this test: no second control digit");
        }
    }

    #[test]
    fn ids_in_free_text_are_found() {
        let id = make("150550123");
        for text in [
            id.clone(),
            format!("svc-{id}"),
            format!("{id}/2"),
            format!("{} {}", &id[..6], &id[6..]),
            format!("ref {}-{} x", &id[..6], &id[6..]),
            make("158550123"), // synthetic (month + 80)
        ] {
            assert!(contains_national_id(&text), "{text}");
        }
        // Not an id: wrong control digit, longer runs, other groupings, no digits.
        let mut wrong = id.clone().into_bytes();
        wrong[10] = b'0' + (wrong[10] - b'0' + 1) % 10;
        for text in [
            String::from_utf8(wrong).unwrap(),
            format!("9{id}"),
            format!("{id}7"),
            format!("{} {}", &id[..5], &id[5..]),
            "Gerica 7.3".to_string(),
            "bpa-2024-000017".to_string(),
            String::new(),
        ] {
            assert!(!contains_national_id(&text), "{text}");
        }
    }
}
