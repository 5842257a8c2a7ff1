//! avs-api: serves VA After Visit Summaries to VA.gov.
//!
//! A request is authenticated (`identity`), gated by the `avs_enabled` toggle for the caller's
//! rollout bucket (`toggles`), its ids parsed (`domain`), the summary fetched from the clinical
//! source (`upstream`) through the one entry point (`summaries`), its owner checked against the
//! caller, and the rendered JSON:API body returned (`http`).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod config;
pub mod domain;
pub mod http;
pub mod identity;
pub mod links;
pub mod rollout;
pub mod summaries;
pub mod telemetry;
pub mod toggles;
pub mod upstream;

use std::future::IntoFuture;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use url::Url;

use crate::config::Config;
use crate::domain::ActorId;
use crate::http::ApiError;
use crate::identity::{Caller, Verifier};
use crate::summaries::Summaries;
use crate::toggles::Toggles;
use crate::upstream::UpstreamClient;

pub use crate::http::app;

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
    /// Requests in flight, against `max_in_flight`: past it, shed.
    pub in_flight: std::sync::atomic::AtomicUsize,
    pub max_in_flight: usize,
    pub apidocs: Bytes,
    /// Keys the actor hash in logs: per process, so a hash can't be looked up elsewhere.
    actor_hasher: std::hash::RandomState,
    pub request_metrics: telemetry::RequestMetrics,
    gate_metrics: telemetry::Handles<(&'static str, bool), metrics::Counter>,
}

impl AppState {
    /// Builds the state from validated configuration. `upstream_base` is the configured
    /// upstream URL, or the embedded fixture upstream's when none is configured.
    pub async fn new(config: &Config, upstream_base: Url) -> Result<AppState, String> {
        let upstream = UpstreamClient::new(&config.upstream, upstream_base)?;
        let toggles = Toggles::start(&config.toggles, config.toggles_refresh).await?;
        let apidocs: serde_json::Value =
            serde_norway::from_str(OPENAPI_YAML).map_err(|e| format!("openapi.yaml: {e}"))?;
        Ok(AppState(Arc::new(Shared {
            verifier: Arc::new(Verifier::new(
                config.auth.keys.clone(),
                config.auth.issuer.clone(),
                config.auth.audience.clone(),
            )),
            rollout: Arc::new(rollout::Rollout::new(toggles.clone())),
            toggles,
            summaries: Arc::new(Summaries::new(upstream, &config.cache)),
            auth_cookie: Arc::from(config.auth.cookie.as_str()),
            request_timeout: config.request_timeout,
            link_slots: Arc::new(tokio::sync::Semaphore::new(config.links_concurrency)),
            links_deadline: config.links_deadline,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            max_in_flight: config.max_in_flight,
            apidocs: Bytes::from(apidocs.to_string()),
            actor_hasher: std::hash::RandomState::new(),
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

/// Runs the service until SIGINT or SIGTERM: the public API on `AVS_LISTEN`, the admin API and
/// page on `AVS_ADMIN_LISTEN`.
pub async fn serve(config: Config) -> Result<(), String> {
    let metrics = telemetry::metrics();
    if let Some(handle) = metrics.clone() {
        // The recorder keeps every histogram sample until it is folded into buckets, which a
        // scrape or this upkeep does: without it, a service nobody scrapes grows ~20 bytes per
        // request (measured: 12 MiB after 660k hits).
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let upstream_base = match &config.upstream.url {
        Some(url) => url.clone(),
        None => {
            let addr = upstream::fixture::spawn()
                .await
                .map_err(|e| format!("fixture upstream: {e}"))?;
            tracing::info!(%addr, "embedded fixture upstream (development only) serving fixtures/");
            Url::parse(&format!("http://{addr}/")).map_err(|e| e.to_string())?
        }
    };
    let state = AppState::new(&config, upstream_base).await?;
    let listener = bind(config.listen, "AVS_LISTEN").await?;
    let admin_listener = bind(config.admin_listen, "AVS_ADMIN_LISTEN").await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, env = config.env.as_str(), "avs-api listening");
    tracing::info!(addr = %admin_addr, enabled = config.admin_token.is_some(), "avs-api admin listening");
    if config.env != config::Environment::Production {
        // No ICN or sid here, not even the fixtures': the README names them.
        tracing::info!(
            "get a development token: avs-api dev-token --icn <a fixture patient's ICN, see the README>, \
             then GET http://{addr}/avs/v0/avs/<sid> with Authorization: Bearer <token>"
        );
    }

    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let admin = admin::router(
        admin::AdminState::new(state.toggles.clone(), config.admin_token.clone())
            .with_rollout(state.rollout.clone())
            .with_metrics(metrics),
    );
    let admin_server = tokio::spawn(
        axum::serve(admin_listener, admin)
            .with_graceful_shutdown(until_stopped(stopped.clone()))
            .into_future(),
    );
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(until_stopped(stopped.clone()));
    // Requests in flight get `AVS_SHUTDOWN_GRACE_SECS` to finish once the signal arrives.
    let grace = config.shutdown_grace;
    let grace_over = async move {
        until_stopped(stopped).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server.into_future() => served.map_err(|e| e.to_string())?,
        () = grace_over => tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace over; requests still in flight are dropped"),
    }
    admin_server.abort();
    tracing::info!("avs-api stopped");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, variable: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{variable} {addr}: {e}"))
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing requests in flight");
}
