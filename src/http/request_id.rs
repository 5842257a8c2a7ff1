//! Request ids: the inbound `X-Request-Id` when it is sane, else a fresh UUID; returned on the
//! response and sent upstream.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const X_REQUEST_ID: &str = "x-request-id";

#[derive(Clone, Debug)]
pub struct RequestId(pub HeaderValue);

/// Accepts ids of up to 128 visible characters from a conservative set, so a hostile id can't
/// smuggle anything into logs or upstream headers.
fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(X_REQUEST_ID) {
        Some(v) if acceptable(v) => v.clone(),
        _ => HeaderValue::try_from(uuid::Uuid::new_v4().to_string())
            .unwrap_or(HeaderValue::from_static("invalid")),
    };
    request.headers_mut().insert(X_REQUEST_ID, id.clone());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID, id);
    response
}
