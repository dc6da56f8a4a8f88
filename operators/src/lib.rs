//! Reusable timely operators, the exact trade model, and the connectors of tickflow.
//!
//! Nothing in this crate knows about the command line. Dataflows (`tickflow-dataflows`) are
//! built from the operators here; the binary wires sources, dataflows and sinks together.

pub mod file;
pub mod generator;
pub mod hash;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod model;
pub mod parse;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod regression;
pub mod schema;
pub mod sink;
pub mod source;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod window;
