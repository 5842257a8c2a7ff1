//! The application state: everything a request needs, built once from validated configuration
//! and shared by all requests.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use url::Url;

use crate::clinical::oracle::{OracleClient, OracleSummaries};
use crate::clinical::vista::{Summaries, VistaClient};
use crate::config::{Config, ConnectionLimits, OhSource, SourceConfig};
use crate::domain::ActorId;
use crate::fairness::CallerLimit;
use crate::identity::Identity;
use crate::rollout::{self, Rollout};
use crate::telemetry;
use crate::toggles::Toggles;

/// The contract, as written; served as JSON at `/avs/v0/apidocs`.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// Why the service could not start. Each names the part that failed; none holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("upstream client: {0}")]
    Upstream(String),
    #[error("{0}")]
    Toggles(String),
    #[error("rollout report store: {0}")]
    RolloutStore(String),
    #[error("openapi.yaml: {0}")]
    OpenApi(#[from] serde_norway::Error),
    #[error("fixture upstream: {0}")]
    FixtureUpstream(String),
    #[error("identity: {0}")]
    Identity(String),
    #[error("{variable} {addr}: {source}")]
    Bind {
        variable: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Where each clinical source is reached.
#[derive(Clone, Debug)]
pub struct Upstreams {
    /// The VistA source's base URL.
    pub vista: Url,
    /// The Oracle Health source's base and login URLs; `None` when it is off.
    pub oracle: Option<(Url, Url)>,
    /// The embedded Sign-in Service stand-in, when the SiS keys or user lookup are not
    /// configured (development only).
    pub sis_standin: Option<Url>,
}

impl Upstreams {
    /// The configured URLs, with the embedded fixture upstream (at `fixture`) for whichever
    /// source is not configured.
    pub fn resolve(config: &Config, fixture: Option<&Url>) -> Result<Upstreams, StartupError> {
        let embedded = || {
            fixture
                .cloned()
                .ok_or(StartupError::FixtureUpstream("not started".to_owned()))
        };
        let vista = match &config.vista.url {
            Some(url) => url.clone(),
            None => embedded()?,
        };
        let oracle = match &config.oracle.source {
            OhSource::Off => None,
            OhSource::Url { base, login } => Some((base.clone(), login.clone())),
            OhSource::Embedded => {
                let base = embedded()?;
                let join = |path: &str| {
                    base.join(path)
                        .map_err(|e| StartupError::FixtureUpstream(e.to_string()))
                };
                Some((join("oh/")?, join("oh/login")?))
            }
        };
        let sis_standin = match config.auth.identity.needs_standin() {
            true => Some(embedded()?),
            false => None,
        };
        Ok(Upstreams {
            vista,
            oracle,
            sis_standin,
        })
    }

    /// Whether either source, or the Sign-in Service, is the embedded fixture server.
    pub fn need_fixture(config: &Config) -> bool {
        config.vista.url.is_none()
            || config.oracle.source == OhSource::Embedded
            || config.auth.identity.needs_standin()
    }
}

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
    pub identity: Arc<Identity>,
    pub toggles: Arc<Toggles>,
    pub summaries: Arc<Summaries>,
    /// Oracle Health summaries; `None` when `AVS_OH_UPSTREAM_URL=off`.
    pub oh: Option<Arc<OracleSummaries>>,
    pub rollout: Arc<Rollout>,
    pub auth_cookie: Arc<str>,
    /// Origins a browser may call from (`AVS_CORS_ORIGINS`), as header values to echo.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// The links gate's second toggle; `None`: `avs_enabled` alone.
    pub links_toggle: Option<&'static str>,
    pub request_timeout: Duration,
    /// Link lookups in flight across the whole service.
    pub link_slots: Arc<tokio::sync::Semaphore>,
    pub links_deadline: Duration,
    /// Requests in flight (bodies read), against `max_in_flight`: past it, shed.
    pub in_flight: AtomicUsize,
    pub max_in_flight: usize,
    /// Requests in flight per caller, so no one caller takes every slot.
    pub callers: Arc<CallerLimit>,
    /// What one request may send: head size, target length, body time.
    pub connections: ConnectionLimits,
    pub apidocs: Bytes,
    /// Keys the actor hash in logs and the report: per fleet (from its database) or per
    /// process, never a fixed key, so a hash can't be looked up elsewhere.
    actor_hasher: foldhash::quality::FixedState,
    pub request_metrics: telemetry::RequestMetrics,
    /// Gate decisions by toggle and result, registered once (see `http::gate`).
    pub gate_metrics: telemetry::Handles<(&'static str, bool), metrics::Counter>,
}

impl AppState {
    /// Builds the state from validated configuration and where the sources are.
    pub async fn new(config: &Config, upstreams: Upstreams) -> Result<AppState, StartupError> {
        let upstream = VistaClient::new(&config.transport, &config.vista, upstreams.vista)
            .map_err(StartupError::Upstream)?;
        let oh = match upstreams.oracle {
            Some((base, login)) => Some(Arc::new(OracleSummaries::new(
                OracleClient::new(&config.transport, &config.oracle, base, login)
                    .map_err(StartupError::Upstream)?,
                &config.oracle,
            ))),
            None => None,
        };
        let toggles = Toggles::start(&config.toggles.source, config.toggles.refresh)
            .await
            .map_err(StartupError::Toggles)?;
        // With PostgreSQL the report is the fleet's, and the actor-hash seed is the fleet's too
        // (a user seen by several replicas then counts once); with the file source, this
        // process's own.
        let fleet = match &config.toggles.source {
            SourceConfig::Postgres { url, .. } => {
                Some(rollout::fleet::Store::new(url).map_err(StartupError::RolloutStore)?)
            }
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
        let rollout = Arc::new(Rollout::new(toggles.clone(), config.rollout.clone(), fleet));
        rollout.keep_flushing();
        let apidocs: serde_json::Value = serde_norway::from_str(OPENAPI_YAML)?;
        let identity = Arc::new(
            Identity::start(&config.auth.identity, upstreams.sis_standin.as_ref())
                .await
                .map_err(StartupError::Identity)?,
        );
        let listeners = &config.listeners;
        Ok(AppState(Arc::new(Shared {
            identity,
            rollout,
            toggles,
            summaries: Arc::new(Summaries::new(upstream, &config.cache)),
            oh,
            auth_cookie: Arc::from(config.auth.cookie.as_str()),
            cors_origins: config
                .auth
                .cors_origins
                .iter()
                .filter_map(|o| axum::http::HeaderValue::from_str(o).ok())
                .collect(),
            links_toggle: config.toggles.links_toggle,
            request_timeout: listeners.request_timeout,
            link_slots: Arc::new(tokio::sync::Semaphore::new(listeners.links_concurrency)),
            links_deadline: listeners.links_deadline,
            in_flight: AtomicUsize::new(0),
            max_in_flight: listeners.max_in_flight,
            callers: Arc::new(CallerLimit::new(listeners.max_in_flight_per_caller)),
            connections: listeners.connections,
            apidocs: Bytes::from(apidocs.to_string()),
            actor_hasher: foldhash::quality::FixedState::with_seed(seed),
            request_metrics: telemetry::RequestMetrics::default(),
            gate_metrics: telemetry::Handles::default(),
        })))
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
