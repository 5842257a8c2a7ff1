//! avs-api: serves VA After Visit Summaries to VA.gov.
//!
//! A request is authenticated (`identity`), gated by the `avs_enabled` toggle for the caller's
//! rollout bucket (`toggles`), its ids parsed (`domain`), the summary fetched from the clinical
//! source (`upstream`) through the one entry point (`summaries`), its owner checked against the
//! caller, and the rendered JSON:API body returned (`http`). The README's Architecture section
//! says what each module owns and may import; every import points down that list.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod app;
pub mod config;
pub mod database;
pub mod domain;
pub mod encoding;
pub mod fairness;
pub mod flights;
pub mod http;
pub mod identity;
pub mod links;
pub mod oh_summaries;
#[cfg(test)]
mod properties;
pub mod rollout;
pub mod startup;
pub mod summaries;
pub mod telemetry;
pub mod toggles;
pub mod upstream;

pub use crate::app::{AppState, OPENAPI_YAML, StartupError, Upstreams};
pub use crate::http::app;
pub use crate::startup::{Application, serve};
