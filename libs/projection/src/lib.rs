//! The pure statistics core of the register (SPEC 5): population denominators from
//! the shipped Statistics Norway data, age bands, and the table type every figure is
//! returned in.
//!
//! **Architecture invariant:** like kpr-domain, no I/O, clock, randomness or
//! serialisation here; figures are functions of the events and the reference data.

pub mod bands;
pub mod episode;
pub mod fact;
pub mod figures;
pub mod model;
pub mod period;
pub mod population;
pub mod snapshot;
pub mod table;
