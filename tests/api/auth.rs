//! Caller identity: JWT verification per api.md.

use axum::body::Body;

use crate::support::*;

async fn app_with_summary(extra: &[(&str, &str)]) -> TestApp {
    let app = TestApp::builder().envs(extra).start().await;
    app.upstream.summary(&fixture("full"));
    app
}

fn summary_uri() -> String {
    format!("/avs/v0/avs/{FULL_SID}")
}

fn owner_claims() -> serde_json::Value {
    claims("owner-1", Some(DEV_ICN), None)
}

#[tokio::test]
async fn rs256_and_es256_from_a_jwks_are_accepted() {
    let app = app_with_summary(&[]).await;
    assert_eq!(app.get(&summary_uri(), &rs256(&owner_claims())).await.status, 200);
    assert_eq!(app.get(&summary_uri(), &es256(&owner_claims())).await.status, 200);
    // A token without kid is checked against the keys of its algorithm.
    assert_eq!(
        app.get(&summary_uri(), &rs256_with_kid(&owner_claims(), None))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn rs256_and_es256_from_a_pem_file_with_several_keys_are_accepted() {
    let pem = repo("tests/keys/both.pub.pem").display().to_string();
    let upstream = FakeUpstream::start().await;
    upstream.summary(&fixture("full"));
    let app = TestApp::builder()
        .upstream(upstream)
        .envs(&[("AVS_JWKS_FILE", ""), ("AVS_JWT_PUBLIC_KEY_FILE", &pem)])
        .start()
        .await;
    assert_eq!(app.get(&summary_uri(), &rs256(&owner_claims())).await.status, 200);
    assert_eq!(app.get(&summary_uri(), &es256(&owner_claims())).await.status, 200);
    assert_eq!(
        app.get(&summary_uri(), &stranger(&owner_claims())).await.status,
        401
    );
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_401_without_an_upstream_call() {
    let app = app_with_summary(&[
        ("AVS_JWT_ISSUER", "https://issuer.example"),
        ("AVS_JWT_AUDIENCE", "avs"),
    ])
    .await;
    let good = || {
        let mut c = owner_claims();
        c["iss"] = "https://issuer.example".into();
        c["aud"] = "avs".into();
        c
    };
    assert_eq!(app.get(&summary_uri(), &rs256(&good())).await.status, 200);
    let hits = app.upstream.hits();
    let with = |key: &str, value: serde_json::Value| {
        let mut c = good();
        c[key] = value;
        c
    };
    let mut no_sub = good();
    no_sub.as_object_mut().unwrap().remove("sub");
    let cases = [
        ("alg none", alg_none(&good())),
        ("HS256 signed with the public key", hs256_with_public_key(&good())),
        ("bad signature", stranger(&good())),
        (
            "expired beyond the leeway",
            rs256(&with("exp", (now() - 120).into())),
        ),
        ("not yet valid", rs256(&with("nbf", (now() + 120).into()))),
        ("wrong audience", rs256(&with("aud", "someone-else".into()))),
        ("wrong issuer", rs256(&with("iss", "https://evil.example".into()))),
        ("unknown kid", rs256_with_kid(&good(), Some("no-such-key"))),
        ("no sub", rs256(&no_sub)),
        ("empty sub", rs256(&with("sub", "".into()))),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (case, token) in cases {
        let r = app.get(&summary_uri(), &token).await;
        assert_eq!(r.status, 401, "{case}");
        r.assert_error(401, "Not authorized", "Not authorized");
    }
    assert_eq!(app.upstream.hits(), hits, "no upstream call for a refused token");
    // Within the 30 s leeway, an expired token still passes.
    assert_eq!(
        app.get(&summary_uri(), &rs256(&with("exp", (now() - 10).into())))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_cookie_carries_the_token_when_there_is_no_header() {
    let app = app_with_summary(&[]).await;
    let token = rs256(&owner_claims());
    let with_cookie = |cookie: String| {
        get(&summary_uri())
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap()
    };
    let r = app
        .send(with_cookie(format!("other=1; vagov_access_token={token}; x=y")))
        .await;
    assert_eq!(r.status, 200);
    let r = app.send(with_cookie(format!("wrong_name={token}"))).await;
    assert_eq!(r.status, 401);
    // A header in another scheme does not fall back to the cookie.
    let r = app
        .send(
            get(&summary_uri())
                .header("authorization", "Basic dXNlcjpwYXNz")
                .header("cookie", format!("vagov_access_token={token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 401);

    let custom = app_with_summary(&[("AVS_AUTH_COOKIE", "avs_token")]).await;
    assert_eq!(
        custom
            .send(with_cookie(format!("avs_token={token}")))
            .await
            .status,
        200
    );
}
