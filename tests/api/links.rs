//! POST /avs/v0/avs/links: one batch call for the appointments service.

use std::time::{Duration, Instant};

use axum::body::Body;
use serde_json::{Value, json};

use crate::support::*;

const LINKS: &str = "/avs/v0/avs/links";
const BOTH_ON: &str = "[features.avs_enabled]\nboolean = true\n[features.va_online_scheduling_after_visit_summary]\nboolean = true\n";

fn page(sid: &str) -> String {
    format!("/my-health/medical-records/summaries-and-notes/visit-summary/{sid}")
}

fn body(items: &[(&str, &str)]) -> String {
    let items: Vec<Value> = items
        .iter()
        .map(|(s, i)| json!({"stationNo": s, "appointmentIen": i}))
        .collect();
    json!({ "appointments": items }).to_string()
}

fn row(station: &str, ien: &str, path: Option<String>, error: Option<&str>) -> Value {
    json!({"stationNo": station, "appointmentIen": ien, "path": path, "error": error, "avsPdf": null})
}

#[tokio::test]
async fn a_mixed_batch_is_answered_item_by_item_in_order() {
    let app = TestApp::builder().toggles(BOTH_ON).start().await;
    let other_sid = "F1B2C3D4E5F60718293A4B5C6D7E8F90";
    app.upstream
        .script(
            "/avs-by-appointment/500/1",
            Scripted::json(&json!([{"sid": FULL_SID, "icn": DEV_ICN}])),
        )
        .script(
            "/avs-by-appointment/500/2",
            Scripted::json(&json!([{"sid": other_sid, "icn": OTHER_ICN}])),
        )
        .script("/avs-by-appointment/500/3", Scripted::json(&json!([])))
        .script("/avs-by-appointment/500/4", Scripted::status(500, ""));
    let r = app
        .post_json(
            LINKS,
            &owner_token(),
            &body(&[
                ("500", "1"),
                ("500", "2"),
                ("500", "3"),
                ("500", "4"),
                ("500", "1"),
            ]),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json,
        json!({"data": [
            row("500", "1", Some(page(FULL_SID)), None),
            row("500", "2", None, None),
            row("500", "3", None, None),
            row("500", "4", None, Some("Error retrieving AVS info")),
            row("500", "1", Some(page(FULL_SID)), None),
        ], "meta": {"linksEnabled": true}})
    );
    assert_eq!(
        app.upstream.hits(),
        4,
        "the duplicate cost no extra upstream request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_slow_lookups_answer_in_under_a_second_and_a_half() {
    let app = TestApp::builder().toggles(BOTH_ON).start().await;
    let items: Vec<(String, String)> = (0..50)
        .map(|n| ("500".to_owned(), (1000 + n).to_string()))
        .collect();
    for (station, ien) in &items {
        app.upstream.script(
            &format!("/avs-by-appointment/{station}/{ien}"),
            Scripted::json(&json!([{"sid": FULL_SID, "icn": DEV_ICN}])).delayed(Duration::from_millis(200)),
        );
    }
    let refs: Vec<(&str, &str)> = items.iter().map(|(s, i)| (s.as_str(), i.as_str())).collect();
    let started = Instant::now();
    let r = app.post_json(LINKS, &owner_token(), &body(&refs)).await;
    let elapsed = started.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["path"] == page(FULL_SID))
    );
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    assert_eq!(app.upstream.hits(), 50);
}

#[tokio::test]
async fn items_already_in_the_search_cache_cost_nothing() {
    let app = TestApp::builder().toggles(BOTH_ON).start().await;
    app.upstream.script(
        "/avs-by-appointment/500/1",
        Scripted::json(&json!([{"sid": FULL_SID, "icn": DEV_ICN}])),
    );
    assert_eq!(
        app.get(
            "/avs/v0/avs/search?stationNo=500&appointmentIen=1",
            &owner_token()
        )
        .await
        .status,
        200
    );
    let r = app
        .post_json(LINKS, &owner_token(), &body(&[("500", "1"), ("500", "1")]))
        .await;
    assert_eq!(r.json["data"][1]["path"], page(FULL_SID));
    assert_eq!(app.upstream.hits(), 1);
}

#[tokio::test]
async fn either_toggle_off_means_no_links_and_no_upstream_request() {
    for toggles in [
        "[features.avs_enabled]\nboolean = true\n",
        "[features.va_online_scheduling_after_visit_summary]\nboolean = true\n",
        "",
    ] {
        let app = TestApp::builder().toggles(toggles).start().await;
        let r = app
            .post_json(LINKS, &owner_token(), &body(&[("500", "1"), ("500", "2")]))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json,
            json!({"data": [row("500", "1", None, None), row("500", "2", None, None)], "meta": {"linksEnabled": false}})
        );
        assert_eq!(app.upstream.hits(), 0, "{toggles:?}");
    }
}

#[tokio::test]
async fn bad_batches_are_400_naming_the_problem() {
    let app = TestApp::builder().toggles(BOTH_ON).start().await;
    let token = owner_token();
    let many: Vec<(&str, &str)> = vec![("500", "1"); 101];
    let mut bad_at_7: Vec<(&str, &str)> = vec![("500", "1"); 10];
    bad_at_7[7] = ("500", "12x");
    let cases = [
        (body(&[]), "appointments must hold 1 to 100 items, not 0"),
        (body(&many), "appointments must hold 1 to 100 items, not 101"),
        (
            body(&bad_at_7),
            "appointments[7]: Station number and Appointment IEN must be present and valid.",
        ),
        ("{not json".to_owned(), "The request body is not valid JSON"),
        (
            "{\"items\": []}".to_owned(),
            "The body must be {\"appointments\": [{\"stationNo\": …, \"appointmentIen\": …}]}",
        ),
        (
            json!({"appointments": [{"stationNo": 500, "appointmentIen": "1"}]}).to_string(),
            "appointments[0]: Station number and Appointment IEN must be present and valid.",
        ),
    ];
    for (body, detail) in cases {
        app.post_json(LINKS, &token, &body)
            .await
            .assert_error(400, "Invalid parameters", detail);
    }
    let wrong_type = axum::http::Request::post(LINKS)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/plain")
        .body(Body::from(body(&[("500", "1")])))
        .unwrap();
    app.send(wrong_type).await.assert_error(
        400,
        "Invalid parameters",
        "Content-Type must be application/json",
    );
    let huge = format!("{{\"appointments\": [], \"pad\": \"{}\"}}", "x".repeat(70_000));
    let r = app.post_json(LINKS, &token, &huge).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.error()["status"], "payload_too_large");
    app.send(get(LINKS).method("POST").body(Body::empty()).unwrap())
        .await
        .assert_error(401, "Not authorized", "Not authorized");
    assert_eq!(app.upstream.hits(), 0);
}

#[tokio::test]
async fn items_past_the_deadline_carry_the_error_and_the_batch_still_answers() {
    let app = TestApp::builder()
        .toggles(BOTH_ON)
        .envs(&[("AVS_LINKS_DEADLINE_MS", "400")])
        .start()
        .await;
    app.upstream
        .script(
            "/avs-by-appointment/500/1",
            Scripted::json(&json!([{"sid": FULL_SID, "icn": DEV_ICN}])),
        )
        .script(
            "/avs-by-appointment/500/2",
            Scripted::json(&json!([{"sid": FULL_SID, "icn": DEV_ICN}])).delayed(Duration::from_secs(3)),
        );
    let started = Instant::now();
    let r = app
        .post_json(LINKS, &owner_token(), &body(&[("500", "1"), ("500", "2")]))
        .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(r.status, 200);
    assert_eq!(r.json["data"][0]["path"], page(FULL_SID));
    assert_eq!(
        r.json["data"][1],
        row("500", "2", None, Some("Error retrieving AVS info"))
    );
}
