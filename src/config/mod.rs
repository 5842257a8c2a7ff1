//! Configuration: the only module that reads the environment.
//!
//! Values come from an optional TOML file (`--config`, keys are the variable names without the
//! `AVS_` prefix, in lowercase: `upstream_url = "https://…"`), overridden by the environment.
//! Everything is validated at once and every problem is reported, one line each.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::identity::{KeySet, KeySource};
use crate::toggles::SourceConfig;

mod settings;
pub use settings::{SETTINGS, Setting, Shown};

/// The development default toggle file; production refuses it.
pub const DEV_TOGGLES: &str = "file:fixtures/toggles.toml";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }
}

/// How upstream calls reach the clinical source. There is no "whatever the environment says".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxySetting {
    /// Not configured: direct, allowed outside production only.
    Unset,
    /// `AVS_PROXY_URL=direct`: the environment needs no proxy, declared on purpose.
    Direct,
    Via(Url),
}

#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// `None`: the embedded fixture upstream (development and test only).
    pub url: Option<Url>,
    pub token: Option<String>,
    pub proxy: ProxySetting,
    pub no_proxy: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_body_bytes: usize,
    /// Upstream calls in flight at most.
    pub concurrency: usize,
    /// Idle pooled connections are closed after this: below the forward proxy's own idle
    /// timeout, so a connection the proxy already closed is rarely picked.
    pub pool_idle: Duration,
    pub breaker: BreakerPolicy,
}

/// When the upstream circuit opens: judged on the upstream's health over a rolling window,
/// never on what one caller asks for (see the README's "Circuit breaker").
#[derive(Clone, Copy, Debug)]
pub struct BreakerPolicy {
    pub window: Duration,
    pub min_calls: u32,
    pub failure_percent: u32,
    pub min_keys: usize,
    pub cooldown: Duration,
}

/// What one client connection may hold, per listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub keys: KeySet,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub cookie: String,
}

#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub max_bytes: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub stale_if_error: Duration,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub env: Environment,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub connections: ConnectionLimits,
    /// The whole-request deadline; always above the upstream timeout.
    pub request_timeout: Duration,
    /// Requests in flight at most; past it the service sheds load with 503 + Retry-After.
    pub max_in_flight: usize,
    /// Requests one caller may have in flight; past it 429.
    pub max_in_flight_per_caller: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// The whole links batch answers by then; below the request timeout.
    pub links_deadline: Duration,
    /// Link lookups in flight across the service.
    pub links_concurrency: usize,
    pub upstream: UpstreamConfig,
    pub auth: AuthConfig,
    pub toggles: SourceConfig,
    pub toggles_refresh: Duration,
    pub admin_token: Option<String>,
    pub rollout: crate::rollout::RolloutSettings,
    pub cache: CacheConfig,
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// The values as given (file layered under the environment), for `check-config`.
    raw: Vars,
}

/// Raw values by variable name, before validation.
pub type Vars = BTreeMap<String, String>;

/// The problems found, one line each, every line naming its variable.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl Config {
    /// Reads the process environment (and the `--config` file under it) and validates.
    pub fn from_env(config_file: Option<&Path>) -> Result<Config, ConfigErrors> {
        let env = std::env::vars().filter(|(k, _)| is_known(k));
        let mut vars = match config_file {
            Some(path) => read_file_layer(path).map_err(|e| ConfigErrors(vec![e]))?,
            None => Vars::new(),
        };
        vars.extend(env);
        Config::from_vars(&vars)
    }

    /// Validates raw values. Tests build their configuration through this too.
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigErrors> {
        let mut p = Parser {
            vars,
            problems: Vec::new(),
            read: Default::default(),
        };
        let config = p.config();
        match config {
            Some(config) if p.problems.is_empty() => Ok(config),
            _ => Err(ConfigErrors(p.problems)),
        }
    }

    /// Every setting with its value (or its default), secrets redacted, for `check-config`:
    /// one line per entry of the settings table, in its order.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for setting in SETTINGS {
            let value = match (self.raw.get(setting.name), setting.default) {
                (Some(raw), _) => shown(setting, raw),
                (None, Some(default)) => format!("{} (default)", shown(setting, default)),
                (None, None) => "unset".to_owned(),
            };
            let _ = writeln!(out, "{} = {value}", setting.name);
        }
        let _ = writeln!(out, "# JWT keys: {}", self.auth.keys.describe());
        let _ = writeln!(out, "# toggles: {}", describe_toggles(&self.toggles));
        out
    }
}

/// A value as `check-config` may print it.
fn shown(setting: &Setting, raw: &str) -> String {
    match setting.shown {
        Shown::Plain => raw.to_owned(),
        Shown::Secret => "[redacted]".to_owned(),
        Shown::Url => match Url::parse(raw) {
            Ok(url) => redact_url(&url),
            Err(_) => raw.to_owned(),
        },
    }
}

fn describe_toggles(source: &SourceConfig) -> String {
    match source {
        SourceConfig::File(p) => format!("file:{}", p.display()),
        SourceConfig::Postgres { url, read_only } => {
            let url = Url::parse(url).map_or("postgres://[unparsable]".into(), |u| redact_url(&u));
            if *read_only {
                format!("{url} (read-only)")
            } else {
                url
            }
        }
        SourceConfig::Memory => "memory".to_owned(),
    }
}

fn is_known(name: &str) -> bool {
    settings::setting(name).is_some()
}

fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("[redacted]"));
    }
    url.to_string()
}

/// The `--config` TOML: a flat table keyed by variable names without `AVS_`, in lowercase.
fn read_file_layer(path: &Path) -> Result<Vars, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("--config {}: {}", path.display(), e.message()))?;
    let mut vars = Vars::new();
    for (key, value) in table {
        let name = match key.as_str() {
            "rust_log" => "RUST_LOG".to_owned(),
            k if k.starts_with("otel_") => k.to_uppercase(),
            k => format!("AVS_{}", k.to_uppercase()),
        };
        if !is_known(&name) {
            return Err(format!("--config {}: unknown key `{key}`", path.display()));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => value.to_string(),
            _ => {
                return Err(format!(
                    "--config {}: `{key}` must be a string or a number",
                    path.display()
                ));
            }
        };
        vars.insert(name, value);
    }
    Ok(vars)
}

struct Parser<'a> {
    vars: &'a Vars,
    problems: Vec<String>,
    /// Every name read, so a test can hold the parser to the settings table.
    read: std::cell::RefCell<std::collections::BTreeSet<&'static str>>,
}

impl<'a> Parser<'a> {
    /// The value given for `name`, else its default from the settings table.
    fn raw(&self, name: &str) -> Option<&'a str> {
        let Some(setting) = settings::setting(name) else {
            debug_assert!(false, "{name} is not in the settings table");
            return None;
        };
        self.read.borrow_mut().insert(setting.name);
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .or(setting.default)
    }

    fn problem(&mut self, name: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{name}: {what}"));
    }

    /// The setting parsed (its table default when unset); `None` when it has no value, or
    /// a bad one, which is then a problem.
    fn parsed<T: std::str::FromStr>(&mut self, name: &str, what: &str) -> Option<T> {
        let raw = self.raw(name)?;
        let value = raw.parse().ok();
        if value.is_none() {
            self.problem(name, format!("{raw:?} is not {what}"));
        }
        value
    }

    /// A whole number of at least 1.
    fn count(&mut self, name: &str) -> usize {
        let n: usize = self.parsed(name, "a whole number").unwrap_or(1);
        if n == 0 {
            self.problem(name, "must be above 0");
        }
        n.max(1)
    }

    fn millis(&mut self, name: &str) -> Duration {
        let ms: u64 = self.parsed(name, "a whole number of milliseconds").unwrap_or(1);
        if ms == 0 {
            self.problem(name, "must be above 0");
        }
        Duration::from_millis(ms)
    }

    fn secs(&mut self, name: &str) -> Duration {
        Duration::from_secs(self.parsed(name, "a whole number of seconds").unwrap_or(1))
    }

    fn address(&mut self, name: &str) -> SocketAddr {
        self.parsed(name, "a socket address")
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn config(&mut self) -> Option<Config> {
        let env = match self.raw("AVS_ENV").unwrap_or_default() {
            "development" => Environment::Development,
            "test" => Environment::Test,
            "production" => Environment::Production,
            other => {
                self.problem(
                    "AVS_ENV",
                    format!("{other:?} is not development, test or production"),
                );
                Environment::Production // judge the rest by the strictest rules
            }
        };
        let production = env == Environment::Production;
        let listen = self.address("AVS_LISTEN");
        let admin_listen = self.address("AVS_ADMIN_LISTEN");
        let connections = ConnectionLimits {
            header_timeout: self.millis("AVS_HEADER_TIMEOUT_MS"),
            idle_timeout: self.secs("AVS_IDLE_TIMEOUT_SECS"),
            body_timeout: self.millis("AVS_BODY_TIMEOUT_MS"),
            max_connections: self.count("AVS_MAX_CONNECTIONS"),
            max_header_bytes: self.count("AVS_MAX_HEADER_BYTES"),
            max_headers: self.count("AVS_MAX_HEADERS"),
            max_uri_bytes: self.count("AVS_MAX_URI_BYTES"),
        };
        if connections.idle_timeout.is_zero() {
            self.problem("AVS_IDLE_TIMEOUT_SECS", "must be above 0");
        }
        let upstream = self.upstream(production);
        let request_timeout = self.millis("AVS_REQUEST_TIMEOUT_MS");
        let max_in_flight = self.count("AVS_MAX_IN_FLIGHT");
        let max_in_flight_per_caller = self.count("AVS_MAX_IN_FLIGHT_PER_CALLER");
        let shutdown_grace = self.secs("AVS_SHUTDOWN_GRACE_SECS");
        let links_deadline = self.millis("AVS_LINKS_DEADLINE_MS");
        if links_deadline >= request_timeout {
            self.problem(
                "AVS_LINKS_DEADLINE_MS",
                "must be below AVS_REQUEST_TIMEOUT_MS so a slow batch still answers 200",
            );
        }
        let links_concurrency = self.count("AVS_LINKS_CONCURRENCY");
        if request_timeout <= upstream.timeout {
            self.problem(
                "AVS_REQUEST_TIMEOUT_MS",
                "must be above AVS_UPSTREAM_TIMEOUT_MS so an upstream timeout is answered, not cut off",
            );
        }
        let auth = self.auth(production);
        let toggles = self.toggles(production);
        let toggles_refresh = self.secs("AVS_TOGGLES_REFRESH_SECS");
        if toggles_refresh.is_zero() {
            self.problem("AVS_TOGGLES_REFRESH_SECS", "must be above 0");
        }
        let admin_token = self.raw("AVS_ADMIN_TOKEN").map(str::to_owned);
        if production && admin_token.as_ref().is_some_and(|t| t.len() < 32) {
            self.problem("AVS_ADMIN_TOKEN", "must be at least 32 characters in production");
        }
        let rollout = crate::rollout::RolloutSettings {
            instance: self
                .raw("AVS_INSTANCE")
                .map_or_else(|| format!("avs-{:08x}", fastrand::u32(..)), str::to_owned),
            flush: self.secs("AVS_ROLLOUT_FLUSH_SECS").max(Duration::from_secs(1)),
            max_stages: self.count("AVS_ROLLOUT_MAX_STAGES"),
            retention_days: self
                .parsed("AVS_ROLLOUT_RETENTION_DAYS", "a whole number of days")
                .unwrap_or(90),
            cleanup_days: self
                .parsed("AVS_CLEANUP_DAYS", "a whole number of days")
                .unwrap_or(14),
            cleanup_max_error_percent: self
                .parsed("AVS_CLEANUP_MAX_ERROR_PERCENT", "a number of percent")
                .unwrap_or(1.0),
        };
        let cache = CacheConfig {
            max_bytes: self
                .parsed("AVS_CACHE_MAX_BYTES", "a whole number of bytes")
                .unwrap_or_default(),
            ttl: self.secs("AVS_CACHE_TTL_SECS"),
            negative_ttl: self.secs("AVS_CACHE_NEGATIVE_TTL_SECS"),
            stale_if_error: self.secs("AVS_CACHE_STALE_IF_ERROR_SECS"),
        };
        let log_format = match self.raw("AVS_LOG_FORMAT") {
            None if production => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                self.problem("AVS_LOG_FORMAT", format!("{other:?} is not json or pretty"));
                LogFormat::Json
            }
        };
        Some(Config {
            env,
            listen,
            admin_listen,
            connections,
            request_timeout,
            max_in_flight,
            max_in_flight_per_caller,
            shutdown_grace,
            links_deadline,
            links_concurrency,
            upstream,
            auth: auth?,
            toggles,
            toggles_refresh,
            admin_token,
            rollout,
            cache,
            otlp_endpoint: self.raw("OTEL_EXPORTER_OTLP_ENDPOINT").map(str::to_owned),
            service_name: self.raw("OTEL_SERVICE_NAME").unwrap_or_default().to_owned(),
            log_filter: self.raw("RUST_LOG").unwrap_or_default().to_owned(),
            log_format,
            raw: self.vars.clone(),
        })
    }

    fn upstream(&mut self, production: bool) -> UpstreamConfig {
        let url = match self.raw("AVS_UPSTREAM_URL") {
            None => {
                if production {
                    self.problem("AVS_UPSTREAM_URL", "is required in production: set the https:// base URL of the clinical source (the embedded fixture upstream is for development only)");
                }
                None
            }
            Some(raw) => match Url::parse(raw) {
                Ok(url) if production && url.scheme() != "https" => {
                    self.problem("AVS_UPSTREAM_URL", "must be an https:// URL in production");
                    None
                }
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
                _ => {
                    self.problem("AVS_UPSTREAM_URL", format!("{raw:?} is not an http(s) URL"));
                    None
                }
            },
        };
        let proxy = match self.raw("AVS_PROXY_URL") {
            None => {
                if production {
                    self.problem("AVS_PROXY_URL", "is required in production: set the forward proxy (http://host:port), or `direct` to declare that this environment needs none");
                }
                ProxySetting::Unset
            }
            Some("direct") => ProxySetting::Direct,
            Some(raw) => match Url::parse(raw) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                    ProxySetting::Via(url)
                }
                _ => {
                    self.problem("AVS_PROXY_URL", "is not an http://host:port URL or `direct`");
                    ProxySetting::Unset
                }
            },
        };
        let token = match (
            self.raw("AVS_UPSTREAM_TOKEN"),
            self.raw("AVS_UPSTREAM_TOKEN_FILE"),
        ) {
            (Some(_), Some(_)) => {
                self.problem(
                    "AVS_UPSTREAM_TOKEN_FILE",
                    "set this or AVS_UPSTREAM_TOKEN, not both",
                );
                None
            }
            (Some(token), None) => Some(token.to_owned()),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text.trim().to_owned()),
                Err(e) => {
                    self.problem("AVS_UPSTREAM_TOKEN_FILE", format!("cannot read {path}: {e}"));
                    None
                }
            },
            (None, None) => None,
        };
        let ca_file = self.raw("AVS_UPSTREAM_CA_FILE").map(PathBuf::from);
        if let Some(path) = &ca_file
            && !path.is_file()
        {
            self.problem(
                "AVS_UPSTREAM_CA_FILE",
                format!("{} is not a readable file", path.display()),
            );
        }
        let max_body_bytes = self
            .parsed("AVS_UPSTREAM_MAX_BODY_BYTES", "a whole number of bytes")
            .unwrap_or_default();
        UpstreamConfig {
            url,
            token,
            proxy,
            no_proxy: self.raw("AVS_NO_PROXY").map(str::to_owned),
            ca_file,
            connect_timeout: self.millis("AVS_UPSTREAM_CONNECT_TIMEOUT_MS"),
            timeout: self.millis("AVS_UPSTREAM_TIMEOUT_MS"),
            max_body_bytes,
            concurrency: self.count("AVS_UPSTREAM_CONCURRENCY"),
            pool_idle: self.secs("AVS_UPSTREAM_POOL_IDLE_SECS"),
            breaker: self.breaker(),
        }
    }

    fn breaker(&mut self) -> BreakerPolicy {
        let failure_percent: u32 = self
            .parsed("AVS_BREAKER_FAILURE_PERCENT", "a whole number of percent")
            .unwrap_or(50);
        if !(1..=100).contains(&failure_percent) {
            self.problem("AVS_BREAKER_FAILURE_PERCENT", "must be 1 to 100");
        }
        let window = self.secs("AVS_BREAKER_WINDOW_SECS");
        if window.is_zero() {
            self.problem("AVS_BREAKER_WINDOW_SECS", "must be above 0");
        }
        BreakerPolicy {
            window,
            min_calls: self.count("AVS_BREAKER_MIN_CALLS") as u32,
            failure_percent,
            min_keys: self.count("AVS_BREAKER_MIN_KEYS"),
            cooldown: self.secs("AVS_BREAKER_COOLDOWN_SECS"),
        }
    }

    fn auth(&mut self, production: bool) -> Option<AuthConfig> {
        let source = match (self.raw("AVS_JWT_PUBLIC_KEY_FILE"), self.raw("AVS_JWKS_FILE")) {
            (Some(_), Some(_)) => {
                self.problem("AVS_JWKS_FILE", "set this or AVS_JWT_PUBLIC_KEY_FILE, not both");
                return None;
            }
            (Some(path), None) => KeySource::PemFile(PathBuf::from(path)),
            (None, Some(path)) => KeySource::JwksFile(PathBuf::from(path)),
            (None, None) if production => {
                self.problem("AVS_JWT_PUBLIC_KEY_FILE", "production needs JWT verification keys: set AVS_JWT_PUBLIC_KEY_FILE (PEM) or AVS_JWKS_FILE (JWKS)");
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
                self.problem(variable, e);
                return None;
            }
        };
        if production && keys.contains_development_key() {
            self.problem(
                variable,
                "holds the development key, which production refuses: configure the real signing keys",
            );
            return None;
        }
        Some(AuthConfig {
            keys,
            issuer: self.raw("AVS_JWT_ISSUER").map(str::to_owned),
            audience: self.raw("AVS_JWT_AUDIENCE").map(str::to_owned),
            cookie: self.raw("AVS_AUTH_COOKIE").unwrap_or_default().to_owned(),
        })
    }

    fn toggles(&mut self, production: bool) -> SourceConfig {
        let raw = self.raw("AVS_TOGGLES").unwrap_or(DEV_TOGGLES);
        if production && raw == DEV_TOGGLES {
            self.problem(
                "AVS_TOGGLES",
                "production refuses the development toggle file: set file:<path> or postgres://…",
            );
        }
        let read_only = match self.raw("AVS_TOGGLES_READ_ONLY") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                self.problem("AVS_TOGGLES_READ_ONLY", format!("{other:?} is not true or false"));
                false
            }
        };
        if let Some(path) = raw.strip_prefix("file:") {
            SourceConfig::File(PathBuf::from(path))
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            if let Err(e) = raw.parse::<tokio_postgres::Config>() {
                self.problem("AVS_TOGGLES", format!("not a usable postgres URL: {e}"));
            }
            SourceConfig::Postgres {
                url: raw.to_owned(),
                read_only,
            }
        } else {
            self.problem("AVS_TOGGLES", "must be file:<path> or postgres://…");
            SourceConfig::File(PathBuf::from("fixtures/toggles.toml"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_environment_is_the_embedded_default() {
        let c = Config::from_vars(&Vars::new()).unwrap();
        assert_eq!(c.env, Environment::Development);
        assert!(c.upstream.url.is_none());
        assert_eq!(c.upstream.proxy, ProxySetting::Unset);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.toggles, SourceConfig::File("fixtures/toggles.toml".into()));
        assert_eq!(c.upstream.max_body_bytes, 16_777_216);
    }

    #[test]
    fn production_refusals_name_their_variables() {
        let err = Config::from_vars(&vars(&[("AVS_ENV", "production")])).unwrap_err();
        let text = err.to_string();
        for name in [
            "AVS_UPSTREAM_URL",
            "AVS_PROXY_URL",
            "AVS_JWT_PUBLIC_KEY_FILE",
            "AVS_TOGGLES",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} not named in:\n{text}"
            );
        }
        let err = Config::from_vars(&vars(&[
            ("AVS_ENV", "production"),
            ("AVS_UPSTREAM_URL", "http://x.example"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("AVS_UPSTREAM_URL: must be an https:// URL")
        );
    }

    #[test]
    fn bad_values_are_each_reported() {
        let err = Config::from_vars(&vars(&[
            ("AVS_LISTEN", "nowhere"),
            ("AVS_UPSTREAM_TIMEOUT_MS", "soon"),
            ("AVS_PROXY_URL", "socks5://x"),
            ("AVS_TOGGLES", "redis://x"),
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
    }

    /// The settings table is the one list: the parser reads exactly its names, the file layer
    /// accepts them, and `check-config` prints one line for each.
    #[test]
    fn every_setting_is_parsed_checked_and_printed() {
        let table: std::collections::BTreeSet<&str> = SETTINGS.iter().map(|s| s.name).collect();
        assert_eq!(table.len(), SETTINGS.len(), "a setting is declared twice");
        let vars = Vars::new();
        let mut p = Parser {
            vars: &vars,
            problems: Vec::new(),
            read: Default::default(),
        };
        let config = p.config().unwrap();
        assert_eq!(*p.read.borrow(), table, "the parser and the table disagree");
        let described = config.describe();
        let printed: std::collections::BTreeSet<&str> = described
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(" = ").next())
            .collect();
        assert_eq!(printed, table, "check-config and the table disagree");
        for name in &table {
            assert!(is_known(name), "{name} refused by the file layer");
        }
    }

    #[test]
    fn check_config_redacts_secrets_and_url_passwords() {
        let c = Config::from_vars(&vars(&[
            ("AVS_UPSTREAM_TOKEN", "very-secret-upstream"),
            ("AVS_ADMIN_TOKEN", "very-secret-admin"),
            ("AVS_PROXY_URL", "http://user:proxy-pass@proxy.example:3128"),
        ]))
        .unwrap();
        let text = c.describe();
        for secret in ["very-secret-upstream", "very-secret-admin", "proxy-pass"] {
            assert!(!text.contains(secret), "{secret} printed:\n{text}");
        }
        assert!(text.contains("AVS_ADMIN_TOKEN = [redacted]"), "{text}");
        assert!(text.contains("AVS_MAX_CONNECTIONS = 10000 (default)"), "{text}");
    }

    #[test]
    fn request_timeout_must_exceed_upstream_timeout() {
        let err = Config::from_vars(&vars(&[("AVS_UPSTREAM_TIMEOUT_MS", "20000")])).unwrap_err();
        assert!(err.to_string().starts_with("AVS_REQUEST_TIMEOUT_MS"));
    }
}
