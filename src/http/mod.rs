//! The edge: routes, middleware, the caller extractor and the error shape.

mod auth;
mod edge;
pub mod error;
mod gate;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod handlers;
pub mod request_id;
pub mod server;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::Authenticated;
use edge::Edge;
pub use error::ApiError;

use crate::app::AppState;

/// Every route the public listener serves. `openapi.yaml` documents exactly this set (a test
/// holds the two together).
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/avs/v0/avs/search", get(handlers::search)),
        (
            Method::POST,
            "/avs/v0/avs/links",
            post(handlers::links).layer(DefaultBodyLimit::max(handlers::LINKS_BODY_LIMIT)),
        ),
        (Method::GET, "/avs/v0/avs/{sid}", get(handlers::show_summary)),
        (Method::GET, "/avs/v0/avs/", get(handlers::show_empty_sid)),
        (Method::GET, "/avs/v0/apidocs", get(handlers::apidocs)),
        (Method::GET, "/healthz", get(handlers::healthz)),
        (Method::GET, "/readyz", get(handlers::readyz)),
    ]
}

/// The public API. Pure: everything it needs is in `state`.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for (_, path, method_router) in routes() {
        router = router.route(path, method_router);
    }
    let edge_state = state.clone();
    let edge = ServiceBuilder::new()
        .layer(tower::layer::layer_fn(move |inner| Edge {
            app: edge_state.clone(),
            inner,
        }))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal.into_response()));
    router
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(edge)
        .with_state(state)
}
