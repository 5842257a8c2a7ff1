//! The edge: routes, middleware, the caller extractor and the error shape.

mod auth;
mod connections;
mod cors;
pub mod descriptors;
mod documents;
mod edge;
pub mod error;
mod gate;
mod operations;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod oracle;
pub mod request_id;
pub mod server;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod vista;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::Authenticated;
use edge::{Edge, EdgeLayer};
pub use error::ApiError;

use crate::app::AppState;

/// Every route the public listener serves. `openapi.yaml` documents exactly this set (a test
/// holds the two together).
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/avs/v0/avs/search", get(vista::search)),
        (
            Method::POST,
            "/avs/v0/avs/links",
            post(vista::links).layer(DefaultBodyLimit::max(vista::LINKS_BODY_LIMIT)),
        ),
        (Method::GET, "/avs/v0/avs/binaries", get(vista::binaries)),
        (Method::GET, SUMMARY_ROUTE, get(vista::show_summary)),
        (Method::GET, "/avs/v0/avs/{sid}/pdf", get(vista::pdf)),
        (Method::HEAD, "/avs/v0/avs/{sid}/pdf", get(vista::pdf)),
        (Method::GET, "/avs/v0/avs/{sid}/txt", get(vista::txt)),
        (Method::HEAD, "/avs/v0/avs/{sid}/txt", get(vista::txt)),
        (Method::GET, "/avs/v0/oh/summaries", get(oracle::summaries)),
        (
            Method::GET,
            "/avs/v0/oh/appointments/{apptId}",
            get(oracle::appointment),
        ),
        (
            Method::GET,
            "/avs/v0/oh/appointments/{apptId}/binaries",
            get(oracle::binaries),
        ),
        (Method::GET, "/avs/v0/oh/documents/{docId}", get(oracle::document)),
        // Served by the GET route above (axum answers HEAD with GET's headers and no body);
        // listed so the table and openapi.yaml name the same operations.
        (
            Method::HEAD,
            "/avs/v0/oh/documents/{docId}",
            get(oracle::document),
        ),
        (Method::GET, "/avs/v0/apidocs", get(operations::apidocs)),
        (Method::GET, "/healthz", get(operations::healthz)),
        (Method::GET, "/readyz", get(operations::readyz)),
    ]
}

/// The public API. Pure: everything it needs is in `state`.
pub fn app(state: AppState) -> Api {
    app_with(state, Router::new())
}

/// The public API with `extra` routes beside its own, under the same edge and panic answer:
/// how a test reaches what no request to the real routes can (a handler that panics).
#[doc(hidden)]
pub fn app_with(state: AppState, extra: Router<AppState>) -> Api {
    let mut router = extra;
    let routes = routes();
    let table: Vec<(Method, &'static str)> = routes.iter().map(|(m, p, _)| (m.clone(), *p)).collect();
    // The fixed routes beside `{sid}` (`search`, `links`, `binaries`): theirs, not a sid.
    let siblings = table
        .iter()
        .filter_map(|(_, path)| path.strip_prefix(SUMMARY_PREFIX))
        .filter(|rest| !rest.contains(['/', '{']))
        .collect();
    let cors = std::sync::Arc::new(cors::Cors::new(state.cors_origins.clone(), &table));
    for (method, path, method_router) in routes {
        if method == Method::HEAD {
            continue; // the GET route answers it
        }
        router = router.route(path, method_router);
    }
    // An empty sid answers 400 after authentication and the gate, as the Ruby API does; the
    // contract leaves it out, since no request to it is valid (Schemathesis would count every
    // one it generates as a failure).
    router = router.route(SUMMARY_PREFIX, get(vista::show_empty_sid));
    let edge = |route| EdgeLayer {
        app: state.clone(),
        cors: cors.clone(),
        route,
    };
    let summary = tower::Layer::layer(&edge(Some(SUMMARY_ROUTE)), SummaryRoute(state.clone()));
    let router = router
        .fallback(operations::no_route)
        .method_not_allowed_fallback(operations::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(edge(None))
                .layer(CatchPanicLayer::custom(panic_answer)),
        )
        .with_state(state);
    Api {
        summary,
        siblings,
        router,
    }
}

/// The public API: every route through the router, but the cached hit's own route, the one a
/// page view takes, without it. Matching it in the router, inserting its parameters and the
/// matched path, and the two boxed route services around it cost a hit ~3,800 of its ~30,000
/// instructions (callgrind, 2026-12-03), for a route whose shape one look at the path tells.
/// Both ways run the same edge and the same handler; a test holds their answers equal.
#[derive(Clone)]
pub struct Api {
    summary: Edge<SummaryRoute>,
    /// The fixed routes' segments beside the summary route's `{sid}`.
    /// Shared: hyper's service clones the `Api` for every request.
    siblings: std::sync::Arc<[&'static str]>,
    router: Router,
}

/// `GET /avs/v0/avs/{sid}`'s template, as the router names it.
const SUMMARY_ROUTE: &str = "/avs/v0/avs/{sid}";
const SUMMARY_PREFIX: &str = "/avs/v0/avs/";

impl Api {
    /// Whether the router would match this request to the summary route with a sid that needs
    /// no percent-decoding: `GET /avs/v0/avs/` and one segment that is not another route's.
    fn is_summary(&self, request: &axum::extract::Request) -> bool {
        let Some(sid) = request.uri().path().strip_prefix(SUMMARY_PREFIX) else {
            return false;
        };
        request.method() == Method::GET
            && !sid.is_empty()
            // memchr: a byte loop over the sid was a tenth of this check (callgrind).
            && memchr::memchr2(b'/', b'%', sid.as_bytes()).is_none()
            && !self.siblings.contains(&sid)
    }
}

impl<B> tower::Service<axum::http::Request<B>> for Api
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        std::pin::Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>,
        <Router as tower::Service<axum::http::Request<B>>>::Future,
    >;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // Both are always ready: the router clones its routes per call, and the summary route
        // holds nothing that runs out.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let request = request.map(axum::body::Body::new);
        if self.is_summary(&request) {
            futures_util::future::Either::Left(tower::Service::call(&mut self.summary, request))
        } else {
            futures_util::future::Either::Right(tower::Service::call(&mut self.router, request))
        }
    }
}

/// The summary handler with its extractors, as the router would run it, and a panic in it
/// answered as the router's `CatchPanicLayer` answers one.
#[derive(Clone)]
struct SummaryRoute(AppState);

/// The handler's future as axum boxes it, its panic caught (no second box).
type Handled = futures_util::future::Map<
    futures_util::future::CatchUnwind<std::panic::AssertUnwindSafe<HandlerFuture>>,
    fn(std::thread::Result<Response>) -> Result<Response, std::convert::Infallible>,
>;
type HandlerFuture = std::pin::Pin<Box<dyn Future<Output = Response> + Send>>;

impl tower::Service<axum::extract::Request> for SummaryRoute {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Handled;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::extract::Request) -> Handled {
        use futures_util::FutureExt;
        let handled: HandlerFuture =
            axum::handler::Handler::call(vista::show_summary, request, self.0.clone());
        std::panic::AssertUnwindSafe(handled)
            .catch_unwind()
            .map(answer_panic as fn(_) -> _)
    }
}

fn answer_panic(answered: std::thread::Result<Response>) -> Result<Response, std::convert::Infallible> {
    Ok(answered.unwrap_or_else(panic_answer))
}

/// A panic's answer, on either way.
fn panic_answer(_: Box<dyn std::any::Any + Send>) -> Response {
    ApiError::Internal.into_response()
}
