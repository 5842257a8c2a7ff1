//! Who a Sign-in Service user is: vets-api's `GET /v0/user`, asked once per session.
//!
//! A SiS user token carries no ICN and no e-mail; vets-api resolves both. A session's first
//! request asks (one call however many requests arrive at once: single flight per session),
//! and its later requests, and the new access tokens a refresh of the same session brings, reuse
//! the answer for at most `AVS_SIS_USER_TTL_SECS`: a logout is noticed within that time.
//! Failures are never cached, and an unknown user is never anyone: vets-api down, slow or
//! answering nonsense is a 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::HeaderValue;
use serde::Deserialize;
use url::Url;

use crate::clinical::call::{Call, Guard, answered};
use crate::clinical::{HttpClient, UpstreamError, read_limited};
use crate::config::SisSettings;
use crate::flights::Flights;

const USER: Call = Call {
    name: "user",
    method: "GET",
    template: "/v0/user",
};

/// The session cache's byte budget: an entry is its key and the user's ids, a few hundred bytes.
const SESSION_CACHE_BYTES: u64 = 16 * 1024 * 1024;
const SESSION_ENTRY_OVERHEAD: usize = 256;
/// vets-api's answer for a user is ~2 KiB; a larger one is cut off here.
const MAX_USER_BYTES: usize = 256 * 1024;
/// vets-api's body for an expired access token, byte for byte (`identity.md`).
pub const EXPIRED_BODY: &str = r#"{"errors":"Access token has expired"}"#;

/// The user behind a session, as vets-api knows them.
#[derive(Debug)]
pub struct User {
    pub icn: Option<String>,
    pub email: Option<String>,
    pub account_uuid: Option<String>,
    /// Unix seconds until which this answer may be reused.
    pub valid_until: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// vets-api says the access token has expired (passed on as its own 403).
    Expired,
    /// vets-api refused the session: ended, revoked, locked.
    Ended,
    /// vets-api down, slow, refusing connections, or answering without a user.
    Unavailable(&'static str),
}

/// `(sub, session_handle)`: one entry per session, keyed by the pair itself (a joined string
/// is not injective: `"a\0b" + "c"` and `"a" + "b\0c"` would share one).
type SessionKey = Arc<(Box<str>, Box<str>)>;

/// What one flight found, and the token it asked with: a refusal is about that token.
type Flight = (Arc<str>, Result<Arc<User>, LookupError>);

pub struct UserLookup {
    url: Url,
    client: HttpClient,
    /// Shared with the key fetches: both are vets-api's, one source with its own slots.
    guard: Arc<Guard>,
    timeout: Duration,
    ttl: Duration,
    sessions: moka::sync::Cache<SessionKey, Arc<User>, foldhash::fast::RandomState>,
    flights: Flights<SessionKey, Flight>,
    calls: AtomicU64,
}

#[derive(Deserialize)]
struct UserDocument {
    data: Option<UserData>,
}

#[derive(Deserialize)]
struct UserData {
    attributes: Option<UserAttributes>,
}

#[derive(Deserialize)]
struct UserAttributes {
    user_account: Option<UserAccount>,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct UserAccount {
    id: Option<String>,
}

#[derive(Deserialize)]
struct Profile {
    email: Option<String>,
    icn: Option<String>,
}

impl UserLookup {
    pub(crate) fn new(url: Url, client: HttpClient, guard: Arc<Guard>, settings: &SisSettings) -> UserLookup {
        let sessions = moka::sync::Cache::builder()
            .max_capacity(SESSION_CACHE_BYTES)
            .weigher(|key: &SessionKey, _: &Arc<User>| {
                u32::try_from(key.0.len() + key.1.len() + SESSION_ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .time_to_live(settings.user_ttl)
            .build_with_hasher(foldhash::fast::RandomState::default());
        UserLookup {
            url,
            client,
            guard,
            timeout: settings.user_timeout,
            ttl: settings.user_ttl,
            sessions,
            flights: Flights::default(),
            calls: AtomicU64::new(0),
        }
    }

    /// Calls made to vets-api so far (for tests and the benchmark).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The session's user: remembered, or asked of vets-api once for everyone waiting. A
    /// flight shares only the user it found: a refusal (expired, ended) was about the token that
    /// asked, so a waiter with another token of the session asks again with its own.
    pub async fn lookup(
        &self,
        sub: &str,
        session_handle: &str,
        token: &str,
        request_id: Option<&HeaderValue>,
    ) -> Result<Arc<User>, LookupError> {
        let key: SessionKey = Arc::new((Box::from(sub), Box::from(session_handle)));
        if let Some(user) = self.sessions.get(&key) {
            return Ok(user);
        }
        let (asked_with, found) = self
            .flights
            .run(&key, || async {
                // Someone may have finished the same session's lookup just before this flight.
                if let Some(user) = self.sessions.get(&key) {
                    return (Arc::from(token), Ok(user));
                }
                (Arc::from(token), self.ask_and_keep(&key, token, request_id).await)
            })
            .await;
        match found {
            Err(LookupError::Expired | LookupError::Ended) if *asked_with != *token => {
                self.ask_and_keep(&key, token, request_id).await
            }
            found => found,
        }
    }

    /// Asks vets-api with `token`, within the timeout; a user found is kept for the session.
    async fn ask_and_keep(
        &self,
        key: &SessionKey,
        token: &str,
        request_id: Option<&HeaderValue>,
    ) -> Result<Arc<User>, LookupError> {
        let asked = tokio::time::timeout(self.timeout, self.ask(token, request_id)).await;
        let outcome = match &asked {
            Ok(Ok(_)) => "ok",
            Ok(Err(LookupError::Expired)) => "expired",
            Ok(Err(LookupError::Ended)) => "ended",
            Ok(Err(LookupError::Unavailable(_))) => "unavailable",
            Err(_) => "timeout",
        };
        metrics::counter!("avs_sis_user_lookups_total", "outcome" => outcome).increment(1);
        let user = Arc::new(asked.map_err(|_| LookupError::Unavailable("timed out"))??);
        self.sessions.insert(key.clone(), user.clone());
        Ok(user)
    }

    /// One call to vets-api: a guarded call (`clinical::call`, labelled `vets_api`).
    async fn ask(&self, token: &str, request_id: Option<&HeaderValue>) -> Result<User, LookupError> {
        let asked_at = jsonwebtoken::get_current_timestamp();
        let (status, body) = self
            .guard
            .call(USER, 0, || async {
                self.calls.fetch_add(1, Ordering::Relaxed);
                // vets-api takes its SiS path only when the cookie is present; no
                // X-Key-Inflection, so its keys stay snake_case.
                let mut request = self
                    .client
                    .get(self.url.clone())
                    .header(reqwest::header::COOKIE, format!("vagov_access_token={token}"));
                if let Some(id) = request_id {
                    request = request.header("x-request-id", id.clone());
                }
                let response = self.client.send_idempotent(request).await?;
                answered(response.status());
                let status = response.status().as_u16();
                if response.status().is_server_error() {
                    return Err(UpstreamError::ServerError(status));
                }
                Ok((status, read_limited(response, MAX_USER_BYTES).await?))
            })
            .await
            .map_err(|e| LookupError::Unavailable(e.kind().as_str()))?;
        match status {
            // 296: some of vets-api's own services failed; the profile is still there.
            200 | 296 => {}
            403 if is_expired_body(&body) => return Err(LookupError::Expired),
            401 | 403 => return Err(LookupError::Ended),
            _ => return Err(LookupError::Unavailable("vets-api answered an error")),
        }
        // Never a serde message in a log: it would quote the offending value.
        let doc: UserDocument =
            serde_json::from_slice(&body).map_err(|_| LookupError::Unavailable("not a user document"))?;
        let attributes = doc
            .data
            .and_then(|d| d.attributes)
            .ok_or(LookupError::Unavailable("no data.attributes"))?;
        let profile = attributes.profile;
        Ok(User {
            icn: profile.as_ref().and_then(|p| p.icn.clone()),
            email: profile.and_then(|p| p.email),
            account_uuid: attributes.user_account.and_then(|a| a.id),
            valid_until: asked_at + self.ttl.as_secs(),
        })
    }
}

/// Whether a body is vets-api's expired-token answer (compared as JSON, so spacing is free).
fn is_expired_body(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v == serde_json::json!({"errors": "Access token has expired"}))
}
