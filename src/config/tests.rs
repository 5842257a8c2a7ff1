//! The configuration parser held to the settings table, the production refusals and check-config.

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
    assert!(c.vista.url.is_none());
    assert_eq!(c.transport.proxy, ProxySetting::Unset);
    assert_eq!(c.listeners.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        c.toggles.source,
        SourceConfig::File("fixtures/toggles.toml".into())
    );
    assert_eq!(c.transport.max_body_bytes, 16_777_216);
    assert_eq!(c.listeners.worker_threads, None, "tokio's default: one per CPU");
}

#[test]
fn worker_threads_are_a_count_when_given() {
    let c = Config::from_vars(&vars(&[("AVS_WORKER_THREADS", "1")])).unwrap();
    assert_eq!(c.listeners.worker_threads, Some(1));
    let err = Config::from_vars(&vars(&[("AVS_WORKER_THREADS", "0")])).unwrap_err();
    assert!(
        err.to_string().contains("AVS_WORKER_THREADS: must be above 0"),
        "{err}"
    );
}

#[test]
fn production_refusals_name_their_variables() {
    // `sis`, the default: its keys (the user URL is judged once the keys are).
    let err = Config::from_vars(&vars(&[("AVS_ENV", "production")])).unwrap_err();
    let text = err.to_string();
    for name in [
        "AVS_UPSTREAM_URL",
        "AVS_PROXY_URL",
        "AVS_SIS_JWKS_URL",
        "AVS_TOGGLES",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} not named in:\n{text}"
        );
    }
    let err = Config::from_vars(&vars(&[("AVS_ENV", "production"), ("AVS_IDENTITY", "claims")])).unwrap_err();
    assert!(
        err.to_string()
            .lines()
            .any(|l| l.starts_with("AVS_JWT_PUBLIC_KEY_FILE")),
        "{err}"
    );
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
    let mut p = Parser::new(&vars);
    let config = Config::parse(&mut p).unwrap();
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
    let err = Config::from_vars(&vars(&[("AVS_UPSTREAM_TIMEOUT_MS", "30000")])).unwrap_err();
    assert!(err.to_string().starts_with("AVS_REQUEST_TIMEOUT_MS"));
    let err = Config::from_vars(&vars(&[("AVS_OH_TIMEOUT_MS", "30000")])).unwrap_err();
    assert!(err.to_string().starts_with("AVS_OH_TIMEOUT_MS"), "{err}");
}

#[test]
fn oracle_health_production_refusals_and_off() {
    let err = Config::from_vars(&vars(&[("AVS_ENV", "production")])).unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|l| l.starts_with("AVS_OH_UPSTREAM_URL: is required in production")),
        "{err}"
    );
    let err = Config::from_vars(&vars(&[
        ("AVS_ENV", "production"),
        ("AVS_OH_UPSTREAM_URL", "http://uhd.example/"),
    ]))
    .unwrap_err();
    let text = err.to_string();
    for refusal in [
        "AVS_OH_UPSTREAM_URL: must be an https:// URL in production",
        "AVS_OH_LOGIN_URL: is required",
        "AVS_OH_APP_TOKEN: is required in production",
    ] {
        assert!(text.contains(refusal), "{refusal} not in:\n{text}");
    }
    let off = Config::from_vars(&vars(&[("AVS_OH_UPSTREAM_URL", "off")])).unwrap();
    assert_eq!(off.oracle.source, OhSource::Off);
    let embedded = Config::from_vars(&Vars::new()).unwrap();
    assert_eq!(embedded.oracle.source, OhSource::Embedded);
    assert_eq!(embedded.oracle.timeout.as_millis(), 20_000);
    let text = Config::from_vars(&vars(&[("AVS_OH_APP_TOKEN", "uhd-secret-value")]))
        .unwrap()
        .describe();
    assert!(!text.contains("uhd-secret-value"), "{text}");
}

#[test]
fn production_sis_needs_its_keys_its_user_url_and_a_service_audience() {
    let base = [
        ("AVS_ENV", "production"),
        (
            "AVS_SIS_JWKS_URL",
            "https://api.va.example/sign_in/openid_connect/certs",
        ),
    ];
    let named = |extra: &[(&str, &str)], name: &str| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        let text = Config::from_vars(&vars(&pairs)).unwrap_err().to_string();
        text.lines().any(|l| l.starts_with(name))
    };
    assert!(named(&[], "AVS_SIS_USER_URL"), "unset");
    assert!(named(
        &[("AVS_SIS_USER_URL", "http://api.va.example/v0/user")],
        "AVS_SIS_USER_URL"
    ));
    assert!(!named(
        &[("AVS_SIS_USER_URL", "https://api.va.example/v0/user")],
        "AVS_SIS_USER_URL"
    ));
    assert!(named(
        &[
            ("AVS_SIS_USER_URL", "https://api.va.example/v0/user"),
            ("AVS_SIS_SERVICE_ACCOUNTS", "appointments")
        ],
        "AVS_SIS_SERVICE_AUDIENCE"
    ));
    assert!(named(
        &[("AVS_SIS_JWKS_URL", "http://api.va.example/certs")],
        "AVS_SIS_JWKS_URL"
    ));
    let dev_keys = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/dev-keys/sis-jwks.json");
    let mut pairs = vec![("AVS_ENV", "production"), ("AVS_SIS_JWKS_FILE", dev_keys)];
    pairs.push(("AVS_SIS_USER_URL", "https://api.va.example/v0/user"));
    let text = Config::from_vars(&vars(&pairs)).unwrap_err().to_string();
    assert!(
        text.contains("AVS_SIS_JWKS_FILE: holds the development key"),
        "{text}"
    );
    // A setting of the other mode is named, not ignored.
    let text = Config::from_vars(&vars(&[("AVS_JWT_ISSUER", "x")]))
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("AVS_JWT_ISSUER: is read only with AVS_IDENTITY=claims"),
        "{text}"
    );
    // An origin is an origin.
    for bad in [
        "*",
        "https://www.va.gov/",
        "https://www.va.gov/path",
        "www.va.gov",
    ] {
        let text = Config::from_vars(&vars(&[("AVS_CORS_ORIGINS", bad)]))
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("AVS_CORS_ORIGINS"), "{bad}: {text}");
    }
    assert!(
        Config::from_vars(&vars(&[(
            "AVS_CORS_ORIGINS",
            "https://www.va.gov, http://localhost:3001"
        )]))
        .is_ok()
    );
}
