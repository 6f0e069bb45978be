//! The commands of the binary that have grown beyond a few lines, one file per verb
//! (the rest still live in `main.rs`; ARCHITECTURE.md, "Entry points").

pub mod args;
pub mod audit;
pub mod auth;
pub mod health;
