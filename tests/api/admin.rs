//! The admin API: Flipper's shapes, the token, and writes that survive a restart.

use std::time::Duration;

use avs_api::admin::{AdminState, router};
use avs_api::toggles::{SourceConfig, Toggles};
use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::*;

fn json_body(v: Value) -> Option<(&'static str, String)> {
    Some(("application/json", v.to_string()))
}

fn form_body(s: &str) -> Option<(&'static str, String)> {
    Some(("application/x-www-form-urlencoded", s.to_owned()))
}

fn gate<'a>(feature: &'a Value, key: &str) -> &'a Value {
    let gates = feature["gates"].as_array().unwrap();
    &gates.iter().find(|g| g["key"] == key).unwrap()["value"]
}

async fn file_admin(initial: &str) -> (axum::Router, std::sync::Arc<Toggles>, TempDir) {
    let dir = temp_dir();
    let path = dir.path().join("toggles.toml");
    std::fs::write(&path, initial).unwrap();
    let toggles = Toggles::start(&SourceConfig::File(path), Duration::from_secs(5))
        .await
        .unwrap();
    (
        router(AdminState::new(toggles.clone(), Some(ADMIN_TOKEN.into()))),
        toggles,
        dir,
    )
}

#[tokio::test]
async fn without_a_configured_token_the_admin_api_is_404() {
    let toggles = Toggles::fixed(Default::default());
    let app = router(AdminState::new(toggles, None));
    let (status, body) = admin(&app, Method::GET, "/flipper/api/features", Some("anything"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["status"], "not_found");
}

#[tokio::test]
async fn no_token_or_a_wrong_token_is_401_and_changes_nothing() {
    let (app, toggles, _dir) = file_admin("[features.avs_enabled]\nboolean = false\n").await;
    let before = toggles.snapshot();
    for token in [None, Some("wrong"), Some(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])] {
        let (status, body) = admin(
            &app,
            Method::POST,
            "/flipper/api/features/avs_enabled/boolean",
            token,
            None,
        )
        .await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(body["errors"][0]["status"], "unauthorized");
        let (status, _) = admin(&app, Method::GET, "/flipper", token, None).await;
        assert_eq!(status, 401);
    }
    assert_eq!(toggles.snapshot(), before);
}

#[tokio::test]
async fn the_features_list_and_create_answer_in_flippers_shapes() {
    let (app, _, _dir) = file_admin("[features.avs_enabled]\nboolean = false\n").await;
    let t = Some(ADMIN_TOKEN);
    use Method as M;

    let (s, b) = admin(&app, M::GET, "/flipper/api/features", t, None).await;
    assert_eq!(s, 200);
    assert_eq!(b["features"][0]["key"], "avs_enabled");
    assert_eq!(b["features"][0]["state"], "off");
    assert_eq!(
        b["features"][0]["gates"],
        json!([
            {"key": "boolean", "name": "boolean", "value": null},
            {"key": "actors", "name": "actor", "value": []},
            {"key": "percentage_of_actors", "name": "percentage_of_actors", "value": null},
            {"key": "percentage_of_time", "name": "percentage_of_time", "value": null},
            {"key": "groups", "name": "group", "value": []},
        ])
    );

    let (s, b) = admin(
        &app,
        M::POST,
        "/flipper/api/features",
        t,
        json_body(json!({"name": "new_feature"})),
    )
    .await;
    assert_eq!(
        (s.as_u16(), b["key"].clone(), b["state"].clone()),
        (200, json!("new_feature"), json!("off"))
    );
    let (s, b) = admin(&app, M::POST, "/flipper/api/features", t, json_body(json!({}))).await;
    assert_eq!((s.as_u16(), b["code"].clone()), (422, json!(5)));

    let (s, b) = admin(&app, M::GET, "/flipper/api/features/nope", t, None).await;
    assert_eq!(s, 404);
    assert_eq!(
        b,
        json!({"code": 1, "message": "Feature not found.", "more_info": "https://flippercloud.io/docs/api#error-code-reference"})
    );
}

#[tokio::test]
async fn actor_and_percentage_gates_are_set_read_and_cleared() {
    let (app, _, _dir) =
        file_admin("[features.avs_enabled]\nboolean = false\n[features.new_feature]\nboolean = false\n")
            .await;
    let t = Some(ADMIN_TOKEN);
    use Method as M;

    let f = "/flipper/api/features/avs_enabled";
    let (s, b) = admin(
        &app,
        M::POST,
        &format!("{f}/actors"),
        t,
        form_body("flipper_id=tester%40example.com"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(gate(&b, "actors"), &json!(["tester@example.com"]));
    assert_eq!(b["state"], "conditional");
    let (s, b) = admin(&app, M::POST, &format!("{f}/actors"), t, form_body("")).await;
    assert_eq!((s.as_u16(), b["code"].clone()), (422, json!(4)));

    let (s, b) = admin(
        &app,
        M::POST,
        &format!("{f}/percentage_of_actors"),
        t,
        json_body(json!({"percentage": "10"})),
    )
    .await;
    assert_eq!(
        (s.as_u16(), gate(&b, "percentage_of_actors").clone()),
        (200, json!("10"))
    );
    let (s, b) = admin(
        &app,
        M::POST,
        &format!("{f}/percentage_of_actors"),
        t,
        form_body("percentage=2.5"),
    )
    .await;
    assert_eq!(
        (s.as_u16(), gate(&b, "percentage_of_actors").clone()),
        (200, json!("2.5"))
    );
    for bad in [
        json!({"percentage": "101"}),
        json!({"percentage": "-1"}),
        json!({"percentage": "ten"}),
        json!({}),
    ] {
        let (s, b) = admin(
            &app,
            M::POST,
            &format!("{f}/percentage_of_actors"),
            t,
            json_body(bad.clone()),
        )
        .await;
        assert_eq!((s.as_u16(), b["code"].clone()), (422, json!(3)), "{bad}");
    }

    let (s, b) = admin(&app, M::GET, "/flipper/api/actors/tester@example.com", t, None).await;
    assert_eq!(s, 200);
    assert_eq!(b["flipper_id"], "tester@example.com");
    assert_eq!(b["features"]["avs_enabled"]["enabled"], true);
    assert_eq!(b["features"]["new_feature"]["enabled"], false);

    let (s, b) = admin(
        &app,
        M::DELETE,
        &format!("{f}/actors"),
        t,
        json_body(json!({"flipper_id": "tester@example.com"})),
    )
    .await;
    assert_eq!((s.as_u16(), gate(&b, "actors").clone()), (200, json!([])));
    let (s, b) = admin(&app, M::DELETE, &format!("{f}/percentage_of_actors"), t, None).await;
    assert_eq!(
        (
            s.as_u16(),
            gate(&b, "percentage_of_actors").clone(),
            b["state"].clone()
        ),
        (200, json!("0"), json!("off"))
    );
}

#[tokio::test]
async fn boolean_and_time_gates_and_every_write_reaches_the_file() {
    let (app, toggles, dir) = file_admin("[features.avs_enabled]\nboolean = false\n").await;
    let t = Some(ADMIN_TOKEN);
    use Method as M;
    let f = "/flipper/api/features/avs_enabled";

    let (s, b) = admin(
        &app,
        M::POST,
        &format!("{f}/percentage_of_time"),
        t,
        form_body("percentage=100"),
    )
    .await;
    assert_eq!((s.as_u16(), b["state"].clone()), (200, json!("on")));
    let (s, _) = admin(&app, M::DELETE, &format!("{f}/percentage_of_time"), t, None).await;
    assert_eq!(s, 200);

    admin(
        &app,
        M::POST,
        &format!("{f}/percentage_of_actors"),
        t,
        form_body("percentage=50"),
    )
    .await;
    let (s, b) = admin(&app, M::POST, &format!("{f}/boolean"), t, None).await;
    assert_eq!((s.as_u16(), b["state"].clone()), (200, json!("on")));
    assert_eq!(gate(&b, "boolean"), "true");
    assert_eq!(
        gate(&b, "percentage_of_actors"),
        &Value::Null,
        "enabling clears the other gates"
    );
    let (s, b) = admin(&app, M::DELETE, &format!("{f}/boolean"), t, None).await;
    assert_eq!(
        (s.as_u16(), b["state"].clone(), gate(&b, "boolean").clone()),
        (200, json!("off"), Value::Null)
    );

    // Writes went to the file: a fresh load of it holds the same state.
    admin(
        &app,
        M::POST,
        &format!("{f}/percentage_of_actors"),
        t,
        form_body("percentage=10"),
    )
    .await;
    let reloaded = Toggles::start(
        &SourceConfig::File(dir.path().join("toggles.toml")),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(reloaded.snapshot(), toggles.snapshot());
}

#[tokio::test]
async fn basic_auth_with_the_token_as_password_works_for_browsers() {
    use base64::Engine;
    let (app, _, _dir) = file_admin("[features.avs_enabled]\n").await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_TOKEN}"));
    let request =
        Request::get("/flipper/features/avs_enabled").header("authorization", format!("Basic {basic}"));
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("form-action 'self'"));
    let unauthenticated = app
        .oneshot(Request::get("/flipper").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        unauthenticated.headers()["www-authenticate"],
        "Basic realm=\"avs-api admin\""
    );
}

#[tokio::test]
async fn page_writes_need_the_anti_forgery_token_and_the_same_origin() {
    let (app, toggles, _dir) = file_admin("[features.avs_enabled]\n").await;
    let page =
        |req: axum::http::request::Builder| req.header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    let response = app
        .clone()
        .oneshot(
            page(Request::get("/flipper/features/avs_enabled"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let html = String::from_utf8(
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let post = |body: String, origin: Option<&str>| {
        let mut r = page(Request::post("/flipper/features/avs_enabled/percentage"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("host", "127.0.0.1:9090");
        if let Some(origin) = origin {
            r = r.header("origin", origin);
        }
        r.body(Body::from(body)).unwrap()
    };
    let forged = app
        .clone()
        .oneshot(post("percentage=10".into(), None))
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let cross = app
        .clone()
        .oneshot(post(
            format!("percentage=10&csrf={csrf}"),
            Some("https://evil.example"),
        ))
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(
        toggles.snapshot().features["avs_enabled"].percentage_of_actors,
        None,
        "nothing changed"
    );
    let genuine = app
        .oneshot(post(
            format!("percentage=10&csrf={csrf}"),
            Some("http://127.0.0.1:9090"),
        ))
        .await
        .unwrap();
    assert_eq!(genuine.status(), 303);
    assert!(
        toggles.snapshot().features["avs_enabled"]
            .percentage_of_actors
            .is_some()
    );
}
