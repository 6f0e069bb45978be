//! The one prepare step of every way into the log: decode an API event, validate it,
//! pseudonymise it and encode it as stored, with the digest that idempotency compares.
//! gRPC ingest (`Ingestor`) and bulk loading (`kpr::bulk`) both call [`prepare`], so a
//! bulk-loaded log holds what ingest would have written (only the receive time differs).

use bytes::Bytes;
use kpr_domain::event::StoredEvent;
use kpr_domain::municipality::MunicipalityCode;
use kpr_domain::validate::{Rules, validate};
use kpr_wire::{StoredMeta, decode_submitted, encode_stored, pb};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::error::{EventFieldViolation, IngestError};
use crate::pseudonym::{Pseudonymiser, hex};

/// One prepared event: the stored event, its content digest and its stored bytes.
pub type PreparedEvent = (StoredEvent, [u8; 32], Bytes);

/// Decodes, validates, pseudonymises and encodes every event of a batch. All
/// field violations of the batch are reported together.
pub fn prepare(
    pseudonymiser: &Pseudonymiser,
    events: &[pb::Event],
    rules: &Rules,
    received_at: i64,
) -> Result<Vec<PreparedEvent>, IngestError> {
    let mut violations = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    let mut batch_municipality: Option<MunicipalityCode> = None;
    for (index, raw) in events.iter().enumerate() {
        let submitted = match decode_submitted(raw) {
            Ok(s) => s,
            Err(v) if v.is_empty() => {
                violations.push(EventFieldViolation::at(
                    index,
                    "payload",
                    "the event could not be decoded",
                ));
                continue;
            }
            Err(v) => {
                violations.extend(
                    v.into_iter()
                        .map(|v| EventFieldViolation::from_domain(index, v)),
                );
                continue;
            }
        };
        let resolved = match validate(&submitted, rules) {
            Ok(r) => r,
            Err(v) => {
                violations.extend(
                    v.into_iter()
                        .map(|v| EventFieldViolation::from_domain(index, v)),
                );
                continue;
            }
        };
        match batch_municipality {
            None => batch_municipality = Some(resolved.municipality),
            Some(first) if first != resolved.municipality => {
                violations.push(EventFieldViolation::at(
                    index,
                    "municipality",
                    format!("a batch carries events of one municipality; this event counts under {} but the batch under {first}", resolved.municipality),
                ));
                continue;
            }
            Some(_) => {}
        }
        let pseudonym = pseudonymiser.pseudonym(&submitted.person.national_id);
        let digest = content_digest(raw, &hex(&pseudonym));
        let event = submitted.into_stored(resolved, pseudonym);
        let bytes = encode_stored(
            &event,
            &StoredMeta {
                content_digest: digest,
                received_at_unix_ms: received_at,
            },
        );
        out.push((event, digest, bytes));
    }
    if violations.is_empty() {
        Ok(out)
    } else {
        Err(IngestError::invalid(violations))
    }
}

/// SHA-256 over the canonical encoding of the event as sent, with the national id
/// replaced by its pseudonym: "same content" for idempotency (SPEC 5.4), computed
/// without keeping the raw id anywhere.
fn content_digest(event: &pb::Event, pseudonym_hex: &str) -> [u8; 32] {
    let mut canonical = event.clone();
    if let Some(person) = canonical.person.as_mut() {
        person.national_id = pseudonym_hex.to_string();
    }
    Sha256::digest(canonical.encode_to_vec()).into()
}
