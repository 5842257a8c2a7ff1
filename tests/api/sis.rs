//! Real VA.gov callers (`identity.md`): Sign-in Service user tokens without identity, the user
//! from vets-api (a stand-in on loopback), service tokens, CORS, and the links toggle setting.

use std::time::Duration;

use axum::body::Body;
use axum::http::Method;
use serde_json::{Value, json};

use crate::flipper::{flipper_available, ruby_json};
use crate::support::*;

const OWNER: &str = "5d1e7c0a-0000-4000-8000-000000000001";
const OTHER: &str = "5d1e7c0a-0000-4000-8000-000000000002";
const NO_ICN: &str = "5d1e7c0a-0000-4000-8000-000000000003";
const NO_EMAIL: &str = "5d1e7c0a-0000-4000-8000-000000000004";
const PAGE: &str = "https://www.va.test";

async fn sis_app(toggles: &str, extra: &[(&'static str, &str)]) -> (TestApp, FakeSis) {
    let sis = FakeSis::start().await;
    sis.user(OWNER, Some("Owner.Patient@Example.COM"), Some(DEV_ICN))
        .user(OTHER, Some("other.patient@example.org"), Some(OTHER_ICN))
        .user(NO_ICN, Some("no.icn@example.com"), None)
        .user(NO_EMAIL, None, Some(DEV_ICN));
    let mut env = sis.env();
    env.push(("AVS_CORS_ORIGINS", PAGE.to_owned()));
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let app = TestApp::builder().toggles(toggles).envs(&env).start().await;
    app.upstream.summary(&fixture("full"));
    (app, sis)
}

fn by_cookie(uri: &str, token: &str) -> axum::http::Request<Body> {
    get(uri)
        .header("cookie", format!("vagov_access_token={token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_sis_user_is_who_vets_api_says_on_every_route() {
    let toggles = format!("{TOGGLES_ON}{OH_ON}");
    let (app, sis) = sis_app(&toggles, &[]).await;
    let summary = format!("/avs/v0/avs/{FULL_SID}");
    // An icn or email claim in a SiS token is never read: the owner is vets-api's answer.
    let mut claims = sis_user_claims(OWNER, "session-1");
    claims["icn"] = json!(OTHER_ICN);
    claims["email"] = json!("someone.else@example.org");
    let owner = sis_token(SisKey::Current, &claims);
    let r = app.send(by_cookie(&summary, &owner)).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json, read_json("tests/peer/frontend-fixture.json"));
    assert_eq!(
        app.get(&summary, &owner).await.status,
        200,
        "bearer too (the mobile app)"
    );

    app.get(&summary, &sis_user_token(OTHER))
        .await
        .assert_not_yours("User may not view this AVS.");
    let no_icn = sis_user_token(NO_ICN);
    app.get(&summary, &no_icn)
        .await
        .assert_not_yours("User may not view this AVS.");
    let r = app.get("/avs/v0/oh/summaries", &no_icn).await;
    assert_eq!(r.status, 403, "{}", r.json);
    assert_eq!(
        app.upstream.calls("/oh/"),
        0,
        "no upstream call without a patient"
    );
    let r = app
        .post_json(
            "/avs/v0/avs/links",
            &owner,
            r#"{"appointments":[{"stationNo":"500","appointmentIen":"1000"}]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    // The forwarded lookup: the token as vets-api's cookie, no key inflection, the request id.
    let seen = sis.user_requests();
    assert!(seen.iter().all(
        |h| h["cookie"].to_str().unwrap().starts_with("vagov_access_token=")
            && !h.contains_key("x-key-inflection")
            && h.contains_key("x-request-id")
            && !h.contains_key("authorization")
    ));
}

/// Ruby Flipper's decisions (memory adapter) for these actors at `pct`.
fn ruby_flipper_enabled(feature: &str, pct: u32, actors: &[String]) -> Vec<bool> {
    let script = r#"require 'json'; require 'flipper'; require 'flipper/adapters/memory'
input = JSON.parse($stdin.read)
f = Flipper.new(Flipper::Adapters::Memory.new)[input['feature']]
f.enable_percentage_of_actors(input['pct'])
A = Struct.new(:flipper_id)
puts JSON.generate(input['actors'].map { |a| f.enabled?(A.new(a)) })"#;
    let input = json!({"feature": feature, "pct": pct, "actors": actors});
    serde_json::from_value(ruby_json(&["-e", script], &[], &input)).unwrap()
}

#[tokio::test]
async fn the_gate_buckets_a_sis_user_by_vets_apis_flipper_id_as_ruby_flipper_does() {
    if !flipper_available() {
        return;
    }
    let toggles = "[features.avs_enabled]\npercentage_of_actors = 50\n";
    let (app, sis) = sis_app(toggles, &[]).await;
    // Mixed-case e-mails (the actor is their Ruby `downcase`), and a user without one (the
    // account uuid).
    let mut users: Vec<(String, Option<String>)> = (0..12)
        .map(|i| {
            (
                format!("5d1e7c0a-0000-4000-8000-1000000000{i:02}"),
                Some(format!("Rollout.User{i}@Example.COM")),
            )
        })
        .collect();
    users.push((NO_EMAIL.to_owned(), None));
    let actors: Vec<String> = users
        .iter()
        .map(|(uuid, email)| email.as_ref().map_or(uuid.clone(), |e| e.to_lowercase()))
        .collect();
    let ruby = ruby_flipper_enabled("avs_enabled", 50, &actors);
    assert!(
        ruby.contains(&true) && ruby.contains(&false),
        "the sample straddles 50 %: {ruby:?}"
    );
    for ((uuid, email), in_ruby) in users.iter().zip(&ruby) {
        sis.user(uuid, email.as_deref(), Some(DEV_ICN));
        let status = app
            .get(&format!("/avs/v0/avs/{FULL_SID}"), &sis_user_token(uuid))
            .await
            .status;
        assert_eq!(status == 200, *in_ruby, "{email:?} / {uuid}: {status}");
    }
}

#[tokio::test]
async fn sis_keys_old_rotated_unknown_and_every_refused_claim() {
    let (app, sis) = sis_app(TOGGLES_ON, &[]).await;
    let uri = format!("/avs/v0/avs/{FULL_SID}");
    let claims = sis_user_claims(OWNER, "keys-session");
    assert_eq!(
        app.get(&uri, &sis_token(SisKey::Old, &claims)).await.status,
        200,
        "old key"
    );
    assert_eq!(sis.jwks_fetches(), 1);

    // A rotation: the new key is published, and its first token re-fetches the keys at once.
    sis.publish(&[SisKey::Stranger, SisKey::Current]);
    assert_eq!(
        app.get(&uri, &sis_token(SisKey::Stranger, &claims)).await.status,
        200,
        "rotated key"
    );
    assert_eq!(sis.jwks_fetches(), 2);
    // A key nobody publishes: 401, and at most one re-fetch per 30 s however many such tokens.
    sis.publish(&[SisKey::Current]);
    let signed_by_old = sis_token(SisKey::Old, &sis_user_claims(OWNER, "another-session"));
    app.get(&uri, &signed_by_old)
        .await
        .assert_error(401, "Not authorized", "Not authorized");
    app.get(&uri, &signed_by_old)
        .await
        .assert_error(401, "Not authorized", "Not authorized");
    assert_eq!(sis.jwks_fetches(), 2, "no re-fetch within 30 s of the last");

    let refused = |mutate: &dyn Fn(&mut Value)| {
        let mut c = sis_user_claims(OWNER, "refused-session");
        mutate(&mut c);
        sis_token(SisKey::Current, &c)
    };
    for (why, token) in [
        ("wrong iss", refused(&|c| c["iss"] = json!("someone else"))),
        (
            "aud without an allowed client",
            refused(&|c| c["aud"] = json!(["vaweb-other"])),
        ),
        (
            "aud as a string, not allowed",
            refused(&|c| c["aud"] = json!("nobody")),
        ),
        (
            "no session_handle",
            refused(&|c| {
                c.as_object_mut()
                    .unwrap()
                    .remove("session_handle")
                    .map(|_| ())
                    .unwrap_or(())
            }),
        ),
        ("empty sub", refused(&|c| c["sub"] = json!(""))),
        ("ES256", es256(&sis_user_claims(OWNER, "s"))),
        (
            "HS256 with the public key",
            hs256_with_public_key(&sis_user_claims(OWNER, "s")),
        ),
        ("alg none", alg_none(&sis_user_claims(OWNER, "s"))),
    ] {
        let r = app.get(&uri, &token).await;
        assert_eq!(r.status, 401, "{why}: {}", r.json);
    }
    // An array aud with one allowed client passes.
    assert_eq!(
        app.get(&uri, &refused(&|c| c["aud"] = json!(["x", "vamobile"])))
            .await
            .status,
        200
    );

    // Expired: vets-api's exact 403, which the page refreshes on.
    let expired = refused(&|c| c["exp"] = json!(now() - 60));
    let r = app.get(&uri, &expired).await;
    assert_eq!(r.status, 403);
    assert_eq!(&r.bytes[..], br#"{"errors":"Access token has expired"}"#);
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn one_vets_api_call_per_session_however_many_requests() {
    // One caller's 50 at once: above the per-caller bound, which is not what this measures.
    let (app, sis) = sis_app(TOGGLES_ON, &[("AVS_MAX_IN_FLIGHT_PER_CALLER", "64")]).await;
    let uri = format!("/avs/v0/avs/{FULL_SID}");
    let token = sis_user_token(OWNER);
    let first: Vec<_> = (0..50).map(|_| app.get(&uri, &token)).collect();
    for r in futures_util::future::join_all(first).await {
        assert_eq!(r.status, 200);
    }
    assert_eq!(sis.user_calls(), 1, "50 concurrent first requests");
    for _ in 0..1000 {
        assert_eq!(app.get(&uri, &token).await.status, 200);
    }
    assert_eq!(sis.user_calls(), 1, "and 1,000 more");
    // A refreshed access token of the same session: a signature check, no lookup.
    let mut claims = sis_user_claims(OWNER, "refreshed");
    let refreshed = sis_token(SisKey::Current, &claims);
    assert_eq!(app.get(&uri, &refreshed).await.status, 200);
    claims["iat"] = json!(now() + 1);
    assert_eq!(
        app.get(&uri, &sis_token(SisKey::Current, &claims)).await.status,
        200
    );
    assert_eq!(
        sis.user_calls(),
        2,
        "one for the new session, none for its second token"
    );
}

#[tokio::test]
async fn vets_api_failures_are_never_anyone() {
    let (app, sis) = sis_app(TOGGLES_ON, &[("AVS_SIS_USER_TIMEOUT_MS", "300")]).await;
    let uri = format!("/avs/v0/avs/{FULL_SID}");
    for (answer, status) in [
        (UserAnswer::Status(500, r#"{"errors":"boom"}"#), 503),
        (UserAnswer::Slow(std::time::Duration::from_secs(2)), 503),
        (
            UserAnswer::Status(200, r#"{"data":{"id":"","type":"user"}}"#),
            503,
        ),
        (
            UserAnswer::Status(401, r#"{"errors":"Invalid Session Handle"}"#),
            401,
        ),
        (
            UserAnswer::Status(403, r#"{"errors":"Access token has expired"}"#),
            403,
        ),
    ] {
        sis.answer(answer.clone());
        let r = app.get(&uri, &sis_user_token(OWNER)).await;
        assert_eq!(r.status.as_u16(), status, "{answer:?}: {}", r.json);
        if status == 503 {
            assert_eq!(r.error()["status"], "service_unavailable");
        }
        if status == 403 {
            assert_eq!(&r.bytes[..], br#"{"errors":"Access token has expired"}"#);
        }
    }
    // Failures are not remembered: vets-api back, the same token is served.
    sis.answer(UserAnswer::Normal);
    let token = sis_user_token(OWNER);
    sis.answer(UserAnswer::Status(502, "{}"));
    assert_eq!(app.get(&uri, &token).await.status, 503);
    sis.answer(UserAnswer::Normal);
    assert_eq!(app.get(&uri, &token).await.status, 200);

    // vets-api refusing connections.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut env = sis.env();
    env.retain(|(k, _)| *k != "AVS_SIS_USER_URL");
    env.push(("AVS_SIS_USER_URL", format!("http://{closed}/v0/user")));
    let refused = TestApp::builder().envs(&env).start().await;
    refused.upstream.summary(&fixture("full"));
    assert_eq!(refused.get(&uri, &sis_user_token(OWNER)).await.status, 503);
}

#[tokio::test]
async fn service_tokens_carry_the_patient_and_their_scopes() {
    let (app, _sis) = sis_app(TOGGLES_ON, &[("AVS_LINKS_TOGGLE", "none")]).await;
    let summary = format!("/avs/v0/avs/{FULL_SID}");
    let links = "/avs/v0/avs/links";
    let body = r#"{"appointments":[{"stationNo":"500","appointmentIen":"9876543"}]}"#;
    app.upstream.script(
        "/avs-by-appointment/500/9876543",
        Scripted::json(&json!([{"sid": FULL_SID, "icn": DEV_ICN}])),
    );
    let all = sis_token(
        SisKey::Current,
        &sis_service_claims(
            DEV_ICN,
            "owner.patient@example.com",
            &["http://vets-api.test/avs/v0"],
        ),
    );
    assert_eq!(app.get(&summary, &all).await.status, 200);
    let r = app.post_json(links, &all, body).await;
    assert!(
        r.json["data"][0]["path"].as_str().unwrap().ends_with(FULL_SID),
        "{}",
        r.json
    );

    let links_only = sis_token(
        SisKey::Current,
        &sis_service_claims(DEV_ICN, "x", &["http://vets-api.test/avs/v0/avs/links"]),
    );
    assert_eq!(app.post_json(links, &links_only, body).await.status, 200);
    let r = app.get(&summary, &links_only).await;
    assert_eq!(r.status, 403, "{}", r.json);
    assert_eq!(r.error()["status"], "forbidden");

    let mut unknown = sis_service_claims(DEV_ICN, "x", &["/avs/v0"]);
    unknown["service_account_id"] = json!("someone-else");
    app.get(&summary, &sis_token(SisKey::Current, &unknown))
        .await
        .assert_error(401, "Not authorized", "Not authorized");
    let mut other_aud = sis_service_claims(DEV_ICN, "x", &["/avs/v0"]);
    other_aud["aud"] = json!("another-api");
    assert_eq!(
        app.get(&summary, &sis_token(SisKey::Current, &other_aud))
            .await
            .status,
        401
    );
}

fn preflight(origin: &str, method: &str, headers: &str, path: &str) -> axum::http::Request<Body> {
    axum::http::Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_for_listed_origins_only_and_on_every_answer() {
    let (app, sis) = sis_app(TOGGLES_ON, &[]).await;
    let uri = format!("/avs/v0/avs/{FULL_SID}");
    let asked = "content-type,source-app-name,x-csrf-token,x-key-inflection";
    let r = app.send_raw(preflight(PAGE, "GET", asked, &uri)).await;
    assert_eq!(r.status, 204);
    let h = &r.headers;
    assert_eq!(h["access-control-allow-origin"], PAGE);
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-allow-methods"], "GET");
    assert_eq!(h["access-control-allow-headers"], asked);
    assert_eq!(h["access-control-max-age"], "600");
    assert_eq!(
        h["vary"],
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    );
    let r = app
        .send_raw(preflight(PAGE, "POST", "content-type", "/avs/v0/avs/links"))
        .await;
    assert_eq!(
        (r.status.as_u16(), &r.headers["access-control-allow-methods"]),
        (204, &"POST".parse().unwrap())
    );
    // Refused: another origin, a method the route lacks, a header not allowed.
    for request in [
        preflight("https://evil.test", "GET", "content-type", &uri),
        preflight(PAGE, "DELETE", "", &uri),
        preflight(PAGE, "GET", "x-secret", &uri),
        preflight(PAGE, "GET", "", "/nowhere"),
    ] {
        let r = app.send_raw(request).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.error()["status"], "forbidden");
        assert!(
            !r.headers.contains_key("access-control-allow-origin"),
            "{:?}",
            r.headers
        );
    }
    assert_eq!(sis.user_calls(), 0, "a preflight needs no credentials");
    assert_eq!(app.upstream.hits(), 0, "and reaches no upstream");

    // Every answer to a listed origin carries the headers, errors included; never `*`.
    let expired = sis_token(SisKey::Current, &{
        let mut c = sis_user_claims(OWNER, "x");
        c["exp"] = json!(now() - 60);
        c
    });
    let from_page = |token: Option<&str>, origin: &str| {
        let mut b = get(&uri).header("origin", origin);
        if let Some(t) = token {
            b = b.header("cookie", format!("vagov_access_token={t}"));
        }
        b.body(Body::empty()).unwrap()
    };
    for (token, status) in [
        (Some(sis_user_token(OWNER)), 200),
        (None, 401),
        (Some(expired), 403),
    ] {
        let r = app.send(from_page(token.as_deref(), PAGE)).await;
        assert_eq!(r.status.as_u16(), status);
        assert_eq!(r.headers["access-control-allow-origin"], PAGE);
        assert_eq!(r.headers["access-control-allow-credentials"], "true");
        assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));
        assert_eq!(
            r.headers["access-control-expose-headers"],
            "X-Request-Id, Content-Disposition, ETag, Content-Range, Accept-Ranges"
        );
        let r = app.send(from_page(token.as_deref(), "https://evil.test")).await;
        assert!(!r.headers.contains_key("access-control-allow-origin"));
    }
    // And on every other answer a page can meet: 404, not yours, an upstream failure (5xx),
    // and one caller's excess (429).
    let listed = |r: &TestResponse| {
        r.headers
            .get("access-control-allow-origin")
            .is_some_and(|v| v == PAGE)
            && r.headers["access-control-allow-credentials"] == "true"
            && r.headers.get_all("vary").iter().any(|v| v == "Origin")
    };
    let theirs = fixture("someone-else");
    app.upstream.summary(&theirs);
    let broken = "ABCDEF0123456789ABCDEF0123456789";
    app.upstream
        .script(&format!("/avs/{broken}"), Scripted::status(500, "{}"));
    let owner = sis_user_token(OWNER);
    for (sid, status) in [
        ("0123456789ABCDEF0123456789ABCDEF", 404),
        (theirs["sid"].as_str().unwrap(), 403),
        (broken, 502),
    ] {
        let request = get(&format!("/avs/v0/avs/{sid}"))
            .header("origin", PAGE)
            .header("cookie", format!("vagov_access_token={owner}"))
            .body(Body::empty())
            .unwrap();
        let r = app.send(request).await;
        assert_eq!(r.status.as_u16(), status, "{sid}: {}", r.json);
        assert!(listed(&r), "{status}: {:?}", r.headers);
    }
    let (busy, _sis) = sis_app(TOGGLES_ON, &[("AVS_MAX_IN_FLIGHT_PER_CALLER", "1")]).await;
    let slow = "BCDEF0123456789ABCDEF0123456789A";
    busy.upstream.script(
        &format!("/avs/{slow}"),
        Scripted::json(&json!({"sid": slow, "data": {"patientInfo": {"icn": DEV_ICN}}}))
            .delayed(Duration::from_millis(500)),
    );
    let page_request = |sid: &str| {
        get(&format!("/avs/v0/avs/{sid}"))
            .header("origin", PAGE)
            .header("cookie", format!("vagov_access_token={owner}"))
            .body(Body::empty())
            .unwrap()
    };
    let (first, second) = tokio::join!(busy.send_raw(page_request(slow)), async {
        within(Duration::from_secs(5), async || busy.upstream.hits() >= 1).await;
        busy.send(page_request(FULL_SID)).await
    });
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 429, "{}", second.json);
    assert!(listed(&second), "429: {:?}", second.headers);

    // The cookie-authenticated links POST: JSON only, and from a listed origin.
    let token = sis_user_token(OWNER);
    let post = |origin: &str, content_type: &str| {
        axum::http::Request::builder()
            .method(Method::POST)
            .uri("/avs/v0/avs/links")
            .header("origin", origin)
            .header("content-type", content_type)
            .header("cookie", format!("vagov_access_token={token}"))
            .body(Body::from(
                r#"{"appointments":[{"stationNo":"500","appointmentIen":"1000"}]}"#,
            ))
            .unwrap()
    };
    assert_eq!(app.send(post(PAGE, "application/json")).await.status, 200);
    let r = app.send(post(PAGE, "text/plain")).await;
    assert_eq!(
        (r.status.as_u16(), r.error()["status"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let r = app.send(post("https://evil.test", "application/json")).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn links_follow_avs_enabled_alone_when_the_links_toggle_is_none() {
    let body = r#"{"appointments":[{"stationNo":"500","appointmentIen":"9876543"}]}"#;
    // VA.gov's store as it is: the links toggle deleted.
    for (setting, enabled) in [
        ("va_online_scheduling_after_visit_summary", false),
        ("none", true),
    ] {
        let app = TestApp::builder()
            .envs(&[("AVS_LINKS_TOGGLE", setting)])
            .start()
            .await;
        app.upstream.script(
            "/avs-by-appointment/500/9876543",
            Scripted::json(&json!([{"sid": FULL_SID, "icn": DEV_ICN}])),
        );
        let r = app.post_json("/avs/v0/avs/links", &owner_token(), body).await;
        assert_eq!(
            r.json["meta"]["linksEnabled"], enabled,
            "AVS_LINKS_TOGGLE={setting}"
        );
        assert_eq!(r.json["data"][0]["path"].is_string(), enabled);
    }
}

#[tokio::test]
async fn not_ready_until_a_first_key_set_and_then_the_tokens_verify() {
    let sis = FakeSis::start().await;
    sis.user(OWNER, Some("owner@example.com"), Some(DEV_ICN));
    // The keys' endpoint fails at start: the service runs, unready, and retries.
    sis.keys_failing(Some(503));
    let mut env = sis.env();
    env.push(("AVS_SIS_JWKS_REFRESH_SECS", "1".to_owned()));
    env.push(("AVS_SIS_USER_TTL_SECS", "1".to_owned()));
    let app = TestApp::builder().envs(&env).start().await;
    app.upstream.summary(&fixture("full"));
    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.json);
    assert_eq!(r.error()["detail"], "Not ready: identity: keys not loaded");
    let uri = format!("/avs/v0/avs/{FULL_SID}");
    assert_eq!(
        app.get(&uri, &sis_user_token(OWNER)).await.status,
        401,
        "no key verifies anything"
    );

    // Then the keys arrive: this same app turns ready, and its tokens verify.
    sis.keys_failing(None);
    within(Duration::from_secs(10), async || {
        app.get_anonymous("/readyz").await.status == 200
    })
    .await;
    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.json["checks"]["identity"], "ok");
    assert_eq!(app.get(&uri, &sis_user_token(OWNER)).await.status, 200);

    // A refresh on its timer picks up a rotation with no token asking for it: two sets loaded
    // after the rotation (the first may have been fetched before it), no token sent meanwhile,
    // and then a token of the new key verifies.
    let keyring = app.state.identity.sis().unwrap().keyring();
    let loaded = keyring.sets_loaded();
    sis.publish(&[SisKey::Stranger]);
    within(Duration::from_secs(5), async || {
        keyring.sets_loaded() >= loaded + 2
    })
    .await;
    let rotated = sis_token(SisKey::Stranger, &sis_user_claims(OWNER, "after-rotation"));
    assert_eq!(app.get(&uri, &rotated).await.status, 200);
    let refreshed = sis.jwks_fetches();

    // A failed refresh keeps the last good set: still ready, the rotated key still verifies.
    sis.keys_failing(Some(500));
    within(Duration::from_secs(5), async || sis.jwks_fetches() > refreshed).await;
    assert_eq!(app.get_anonymous("/readyz").await.status, 200);
    let again = sis_token(SisKey::Stranger, &sis_user_claims(OWNER, "during-outage"));
    assert_eq!(app.get(&uri, &again).await.status, 200);
    sis.keys_failing(None);

    // A session's user is remembered for AVS_SIS_USER_TTL_SECS, then asked again: the same
    // token, verified and looked up once, is looked up anew once the session's time is up.
    let session = sis_token(SisKey::Stranger, &sis_user_claims(OWNER, "one-session"));
    assert_eq!(app.get(&uri, &session).await.status, 200);
    let calls = sis.user_calls();
    assert_eq!(app.get(&uri, &session).await.status, 200);
    assert_eq!(sis.user_calls(), calls, "within its lifetime: no call");
    within(Duration::from_secs(5), async || {
        app.get(&uri, &session).await;
        sis.user_calls() > calls
    })
    .await;
}
