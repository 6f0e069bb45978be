//! The pure core of the care-service register: identities, municipalities, service
//! codes, events and the rules that accept or refuse them.
//!
//! **Architecture invariant:** this crate does no I/O, reads no clock, draws no random
//! numbers and knows nothing of protobuf, gRPC, serde or logging. "Today" and every
//! id come in as arguments, so every rule here is a function of its inputs and can be
//! tested and replayed anywhere. The only data it reads is the reference data embedded
//! at build time (municipality lists).

pub mod date;
pub mod event;
pub mod municipality;
pub mod national_id;
pub mod org;
pub mod person;
pub mod service;
pub mod state;
pub mod validate;

pub use date::Date;
pub use event::{Event, EventId, Payload, PayloadKind, StoredEvent, Submitted};
pub use municipality::{MunicipalityCode, Registry};
pub use person::{PersonRef, Pseudonym, RawPerson, Sex};
pub use service::{ServiceCode, ServiceGroup};
