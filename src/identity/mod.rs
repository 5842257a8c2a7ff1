//! Caller identity: who is calling, from the token they send (`identity.md`).
//!
//! Two modes (`AVS_IDENTITY`): `sis`, VA.gov's Sign-in Service, whose user tokens carry no
//! identity (the user comes from vets-api, once per session) and whose service tokens name
//! their patient and routes; and `claims`, an issuer that asserts `icn` and `email` itself.
//! Either way a verified token is remembered, keyed by its bytes, so a repeated request costs
//! a hash instead of a signature check and a vets-api call.

mod claims;
mod dev;
mod scopes;
mod sis;
pub mod standin;
mod vets_api;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::HeaderValue;
use url::Url;

pub use crate::config::{DEV_KID, KeySet, KeySource};
pub use claims::ClaimsVerifier;
pub use dev::{DevKey, DevToken, FixtureUser, SisToken, dev_sis_token, dev_token, fixture_users};
pub use scopes::scope_covers;
pub use sis::{Keyring, SisIdentity};
pub use vets_api::{EXPIRED_BODY, UserLookup};

use crate::config::IdentitySettings;
use crate::domain::{ActorId, OwnerIcn, PatientIcn};
use crate::hot::{Hot, Read};

/// Who is calling: the gating actor and the patient they are.
#[derive(Clone, Debug)]
pub struct Caller {
    pub actor: ActorId,
    pub owner: Option<OwnerIcn>,
    /// The ICN as sent, for the Oracle Health upstream (which is asked by patient).
    pub patient: Option<PatientIcn>,
    /// A service token's scopes (their paths); `None` for a user, who may call every route.
    pub scopes: Option<Box<[String]>>,
}

impl Caller {
    /// Whether the caller may call `path` (service tokens: one scope covers it).
    pub fn may_call(&self, path: &str) -> bool {
        self.scopes
            .as_deref()
            .is_none_or(|scopes| scopes.iter().any(|s| scope_covers(s, path)))
    }
}

/// Why a token was refused. Logged as a kind only: never the token, and never a claim's value
/// (serde's messages quote the offending value, e.g. an ICN sent as a number).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token or unsupported algorithm")]
    Malformed,
    /// RFC 7515 §4.1.11: a `crit` header names extensions this service does not understand.
    #[error("critical header extensions are not supported")]
    CriticalHeader,
    #[error("unknown key id")]
    UnknownKid,
    #[error("no key verifies the token, or a claim check failed: {0}")]
    Rejected(&'static str),
    #[error("no key for the token's algorithm")]
    NoKey,
    #[error("empty subject")]
    EmptySubject,
    /// A SiS token whose signature is good and whose `exp` has passed (or vets-api said so):
    /// answered with vets-api's own 403, which VA.gov's page refreshes the session on.
    #[error("expired")]
    Expired,
    /// vets-api could not say who the user is.
    #[error("the user could not be looked up: {0}")]
    UserUnavailable(&'static str),
    /// A service token whose scopes do not cover the route.
    #[error("the token's scopes do not cover this route")]
    OutOfScope,
}

/// A label for why verification failed, free of any value from the token.
fn rejection(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => "bad signature",
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not yet valid",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::MissingRequiredClaim(_) => "a required claim is missing",
        K::InvalidClaimFormat(_) | K::Json(_) => "a claim has the wrong type or shape",
        K::InvalidAlgorithm => "wrong algorithm for the key",
        _ => "invalid token",
    }
}

/// Verified tokens, keyed by the token itself, each until its own `exp` at the latest (and, for
/// a SiS user, until its session's user must be asked again): a hit costs a hash instead of a
/// signature check. The key is compared in full (moka checks equality after the hash), so no
/// two tokens can ever share an entry; the hash is foldhash, seeded per process, instead of
/// SHA-256 (~0.4 µs per hit measured before). Bounded in bytes, tokens included (a VA.gov
/// token is ~515 bytes).
const TOKEN_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// What an entry holds besides its token: the caller's ids, moka's node, the expiry.
const TOKEN_ENTRY_OVERHEAD: usize = 256;
/// Even a long-lived token is re-verified this often (keys can be rotated).
const TOKEN_CACHE_MAX_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Verified {
    /// Shared: a hit hands out a reference count, not copies of the caller's ids.
    caller: Arc<Caller>,
    /// Unix seconds: a hit past it is a miss, whatever the cache's own clock says.
    valid_until: u64,
    lifetime: Duration,
    /// Unix seconds: when moka lets it go (`lifetime` after it was verified). The hot map
    /// serves it until the earlier of this and `valid_until`.
    kept_until: u64,
}

impl Verified {
    fn servable(&self, now: u64) -> bool {
        self.valid_until.min(self.kept_until) > now
    }
}

/// The hash of a token: its length and its last 32 bytes, which lie in its signature. A hit
/// hashed the whole ~500-byte token (~560 instructions, callgrind); the signature's bytes are
/// as good as random, only verified tokens are ever stored (no caller can choose what shares
/// a hash with them), and equality is still checked on every byte.
#[derive(Clone, Default)]
struct TokenHash(foldhash::fast::RandomState);

impl std::hash::BuildHasher for TokenHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

struct TailHasher(foldhash::fast::FoldHasher<'static>);

impl std::hash::Hasher for TailHasher {
    fn finish(&self) -> u64 {
        self.0.finish()
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.write(&bytes[bytes.len().saturating_sub(32)..]);
    }

    fn write_usize(&mut self, n: usize) {
        self.0.write_usize(n);
    }
}

struct UntilExp;

impl moka::Expiry<Arc<[u8]>, Verified> for UntilExp {
    fn expire_after_create(&self, _: &Arc<[u8]>, v: &Verified, _: std::time::Instant) -> Option<Duration> {
        Some(v.lifetime)
    }
}

/// Who issues the tokens.
// One per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Issuer {
    Claims(ClaimsVerifier),
    Sis(SisIdentity),
}

pub struct Identity {
    issuer: Issuer,
    /// Keyed by the token's bytes: a hit needs no UTF-8 check of ~500 bytes (callgrind: as
    /// much as the lookup itself); only a token to verify is read as text.
    verified: moka::sync::Cache<Arc<[u8]>, Verified, TokenHash>,
    /// The verified tokens moka holds, read on a hit without moka's bookkeeping (`crate::hot`).
    hot: Arc<Hot<Arc<[u8]>, Verified, TokenHash>>,
    signature_checks: AtomicU64,
}

impl Identity {
    /// The identity of the configured mode; `standin` is the embedded SiS stand-in's base URL
    /// when it runs. A SiS key set that cannot be loaded yet leaves the service unready.
    pub async fn start(settings: &IdentitySettings, standin: Option<&Url>) -> Result<Identity, String> {
        let issuer = match settings {
            IdentitySettings::Claims(c) => Issuer::Claims(ClaimsVerifier::new(
                c.keys.clone(),
                c.issuer.clone(),
                c.audience.clone(),
            )),
            IdentitySettings::Sis(s) => Issuer::Sis(SisIdentity::start(s, standin).await?),
        };
        Ok(Identity::with(issuer))
    }

    /// Claims-mode identity over fixed keys (tests and tools).
    pub fn claims(keys: KeySet) -> Identity {
        Identity::with(Issuer::Claims(ClaimsVerifier::new(keys, None, None)))
    }

    fn with(issuer: Issuer) -> Identity {
        let hot: Arc<Hot<Arc<[u8]>, Verified, TokenHash>> =
            Arc::new(Hot::new(|a, b| Arc::ptr_eq(&a.caller, &b.caller)));
        let gone = hot.clone();
        let verified = moka::sync::Cache::builder()
            .max_capacity(TOKEN_CACHE_BYTES)
            .weigher(|token: &Arc<[u8]>, _: &Verified| {
                u32::try_from(token.len() + TOKEN_ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(UntilExp)
            // Called once moka has let the token go (evicted, expired, replaced).
            .eviction_listener(move |token: Arc<Arc<[u8]>>, left: Verified, _| {
                gone.forget(&**token, &left);
            })
            .build_with_hasher(TokenHash::default());
        Identity {
            issuer,
            verified,
            hot,
            signature_checks: AtomicU64::new(0),
        }
    }

    /// How many tokens went through full verification (for tests and metrics).
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks.load(Ordering::Relaxed)
    }

    /// The SiS parts, when that is the mode (for `/readyz` and tests).
    pub fn sis(&self) -> Option<&SisIdentity> {
        match &self.issuer {
            Issuer::Sis(sis) => Some(sis),
            Issuer::Claims(_) => None,
        }
    }

    /// Whether tokens can be verified: in `sis` mode, once a first key set is loaded and while
    /// no refused set has arrived since.
    pub fn ready(&self) -> bool {
        self.sis().is_none_or(|s| s.keyring().ready())
    }

    /// The caller a token speaks for, allowed on `path`: remembered per token, else verified
    /// (and, for a SiS user, looked up in vets-api).
    pub async fn authenticate(
        &self,
        token: &[u8],
        path: &str,
        request_id: Option<&HeaderValue>,
    ) -> Result<Arc<Caller>, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        let held = || self.verified.get(token);
        let caller = match self.hot.read(
            token,
            |hit| hit.servable(now),
            held,
            |hit| Some(hit.clone()),
            |token: &[u8]| Arc::from(token),
        ) {
            Read::Hot(hit) => hit.caller,
            Read::Held(Some(hit)) if hit.servable(now) => hit.caller,
            // Boxed: verifying (a vets-api call in `sis` mode) is a large future, and every
            // hit would otherwise carry its size and move it from layer to layer.
            Read::Held(_) => Box::pin(self.verify(token, now, request_id)).await?,
        };
        if caller.may_call(path) {
            Ok(caller)
        } else {
            Err(TokenError::OutOfScope)
        }
    }

    async fn verify(
        &self,
        token: &[u8],
        now: u64,
        request_id: Option<&HeaderValue>,
    ) -> Result<Arc<Caller>, TokenError> {
        let text = std::str::from_utf8(token).map_err(|_| TokenError::Malformed)?;
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        let (caller, valid_until) = match &self.issuer {
            Issuer::Claims(v) => v.verify(text)?,
            Issuer::Sis(s) => {
                let resolved = s.resolve(text, request_id).await?;
                (resolved.caller, resolved.valid_until)
            }
        };
        let caller = Arc::new(caller);
        let lifetime = Duration::from_secs(valid_until.saturating_sub(now)).min(TOKEN_CACHE_MAX_LIFETIME);
        if !lifetime.is_zero() {
            self.verified.insert(
                Arc::from(token),
                Verified {
                    caller: caller.clone(),
                    valid_until,
                    lifetime,
                    kept_until: now + lifetime.as_secs(),
                },
            );
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEV_PUBLIC_PEM, DEV_SIS_JWKS, jwks_keys, pem_keys};

    const DEV_JWKS: &str = include_str!("../../fixtures/dev-keys/dev-jwks.json");

    #[test]
    fn dev_token_round_trips_and_dev_key_is_recognised() {
        let keys = KeySet::load(&KeySource::Development).unwrap();
        assert!(keys.contains_development_key());
        let v = ClaimsVerifier::new(keys, None, None);
        let token = dev_token(&DevToken {
            sub: "s-1",
            icn: Some("1012345678V123456"),
            email: Some("Dev@Example.com"),
            ttl_secs: 60,
            issuer: None,
            audience: None,
        })
        .unwrap();
        let (caller, _) = v.verify(&token).unwrap();
        assert_eq!(caller.actor.as_str(), "dev@example.com");
        assert_eq!(caller.owner, OwnerIcn::from_icn(Some("1012345678")));
    }

    #[test]
    fn dev_jwks_matches_dev_pem() {
        let pem = pem_keys(DEV_PUBLIC_PEM).unwrap();
        let (jwks, _) = jwks_keys(DEV_JWKS).unwrap();
        assert_eq!(pem.len(), 1);
        assert_eq!(jwks[0].kid.as_deref(), Some(DEV_KID));
        // The JWKS form of the dev key verifies a dev token too: both name the same key.
        let v = ClaimsVerifier::new(
            KeySet::sis_from_jwks(DEV_JWKS, KeySource::JwksUrl).unwrap(),
            None,
            None,
        );
        let token = dev_token(&DevToken {
            sub: "s",
            icn: None,
            email: None,
            ttl_secs: 60,
            issuer: None,
            audience: None,
        })
        .unwrap();
        assert!(v.verify(&token).is_ok());
    }

    #[test]
    fn the_stand_in_keys_are_development_keys_and_hold_the_dev_key() {
        let set = KeySet::sis_from_jwks(DEV_SIS_JWKS, KeySource::JwksUrl).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.contains_development_key());
        // The stand-in's current key is the development key (its modulus as in dev-jwks.json).
        let (dev, _) = jwks_keys(DEV_JWKS).unwrap();
        assert!(
            jwks_keys(DEV_SIS_JWKS)
                .unwrap()
                .0
                .iter()
                .any(|k| k.material == dev[0].material)
        );
    }

    #[test]
    fn a_service_caller_may_call_only_what_its_scopes_cover() {
        let caller = Caller {
            actor: ActorId::new("a"),
            owner: None,
            patient: None,
            scopes: Some(vec!["/avs/v0/avs/links".to_owned()].into_boxed_slice()),
        };
        assert!(caller.may_call("/avs/v0/avs/links"));
        assert!(!caller.may_call("/avs/v0/avs/search"));
        let user = Caller {
            scopes: None,
            ..caller
        };
        assert!(user.may_call("/avs/v0/avs/search"));
    }
}
