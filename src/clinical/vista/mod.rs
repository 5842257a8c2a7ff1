//! The VistA source: summaries as JSON, found by sid or by appointment.

mod client;
pub mod links;
mod service;

pub use client::VistaClient;
pub use service::{Summaries, Summary, SummaryError};
