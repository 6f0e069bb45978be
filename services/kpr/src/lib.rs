//! The `kpr` binary's library half: the commands operators run, as functions that
//! take their listener, paths and stop signal from outside, so the end-to-end tests
//! can run them in-process as well as through the real binary.
//!
//! **Architecture invariant:** this is the only crate that names a concrete log
//! backend and composes services; the services themselves are generic over the log.

pub mod bulk;
pub mod demo;
pub mod http_client;
pub mod inspect;
pub mod logcopy;
pub mod metrics;
pub mod refdata;
pub mod serve;
pub mod split;
pub mod stats;
pub mod trust;
