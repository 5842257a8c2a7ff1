//! The admin listener: Flipper's HTTP API under `/flipper/api` and a server-rendered page under
//! `/flipper`, both behind `AVS_ADMIN_TOKEN` (compared in constant time). Without a token the
//! whole listener answers 404.
//!
//! Flipper-domain errors (unknown feature, bad percentage, missing parameter) use Flipper's
//! `{"code","message","more_info"}` shape so Flipper clients work unchanged; authentication and
//! routing errors use this service's one error shape.

mod api;
mod page;
mod rollout;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::http::ApiError;
use crate::rollout::Rollout;
use crate::toggles::Toggles;

#[derive(Clone)]
pub struct AdminState {
    pub toggles: Arc<Toggles>,
    pub rollout: Option<Arc<Rollout>>,
    metrics: Option<PrometheusHandle>,
    token: Option<Arc<str>>,
    /// Hidden in every form and required on every page write: a cross-site page can make the
    /// browser send its Basic credentials, but cannot read this value.
    csrf: Arc<str>,
}

impl AdminState {
    pub fn new(toggles: Arc<Toggles>, token: Option<String>) -> AdminState {
        AdminState {
            toggles,
            rollout: None,
            metrics: None,
            token: token.map(Arc::from),
            csrf: Arc::from(uuid::Uuid::new_v4().simple().to_string()),
        }
    }
}

impl AdminState {
    /// Adds the rollout report (`/admin/rollout`, and on the feature pages).
    pub fn with_rollout(mut self, rollout: Arc<Rollout>) -> AdminState {
        self.rollout = Some(rollout);
        self
    }

    /// Serves the process's metrics at `/metrics`.
    pub fn with_metrics(mut self, handle: Option<PrometheusHandle>) -> AdminState {
        self.metrics = handle;
        self
    }
}

/// Every route of the admin listener, as (method, path). `openapi-admin.yaml` documents exactly
/// these (a test holds the two together, and checks that each is served).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/metrics"),
    ("GET", "/admin/openapi.json"),
    ("GET", "/admin/rollout"),
    ("GET", "/admin/rollout.md"),
    ("GET", "/admin/rollout/{toggle}/verdict"),
    ("POST", "/admin/rollout/{toggle}/sign-off"),
    ("GET", "/admin/health"),
    ("GET", "/flipper/api/features"),
    ("POST", "/flipper/api/features"),
    ("GET", "/flipper/api/features/{name}"),
    ("POST", "/flipper/api/features/{name}/boolean"),
    ("DELETE", "/flipper/api/features/{name}/boolean"),
    ("POST", "/flipper/api/features/{name}/percentage_of_actors"),
    ("DELETE", "/flipper/api/features/{name}/percentage_of_actors"),
    ("POST", "/flipper/api/features/{name}/percentage_of_time"),
    ("DELETE", "/flipper/api/features/{name}/percentage_of_time"),
    ("POST", "/flipper/api/features/{name}/actors"),
    ("DELETE", "/flipper/api/features/{name}/actors"),
    ("GET", "/flipper/api/actors/{flipper_id}"),
    ("GET", "/flipper"),
    ("GET", "/flipper/admin.css"),
    ("POST", "/flipper/features"),
    ("GET", "/flipper/features/{name}"),
    ("POST", "/flipper/features/{name}/{action}"),
];

/// The admin listener's contract, served as JSON at `/admin/openapi.json`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi-admin.yaml");

/// The admin listener. `/metrics` and its OpenAPI document are open to the (internal) network;
/// everything else needs the admin token, and is 404 when no token is configured.
pub fn router(state: AdminState) -> Router {
    let protected = Router::new()
        .merge(api::routes())
        .merge(page::routes())
        .merge(rollout::routes())
        .route("/admin/rollout", get(rollout_json))
        .route("/admin/rollout.md", get(rollout_markdown))
        .route("/admin/health", get(health))
        .fallback(|| async { ApiError::NoRoute })
        .layer(from_fn_with_state(state.clone(), require_token));
    let apidocs = serde_norway::from_str::<serde_json::Value>(OPENAPI_YAML)
        .map(|doc| bytes::Bytes::from(doc.to_string()))
        .unwrap_or_default();
    Router::new()
        .route("/metrics", get(metrics_text))
        .route(
            "/admin/openapi.json",
            get(move || async move { ([(CONTENT_TYPE, "application/json")], apidocs.clone()).into_response() }),
        )
        .merge(protected)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            handle.render()
                + &state
                    .rollout
                    .as_ref()
                    .map_or_else(String::new, |r| r.gauges_text()),
        )
            .into_response(),
        None => ApiError::NoRoute.into_response(),
    }
}

async fn rollout_json(State(state): State<AdminState>) -> Response {
    match &state.rollout {
        Some(rollout) => axum::Json(rollout.report().await).into_response(),
        None => ApiError::NoRoute.into_response(),
    }
}

async fn rollout_markdown(State(state): State<AdminState>) -> Response {
    match &state.rollout {
        Some(rollout) => (
            [(CONTENT_TYPE, "text/markdown; charset=utf-8")],
            rollout.markdown().await,
        )
            .into_response(),
        None => ApiError::NoRoute.into_response(),
    }
}

/// The toggle source's state with its reason, which the public `/readyz` leaves out.
async fn health(State(state): State<AdminState>) -> Response {
    use crate::toggles::SourceHealth;
    let toggles = match state.toggles.health() {
        SourceHealth::Loaded { .. } => serde_json::json!({"state": "ok"}),
        SourceHealth::Stale { problem, .. } => serde_json::json!({"state": "stale", "problem": problem}),
        SourceHealth::NeverLoaded { problem } => {
            serde_json::json!({"state": "not_loaded", "problem": problem})
        }
    };
    axum::Json(serde_json::json!({"toggles": toggles})).into_response()
}

/// Parameters from a JSON body or a form body, as text.
fn params(headers: &axum::http::HeaderMap, body: &bytes::Bytes) -> std::collections::HashMap<String, String> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).unwrap_or_default();
        map.into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                _ => None,
            })
            .collect()
    } else {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .unwrap_or_default()
            .into_iter()
            .collect()
    }
}

fn secret_matches(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

struct Presented {
    token: String,
    /// Sent as HTTP Basic, which browsers attach on their own.
    basic: bool,
}

/// `Bearer <token>` for API clients, or HTTP Basic with the token as password for browsers.
fn presented_token(request: &Request) -> Option<Presented> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Presented {
            token: rest.trim().to_owned(),
            basic: false,
        })
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        decoded.split_once(':').map(|(_, password)| Presented {
            token: password.to_owned(),
            basic: true,
        })
    } else {
        None
    }
}

/// The admin token, from `Bearer` (API clients) or HTTP Basic (browsers, for the page).
///
/// A browser resends Basic credentials on a cross-site form post, so Basic may only read the
/// API, never change it: state-changing API calls take the Bearer token alone (a cross-site
/// page cannot set that header). The page's own forms use Basic and carry the anti-forgery
/// token, which the page checks with the Origin.
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.token else {
        return ApiError::NoRoute.into_response();
    };
    let presented = presented_token(&request);
    let path = request.uri().path();
    let writes_api =
        !request.method().is_safe() && (path.starts_with("/flipper/api/") || path.starts_with("/admin/"));
    if writes_api && presented.as_ref().is_some_and(|p| p.basic) {
        return ApiError::BearerRequired.into_response();
    }
    match presented.map(|p| p.token) {
        Some(given) if secret_matches(&given, expected) => next.run(request).await,
        _ => {
            let mut response = ApiError::Unauthenticated.into_response();
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"avs-api admin\""),
            );
            response
        }
    }
}

/// Flipper's API errors, in Flipper's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlipperError {
    FeatureNotFound,
    InvalidPercentage,
    MissingFlipperId,
    MissingName,
}

impl IntoResponse for FlipperError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            FlipperError::FeatureNotFound => (StatusCode::NOT_FOUND, 1, "Feature not found."),
            FlipperError::InvalidPercentage => (
                StatusCode::UNPROCESSABLE_ENTITY,
                3,
                "Percentage must be a positive number less than or equal to 100.",
            ),
            FlipperError::MissingFlipperId => (
                StatusCode::UNPROCESSABLE_ENTITY,
                4,
                "Required parameter flipper_id is missing.",
            ),
            FlipperError::MissingName => (
                StatusCode::UNPROCESSABLE_ENTITY,
                5,
                "Required parameter name is missing.",
            ),
        };
        let body = serde_json::json!({
            "code": code,
            "message": message,
            "more_info": "https://flippercloud.io/docs/api#error-code-reference",
        });
        (status, axum::Json(body)).into_response()
    }
}
