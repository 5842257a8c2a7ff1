//! The Oracle Health source's client: UHD's security login and its two data calls, each data
//! call one guarded call (`clinical::call`, labelled `oracle`) through the shared transport.
//!
//! One login serves every call until its token expires (a JWT's `exp`, read but not verified,
//! renewed 60 s early; else `AVS_OH_TOKEN_TTL_SECS`). Logins happen one at a time, and only on a
//! data call, never at start-up. A data call answered 401 renews the token once and is retried
//! once. Neither the token nor the app token ever reaches a log line.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use time::Date;
use tokio::time::Instant;
use url::Url;

use crate::clinical::call::{
    self, Call, Guard, GuardSettings, RequestContext, UpstreamError, answered, key_of,
};
use crate::clinical::{BreakerState, HttpClient, read_limited};
use crate::config::{OhSettings, TransportConfig};
use crate::domain::PatientIcn;
use crate::domain::oracle::{DocId, format_date};
use crate::telemetry;

const METADATA: Call = Call {
    name: "metadata",
    method: "GET",
    template: "/avs/oracle-health",
};
const DOCUMENT: Call = Call {
    name: "document",
    method: "GET",
    template: "/document-reference/oracle-health/{docId}",
};

/// A login token and when to renew it.
#[derive(Clone)]
struct Token {
    header: HeaderValue,
    renew_at: Instant,
}

pub struct OracleClient {
    client: HttpClient,
    base: Url,
    login: Url,
    app_id: u64,
    app_token: String,
    api_key: Option<HeaderValue>,
    token_ttl: Duration,
    /// Held across a login: concurrent callers wait for the one login in progress.
    token: tokio::sync::Mutex<Option<Token>>,
    guard: Guard,
    /// The bytes call carries the document base64-encoded inside JSON: a third more, plus the
    /// Bundle around it.
    max_body_bytes: usize,
}

/// A data call's answer before mapping: a 401 is retried once with a new token.
enum Answer {
    Body(Bytes),
    Unauthorized,
}

impl OracleClient {
    pub fn new(
        transport: &TransportConfig,
        settings: &OhSettings,
        base: Url,
        login: Url,
    ) -> Result<OracleClient, String> {
        let api_key = match &settings.api_key {
            Some(key) => {
                let mut v = HeaderValue::try_from(key.as_str())
                    .map_err(|_| "AVS_OH_API_KEY: not a valid header value".to_owned())?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(OracleClient {
            client: HttpClient::new(transport, settings.timeout)?,
            guard: Guard::new(GuardSettings::clinical("oracle", &base, transport)),
            base,
            login,
            app_id: settings.app_id,
            app_token: settings.app_token.clone().unwrap_or_default(),
            api_key,
            token_ttl: settings.token_ttl,
            token: tokio::sync::Mutex::new(None),
            max_body_bytes: (settings.max_document_bytes / 3 * 4 + (1 << 20)).max(transport.max_body_bytes),
        })
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.guard.breaker_state()
    }

    /// `GET /avs/oracle-health?patientId&startDate&endDate`: the metadata Bundle.
    #[tracing::instrument(name = "upstream.oh.metadata", skip_all)]
    pub async fn metadata(
        &self,
        patient: &PatientIcn,
        start: Date,
        end: Date,
        ctx: &RequestContext,
    ) -> Result<Value, UpstreamError> {
        let mut url = self.url(&["avs", "oracle-health"]);
        url.query_pairs_mut()
            .append_pair("patientId", patient.for_upstream())
            .append_pair("startDate", &format_date(start))
            .append_pair("endDate", &format_date(end));
        self.data_call(METADATA, url, ctx).await
    }

    /// `GET /document-reference/oracle-health/{docId}?includeBinary=true`: the bytes Bundle.
    #[tracing::instrument(name = "upstream.oh.document", skip_all)]
    pub async fn document(&self, id: &DocId, ctx: &RequestContext) -> Result<Value, UpstreamError> {
        // Path segments are percent-encoded by `url`; validation already forbids anything that
        // would need it.
        let mut url = self.url(&["document-reference", "oracle-health", id.as_str()]);
        url.query_pairs_mut().append_pair("includeBinary", "true");
        self.data_call(DOCUMENT, url, ctx).await
    }

    fn url(&self, segments: &[&str]) -> Url {
        call::url(&self.base, segments)
    }

    /// One guarded call, keyed by path and query: the metadata call's patient is in its query,
    /// and a key of the path alone made every metadata call one key, so an outage of that call
    /// alone could never reach AVS_BREAKER_MIN_KEYS (#26).
    async fn data_call(&self, call: Call, url: Url, ctx: &RequestContext) -> Result<Value, UpstreamError> {
        let key = key_of(&[url.path(), url.query().unwrap_or("")]);
        self.guard
            .call(call, key, || async {
                let body = self.with_token(call, &url, ctx).await?;
                serde_json::from_slice(&body)
                    .map_err(|_| UpstreamError::BadGateway("invalid JSON".to_owned()))
            })
            .await
    }

    /// The data call with the current token, renewing it once on a 401.
    async fn with_token(&self, call: Call, url: &Url, ctx: &RequestContext) -> Result<Bytes, UpstreamError> {
        let token = self.token(None).await?;
        match self.get(url, &token, ctx).await? {
            Answer::Body(body) => Ok(body),
            Answer::Unauthorized => {
                tracing::info!(call = call.name, "oracle health token refused; logging in again");
                let token = self.token(Some(&token)).await?;
                match self.get(url, &token, ctx).await? {
                    Answer::Body(body) => Ok(body),
                    Answer::Unauthorized => {
                        Err(UpstreamError::BadGateway("401 after a new login".to_owned()))
                    }
                }
            }
        }
    }

    async fn get(
        &self,
        url: &Url,
        token: &HeaderValue,
        ctx: &RequestContext,
    ) -> Result<Answer, UpstreamError> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, token.clone());
        headers.insert("x-mhv-client-application", HeaderValue::from_static("VAGOV"));
        if let Some(key) = &self.api_key {
            headers.insert("x-api-key", key.clone());
        }
        if let Some(id) = &ctx.request_id {
            headers.insert("x-request-id", id.clone());
        }
        telemetry::inject_current(&mut headers);
        let response = self
            .client
            .send_idempotent(self.client.get(url.clone()).headers(headers))
            .await?;
        answered(response.status());
        match response.status() {
            StatusCode::OK => Ok(Answer::Body(read_limited(response, self.max_body_bytes).await?)),
            StatusCode::UNAUTHORIZED => Ok(Answer::Unauthorized),
            StatusCode::NOT_FOUND => Err(UpstreamError::NotFound),
            s if s.is_server_error() => Err(UpstreamError::ServerError(s.as_u16())),
            s => Err(UpstreamError::BadGateway(format!("status {}", s.as_u16()))),
        }
    }

    /// The current token, logging in when there is none, it is due, or it is the `stale` one
    /// a data call was refused with. One login at a time.
    async fn token(&self, stale: Option<&HeaderValue>) -> Result<HeaderValue, UpstreamError> {
        let mut held = self.token.lock().await;
        if let Some(token) = held.as_ref()
            && Some(&token.header) != stale
            && Instant::now() < token.renew_at
        {
            return Ok(token.header.clone());
        }
        let token = self.log_in().await;
        self.guard.count(
            "login",
            token.as_ref().map_or_else(|e| e.kind().as_str(), |_| "ok"),
        );
        let token = token?;
        let header = token.header.clone();
        *held = Some(token);
        Ok(header)
    }

    async fn log_in(&self) -> Result<Token, UpstreamError> {
        let body = json!({"appId": self.app_id, "appToken": self.app_token, "subject": "avs-api", "userType": "SYSTEM"});
        // Logging in twice only issues a second token: safe to send once more.
        let login = self
            .client
            .post(self.login.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let response = self.client.send_idempotent(login).await?;
        match response.status() {
            StatusCode::OK => {}
            s if s.is_server_error() => return Err(UpstreamError::ServerError(s.as_u16())),
            s => return Err(UpstreamError::BadGateway(format!("login status {}", s.as_u16()))),
        }
        let headers = response.headers();
        let value = headers
            .get(AUTHORIZATION)
            .or_else(|| headers.get("x-amzn-remapped-authorization"))
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| UpstreamError::BadGateway("login answered without a token".to_owned()))?;
        let token = value.strip_prefix("Bearer ").unwrap_or(value).trim().to_owned();
        let mut header = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| UpstreamError::BadGateway("login token is not a header value".to_owned()))?;
        header.set_sensitive(true);
        let lifetime = jwt_lifetime(&token).unwrap_or(self.token_ttl);
        Ok(Token {
            header,
            renew_at: Instant::now() + lifetime,
        })
    }
}

/// How long a JWT has left, 60 s early; `None` when the token is not a JWT with an `exp`.
fn jwt_lifetime(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?,
    )
    .ok()?;
    let exp = claims["exp"].as_u64()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now).saturating_sub(60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_lives_until_its_exp_less_a_minute_and_anything_else_is_not_a_jwt() {
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let now = jsonwebtoken::get_current_timestamp();
        let jwt = format!(
            "{}.{}.sig",
            b64(&json!({"alg": "none"})),
            b64(&json!({"exp": now + 600}))
        );
        let left = jwt_lifetime(&jwt).unwrap().as_secs();
        assert!((535..=540).contains(&left), "{left}");
        assert_eq!(jwt_lifetime("opaque-token"), None);
        let expired = format!("{}.{}.sig", b64(&json!({})), b64(&json!({"exp": now - 5})));
        assert_eq!(jwt_lifetime(&expired), Some(Duration::ZERO));
    }
}
