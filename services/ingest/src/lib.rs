//! The write side of the register: `kpr.v1.IngestService`.
//!
//! A request goes through decode (kpr-wire) → stateless field rules (kpr-domain
//! `validate`) → pseudonymisation → lifecycle rules against the municipality's
//! write-side state (kpr-domain `state`) → encode → one atomic append on the log.
//!
//! **Architecture invariant:** the raw national id exists only between decoding a
//! request and pseudonymising it. It is never stored, logged, put in a metric or
//! echoed in an error. This crate is generic over [`kpr_eventlog::EventLog`] and names
//! no backend.

pub mod binding;
pub mod error;
pub mod grpc;
pub mod ingestor;
pub mod prepare;
pub mod pseudonym;

pub use error::{IngestError, to_status};
pub use grpc::IngestGrpc;
pub use ingestor::{Ack, IngestConfig, Ingestor, RebuildStats};
pub use pseudonym::Pseudonymiser;
