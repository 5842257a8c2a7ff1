//! Operating the rollout: Prometheus metrics and the rollout report.

use std::collections::BTreeSet;

use avs_api::admin::{AdminState, router};
use avs_api::domain::ActorId;
use avs_api::toggles::{Change, Percentage, bucket};
use axum::http::Method;
use serde_json::json;

use crate::support::*;

/// The metric families the operators' dashboards need.
const FAMILIES: [&str; 12] = [
    "avs_http_requests_total",
    "avs_http_request_duration_seconds",
    "avs_upstream_requests_total",
    "avs_upstream_request_duration_seconds",
    "avs_cache_requests_total",
    "avs_cache_evictions_total",
    "avs_cache_weighted_bytes",
    "avs_gate_decisions_total",
    "avs_upstream_breaker_open",
    "avs_toggle_source_healthy",
    "avs_toggle_source_last_load_timestamp_seconds",
    "avs_upstream_unknown_keys_total",
];

/// Prometheus text format: `# HELP`/`# TYPE` comments and `name{labels} value` samples.
fn parse_prometheus(text: &str) -> BTreeSet<String> {
    let mut families = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            families.insert(name.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "{line}"
        );
    }
    families
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_with_every_family() {
    let handle = avs_api::telemetry::metrics();
    assert!(handle.is_some(), "the recorder installs");
    let app = TestApp::builder()
        .toggles("[features.avs_enabled]\npercentage_of_actors = 10\n")
        .envs(&[("AVS_CACHE_MAX_BYTES", "60000"), ("AVS_BREAKER_MIN_CALLS", "50")])
        .start()
        .await;
    let mut doc = fixture("full");
    doc["data"]["brandNewSection"] = json!([1]);
    app.upstream.summary(&doc);
    let user_15 = rs256(&claims("User;15", Some(DEV_ICN), None));
    for _ in 0..2 {
        app.get(&format!("/avs/v0/avs/{FULL_SID}"), &user_15).await; // miss, then hit
    }
    app.get(
        "/avs/v0/avs/search?stationNo=500&appointmentIen=1",
        &rs256(&claims("User;1", Some(DEV_ICN), None)),
    )
    .await;
    for n in 0..4 {
        let sid = format!("{n:032X}");
        app.upstream.summary(&json!({"sid": sid, "data": {"patientInfo": {"icn": DEV_ICN}, "radiologyReports1Yr": "x".repeat(20_000)}}));
        app.get(&format!("/avs/v0/avs/{sid}"), &user_15).await; // past the byte budget: evictions
    }
    app.state.summaries.cache_usage().await;
    let admin_app = router(AdminState::new(app.state.toggles.clone(), None).with_metrics(handle));
    let request = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(admin_app, request).await.unwrap();
    assert_eq!(response.status(), 200, "/metrics needs no admin token");
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let families = parse_prometheus(&text);
    for family in FAMILIES {
        assert!(
            families.contains(family),
            "{family} missing from /metrics:\n{text}"
        );
    }
    assert!(
        text.contains("route=\"/avs/v0/avs/{sid}\""),
        "labelled by route template"
    );
    assert!(!text.contains(FULL_SID), "never the raw path");
}

#[tokio::test]
async fn the_report_counts_stages_unique_users_and_errors() {
    let app = TestApp::builder()
        .toggles("[features.avs_enabled]\npercentage_of_actors = 10\n")
        .start()
        .await;
    app.upstream
        .script("/avs-by-appointment/500/2", Scripted::status(500, ""));
    let search = "/avs/v0/avs/search?stationNo=500&appointmentIen=1";
    let (mut allowed, mut denied) = (0u64, 0u64);
    for n in 0..200 {
        let actor = format!("user-{n}@example.com");
        let token = rs256(&claims(&format!("sub-{n}"), Some(DEV_ICN), Some(&actor)));
        let status = app.get(search, &token).await.status;
        if bucket("avs_enabled", &ActorId::new(actor)) < 10_000 {
            allowed += 1;
            assert_eq!(status, 200);
            if n % 5 == 0 {
                app.get("/avs/v0/avs/search?stationNo=x&appointmentIen=1", &token)
                    .await; // a 400
                app.get("/avs/v0/avs/search?stationNo=500&appointmentIen=2", &token)
                    .await; // upstream 500
            }
        } else {
            denied += 1;
            assert_eq!(status, 404);
        }
    }
    assert!(allowed > 5 && denied > 150, "{allowed} / {denied}");
    let report = serde_json::to_value(app.state.rollout.report().await).unwrap();
    let toggle = report["toggles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["toggle"] == "avs_enabled")
        .unwrap()
        .clone();
    let stage = toggle["stages"][0].clone();
    let within = |got: &serde_json::Value, want: u64| {
        (got.as_u64().unwrap() as f64 - want as f64).abs() <= (want as f64 * 0.02).max(0.0)
    };
    assert!(within(&stage["uniqueActors"]["allowed"], allowed), "{stage}");
    assert!(within(&stage["uniqueActors"]["denied"], denied), "{stage}");
    assert!(within(&stage["uniqueActors"]["total"], 200), "{stage}");
    assert_eq!(stage["denied"], denied);
    assert_eq!(stage["setting"], "10 % of actors");
    let errors = &stage["errors"];
    assert!(
        errors["400"].as_u64().unwrap() >= 1 && errors["upstream_bad_gateway"].as_u64().unwrap() >= 1,
        "{errors}"
    );
    assert!(
        errors.get("404").is_none(),
        "a gate denial is counted as denied, not as an error"
    );
    assert!(stage["upstream"]["failures"].as_u64().unwrap() >= 1);

    // Moving to 50 % opens a new stage.
    app.state
        .toggles
        .apply("avs_enabled", Change::PercentageOfActors(Percentage::Integer(50)))
        .await
        .unwrap();
    app.get(
        search,
        &rs256(&claims("sub-x", Some(DEV_ICN), Some("late@example.com"))),
    )
    .await;
    let report = serde_json::to_value(app.state.rollout.report().await).unwrap();
    let toggle = report["toggles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["toggle"] == "avs_enabled")
        .unwrap()
        .clone();
    assert_eq!(toggle["stages"].as_array().unwrap().len(), 2);
    assert_eq!(toggle["stages"][1]["setting"], "50 % of actors");
    assert_eq!(toggle["stages"][1]["requests"], 1);

    // The Markdown follows the release plan's Results bullets, filled in.
    let md = app.state.rollout.markdown().await;
    for bullet in [
        "- **Number of unique users**: ",
        "- **Metrics at this stage (per your success criteria)**: ",
        "- **Was any downstream service affected by the change?** ",
        "- **Types of errors logged**: ",
    ] {
        assert_eq!(md.matches(bullet).count(), 2, "{bullet} once per stage:\n{md}");
    }
    assert!(md.contains("### Stage 2: 50 % of actors"), "{md}");
    assert!(
        md.contains("upstream_bad_gateway ×") && md.contains("400 ×"),
        "{md}"
    );
    let counts = format!(
        "- **Requests**: {} ({} allowed, {} denied)",
        stage["requests"], stage["allowed"], stage["denied"]
    );
    assert!(md.contains(&counts), "{counts} not in:\n{md}");

    // Served on the admin listener, JSON and Markdown, behind the token.
    let admin_app = app.admin();
    let (status, json) = admin(&admin_app, Method::GET, "/admin/rollout", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        json["toggles"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["toggle"] == "avs_enabled")
            .count(),
        1
    );
    let (status, _) = admin(&admin_app, Method::GET, "/admin/rollout", None, None).await;
    assert_eq!(status, 401);
    let page = admin(
        &admin_app,
        Method::GET,
        "/flipper/features/avs_enabled",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(page.0, 200);
}
