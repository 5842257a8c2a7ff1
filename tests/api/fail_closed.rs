//! Fail closed (#35, `identity.md` "The development keys never verify outside development"):
//! production refuses both development keys by key material in every key set it loads, from a
//! URL or a file, at start and at every refresh; the defaults refuse a real source or a public
//! listener beside the development identity; one unusable key does not take a set down; and
//! a session's lookup shares only the user it found, keyed by the pair.
//!
//! Production wants https everywhere, so the production instances here reach their stand-ins
//! through a TLS front (nginx, with a throwaway CA the service is told to trust).

use std::time::Duration;

use axum::body::Body;
use serde_json::json;

use crate::support::*;

const OWNER: &str = "5d1e7c0a-0000-4000-8000-00000000f001";
const STRANGER: &str = "5d1e7c0a-0000-4000-8000-00000000f002";

/// A production configuration whose vets-api and VistA stand-ins are behind `tls`.
fn production(
    tls: &TlsFront,
    toggles: &std::path::Path,
    keys: (&'static str, String),
) -> Vec<(&'static str, String)> {
    let ca = tls.ca.display().to_string();
    vec![
        ("AVS_ENV", "production".into()),
        ("AVS_IDENTITY", "sis".into()),
        keys,
        ("AVS_SIS_USER_URL", tls.url("/sis/v0/user")),
        ("AVS_SIS_CA_FILE", ca.clone()),
        ("AVS_SIS_JWKS_REFRESH_SECS", "1".into()),
        ("AVS_SIS_SERVICE_AUDIENCE", SERVICE_AUDIENCE.into()),
        ("AVS_SIS_SERVICE_ACCOUNTS", SERVICE_ACCOUNT.into()),
        ("AVS_UPSTREAM_URL", tls.url("/up/")),
        ("AVS_UPSTREAM_CA_FILE", ca),
        ("AVS_UPSTREAM_TOKEN", "upstream-secret-value".into()),
        ("AVS_PROXY_URL", "direct".into()),
        ("AVS_OH_UPSTREAM_URL", "off".into()),
        ("AVS_TOGGLES", format!("file:{}", toggles.display())),
    ]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn status_of(server: &Server, path: &str, token: &str) -> u16 {
    client()
        .get(format!("http://{}{path}", server.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn ready(server: &Server) -> u16 {
    client()
        .get(format!("http://{}/readyz", server.addr))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// What a caller signed with `key` gets for the owner's summary: a user token of a new
/// session (so it is verified, not remembered) and a service token.
async fn answers(server: &Server, key: SisKey) -> (u16, u16) {
    let summary = format!("/avs/v0/avs/{FULL_SID}");
    let user = sis_token(key, &sis_user_claims(OWNER, &uuid::Uuid::new_v4().to_string()));
    let service = sis_token(
        key,
        &sis_service_claims(DEV_ICN, "owner@example.com", &[&summary]),
    );
    (
        status_of(server, &summary, &user).await,
        status_of(server, &summary, &service).await,
    )
}

fn logged(server: &Server, text: &str) -> bool {
    server.logs.lock().unwrap().iter().any(|l| l.contains(text))
}

const REFUSED: &str = "a Sign-in Service key set holding a development key was refused";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_the_development_keys_from_a_url_a_replaced_file_and_re_encoded() {
    let sis = FakeSis::start().await;
    sis.user(OWNER, Some("owner@example.com"), Some(DEV_ICN)).user(
        STRANGER,
        Some("stranger@example.com"),
        Some(OTHER_ICN),
    );
    sis.publish(&[SisKey::Current]);
    let upstream = FakeUpstream::start().await;
    upstream.summary(&fixture("full"));
    let Some(tls) = TlsFront::start(&[("/sis/", sis.addr), ("/up/", upstream.addr)]) else {
        return;
    };
    let dir = temp_dir();
    let toggles = dir.path().join("toggles.toml");
    std::fs::write(&toggles, TOGGLES_ON).unwrap();

    // From the URL: the production key verifies; neither development key ever does.
    let env = production(
        &tls,
        &toggles,
        ("AVS_SIS_JWKS_URL", tls.url("/sis/sign_in/openid_connect/certs")),
    );
    let server = serve(&pairs(&env)).await;
    within(Duration::from_secs(10), async || ready(&server).await == 200).await;
    assert_eq!(answers(&server, SisKey::Current).await, (200, 200));
    for dev in [SisKey::Old, SisKey::DevOld] {
        assert_eq!(answers(&server, dev).await, (401, 401), "{dev:?}");
    }
    // A refresh that brings a development key, as it is or re-encoded (same modulus and
    // exponent, other text), is refused: not ready, the last good set still verifies, and the
    // development keys still do not.
    // (Both as they are arrive in the replaced file below.)
    for published in [
        [SisKey::Current, SisKey::OldPadded],
        [SisKey::Current, SisKey::DevOld],
    ] {
        sis.publish(&published);
        within(Duration::from_secs(10), async || ready(&server).await == 503).await;
        assert_eq!(
            answers(&server, SisKey::Current).await,
            (200, 200),
            "{published:?}"
        );
        for dev in [SisKey::Old, SisKey::DevOld] {
            assert_eq!(answers(&server, dev).await, (401, 401), "{published:?}: {dev:?}");
        }
        sis.publish(&[SisKey::Current]);
        within(Duration::from_secs(10), async || ready(&server).await == 200).await;
    }
    assert!(logged(&server, REFUSED), "the refusal is logged as an error");
    drop(server);

    // A set that holds a development key from the start: never ready, and no token verifies.
    sis.publish(&[SisKey::Current, SisKey::OldPadded]);
    let fetches = sis.jwks_fetches();
    let server = serve(&pairs(&env)).await;
    within(Duration::from_secs(10), async || sis.jwks_fetches() > fetches + 1).await;
    assert_eq!(ready(&server).await, 503);
    assert_eq!(answers(&server, SisKey::Old).await, (401, 401));
    assert!(logged(&server, REFUSED));
    drop(server);

    // From a mounted file swapped for the development set after start: refused on refresh.
    sis.publish(&[SisKey::Current]);
    let file = dir.path().join("sis-jwks.json");
    std::fs::write(&file, json!({"keys": [SisKey::Current.jwk()]}).to_string()).unwrap();
    let env = production(&tls, &toggles, ("AVS_SIS_JWKS_FILE", file.display().to_string()));
    let server = serve(&pairs(&env)).await;
    within(Duration::from_secs(10), async || ready(&server).await == 200).await;
    assert_eq!(answers(&server, SisKey::Current).await, (200, 200));
    let replaced = dir.path().join("sis-jwks.json.new");
    std::fs::copy(repo("fixtures/dev-keys/sis-jwks.json"), &replaced).unwrap();
    std::fs::rename(&replaced, &file).unwrap(); // as a Secret's mount is swapped
    within(Duration::from_secs(10), async || ready(&server).await == 503).await;
    assert_eq!(answers(&server, SisKey::Current).await, (200, 200));
    assert_eq!(answers(&server, SisKey::Old).await, (401, 401));
    assert_eq!(answers(&server, SisKey::DevOld).await, (401, 401));
}

/// At start, a development key in a key file is a configuration error in either mode, by
/// material: the PEM re-encoded as `BEGIN RSA PUBLIC KEY`, the second ("old") development key,
/// and a JWKS whose modulus is padded (#37 item 8: the refusals through the binary in `sis` mode
/// too).
#[tokio::test]
async fn production_refuses_a_development_key_file_at_start_in_either_mode() {
    let dir = temp_dir();
    let toggles = dir.path().join("toggles.toml");
    std::fs::write(&toggles, TOGGLES_ON).unwrap();
    let padded = dir.path().join("padded.json");
    std::fs::write(
        &padded,
        json!({"keys": [SisKey::Current.jwk(), SisKey::OldPadded.jwk()]}).to_string(),
    )
    .unwrap();
    let base = |identity: &str| -> Vec<(String, String)> {
        [
            ("AVS_ENV", "production"),
            ("AVS_IDENTITY", identity),
            ("AVS_UPSTREAM_URL", "https://clinical.example/"),
            ("AVS_PROXY_URL", "http://proxy.example:3128"),
            ("AVS_OH_UPSTREAM_URL", "off"),
            ("AVS_UPSTREAM_TOKEN", "upstream-secret-value"),
            ("AVS_SIS_USER_URL", "https://api.va.example/v0/user"),
        ]
        .into_iter()
        .filter(|(k, _)| identity == "sis" || *k != "AVS_SIS_USER_URL")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain([("AVS_TOGGLES".to_owned(), format!("file:{}", toggles.display()))])
        .collect()
    };
    let cases = [
        (
            "claims",
            "AVS_JWT_PUBLIC_KEY_FILE",
            repo("tests/keys/dev-rs256.pkcs1.pem"),
        ),
        (
            "claims",
            "AVS_JWT_PUBLIC_KEY_FILE",
            repo("fixtures/dev-keys/dev-old-rs256.pub.pem"),
        ),
        ("claims", "AVS_JWKS_FILE", padded.clone()),
        ("sis", "AVS_SIS_JWKS_FILE", padded.clone()),
        (
            "sis",
            "AVS_SIS_JWKS_FILE",
            repo("fixtures/dev-keys/sis-jwks.json"),
        ),
    ];
    // The same settings with the production keys pass, so each refusal is the key's.
    for (identity, variable, good) in [
        (
            "claims",
            "AVS_JWT_PUBLIC_KEY_FILE",
            repo("tests/keys/rsa.pub.pem"),
        ),
        ("sis", "AVS_SIS_JWKS_FILE", repo("tests/keys/jwks.json")),
    ] {
        let mut env = base(identity);
        env.push((variable.to_owned(), good.display().to_string()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, _, stderr) = run(&["check-config"], &env).await;
        assert_eq!(code, 0, "{identity} with the production key: {stderr}");
    }
    for (identity, variable, file) in cases {
        let mut env = base(identity);
        env.push((variable.to_owned(), file.display().to_string()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for args in [&["check-config"][..], &["serve"][..]] {
            let (code, _, stderr) = run(args, &env).await;
            assert_eq!(code, 2, "{identity} {variable}={}: {stderr}", file.display());
            assert!(
                stderr
                    .lines()
                    .any(|l| l.starts_with(&format!("{variable}: ")) && l.contains("development key")),
                "{variable} not named: {stderr}"
            );
        }
    }
}

/// The development identity is the default only beside the embedded fixture sources, on
/// loopback; anything else needs `AVS_ENV` said explicitly.
#[tokio::test]
async fn the_defaults_refuse_a_real_source_or_a_public_listener_beside_the_development_identity() {
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("AVS_UPSTREAM_URL", "http://127.0.0.1:9/")], "AVS_UPSTREAM_URL"),
        (
            &[
                ("AVS_OH_UPSTREAM_URL", "http://127.0.0.1:9/"),
                ("AVS_OH_LOGIN_URL", "http://127.0.0.1:9/login"),
                ("AVS_OH_APP_TOKEN", "x"),
            ],
            "AVS_OH_UPSTREAM_URL",
        ),
        (&[("AVS_LISTEN", "0.0.0.0:0")], "AVS_LISTEN"),
        (
            &[
                ("AVS_IDENTITY", "claims"),
                ("AVS_UPSTREAM_URL", "http://127.0.0.1:9/"),
            ],
            "AVS_UPSTREAM_URL",
        ),
        (
            &[("AVS_IDENTITY", "claims"), ("AVS_LISTEN", "0.0.0.0:0")],
            "AVS_LISTEN",
        ),
    ];
    for (env, variable) in cases {
        for args in [&["check-config"][..], &["serve"][..]] {
            let (code, _, stderr) = run(args, env).await;
            assert_eq!(code, 2, "{args:?} {env:?}: {stderr}");
            assert!(
                stderr
                    .lines()
                    .any(|l| l.starts_with(&format!("{variable}: ")) && l.contains("development identity")),
                "{variable} not named: {stderr}"
            );
        }
        // Said explicitly, the same is allowed (a developer's own choice).
        for said in ["development", "test"] {
            let mut env = env.to_vec();
            env.push(("AVS_ENV", said));
            let (code, _, stderr) = run(&["check-config"], &env).await;
            assert_eq!(code, 0, "AVS_ENV={said} {env:?}: {stderr}");
        }
    }
    // With its identity settings a real source needs no such word.
    let (code, _, stderr) = run(
        &["check-config"],
        &[
            ("AVS_UPSTREAM_URL", "http://127.0.0.1:9/"),
            ("AVS_IDENTITY", "claims"),
            (
                "AVS_JWKS_FILE",
                &repo("tests/keys/jwks.json").display().to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    // And the embedded default itself still runs: loopback, fixture sources.
    let (code, _, stderr) = run(&["check-config"], &[]).await;
    assert_eq!(code, 0, "{stderr}");
    // The image says production, so it refuses to run without its settings.
    let image = std::fs::read_to_string(repo("Containerfile")).unwrap();
    assert!(
        image.lines().any(|l| l.trim() == "ENV AVS_ENV=production"),
        "the image sets AVS_ENV=production"
    );
    // Production refuses plain-HTTP CORS origins.
    let (code, _, stderr) = run(
        &["check-config"],
        &[
            ("AVS_ENV", "production"),
            ("AVS_CORS_ORIGINS", "https://www.va.gov, http://www.va.gov"),
        ],
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("AVS_CORS_ORIGINS: \"http://www.va.gov\" is http://")),
        "{stderr}"
    );
    assert!(!stderr.contains("\"https://www.va.gov\""), "{stderr}");
}

/// Both breakers' gauge series exist from the start, before either source is called.
#[tokio::test]
async fn both_breaker_series_are_published_from_the_start() {
    let server = serve(&[]).await;
    let text = metrics_text(&server).await;
    for source in ["vista", "oracle"] {
        let series = format!("avs_upstream_breaker_open{{source=\"{source}\"}} 0");
        assert!(text.lines().any(|l| l == series), "{series} not in:\n{text}");
    }
}

async fn sis_app(published: &[SisKey]) -> (TestApp, FakeSis) {
    let sis = FakeSis::start().await;
    sis.publish(published);
    sis.user(OWNER, Some("owner@example.com"), Some(DEV_ICN)).user(
        STRANGER,
        Some("stranger@example.com"),
        Some(OTHER_ICN),
    );
    let mut env = sis.env();
    env.push(("AVS_CORS_ORIGINS", "https://www.va.test".to_owned()));
    let app = TestApp::builder().envs(&env).start().await;
    app.upstream.summary(&fixture("full"));
    (app, sis)
}

#[tokio::test]
async fn one_unusable_key_is_skipped_and_the_rest_of_the_set_verifies() {
    let (app, _sis) = sis_app(&[SisKey::BadEc, SisKey::UnknownKty, SisKey::Current]).await;
    assert!(
        app.state.identity.ready(),
        "the set loads without its unusable keys"
    );
    let token = sis_token(SisKey::Current, &sis_user_claims(OWNER, "s-1"));
    let r = app.get(&format!("/avs/v0/avs/{FULL_SID}"), &token).await;
    assert_eq!(r.status, 200, "{}", r.json);
    // With nothing usable left, the set fails: never ready.
    let (app, _sis) = sis_app(&[SisKey::BadEc, SisKey::UnknownKty]).await;
    assert!(!app.state.identity.ready());
    let r = app.get(&format!("/avs/v0/avs/{FULL_SID}"), &token).await;
    assert_eq!(r.status, 401, "{}", r.json);
}

/// vets-api refuses the first token of a session (expired there, within this service's
/// leeway) while a second, valid token of the same session waits on that lookup: the second
/// asks again with its own token and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_about_one_token_is_never_handed_to_another_token_of_the_session() {
    let (app, sis) = sis_app(&[SisKey::Current]).await;
    sis.answer(UserAnswer::Slow(Duration::from_millis(300)));
    let summary = format!("/avs/v0/avs/{FULL_SID}");
    let mut expired = sis_user_claims(OWNER, "shared-session");
    expired["exp"] = json!(now() - 2); // past, but within the 5 s leeway
    let expired = sis_token(SisKey::Current, &expired);
    let valid = sis_token(SisKey::Current, &sis_user_claims(OWNER, "shared-session"));
    let first = {
        let (state, summary, expired) = (app.state.clone(), summary.clone(), expired.clone());
        tokio::spawn(async move { bearer(state, &summary, &expired).await })
    };
    within(Duration::from_secs(5), async || sis.user_calls() == 1).await;
    let second = bearer(app.state.clone(), &summary, &valid).await;
    let first = first.await.unwrap();
    assert_eq!(first.0, 403, "the expired token: {}", first.1);
    assert_eq!(first.1, avs_api::identity::EXPIRED_BODY);
    assert_eq!(second.0, 200, "the valid token of the same session: {}", second.1);
    assert_eq!(sis.user_calls(), 2, "the second asked with its own token");
}

async fn bearer(state: avs_api::AppState, uri: &str, token: &str) -> (u16, String) {
    use tower::ServiceExt;
    let request = get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = avs_api::app(state).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `sub + "\0" + session_handle` would give `("a\0b", "c")` and `("a", "b\0c")` one entry:
/// the second user would be served the first one's identity.
#[tokio::test]
async fn sessions_are_keyed_by_the_pair_so_no_two_share_an_entry() {
    let (app, sis) = sis_app(&[SisKey::Current]).await;
    let (first, second) = ("5d1e7c0a\u{0}x", "5d1e7c0a");
    sis.user(first, Some("first@example.com"), Some(DEV_ICN)).user(
        second,
        Some("second@example.com"),
        Some(OTHER_ICN),
    );
    let summary = format!("/avs/v0/avs/{FULL_SID}");
    let owner = sis_token(SisKey::Current, &sis_user_claims(first, "h"));
    assert_eq!(app.get(&summary, &owner).await.status, 200);
    let calls = sis.user_calls();
    let other = sis_token(SisKey::Current, &sis_user_claims(second, "x\u{0}h"));
    app.get(&summary, &other)
        .await
        .assert_not_yours("User may not view this AVS.");
    assert_eq!(sis.user_calls(), calls + 1, "its own lookup");
}

/// Once an origin is listed every answer varies by `Origin`: a listed origin's, an unlisted
/// one's, one without `Origin`, errors and a refused preflight alike.
#[tokio::test]
async fn every_answer_of_a_cors_route_varies_by_origin() {
    let (app, _sis) = sis_app(&[SisKey::Current]).await;
    let token = sis_token(SisKey::Current, &sis_user_claims(OWNER, "s-vary"));
    let summary = format!("/avs/v0/avs/{FULL_SID}");
    let varies = |headers: &axum::http::HeaderMap| {
        headers.get_all("vary").iter().any(|v| {
            v.to_str()
                .unwrap()
                .split(',')
                .any(|h| h.trim().eq_ignore_ascii_case("origin"))
        })
    };
    for origin in [Some("https://www.va.test"), Some("https://elsewhere.test"), None] {
        for (uri, token) in [
            (summary.as_str(), Some(&token)),
            (summary.as_str(), None),
            ("/nowhere", None),
        ] {
            let mut request = get(uri);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let r = app.send_raw(request.body(Body::empty()).unwrap()).await;
            assert!(
                varies(&r.headers),
                "{origin:?} {uri} {}: {:?}",
                r.status,
                r.headers
            );
        }
    }
    let refused = app
        .send_raw(
            axum::http::Request::builder()
                .method("OPTIONS")
                .uri(&summary)
                .header("origin", "https://elsewhere.test")
                .header("access-control-request-method", "GET")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(varies(&refused.headers), "{:?}", refused.headers);
    // Without any origin listed nothing changes: no Vary is added.
    let plain = TestApp::start().await;
    plain.upstream.summary(&fixture("full"));
    let r = plain
        .send_raw(
            get(&summary)
                .header("authorization", format!("Bearer {}", owner_token()))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(!varies(&r.headers));
}
