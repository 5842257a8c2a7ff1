//! CORS for the VA.gov page, which calls from another origin (`www.va.gov` → `api.va.gov`)
//! with credentials and custom headers (`identity.md`).
//!
//! Written here rather than taken from tower-http's `CorsLayer`: the contract wants what that
//! layer does not do — a refused preflight answered 403 in the error shape, each route's own
//! methods, and the headers on every answer the edge makes (shed, refused heads, timeouts),
//! which only the edge itself sees.

use std::collections::HashMap;

use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Request headers a page may send (vets-website's, and what the document routes read).
const ALLOWED_HEADERS: [&str; 10] = [
    "authorization",
    "content-type",
    "source-app-name",
    "x-csrf-token",
    "x-key-inflection",
    "x-request-id",
    "traceparent",
    "range",
    "if-none-match",
    "if-range",
];
const EXPOSED: &str = "X-Request-Id, Content-Disposition, ETag, Content-Range, Accept-Ranges";
const PREFLIGHT_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

pub(super) struct Cors {
    origins: Vec<HeaderValue>,
    /// Each route template's methods, as `Access-Control-Allow-Methods` says them.
    methods: HashMap<&'static str, (Vec<Method>, HeaderValue)>,
}

impl Cors {
    pub(super) fn new(origins: Vec<HeaderValue>, routes: &[(Method, &'static str)]) -> Cors {
        let mut by_route: HashMap<&'static str, Vec<Method>> = HashMap::new();
        for (method, path) in routes {
            by_route.entry(path).or_default().push(method.clone());
        }
        let methods = by_route
            .into_iter()
            .filter_map(|(path, methods)| {
                let list = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
                Some((path, (methods, HeaderValue::from_str(&list).ok()?)))
            })
            .collect();
        Cors { origins, methods }
    }

    /// Whether any origin is listed: then every answer varies by `Origin`, listed or not, so
    /// no cache hands one origin's answer (with or without the CORS headers) to another.
    pub(super) fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    /// `Vary: Origin` on an answer that does not say it yet (a preflight's says it already).
    pub(super) fn vary(headers: &mut HeaderMap) {
        let said = headers.get_all(VARY).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|h| h.trim().eq_ignore_ascii_case("origin")))
        });
        if !said {
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
    }

    /// The request's `Origin` when it is listed. No `Origin` (every non-browser caller, and a
    /// same-origin GET) costs one header lookup.
    pub(super) fn listed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(ORIGIN)?;
        self.origins.iter().find(|o| *o == origin).cloned()
    }

    /// The answer to a preflight, or `None` when the request is not one. A preflight needs no
    /// credentials, passes no gate and reaches no handler.
    pub(super) fn preflight(
        &self,
        method: &Method,
        headers: &HeaderMap,
        route: Option<&str>,
        origin: Option<&HeaderValue>,
    ) -> Option<Response> {
        if method != Method::OPTIONS || !headers.contains_key(ORIGIN) {
            return None;
        }
        let asked = headers.get(ACCESS_CONTROL_REQUEST_METHOD)?;
        let refused = || Some(ApiError::PreflightRefused.into_response());
        let Some(origin) = origin else { return refused() };
        let Some((methods, allow_methods)) = route.and_then(|r| self.methods.get(r)) else {
            return refused();
        };
        if !methods.iter().any(|m| m.as_str().as_bytes() == asked.as_bytes()) {
            return refused();
        }
        let asked_headers = headers
            .get(ACCESS_CONTROL_REQUEST_HEADERS)
            .map(|v| v.to_str().unwrap_or("\u{0}"))
            .unwrap_or("");
        let all_allowed = asked_headers
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .all(|h| ALLOWED_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(h)));
        if !all_allowed {
            return refused();
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let out = response.headers_mut();
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, allow_methods.clone());
        if let Some(h) = headers.get(ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
        out.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        out.insert(VARY, HeaderValue::from_static(PREFLIGHT_VARY));
        Some(response)
    }

    /// The headers every answer to a listed origin carries, errors included: without them the
    /// browser hides the answer (the expired-token 403 too, which the page must read).
    pub(super) fn allow(origin: HeaderValue, headers: &mut HeaderMap) {
        if headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) {
            return; // a preflight's answer, complete already
        }
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        headers.append(VARY, HeaderValue::from_static("Origin"));
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
    }
}
