//! Caller identity: verifying the VA.gov access token and minting development tokens.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{ActorId, OwnerIcn, PatientIcn};

const DEV_PUBLIC_PEM: &str = include_str!("../fixtures/dev-keys/dev-rs256.pub.pem");
const DEV_PRIVATE_PEM: &str = include_str!("../fixtures/dev-keys/dev-rs256.key.pem");
const DEV_JWKS: &str = include_str!("../fixtures/dev-keys/dev-jwks.json");
pub const DEV_KID: &str = "avs-dev-rs256";
/// `exp` and `nbf` tolerance, for clocks that disagree a little.
const LEEWAY_SECS: u64 = 30;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The key pair in `fixtures/dev-keys`, outside production only.
    Development,
    PemFile(PathBuf),
    JwksFile(PathBuf),
}

#[derive(Clone)]
struct VerifyKey {
    /// From a JWKS; PEM keys have none and are tried in turn.
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
    /// The key's public material as text (PEM body or JWK modulus / point), to spot the dev key.
    material: String,
}

/// The verification keys, each bound to the one algorithm its type allows.
#[derive(Clone)]
pub struct KeySet {
    source: KeySource,
    keys: Vec<VerifyKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySet {
    pub fn load(source: &KeySource) -> Result<KeySet, String> {
        let keys = match source {
            KeySource::Development => pem_keys(DEV_PUBLIC_PEM)?,
            KeySource::PemFile(path) => pem_keys(&read(path)?)?,
            KeySource::JwksFile(path) => jwks_keys(&read(path)?)?,
        };
        if keys.is_empty() {
            return Err("holds no RSA or EC P-256 public key".to_owned());
        }
        Ok(KeySet {
            source: source.clone(),
            keys,
        })
    }

    pub fn describe(&self) -> String {
        let n = self.keys.len();
        match &self.source {
            KeySource::Development => "development key (fixtures/dev-keys)".to_owned(),
            KeySource::PemFile(p) => format!("{n} key(s) from PEM {}", p.display()),
            KeySource::JwksFile(p) => format!("{n} key(s) from JWKS {}", p.display()),
        }
    }

    pub fn contains_development_key(&self) -> bool {
        let dev: Vec<String> = pem_keys(DEV_PUBLIC_PEM)
            .into_iter()
            .chain(jwks_keys(DEV_JWKS))
            .flatten()
            .map(|k| k.material)
            .collect();
        self.source == KeySource::Development || self.keys.iter().any(|k| dev.contains(&k.material))
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Splits a PEM file into its blocks; the key type of each decides its algorithm.
fn pem_keys(text: &str) -> Result<Vec<VerifyKey>, String> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let Some(end_marker) = rest[start..].find("-----END ") else {
            return Err("a PEM block has no END line".to_owned());
        };
        let end_marker = start + end_marker;
        let end = rest[end_marker..]
            .find('\n')
            .map_or(rest.len(), |i| end_marker + i);
        let block = &rest[start..end];
        let material: String = block
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .flat_map(|l| l.trim().chars())
            .collect();
        let (alg, key) = if let Ok(key) = DecodingKey::from_rsa_pem(block.as_bytes()) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(block.as_bytes()) {
            (Algorithm::ES256, key)
        } else {
            return Err(format!(
                "PEM block {} is not an RSA or EC public key",
                keys.len() + 1
            ));
        };
        keys.push(VerifyKey {
            kid: None,
            alg,
            key,
            material,
        });
        rest = &rest[end..];
    }
    Ok(keys)
}

fn jwks_keys(text: &str) -> Result<Vec<VerifyKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        use jsonwebtoken::jwk::AlgorithmParameters as P;
        let (alg, material) = match &jwk.algorithm {
            P::RSA(rsa) => (Algorithm::RS256, rsa.n.clone()),
            P::EllipticCurve(ec) => (Algorithm::ES256, format!("{}.{}", ec.x, ec.y)),
            _ => continue, // symmetric or OKP keys are never accepted here
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("a JWKS key is unusable: {e}"))?;
        keys.push(VerifyKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
            material,
        });
    }
    Ok(keys)
}

/// The claims this service reads from a verified token.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    icn: Option<String>,
    email: Option<String>,
    exp: u64,
}

/// Who is calling: the gating actor and the patient they are.
#[derive(Clone, Debug)]
pub struct Caller {
    pub actor: ActorId,
    pub owner: Option<OwnerIcn>,
    /// The ICN as sent, for the Oracle Health upstream (which is asked by patient).
    pub patient: Option<PatientIcn>,
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
}

/// Verified tokens, keyed by the token itself, each until its own `exp` at the latest: a hit
/// costs a hash instead of a signature check. The key is compared in full (moka checks
/// equality after the hash), so no two tokens can ever share an entry; the hash is foldhash,
/// seeded per process, instead of SHA-256 (~0.4 µs per hit measured before). Bounded in bytes,
/// tokens included (a VA.gov token is ~515 bytes).
const TOKEN_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// What an entry holds besides its token: the caller's ids, moka's node, the expiry.
const TOKEN_ENTRY_OVERHEAD: usize = 256;
/// Even a long-lived token is re-verified this often (keys can be rotated).
const TOKEN_CACHE_MAX_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Verified {
    /// Shared: a hit hands out a reference count, not copies of the caller's ids.
    caller: Arc<Caller>,
    /// `exp` as Unix seconds: a hit past it is a miss, whatever the cache's own clock says.
    exp: u64,
    lifetime: Duration,
}

struct UntilExp;

impl moka::Expiry<Arc<[u8]>, Verified> for UntilExp {
    fn expire_after_create(&self, _: &Arc<[u8]>, v: &Verified, _: std::time::Instant) -> Option<Duration> {
        Some(v.lifetime)
    }
}

pub struct Verifier {
    keys: KeySet,
    issuer: Option<String>,
    audience: Option<String>,
    /// Keyed by the token's bytes: a hit needs no UTF-8 check of ~500 bytes (callgrind: as
    /// much as the lookup itself); only a token to verify is read as text.
    verified: moka::sync::Cache<Arc<[u8]>, Verified, foldhash::fast::RandomState>,
    signature_checks: AtomicU64,
}

impl Verifier {
    pub fn new(keys: KeySet, issuer: Option<String>, audience: Option<String>) -> Verifier {
        let verified = moka::sync::Cache::builder()
            .max_capacity(TOKEN_CACHE_BYTES)
            .weigher(|token: &Arc<[u8]>, _: &Verified| {
                u32::try_from(token.len() + TOKEN_ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(UntilExp)
            .build_with_hasher(foldhash::fast::RandomState::default());
        Verifier {
            keys,
            issuer,
            audience,
            verified,
            signature_checks: AtomicU64::new(0),
        }
    }

    /// How many tokens went through full verification (for tests and metrics).
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks.load(Ordering::Relaxed)
    }

    /// [`Verifier::verify`], remembered per token until its `exp`.
    pub async fn verify_cached(&self, token: &[u8]) -> Result<Arc<Caller>, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(hit) = self.verified.get(token)
            && hit.exp > now
        {
            return Ok(hit.caller);
        }
        let text = std::str::from_utf8(token).map_err(|_| TokenError::Malformed)?;
        let (caller, exp) = self.verify_with_exp(text)?;
        let caller = Arc::new(caller);
        let lifetime = Duration::from_secs(exp.saturating_sub(now)).min(TOKEN_CACHE_MAX_LIFETIME);
        if !lifetime.is_zero() {
            self.verified.insert(
                Arc::from(token),
                Verified {
                    caller: caller.clone(),
                    exp,
                    lifetime,
                },
            );
        }
        Ok(caller)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        v
    }

    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        self.verify_with_exp(token).map(|(caller, _)| caller)
    }

    fn verify_with_exp(&self, token: &str) -> Result<(Caller, u64), TokenError> {
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.crit.is_some() {
            return Err(TokenError::CriticalHeader);
        }
        // Only the asymmetric algorithms, each only with a key of its own type: no `none`,
        // no HS256 "signed" with a public key.
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(TokenError::Malformed);
        }
        let mut candidates: Vec<&VerifyKey> = self.keys.keys.iter().filter(|k| k.alg == header.alg).collect();
        if let Some(kid) = &header.kid
            && self.keys.keys.iter().any(|k| k.kid.is_some())
        {
            candidates.retain(|k| k.kid.as_deref() == Some(kid));
            if candidates.is_empty() {
                return Err(TokenError::UnknownKid);
            }
        }
        let validation = self.validation(header.alg);
        let mut last = TokenError::NoKey;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    let c = data.claims;
                    if c.sub.is_empty() {
                        return Err(TokenError::EmptySubject);
                    }
                    let caller = Caller {
                        actor: ActorId::from_claims(&c.sub, c.email.as_deref()),
                        owner: OwnerIcn::from_icn(c.icn.as_deref()),
                        patient: PatientIcn::from_icn(c.icn.as_deref()),
                    };
                    return Ok((caller, c.exp));
                }
                Err(e) => last = TokenError::Rejected(rejection(e.kind())),
            }
        }
        Err(last)
    }
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

#[derive(Serialize)]
struct DevClaims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    icn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// What goes into a development token.
pub struct DevToken<'a> {
    pub sub: &'a str,
    pub icn: Option<&'a str>,
    pub email: Option<&'a str>,
    pub ttl_secs: u64,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
}

/// Signs a token with the development key (never configured in production).
pub fn dev_token(t: &DevToken<'_>) -> Result<String, String> {
    let key = EncodingKey::from_rsa_pem(DEV_PRIVATE_PEM.as_bytes()).map_err(|e| e.to_string())?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = DevClaims {
        sub: t.sub,
        icn: t.icn,
        email: t.email,
        iat: now,
        exp: now + t.ttl_secs,
        iss: t.issuer,
        aud: t.audience,
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(DEV_KID.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_token_round_trips_and_dev_key_is_recognised() {
        let keys = KeySet::load(&KeySource::Development).unwrap();
        assert!(keys.contains_development_key());
        let v = Verifier::new(keys, None, None);
        let token = dev_token(&DevToken {
            sub: "s-1",
            icn: Some("1012345678V123456"),
            email: Some("Dev@Example.com"),
            ttl_secs: 60,
            issuer: None,
            audience: None,
        })
        .unwrap();
        let caller = v.verify(&token).unwrap();
        assert_eq!(caller.actor.as_str(), "dev@example.com");
        assert_eq!(caller.owner, OwnerIcn::from_icn(Some("1012345678")));
    }

    #[test]
    fn dev_jwks_matches_dev_pem() {
        let pem = pem_keys(DEV_PUBLIC_PEM).unwrap();
        let jwks = jwks_keys(DEV_JWKS).unwrap();
        assert_eq!(pem.len(), 1);
        assert_eq!(jwks[0].kid.as_deref(), Some(DEV_KID));
        // The JWKS form of the dev key verifies a dev token too: both name the same key.
        let v = Verifier::new(
            KeySet {
                source: KeySource::JwksFile("x".into()),
                keys: jwks,
            },
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
}
