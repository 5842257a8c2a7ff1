//! The benchmark's baseline: an axum server that answers every GET with the same bytes the
//! service returns for a cached summary, with no logic at all (no auth, gate, cache, headers).
//! Usage: baseline <listen addr> <body file>

use std::net::SocketAddr;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use bytes::Bytes;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .expect("listen address")
        .parse()
        .expect("socket address");
    let body = Bytes::from(std::fs::read(args.next().expect("body file")).expect("readable body file"));
    let app = Router::new().fallback(move || {
        let body = body.clone();
        async move { ([(CONTENT_TYPE, "application/json")], body).into_response() }
    });
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
