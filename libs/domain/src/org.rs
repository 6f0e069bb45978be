//! Norwegian organisation numbers (organisasjonsnummer): 9 digits, mod 11.

/// Whether `text` is a valid organisation number: exactly 9 ASCII digits whose last
/// digit is the mod-11 control digit with weights 3 2 7 6 5 4 3 2.
pub fn is_valid_org_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];
    let sum: u32 = WEIGHTS
        .iter()
        .zip(bytes)
        .map(|(w, b)| w * u32::from(b - b'0'))
        .sum();
    let control = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    control == u32::from(bytes[8] - b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_control_digit() {
        // Brønnøysundregistrene and Oslo kommune.
        assert!(is_valid_org_number("974760673"));
        assert!(is_valid_org_number("958935420"));
        assert!(!is_valid_org_number("974760674"));
        assert!(!is_valid_org_number("97476067"));
        assert!(!is_valid_org_number("97476067a"));
    }
}
