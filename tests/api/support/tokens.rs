//! Tokens: signed with the test keys (RS256, ES256), with a stranger's key, forged (HS256 with
//! the public key, `alg: none`), and the development key's.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{DEV_ICN, repo};

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

/// A Sign-in Service user token for the fixture user with `icn` (what `avs-api dev-token`
/// mints in `sis` mode), for the binary on its embedded stand-in.
pub fn dev_sis_token(icn: &str) -> String {
    let users = avs_api::identity::fixture_users();
    let user = users.iter().find(|u| u.icn.as_deref() == Some(icn)).unwrap();
    avs_api::identity::dev_sis_token(
        &avs_api::identity::SisToken::User { user },
        "va.gov sign in",
        300,
        avs_api::identity::DevKey::Current,
    )
    .unwrap()
}
