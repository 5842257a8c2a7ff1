//! The Oracle Health source: summaries as PDF or text documents, listed by a patient's index.

mod client;
mod service;

pub use client::OracleClient;
pub use service::{DocError, Index, OracleSummaries};
