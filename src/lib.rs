//! avs-api: serves VA After Visit Summaries to VA.gov.
//!
//! A request is authenticated (`identity`), gated by the `avs_enabled` toggle for the caller's
//! rollout bucket (`toggles`), its ids parsed (`domain`), the summary fetched from its clinical
//! source (`clinical::vista` or `clinical::oracle`, each over the one guarded call) with its
//! owner checked against the caller, and the answer returned (`http`). The README's Architecture section
//! says what each module owns and may import; every import points down that list.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod app;
pub mod clinical;
pub mod config;
pub mod database;
pub mod documents;
pub mod domain;
pub mod encoding;
pub mod fairness;
pub mod flights;
pub mod hot;
pub mod http;
pub mod identity;
#[cfg(test)]
mod properties;
pub mod rollout;
pub mod sealed;
pub mod startup;
pub mod telemetry;
pub mod toggles;

pub use crate::app::{AppState, OPENAPI_YAML, StartupError, Upstreams};
pub use crate::http::{Api, app};
pub use crate::startup::{Application, serve};
