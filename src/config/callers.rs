//! Callers: who issues their tokens (VA.gov's Sign-in Service, or an issuer that asserts
//! identity in its own claims), the keys, the vets-api user lookup, the cookie, CORS.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::keys::{KeySet, KeySource};
use super::parser::Parser;

/// The longest a session's user may be remembered (`identity.md`).
const MAX_USER_TTL: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub identity: IdentitySettings,
    pub cookie: String,
    /// Exact origins a browser may call from; empty: none.
    pub cors_origins: Vec<String>,
}

/// `AVS_IDENTITY`.
// One per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum IdentitySettings {
    /// VA.gov's Sign-in Service: tokens without identity, the user from vets-api.
    Sis(SisSettings),
    /// Tokens that assert `icn` and `email` themselves.
    Claims(ClaimsSettings),
}

#[derive(Clone, Debug)]
pub struct ClaimsSettings {
    pub keys: KeySet,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Where the SiS keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SisKeys {
    Url(Url),
    File(PathBuf),
    /// The embedded stand-in's (development only).
    Embedded,
}

#[derive(Clone, Debug)]
pub struct SisSettings {
    pub keys: SisKeys,
    pub refresh: Duration,
    pub issuer: String,
    pub user_audiences: Vec<String>,
    /// vets-api's `/v0/user`; `None`: the embedded stand-in's (development only).
    pub user_url: Option<Url>,
    /// Extra trusted roots for vets-api's certificate (an internal CA).
    pub ca_file: Option<PathBuf>,
    pub user_timeout: Duration,
    pub user_concurrency: usize,
    pub user_ttl: Duration,
    pub service_audience: Option<String>,
    pub service_accounts: Vec<String>,
    /// Production: every key set that arrives is refused if it holds a development key.
    pub refuse_development_keys: bool,
}

/// The embedded stand-in's service account, accepted only when both the keys and the user
/// lookup are the stand-in's and none is configured (so `dev-token --service` works there).
pub const DEV_SERVICE_AUDIENCE: &str = "avs-api-dev";
pub const DEV_SERVICE_ACCOUNT: &str = "avs-api-dev-service";

/// Settings only one mode reads; set in the other, they would silently do nothing.
const CLAIMS_ONLY: &[&str] = &[
    "AVS_JWT_PUBLIC_KEY_FILE",
    "AVS_JWKS_FILE",
    "AVS_JWT_ISSUER",
    "AVS_JWT_AUDIENCE",
];
const SIS_ONLY: &[&str] = &[
    "AVS_SIS_JWKS_URL",
    "AVS_SIS_CA_FILE",
    "AVS_SIS_JWKS_FILE",
    "AVS_SIS_JWKS_REFRESH_SECS",
    "AVS_SIS_ISSUER",
    "AVS_SIS_USER_AUDIENCES",
    "AVS_SIS_USER_URL",
    "AVS_SIS_USER_TIMEOUT_MS",
    "AVS_SIS_USER_CONCURRENCY",
    "AVS_SIS_USER_TTL_SECS",
    "AVS_SIS_SERVICE_AUDIENCE",
    "AVS_SIS_SERVICE_ACCOUNTS",
];

/// A setting of the other mode that was given: a problem, not a silent no-op.
fn not_in_mode(p: &mut Parser<'_>, names: &[&str], mode: &str) {
    for name in names {
        if p.given(name) {
            p.problem(name, format!("is read only with AVS_IDENTITY={mode}"));
        }
    }
}

fn list(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl AuthConfig {
    /// `None` when the identity settings are unusable (a problem is then recorded).
    pub(super) fn parse(p: &mut Parser<'_>, production: bool) -> Option<AuthConfig> {
        let identity = match p.raw("AVS_IDENTITY").unwrap_or("sis") {
            "sis" => {
                not_in_mode(p, CLAIMS_ONLY, "claims");
                SisSettings::parse(p, production).map(IdentitySettings::Sis)
            }
            "claims" => {
                not_in_mode(p, SIS_ONLY, "sis");
                ClaimsSettings::parse(p, production).map(IdentitySettings::Claims)
            }
            other => {
                p.problem("AVS_IDENTITY", format!("{other:?} is not sis or claims"));
                None
            }
        };
        let cors_origins = list(p.raw("AVS_CORS_ORIGINS"));
        for origin in &cors_origins {
            let valid = Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.has_host()
                    && u.path() == "/"
                    && u.origin().ascii_serialization() == *origin
            });
            if !valid {
                p.problem(
                    "AVS_CORS_ORIGINS",
                    format!("{origin:?} is not an origin (scheme://host[:port], no path; never *)"),
                );
            } else if production && origin.starts_with("http://") {
                // A page served over plain HTTP can be rewritten in transit, and it would
                // then call with the veteran's cookie.
                p.problem(
                    "AVS_CORS_ORIGINS",
                    format!("{origin:?} is http://, which production refuses: list https:// origins only"),
                );
            }
        }
        Some(AuthConfig {
            identity: identity?,
            cookie: p.raw("AVS_AUTH_COOKIE").unwrap_or_default().to_owned(),
            cors_origins,
        })
    }
}

impl ClaimsSettings {
    fn parse(p: &mut Parser<'_>, production: bool) -> Option<ClaimsSettings> {
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
        Some(ClaimsSettings {
            keys,
            issuer: p.raw("AVS_JWT_ISSUER").map(str::to_owned),
            audience: p.raw("AVS_JWT_AUDIENCE").map(str::to_owned),
        })
    }
}

impl SisSettings {
    fn parse(p: &mut Parser<'_>, production: bool) -> Option<SisSettings> {
        let keys = match (p.raw("AVS_SIS_JWKS_URL"), p.raw("AVS_SIS_JWKS_FILE")) {
            (Some(_), Some(_)) => {
                p.problem("AVS_SIS_JWKS_FILE", "set this or AVS_SIS_JWKS_URL, not both");
                return None;
            }
            (Some(raw), None) => SisKeys::Url(p.http_url("AVS_SIS_JWKS_URL", raw, production)?),
            (None, Some(path)) => {
                let path = PathBuf::from(path);
                match KeySet::load(&KeySource::JwksFile(path.clone())) {
                    Ok(set) if production && set.contains_development_key() => {
                        p.problem(
                            "AVS_SIS_JWKS_FILE",
                            "holds the development key, which production refuses",
                        );
                        return None;
                    }
                    Ok(_) => SisKeys::File(path),
                    Err(e) => {
                        p.problem("AVS_SIS_JWKS_FILE", e);
                        return None;
                    }
                }
            }
            (None, None) if production => {
                p.problem(
                    "AVS_SIS_JWKS_URL",
                    "production needs the Sign-in Service keys: set AVS_SIS_JWKS_URL (https) or AVS_SIS_JWKS_FILE",
                );
                return None;
            }
            (None, None) => SisKeys::Embedded,
        };
        let user_url = match p.raw("AVS_SIS_USER_URL") {
            Some(raw) => Some(p.http_url("AVS_SIS_USER_URL", raw, production)?),
            None if production => {
                p.problem(
                    "AVS_SIS_USER_URL",
                    "production needs vets-api's user lookup: set AVS_SIS_USER_URL (https, vets-api's /v0/user)",
                );
                return None;
            }
            None => None,
        };
        let ca_file = p.readable_file("AVS_SIS_CA_FILE");
        let user_ttl = p.positive_secs("AVS_SIS_USER_TTL_SECS");
        if user_ttl > MAX_USER_TTL {
            p.problem("AVS_SIS_USER_TTL_SECS", "must be at most 300");
        }
        let mut service_audience = p.raw("AVS_SIS_SERVICE_AUDIENCE").map(str::to_owned);
        let mut service_accounts = list(p.raw("AVS_SIS_SERVICE_ACCOUNTS"));
        if !service_accounts.is_empty() && service_audience.is_none() {
            p.problem(
                "AVS_SIS_SERVICE_AUDIENCE",
                "AVS_SIS_SERVICE_ACCOUNTS is set: name the audience of avs-api's service-account config too",
            );
        }
        let embedded = keys == SisKeys::Embedded && user_url.is_none();
        if embedded && service_audience.is_none() && service_accounts.is_empty() {
            service_audience = Some(DEV_SERVICE_AUDIENCE.to_owned());
            service_accounts = vec![DEV_SERVICE_ACCOUNT.to_owned()];
        }
        Some(SisSettings {
            keys,
            refresh: p.positive_secs("AVS_SIS_JWKS_REFRESH_SECS"),
            issuer: p.raw("AVS_SIS_ISSUER").unwrap_or_default().to_owned(),
            user_audiences: list(p.raw("AVS_SIS_USER_AUDIENCES")),
            user_url,
            ca_file,
            user_timeout: p.millis("AVS_SIS_USER_TIMEOUT_MS"),
            user_concurrency: p.count("AVS_SIS_USER_CONCURRENCY"),
            user_ttl: user_ttl.min(MAX_USER_TTL),
            service_audience,
            service_accounts,
            refuse_development_keys: production,
        })
    }
}

impl IdentitySettings {
    /// Whether the embedded SiS stand-in has to run (keys or user lookup unset, development).
    pub fn needs_standin(&self) -> bool {
        matches!(self, IdentitySettings::Sis(s) if s.keys == SisKeys::Embedded || s.user_url.is_none())
    }

    /// Whether callers would be verified by the development identity: the embedded stand-in
    /// (`sis` without its keys or user lookup) or a development key (`claims`).
    pub fn is_development(&self) -> bool {
        match self {
            IdentitySettings::Sis(_) => self.needs_standin(),
            IdentitySettings::Claims(c) => c.keys.contains_development_key(),
        }
    }

    /// For `check-config`.
    pub fn describe(&self) -> String {
        match self {
            IdentitySettings::Claims(c) => format!("claims, {}", c.keys.describe()),
            IdentitySettings::Sis(s) => {
                let keys = match &s.keys {
                    SisKeys::Url(u) => u.to_string(),
                    SisKeys::File(f) => f.display().to_string(),
                    SisKeys::Embedded => "the embedded stand-in".to_owned(),
                };
                let user = s
                    .user_url
                    .as_ref()
                    .map_or("the embedded stand-in".to_owned(), Url::to_string);
                format!("sis, keys from {keys}, users from {user}")
            }
        }
    }
}
