//! The edge around every route: request id, span, log line, metrics and rollout record; head
//! and body limits; load shedding; the deadline; the headers every response carries.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, X_CONTENT_TYPE_OPTIONS};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tracing::Instrument;

use super::cors::Cors;
use super::error::ApiError;
use super::{request_id, vista};
use crate::app::AppState;
use crate::config::ConnectionLimits;
use crate::telemetry::{self, UpstreamErrorKind};

/// The edge around every route, in order: the request id; one log line, span, metrics and
/// rollout record (with the route template, never the raw path, which holds the sid); load
/// shedding; the deadline; and the headers every response carries, errors included.
///
/// A hand-written service, not `middleware::from_fn`, which boxes and clones the rest of the
/// stack on every request: a measurable share of a cache hit's cost.
#[derive(Clone)]
pub(super) struct Edge<S> {
    pub(super) app: AppState,
    pub(super) cors: std::sync::Arc<Cors>,
    /// The route's template when this edge serves one route outside the router (the summary
    /// route, `super::Api`); otherwise the router's `MatchedPath`.
    pub(super) route: Option<&'static str>,
    pub(super) inner: S,
}

/// Puts an [`Edge`] around a service.
#[derive(Clone)]
pub(super) struct EdgeLayer {
    pub(super) app: AppState,
    pub(super) cors: std::sync::Arc<Cors>,
    pub(super) route: Option<&'static str>,
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            app: self.app.clone(),
            cors: self.cors.clone(),
            route: self.route,
            inner,
        }
    }
}

/// The template of the route a request matched, for the span, the metrics and the report.
enum RouteName {
    Fixed(&'static str),
    Matched(MatchedPath),
    Unmatched,
}

impl RouteName {
    fn as_str(&self) -> &str {
        match self {
            RouteName::Fixed(route) => route,
            RouteName::Matched(route) => route.as_str(),
            RouteName::Unmatched => UNMATCHED,
        }
    }

    fn matched(&self) -> Option<&str> {
        match self {
            RouteName::Unmatched => None,
            _ => Some(self.as_str()),
        }
    }
}

impl<S> tower::Service<Request> for Edge<S>
where
    S: tower::Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let app = self.app.clone();
        let request_id = request_id::assign(&mut request);
        let route = match (self.route, request.extensions().get::<MatchedPath>()) {
            (Some(fixed), _) => RouteName::Fixed(fixed),
            (None, Some(matched)) => RouteName::Matched(matched.clone()),
            (None, None) => RouteName::Unmatched,
        };
        let span = request_span(&request, route.as_str(), &request_id);
        // `/healthz` is never shed: an orchestrator would restart a healthy, busy process.
        let sheddable = route.as_str() != "/healthz";
        let origin = self.cors.listed(request.headers());
        let preflight = self.cors.preflight(
            request.method(),
            request.headers(),
            route.matched(),
            origin.as_ref(),
        );
        // A preflight's answer has its CORS headers, or (refused) must have none.
        let origin = if preflight.is_some() { None } else { origin };
        let vary = origin.is_none() && self.cors.enabled();
        let handling = if let Some(refused) = oversized_head(&request, &app.connections) {
            Handling::Refused(Box::new(refused))
        } else if let Some(answer) = preflight {
            Handling::Answered(Box::new(answer))
        } else if axum::body::HttpBody::is_end_stream(request.body()) {
            // Only builds the future: nothing runs until it is polled, within the limits below.
            Handling::Ready(self.inner.call(request))
        } else {
            // The body is read before the request takes an in-flight slot, so slow bodies
            // can't hold the slots everyone else needs.
            Handling::AfterBody(Box::new((self.inner.clone(), request)))
        };
        Box::pin(async move {
            let started = Instant::now();
            let served = async {
                match handling {
                    Handling::Refused(refused) => refused.into_response(),
                    Handling::Answered(answer) => *answer,
                    Handling::Ready(handled) => within_limits(&app, started, sheddable, handled).await,
                    Handling::AfterBody(waiting) => {
                        let (inner, request) = *waiting;
                        match read_body(request, &app.connections).await {
                            Ok(request) => {
                                within_limits(&app, Instant::now(), sheddable, inner.oneshot(request)).await
                            }
                            Err(refused) => refused.into_response(),
                        }
                    }
                }
            };
            // Boxed once here: the combinators around it would otherwise each move the whole
            // request and handler state into themselves (callgrind: 15 memcpys of it per hit).
            let served = Box::pin(served.instrument(span.clone()));
            let (mut response, notes) = telemetry::with_notes(served).await;
            let latency = started.elapsed();
            let status = response.status().as_u16();
            span.record("http.response.status_code", status);
            span.in_scope(|| {
                tracing::info!(
                    status,
                    // To the microsecond: `secs * 1000.0` printed binary noise such as
                    // 0.10999999999999999, digits that can spell part of an ICN in a log line.
                    latency_ms = latency.as_micros() as f64 / 1000.0,
                    cache = notes.cache.unwrap_or("none"),
                    gate = %GateDecisions(&notes.gates),
                    upstream_error = notes.upstream_error.map_or("none", UpstreamErrorKind::as_str),
                    "request"
                )
            });
            app.request_metrics.record(route.as_str(), status, latency);
            app.rollout.record(&notes, status, latency);
            let length = axum::body::HttpBody::size_hint(response.body()).exact();
            let headers = response.headers_mut();
            headers.insert(request_id::X_REQUEST_ID, request_id);
            // A route may say more (documents: `private, no-store`); never less.
            headers
                .entry(CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("no-store"));
            headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            if let Some(origin) = origin {
                Cors::allow(origin, headers);
            } else if vary {
                Cors::vary(headers);
            }
            // What the router does for the routes it matches, done here for the one served
            // without it (`super::Api`), so both answer alike.
            if let Some(length) = length
                && !headers.contains_key(CONTENT_LENGTH)
            {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
            }
            Ok(response)
        })
    }
}

const UNMATCHED: &str = "unmatched";

/// The request's span; its fields are only formatted when the span is enabled.
fn request_span(request: &Request, route: &str, request_id: &HeaderValue) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        method = %request.method(),
        route = %route,
        request_id = %request_id.to_str().unwrap_or(""),
        actor = tracing::field::Empty,
    );
    // An inbound W3C traceparent makes this request part of the caller's trace.
    if !span.is_disabled() && request.headers().contains_key("traceparent") {
        let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(
            &span,
            telemetry::remote_context(request.headers()),
        );
    }
    span
}

/// How the edge will answer: refuse outright, serve now, or read the body first. Only `Ready` is inline: the others are rare, and the edge's
/// future, moved several times per request, would otherwise carry a request's or a response's
/// size on every hit (callgrind: memcpy 2,020 -> 1,375 instructions per hit with the boxes of
/// the cold upstream and verification futures and of these).
enum Handling<S, F> {
    Refused(Box<ApiError>),
    /// Answered at the edge: a CORS preflight.
    Answered(Box<Response>),
    Ready(F),
    /// Waiting for its body (the links batch).
    AfterBody(Box<(S, Request)>),
}

/// The largest body any route takes (the links batch); larger ones are 413.
const MAX_BODY_BYTES: usize = vista::LINKS_BODY_LIMIT;

/// A request head over the service's limits, answered in the one error shape (hyper's own
/// limits sit higher and would answer with an empty body).
fn oversized_head(request: &Request, limits: &ConnectionLimits) -> Option<ApiError> {
    let target = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.max_uri_bytes {
        return Some(ApiError::UriTooLong);
    }
    let headers = request.headers();
    if headers.len() > limits.max_headers {
        return Some(ApiError::HeadersTooLarge);
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (bytes + target > limits.max_header_bytes).then_some(ApiError::HeadersTooLarge)
}

/// The whole body, within the body timeout and the size limit; handlers then see it buffered.
async fn read_body(request: Request, limits: &ConnectionLimits) -> Result<Request, ApiError> {
    use http_body_util::BodyExt;
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => {
            metrics::counter!("avs_request_body_timeouts_total").increment(1);
            Err(ApiError::BodyTimeout)
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES))
        }
        Ok(Err(_)) => Err(ApiError::InvalidLinks(
            "The request body could not be read".to_owned(),
        )),
        Ok(Ok(collected)) => Ok(Request::from_parts(
            parts,
            axum::body::Body::from(collected.to_bytes()),
        )),
    }
}

/// Past `AVS_MAX_IN_FLIGHT` requests in flight, answer 503 + Retry-After at once rather than
/// queueing without limit (one counter for the whole listener; `/healthz` never counts).
/// Within the limit, the whole-request deadline, above the upstream timeout, so no request
/// holds a worker long.
async fn within_limits<F, R>(app: &AppState, started: Instant, sheddable: bool, handled: F) -> Response
where
    F: Future<Output = Result<R, Infallible>>,
    R: IntoResponse,
{
    let _slot = if sheddable {
        let Some(slot) = Slot::take(&app.in_flight, app.max_in_flight) else {
            metrics::counter!("avs_requests_shed_total").increment(1);
            return ApiError::Busy.into_response();
        };
        Some(slot)
    } else {
        None
    };
    // A cache hit is answered on its first poll: only a request that waits gets a timer, so a
    // hit neither inserts one into the runtime's timer wheel nor takes it out again.
    let mut handled = std::pin::pin!(handled);
    let first = std::future::poll_fn(|cx| Poll::Ready(handled.as_mut().poll(cx).map(answer))).await;
    if let Poll::Ready(response) = first {
        return response;
    }
    // tokio's clock, like every other deadline: a test that moves it moves this too. Read
    // only for a request that waits (a clock read less per hit), less what its first poll took.
    let deadline = tokio::time::Instant::now() + app.request_timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout_at(deadline, handled).await {
        Ok(answered) => answer(answered),
        Err(_) => ApiError::GatewayTimeout.into_response(),
    }
}

fn answer<R: IntoResponse>(answered: Result<R, Infallible>) -> Response {
    match answered {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// One of the in-flight slots, given back when the request ends (or is cancelled). A counter,
/// not a semaphore: nothing ever waits for a slot, and a semaphore's release takes a lock.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(in_flight: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        let slot = Slot(in_flight);
        (in_flight.fetch_add(1, Ordering::Relaxed) < max).then_some(slot)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Gate decisions as `avs_enabled=on,…`, formatted only if the log line is written.
struct GateDecisions<'a>(&'a [(&'static str, bool)]);

impl std::fmt::Display for GateDecisions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (feature, open)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{feature}={}", if *open { "on" } else { "off" })?;
        }
        Ok(())
    }
}
