//! The read side's publishing layer of the register: the projector that folds the log
//! into the read model, the statistics API over HTTP (JSON-stat 2.0 and CSV), and the
//! disclosure control applied to every table it publishes (SPEC 6).
//!
//! **Invariant:** exact numbers never leave this crate without `exact=true` (operator
//! role); every other table goes through [`disclosure::protect`] first.

pub mod access;
pub mod api;
pub mod catalogue;
pub mod disclosure;
pub mod error;
pub mod format;
pub mod grpc;
pub mod http;
pub mod labels;
pub mod linked;
pub mod present;
pub mod projector;
pub mod published;
pub mod release;
pub mod store;

pub use api::{Format, Rendered, Statistics, TableRequest};
pub use error::StatsError;
