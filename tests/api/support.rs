//! The test harness: a scripted upstream, a recording forward proxy, tokens, and the app.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use avs_api::config::{Config, Vars};
use avs_api::{AppState, app};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::contract::Contract;

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub fn read_json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo(path)).unwrap()).unwrap()
}

/// Fixture ICNs and sids (all synthetic).
pub const DEV_ICN: &str = "1012345678V123456";
pub const OTHER_ICN: &str = "1099999999V999999";
pub const FULL_SID: &str = "9A7AF40B2BC2471EA116891839113252";

// ---------------------------------------------------------------------------------------------
// Scripted upstream

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

// ---------------------------------------------------------------------------------------------
// A recording forward proxy: relays absolute-form HTTP requests, one per connection.

#[derive(Clone)]
pub struct RecordingProxy {
    pub addr: SocketAddr,
    relayed: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    pub async fn start() -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let relayed = Arc::new(Mutex::new(Vec::new()));
        let log = relayed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, log.clone()));
            }
        });
        RecordingProxy { addr, relayed }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request lines relayed so far (`GET http://host:port/path HTTP/1.1`).
    pub fn relayed(&self) -> Vec<String> {
        self.relayed.lock().unwrap().clone()
    }
}

async fn relay(mut client: TcpStream, log: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_owned();
    log.lock().unwrap().push(request_line.clone());
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Some(rest) = target.strip_prefix("http://") else {
        let _ = client
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut upstream) = TcpStream::connect(host).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    };
    let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "connection" | "proxy-connection" | "proxy-authorization"
        ) {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("connection: close\r\n\r\n");
    if upstream.write_all(forwarded.as_bytes()).await.is_ok() {
        let _ = tokio::io::copy(&mut upstream, &mut client).await;
    }
    let _ = client.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Tokens

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims for a caller; `exp` five minutes out.
pub fn claims(sub: &str, icn: Option<&str>, email: Option<&str>) -> Value {
    let mut c = json!({"sub": sub, "iat": now(), "exp": now() + 300});
    if let Some(icn) = icn {
        c["icn"] = json!(icn);
    }
    if let Some(email) = email {
        c["email"] = json!(email);
    }
    c
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(repo(&format!("tests/keys/{name}"))).unwrap()
}

pub fn rs256(claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        Some("test-rsa"),
        &EncodingKey::from_rsa_pem(&pem("rsa.key.pem")).unwrap(),
        claims,
    )
}

pub fn rs256_with_kid(claims: &Value, kid: Option<&str>) -> String {
    sign(
        Algorithm::RS256,
        kid,
        &EncodingKey::from_rsa_pem(&pem("rsa.key.pem")).unwrap(),
        claims,
    )
}

pub fn es256(claims: &Value) -> String {
    sign(
        Algorithm::ES256,
        Some("test-ec"),
        &EncodingKey::from_ec_pem(&pem("ec.key.pem")).unwrap(),
        claims,
    )
}

/// Signed with a key the service does not know, but naming a kid it does.
pub fn stranger(claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        Some("test-rsa"),
        &EncodingKey::from_rsa_pem(&pem("stranger.key.pem")).unwrap(),
        claims,
    )
}

/// HS256 "signed" with the service's public key as the secret: the classic confusion attack.
pub fn hs256_with_public_key(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        Some("test-rsa"),
        &EncodingKey::from_secret(&pem("rsa.pub.pem")),
        claims,
    )
}

pub fn alg_none(claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", b64.encode(claims.to_string()))
}

/// A token signed with the development key (what `avs-api dev-token` mints), for the binary
/// when it runs on its development keys.
pub fn dev_token(icn: &str, email: Option<&str>) -> String {
    avs_api::identity::dev_token(&avs_api::identity::DevToken {
        sub: "dev-sub",
        icn: Some(icn),
        email,
        ttl_secs: 300,
        issuer: None,
        audience: None,
    })
    .unwrap()
}

/// A token for the owner of the fixture summaries.
pub fn owner_token() -> String {
    rs256(&claims("owner-1", Some(DEV_ICN), Some("owner@example.com")))
}

// ---------------------------------------------------------------------------------------------
// The app under test

pub const TOGGLES_ON: &str = "[features.avs_enabled]\nboolean = true\n";

pub struct TestApp {
    pub upstream: FakeUpstream,
    pub state: AppState,
    dir: TempDir,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Bytes,
    pub json: Value,
}

impl TestResponse {
    /// The `errors[0]` object of an error body.
    pub fn error(&self) -> &Value {
        &self.json["errors"][0]
    }

    pub fn assert_error(&self, status: u16, title: &str, detail: &str) {
        let symbolic = match status {
            400 => "bad_request",
            401 => "unauthorized",
            404 => "not_found",
            405 => "method_not_allowed",
            502 => "bad_gateway",
            503 => "service_unavailable",
            504 => "gateway_timeout",
            _ => panic!("add {status}"),
        };
        assert_eq!(self.status.as_u16(), status, "body: {}", self.json);
        assert_eq!(
            self.json,
            json!({"errors": [{"title": title, "detail": detail, "code": status.to_string(), "status": symbolic}]})
        );
        if status == 401 {
            assert_eq!(self.headers["www-authenticate"], "Bearer");
        }
    }
}

impl TestApp {
    /// An app against a fresh fake upstream with `avs_enabled` on for everyone.
    pub async fn start() -> TestApp {
        TestApp::with(TOGGLES_ON, &[]).await
    }

    /// An app with these toggles and extra configuration variables.
    pub async fn with(toggles: &str, extra: &[(&str, &str)]) -> TestApp {
        let upstream = FakeUpstream::start().await;
        TestApp::against(upstream, toggles, extra).await
    }

    pub async fn against(upstream: FakeUpstream, toggles: &str, extra: &[(&str, &str)]) -> TestApp {
        let dir = TempDir::new();
        let config = test_config(&upstream, &dir, toggles, extra);
        let base = config.upstream.url.clone().unwrap();
        let state = AppState::new(&config, base).await.unwrap();
        TestApp { upstream, state, dir }
    }

    /// The toggle file this app reads (when its configuration did not name another source).
    pub fn toggles_path(&self) -> PathBuf {
        self.dir.path.join("toggles.toml")
    }

    pub async fn send(&self, request: axum::http::Request<Body>) -> TestResponse {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{method} {path}: body is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Contract::get().check(&method, &path, status, &json);
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers.contains_key("x-request-id"));
        TestResponse {
            status,
            headers,
            bytes,
            json,
        }
    }

    /// `GET uri` with a bearer token.
    pub async fn get(&self, uri: &str, token: &str) -> TestResponse {
        self.send(
            get(uri)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// `POST uri` with a bearer token and a JSON body.
    pub async fn post_json(&self, uri: &str, token: &str, body: &str) -> TestResponse {
        let request = axum::http::Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(request).await
    }

    pub async fn get_anonymous(&self, uri: &str) -> TestResponse {
        self.send(get(uri).body(Body::empty()).unwrap()).await
    }
}

/// The configuration every in-process test starts from: the fake upstream, direct, the test
/// keys and a toggle file in `dir` holding `toggles`; `extra` on top.
pub fn test_config(upstream: &FakeUpstream, dir: &TempDir, toggles: &str, extra: &[(&str, &str)]) -> Config {
    let toggles_path = dir.path.join("toggles.toml");
    std::fs::write(&toggles_path, toggles).unwrap();
    let mut vars: Vars = [
        ("AVS_ENV", "test".to_owned()),
        ("AVS_UPSTREAM_URL", upstream.url()),
        ("AVS_PROXY_URL", "direct".to_owned()),
        (
            "AVS_JWKS_FILE",
            repo("tests/keys/jwks.json").display().to_string(),
        ),
        ("AVS_TOGGLES", format!("file:{}", toggles_path.display())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_vars(&vars).unwrap_or_else(|e| panic!("config: {e}"))
}

/// The service on real loopback listeners (both), in this process, stopped on drop.
pub struct Listening {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub state: AppState,
    pub upstream: FakeUpstream,
    pub dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl Listening {
    pub async fn start(upstream: FakeUpstream, toggles: &str, extra: &[(&str, &str)]) -> Listening {
        let dir = TempDir::new();
        let mut extra = extra.to_vec();
        extra.extend([("AVS_LISTEN", "127.0.0.1:0"), ("AVS_ADMIN_LISTEN", "127.0.0.1:0")]);
        let config = test_config(&upstream, &dir, toggles, &extra);
        let application = avs_api::Application::build(&config).await.unwrap();
        let (addr, admin_addr) = (application.public_addr(), application.admin_addr());
        let state = application.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(application.run_until(async move {
            let _ = stopped.await;
        }));
        Listening {
            addr,
            admin_addr,
            state,
            upstream,
            dir,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// Signals shutdown and waits for the service to stop; how long that took.
    pub async fn stop(&mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap().unwrap();
        }
        started.elapsed()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(served) = &self.served {
            served.abort();
        }
    }
}

pub fn get(uri: &str) -> axum::http::request::Builder {
    axum::http::Request::builder().method(Method::GET).uri(uri)
}

/// A temporary directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("avs-api-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The shipped fixture summaries, loaded once.
pub fn fixture(name: &str) -> Value {
    static CACHE: OnceLock<Mutex<HashMap<String, Value>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    cache
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_insert_with(|| read_json(&format!("fixtures/summaries/{name}.json")))
        .clone()
}
