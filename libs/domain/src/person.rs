//! What the register keeps about a person: a pseudonym, birth year and sex.

/// Sex as counted in the statistics; `Unknown` is its own category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sex {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Unknown (reported as its own category).
    Unknown,
}

/// A keyed pseudonym of a national id (HMAC-SHA256, 32 bytes). It is computed outside
/// the pure core, which only compares pseudonyms.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pseudonym(pub [u8; 32]);

impl std::fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Short form: enough to tell pseudonyms apart in a debug print.
        write!(
            f,
            "Pseudonym({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The person of an event as sent: the raw id and what the event says besides it.
/// It lives only between decoding a request and pseudonymising it.
#[derive(Clone, PartialEq, Eq)]
pub struct RawPerson {
    /// The national id, as sent.
    pub national_id: String,
    /// Birth year given in the event, if any.
    pub birth_year: Option<u32>,
    /// Sex given in the event, if any.
    pub sex: Option<Sex>,
}

impl std::fmt::Debug for RawPerson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the raw id, not even in a debug dump.
        f.debug_struct("RawPerson")
            .field("national_id", &"<redacted>")
            .field("birth_year", &self.birth_year)
            .field("sex", &self.sex)
            .finish()
    }
}

/// The person of a stored event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PersonRef {
    /// Keyed pseudonym of the national id.
    pub pseudonym: Pseudonym,
    /// Birth year.
    pub birth_year: u16,
    /// Sex.
    pub sex: Sex,
}
