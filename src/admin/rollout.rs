//! The rollout guard on the admin listener (`docs/spec/rollout-guard.md`): the verdict for
//! automation, the sign-off, and the one guarded write that Flipper's API and the page both
//! make, so no widening a stage has not earned goes through either.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::json;

use super::{AdminState, FlipperError};
use crate::http::ApiError;
use crate::rollout::guard::{Refusal, promotion, widens};
use crate::toggles::Change;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/rollout/{toggle}/verdict", get(verdict))
        .route("/admin/rollout/{toggle}/sign-off", post(sign_off))
}

/// The longest reason a force or a sign-off takes.
const MAX_REASON: usize = 500;

/// A guard parameter given malformed: Flipper's error shape, this service's codes 103 and 104.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadGuardParameter {
    Reason,
    Force,
}

impl IntoResponse for BadGuardParameter {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            BadGuardParameter::Reason => (103, "A reason of 1 to 500 characters is required."),
            BadGuardParameter::Force => (104, "force is true or false."),
        };
        flipper_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            message,
            json!({"more_info": "/admin/openapi.json"}),
        )
    }
}

/// A reason of 1 to 500 characters.
pub fn reason(raw: Option<&str>) -> Result<String, BadGuardParameter> {
    match raw.map(str::trim) {
        Some(r) if !r.is_empty() && r.chars().count() <= MAX_REASON => Ok(r.to_owned()),
        _ => Err(BadGuardParameter::Reason),
    }
}

/// `force=true` with its reason, from the write's parameters (body or query). Either given
/// malformed is refused (422) rather than ignored: a write must never go through differently
/// from what its caller meant.
pub fn force(params: &HashMap<String, String>) -> Result<Option<String>, BadGuardParameter> {
    let reason_given = params.get("reason").map(String::as_str);
    if reason_given.is_some() {
        reason(reason_given)?;
    }
    match params.get("force").map(String::as_str) {
        Some("true" | "1") => reason(reason_given).map(Some),
        None | Some("false" | "0") => Ok(None),
        Some(_) => Err(BadGuardParameter::Force),
    }
}

fn flipper_error(status: StatusCode, code: u16, message: &str, extra: serde_json::Value) -> Response {
    let mut body = json!({"code": code, "message": message});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let more_info = format!("/admin/rollout/{}/verdict", self.verdict.toggle);
        flipper_error(
            StatusCode::CONFLICT,
            self.code,
            &self.message,
            json!({"more_info": more_info, "verdict": self.verdict}),
        )
    }
}

/// Applies `change` to `name`, unless it widens a toggle whose stage has not earned it (409,
/// codes 100–102) and no `force` reason was given. Narrowing is never refused. A feature this
/// service does not read has no stages and no plan: its writes go through unguarded.
pub async fn guarded_write(
    state: &AdminState,
    name: &str,
    change: Change,
    force: Option<String>,
) -> Result<(), Response> {
    if let Some(rollout) = &state.rollout {
        let before = state
            .toggles
            .snapshot()
            .features
            .get(name)
            .cloned()
            .unwrap_or_default();
        let mut after = before.clone();
        change.apply(&mut after);
        if widens(&before, &after) {
            // Fail closed: a verdict that cannot be read refuses the widening.
            let verdict = rollout.verdict(name).await.map_err(|problem| {
                tracing::warn!(%problem, toggle = name, "rollout verdict unavailable; widening refused");
                ApiError::ToggleStoreFailed.into_response()
            })?;
            if let Some(v) = verdict
                && let Err(refusal) = promotion(&before, &after, &v, rollout.plan_of(name))
            {
                let Some(reason) = force else {
                    return Err(refusal.into_response());
                };
                state
                    .toggles
                    .apply(name, change)
                    .await
                    .map_err(|e| ApiError::from(e).into_response())?;
                if let Err(problem) = rollout.forced(name, &reason, &v).await {
                    tracing::warn!(%problem, toggle = name, "forced widening not recorded");
                }
                return Ok(());
            }
        }
    }
    state
        .toggles
        .apply(name, change)
        .await
        .map_err(|e| ApiError::from(e).into_response())
}

/// `GET /admin/rollout/{toggle}/verdict[?require=pass]`: the verdict (Argo Rollouts' `web`
/// metric reads `result.verdict`); with `require=pass`, 409 with the same body unless it
/// passes (a webhook gate such as Flagger's `confirm-promotion`).
async fn verdict(
    State(state): State<AdminState>,
    Path(toggle): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(rollout) = &state.rollout else {
        return ApiError::NoRoute.into_response();
    };
    let params: HashMap<String, String> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let require_pass = match params.get("require").map(String::as_str) {
        None => false,
        Some("pass") => true,
        Some(_) => return ApiError::InvalidParameters("require may only be pass".to_owned()).into_response(),
    };
    match rollout.verdict(&toggle).await {
        Ok(Some(v)) => {
            let status = if require_pass && v.verdict != crate::rollout::verdict::Outcome::Pass {
                StatusCode::CONFLICT
            } else {
                StatusCode::OK
            };
            (status, axum::Json(v)).into_response()
        }
        Ok(None) => FlipperError::FeatureNotFound.into_response(),
        Err(problem) => {
            tracing::warn!(%problem, "rollout verdict unavailable");
            ApiError::ToggleStoreFailed.into_response()
        }
    }
}

/// `POST /admin/rollout/{toggle}/sign-off` with `reason`: the current stage passes unless it
/// holds (409, code 100). Bearer only (the page signs off through its own form).
async fn sign_off(
    State(state): State<AdminState>,
    Path(toggle): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reason = match reason(super::params(&headers, &body).get("reason").map(String::as_str)) {
        Ok(reason) => reason,
        Err(bad) => return bad.into_response(),
    };
    signed_off(&state, &toggle, &reason).await
}

/// Signs `toggle`'s current stage off: its verdict (200), or the refusal.
pub async fn signed_off(state: &AdminState, toggle: &str, reason: &str) -> Response {
    let Some(rollout) = &state.rollout else {
        return ApiError::NoRoute.into_response();
    };
    match rollout.sign_off(toggle, reason).await {
        Ok(Some(Ok(v))) => axum::Json(v).into_response(),
        Ok(Some(Err(refusal))) => refusal.into_response(),
        Ok(None) => FlipperError::FeatureNotFound.into_response(),
        Err(problem) => {
            tracing::warn!(%problem, "sign-off not recorded");
            ApiError::ToggleStoreFailed.into_response()
        }
    }
}
