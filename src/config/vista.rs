//! The VistA source: where it is, its token, and its deadline for one call.

use std::time::Duration;

use url::Url;

use super::parser::Parser;

#[derive(Clone, Debug)]
pub struct VistaSettings {
    /// `None`: the embedded fixture upstream (development and test only).
    pub url: Option<Url>,
    pub token: Option<String>,
    pub timeout: Duration,
}

impl VistaSettings {
    pub(super) fn parse(p: &mut Parser<'_>, production: bool) -> VistaSettings {
        let url = match p.raw("AVS_UPSTREAM_URL") {
            None => {
                if production {
                    p.problem("AVS_UPSTREAM_URL", "is required in production: set the https:// base URL of the clinical source (the embedded fixture upstream is for development only)");
                }
                None
            }
            Some(raw) => p.http_url("AVS_UPSTREAM_URL", raw, production),
        };
        VistaSettings {
            url,
            token: p.secret("AVS_UPSTREAM_TOKEN", "AVS_UPSTREAM_TOKEN_FILE"),
            timeout: p.millis("AVS_UPSTREAM_TIMEOUT_MS"),
        }
    }
}
