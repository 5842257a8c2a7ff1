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
    pub headers: Vec<(String, String)>,
}

impl Scripted {
    pub fn json(body: &Value) -> Scripted {
        Scripted {
            status: 200,
            body: Bytes::from(body.to_string()),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }
    pub fn status(status: u16, body: &str) -> Scripted {
        Scripted {
            status,
            body: Bytes::from(body.to_owned()),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Scripted {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn delayed(mut self, delay: Duration) -> Scripted {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct UpstreamState {
    routes: Mutex<HashMap<String, Scripted>>,
    /// Answered once each, before `routes`.
    once: Mutex<HashMap<String, Scripted>>,
    /// An outage: every request answered with this status.
    outage: Mutex<Option<u16>>,
    hits: AtomicUsize,
    seen: Mutex<Vec<(String, HeaderMap)>>,
    /// Every request whole: method, path and query, headers, body.
    requests: Mutex<Vec<Seen>>,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
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

    /// Answers `path` with `answer` once, then as scripted before.
    pub fn script_once(&self, path: &str, answer: Scripted) -> &FakeUpstream {
        self.state.once.lock().unwrap().insert(path.to_owned(), answer);
        self
    }

    /// Serves a summary document under its own sid, exactly as spelt there: like a
    /// case-sensitive clinical source, it knows no other spelling.
    pub fn summary(&self, doc: &Value) -> &FakeUpstream {
        let sid = doc["sid"].as_str().unwrap();
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

    /// Every request so far, whole.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn calls(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.uri.starts_with(prefix))
            .count()
    }
}

/// Answers by the most specific script: a one-off for `path`, then `path#auth=…` (the
/// `Authorization` header sent), then `path#patientId=…` (the Oracle Health metadata call's
/// patient), then `path`.
async fn answer(State(state): State<Arc<UpstreamState>>, request: Request) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let path = request.uri().path().to_owned();
    let uri = request
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.to_string());
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    state
        .seen
        .lock()
        .unwrap()
        .push((path.clone(), parts.headers.clone()));
    state.requests.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri,
        headers: parts.headers.clone(),
        body,
    });
    if let Some(status) = *state.outage.lock().unwrap() {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    let patient = parts.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "patientId")
            .map(|(_, v)| v.into_owned())
    });
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let once = state.once.lock().unwrap().remove(&path);
    let scripted = once.or_else(|| {
        let routes = state.routes.lock().unwrap();
        routes
            .get(&format!("{path}#auth={auth}"))
            .or_else(|| patient.and_then(|p| routes.get(&format!("{path}#patientId={p}"))))
            .or_else(|| routes.get(&path))
            .cloned()
    });
    match scripted {
        Some(s) => {
            tokio::time::sleep(s.delay).await;
            let status = StatusCode::from_u16(s.status).unwrap();
            let mut response = (status, [("content-type", "application/json")], s.body).into_response();
            for (name, value) in &s.headers {
                response.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            response
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
