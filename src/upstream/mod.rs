//! The clinical source: one HTTP client built from configuration, and the embedded fixture
//! upstream that the development default reaches through that same client.

mod breaker;
mod client;
pub mod fixture;
pub mod oracle;

use std::sync::Arc;
use std::time::Duration;

pub use breaker::{Breaker, BreakerState, Health};
pub(crate) use client::{HttpClient, read_limited};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;
use url::Url;

use crate::config::UpstreamConfig;
use crate::domain::{AppointmentIen, Sid, StationNo};
use crate::telemetry::UpstreamErrorKind;

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

    /// What the call says of the upstream's health: only timeouts, connection failures and
    /// 5xx are its ill health; an answer about one document (404, bad shape) is not.
    pub(crate) fn health<T>(result: &Result<T, UpstreamError>) -> Health {
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

#[derive(Clone)]
pub struct UpstreamClient {
    client: HttpClient,
    base: Url,
    token: Option<HeaderValue>,
    max_body_bytes: usize,
    breaker: Arc<Breaker>,
    /// Bounds the calls in flight, so a slow upstream can't pile up unbounded work.
    slots: Arc<tokio::sync::Semaphore>,
    slot_wait: Duration,
}

impl UpstreamClient {
    /// Builds the client. `base` is the configured URL or the embedded fixture upstream's.
    pub fn new(config: &UpstreamConfig, base: Url) -> Result<UpstreamClient, String> {
        let client = HttpClient::new(config, config.timeout)?;
        let token = match &config.token {
            Some(t) => {
                let mut v = HeaderValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| "AVS_UPSTREAM_TOKEN: not a valid header value".to_owned())?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(UpstreamClient {
            client,
            base,
            token,
            max_body_bytes: config.max_body_bytes,
            breaker: Arc::new(Breaker::new(config.breaker, "vista")),
            slots: Arc::new(tokio::sync::Semaphore::new(config.concurrency)),
            slot_wait: config.connect_timeout,
        })
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// `GET /avs/{sid}`: the summary document, or `NotFound`.
    #[tracing::instrument(name = "upstream.summary", skip_all)]
    pub async fn summary(&self, sid: &Sid, ctx: &RequestContext) -> Result<Value, UpstreamError> {
        self.get_json("summary", &["avs", sid.as_str()], ctx).await
    }

    /// `GET /avs-by-appointment/{station}/{ien}`: the array of `{sid, icn, …}` rows.
    #[tracing::instrument(name = "upstream.search", skip_all)]
    pub async fn search(
        &self,
        station: &StationNo,
        ien: &AppointmentIen,
        ctx: &RequestContext,
    ) -> Result<Value, UpstreamError> {
        self.get_json(
            "search",
            &["avs-by-appointment", station.as_str(), ien.as_str()],
            ctx,
        )
        .await
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn get_json(
        &self,
        call: &'static str,
        segments: &[&str],
        ctx: &RequestContext,
    ) -> Result<Value, UpstreamError> {
        let result = self.call(call, segments, ctx).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind().as_str(),
        };
        metrics::counter!("avs_upstream_requests_total", "call" => call, "outcome" => outcome).increment(1);
        note_call(&result);
        result
    }

    /// One upstream call, in a client span with the HTTP semantic attributes; the URL is given
    /// as its template only (the real one holds the sid).
    #[tracing::instrument(
        name = "upstream.request",
        skip_all,
        fields(
            otel.kind = "client",
            http.request.method = "GET",
            url.template = call_template(call),
            server.address = self.base.host_str().unwrap_or(""),
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    )]
    async fn call(
        &self,
        call: &'static str,
        segments: &[&str],
        ctx: &RequestContext,
    ) -> Result<Value, UpstreamError> {
        let Ok(Ok(_slot)) = tokio::time::timeout(self.slot_wait, self.slots.acquire()).await else {
            tracing::warn!("upstream saturated: every connection slot busy");
            return Err(UpstreamError::Saturated);
        };
        let permit = self.breaker.permit().map_err(UpstreamError::CircuitOpen)?;
        let started = std::time::Instant::now();
        let result = self.fetch(segments, ctx).await;
        let result = result.and_then(|body| {
            serde_json::from_slice(&body).map_err(|e| {
                UpstreamError::BadGateway(format!("invalid JSON at line {} column {}", e.line(), e.column()))
            })
        });
        permit.record(UpstreamError::health(&result), key_of(segments));
        if let Err(e) = &result {
            tracing::Span::current().record("error.type", e.kind().as_str());
        }
        metrics::histogram!("avs_upstream_request_duration_seconds", "call" => call)
            .record(started.elapsed().as_secs_f64());
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(_) => tracing::debug!(elapsed_ms, "upstream ok"),
            Err(e) => tracing::warn!(elapsed_ms, outcome = e.kind().as_str(), reason = %e, "upstream failed"),
        }
        result
    }

    async fn fetch(&self, segments: &[&str], ctx: &RequestContext) -> Result<Bytes, UpstreamError> {
        let mut request = self.client.get(self.url(segments));
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, token.clone());
        }
        if let Some(id) = &ctx.request_id {
            request = request.header("x-request-id", id.clone());
        }
        let mut trace_headers = HeaderMap::new();
        crate::telemetry::inject_current(&mut trace_headers);
        let response = self
            .client
            .send_idempotent(request.headers(trace_headers))
            .await?;
        tracing::Span::current().record("http.response.status_code", response.status().as_u16());
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(UpstreamError::NotFound),
            status if status.is_server_error() => return Err(UpstreamError::ServerError(status.as_u16())),
            status => return Err(UpstreamError::BadGateway(format!("status {}", status.as_u16()))),
        }
        read_limited(response, self.max_body_bytes).await
    }
}

fn call_template(call: &str) -> &'static str {
    match call {
        "summary" => "/avs/{sid}",
        _ => "/avs-by-appointment/{stationNo}/{appointmentIen}",
    }
}

/// The breaker's name for what a call asked for: a hash of its path segments.
/// What a call tells the request's notes (the log line and the rollout report's upstream error
/// rate), by one rule for every source: a call the open breaker or a full slot refused was
/// never made, so it is neither a call nor a failure (the request still notes its error).
pub(crate) fn note_call<T>(result: &Result<T, UpstreamError>) {
    crate::telemetry::note(|n| {
        if let Err(e) = result
            && e.is_failure()
        {
            n.upstream_error = Some(e.kind());
        }
        if !matches!(
            result,
            Err(UpstreamError::CircuitOpen(_) | UpstreamError::Saturated)
        ) {
            n.upstream_calls += 1;
            if result.as_ref().is_err_and(UpstreamError::is_failure) {
                n.upstream_failures += 1;
            }
        }
    });
}

pub(crate) fn key_of(segments: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    segments.hash(&mut hasher);
    hasher.finish()
}
