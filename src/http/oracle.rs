//! Oracle Health routes: the caller's summaries by appointment, one appointment's, the document
//! itself (raw bytes, ranges, validators), and VA.gov's second step (`avs_binaries`) for the
//! clients that still read base64 inside JSON. Checks in the spec's order: authenticate, gate,
//! validate, a patient identity, then the ownership index.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use time::Date;

use super::auth::Authenticated;
use super::documents::{self, Binary};
use super::error::ApiError;
use super::request_id::RequestId;
use crate::app::AppState;
use crate::clinical::oracle::{DocError, Index, OracleSummaries};
use crate::domain::Document;
use crate::domain::PatientIcn;
use crate::domain::oracle::{ApptId, DocId, IndexedDoc, format_date, parse_date};
use crate::toggles::OH_AVS;

/// At most this many ids in one compatibility request (after removing duplicates).
pub const MAX_DOC_IDS: usize = 5;
/// Documents fetched at once for one compatibility request.
const COMPAT_CONCURRENCY: usize = 4;
/// The longest list window a caller may ask for.
const MAX_SPAN_DAYS: i64 = 731;

/// Steps 2 to 4 of every OH route after authentication: the service (404 when OH is off), the
/// gate (404), the checks of the caller's input (400, by `validate`), and a patient (403).
fn open<'a, T>(
    app: &'a AppState,
    caller: &Authenticated,
    validate: impl FnOnce() -> Result<T, ApiError>,
) -> Result<(&'a Arc<OracleSummaries>, T, PatientIcn), ApiError> {
    let oh = app.oh.as_ref().ok_or(ApiError::NoRoute)?;
    app.require(OH_AVS, caller)?;
    let input = validate()?;
    let patient = caller.patient.clone().ok_or(ApiError::NoPatient)?;
    Ok((oh, input, patient))
}

/// The query's pairs; a repeated name is ambiguous, so invalid. Unknown names are ignored.
fn query(raw: Option<&str>) -> Result<BTreeMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| ApiError::InvalidParameters("The query string could not be read".to_owned()))?;
    let mut map = BTreeMap::new();
    for (name, value) in pairs {
        if map.insert(name.clone(), value).is_some() {
            return Err(ApiError::InvalidParameters(format!(
                "{name} is given more than once"
            )));
        }
    }
    Ok(map)
}

/// `startDate` and `endDate`: real dates; `endDate` defaults to today (UTC) and `startDate` to
/// the lookback window before it. A window over 731 days is served as its most recent 731 days
/// (a cross-field rule the schema cannot state: the contract says what is served, and `meta`
/// names it); a reversed window holds nothing.
fn window(oh: &OracleSummaries, raw: Option<&str>) -> Result<(Date, Date), ApiError> {
    let q = query(raw)?;
    let date = |name: &str| -> Result<Option<Date>, ApiError> {
        q.get(name)
            .map(|v| {
                parse_date(v).ok_or_else(|| {
                    ApiError::InvalidParameters(format!("{name} must be a real date as YYYY-MM-DD"))
                })
            })
            .transpose()
    };
    let (default_start, today) = oh.window();
    let end = date("endDate")?.unwrap_or(today);
    let start = match date("startDate")? {
        Some(start) => start,
        None => end - (today - default_start),
    };
    let start = if (end - start).whole_days() > MAX_SPAN_DAYS {
        end - time::Duration::days(MAX_SPAN_DAYS)
    } else {
        start
    };
    Ok((start, end))
}

fn appt_id(raw: Result<Path<String>, PathRejection>) -> Result<ApptId, ApiError> {
    raw.ok().and_then(|Path(raw)| ApptId::parse(&raw)).ok_or_else(|| {
        ApiError::InvalidParameters("apptId must be 1 to 64 letters, digits or hyphens".to_owned())
    })
}

fn doc_id(raw: Result<Path<String>, PathRejection>) -> Result<DocId, ApiError> {
    raw.ok().and_then(|Path(raw)| DocId::parse(&raw)).ok_or_else(|| {
        ApiError::InvalidParameters("docId must be 1 to 64 letters, digits or hyphens".to_owned())
    })
}

/// The appointments of `docs` that `keep` lets through, newest first, each with its documents
/// newest first: the list's `data`.
fn appointments<'a>(docs: impl Iterator<Item = &'a IndexedDoc>, only: Option<&ApptId>) -> Vec<Value> {
    let mut by_appt: BTreeMap<&ApptId, Vec<&IndexedDoc>> = BTreeMap::new();
    for doc in docs {
        for appt in doc.appointments.iter().filter(|a| only.is_none_or(|o| o == *a)) {
            by_appt.entry(appt).or_default().push(doc);
        }
    }
    let mut groups: Vec<(&ApptId, Vec<&IndexedDoc>)> = by_appt.into_iter().collect();
    for (_, docs) in &mut groups {
        docs.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.id.cmp(&b.id)));
    }
    groups.sort_by(|(a, da), (b, db)| db[0].date.cmp(&da[0].date).then_with(|| a.cmp(b)));
    groups
        .into_iter()
        .map(|(appt, docs)| {
            let items: Vec<_> = docs.iter().map(|d| d.item(appt)).collect();
            json!({"id": appt.as_str(), "type": "avs_oh_appointment",
                   "attributes": {"apptId": appt.as_str(), "date": format_date(docs[0].date), "avsPdf": items}})
        })
        .collect()
}

/// `GET /avs/v0/oh/summaries?startDate&endDate`
pub async fn summaries(
    State(app): State<AppState>,
    caller: Authenticated,
    Extension(request_id): Extension<RequestId>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let oh = app.oh.clone().ok_or(ApiError::NoRoute)?;
    let (oh, (start, end), patient) = open(&app, &caller, || window(&oh, raw.as_deref()))?;
    // A window that ends before it starts holds no document: an empty list, not a 400, so a
    // contract tester's schema-valid `startDate` far in the future is answered (openapi.yaml),
    // and no upstream call is made for it.
    let data = if end < start {
        Vec::new()
    } else {
        let index = oh.index(&patient, &request_id.context()).await?;
        appointments(
            index.docs.values().filter(|d| (start..=end).contains(&d.date)),
            None,
        )
    };
    let meta = json!({"count": data.len(), "startDate": format_date(start), "endDate": format_date(end)});
    Ok(Json(json!({"data": data, "meta": meta})).into_response())
}

/// `GET /avs/v0/oh/appointments/{apptId}`
pub async fn appointment(
    State(app): State<AppState>,
    caller: Authenticated,
    Extension(request_id): Extension<RequestId>,
    appt: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (oh, appt, patient) = open(&app, &caller, || appt_id(appt))?;
    let index = oh.index(&patient, &request_id.context()).await?;
    let mut data = appointments(index.docs.values(), Some(&appt));
    let one = data.pop().ok_or(ApiError::OhNotFound)?;
    Ok(Json(json!({"data": one})).into_response())
}

/// `GET|HEAD /avs/v0/oh/documents/{docId}[?download=1]`: the bytes, with validators and ranges.
pub async fn document(
    State(app): State<AppState>,
    caller: Authenticated,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (oh, (id, download), patient) = open(&app, &caller, || {
        let download = query(raw.as_deref())?
            .get("download")
            .is_some_and(|v| v == "1" || v == "true");
        Ok((doc_id(id)?, download))
    })?;
    // The document route is the toggle's one view (`rollout-guard.md`); lists are not.
    crate::telemetry::note(|n| n.view_of = Some(OH_AVS));
    let doc = oh
        .document(&patient, &id, &request_id.context())
        .await
        .map_err(ApiError::from)?;
    let name = format!("after-visit-summary-{}.{}", id.as_str(), doc.kind.extension());
    Ok(documents::serve(&doc, &name, download, &headers))
}

/// `GET /avs/v0/oh/appointments/{apptId}/binaries?doc_ids=a,b`: VA.gov's `avs_binaries`, so its
/// web and mobile apps can be pointed here unchanged. Always 200 once the checks pass; each
/// item carries its document or one of the two strings the apps tell apart.
pub async fn binaries(
    State(app): State<AppState>,
    caller: Authenticated,
    Extension(request_id): Extension<RequestId>,
    RawQuery(raw): RawQuery,
    appt: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (oh, (appt, ids), patient) = open(&app, &caller, || {
        let appt = appt_id(appt)?;
        let q = query(raw.as_deref())?;
        let list = match (q.get("doc_ids"), q.get("docIds")) {
            (Some(ids), None) | (None, Some(ids)) => ids,
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidParameters(
                    "give doc_ids or docIds, not both".to_owned(),
                ));
            }
            (None, None) => return Err(ApiError::InvalidParameters("doc_ids is required".to_owned())),
        };
        let mut ids: Vec<DocId> = Vec::new();
        for raw in list.split(',') {
            let id = DocId::parse(raw.trim()).ok_or_else(|| {
                ApiError::InvalidParameters(
                    "each doc_ids entry must be 1 to 64 letters, digits or hyphens".to_owned(),
                )
            })?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.len() > MAX_DOC_IDS {
            return Err(ApiError::InvalidParameters(format!(
                "doc_ids may name at most {MAX_DOC_IDS} documents"
            )));
        }
        Ok((appt, ids))
    })?;
    // Recorded, not an ownership factor: callers pass the OH or the VA.gov appointment id.
    tracing::Span::current().record("oh.appt_id", appt.as_str());
    let ctx = request_id.context();
    // The index first: when it can't be built, every item fails, and the answer is still 200.
    let indexed: Result<Arc<Index>, _> = oh.index(&patient, &ctx).await;
    let results: Vec<Result<Arc<Document>, DocError>> = match indexed {
        Err(e) => ids.iter().map(|_| Err(DocError::Upstream(e.clone()))).collect(),
        Ok(_) => {
            // Concurrent, at most COMPAT_CONCURRENCY at a time, answered in request order.
            let turns = tokio::sync::Semaphore::new(COMPAT_CONCURRENCY);
            let mut fetches = Vec::with_capacity(ids.len());
            for id in &ids {
                let (turns, patient, ctx) = (&turns, &patient, &ctx);
                fetches.push(async move {
                    let _turn = turns.acquire().await;
                    oh.document(patient, id, ctx).await
                });
            }
            futures_util::future::join_all(fetches).await
        }
    };
    let items = ids
        .iter()
        .zip(&results)
        .map(|(id, result)| {
            let found = match result {
                Ok(doc) => Binary::Found(doc),
                Err(DocError::NotFound | DocError::NoUsableContent) => Binary::Empty,
                Err(_) => Binary::Failed,
            };
            (id.as_str(), found)
        })
        .collect();
    Ok(documents::binaries(items))
}
