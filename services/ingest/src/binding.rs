//! The municipality binding of an ingest caller: a token names one organisation, the
//! organisation writes for one municipality, and a batch for any other is refused
//! before any state is consulted.

use kpr_auth::AuthError;
use kpr_domain::municipality::{MunicipalityCode, Registry};
use kpr_wire::pb;

use crate::error::IngestError;

/// Refuses `events` unless every one of them counts under `bound`. A pre-2024 code is
/// compared by its 2024 successor (for 1507, split in two, by the successor the event
/// names). A code the registry does not know is left to validation, which refuses it
/// with the field named.
pub fn check(bound: MunicipalityCode, events: &[pb::Event]) -> Result<(), IngestError> {
    let registry = Registry::get();
    for (index, event) in events.iter().enumerate() {
        let mut targets = registry.counts_under(&event.municipality);
        if !event.successor_municipality.is_empty() {
            targets.retain(|t| t.as_str() == event.successor_municipality);
        }
        if let Some(first) = targets.first()
            && !targets.contains(&bound)
        {
            return Err(IngestError::Auth(AuthError::WrongMunicipality {
                bound: bound.to_string(),
                requested: first.to_string(),
                event_index: index as u32,
            }));
        }
    }
    Ok(())
}
