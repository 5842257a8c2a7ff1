//! `openapi.yaml` is the contract: every response a test receives is validated against the
//! schema for its route, method and status, and the router's routes are the spec's paths.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::*;

#[test]
fn the_routers_routes_are_the_specs_paths() {
    let routes: BTreeSet<(String, String)> = avs_api::http::routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_owned()))
        .collect();
    assert_eq!(routes, Contract::get().operations());
}

/// Every response of every operation in `spec` has a description (`$ref`s to its components
/// resolved).
fn assert_every_response_is_described(spec: &Value) {
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "parameters")
        {
            for (status, response) in op["responses"].as_object().unwrap() {
                let response = match response.get("$ref").and_then(Value::as_str) {
                    Some(r) => &spec["components"]["responses"][r.rsplit('/').next().unwrap()],
                    None => response,
                };
                assert!(response["description"].is_string(), "{method} {path} {status}");
            }
        }
    }
}

#[test]
fn the_spec_is_openapi_3_1_and_every_response_has_a_description() {
    let spec = &Contract::get().spec;
    assert_eq!(spec["openapi"], "3.1.0");
    assert_every_response_is_described(spec);
}

#[tokio::test]
async fn apidocs_serves_the_yaml_as_json() {
    let app = TestApp::start().await;
    let r = app.get_anonymous("/avs/v0/apidocs").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, Contract::get().spec);
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::start().await;
    let r = app.get_anonymous("/healthz").await;
    assert_eq!(r.json, json!({"status": "ok"}));
    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["checks"]["toggles"], "ok");
    // A toggle file that never loaded: fail closed and not ready, naming the check.
    let broken = TestApp::builder().toggles("this is [ not toml").start().await;
    let r = broken.get_anonymous("/readyz").await;
    assert_eq!(r.status, 503);
    assert!(
        r.error()["detail"]
            .as_str()
            .unwrap()
            .starts_with("Not ready: toggles"),
        "{}",
        r.json
    );
    assert_eq!(r.error()["status"], "service_unavailable");
}

/// The frontend's fixture, turned back into the upstream document it was rendered from.
pub fn upstream_from_frontend_fixture(fixture: &Value, icn: &str) -> Value {
    fn untag(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (if k == "T" { "_t".to_owned() } else { k.clone() }, untag(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(untag).collect()),
            other => other.clone(),
        }
    }
    let a = &fixture["data"]["attributes"];
    let meta = &a["meta"];
    let header: String = meta["pageHeader"]
        .as_str()
        .unwrap()
        .split('\n')
        .map(|line| format!("<div>{line}</div>"))
        .collect();
    let mut data = json!({
        "header": {"stationNo": meta["stationNo"], "timeZone": meta["timeZone"], "pageHeader": header},
        "patientInfo": {"icn": icn, "smokingStatus": a["patientInfo"]["smokingStatus"]},
    });
    for (k, v) in a.as_object().unwrap() {
        if !["id", "appointmentIens", "meta", "patientInfo"].contains(&k.as_str()) {
            data[k] = untag(v);
        }
    }
    json!({"sid": a["id"], "generatedDate": meta["generatedDate"], "appointmentIens": a["appointmentIens"], "data": data})
}

#[tokio::test]
async fn the_api_renders_the_frontends_own_fixture_back() {
    let fixture = read_json("tests/peer/frontend-fixture.json");
    let app = TestApp::start().await;
    app.upstream
        .summary(&upstream_from_frontend_fixture(&fixture, crate::support::DEV_ICN));
    let r = app
        .get(
            &format!("/avs/v0/avs/{}", crate::support::FULL_SID),
            &crate::support::owner_token(),
        )
        .await;
    assert_eq!(r.status, 200);
    // Objects compare as maps: the fixture's own key order is not the serializer's.
    assert_eq!(r.json, fixture);
}

#[test]
fn the_peer_fixture_copy_equals_the_shared_original() {
    let shared = repo("../shared/peer/frontend-fixture.json");
    match std::fs::read(&shared) {
        Ok(original) => assert_eq!(
            std::fs::read(repo("tests/peer/frontend-fixture.json")).unwrap(),
            original
        ),
        Err(_) => skip(
            "../shared/peer",
            &format!(
                "{} is absent; the committed copy is not compared",
                shared.display()
            ),
        ),
    }
}

/// The contract documents live in the repository (`docs/spec/`), so whoever clones it can read
/// them; each is the shared original, byte for byte, and none is missing.
#[test]
fn the_contract_documents_in_docs_spec_are_the_shared_originals() {
    let shared = repo("../shared/spec");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        skip(
            "../shared/spec",
            &format!("{} is absent; checked nothing", shared.display()),
        );
        return;
    };
    let mut compared = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let copy = std::fs::read(repo(&format!("docs/spec/{name}")))
            .unwrap_or_else(|_| panic!("docs/spec/{name} is missing: copy it from ../shared/spec/"));
        assert!(
            copy == std::fs::read(&path).unwrap(),
            "docs/spec/{name} differs from ../shared/spec/{name}"
        );
        compared += 1;
    }
    assert!(compared >= 8, "{compared} documents");
}

#[test]
fn the_shipped_full_fixture_is_the_frontend_fixture_upstream() {
    let fixture = read_json("tests/peer/frontend-fixture.json");
    assert_eq!(
        read_json("fixtures/summaries/full.json"),
        upstream_from_frontend_fixture(&fixture, crate::support::DEV_ICN)
    );
}

/// (method, path) of every operation in an OpenAPI document (path-level keys such as
/// `parameters` are not operations).
#[tokio::test]
async fn the_admin_listeners_routes_are_its_specs_paths_and_each_is_served() {
    use avs_api::admin::{OPENAPI_YAML, ROUTES};
    let spec: Value = serde_norway::from_str(OPENAPI_YAML).unwrap();
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routes, spec_operations(&spec));
    assert_every_response_is_described(&spec);
    // Every documented route is served: never the unknown-route answer, never 405.
    let app = TestApp::start().await;
    let admin_app = app.admin();
    // `/metrics` needs the process's recorder, which a test process has none of (404, documented).
    for (method, path) in ROUTES.iter().filter(|(_, p)| *p != "/metrics") {
        let uri = path
            .replace("{name}", "avs_enabled")
            .replace("{toggle}", "avs_enabled")
            .replace("{flipper_id}", "tester@example.com")
            .replace("{action}", "enable");
        let request = axum::http::Request::builder()
            .method(*method)
            .uri(&uri)
            .header("authorization", format!("Bearer {}", ADMIN_TOKEN))
            .body(axum::body::Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(admin_app.clone(), request)
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_ne!(status, 405, "{method} {uri}");
        assert!(
            !status.is_server_error(),
            "{method} {uri} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            !String::from_utf8_lossy(&body).contains("There are no routes matching"),
            "{method} {uri} is not served"
        );
    }
    // A method the route does not take: 405 in the error shape.
    let request = axum::http::Request::builder()
        .method("PUT")
        .uri("/admin/rollout")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(admin_app, request).await.unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["errors"][0]["status"], "method_not_allowed");
}
