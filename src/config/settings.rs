//! Every setting the service reads, declared once. Parsing takes its defaults from here, the
//! `--config` file's key check and the environment filter accept exactly these names, and
//! `check-config` prints one line for each (a unit test holds the parser to this table).

/// How `check-config` may show a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    Plain,
    /// Never printed: only whether it is set.
    Secret,
    /// A URL whose password (if any) is redacted.
    Url,
}

#[derive(Debug)]
pub struct Setting {
    pub name: &'static str,
    /// The value used when the variable is unset, in the variable's own syntax; `None` where
    /// unset means "none" or the default depends on other settings (said in `help`).
    pub default: Option<&'static str>,
    pub shown: Shown,
    pub help: &'static str,
}

const fn plain(name: &'static str, default: Option<&'static str>, help: &'static str) -> Setting {
    Setting {
        name,
        default,
        shown: Shown::Plain,
        help,
    }
}

const fn secret(name: &'static str, help: &'static str) -> Setting {
    Setting {
        name,
        default: None,
        shown: Shown::Secret,
        help,
    }
}

const fn url(name: &'static str, default: Option<&'static str>, help: &'static str) -> Setting {
    Setting {
        name,
        default,
        shown: Shown::Url,
        help,
    }
}

pub const SETTINGS: &[Setting] = &[
    plain("AVS_ENV", Some("development"), "development, test or production"),
    // Listeners and what one client may hold.
    plain("AVS_LISTEN", Some("127.0.0.1:8080"), "public API listener"),
    plain(
        "AVS_ADMIN_LISTEN",
        Some("127.0.0.1:9090"),
        "admin listener: metrics, toggle admin, rollout report",
    ),
    plain(
        "AVS_WORKER_THREADS",
        None,
        "threads serving requests (default: the CPUs the process may use)",
    ),
    plain(
        "AVS_HEADER_TIMEOUT_MS",
        Some("10000"),
        "a request's head must arrive within this, from its first byte",
    ),
    plain(
        "AVS_IDLE_TIMEOUT_SECS",
        Some("60"),
        "an idle keep-alive connection is closed after this",
    ),
    plain(
        "AVS_BODY_TIMEOUT_MS",
        Some("10000"),
        "a request body must arrive within this (408 otherwise)",
    ),
    plain(
        "AVS_MAX_CONNECTIONS",
        Some("10000"),
        "open connections per listener; past it new ones are closed at once",
    ),
    plain(
        "AVS_MAX_HEADER_BYTES",
        Some("16384"),
        "request line and headers together; past it 431",
    ),
    plain(
        "AVS_MAX_HEADERS",
        Some("100"),
        "header fields per request; past it 431",
    ),
    plain(
        "AVS_MAX_URI_BYTES",
        Some("8192"),
        "request target length; past it 414",
    ),
    plain(
        "AVS_REQUEST_TIMEOUT_MS",
        Some("25000"),
        "whole-request deadline (504); above both upstreams' timeouts",
    ),
    plain(
        "AVS_MAX_IN_FLIGHT",
        Some("1024"),
        "requests in flight (bodies read) before shedding with 503",
    ),
    plain(
        "AVS_MAX_IN_FLIGHT_PER_CALLER",
        Some("16"),
        "requests one caller (actor) may have in flight; past it 429",
    ),
    plain(
        "AVS_SHUTDOWN_GRACE_SECS",
        Some("30"),
        "how long shutdown waits for requests in flight",
    ),
    plain(
        "AVS_LINKS_DEADLINE_MS",
        Some("12000"),
        "a links batch answers by then; below the request timeout",
    ),
    plain(
        "AVS_LINKS_CONCURRENCY",
        Some("64"),
        "link lookups in flight across the service",
    ),
    // The clinical source.
    url(
        "AVS_UPSTREAM_URL",
        None,
        "base URL of the clinical source; unset: the embedded fixture upstream (not in production)",
    ),
    secret("AVS_UPSTREAM_TOKEN", "bearer token sent upstream"),
    plain("AVS_UPSTREAM_TOKEN_FILE", None, "file holding the upstream token"),
    url(
        "AVS_PROXY_URL",
        None,
        "forward proxy for every upstream call, or `direct`; required in production",
    ),
    plain("AVS_NO_PROXY", None, "comma list of hosts that bypass the proxy"),
    plain(
        "AVS_UPSTREAM_CA_FILE",
        None,
        "extra trusted root certificates (PEM)",
    ),
    plain(
        "AVS_UPSTREAM_CONNECT_TIMEOUT_MS",
        Some("2000"),
        "connecting to the upstream (or proxy)",
    ),
    plain(
        "AVS_UPSTREAM_TIMEOUT_MS",
        Some("10000"),
        "one whole upstream call",
    ),
    plain(
        "AVS_UPSTREAM_MAX_BODY_BYTES",
        Some("16777216"),
        "larger upstream answers are 502",
    ),
    plain("AVS_UPSTREAM_CONCURRENCY", Some("64"), "upstream calls in flight"),
    plain(
        "AVS_UPSTREAM_POOL_IDLE_SECS",
        Some("4"),
        "idle pooled upstream connections are closed after this; below the proxy's own idle timeout",
    ),
    plain(
        "AVS_BREAKER_WINDOW_SECS",
        Some("30"),
        "the rolling window over which upstream health is judged",
    ),
    plain(
        "AVS_BREAKER_MIN_CALLS",
        Some("20"),
        "upstream calls in the window before the breaker may open",
    ),
    plain(
        "AVS_BREAKER_FAILURE_PERCENT",
        Some("50"),
        "share of failed calls (timeouts, connection failures, 5xx) that opens it",
    ),
    plain(
        "AVS_BREAKER_MIN_KEYS",
        Some("10"),
        "distinct failing keys (sids, appointments) that opening needs",
    ),
    plain(
        "AVS_BREAKER_COOLDOWN_SECS",
        Some("10"),
        "how long an open breaker waits before one probe",
    ),
    // The Oracle Health upstream (UHD): shares AVS_PROXY_URL, AVS_NO_PROXY and the CA file.
    url(
        "AVS_OH_UPSTREAM_URL",
        None,
        "base URL of UHD medical records, or `off`; unset: the embedded fixture upstream (not in production)",
    ),
    url(
        "AVS_OH_LOGIN_URL",
        None,
        "the UHD security login; unset: the embedded fixture upstream's",
    ),
    plain("AVS_OH_APP_ID", Some("1000"), "appId sent with the login"),
    secret("AVS_OH_APP_TOKEN", "appToken sent with the login"),
    plain("AVS_OH_APP_TOKEN_FILE", None, "file holding the login's appToken"),
    secret("AVS_OH_API_KEY", "sent as x-api-key on data calls"),
    plain("AVS_OH_API_KEY_FILE", None, "file holding the x-api-key"),
    plain(
        "AVS_OH_TOKEN_TTL_SECS",
        Some("600"),
        "lifetime of a login token that is not a JWT",
    ),
    plain(
        "AVS_OH_TIMEOUT_MS",
        Some("20000"),
        "one OH data call; below the request timeout",
    ),
    plain(
        "AVS_OH_LOOKBACK_DAYS",
        Some("730"),
        "window of the ownership index (and default start of the list)",
    ),
    plain(
        "AVS_OH_INDEX_TTL_SECS",
        Some("600"),
        "lifetime of a caller's ownership index",
    ),
    plain(
        "AVS_OH_INDEX_REFRESH_MIN_SECS",
        Some("30"),
        "an unknown document refreshes a caller's index at most this often",
    ),
    plain(
        "AVS_OH_MAX_DOCUMENT_BYTES",
        Some("10485760"),
        "larger documents answer 502",
    ),
    plain(
        "AVS_OH_DOC_CACHE_MAX_BYTES",
        Some("67108864"),
        "byte budget of decoded documents, cached and loading; 0: no cache",
    ),
    // Callers: VA.gov's Sign-in Service (identity.md), or tokens that assert identity.
    plain(
        "AVS_IDENTITY",
        Some("sis"),
        "sis (VA.gov's Sign-in Service tokens, the user from vets-api) or claims (tokens assert icn/email)",
    ),
    url(
        "AVS_SIS_JWKS_URL",
        None,
        "vets-api's SiS keys (/sign_in/openid_connect/certs); unset: the embedded stand-in (not in production)",
    ),
    plain(
        "AVS_SIS_JWKS_FILE",
        None,
        "a static SiS key set (JWKS) instead of the URL",
    ),
    plain(
        "AVS_SIS_JWKS_REFRESH_SECS",
        Some("300"),
        "how often the SiS keys are re-fetched (and at most every 30 s on an unknown key)",
    ),
    plain(
        "AVS_SIS_ISSUER",
        Some("va.gov sign in"),
        "required `iss` of SiS tokens",
    ),
    plain(
        "AVS_SIS_USER_AUDIENCES",
        Some("vaweb,vamobile"),
        "a user token's `aud` must hold one of these",
    ),
    url(
        "AVS_SIS_USER_URL",
        None,
        "vets-api's GET /v0/user; unset: the embedded stand-in (not in production)",
    ),
    plain(
        "AVS_SIS_CA_FILE",
        None,
        "extra trusted roots (PEM) for vets-api (keys and users)",
    ),
    plain(
        "AVS_SIS_USER_TIMEOUT_MS",
        Some("2000"),
        "one vets-api user lookup, waiting for a slot included",
    ),
    plain(
        "AVS_SIS_USER_CONCURRENCY",
        Some("32"),
        "vets-api user lookups in flight",
    ),
    plain(
        "AVS_SIS_USER_TTL_SECS",
        Some("300"),
        "a session's user is re-read after this (at most 300): a logout is noticed within it",
    ),
    plain(
        "AVS_SIS_SERVICE_AUDIENCE",
        None,
        "`aud` of service-account tokens for avs-api; unset: service tokens refused",
    ),
    plain(
        "AVS_SIS_SERVICE_ACCOUNTS",
        None,
        "comma list of service_account_id values allowed",
    ),
    plain(
        "AVS_CORS_ORIGINS",
        None,
        "comma list of exact origins browsers may call from (never *)",
    ),
    plain(
        "AVS_JWT_PUBLIC_KEY_FILE",
        None,
        "verification keys (PEM); outside production the development key when neither is set",
    ),
    plain("AVS_JWKS_FILE", None, "verification keys (JWKS)"),
    plain("AVS_JWT_ISSUER", None, "required `iss`, when set"),
    plain("AVS_JWT_AUDIENCE", None, "required `aud`, when set"),
    plain(
        "AVS_AUTH_COOKIE",
        Some("vagov_access_token"),
        "cookie that may carry the token",
    ),
    // Toggles.
    url(
        "AVS_TOGGLES",
        Some(super::DEV_TOGGLES),
        "file:<path> or postgres://…",
    ),
    plain("AVS_TOGGLES_REFRESH_SECS", Some("5"), "PostgreSQL refresh period"),
    plain(
        "AVS_LINKS_TOGGLE",
        Some("va_online_scheduling_after_visit_summary"),
        "the links gate's second toggle, or `none` (avs_enabled alone decides)",
    ),
    plain(
        "AVS_TOGGLES_READ_ONLY",
        Some("false"),
        "refuse admin writes to PostgreSQL toggles",
    ),
    secret(
        "AVS_ADMIN_TOKEN",
        "bearer token for the admin API; unset: admin API off",
    ),
    // The rollout report.
    plain(
        "AVS_INSTANCE",
        None,
        "this replica's name in the fleet report (the pod name); unset: a random one",
    ),
    plain(
        "AVS_ROLLOUT_FLUSH_SECS",
        Some("5"),
        "how often a replica records the store's changes as stages, writes its report figures to PostgreSQL, and applies retention",
    ),
    plain(
        "AVS_ROLLOUT_PLAN",
        None,
        "the release plan, `file:<path>` (TOML, docs/spec/rollout-guard.md); unset: the release plan built in",
    ),
    plain(
        "AVS_ROLLOUT_AUTO_ROLLBACK",
        Some("false"),
        "`true`: a stage that enters hold narrows its toggle to the plan's stage before, once across the fleet; refused with AVS_TOGGLES_READ_ONLY=true",
    ),
    plain(
        "AVS_ROLLOUT_MAX_STAGES",
        Some("50"),
        "stages kept per toggle, in memory and in the tables",
    ),
    plain(
        "AVS_ROLLOUT_RETENTION_DAYS",
        Some("90"),
        "stages older than this are dropped (the current one never)",
    ),
    plain(
        "AVS_CLEANUP_DAYS",
        Some("14"),
        "a toggle fully on this long, with no rollback since, is ready to remove...",
    ),
    plain(
        "AVS_CLEANUP_MAX_ERROR_PERCENT",
        Some("1"),
        "...when its stage's error rate is under this",
    ),
    // The cache.
    plain(
        "AVS_CACHE_MAX_BYTES",
        Some("268435456"),
        "byte budget of the summary cache",
    ),
    plain(
        "AVS_CACHE_TTL_SECS",
        Some("600"),
        "lifetime of a cached summary or search",
    ),
    plain(
        "AVS_CACHE_NEGATIVE_TTL_SECS",
        Some("60"),
        "lifetime of a cached upstream 404 or empty search",
    ),
    plain(
        "AVS_CACHE_STALE_IF_ERROR_SECS",
        Some("3600"),
        "how long past expiry a summary may be served while the upstream fails",
    ),
    plain(
        "AVS_RENDER_WAIT_MS",
        Some("5000"),
        "a document request waits this long for a render turn, then 503 with Retry-After",
    ),
    // Telemetry.
    plain(
        "AVS_LOG_FORMAT",
        None,
        "json or pretty; json in production, pretty otherwise",
    ),
    plain("RUST_LOG", Some("info"), "log filter"),
    url(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        None,
        "OTLP/HTTP collector; unset: no trace export",
    ),
    plain(
        "OTEL_SERVICE_NAME",
        Some("avs-api"),
        "service name on exported spans",
    ),
];

/// The declaration of `name`, if it is a setting.
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}
