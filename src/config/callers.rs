//! Callers: the keys their tokens are verified with, the claims required, the cookie.

use std::path::PathBuf;

use super::parser::Parser;
use crate::identity::{KeySet, KeySource};

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub keys: KeySet,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub cookie: String,
}

impl AuthConfig {
    /// `None` when no usable keys are configured (a problem is then recorded).
    pub(super) fn parse(p: &mut Parser<'_>, production: bool) -> Option<AuthConfig> {
        let source = match (p.raw("AVS_JWT_PUBLIC_KEY_FILE"), p.raw("AVS_JWKS_FILE")) {
            (Some(_), Some(_)) => {
                p.problem("AVS_JWKS_FILE", "set this or AVS_JWT_PUBLIC_KEY_FILE, not both");
                return None;
            }
            (Some(path), None) => KeySource::PemFile(PathBuf::from(path)),
            (None, Some(path)) => KeySource::JwksFile(PathBuf::from(path)),
            (None, None) if production => {
                p.problem("AVS_JWT_PUBLIC_KEY_FILE", "production needs JWT verification keys: set AVS_JWT_PUBLIC_KEY_FILE (PEM) or AVS_JWKS_FILE (JWKS)");
                return None;
            }
            (None, None) => KeySource::Development,
        };
        let variable = match source {
            KeySource::JwksFile(_) => "AVS_JWKS_FILE",
            _ => "AVS_JWT_PUBLIC_KEY_FILE",
        };
        let keys = match KeySet::load(&source) {
            Ok(keys) => keys,
            Err(e) => {
                p.problem(variable, e);
                return None;
            }
        };
        if production && keys.contains_development_key() {
            p.problem(
                variable,
                "holds the development key, which production refuses: configure the real signing keys",
            );
            return None;
        }
        Some(AuthConfig {
            keys,
            issuer: p.raw("AVS_JWT_ISSUER").map(str::to_owned),
            audience: p.raw("AVS_JWT_AUDIENCE").map(str::to_owned),
            cookie: p.raw("AVS_AUTH_COOKIE").unwrap_or_default().to_owned(),
        })
    }
}
