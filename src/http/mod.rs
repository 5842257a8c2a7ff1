//! The edge: routes, middleware, the caller extractor and the error shape.

mod auth;
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
        (Method::GET, "/avs/v0/avs/search", get(vista::search)),
        (
            Method::POST,
            "/avs/v0/avs/links",
            post(vista::links).layer(DefaultBodyLimit::max(vista::LINKS_BODY_LIMIT)),
        ),
        (Method::GET, "/avs/v0/avs/binaries", get(vista::binaries)),
        (Method::GET, "/avs/v0/avs/{sid}", get(vista::show_summary)),
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
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    let routes = routes();
    let table: Vec<(Method, &'static str)> = routes.iter().map(|(m, p, _)| (m.clone(), *p)).collect();
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
    router = router.route("/avs/v0/avs/", get(vista::show_empty_sid));
    let edge_state = state.clone();
    let edge = ServiceBuilder::new()
        .layer(tower::layer::layer_fn(move |inner| Edge {
            app: edge_state.clone(),
            cors: cors.clone(),
            inner,
        }))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal.into_response()));
    router
        .fallback(operations::no_route)
        .method_not_allowed_fallback(operations::method_not_allowed)
        .layer(edge)
        .with_state(state)
}
