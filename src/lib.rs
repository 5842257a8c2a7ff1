//! avs-api: serves VA After Visit Summaries to VA.gov.
//!
//! A request is authenticated (`identity`), gated by the `avs_enabled` toggle for the caller's
//! rollout bucket (`toggles`), its ids parsed (`domain`), the summary fetched from the clinical
//! source (`upstream`) through the one entry point (`summaries`), its owner checked against the
//! caller, and the rendered JSON:API body returned (`http`).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod config;
pub mod database;
pub mod domain;
pub mod encoding;
pub mod http;
pub mod identity;
pub mod links;
#[cfg(test)]
mod properties;
pub mod rollout;
pub mod startup;
pub mod summaries;
pub mod telemetry;
pub mod toggles;
pub mod upstream;

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use url::Url;

use crate::config::{Config, ConnectionLimits};
use crate::domain::ActorId;
use crate::http::ApiError;
use crate::identity::{Caller, Verifier};
use crate::summaries::Summaries;
use crate::toggles::Toggles;
use crate::upstream::UpstreamClient;

pub use crate::http::app;
pub use crate::startup::{Application, serve};

/// The contract, as written; served as JSON at `/avs/v0/apidocs`.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// Everything a request needs, shared by all requests. One `Arc`: axum clones the state for
/// every extractor and middleware, and one reference count (not one per field, each a cache
/// line the worker threads fight over) keeps that cheap on the hot path.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct Shared {
    pub verifier: Arc<Verifier>,
    pub toggles: Arc<Toggles>,
    pub summaries: Arc<Summaries>,
    pub rollout: Arc<rollout::Rollout>,
    pub auth_cookie: Arc<str>,
    pub request_timeout: Duration,
    /// Link lookups in flight across the whole service.
    pub link_slots: Arc<tokio::sync::Semaphore>,
    pub links_deadline: Duration,
    /// Requests in flight (bodies read), against `max_in_flight`: past it, shed.
    pub in_flight: std::sync::atomic::AtomicUsize,
    pub max_in_flight: usize,
    /// Requests in flight per caller, so no one caller takes every slot.
    pub callers: Arc<http::CallerLimit>,
    /// What one request may send: head size, target length, body time.
    pub connections: ConnectionLimits,
    pub apidocs: Bytes,
    /// Keys the actor hash in logs and the report: per fleet (from its database) or per
    /// process, never a fixed key, so a hash can't be looked up elsewhere.
    actor_hasher: foldhash::quality::FixedState,
    pub request_metrics: telemetry::RequestMetrics,
    gate_metrics: telemetry::Handles<(&'static str, bool), metrics::Counter>,
}

impl AppState {
    /// Builds the state from validated configuration. `upstream_base` is the configured
    /// upstream URL, or the embedded fixture upstream's when none is configured.
    pub async fn new(config: &Config, upstream_base: Url) -> Result<AppState, String> {
        let upstream = UpstreamClient::new(&config.upstream, upstream_base)?;
        let toggles = Toggles::start(&config.toggles, config.toggles_refresh).await?;
        // With PostgreSQL the report is the fleet's, and the actor-hash seed is the fleet's too
        // (a user seen by several replicas then counts once); with the file source, this
        // process's own.
        let fleet = match &config.toggles {
            crate::toggles::SourceConfig::Postgres { url, .. } => Some(rollout::fleet::Store::new(url)?),
            _ => None,
        };
        let seed = match &fleet {
            Some(store) => match store.seed().await {
                Ok(seed) => seed,
                Err(problem) => {
                    tracing::warn!(%problem, "no fleet seed: unique users are counted per replica until a restart");
                    fastrand::u64(..)
                }
            },
            None => fastrand::u64(..),
        };
        let rollout = Arc::new(rollout::Rollout::new(
            toggles.clone(),
            config.rollout.clone(),
            fleet,
        ));
        rollout.keep_flushing();
        let apidocs: serde_json::Value =
            serde_norway::from_str(OPENAPI_YAML).map_err(|e| format!("openapi.yaml: {e}"))?;
        Ok(AppState(Arc::new(Shared {
            verifier: Arc::new(Verifier::new(
                config.auth.keys.clone(),
                config.auth.issuer.clone(),
                config.auth.audience.clone(),
            )),
            rollout,
            toggles,
            summaries: Arc::new(Summaries::new(upstream, &config.cache)),
            auth_cookie: Arc::from(config.auth.cookie.as_str()),
            request_timeout: config.request_timeout,
            link_slots: Arc::new(tokio::sync::Semaphore::new(config.links_concurrency)),
            links_deadline: config.links_deadline,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            max_in_flight: config.max_in_flight,
            callers: Arc::new(http::CallerLimit::new(config.max_in_flight_per_caller)),
            connections: config.connections,
            apidocs: Bytes::from(apidocs.to_string()),
            actor_hasher: foldhash::quality::FixedState::with_seed(seed),
            request_metrics: telemetry::RequestMetrics::default(),
            gate_metrics: telemetry::Handles::default(),
        })))
    }

    /// Whether `feature` is on for the caller; noted for the request line, metrics and report.
    pub fn gate(&self, feature: &'static str, caller: &Caller) -> bool {
        let span = tracing::info_span!("gate", toggle = feature, result = tracing::field::Empty);
        let _entered = span.enter();
        let open = self.toggles.is_enabled(feature, Some(&caller.actor));
        span.record("result", open);
        self.gate_metrics.with(
            (feature, open),
            |(feature, open)| {
                let result = if open { "on" } else { "off" };
                metrics::counter!("avs_gate_decisions_total", "toggle" => feature, "result" => result)
            },
            |decisions| decisions.increment(1),
        );
        telemetry::note(|n| n.gates.push((feature, open)));
        open
    }

    /// The gate: a feature off for the caller looks exactly like an unknown route.
    pub fn require(&self, feature: &'static str, caller: &Caller) -> Result<(), ApiError> {
        if self.gate(feature, caller) {
            Ok(())
        } else {
            Err(ApiError::NoRoute)
        }
    }

    /// A keyed hash of the actor id: lets one count and follow callers without logs or reports
    /// ever holding an email or account id. Keyed per process.
    pub fn actor_key(&self, actor: &ActorId) -> u64 {
        self.actor_hasher.hash_one(actor.as_str())
    }

    /// The short form of [`AppState::actor_key`] for log lines.
    pub fn actor_hash(&self, actor: &ActorId) -> String {
        format!("{:012x}", self.actor_key(actor) & 0xffff_ffff_ffff)
    }
}
