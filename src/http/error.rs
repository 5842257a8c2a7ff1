//! The one error type a client can see, and the one JSON shape it is rendered in.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::Sid;
use crate::upstream::UpstreamError;

#[derive(Debug)]
pub enum ApiError {
    InvalidSid,
    InvalidSearch,
    /// A links request that is not `{"appointments": [1..100 valid items]}`; says what is wrong.
    InvalidLinks(String),
    PayloadTooLarge(usize),
    Unauthenticated,
    NotYourSummary,
    NotYourAppointment,
    /// Unknown route, and a gated-off caller: the same answer, so the gate reveals nothing.
    NoRoute,
    MethodNotAllowed,
    SummaryNotFound(Sid),
    BadGateway,
    /// Upstream unreachable; `retry_after` when the circuit breaker is open.
    Unavailable {
        retry_after: Option<std::time::Duration>,
    },
    /// This service or its upstream connection slots are saturated: shed, retry shortly.
    Busy,
    GatewayTimeout,
    NotReady(String),
    ToggleStoreReadOnly,
    ToggleStoreFailed,
    /// An admin form without the page's anti-forgery token, or posted from another origin.
    ForgedForm,
    /// A state-changing admin API call sent with HTTP Basic, which browsers send on their own.
    BearerRequired,
    /// One caller has too many requests in flight.
    TooManyRequests,
    /// The request body did not arrive in time.
    BodyTimeout,
    UriTooLong,
    HeadersTooLarge,
    Internal,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        use ApiError::*;
        let (status, title, detail) = match self {
            InvalidSid => (
                StatusCode::BAD_REQUEST,
                "Invalid AVS id",
                "AVS id does not match accepted format.",
            ),
            InvalidSearch => (
                StatusCode::BAD_REQUEST,
                "Invalid parameters",
                "Station number and Appointment IEN must be present and valid.",
            ),
            InvalidLinks(detail) => {
                return (StatusCode::BAD_REQUEST, "Invalid parameters", detail.clone());
            }
            PayloadTooLarge(limit) => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Payload too large",
                    format!("Request body over {limit} bytes"),
                );
            }
            Unauthenticated => (StatusCode::UNAUTHORIZED, "Not authorized", "Not authorized"),
            NotYourSummary => (
                StatusCode::UNAUTHORIZED,
                "Not authorized",
                "User may not view this AVS.",
            ),
            NotYourAppointment => (
                StatusCode::UNAUTHORIZED,
                "Not authorized",
                "User may not view the AVS for this appointment.",
            ),
            NoRoute => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There are no routes matching your request",
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "This route does not accept that HTTP method",
            ),
            SummaryNotFound(sid) => {
                return (
                    StatusCode::NOT_FOUND,
                    "Not found",
                    format!("No AVS found for sid {sid}"),
                );
            }
            BadGateway => (
                StatusCode::BAD_GATEWAY,
                "Bad gateway",
                "The clinical source returned an invalid response",
            ),
            Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "Backend Service Outage",
            ),
            Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "The service is busy; retry shortly",
            ),
            GatewayTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "Gateway timeout",
                "Did not receive a timely response from an upstream server",
            ),
            NotReady(check) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service unavailable",
                    format!("Not ready: {check}"),
                );
            }
            ToggleStoreReadOnly => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The toggle store is read-only",
            ),
            ForgedForm => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The form is stale or was posted from another site; reload the page",
            ),
            BearerRequired => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Changes through the admin API take the Bearer token, not HTTP Basic",
            ),
            TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "Too many requests in flight for this caller; retry shortly",
            ),
            BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "Request timeout",
                "The request body did not arrive in time",
            ),
            UriTooLong => (
                StatusCode::URI_TOO_LONG,
                "URI too long",
                "The request target is too long",
            ),
            HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request header fields too large",
                "The request has too many or too large header fields",
            ),
            ToggleStoreFailed => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "The toggle store could not be written",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
                "The server could not answer this request",
            ),
        };
        (status, title, detail.to_owned())
    }
}

/// The symbolic status the VA.gov frontend switches on (`errors[0].status`).
fn symbol(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        414 => "uri_too_long",
        429 => "too_many_requests",
        431 => "request_header_fields_too_large",
        502 => "bad_gateway",
        503 => "service_unavailable",
        504 => "gateway_timeout",
        _ => "internal_server_error",
    }
}

impl ApiError {
    /// Seconds a client should wait before retrying, where the answer says so.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Unavailable { retry_after: Some(d) } => Some(d.as_secs_f64().ceil().max(1.0) as u64),
            ApiError::Busy | ApiError::TooManyRequests => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after();
        let (status, title, detail) = self.parts();
        let body = json!({"errors": [{
            "title": title,
            "detail": detail,
            "code": status.as_str(),
            "status": symbol(status),
        }]});
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<crate::toggles::WriteError> for ApiError {
    fn from(e: crate::toggles::WriteError) -> ApiError {
        match e {
            crate::toggles::WriteError::ReadOnly => ApiError::ToggleStoreReadOnly,
            crate::toggles::WriteError::Store(_) => ApiError::ToggleStoreFailed,
        }
    }
}

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> ApiError {
        match e {
            // Callers map NotFound themselves where it carries a sid; elsewhere it is no route.
            UpstreamError::NotFound => ApiError::NoRoute,
            UpstreamError::BadGateway(_) | UpstreamError::ServerError(_) => ApiError::BadGateway,
            UpstreamError::Unavailable(_) => ApiError::Unavailable { retry_after: None },
            UpstreamError::CircuitOpen(wait) => ApiError::Unavailable {
                retry_after: Some(wait),
            },
            UpstreamError::Saturated => ApiError::Busy,
            UpstreamError::Timeout => ApiError::GatewayTimeout,
        }
    }
}
