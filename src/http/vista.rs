//! The VistA source's handlers: extract, gate, call the service, map the result.

use axum::Extension;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Authenticated;
use super::error::ApiError;
use super::request_id::RequestId;
use crate::app::AppState;
use crate::clinical::vista::Summary;
use crate::clinical::vista::links::{self, Link, MAX_ITEMS, SUMMARY_PAGE};
use crate::domain::{AppointmentIen, Sid, StationNo};
use crate::encoding::negotiate;
use crate::toggles::AVS_ENABLED;

/// The largest links request body: 100 items fit in a few KiB.
pub const LINKS_BODY_LIMIT: usize = 64 * 1024;

/// The request's `Accept-Encoding`, without copying the other headers.
pub struct AcceptEncoding(Option<HeaderValue>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for AcceptEncoding {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(AcceptEncoding(parts.headers.get(ACCEPT_ENCODING).cloned()))
    }
}

/// A summary in the coding the caller prefers, compressed when it was cached.
fn summary_body(summary: &Summary, accept: &AcceptEncoding) -> Response {
    let coding = negotiate(accept.0.as_ref().and_then(|v| v.to_str().ok()));
    // Sized for every header the answer leaves with (these, the edge's three, the length), so
    // none of them grows the map: a cache hit's headers cost more than its body otherwise.
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Every answer for a summary depends on Accept-Encoding, identity included.
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(encoding) = coding.header() {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    let mut response = Response::new(axum::body::Body::from(summary.body.get(coding).clone()));
    *response.headers_mut() = headers;
    response
}

/// `GET /avs/v0/avs/{sid}`
pub async fn show_summary(
    State(app): State<AppState>,
    caller: Authenticated,
    Extension(request_id): Extension<RequestId>,
    accept: AcceptEncoding,
    sid: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    app.require(AVS_ENABLED, &caller)?;
    let sid = sid
        .ok()
        .and_then(|Path(raw)| Sid::parse(raw))
        .ok_or(ApiError::InvalidSid)?;
    let summary = app
        .summaries
        .summary(&sid, caller.owner.as_ref(), &request_id.context())
        .await?;
    Ok(summary_body(&summary, &accept))
}

/// `GET /avs/v0/avs/`: an empty sid is a bad sid, answered after authentication and the gate
/// like any other, rather than an unknown route.
pub async fn show_empty_sid(
    State(app): State<AppState>,
    caller: Authenticated,
) -> Result<Response, ApiError> {
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
pub fn search_params(query: Option<&str>) -> Option<(StationNo, AppointmentIen)> {
    let params: SearchParams = serde_urlencoded::from_str(query.unwrap_or("")).ok()?;
    Some((
        StationNo::parse(params.station_no.as_deref()?)?,
        AppointmentIen::parse(params.appointment_ien.as_deref()?)?,
    ))
}

/// `GET /avs/v0/avs/search?stationNo=…&appointmentIen=…`
pub async fn search(
    State(app): State<AppState>,
    caller: Authenticated,
    Extension(request_id): Extension<RequestId>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    app.require(AVS_ENABLED, &caller)?;
    let (station, ien) = search_params(query.as_deref()).ok_or(ApiError::InvalidSearch)?;
    let body = match app
        .summaries
        .search(&station, &ien, caller.owner.as_ref(), &request_id.context())
        .await?
    {
        None => json!({}),
        Some(sid) => json!({ "path": format!("{SUMMARY_PAGE}{sid}") }),
    };
    Ok(axum::Json(body).into_response())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// A browser's links request (the token in the cookie, which it sends on its own): JSON only,
/// so another site cannot send it as a simple form without a preflight (415), and from a
/// listed origin when it names one (403), so no other site can have it sent (`identity.md`).
fn browser_checks(app: &AppState, caller: &Authenticated, headers: &HeaderMap) -> Result<(), ApiError> {
    if !caller.via_cookie {
        return Ok(());
    }
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    match headers.get(axum::http::header::ORIGIN) {
        Some(origin) if !app.cors_origins.contains(origin) => Err(ApiError::ForeignOrigin),
        _ => Ok(()),
    }
}

/// The appointments of a links request, or what is wrong with it (the first bad index named).
pub fn link_items(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<(StationNo, AppointmentIen)>, ApiError> {
    let invalid = |detail: &str| ApiError::InvalidLinks(detail.to_owned());
    let body = match body {
        Ok(body) => body,
        Err(BytesRejection::FailedToBufferBody(_)) => {
            return Err(ApiError::PayloadTooLarge(LINKS_BODY_LIMIT));
        }
        Err(_) => return Err(invalid("The request body could not be read")),
    };
    if !is_json(headers) {
        return Err(invalid("Content-Type must be application/json"));
    }
    let doc: Value =
        serde_json::from_slice(&body).map_err(|_| invalid("The request body is not valid JSON"))?;
    let Some(items) = doc.get("appointments").and_then(Value::as_array) else {
        return Err(invalid(
            "The body must be {\"appointments\": [{\"stationNo\": …, \"appointmentIen\": …}]}",
        ));
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(invalid(&format!(
            "appointments must hold 1 to {MAX_ITEMS} items, not {}",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let field = |name: &str| item.get(name).and_then(Value::as_str);
            match (
                field("stationNo").and_then(StationNo::parse),
                field("appointmentIen").and_then(AppointmentIen::parse),
            ) {
                (Some(station), Some(ien)) => Ok((station, ien)),
                _ => Err(invalid(&format!(
                    "appointments[{index}]: Station number and Appointment IEN must be present and valid."
                ))),
            }
        })
        .collect()
}

/// `POST /avs/v0/avs/links`: which appointments have a summary the caller may open.
///
/// Both `avs_enabled` and the links toggle (`AVS_LINKS_TOGGLE`, unless `none`) must be on for
/// the caller; otherwise every item is
/// null with `linksEnabled: false` (a 200, not the gate's 404: the appointments service renders
/// its list either way) and nothing is looked up.
pub async fn links(
    State(app): State<AppState>,
    caller: Authenticated,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    browser_checks(&app, &caller, &headers)?;
    let appointments = link_items(&headers, body)?;
    // Both gates are noted (not short-circuited), so the report sees both decisions. The
    // second toggle is a setting: VA.gov removed it from its Flipper after the full release.
    let avs = app.gate(AVS_ENABLED, &caller);
    let links_on = app.links_toggle.is_none_or(|toggle| app.gate(toggle, &caller));
    let enabled = avs && links_on;
    let links = if enabled {
        links::lookup(
            app.summaries.clone(),
            app.link_slots.clone(),
            caller.owner.clone(),
            &appointments,
            request_id.context(),
            app.links_deadline,
        )
        .await
    } else {
        vec![Link::None; appointments.len()]
    };
    // Every caller asked counts, links on or off: the plan's share is of all of them.
    let shown = links.iter().any(|l| matches!(l, Link::Page(_)));
    crate::telemetry::note(|n| n.links_shown = Some(shown));
    let data: Vec<Value> = appointments
        .iter()
        .zip(links)
        .map(|((station, ien), link)| {
            let (path, error) = match link {
                Link::Page(path) => (Some(path), None),
                Link::None => (None, None),
                Link::Failed => (None, Some("Error retrieving AVS info")),
            };
            json!({"stationNo": station.as_str(), "appointmentIen": ien.as_str(), "path": path, "error": error})
        })
        .collect();
    Ok(axum::Json(json!({"data": data, "meta": {"linksEnabled": enabled}})).into_response())
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
