//! A tiny deterministic pseudo-random number generator (SplitMix64).
//!
//! Only integer arithmetic and basic floating-point operations are used, so the
//! same seed gives the same stream on every platform.

/// The SplitMix64 finaliser: a bijective mix of 64 bits.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream numbers, so that independent uses of one seed never share a stream.
pub(crate) mod stream {
    /// Per-person histories.
    pub(crate) const PERSON: u64 = 1;
    /// Choice of municipality per person.
    pub(crate) const MUNICIPALITY: u64 = 2;
    /// National ids.
    pub(crate) const NATIONAL_ID: u64 = 3;
    /// Event ids.
    pub(crate) const EVENT_ID: u64 = 4;
    /// Provider organisation numbers.
    pub(crate) const PROVIDER: u64 = 5;
    /// National data set: who enters care in a municipality, and when.
    pub(crate) const NATIONAL_PLAN: u64 = 6;
    /// National data set: per-person histories.
    pub(crate) const NATIONAL_PERSON: u64 = 7;
    /// National data set: per-municipality event ids and providers.
    pub(crate) const NATIONAL_MUNICIPALITY: u64 = 8;
}

/// SplitMix64 state.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator from a seed.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent generator for item `index` of stream `stream` under `seed`.
    pub(crate) fn derive(seed: u64, stream: u64, index: u64) -> Rng {
        Rng::new(mix(
            mix(seed) ^ mix(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ mix(index))
        ))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u32
    }

    /// Uniform in `lo..=hi` (`lo` when the range is empty).
    pub(crate) fn between(&mut self, lo: i32, hi: i32) -> i32 {
        if hi <= lo {
            return lo;
        }
        let span = (i64::from(hi) - i64::from(lo) + 1) as u64;
        let offset = ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as i64;
        (i64::from(lo) + offset) as i32
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// One of `items`, with probability proportional to its weight; `None` when the
    /// weights sum to zero.
    pub(crate) fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> Option<T> {
        let total: u32 = items.iter().map(|(_, w)| *w).sum();
        let mut roll = self.below(total);
        for (item, weight) in items {
            if roll < *weight {
                return Some(*item);
            }
            roll -= weight;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::derive(7, stream::PERSON, 3);
        let mut b = Rng::derive(7, stream::PERSON, 3);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = Rng::derive(7, stream::PERSON, 4);
        assert_ne!(Rng::derive(7, stream::PERSON, 3).next_u64(), c.next_u64());
    }

    #[test]
    fn ranges_hold() {
        let mut r = Rng::new(42);
        for _ in 0..10_000 {
            let x = r.between(-3, 5);
            assert!((-3..=5).contains(&x));
            assert!(r.below(7) < 7);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(r.between(4, 4), 4);
        assert_eq!(r.between(5, 1), 5);
        assert_eq!(r.below(0), 0);
        assert_eq!(r.weighted::<u8>(&[]), None);
        assert_eq!(r.weighted(&[(1u8, 0), (2, 5)]), Some(2));
    }
}
