//! The app under test: in process through `app(state)` (`TestApp`), or on real loopback
//! listeners built by the binary's own builder (`Listening`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use avs_api::config::{Config, Vars};
use avs_api::{AppState, app};
use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

use super::contract::Contract;
use super::upstream::FakeUpstream;
use super::{get, repo, temp_dir};

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

    /// "Not yours": 403 with `status: "unauthorized"`, the view VA.gov's page shows for it (a
    /// 401 would send the veteran to sign in again: `api.md`, "Not yours is 403").
    pub fn assert_not_yours(&self, detail: &str) {
        assert_eq!(self.status.as_u16(), 403, "body: {}", self.json);
        assert_eq!(
            self.json,
            json!({"errors": [{"title": "Not authorized", "detail": detail, "code": "403", "status": "unauthorized"}]})
        );
        assert!(
            !self.headers.contains_key("www-authenticate"),
            "not yours asks for no other credentials"
        );
    }

    pub fn assert_error(&self, status: u16, title: &str, detail: &str) {
        let symbolic = match status {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            416 => "range_not_satisfiable",
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

/// How a test's app is made: its toggles (`avs_enabled` on unless set), its configuration on
/// top of `test_config`'s, and its fake upstream (a fresh one unless given).
pub struct TestAppBuilder {
    toggles: String,
    env: Vec<(String, String)>,
    upstream: Option<FakeUpstream>,
}

impl TestAppBuilder {
    /// The toggle file's contents.
    pub fn toggles(mut self, toggles: &str) -> TestAppBuilder {
        self.toggles = toggles.to_owned();
        self
    }

    /// Adds these configuration variables (later ones win).
    pub fn envs<K: AsRef<str>, V: AsRef<str>>(mut self, vars: &[(K, V)]) -> TestAppBuilder {
        self.env.extend(
            vars.iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())),
        );
        self
    }

    /// Answers from this fake upstream (a test that scripts it before the app starts).
    pub fn upstream(mut self, upstream: FakeUpstream) -> TestAppBuilder {
        self.upstream = Some(upstream);
        self
    }

    pub async fn start(self) -> TestApp {
        let upstream = match self.upstream {
            Some(upstream) => upstream,
            None => FakeUpstream::start().await,
        };
        let dir = temp_dir();
        let extra: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let config = test_config(&upstream, &dir, &self.toggles, &extra);
        // The fake answers for both sources: VistA at its root, Oracle Health under /oh/.
        let base = config.vista.url.clone().unwrap();
        let upstreams = avs_api::Upstreams::resolve(&config, Some(&base)).unwrap();
        let state = AppState::new(&config, upstreams).await.unwrap();
        TestApp { upstream, state, dir }
    }
}

impl TestApp {
    /// An app against a fresh fake upstream with `avs_enabled` on for everyone.
    pub async fn start() -> TestApp {
        TestApp::builder().start().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            toggles: TOGGLES_ON.to_owned(),
            env: Vec::new(),
            upstream: None,
        }
    }

    /// The admin router over this app's toggles and report, with `ADMIN_TOKEN`.
    pub fn admin(&self) -> axum::Router {
        avs_api::admin::router(
            avs_api::admin::AdminState::new(self.state.toggles.clone(), Some(super::ADMIN_TOKEN.into()))
                .with_rollout(self.state.rollout.clone()),
        )
    }

    /// The answer as it left, held to no contract: a CORS preflight (`OPTIONS` is no
    /// operation of the contract; `identity.md` describes it).
    pub async fn send_raw(&self, request: axum::http::Request<Body>) -> TestResponse {
        let (status, headers, bytes) = self.answer(request).await;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            bytes,
            json,
        }
    }

    /// The toggle file this app reads (when its configuration did not name another source).
    pub fn toggles_path(&self) -> PathBuf {
        self.dir.path().join("toggles.toml")
    }

    /// The app's answer to `request`: status, headers, the whole body.
    async fn answer(&self, request: axum::http::Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, bytes)
    }

    pub async fn send(&self, request: axum::http::Request<Body>) -> TestResponse {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let (status, headers, bytes) = self.answer(request).await;
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let json: Value = match content_type.as_deref() {
            // A document, a 304 or a HEAD: held to the type the contract names for it.
            Some(t) if !t.starts_with("application/json") => {
                Contract::get().check_raw(&method, &path, status, Some(t));
                Value::Null
            }
            None if bytes.is_empty() => {
                Contract::get().check_raw(&method, &path, status, None);
                Value::Null
            }
            _ => {
                let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    panic!(
                        "{method} {path}: body is not JSON: {}",
                        String::from_utf8_lossy(&bytes)
                    )
                });
                Contract::get().check(&method, &path, status, &json);
                json
            }
        };
        let cache_control = headers["cache-control"].to_str().unwrap();
        assert!(
            cache_control == "no-store" || cache_control == "private, no-store",
            "{cache_control}"
        );
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
    let toggles_path = dir.path().join("toggles.toml");
    std::fs::write(&toggles_path, toggles).unwrap();
    // Claims mode: the tests written before SiS hold their tokens' `icn`/`email` as identity;
    // SiS tests name `AVS_IDENTITY=sis` and their stand-in (`support::sis`).
    let mut vars: Vars = [
        ("AVS_ENV", "test".to_owned()),
        ("AVS_IDENTITY", "claims".to_owned()),
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
    if vars["AVS_IDENTITY"] == "sis" {
        vars.remove("AVS_JWKS_FILE"); // the claims mode's keys
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
    served: Option<tokio::task::JoinHandle<Result<(), avs_api::StartupError>>>,
}

impl Listening {
    pub async fn start(upstream: FakeUpstream, toggles: &str, extra: &[(&str, &str)]) -> Listening {
        let dir = temp_dir();
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
