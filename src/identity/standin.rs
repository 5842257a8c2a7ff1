//! The embedded Sign-in Service stand-in: the development default's vets-api, so `cargo run`
//! shows the real flow. It publishes the development keys (current and "old") as vets-api
//! publishes its own, and answers `/v0/user` as vets-api does, from `fixtures/users.json`,
//! keyed by the cookie token's `sub`. Development only: production refuses to run without the
//! real vets-api (`config/callers.rs`).

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::json;

use super::dev::fixture_users;
use super::vets_api::EXPIRED_BODY;
use crate::config::{DEV_SIS_JWKS, jwks_keys};

pub const JWKS_PATH: &str = "sign_in/openid_connect/certs";
pub const USER_PATH: &str = "v0/user";

pub fn router() -> Router {
    Router::new()
        .route(&format!("/{JWKS_PATH}"), get(certs))
        .route(&format!("/{USER_PATH}"), get(user))
}

async fn certs() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DEV_SIS_JWKS).into_response()
}

fn errors(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Deserialize)]
struct Subject {
    sub: String,
}

/// vets-api's answer for the cookie's session, from the fixture users.
async fn user(headers: HeaderMap) -> Response {
    let invalid = || errors(StatusCode::UNAUTHORIZED, r#"{"errors":"Invalid Session Handle"}"#);
    let Some(token) = cookie_token(&headers) else {
        return invalid();
    };
    let keys: Vec<DecodingKey> = jwks_keys(DEV_SIS_JWKS)
        .map(|(keys, _)| keys)
        .unwrap_or_default()
        .into_iter()
        .map(|k| k.key)
        .collect();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 5;
    validation.validate_aud = false;
    let mut expired = false;
    let sub = keys.iter().find_map(
        |key| match jsonwebtoken::decode::<Subject>(&token, key, &validation) {
            Ok(data) => Some(data.claims.sub),
            Err(e) => {
                expired |= matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature);
                None
            }
        },
    );
    let Some(sub) = sub else {
        return if expired {
            errors(StatusCode::FORBIDDEN, EXPIRED_BODY)
        } else {
            invalid()
        };
    };
    let Some(user) = fixture_users().into_iter().find(|u| u.uuid == sub) else {
        return invalid();
    };
    axum::Json(json!({
        "data": {"id": "", "type": "user", "attributes": {
            "services": ["facilities", "hca", "edu-benefits"],
            "account": {"account_uuid": user.uuid},
            "user_account": {"id": user.uuid},
            "profile": {
                "email": user.email,
                "first_name": "Fixture",
                "last_name": "User",
                "icn": user.icn,
                "loa": {"current": 3, "highest": 3},
                "verified": true,
                "sign_in": {"service_name": "idme", "auth_broker": "sis", "client_id": "vaweb"},
            },
            "va_profile": {"status": "OK"},
            "in_progress_forms": [],
        }},
        "meta": {"errors": null},
    }))
    .into_response()
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == "vagov_access_token")
        .map(|(_, v)| v.to_owned())
}
