//! The guarded call: every outbound HTTP call the service makes (VistA, Oracle Health, vets-api)
//! goes through [`Guard::call`], so each step happens once, in one order, for every source:
//!
//! slot (a bounded number in flight, waited for at most `slot_wait`) → breaker (when the source
//! has one) → the source's own request → its health to the breaker → metrics → the request's
//! notes (the rollout report) → one log line, all inside one client span.
//!
//! A source supplies only what differs: its label, its bounds, and the request itself (a closure
//! that sends and reads the answer). The retry of a dropped pooled connection lives with the
//! transport, in `http_client.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use tracing::Instrument;

use super::breaker::{Breaker, Health};
use crate::config::BreakerPolicy;
use crate::telemetry::{self, Handles, UpstreamErrorKind};

/// What went wrong with an upstream call, as the error table distinguishes it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream has no such document")]
    NotFound,
    /// Other 4xx, a redirect, bad JSON, an oversized or wrongly shaped body.
    #[error("upstream answered wrongly: {0}")]
    BadGateway(String),
    /// A 5xx: the upstream itself is in trouble (the breaker counts these).
    #[error("upstream failed with status {0}")]
    ServerError(u16),
    /// Connection refused or reset, DNS failure, the proxy refusing.
    #[error("upstream unreachable: {0}")]
    Unavailable(String),
    #[error("upstream too slow")]
    Timeout,
    /// The circuit breaker is open: no call was made. Retry after the duration.
    #[error("upstream circuit open")]
    CircuitOpen(Duration),
    /// Every upstream connection slot stayed busy: no call was made.
    #[error("upstream saturated")]
    Saturated,
}

impl UpstreamError {
    /// A short label for logs and metrics.
    pub fn kind(&self) -> UpstreamErrorKind {
        match self {
            UpstreamError::NotFound => UpstreamErrorKind::NotFound,
            UpstreamError::BadGateway(_) | UpstreamError::ServerError(_) => UpstreamErrorKind::BadGateway,
            UpstreamError::Unavailable(_) => UpstreamErrorKind::Unavailable,
            UpstreamError::Timeout => UpstreamErrorKind::Timeout,
            UpstreamError::CircuitOpen(_) => UpstreamErrorKind::CircuitOpen,
            UpstreamError::Saturated => UpstreamErrorKind::Saturated,
        }
    }

    /// Failures that say the upstream is in trouble (they trip the breaker, and let a stale
    /// copy be served). A 404 is an answer, not a failure.
    pub fn is_failure(&self) -> bool {
        !matches!(self, UpstreamError::NotFound)
    }

    /// Whether no call was made: the open breaker or a full slot refused it.
    fn refused(&self) -> bool {
        matches!(self, UpstreamError::CircuitOpen(_) | UpstreamError::Saturated)
    }

    /// What the call says of the upstream's health: only timeouts, connection failures and
    /// 5xx are its ill health; an answer about one document (404, bad shape) is not.
    fn health<T>(result: &Result<T, UpstreamError>) -> Health {
        match result {
            Err(UpstreamError::Timeout | UpstreamError::Unavailable(_) | UpstreamError::ServerError(_)) => {
                Health::Failed
            }
            _ => Health::Answered,
        }
    }
}

/// Per-request values forwarded upstream.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub request_id: Option<HeaderValue>,
}

/// One kind of call a source makes: its metric label and its URL template (the span never
/// holds the real URL, which carries a sid, an ICN or a document id).
#[derive(Clone, Copy, Debug)]
pub struct Call {
    pub name: &'static str,
    pub method: &'static str,
    pub template: &'static str,
}

/// How a source's calls are bounded and labelled.
pub struct GuardSettings {
    /// `vista`, `oracle`, `vets_api`: the `source` label of every metric and span.
    pub source: &'static str,
    /// The host the span names as `server.address`.
    pub server: String,
    pub concurrency: usize,
    pub slot_wait: Duration,
    /// `None`: no breaker (vets-api: a failure there is answered 503 at once, and no stale
    /// copy exists to fall back on).
    pub breaker: Option<BreakerPolicy>,
    /// Whether the calls count in the request's notes: the rollout report's upstream error rate
    /// is the clinical sources', not the identity lookup's.
    pub reported: bool,
}

impl GuardSettings {
    /// A clinical source's guard: bounded and broken by the shared transport's policy, its
    /// calls counted in the rollout report.
    pub fn clinical(
        source: &'static str,
        base: &url::Url,
        transport: &crate::config::TransportConfig,
    ) -> GuardSettings {
        GuardSettings {
            source,
            server: base.host_str().unwrap_or_default().to_owned(),
            concurrency: transport.concurrency,
            slot_wait: transport.connect_timeout,
            breaker: Some(transport.breaker),
            reported: true,
        }
    }
}

/// `base` with `segments` appended, each percent-encoded as a path segment.
pub(crate) fn url(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The guard of one source: its slots, its breaker and its metric handles.
pub struct Guard {
    source: &'static str,
    server: String,
    slots: tokio::sync::Semaphore,
    slot_wait: Duration,
    breaker: Option<Arc<Breaker>>,
    reported: bool,
    counters: Handles<(&'static str, &'static str), metrics::Counter>,
    durations: Handles<&'static str, metrics::Histogram>,
}

impl Guard {
    pub fn new(settings: GuardSettings) -> Guard {
        Guard {
            source: settings.source,
            server: settings.server,
            slots: tokio::sync::Semaphore::new(settings.concurrency),
            slot_wait: settings.slot_wait,
            breaker: settings
                .breaker
                .map(|policy| Arc::new(Breaker::new(policy, settings.source))),
            reported: settings.reported,
            counters: Handles::default(),
            durations: Handles::default(),
        }
    }

    pub fn breaker_state(&self) -> super::BreakerState {
        self.breaker
            .as_ref()
            .map_or(super::BreakerState::Closed, |b| b.state())
    }

    /// Makes one call: `key` names what was asked for (a hash the breaker spreads failures
    /// over), `send` is the source's request and the reading of its answer.
    pub async fn call<T, Fut>(
        &self,
        call: Call,
        key: u64,
        send: impl FnOnce() -> Fut,
    ) -> Result<T, UpstreamError>
    where
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let span = tracing::info_span!(
            "upstream.request",
            otel.kind = "client",
            upstream.source = self.source,
            upstream.call = call.name,
            http.request.method = call.method,
            url.template = call.template,
            server.address = self.server.as_str(),
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        async move {
            let started = Instant::now();
            let result = self.guarded(call, key, send).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.kind().as_str(),
            };
            self.count(call.name, outcome);
            if self.reported {
                note_call(&result);
            }
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match &result {
                Ok(_) => tracing::debug!(source = self.source, call = call.name, elapsed_ms, "upstream ok"),
                Err(e) => {
                    tracing::Span::current().record("error.type", outcome);
                    tracing::warn!(source = self.source, call = call.name, elapsed_ms, outcome, reason = %e, "upstream failed");
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Within a slot and the breaker's permission: the call, timed, its health reported.
    async fn guarded<T, Fut>(
        &self,
        call: Call,
        key: u64,
        send: impl FnOnce() -> Fut,
    ) -> Result<T, UpstreamError>
    where
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let Ok(Ok(_slot)) = tokio::time::timeout(self.slot_wait, self.slots.acquire()).await else {
            return Err(UpstreamError::Saturated);
        };
        let permit = match &self.breaker {
            Some(breaker) => Some(breaker.permit().map_err(UpstreamError::CircuitOpen)?),
            None => None,
        };
        let started = Instant::now();
        let result = send().await;
        if let Some(permit) = permit {
            permit.record(UpstreamError::health(&result), key);
        }
        let elapsed = started.elapsed().as_secs_f64();
        self.durations.with(
            call.name,
            |name| metrics::histogram!("avs_upstream_request_duration_seconds", "source" => self.source, "call" => name),
            |h| h.record(elapsed),
        );
        result
    }

    /// Counts one call (or one step of a call, as Oracle Health's login) by outcome.
    pub fn count(&self, call: &'static str, outcome: &'static str) {
        self.counters.with(
            (call, outcome),
            |(call, outcome)| {
                metrics::counter!("avs_upstream_requests_total", "source" => self.source, "call" => call, "outcome" => outcome)
            },
            |c| c.increment(1),
        );
    }
}

/// Records the status of the answer on the call's span.
pub(crate) fn answered(status: reqwest::StatusCode) {
    tracing::Span::current().record("http.response.status_code", status.as_u16());
}

/// What a call tells the request's notes (the log line and the rollout report's upstream error
/// rate), by one rule for every source: a call the open breaker or a full slot refused was
/// never made, so it is neither a call nor a failure (the request still notes its error).
fn note_call<T>(result: &Result<T, UpstreamError>) {
    telemetry::note(|n| {
        if let Err(e) = result
            && e.is_failure()
        {
            n.upstream_error = Some(e.kind());
        }
        if !result.as_ref().is_err_and(UpstreamError::refused) {
            n.upstream_calls += 1;
            if result.as_ref().is_err_and(UpstreamError::is_failure) {
                n.upstream_failures += 1;
            }
        }
    });
}

/// The breaker's name for what a call asked for: a hash of its parts (path segments, query).
pub(crate) fn key_of(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}
