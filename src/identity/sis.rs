//! `AVS_IDENTITY=sis`: VA.gov's Sign-in Service tokens (`identity.md`). Their keys come from
//! vets-api's JWKS (current and old, no `kid` in the tokens); a user token carries no identity,
//! so its user comes from vets-api (`vets_api.rs`); a service token names its patient in
//! `user_attributes.icn` and its routes in `scopes`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::HeaderValue;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use url::Url;

use super::scopes::scope_path;
use super::vets_api::{LookupError, UserLookup};
use super::{Caller, TokenError, rejection};
use crate::clinical::call::{Call, Guard, GuardSettings, answered};
use crate::clinical::{HttpClient, UpstreamError, read_limited};
use crate::config::{KeySet, KeySource};
use crate::config::{SisKeys, SisSettings};
use crate::domain::{ActorId, OwnerIcn, PatientIcn};

/// `exp` and `nbf` tolerance (`identity.md`).
const LEEWAY_SECS: u64 = 5;
/// A token that verifies against no key re-fetches the keys at most this often: a rotation is
/// picked up at once, and a flood of forged tokens costs vets-api one call per period.
const UNKNOWN_KEY_REFETCH: Duration = Duration::from_secs(30);
/// Before the first good key set, the keys are re-tried this often.
const FIRST_LOAD_RETRY: Duration = Duration::from_secs(2);
/// A key set is a few KiB; anything much larger is not one.
const MAX_JWKS_BYTES: usize = 256 * 1024;

const KEYS: Call = Call {
    name: "keys",
    method: "GET",
    template: "/v0/sign_in/openid_connect/certs",
};

/// Where the SiS keys come from, resolved (the embedded stand-in's URL filled in).
#[derive(Clone, Debug)]
pub enum KeysFrom {
    Url(Url),
    File(std::path::PathBuf),
}

/// The SiS key set, swapped whole on a refresh; a failed refresh keeps the last good set.
pub struct Keyring {
    from: KeysFrom,
    /// Production: a set holding a development key is refused, at start and at every refresh.
    refuse_development_keys: bool,
    /// The last set that arrived was refused: not ready until a good one arrives.
    refused: AtomicBool,
    client: HttpClient,
    guard: Arc<Guard>,
    keys: ArcSwap<KeySet>,
    loaded: AtomicBool,
    /// Bumped by every successful load, so a waiter knows whether a retry can help.
    generation: AtomicU64,
    /// The last re-fetch an unknown key asked for; one at a time.
    forced: tokio::sync::Mutex<Option<tokio::time::Instant>>,
    fetches: AtomicU64,
}

impl Keyring {
    fn new(from: KeysFrom, refuse_development_keys: bool, client: HttpClient, guard: Arc<Guard>) -> Keyring {
        Keyring {
            from,
            refuse_development_keys,
            refused: AtomicBool::new(false),
            client,
            guard,
            keys: ArcSwap::from_pointee(KeySet::empty()),
            loaded: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            forced: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// Whether a good key set was ever loaded.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Whether tokens may be verified (`/readyz`): a good set was loaded, and the last set
    /// that arrived was not refused (the last good set still verifies meanwhile).
    pub fn ready(&self) -> bool {
        self.loaded() && !self.refused.load(Ordering::Acquire)
    }

    /// Key-set fetches so far (for tests).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Key sets loaded and in force so far (for tests: a refresh has completed, not only begun).
    pub fn sets_loaded(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    async fn load(&self) -> Result<(), String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let (text, source) = match &self.from {
            KeysFrom::File(path) => (
                // A few KiB, read at start and on refresh: no blocking worth a thread.
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                KeySource::JwksFile(path.clone()),
            ),
            KeysFrom::Url(url) => (self.fetch(url).await?, KeySource::JwksUrl),
        };
        let set = KeySet::sis_from_jwks(&text, source)?;
        for skipped in set.skipped() {
            tracing::warn!(%skipped, "a Sign-in Service key was skipped");
        }
        if self.refuse_development_keys && set.contains_development_key() {
            self.refused.store(true, Ordering::Release);
            metrics::counter!("avs_sis_key_sets_refused_total").increment(1);
            tracing::error!(
                "a Sign-in Service key set holding a development key was refused (production): the last good set stays, not ready until a good set arrives"
            );
            return Err("holds a development key, which production refuses".to_owned());
        }
        let count = set.len();
        self.keys.store(Arc::new(set));
        self.refused.store(false, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        if !self.loaded.swap(true, Ordering::AcqRel) {
            tracing::info!(keys = count, "Sign-in Service keys loaded");
        }
        Ok(())
    }

    async fn fetch(&self, url: &Url) -> Result<String, String> {
        let bytes = self
            .guard
            .call(KEYS, 0, || async {
                let response = self.client.send_idempotent(self.client.get(url.clone())).await?;
                answered(response.status());
                match response.status() {
                    s if s.is_success() => read_limited(response, MAX_JWKS_BYTES).await,
                    s if s.is_server_error() => Err(UpstreamError::ServerError(s.as_u16())),
                    s => Err(UpstreamError::BadGateway(format!("answered {}", s.as_u16()))),
                }
            })
            .await
            .map_err(|e| format!("fetch failed: {e}"))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8".to_owned())
    }

    /// Keeps the keys fresh: every `refresh`, and every few seconds until a first good set.
    fn keep_fresh(self: &Arc<Self>, refresh: Duration) {
        let ring = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let wait = match ring.upgrade() {
                    None => return,
                    Some(ring) if ring.ready() => refresh,
                    // No set yet, or the last one refused: ask again soon (never later than a
                    // refresh would).
                    Some(_) => FIRST_LOAD_RETRY.min(refresh),
                };
                tokio::time::sleep(wait).await;
                let Some(ring) = ring.upgrade() else { return };
                if let Err(problem) = ring.load().await {
                    metrics::counter!("avs_sis_key_refresh_failures_total").increment(1);
                    tracing::warn!(%problem, "Sign-in Service keys not refreshed; the last good set stays");
                }
            }
        });
    }

    /// A well-formed token verified against no key: maybe the keys were rotated. Re-fetches at
    /// most once per [`UNKNOWN_KEY_REFETCH`]; `true` when a new set arrived since `seen`.
    async fn refetch_for_unknown_key(&self, seen: u64) -> bool {
        let mut forced = self.forced.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return true; // another request re-fetched while this one waited
        }
        let now = tokio::time::Instant::now();
        if forced.is_some_and(|at| now.duration_since(at) < UNKNOWN_KEY_REFETCH) {
            return false;
        }
        *forced = Some(now);
        match self.load().await {
            Ok(()) => true,
            Err(problem) => {
                tracing::warn!(%problem, "Sign-in Service keys not re-fetched after an unknown key");
                false
            }
        }
    }
}

/// A token's `aud`: a string or an array.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

#[derive(Deserialize)]
struct UserAttributes {
    icn: Option<String>,
}

/// What a SiS token says; user tokens carry `session_handle`, service tokens the rest.
#[derive(Deserialize)]
struct SisClaims {
    sub: Option<String>,
    exp: u64,
    aud: Audience,
    session_handle: Option<String>,
    service_account_id: Option<String>,
    scopes: Option<Vec<String>>,
    user_attributes: Option<UserAttributes>,
}

/// Who the caller is, and until when this answer may be reused (Unix seconds).
pub struct Resolved {
    pub caller: Caller,
    pub valid_until: u64,
}

pub struct SisIdentity {
    keyring: Arc<Keyring>,
    issuer: String,
    user_audiences: Vec<String>,
    service_audience: Option<String>,
    service_accounts: Vec<String>,
    users: UserLookup,
}

impl SisIdentity {
    /// Loads the keys once (a failure leaves the service unready, retrying) and keeps them fresh.
    pub async fn start(settings: &SisSettings, standin: Option<&Url>) -> Result<SisIdentity, String> {
        let embedded = |path: &str| {
            standin
                .ok_or_else(|| "the embedded Sign-in Service stand-in is not running".to_owned())?
                .join(path)
                .map_err(|e| e.to_string())
        };
        let from = match &settings.keys {
            SisKeys::Url(url) => KeysFrom::Url(url.clone()),
            SisKeys::File(path) => KeysFrom::File(path.clone()),
            SisKeys::Embedded => KeysFrom::Url(embedded(super::standin::JWKS_PATH)?),
        };
        let user_url = match &settings.user_url {
            Some(url) => url.clone(),
            None => embedded(super::standin::USER_PATH)?,
        };
        // vets-api is not behind the clinical sources' forward proxy: never a proxy, and never
        // one from the environment. Its calls (keys and users) are one guarded source.
        let client = HttpClient::direct(settings.user_timeout, settings.ca_file.as_deref())?;
        let guard = Arc::new(Guard::new(GuardSettings {
            source: "vets_api",
            server: user_url.host_str().unwrap_or_default().to_owned(),
            concurrency: settings.user_concurrency,
            slot_wait: settings.user_timeout,
            breaker: None,
            reported: false,
        }));
        let keyring = Arc::new(Keyring::new(
            from,
            settings.refuse_development_keys,
            client.clone(),
            guard.clone(),
        ));
        if let Err(problem) = keyring.load().await {
            tracing::error!(%problem, "Sign-in Service keys not loaded: not ready until they are");
        }
        keyring.keep_fresh(settings.refresh);
        Ok(SisIdentity {
            keyring,
            issuer: settings.issuer.clone(),
            user_audiences: settings.user_audiences.clone(),
            service_audience: settings.service_audience.clone(),
            service_accounts: settings.service_accounts.clone(),
            users: UserLookup::new(user_url, client, guard, settings),
        })
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn users(&self) -> &UserLookup {
        &self.users
    }

    fn validation(&self) -> Validation {
        let mut v = Validation::new(Algorithm::RS256);
        v.algorithms = vec![Algorithm::RS256];
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.set_issuer(&[&self.issuer]);
        // The audience is judged below, by the kind of token.
        v.validate_aud = false;
        v
    }

    /// The claims of a token signed by one of the keys, trying each (tokens have no `kid`);
    /// `Err(NoKey)` when none verifies it.
    fn verified(&self, token: &str) -> Result<SisClaims, TokenError> {
        let keys = self.keyring.keys.load();
        let validation = self.validation();
        for key in &keys.keys {
            match jsonwebtoken::decode::<SisClaims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => continue,
                // The signature was good (it is checked first): this is the token's own fault.
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                    return Err(TokenError::Expired);
                }
                Err(e) => return Err(TokenError::Rejected(rejection(e.kind()))),
            }
        }
        Err(TokenError::NoKey)
    }

    /// Verifies a SiS token and finds out who it speaks for.
    pub async fn resolve(
        &self,
        token: &str,
        request_id: Option<&HeaderValue>,
    ) -> Result<Resolved, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Malformed);
        }
        if header.crit.is_some() {
            return Err(TokenError::CriticalHeader);
        }
        let seen = self.keyring.generation.load(Ordering::Acquire);
        let claims = match self.verified(token) {
            Err(TokenError::NoKey) if self.keyring.refetch_for_unknown_key(seen).await => {
                self.verified(token)?
            }
            other => other?,
        };
        let sub = claims
            .sub
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::EmptySubject)?;
        let sub = sub.as_str();
        match claims.session_handle.as_deref() {
            Some(handle) if !handle.is_empty() => {
                if !self.user_audiences.iter().any(|a| claims.aud.contains(a)) {
                    return Err(TokenError::Rejected("no allowed client in aud"));
                }
                let user = self
                    .users
                    .lookup(sub, handle, token, request_id)
                    .await
                    .map_err(|e| match e {
                        LookupError::Expired => TokenError::Expired,
                        LookupError::Ended => TokenError::Rejected("vets-api refused the session"),
                        LookupError::Unavailable(why) => TokenError::UserUnavailable(why),
                    })?;
                let fallback = user.account_uuid.as_deref().unwrap_or(sub);
                Ok(Resolved {
                    caller: Caller {
                        actor: ActorId::from_claims(fallback, user.email.as_deref()),
                        owner: OwnerIcn::from_icn(user.icn.as_deref()),
                        patient: PatientIcn::from_icn(user.icn.as_deref()),
                        scopes: None,
                    },
                    valid_until: claims.exp.min(user.valid_until),
                })
            }
            Some(_) => Err(TokenError::Rejected("empty session_handle")),
            None => self.service_caller(sub, claims),
        }
    }

    /// A service-account token: its audience and account checked, its patient and scopes read.
    fn service_caller(&self, sub: &str, claims: SisClaims) -> Result<Resolved, TokenError> {
        let audience = self.service_audience.as_deref().ok_or(TokenError::Rejected(
            "no session_handle, and service tokens are not configured",
        ))?;
        if !claims.aud.contains(audience) {
            return Err(TokenError::Rejected("service token for another audience"));
        }
        let account = claims.service_account_id.as_deref().unwrap_or_default();
        if !self.service_accounts.iter().any(|a| a == account) {
            return Err(TokenError::Rejected("unknown service_account_id"));
        }
        let icn = claims.user_attributes.and_then(|u| u.icn);
        let scopes: Vec<String> = claims
            .scopes
            .unwrap_or_default()
            .iter()
            .filter_map(|s| scope_path(s))
            .collect();
        Ok(Resolved {
            caller: Caller {
                // The calling service puts the user's Flipper id in `sub`: the gate buckets the
                // user, not the service.
                actor: ActorId::new(sub),
                owner: OwnerIcn::from_icn(icn.as_deref()),
                patient: PatientIcn::from_icn(icn.as_deref()),
                scopes: Some(scopes.into_boxed_slice()),
            },
            valid_until: claims.exp,
        })
    }
}
