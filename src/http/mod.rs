//! The edge: routes, middleware, the caller extractor and the error shape.

mod auth;
pub mod error;
mod handlers;
pub mod request_id;

use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, Method};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use crate::{AppState, telemetry};
pub use error::ApiError;

/// Every route the public listener serves. `openapi.yaml` documents exactly this set (a test
/// holds the two together).
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/avs/v0/avs/search", get(handlers::search)),
        (
            Method::POST,
            "/avs/v0/avs/links",
            post(handlers::links).layer(DefaultBodyLimit::max(handlers::LINKS_BODY_LIMIT)),
        ),
        (Method::GET, "/avs/v0/avs/{sid}", get(handlers::show_summary)),
        (Method::GET, "/avs/v0/avs/", get(handlers::show_empty_sid)),
        (Method::GET, "/avs/v0/apidocs", get(handlers::apidocs)),
        (Method::GET, "/healthz", get(handlers::healthz)),
        (Method::GET, "/readyz", get(handlers::readyz)),
    ]
}

/// The public API. Pure: everything it needs is in `state`.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for (_, path, method_router) in routes() {
        router = router.route(path, method_router);
    }
    let edge = ServiceBuilder::new()
        // First listed is outermost: these headers land on every response, errors included.
        .layer(SetResponseHeaderLayer::overriding(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(from_fn(request_id::request_id))
        .layer(from_fn_with_state(state.clone(), access_log))
        .layer(from_fn_with_state(state.clone(), shed_load))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal.into_response()))
        .layer(from_fn_with_state(state.clone(), deadline));
    router
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(edge)
        .with_state(state)
}

/// One line per request: the route template (never the raw path, which holds the sid),
/// status, latency, cache outcome, gate decisions and the actor's keyed hash; the same facts
/// feed the metrics and the rollout report.
async fn access_log(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let request_id = request
        .extensions()
        .get::<request_id::RequestId>()
        .and_then(|id| id.0.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        method = %request.method(),
        route = %route,
        request_id = %request_id,
        actor = tracing::field::Empty,
    );
    // An inbound W3C traceparent makes this request part of the caller's trace.
    if !span.is_disabled() && request.headers().contains_key("traceparent") {
        let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(
            &span,
            telemetry::remote_context(request.headers()),
        );
    }
    let started = Instant::now();
    let (response, notes) = telemetry::with_notes(next.run(request).instrument(span.clone())).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            cache = notes.cache.unwrap_or("none"),
            gate = %GateDecisions(&notes.gates),
            upstream_error = notes.upstream_error.unwrap_or("none"),
            "request"
        )
    });
    let labels = [("route", route), ("status", status.to_string())];
    metrics::counter!("avs_http_requests_total", &labels).increment(1);
    metrics::histogram!("avs_http_request_duration_seconds", &labels[..1]).record(latency.as_secs_f64());
    app.rollout.record(&notes, status, latency);
    response
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

/// Past `AVS_MAX_IN_FLIGHT` requests in flight, answer 503 + Retry-After at once rather than
/// queueing without limit (one semaphore for the whole listener).
async fn shed_load(State(app): State<AppState>, request: Request, next: Next) -> Response {
    match app.in_flight.clone().try_acquire_owned() {
        Ok(_slot) => next.run(request).await,
        Err(_) => {
            metrics::counter!("avs_requests_shed_total").increment(1);
            ApiError::Busy.into_response()
        }
    }
}

/// The whole-request deadline, above the upstream timeout, so no request holds a worker long.
async fn deadline(State(app): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(app.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::GatewayTimeout.into_response(),
    }
}
