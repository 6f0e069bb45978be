//! Identifiers of the synthetic population: test national ids, organisation numbers
//! and event UUIDs, all derived from the seed.

use kpr_domain::Date;
use kpr_domain::national_id::with_control_digits;
use kpr_domain::org::is_valid_org_number;

use crate::rng::{Rng, stream};

/// A valid synthetic test national id (month + 80, as issued for test environments)
/// for a person born on `birth`, female or male, with both classic control digits.
///
/// The individual number follows the century rules of SPEC 5.4: 000-499 for births
/// 1900-1999, 500-999 for births 2000-2039 (500-749 for 1854-1899), and its last
/// digit is even for women and odd for men. Which individual number is used is a
/// deterministic function of `seed` and `birth`; numbers without valid control digits
/// are skipped. Births outside 1854-2039 get an individual number from 000-499, so the
/// id then reads as a birth in the 1900s.
pub fn synthetic_id(seed: u64, birth: Date, female: bool) -> String {
    let (lo, hi) = individual_range(birth);
    let wanted_parity = u32::from(!female);
    let fix_parity = |individual: u32| -> u32 {
        if individual % 2 == wanted_parity {
            individual
        } else if individual < hi {
            individual + 1
        } else {
            individual - 1
        }
    };
    let mut rng = Rng::derive(seed, stream::NATIONAL_ID, birth.days() as u64);
    for _ in 0..64 {
        let individual = fix_parity(lo + rng.below(hi - lo + 1));
        if let Some(id) = with_control_digits(nine_digits(birth, individual)) {
            return digits_to_string(&id);
        }
    }
    // Practically unreachable: sweep the whole range of the right parity.
    for individual in (lo..=hi).filter(|i| i % 2 == wanted_parity) {
        if let Some(id) = with_control_digits(nine_digits(birth, individual)) {
            return digits_to_string(&id);
        }
    }
    // No individual number has control digits (cannot happen for real dates); keep
    // the function total with an id the register will refuse.
    let mut out = digits_to_string(&nine_digits(birth, lo));
    out.push_str("00");
    out
}

/// Individual numbers (digits 7-9) that give the century of `birth` (SPEC 5.4).
fn individual_range(birth: Date) -> (u32, u32) {
    match birth.year() {
        1854..=1899 => (500, 749),
        2000..=2039 => (500, 999),
        _ => (0, 499),
    }
}

/// The first nine digits of a synthetic id (month + 80).
fn nine_digits(birth: Date, individual: u32) -> [u8; 9] {
    let (year, month, day) = birth.ymd();
    let year2 = year.rem_euclid(100) as u32;
    let month = month + 80;
    [
        day / 10,
        day % 10,
        month / 10,
        month % 10,
        year2 / 10,
        year2 % 10,
        individual / 100,
        (individual / 10) % 10,
        individual % 10,
    ]
    .map(|d| d as u8)
}

/// Hands out synthetic national ids that are unique across everything it gave out:
/// for each birth day and sex, the valid individual numbers in increasing order.
#[derive(Debug, Default)]
pub(crate) struct IdSlots {
    /// Next individual number to try, per (birth day, female).
    next: std::collections::HashMap<(i32, bool), u32>,
}

impl IdSlots {
    /// A fresh id for a person born on `birth` or, when that day's numbers are used
    /// up, on the nearest day of the same year that has one left. Returns the birth
    /// day used and the id; `None` only when the whole year is used up.
    pub(crate) fn allocate(&mut self, birth: Date, female: bool) -> Option<(Date, String)> {
        let year = birth.year();
        for step in 0..740i32 {
            let offset = if step % 2 == 0 {
                step / 2
            } else {
                -(step / 2) - 1
            };
            let day = birth.add_days(offset);
            if day.year() != year {
                continue;
            }
            if let Some(id) = self.take(day, female) {
                return Some((day, id));
            }
        }
        None
    }

    fn take(&mut self, birth: Date, female: bool) -> Option<String> {
        let (lo, hi) = individual_range(birth);
        let parity = u32::from(!female);
        let next = self.next.entry((birth.days(), female)).or_insert(lo);
        let mut individual = *next + (parity + 2 - *next % 2) % 2;
        while individual <= hi {
            if let Some(id) = with_control_digits(nine_digits(birth, individual)) {
                *next = individual + 1;
                return Some(digits_to_string(&id));
            }
            individual += 2;
        }
        *next = hi + 1;
        None
    }
}

fn digits_to_string(digits: &[u8]) -> String {
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

/// A valid 9-digit organisation number (mod 11, first digit 8 or 9) drawn from `rng`.
pub(crate) fn org_number(rng: &mut Rng) -> String {
    loop {
        let mut digits = [0u8; 9];
        digits[0] = 8 + rng.below(2) as u8;
        for d in digits.iter_mut().take(8).skip(1) {
            *d = rng.below(10) as u8;
        }
        const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];
        let sum: u32 = WEIGHTS
            .iter()
            .zip(&digits)
            .map(|(w, d)| w * u32::from(*d))
            .sum();
        let control = match 11 - sum % 11 {
            11 => 0,
            10 => continue,
            c => c,
        };
        digits[8] = control as u8;
        let text = digits_to_string(&digits);
        if is_valid_org_number(&text) {
            return text;
        }
    }
}

/// Hands out event ids: v4-shaped UUIDs from the seed and a counter.
#[derive(Debug)]
pub(crate) struct EventIds {
    seed: u64,
    counter: u64,
}

impl EventIds {
    /// Ids for `seed`, starting at counter 0.
    pub(crate) fn new(seed: u64) -> EventIds {
        EventIds { seed, counter: 0 }
    }

    /// The next id, as a hyphenated lowercase UUID.
    pub(crate) fn next_id(&mut self) -> String {
        let mut rng = Rng::derive(self.seed, stream::EVENT_ID, self.counter);
        self.counter += 1;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let mut out = String::with_capacity(36);
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use kpr_domain::national_id::check_national_id;
    use kpr_domain::person::Sex;

    #[test]
    fn synthetic_ids_carry_birth_year_and_sex() {
        for (i, (y, m, d)) in [
            (1921, 2, 28),
            (1950, 12, 31),
            (1999, 7, 1),
            (2000, 1, 1),
            (2020, 2, 29),
            (1880, 5, 5),
        ]
        .into_iter()
        .enumerate()
        {
            let birth = Date::from_ymd(y, m, d).unwrap();
            for female in [true, false] {
                let id = synthetic_id(i as u64, birth, female);
                let facts = check_national_id(&id, true).unwrap();
                assert!(facts.synthetic);
                assert!(!facts.rule_2032);
                assert_eq!(facts.birth_year, Some(y as u16));
                assert_eq!(
                    facts.sex,
                    Some(if female { Sex::Female } else { Sex::Male })
                );
                assert!(check_national_id(&id, false).is_err());
            }
        }
    }

    #[test]
    fn org_numbers_are_valid() {
        let mut rng = Rng::new(9);
        for _ in 0..200 {
            assert!(is_valid_org_number(&org_number(&mut rng)));
        }
    }

    #[test]
    fn event_ids_are_uuids() {
        let mut ids = EventIds::new(1);
        let a = ids.next_id();
        let b = ids.next_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(EventIds::new(1).next_id(), a);
    }

    #[test]
    fn id_slots_never_repeat_and_keep_the_year() {
        let mut slots = IdSlots::default();
        let mut seen = std::collections::HashSet::new();
        let birth = Date::from_ymd(1940, 12, 30).unwrap();
        for i in 0..600 {
            let female = i % 3 == 0;
            let (day, id) = slots.allocate(birth, female).unwrap();
            assert_eq!(day.year(), 1940);
            let facts = check_national_id(&id, true).unwrap();
            assert_eq!(facts.birth_year, Some(1940));
            assert_eq!(
                facts.sex,
                Some(if female { Sex::Female } else { Sex::Male })
            );
            assert!(seen.insert(id), "id handed out twice");
        }
    }
}
