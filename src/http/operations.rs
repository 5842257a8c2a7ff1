//! The service's own routes: the contract, liveness, readiness, and the answers for no route.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use crate::app::AppState;
use crate::toggles::SourceHealth;

/// `GET /avs/v0/apidocs`: the OpenAPI document, no authentication.
pub async fn apidocs(State(app): State<AppState>) -> Response {
    ([(CONTENT_TYPE, "application/json")], app.apidocs.clone()).into_response()
}

/// `GET /healthz`: the process serves.
pub async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: ready while the process can serve: configuration valid (it is, or the
/// process would not run) and toggles loaded at least once. The upstream's state is a detail,
/// never a reason to be unready: an upstream outage would otherwise pull every replica out of
/// the load balancer, cached hits included. A failed toggle refresh says only `stale` here
/// (this listener is public); the reason is on the admin listener and in the log.
pub async fn readyz(State(app): State<AppState>) -> Result<Response, ApiError> {
    let toggles = match app.toggles.health() {
        SourceHealth::NeverLoaded { .. } => {
            return Err(ApiError::NotReady("toggles: not loaded".to_owned()));
        }
        SourceHealth::Loaded { .. } => "ok",
        SourceHealth::Stale { .. } => "stale",
    };
    // Without a first SiS key set no token can be verified: not ready (`identity.md`).
    if !app.identity.ready() {
        return Err(ApiError::NotReady("identity: keys not loaded".to_owned()));
    }
    // Each source's breaker: `upstream` stays VistA's, as it always was; `oracle` is `off`
    // when Oracle Health is.
    let vista = app.summaries.breaker_state().as_str();
    let oracle = app.oh.as_ref().map_or("off", |oh| oh.breaker_state().as_str());
    let checks =
        json!({"config": "ok", "toggles": toggles, "identity": "ok", "upstream": vista, "oracle": oracle});
    Ok(axum::Json(json!({"status": "ok", "checks": checks})).into_response())
}

pub async fn no_route() -> ApiError {
    ApiError::NoRoute
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
