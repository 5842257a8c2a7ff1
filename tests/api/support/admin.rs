//! The admin API, called in process with or without its token.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

/// A widening write as these tests make it: with `force` and a reason, as a rollout engineer
/// overrides the rollout guard, so the tests of Flipper's API test the write and not the
/// guard. The guard's own tests (`rollout_guard.rs`) call [`admin_guarded`], which leaves the
/// write as it is.
fn past_the_guard(method: &Method, uri: &str) -> String {
    let widening = [("/boolean"), ("/percentage_of_actors"), ("/percentage_of_time")]
        .iter()
        .any(|gate| uri.starts_with("/flipper/api/features/") && uri.ends_with(gate));
    if method == Method::POST && widening {
        format!("{uri}?force=true&reason=flipper-api-test")
    } else {
        uri.to_owned()
    }
}

/// The admin API as a caller sees it, through the rollout guard.
pub async fn admin_guarded(
    app: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    call(app, method, uri.to_owned(), token, body).await
}

pub async fn admin(
    app: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let uri = past_the_guard(&method, uri);
    call(app, method, uri, token, body).await
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: String,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match body {
        Some((content_type, body)) => request
            .header("content-type", content_type)
            .body(Body::from(body)),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
