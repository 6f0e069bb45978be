//! Arithmetic in the prime field GF(2^61 - 1), where the linked-tables model does its
//! exact linear algebra. The relations have small integer coefficients, so a rank over
//! this field is the rank over the rationals except for matrices built to collide with
//! a 61-bit prime, which tables of counts are not. Pure.

/// The field's modulus, 2^61 - 1.
pub const PRIME: u64 = (1 << 61) - 1;

/// `a * b`.
pub fn mul(a: u64, b: u64) -> u64 {
    // 2^61 = 1 (mod p): fold the high bits onto the low ones instead of dividing.
    let x = a as u128 * b as u128;
    let folded = (x as u64 & PRIME) + (x >> 61) as u64;
    let once = (folded & PRIME) + (folded >> 61);
    if once >= PRIME { once - PRIME } else { once }
}

/// `a + b`.
pub fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= PRIME { s - PRIME } else { s }
}

/// `a - b`.
pub fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + PRIME - b }
}

/// `-a`.
pub fn neg(a: u64) -> u64 {
    if a == 0 { 0 } else { PRIME - a }
}

/// `1 / a` for `a != 0` (Fermat).
pub fn inv(a: u64) -> u64 {
    let (mut base, mut e, mut r) = (a, PRIME - 2, 1);
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    r
}

/// An integer as a field element.
pub fn of(c: i64) -> u64 {
    c.rem_euclid(PRIME as i64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_and_negation() {
        for a in [1u64, 2, 3, 12345, PRIME - 1] {
            assert_eq!(mul(a, inv(a)), 1);
            assert_eq!(add(a, neg(a)), 0);
            assert_eq!(sub(a, a), 0);
        }
        assert_eq!(of(-1), PRIME - 1);
        assert_eq!(add(PRIME - 1, 2), 1);
        // Against the plain definition, also at the edges of the field.
        let mut x: u64 = 0x1234_5678_9abc_def1 % PRIME;
        for b in [0, 1, 2, PRIME - 1, PRIME - 2, 1 << 60, (1 << 61) - 3] {
            for _ in 0..100 {
                x = (x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407))
                    % PRIME;
                let slow = ((x as u128 * b as u128) % PRIME as u128) as u64;
                assert_eq!(mul(x, b), slow, "{x} * {b}");
            }
        }
    }
}

/// A fast hasher for the integer keys of the elimination (cell ids); the keys are not
/// chosen by anyone who could aim for collisions, so a keyed hash buys nothing here.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map keyed by cell ids.
pub type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
