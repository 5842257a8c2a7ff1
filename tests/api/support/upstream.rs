//! A scripted clinical source on loopback: answers scripted bodies by path (404 otherwise) and
//! records every request it got.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct Scripted {
    pub status: u16,
    pub body: Bytes,
    pub delay: Duration,
}

impl Scripted {
    pub fn json(body: &Value) -> Scripted {
        Scripted {
            status: 200,
            body: Bytes::from(body.to_string()),
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16, body: &str) -> Scripted {
        Scripted {
            status,
            body: Bytes::from(body.to_owned()),
            delay: Duration::ZERO,
        }
    }
    pub fn delayed(mut self, delay: Duration) -> Scripted {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct UpstreamState {
    routes: Mutex<HashMap<String, Scripted>>,
    /// An outage: every request answered with this status.
    outage: Mutex<Option<u16>>,
    hits: AtomicUsize,
    seen: Mutex<Vec<(String, HeaderMap)>>,
}

/// A fake clinical source: answers scripted bodies by path (404 otherwise) and records requests.
#[derive(Clone)]
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let state = Arc::new(UpstreamState::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().fallback(answer).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeUpstream { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn script(&self, path: &str, answer: Scripted) -> &FakeUpstream {
        self.state.routes.lock().unwrap().insert(path.to_owned(), answer);
        self
    }

    /// Serves a summary document under its own sid, in the canonical (upper-case) spelling
    /// the service asks for.
    pub fn summary(&self, doc: &Value) -> &FakeUpstream {
        let sid = doc["sid"].as_str().unwrap().to_ascii_uppercase();
        self.script(&format!("/avs/{sid}"), Scripted::json(doc))
    }

    /// Answers every request with `status` (an outage) until called with `None`.
    pub fn outage(&self, status: Option<u16>) {
        *self.state.outage.lock().unwrap() = status;
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<(String, HeaderMap)> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn answer(State(state): State<Arc<UpstreamState>>, request: Request) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let path = request.uri().path().to_owned();
    state
        .seen
        .lock()
        .unwrap()
        .push((path.clone(), request.headers().clone()));
    if let Some(status) = *state.outage.lock().unwrap() {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    let scripted = state.routes.lock().unwrap().get(&path).cloned();
    match scripted {
        Some(s) => {
            tokio::time::sleep(s.delay).await;
            let status = StatusCode::from_u16(s.status).unwrap();
            (status, [("content-type", "application/json")], s.body).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
