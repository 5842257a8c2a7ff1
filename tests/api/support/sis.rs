//! A Sign-in Service stand-in on loopback, as vets-api serves it: the keys at
//! `/sign_in/openid_connect/certs` (swappable: a rotation) and `/v0/user` answering for the
//! cookie token's `sub` (scriptable: outages, slowness, ended sessions). SiS-shaped tokens
//! signed with the test keys.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{now, read_json, repo};

/// Signing keys of the tests: `Current` (tests/keys/rsa), `Old` (the development key),
/// `Stranger` (published only after a rotation, if at all).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SisKey {
    Current,
    Old,
    Stranger,
    /// The development key (`Old`) re-encoded: its modulus with a leading zero byte. The same
    /// key, other text.
    OldPadded,
    /// The second development key (`fixtures/dev-keys/dev-old-rs256`).
    DevOld,
    /// Published only: an EC key whose coordinates are not base64url.
    BadEc,
    /// Published only: a key of a type nobody knows.
    UnknownKty,
}

impl SisKey {
    fn private_pem(self) -> Vec<u8> {
        let path = match self {
            SisKey::Current => "tests/keys/rsa.key.pem",
            SisKey::Old | SisKey::OldPadded => "fixtures/dev-keys/dev-rs256.key.pem",
            SisKey::DevOld => "fixtures/dev-keys/dev-old-rs256.key.pem",
            SisKey::Stranger => "tests/keys/stranger.key.pem",
            SisKey::BadEc | SisKey::UnknownKty => panic!("{self:?} signs nothing"),
        };
        std::fs::read(repo(path)).unwrap()
    }

    /// Its public JWK, without `kid` use (SiS tokens name none).
    pub fn jwk(self) -> Value {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (file, kid) = match self {
            SisKey::Current => ("tests/keys/jwks.json", "test-rsa"),
            SisKey::Old => ("fixtures/dev-keys/dev-jwks.json", "avs-dev-rs256"),
            SisKey::DevOld => ("fixtures/dev-keys/sis-jwks.json", "avs-dev-sis-old"),
            SisKey::Stranger => ("tests/keys/stranger.jwks.json", "test-stranger"),
            SisKey::OldPadded => {
                let mut jwk = SisKey::Old.jwk();
                let mut n = b64.decode(jwk["n"].as_str().unwrap()).unwrap();
                n.insert(0, 0);
                jwk["n"] = json!(b64.encode(n));
                jwk["e"] = json!(b64.encode([0u8, 1, 0, 1]));
                jwk["kid"] = json!("looks-new");
                return jwk;
            }
            SisKey::BadEc => {
                return json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": "bad-ec",
                              "x": "not*base64!", "y": "not*base64!"});
            }
            SisKey::UnknownKty => return json!({"kty": "XYZ", "use": "sig", "kid": "who-knows"}),
        };
        read_json(file)["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap()
            .clone()
    }
}

/// How `/v0/user` answers.
#[derive(Clone, Debug)]
pub enum UserAnswer {
    /// As vets-api: the user of the cookie's `sub`, else 401 Invalid Session Handle.
    Normal,
    Status(u16, &'static str),
    Slow(Duration),
}

/// A known user's e-mail and ICN, by account uuid.
type Users = HashMap<String, (Option<String>, Option<String>)>;

struct SisState {
    keys: Mutex<Vec<SisKey>>,
    users: Mutex<Users>,
    answer: Mutex<UserAnswer>,
    jwks_fetches: AtomicUsize,
    jwks_requests: Mutex<Vec<HeaderMap>>,
    /// The key set's answer is this status instead (an outage of the keys).
    certs_failing: Mutex<Option<u16>>,
    user_calls: AtomicUsize,
    user_requests: Mutex<Vec<HeaderMap>>,
}

#[derive(Clone)]
pub struct FakeSis {
    pub addr: SocketAddr,
    state: Arc<SisState>,
}

pub const SERVICE_AUDIENCE: &str = "avs-api-test";
pub const SERVICE_ACCOUNT: &str = "appointments-test";

impl FakeSis {
    /// Publishing the current and the old key.
    pub async fn start() -> FakeSis {
        let state = Arc::new(SisState {
            keys: Mutex::new(vec![SisKey::Current, SisKey::Old]),
            users: Mutex::default(),
            answer: Mutex::new(UserAnswer::Normal),
            jwks_fetches: AtomicUsize::new(0),
            jwks_requests: Mutex::default(),
            certs_failing: Mutex::default(),
            user_calls: AtomicUsize::new(0),
            user_requests: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new()
            .route("/sign_in/openid_connect/certs", get(certs))
            .route("/v0/user", get(user))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeSis { addr, state }
    }

    /// The configuration that points the service at this stand-in.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AVS_IDENTITY", "sis".to_owned()),
            (
                "AVS_SIS_JWKS_URL",
                format!("http://{}/sign_in/openid_connect/certs", self.addr),
            ),
            ("AVS_SIS_USER_URL", format!("http://{}/v0/user", self.addr)),
            ("AVS_SIS_SERVICE_AUDIENCE", SERVICE_AUDIENCE.to_owned()),
            ("AVS_SIS_SERVICE_ACCOUNTS", SERVICE_ACCOUNT.to_owned()),
        ]
    }

    /// The keys' endpoint answers `status` (an outage) until called with `None`.
    pub fn keys_failing(&self, status: Option<u16>) {
        *self.state.certs_failing.lock().unwrap() = status;
    }

    pub fn publish(&self, keys: &[SisKey]) {
        *self.state.keys.lock().unwrap() = keys.to_vec();
    }

    /// A user vets-api knows, by account uuid.
    pub fn user(&self, uuid: &str, email: Option<&str>, icn: Option<&str>) -> &FakeSis {
        self.state.users.lock().unwrap().insert(
            uuid.to_owned(),
            (email.map(str::to_owned), icn.map(str::to_owned)),
        );
        self
    }

    pub fn answer(&self, answer: UserAnswer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn user_calls(&self) -> usize {
        self.state.user_calls.load(Ordering::SeqCst)
    }

    /// The key fetches' request headers.
    pub fn jwks_requests(&self) -> Vec<HeaderMap> {
        self.state.jwks_requests.lock().unwrap().clone()
    }

    pub fn user_requests(&self) -> Vec<HeaderMap> {
        self.state.user_requests.lock().unwrap().clone()
    }
}

async fn certs(State(state): State<Arc<SisState>>, headers: HeaderMap) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    state.jwks_requests.lock().unwrap().push(headers);
    if let Some(status) = *state.certs_failing.lock().unwrap() {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    let keys: Vec<Value> = state.keys.lock().unwrap().iter().map(|k| k.jwk()).collect();
    axum::Json(json!({ "keys": keys })).into_response()
}

fn sub_of(headers: &HeaderMap) -> Option<String> {
    claims_of(headers)?["sub"].as_str().map(str::to_owned)
}

fn exp_of(headers: &HeaderMap) -> Option<u64> {
    claims_of(headers)?["exp"].as_u64()
}

fn claims_of(headers: &HeaderMap) -> Option<Value> {
    use base64::Engine;
    let cookie = headers.get("cookie")?.to_str().ok()?;
    let token = cookie.strip_prefix("vagov_access_token=")?;
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?,
    )
    .ok()?;
    Some(claims)
}

async fn user(State(state): State<Arc<SisState>>, headers: HeaderMap) -> Response {
    state.user_calls.fetch_add(1, Ordering::SeqCst);
    state.user_requests.lock().unwrap().push(headers.clone());
    let answer = state.answer.lock().unwrap().clone();
    match answer {
        UserAnswer::Status(status, body) => {
            return (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body,
            )
                .into_response();
        }
        UserAnswer::Slow(delay) => tokio::time::sleep(delay).await,
        UserAnswer::Normal => {}
    }
    if exp_of(&headers).is_some_and(|exp| exp < super::now()) {
        // vets-api allows no leeway: a token this service still accepts may be expired there.
        return (
            StatusCode::FORBIDDEN,
            [("content-type", "application/json")],
            r#"{"errors":"Access token has expired"}"#,
        )
            .into_response();
    }
    let known = sub_of(&headers).and_then(|sub| {
        let users = state.users.lock().unwrap();
        users.get(&sub).cloned().map(|u| (sub, u))
    });
    let Some((uuid, (email, icn))) = known else {
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            r#"{"errors":"Invalid Session Handle"}"#,
        )
            .into_response();
    };
    axum::Json(json!({"data": {"id": "", "type": "user", "attributes": {
        "user_account": {"id": uuid},
        "profile": {"email": email, "icn": icn, "loa": {"current": 3, "highest": 3}, "verified": true,
                    "sign_in": {"service_name": "idme", "auth_broker": "sis", "client_id": "vaweb"}},
    }}, "meta": {"errors": null}}))
    .into_response()
}

fn sign(key: SisKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = None; // SiS sends `{"alg":"RS256"}` alone
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&key.private_pem()).unwrap(),
    )
    .unwrap()
}

/// A user token's claims, as SiS issues them for the web page.
pub fn sis_user_claims(uuid: &str, session_handle: &str) -> Value {
    json!({"iss": "va.gov sign in", "aud": ["vaweb", "vamobile"], "sub": uuid,
           "session_handle": session_handle, "version": "V0", "iat": now(), "exp": now() + 300})
}

/// A user token of a new session.
pub fn sis_user_token(uuid: &str) -> String {
    sign(
        SisKey::Current,
        &sis_user_claims(uuid, &uuid::Uuid::new_v4().to_string()),
    )
}

pub fn sis_token(key: SisKey, claims: &Value) -> String {
    sign(key, claims)
}

/// A service-account token for `icn`, on behalf of `flipper_id`, covering `scopes`.
pub fn sis_service_claims(icn: &str, flipper_id: &str, scopes: &[&str]) -> Value {
    json!({"iss": "va.gov sign in", "aud": SERVICE_AUDIENCE, "sub": flipper_id, "scopes": scopes,
           "service_account_id": SERVICE_ACCOUNT, "user_attributes": {"icn": icn},
           "jti": uuid::Uuid::new_v4().to_string(), "version": "V0",
           "iat": now(), "nbf": now(), "exp": now() + 300})
}
