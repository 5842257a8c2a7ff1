//! The one error type a client can see, and the one JSON shape it is rendered in.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::clinical::UpstreamError;
use crate::clinical::oracle::DocError;
use crate::clinical::vista::SummaryError;
use crate::domain::Sid;

#[derive(Debug)]
pub enum ApiError {
    InvalidSid,
    InvalidSearch,
    /// A links request that is not `{"appointments": [1..100 valid items]}`; says what is wrong.
    InvalidLinks(String),
    PayloadTooLarge(usize),
    /// A links request from a browser that is not JSON.
    UnsupportedMediaType,
    Unauthenticated,
    /// A SiS token past its `exp`: vets-api's own 403 body, the one answer outside the error
    /// shape, since VA.gov's page refreshes the session and retries only on it.
    TokenExpired,
    /// A service token whose scopes do not cover the route.
    OutOfScope,
    /// A cookie-authenticated state-changing request from an origin not listed.
    ForeignOrigin,
    /// A CORS preflight from an origin not listed, or asking for what the route does not allow.
    PreflightRefused,
    /// vets-api could not say who the user is: never treated as anyone.
    UserUnavailable,
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
    /// A route's query parameters are not valid (Oracle Health, documents); says what is wrong.
    InvalidParameters(String),
    /// A caller whose token has no `icn` owns no Oracle Health summary.
    NoPatient,
    /// No such Oracle Health appointment or document for the caller (or not theirs).
    OhNotFound,
    /// A `Range` outside a document of this many bytes.
    RangeNotSatisfiable(usize),
    Internal,
}

/// Each status a client can see: its symbolic name (what the VA.gov frontend switches on,
/// `errors[0].status`) and the title every error of that status carries.
const STATUSES: &[(StatusCode, &str, &str)] = &[
    (StatusCode::BAD_REQUEST, "bad_request", "Bad request"),
    (StatusCode::UNAUTHORIZED, "unauthorized", "Not authorized"),
    (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
    (StatusCode::NOT_FOUND, "not_found", "Not found"),
    (
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
    ),
    (StatusCode::REQUEST_TIMEOUT, "request_timeout", "Request timeout"),
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "Payload too large",
    ),
    (StatusCode::URI_TOO_LONG, "uri_too_long", "URI too long"),
    (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Unsupported media type",
    ),
    (
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        "Range not satisfiable",
    ),
    (
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "Too many requests",
    ),
    (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_header_fields_too_large",
        "Request header fields too large",
    ),
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_server_error",
        "Internal server error",
    ),
    (StatusCode::BAD_GATEWAY, "bad_gateway", "Bad gateway"),
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        "Service unavailable",
    ),
    (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout", "Gateway timeout"),
];

/// The symbolic name and the title of `status`.
fn named(status: StatusCode) -> (&'static str, &'static str) {
    STATUSES.iter().find(|(s, _, _)| *s == status).map_or(
        ("internal_server_error", "Internal server error"),
        |(_, symbol, title)| (symbol, title),
    )
}

impl ApiError {
    fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidSid | InvalidSearch | InvalidLinks(_) | InvalidParameters(_) => StatusCode::BAD_REQUEST,
            Unauthenticated => StatusCode::UNAUTHORIZED,
            // 403, not vets-api's 401: VA.gov's `apiRequest` turns every 401 into a "session
            // expired" sign-in loop, and the page picks its "We can't give you access" view
            // from the body's `status` (`api.md`, "Not yours is 403").
            NotYourSummary | NotYourAppointment => StatusCode::FORBIDDEN,
            ToggleStoreReadOnly | ForgedForm | BearerRequired | NoPatient | TokenExpired | OutOfScope
            | ForeignOrigin | PreflightRefused => StatusCode::FORBIDDEN,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            NoRoute | SummaryNotFound(_) | OhNotFound => StatusCode::NOT_FOUND,
            RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            BadGateway => StatusCode::BAD_GATEWAY,
            Unavailable { .. } | Busy | NotReady(_) | ToggleStoreFailed | UserUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The title: the status's own, but for the 400s the frontend tells apart.
    fn title(&self) -> &'static str {
        match self {
            ApiError::InvalidSid => "Invalid AVS id",
            ApiError::InvalidSearch | ApiError::InvalidLinks(_) | ApiError::InvalidParameters(_) => {
                "Invalid parameters"
            }
            ApiError::NotYourSummary | ApiError::NotYourAppointment => "Not authorized",
            other => named(other.status()).1,
        }
    }

    /// `errors[0].status`: the status's own name, but for "not yours", which the page reads
    /// as `unauthorized` whatever the HTTP status.
    fn symbol(&self) -> &'static str {
        match self {
            ApiError::NotYourSummary | ApiError::NotYourAppointment => "unauthorized",
            other => named(other.status()).0,
        }
    }

    fn detail(&self) -> Cow<'static, str> {
        use ApiError::*;
        Cow::Borrowed(match self {
            InvalidSid => "AVS id does not match accepted format.",
            InvalidSearch => "Station number and Appointment IEN must be present and valid.",
            InvalidLinks(detail) | InvalidParameters(detail) => return Cow::Owned(detail.clone()),
            NoPatient => "The caller has no patient identity, so owns no summary",
            OhNotFound => "No Oracle Health summary found",
            RangeNotSatisfiable(_) => "The requested range is not within the document",
            PayloadTooLarge(limit) => return Cow::Owned(format!("Request body over {limit} bytes")),
            Unauthenticated => "Not authorized",
            TokenExpired => "Access token has expired",
            OutOfScope => "The token's scopes do not cover this route",
            ForeignOrigin => "This request must come from a listed origin",
            PreflightRefused => "This origin, method or header is not allowed here",
            UserUnavailable => "The user's profile could not be retrieved; retry shortly",
            UnsupportedMediaType => "Content-Type must be application/json",
            NotYourSummary => "User may not view this AVS.",
            NotYourAppointment => "User may not view the AVS for this appointment.",
            NoRoute => "There are no routes matching your request",
            MethodNotAllowed => "This route does not accept that HTTP method",
            SummaryNotFound(sid) => return Cow::Owned(format!("No AVS found for sid {sid}")),
            BadGateway => "The clinical source returned an invalid response",
            Unavailable { .. } => "Backend Service Outage",
            Busy => "The service is busy; retry shortly",
            GatewayTimeout => "Did not receive a timely response from an upstream server",
            NotReady(check) => return Cow::Owned(format!("Not ready: {check}")),
            ToggleStoreReadOnly => "The toggle store is read-only",
            ForgedForm => "The form is stale or was posted from another site; reload the page",
            BearerRequired => "Changes through the admin API take the Bearer token, not HTTP Basic",
            TooManyRequests => "Too many requests in flight for this caller; retry shortly",
            BodyTimeout => "The request body did not arrive in time",
            UriTooLong => "The request target is too long",
            HeadersTooLarge => "The request has too many or too large header fields",
            ToggleStoreFailed => "The toggle store could not be written",
            Internal => "The server could not answer this request",
        })
    }

    /// Seconds a client should wait before retrying, where the answer says so.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Unavailable { retry_after: Some(d) } => Some(d.as_secs_f64().ceil().max(1.0) as u64),
            ApiError::Busy | ApiError::TooManyRequests | ApiError::UserUnavailable => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::TokenExpired = self {
            return (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                crate::identity::EXPIRED_BODY,
            )
                .into_response();
        }
        let body = json!({"errors": [{
            "title": self.title(),
            "detail": self.detail(),
            "code": status.as_str(),
            "status": self.symbol(),
        }]});
        let retry_after = self.retry_after();
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::RangeNotSatisfiable(len) = self
            && let Ok(v) = HeaderValue::try_from(format!("bytes */{len}"))
        {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
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

impl From<crate::identity::TokenError> for ApiError {
    fn from(e: crate::identity::TokenError) -> ApiError {
        use crate::identity::TokenError as T;
        match e {
            T::Expired => ApiError::TokenExpired,
            T::OutOfScope => ApiError::OutOfScope,
            T::UserUnavailable(_) => ApiError::UserUnavailable,
            T::Malformed
            | T::CriticalHeader
            | T::UnknownKid
            | T::Rejected(_)
            | T::NoKey
            | T::EmptySubject => ApiError::Unauthenticated,
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

impl From<SummaryError> for ApiError {
    fn from(e: SummaryError) -> ApiError {
        match e {
            SummaryError::NotFound(sid) => ApiError::SummaryNotFound(sid),
            SummaryError::NotYourSummary => ApiError::NotYourSummary,
            SummaryError::NotYourAppointment => ApiError::NotYourAppointment,
            SummaryError::Busy => ApiError::Busy,
            SummaryError::RenderFailed => ApiError::Internal,
            SummaryError::Upstream(e) => e.into(),
        }
    }
}

impl From<DocError> for ApiError {
    fn from(e: DocError) -> ApiError {
        match e {
            DocError::NotFound => ApiError::OhNotFound,
            DocError::Unusable | DocError::NoUsableContent => ApiError::BadGateway,
            DocError::Busy => ApiError::Busy,
            DocError::Upstream(e) => e.into(),
        }
    }
}
