//! Flipper's HTTP API shapes, so Flipper's own clients and scripts can drive the rollout.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{AdminState, FlipperError, params};
use crate::domain::ActorId;
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

/// A percentage parameter: a number from 0 to 100, else Flipper's error 3.
pub fn percentage(raw: Option<&str>) -> Result<Percentage, FlipperError> {
    raw.map(str::trim)
        .and_then(Percentage::parse)
        .filter(|p| p.in_range())
        .ok_or(FlipperError::InvalidPercentage)
}

/// A write through the rollout guard (`rollout::guarded_write`); `force` is the reason given
/// with `force=true`, if any.
async fn write(state: &AdminState, name: &str, change: Change, force: Option<String>) -> Response {
    match super::rollout::guarded_write(state, name, change, force).await {
        Ok(()) => show_feature(state, name),
        Err(refused) => refused,
    }
}

/// The parameters of a widening write, from its body and its query string (a Flipper client
/// posts `boolean` with no body: `?force=true&reason=…` is where its override goes).
fn write_params(query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> HashMap<String, String> {
    let mut all: HashMap<String, String> =
        serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
    all.extend(params(headers, body));
    all
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
        Some(name) => write(&state, name, Change::AddFeature, None).await,
        None => FlipperError::MissingName.into_response(),
    }
}

async fn show(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    show_feature(&state, &name)
}

async fn enable(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match super::rollout::force(&write_params(query.as_deref(), &headers, &body)) {
        Ok(force) => write(&state, &name, Change::EnableBoolean, force).await,
        Err(bad) => bad.into_response(),
    }
}

async fn disable(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    write(&state, &name, Change::DisableBoolean, None).await
}

/// A percentage write: the `percentage` parameter, or 0 for a DELETE (Flipper stores 0).
async fn percentage_write(
    state: &AdminState,
    name: &str,
    raw: Option<(Option<&str>, &HeaderMap, &Bytes)>,
    change: fn(Percentage) -> Change,
) -> Response {
    let Some((query, headers, body)) = raw else {
        return write(state, name, change(Percentage::Integer(0)), None).await;
    };
    let params = write_params(query, headers, body);
    let force = match super::rollout::force(&params) {
        Ok(force) => force,
        Err(bad) => return bad.into_response(),
    };
    match percentage(params.get("percentage").map(String::as_str)) {
        Ok(p) => write(state, name, change(p), force).await,
        Err(e) => e.into_response(),
    }
}

async fn set_percentage_of_actors(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = Some((query.as_deref(), &headers, &body));
    percentage_write(&state, &name, raw, Change::PercentageOfActors).await
}

async fn clear_percentage_of_actors(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    percentage_write(&state, &name, None, Change::PercentageOfActors).await
}

async fn set_percentage_of_time(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = Some((query.as_deref(), &headers, &body));
    percentage_write(&state, &name, raw, Change::PercentageOfTime).await
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
        Ok(id) => write(state, name, change(id), None).await,
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
