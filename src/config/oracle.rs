//! The Oracle Health upstream (UHD): where it is, its login, its deadline, the ownership
//! index's window and lifetimes, and the document limits.

use std::time::Duration;

use url::Url;

use super::parser::Parser;

/// Where OH summaries come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OhSource {
    /// `AVS_OH_UPSTREAM_URL=off`: the OH routes answer 404.
    Off,
    /// Unset: the embedded fixture upstream (development and test only).
    Embedded,
    Url {
        base: Url,
        login: Url,
    },
}

#[derive(Clone, Debug)]
pub struct OhSettings {
    pub source: OhSource,
    pub app_id: u64,
    pub app_token: Option<String>,
    pub api_key: Option<String>,
    pub token_ttl: Duration,
    pub timeout: Duration,
    pub lookback_days: u32,
    pub index_ttl: Duration,
    pub index_refresh_min: Duration,
    pub max_document_bytes: usize,
    pub doc_cache_max_bytes: u64,
}

impl OhSettings {
    pub(super) fn parse(p: &mut Parser<'_>, production: bool) -> OhSettings {
        let base = p.raw("AVS_OH_UPSTREAM_URL");
        let login = p.raw("AVS_OH_LOGIN_URL");
        let app_token = p.secret("AVS_OH_APP_TOKEN", "AVS_OH_APP_TOKEN_FILE");
        let source = match base {
            Some("off") => OhSource::Off,
            None => {
                if production {
                    p.problem("AVS_OH_UPSTREAM_URL", "is required in production: set the https:// base URL of UHD medical records, or `off` to run without Oracle Health summaries");
                }
                OhSource::Embedded
            }
            Some(raw) => {
                let base = p.http_url("AVS_OH_UPSTREAM_URL", raw, production);
                let login = match login {
                    Some(raw) => p.http_url("AVS_OH_LOGIN_URL", raw, production),
                    None => {
                        p.problem(
                            "AVS_OH_LOGIN_URL",
                            "is required with AVS_OH_UPSTREAM_URL: set the UHD security login URL",
                        );
                        None
                    }
                };
                if production && app_token.is_none() {
                    p.problem(
                        "AVS_OH_APP_TOKEN",
                        "is required in production with AVS_OH_UPSTREAM_URL: set it or AVS_OH_APP_TOKEN_FILE",
                    );
                }
                match (base, login) {
                    (Some(base), Some(login)) => OhSource::Url { base, login },
                    _ => OhSource::Off,
                }
            }
        };
        let lookback_days = p.count("AVS_OH_LOOKBACK_DAYS");
        if lookback_days > 731 {
            p.problem(
                "AVS_OH_LOOKBACK_DAYS",
                "must be at most 731 (the longest span a list may ask for)",
            );
        }
        OhSettings {
            source,
            app_id: p.parsed("AVS_OH_APP_ID", "a whole number").unwrap_or(1000),
            app_token,
            api_key: p.secret("AVS_OH_API_KEY", "AVS_OH_API_KEY_FILE"),
            token_ttl: p.positive_secs("AVS_OH_TOKEN_TTL_SECS"),
            timeout: p.millis("AVS_OH_TIMEOUT_MS"),
            lookback_days: lookback_days.min(731) as u32,
            index_ttl: p.positive_secs("AVS_OH_INDEX_TTL_SECS"),
            index_refresh_min: p.secs("AVS_OH_INDEX_REFRESH_MIN_SECS"),
            max_document_bytes: p.count("AVS_OH_MAX_DOCUMENT_BYTES"),
            doc_cache_max_bytes: p.bytes("AVS_OH_DOC_CACHE_MAX_BYTES"),
        }
    }
}
