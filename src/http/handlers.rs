//! Handlers: extract, gate, call a service function, map the result.

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::request_id::RequestId;
use crate::AppState;
use crate::domain::{AppointmentIen, Sid, StationNo, same_patient};
use crate::identity::Caller;
use crate::summaries::SearchHit;
use crate::toggles::{AVS_ENABLED, SourceHealth};
use crate::upstream::{RequestContext, UpstreamError};

/// Where the VA.gov frontend shows a summary.
const SUMMARY_PAGE: &str = "/my-health/medical-records/summaries-and-notes/visit-summary/";

fn json_body(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

fn context(request_id: &RequestId) -> RequestContext {
    RequestContext {
        request_id: Some(request_id.0.clone()),
    }
}

/// `GET /avs/v0/avs/{sid}`
pub async fn show_summary(
    State(app): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    sid: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    app.require(AVS_ENABLED, &caller)?;
    let sid = sid
        .ok()
        .and_then(|Path(raw)| Sid::parse(&raw))
        .ok_or(ApiError::InvalidSid)?;
    let summary = app
        .summaries
        .summary(&sid, &context(&request_id))
        .await
        .map_err(|e| match e {
            UpstreamError::NotFound => ApiError::SummaryNotFound(sid.clone()),
            other => other.into(),
        })?;
    if !same_patient(caller.owner.as_ref(), summary.owner.as_ref()) {
        return Err(ApiError::NotYourSummary);
    }
    Ok(json_body(summary.body.clone()))
}

/// `GET /avs/v0/avs/`: an empty sid is a bad sid, answered after authentication and the gate
/// like any other, rather than an unknown route.
pub async fn show_empty_sid(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    app.require(AVS_ENABLED, &caller)?;
    Err(ApiError::InvalidSid)
}

#[derive(Deserialize)]
struct SearchParams {
    #[serde(rename = "stationNo")]
    station_no: Option<String>,
    #[serde(rename = "appointmentIen")]
    appointment_ien: Option<String>,
}

/// Both parameters, each 1 to 20 ASCII digits; a repeated parameter is ambiguous, so invalid.
fn search_params(query: Option<&str>) -> Option<(StationNo, AppointmentIen)> {
    let params: SearchParams = serde_urlencoded::from_str(query.unwrap_or("")).ok()?;
    Some((
        StationNo::parse(params.station_no.as_deref()?)?,
        AppointmentIen::parse(params.appointment_ien.as_deref()?)?,
    ))
}

/// `GET /avs/v0/avs/search?stationNo=…&appointmentIen=…`
pub async fn search(
    State(app): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    app.require(AVS_ENABLED, &caller)?;
    let (station, ien) = search_params(query.as_deref()).ok_or(ApiError::InvalidSearch)?;
    let body = match app
        .summaries
        .search(&station, &ien, &context(&request_id))
        .await?
    {
        SearchHit::None => json!({}),
        SearchHit::Found { sid, owner } => {
            if !same_patient(caller.owner.as_ref(), owner.as_ref()) {
                return Err(ApiError::NotYourAppointment);
            }
            json!({ "path": format!("{SUMMARY_PAGE}{sid}") })
        }
    };
    Ok(axum::Json(body).into_response())
}

/// `GET /avs/v0/apidocs`: the OpenAPI document, no authentication.
pub async fn apidocs(State(app): State<AppState>) -> Response {
    json_body(app.apidocs.clone())
}

/// `GET /healthz`: the process serves.
pub async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: configuration valid (it is, or the process would not run) and toggles loaded
/// at least once. A failed refresh keeps the last good toggles in force, so it is reported in
/// the detail but does not make the instance unready.
pub async fn readyz(State(app): State<AppState>) -> Result<Response, ApiError> {
    let toggles = match app.toggles.health() {
        SourceHealth::NeverLoaded { problem } => {
            return Err(ApiError::NotReady(format!("toggles: {problem}")));
        }
        SourceHealth::Loaded { .. } => "ok".to_owned(),
        SourceHealth::Stale { problem, .. } => format!("stale, last good state in force: {problem}"),
    };
    if app.summaries.breaker_state() == crate::upstream::BreakerState::Open {
        return Err(ApiError::NotReady("upstream: circuit open".to_owned()));
    }
    let checks = json!({"config": "ok", "toggles": toggles, "upstream": "ok"});
    Ok(axum::Json(json!({"status": "ok", "checks": checks})).into_response())
}

pub async fn no_route() -> ApiError {
    ApiError::NoRoute
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_parameters() {
        assert!(search_params(Some("stationNo=500&appointmentIen=1234")).is_some());
        assert!(search_params(Some("stationNo=500&appointmentIen=1234&x=1")).is_some());
        for bad in [
            None,
            Some(""),
            Some("stationNo=500"),
            Some("stationNo=&appointmentIen=1"),
            Some("stationNo=500&appointmentIen=12a"),
            Some("stationNo=500%0A&appointmentIen=1"),
            Some("stationNo=500&stationNo=501&appointmentIen=1"),
            Some("stationNo=123456789012345678901&appointmentIen=1"),
        ] {
            assert!(search_params(bad).is_none(), "{bad:?}");
        }
    }
}
