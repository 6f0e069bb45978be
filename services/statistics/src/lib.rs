//! The read side's publishing layer of the register: the statistics API and the
//! disclosure control applied to every table it publishes (SPEC 6). The HTTP and gRPC
//! front ends come later.
//!
//! **Invariant:** exact numbers never leave this crate without `exact=true` (operator
//! role); every other table goes through [`disclosure::protect`] first.

pub mod disclosure;
