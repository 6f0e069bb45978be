//! End-to-end tests of the register: the real gRPC server (in-process on port 0, or
//! the real `kpr` binary as a child process) over a real sled log in a temp dir, and
//! a real tonic client. One test binary for the whole suite.

// Test code: a failed step must panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod bad_input;
mod bulk;
mod catalogue;
mod crash;
mod faults;
mod golden;
mod hostile;
mod ingest_api;
mod kafka_tls;
mod logcopy;
mod page;
mod population;
mod privacy;
mod rebuild;
mod split;
mod statistics;
mod tidy;
mod trust;
