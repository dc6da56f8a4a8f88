//! tickflow's analytics as dataflow graphs.
//!
//! Each dataflow is a plain function from streams to streams. None of them knows where the
//! data comes from or where it goes (Kafka, files, SQLite, PostgreSQL are wired by the
//! binary), so each can be tested against a sequential reference with timely alone.

pub mod accounts;
pub mod candles;
pub mod market;
pub mod quality;
pub mod regression;

pub use candles::candles;
