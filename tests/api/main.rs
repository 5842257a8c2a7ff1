//! The integration tests: one binary. Most drive `app(state)` in-process against a scripted
//! upstream on loopback; `binary` runs the real executable. Every response they receive is
//! validated against `openapi.yaml` by the harness (`support::TestApp::send`).

mod admin;
mod auth;
mod binary;
mod browser;
mod cache;
mod container;
mod contract;
mod documents;
mod encoding;
mod errors;
mod fail_closed;
mod fleet;
mod flipper;
mod gate;
mod hostile;
mod layout;
mod links;
mod manifests;
mod operations;
mod oracle;
mod ownership;
mod postgres;
mod render_bounds;
mod rendering;
mod rollout_guard;
mod rollout_rules;
mod schemathesis;
mod sis;
mod support;
mod toggles;
mod traces;
mod upstream;
mod validation;
