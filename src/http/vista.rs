//! The VistA source's handlers: extract, gate, call the service, map the result.

use axum::Extension;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, VARY};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Authenticated;
use super::documents::{self, Binary};
use super::error::ApiError;
use super::request_id::RequestId;
use crate::app::AppState;
use crate::clinical::vista::links::{self, Link, MAX_ITEMS, SUMMARY_PAGE};
use crate::clinical::vista::{Form, Summary, SummaryError};
use crate::domain::{AppointmentIen, Sid, StationNo};
use crate::encoding::negotiate;
use crate::toggles::{AVS_ENABLED, AVS_PDF};

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
    headers.insert(CONTENT_LENGTH, summary.body.length(coding).clone());
    let mut response = Response::new(axum::body::Body::from(summary.body.get(coding).clone()));
    *response.headers_mut() = headers;
    response
}

/// The `{sid}` of `/avs/v0/avs/{sid}`, or `None` when it is not one (answered after the gate).
/// Read from the path's last segment, so it is the same whether the router matched the route
/// or `super::Api` served it without matching (only segments with nothing to percent-decode
/// take that way; the router decodes the others, as `Path` always did).
pub struct SummarySid(Option<Sid>);

impl FromRequestParts<AppState> for SummarySid {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let path = parts.uri.path();
        // memchr: `rfind` and a byte loop here cost ~300 instructions per hit (callgrind).
        let segment = memchr::memrchr(b'/', path.as_bytes()).map_or(path, |slash| &path[slash + 1..]);
        if memchr::memchr(b'%', segment.as_bytes()).is_none() {
            return Ok(SummarySid(Sid::parse(segment)));
        }
        let decoded = Path::<String>::from_request_parts(parts, state).await;
        Ok(SummarySid(decoded.ok().and_then(|Path(raw)| Sid::parse(raw))))
    }
}

/// `GET /avs/v0/avs/{sid}`
pub async fn show_summary(
    State(app): State<AppState>,
    caller: Authenticated,
    Extension(request_id): Extension<RequestId>,
    accept: AcceptEncoding,
    SummarySid(sid): SummarySid,
) -> Result<Response, ApiError> {
    app.require_view(AVS_ENABLED, &caller)?;
    let sid = sid.ok_or(ApiError::InvalidSid)?;
    let summary = app
        .summaries
        .summary(&sid, caller.owner.as_ref(), &request_id.context())
        .await?;
    Ok(summary_body(&summary, &accept))
}

/// `GET|HEAD /avs/v0/avs/{sid}/pdf`: the summary as a tagged PDF.
pub async fn pdf(
    state: State<AppState>,
    caller: Authenticated,
    request_id: Extension<RequestId>,
    query: RawQuery,
    headers: HeaderMap,
    sid: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    document(state, caller, request_id, query, headers, sid, Form::Pdf).await
}

/// `GET|HEAD /avs/v0/avs/{sid}/txt`: the summary as plain text.
pub async fn txt(
    state: State<AppState>,
    caller: Authenticated,
    request_id: Extension<RequestId>,
    query: RawQuery,
    headers: HeaderMap,
    sid: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    document(state, caller, request_id, query, headers, sid, Form::Text).await
}

/// The documents' checks (`documents.md`): those of the summary route, then `avs_pdf_enabled`,
/// then the document, rendered once.
async fn document(
    State(app): State<AppState>,
    caller: Authenticated,
    Extension(request_id): Extension<RequestId>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    sid: Result<Path<String>, PathRejection>,
    form: Form,
) -> Result<Response, ApiError> {
    app.require(AVS_ENABLED, &caller)?;
    let sid = sid
        .ok()
        .and_then(|Path(raw)| Sid::parse(raw))
        .ok_or(ApiError::InvalidSid)?;
    let download = download(query.as_deref())?;
    let summary = app
        .summaries
        .summary(&sid, caller.owner.as_ref(), &request_id.context())
        .await?;
    app.require_view(AVS_PDF, &caller)?;
    let rendered = app.summaries.document(&sid, &summary, form).await?;
    Ok(documents::serve(
        &rendered.document,
        &rendered.file_name,
        download,
        &headers,
    ))
}

#[derive(Deserialize)]
struct DocumentParams {
    download: Option<String>,
}

/// `?download=1` (or `true`): an attachment; anything else that is not a known parameter is
/// ignored, as a browser's own parameters would be.
fn download(query: Option<&str>) -> Result<bool, ApiError> {
    let params: DocumentParams = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| ApiError::InvalidParameters("download must be given once".to_owned()))?;
    Ok(params.download.is_some_and(|v| v == "1" || v == "true"))
}

/// At most this many sids in one `binaries` request (after removing duplicates).
pub const MAX_BINARIES: usize = 10;

#[derive(Deserialize)]
struct BinariesParams {
    doc_ids: Option<String>,
}

/// The sids of a `binaries` request, in order, without repeats.
fn binaries_ids(query: Option<&str>) -> Result<Vec<Sid>, ApiError> {
    let invalid = |detail: &str| ApiError::InvalidParameters(detail.to_owned());
    let params: BinariesParams =
        serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| invalid("doc_ids must be given once"))?;
    let list = params.doc_ids.ok_or_else(|| invalid("doc_ids is required"))?;
    // Exactly as `openapi.yaml` has it: 1 to 10 sids, commas only between them.
    let entries: Vec<&str> = list.split(',').collect();
    if entries.len() > MAX_BINARIES {
        return Err(invalid(&format!(
            "doc_ids may name at most {MAX_BINARIES} summaries"
        )));
    }
    let mut sids: Vec<Sid> = Vec::new();
    for raw in entries {
        let sid = Sid::parse(raw)
            .ok_or_else(|| invalid("each doc_ids entry must be an AVS id (30 to 40 hex digits)"))?;
        if !sids.contains(&sid) {
            sids.push(sid);
        }
    }
    Ok(sids)
}

/// `GET /avs/v0/avs/binaries?doc_ids=<sid>,<sid>`: VA.gov's `avs_binaries` answer for VistA
/// summaries (a base64 PDF per item), so the mobile app's viewer opens one unchanged. Always
/// 200 once the checks pass; someone else's summary and a missing one read the same.
pub async fn binaries(
    State(app): State<AppState>,
    caller: Authenticated,
    Extension(request_id): Extension<RequestId>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    app.require(AVS_ENABLED, &caller)?;
    let sids = binaries_ids(query.as_deref())?;
    app.require(AVS_PDF, &caller)?;
    let ctx = request_id.context();
    let fetches = sids.iter().map(|sid| {
        let (app, ctx, owner) = (&app, &ctx, caller.owner.as_ref());
        async move {
            let summary = app.summaries.summary(sid, owner, ctx).await?;
            app.summaries.document(sid, &summary, Form::Pdf).await
        }
    });
    let results = futures_util::future::join_all(fetches).await;
    let items = sids
        .iter()
        .zip(&results)
        .map(|(sid, result)| {
            let found = match result {
                Ok(rendered) => Binary::Found(&rendered.document),
                Err(SummaryError::NotFound(_) | SummaryError::NotYourSummary) => Binary::Empty,
                Err(_) => Binary::Failed,
            };
            (sid.as_str(), found)
        })
        .collect();
    Ok(documents::binaries(items))
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
    // The documents' toggle, asked only of callers shown links (its report counts them).
    let pdf_on = enabled && app.gate(AVS_PDF, &caller);
    // Every caller asked counts, links on or off: the plan's share is of all of them.
    let shown = links.iter().any(|l| matches!(l, Link::Page(_)));
    crate::telemetry::note(|n| n.links_shown = Some(shown));
    let data: Vec<Value> = appointments
        .iter()
        .zip(links)
        .map(|((station, ien), link)| {
            let (path, error, pdf) = match link {
                Link::Page(sid) => {
                    // The item shape the mobile app reads for Oracle Health (`documents.md`).
                    let pdf = pdf_on.then(|| {
                        json!([{"id": sid.as_str(), "apptId": ien.as_str(), "name": crate::documents::TITLE,
                                "noteType": "ambulatory_patient_summary", "loincCodes": ["96345-4"],
                                "contentType": "application/pdf", "binary": null}])
                    });
                    (Some(format!("{SUMMARY_PAGE}{sid}")), None, pdf)
                }
                Link::None => (None, None, None),
                Link::Failed => (None, Some("Error retrieving AVS info"), None),
            };
            json!({"stationNo": station.as_str(), "appointmentIen": ien.as_str(), "path": path, "error": error, "avsPdf": pdf})
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
