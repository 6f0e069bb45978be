//! Projection output as projector nodes publish it for statistics nodes (the split
//! deployment): one snapshot per municipality, keyed by its code on a compacted topic.
//! A snapshot holds the projector's log position and every stored event of the
//! municipality in log order, so the latest snapshot alone replaces everything a
//! statistics node knew of that municipality (no double counting after a projector
//! restart, whatever was published before).

use bytes::Bytes;

use crate::error::StatsError;

/// A municipality's published projection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MunicipalitySnapshot {
    /// The projector's position when it published (next offset per partition).
    pub position: Vec<(u32, u64)>,
    /// Records the projector had folded per partition (the position answers state).
    pub counts: Vec<(u32, u64)>,
    /// The municipality's stored events (partition, offset, bytes) in log order.
    pub records: Vec<(u32, u64, Bytes)>,
}

fn bad(reason: &str) -> StatsError {
    StatsError::Internal(format!("projection snapshot: {reason}"))
}

impl MunicipalitySnapshot {
    /// The wire form: counts and lengths as big-endian integers.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.position.len() as u32).to_be_bytes());
        for (p, next) in &self.position {
            out.extend_from_slice(&p.to_be_bytes());
            out.extend_from_slice(&next.to_be_bytes());
        }
        out.extend_from_slice(&(self.counts.len() as u32).to_be_bytes());
        for (p, n) in &self.counts {
            out.extend_from_slice(&p.to_be_bytes());
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&(self.records.len() as u32).to_be_bytes());
        for (p, offset, bytes) in &self.records {
            out.extend_from_slice(&p.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    /// Parses the wire form.
    pub fn decode(mut bytes: &[u8]) -> Result<MunicipalitySnapshot, StatsError> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], StatsError> {
            if bytes.len() < n {
                return Err(bad("truncated"));
            }
            let (head, tail) = bytes.split_at(n);
            *bytes = tail;
            Ok(head)
        }
        let u32_of = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let u64_of =
            |b: &[u8]| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let positions = u32_of(take(&mut bytes, 4)?) as usize;
        let mut position = Vec::with_capacity(positions.min(1 << 16));
        for _ in 0..positions {
            let p = u32_of(take(&mut bytes, 4)?);
            position.push((p, u64_of(take(&mut bytes, 8)?)));
        }
        let count_entries = u32_of(take(&mut bytes, 4)?) as usize;
        let mut counts = Vec::with_capacity(count_entries.min(1 << 16));
        for _ in 0..count_entries {
            let p = u32_of(take(&mut bytes, 4)?);
            counts.push((p, u64_of(take(&mut bytes, 8)?)));
        }
        let count = u32_of(take(&mut bytes, 4)?) as usize;
        let mut records = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            let p = u32_of(take(&mut bytes, 4)?);
            let offset = u64_of(take(&mut bytes, 8)?);
            let len = u32_of(take(&mut bytes, 4)?) as usize;
            records.push((p, offset, Bytes::copy_from_slice(take(&mut bytes, len)?)));
        }
        if !bytes.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(MunicipalitySnapshot {
            position,
            counts,
            records,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let s = MunicipalitySnapshot {
            position: vec![(0, 12), (3, 1 << 20)],
            counts: vec![(0, 12), (3, 40)],
            records: vec![(0, 4, Bytes::from_static(b"abc")), (0, 9, Bytes::new())],
        };
        let encoded = s.encode();
        assert_eq!(MunicipalitySnapshot::decode(&encoded).unwrap(), s);
        assert!(MunicipalitySnapshot::decode(&encoded[..encoded.len() - 1]).is_err());
        let mut longer = encoded.clone();
        longer.push(1);
        assert!(MunicipalitySnapshot::decode(&longer).is_err());
    }
}
