//! Request ids: the inbound `X-Request-Id` when it is sane, else a fresh UUID; returned on the
//! response and sent upstream.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone, Debug)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// What an upstream call carries of this request: its id.
    pub fn context(&self) -> crate::clinical::RequestContext {
        crate::clinical::RequestContext {
            request_id: Some(self.0.clone()),
        }
    }
}

/// Accepts ids of up to 128 visible characters from a conservative set, so a hostile id can't
/// smuggle anything into logs or upstream headers.
fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// A v4 UUID from the thread's fast generator. A request id must be unique, not secret, and
/// `Uuid::new_v4` costs a `getrandom` system call per request (measured: one per request under
/// load, with the context switches that come with it).
///
/// The text is the value's owner (`Bytes::from_owner`): one allocation, and the copy kept in
/// the request's extensions shares it (a copied text's first clone allocates again).
fn fresh() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text);
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .unwrap_or(HeaderValue::from_static("invalid"))
}

/// Gives the request its id (as an extension, for handlers) and returns it for the response.
pub fn assign(request: &mut Request) -> HeaderValue {
    let id = match request.headers().get(&X_REQUEST_ID) {
        Some(v) if acceptable(v) => v.clone(),
        _ => fresh(),
    };
    request.extensions_mut().insert(RequestId(id.clone()));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_distinct_v4_uuids() {
        let a = fresh();
        let b = fresh();
        assert_ne!(a, b);
        for id in [a, b] {
            let parsed = uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap();
            assert_eq!(parsed.get_version_num(), 4, "{id:?}");
            assert!(acceptable(&id));
        }
    }
}
