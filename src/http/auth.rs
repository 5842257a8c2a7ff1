//! The caller extractor: a verified token from the bearer header, else from the cookie, and
//! the caller's fairness slot, held for as long as the handler holds the extractor.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;

use super::error::ApiError;
use super::request_id::RequestId;
use crate::app::AppState;
use crate::fairness::CallerSlot;
use crate::identity::Caller;

/// An authenticated caller with one of its in-flight slots: the slot goes back when the
/// handler ends (or is cancelled) and drops this.
pub struct Authenticated {
    pub caller: std::sync::Arc<Caller>,
    /// The token came in the cookie (a browser, which sends it on its own): state-changing
    /// routes then check the request's origin and type (`identity.md`).
    pub via_cookie: bool,
    _slot: CallerSlot,
}

impl std::ops::Deref for Authenticated {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Authenticated, ApiError> {
        let (token, via_cookie) = match bearer(parts) {
            Some(token) => (token, false),
            None => (
                cookie(parts, &state.auth_cookie).ok_or(ApiError::Unauthenticated)?,
                true,
            ),
        };
        let request_id = parts.extensions.get::<RequestId>().map(|id| &id.0);
        match state
            .identity
            .authenticate(token, parts.uri.path(), request_id)
            .await
        {
            Ok(caller) => {
                // Only where request spans are recorded: finding the current one is a registry
                // lookup on every request.
                if tracing::enabled!(tracing::Level::INFO) {
                    let span = tracing::Span::current();
                    if !span.is_disabled() {
                        span.record("actor", state.actor_hash(&caller.actor).as_str());
                    }
                }
                let key = state.actor_key(&caller.actor);
                crate::telemetry::note(|n| n.actor = Some(key));
                let slot = state.callers.take(key).ok_or(ApiError::TooManyRequests)?;
                Ok(Authenticated {
                    caller,
                    via_cookie,
                    _slot: slot,
                })
            }
            Err(reason) => {
                tracing::info!(%reason, "token refused");
                Err(reason.into())
            }
        }
    }
}
/// The `Authorization: Bearer` token. A header in another scheme is not silently skipped for
/// the cookie: it yields an empty token, which fails verification. Bytes, not text: checking a
/// ~500-byte header as text on every request cost as much as the token cache's lookup
/// (callgrind); only a token that misses the cache is read as text, and one that is not fails.
fn bearer(parts: &Parts) -> Option<&[u8]> {
    let value = parts.headers.get(AUTHORIZATION)?.as_bytes();
    Some(match value.split_at_checked(7) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") => token.trim_ascii(),
        _ => b"",
    })
}

/// The cookie `name`'s value, read as bytes: a SiS token's cookie is ~750 bytes, and checking
/// the whole header as text before splitting it cost a SiS cookie hit 8 % more CPU than a bearer
/// hit (bench/run.sh, 2026-12-02); splitting it at `;` a byte at a time still cost 6 %
/// (2026-12-04), so the separators are found with `memchr`.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a [u8]> {
    let name = name.as_bytes();
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .find_map(|header| cookie_in(header.as_bytes(), name))
}

/// The value of the first pair named `name` in one `Cookie` header, its quotes removed.
fn cookie_in<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut rest = header;
    loop {
        let (pair, next) = match memchr::memchr(b';', rest) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        if let Some(value) = pair
            .trim_ascii()
            .strip_prefix(name)
            .and_then(|v| v.strip_prefix(b"="))
        {
            return Some(
                value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value),
            );
        }
        rest = next?;
    }
}

#[cfg(test)]
mod tests {
    use super::cookie_in;

    #[test]
    fn a_cookie_is_found_by_its_whole_name_among_others() {
        let name = b"vagov_access_token";
        let find = |header: &str| {
            cookie_in(header.as_bytes(), name).map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(find("vagov_access_token=abc").as_deref(), Some("abc"));
        assert_eq!(
            find("a=1; vagov_access_token_old=x;  vagov_access_token=\"abc\" ;b=2").as_deref(),
            Some("abc"),
            "another cookie sharing its prefix is not it, and quotes and spaces go"
        );
        assert_eq!(find("a=1;vagov_access_token=;").as_deref(), Some(""));
        assert_eq!(find("a=1; b=2;"), None);
        assert_eq!(find(""), None);
        assert_eq!(find("vagov_access_token"), None, "a name without a value");
    }
}
