//! `AVS_IDENTITY=claims`: tokens from an issuer that asserts the caller's identity itself
//! (`icn`, `email`, `sub`), verified with configured keys (`api.md`).

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::{Caller, TokenError, rejection};
use crate::config::{KeySet, VerifyKey};
use crate::domain::{ActorId, OwnerIcn, PatientIcn};

/// `exp` and `nbf` tolerance, for clocks that disagree a little.
const LEEWAY_SECS: u64 = 30;

/// The claims this mode reads from a verified token.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    icn: Option<String>,
    email: Option<String>,
    exp: u64,
}

pub struct ClaimsVerifier {
    keys: KeySet,
    issuer: Option<String>,
    audience: Option<String>,
}

impl ClaimsVerifier {
    pub fn new(keys: KeySet, issuer: Option<String>, audience: Option<String>) -> ClaimsVerifier {
        ClaimsVerifier {
            keys,
            issuer,
            audience,
        }
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

    /// The caller and the token's `exp`.
    pub fn verify(&self, token: &str) -> Result<(Caller, u64), TokenError> {
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
                        scopes: None,
                    };
                    return Ok((caller, c.exp));
                }
                Err(e) => last = TokenError::Rejected(rejection(e.kind())),
            }
        }
        Err(last)
    }
}
