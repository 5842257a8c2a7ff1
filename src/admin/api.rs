//! Flipper's HTTP API shapes, so Flipper's own clients and scripts can drive the rollout.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{AdminState, FlipperError};
use crate::domain::ActorId;
use crate::http::ApiError;
use crate::toggles::{Change, Feature, Percentage};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/flipper/api/features", get(list).post(add))
        .route("/flipper/api/features/{name}", get(show))
        .route(
            "/flipper/api/features/{name}/boolean",
            post(enable).delete(disable),
        )
        .route(
            "/flipper/api/features/{name}/percentage_of_actors",
            post(set_percentage_of_actors).delete(clear_percentage_of_actors),
        )
        .route(
            "/flipper/api/features/{name}/percentage_of_time",
            post(set_percentage_of_time).delete(clear_percentage_of_time),
        )
        .route(
            "/flipper/api/features/{name}/actors",
            post(add_actor).delete(remove_actor),
        )
        .route("/flipper/api/actors/{flipper_id}", get(actor))
}

/// A feature as Flipper's API renders it: gate values as stored text.
pub fn feature_json(name: &str, f: &Feature) -> Value {
    let pct = |p: Option<Percentage>| p.map(|p| p.to_string());
    json!({
        "key": name,
        "state": f.state().as_str(),
        "gates": [
            {"key": "boolean", "name": "boolean", "value": f.boolean.then_some("true")},
            {"key": "actors", "name": "actor", "value": f.actors},
            {"key": "percentage_of_actors", "name": "percentage_of_actors", "value": pct(f.percentage_of_actors)},
            {"key": "percentage_of_time", "name": "percentage_of_time", "value": pct(f.percentage_of_time)},
            {"key": "groups", "name": "group", "value": f.groups},
        ],
    })
}

/// Parameters from a JSON body or a form body, as text.
fn params(headers: &HeaderMap, body: &Bytes) -> HashMap<String, String> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        let map: serde_json::Map<String, Value> = serde_json::from_slice(body).unwrap_or_default();
        map.into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Number(n) => Some((k, n.to_string())),
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

/// A percentage parameter: a number from 0 to 100, else Flipper's error 3.
pub fn percentage(raw: Option<&str>) -> Result<Percentage, FlipperError> {
    raw.map(str::trim)
        .and_then(Percentage::parse)
        .filter(|p| p.in_range())
        .ok_or(FlipperError::InvalidPercentage)
}

async fn write(state: &AdminState, name: &str, change: Change) -> Response {
    match state.toggles.apply(name, change).await {
        Ok(()) => show_feature(state, name),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn show_feature(state: &AdminState, name: &str) -> Response {
    match state.toggles.snapshot().features.get(name) {
        Some(f) => axum::Json(feature_json(name, f)).into_response(),
        None => FlipperError::FeatureNotFound.into_response(),
    }
}

async fn list(State(state): State<AdminState>) -> Response {
    let snapshot = state.toggles.snapshot();
    let mut names: Vec<&String> = snapshot.features.keys().collect();
    names.sort();
    let features: Vec<Value> = names
        .into_iter()
        .map(|n| feature_json(n, &snapshot.features[n]))
        .collect();
    axum::Json(json!({ "features": features })).into_response()
}

async fn add(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    match params(&headers, &body)
        .get("name")
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        Some(name) => write(&state, name, Change::AddFeature).await,
        None => FlipperError::MissingName.into_response(),
    }
}

async fn show(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    show_feature(&state, &name)
}

async fn enable(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    write(&state, &name, Change::EnableBoolean).await
}

async fn disable(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    write(&state, &name, Change::DisableBoolean).await
}

/// A percentage write: the `percentage` parameter, or 0 for a DELETE (Flipper stores 0).
async fn percentage_write(
    state: &AdminState,
    name: &str,
    raw: Option<(&HeaderMap, &Bytes)>,
    change: fn(Percentage) -> Change,
) -> Response {
    let value = match raw {
        Some((headers, body)) => percentage(params(headers, body).get("percentage").map(String::as_str)),
        None => Ok(Percentage::Integer(0)),
    };
    match value {
        Ok(p) => write(state, name, change(p)).await,
        Err(e) => e.into_response(),
    }
}

async fn set_percentage_of_actors(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    percentage_write(&state, &name, Some((&headers, &body)), Change::PercentageOfActors).await
}

async fn clear_percentage_of_actors(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    percentage_write(&state, &name, None, Change::PercentageOfActors).await
}

async fn set_percentage_of_time(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    percentage_write(&state, &name, Some((&headers, &body)), Change::PercentageOfTime).await
}

async fn clear_percentage_of_time(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    percentage_write(&state, &name, None, Change::PercentageOfTime).await
}

fn flipper_id(headers: &HeaderMap, body: &Bytes) -> Result<String, FlipperError> {
    params(headers, body)
        .remove("flipper_id")
        .filter(|id| !id.is_empty())
        .ok_or(FlipperError::MissingFlipperId)
}

/// An actor write: the `flipper_id` parameter, required.
async fn actor_write(
    state: &AdminState,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
    change: fn(String) -> Change,
) -> Response {
    match flipper_id(headers, body) {
        Ok(id) => write(state, name, change(id)).await,
        Err(e) => e.into_response(),
    }
}

async fn add_actor(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    actor_write(&state, &name, &headers, &body, Change::AddActor).await
}

async fn remove_actor(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    actor_write(&state, &name, &headers, &body, Change::RemoveActor).await
}

async fn actor(State(state): State<AdminState>, Path(flipper_id): Path<String>) -> Response {
    let actor = ActorId::new(flipper_id.clone());
    let snapshot = state.toggles.snapshot();
    let features: serde_json::Map<String, Value> = snapshot
        .features
        .keys()
        .map(|name| {
            (
                name.clone(),
                json!({"enabled": state.toggles.is_enabled(name, Some(&actor))}),
            )
        })
        .collect();
    axum::Json(json!({"flipper_id": flipper_id, "features": features})).into_response()
}
