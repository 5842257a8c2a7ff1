//! Development tokens, signed with the development key (never configured in production): the
//! claims-shaped ones of `AVS_IDENTITY=claims`, and Sign-in Service-shaped user and service
//! tokens for the embedded stand-in's fixture users.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::DEV_KID;

const DEV_PRIVATE_PEM: &str = include_str!("../../fixtures/dev-keys/dev-rs256.key.pem");
const DEV_OLD_PRIVATE_PEM: &str = include_str!("../../fixtures/dev-keys/dev-old-rs256.key.pem");

const USERS: &str = include_str!("../../fixtures/users.json");

/// A user of the embedded stand-in (synthetic).
#[derive(Clone, Debug, Deserialize)]
pub struct FixtureUser {
    pub uuid: String,
    pub email: Option<String>,
    pub icn: Option<String>,
}

impl FixtureUser {
    /// vets-api's `User#flipper_id`: `email&.downcase || user_account_uuid`.
    pub fn flipper_id(&self) -> String {
        crate::domain::ActorId::from_claims(&self.uuid, self.email.as_deref())
            .as_str()
            .to_owned()
    }
}

#[derive(Deserialize)]
struct Users {
    users: Vec<FixtureUser>,
}

/// The stand-in's users (`fixtures/users.json`, compiled in).
pub fn fixture_users() -> Vec<FixtureUser> {
    serde_json::from_str::<Users>(USERS).map_or_else(|_| Vec::new(), |u| u.users)
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

/// What goes into a claims-shaped development token.
pub struct DevToken<'a> {
    pub sub: &'a str,
    pub icn: Option<&'a str>,
    pub email: Option<&'a str>,
    pub ttl_secs: u64,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
}

/// Signs a claims-shaped token with the development key.
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

/// A Sign-in Service token for a fixture user.
pub enum SisToken<'a> {
    /// A user token as the web page or the mobile app holds it.
    User { user: &'a FixtureUser },
    /// A service-account token as a vets-api module sends on the user's behalf.
    Service {
        user: &'a FixtureUser,
        scopes: &'a [String],
        audience: &'a str,
        account: &'a str,
    },
}

/// Which development key signs.
#[derive(Clone, Copy, Debug)]
pub enum DevKey {
    Current,
    /// The stand-in's "old" key, still published (a rotation in progress).
    Old,
}

/// Signs a SiS-shaped token: RS256, no `kid`, the header `{"alg":"RS256"}` as SiS sends it.
pub fn dev_sis_token(
    t: &SisToken<'_>,
    issuer: &str,
    ttl_secs: u64,
    signer: DevKey,
) -> Result<String, String> {
    let pem = match signer {
        DevKey::Current => DEV_PRIVATE_PEM,
        DevKey::Old => DEV_OLD_PRIVATE_PEM,
    };
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = match t {
        SisToken::User { user } => json!({
            "iss": issuer, "aud": ["vaweb", "vamobile"], "sub": user.uuid,
            "session_handle": uuid::Uuid::new_v4().to_string(),
            "refresh_token_hash": "0".repeat(64), "parent_refresh_token_hash": "0".repeat(64),
            "anti_csrf_token": uuid::Uuid::new_v4().simple().to_string(),
            "last_regeneration_time": now, "version": "V0", "iat": now, "exp": now + ttl_secs,
        }),
        SisToken::Service {
            user,
            scopes,
            audience,
            account,
        } => json!({
            "iss": issuer, "aud": audience, "sub": user.flipper_id(), "scopes": scopes,
            "service_account_id": account, "user_attributes": {"icn": user.icn},
            "jti": uuid::Uuid::new_v4().to_string(), "version": "V0",
            "iat": now, "nbf": now, "exp": now + ttl_secs,
        }),
    };
    let mut header = Header::new(Algorithm::RS256);
    header.typ = None;
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())
}
