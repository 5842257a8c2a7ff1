//! Input validation: 400 after authentication and the gate, and never an upstream request.

use crate::support::*;

#[tokio::test]
async fn invalid_sids_are_400_without_an_upstream_request() {
    let app = TestApp::start().await;
    let token = owner_token();
    for sid in [
        "a".repeat(29),
        "a".repeat(41),
        format!("{}G", "A".repeat(31)),
        format!("{}%0A", "A".repeat(32)), // an encoded newline after a valid sid
        format!("%0A{}", "A".repeat(32)),
        format!("{}%20", "A".repeat(32)),
        "%FF%FE".repeat(16), // not UTF-8 once decoded
        String::new(),       // `/avs/v0/avs/`
    ] {
        let r = app.get(&format!("/avs/v0/avs/{sid}"), &token).await;
        r.assert_error(400, "Invalid AVS id", "AVS id does not match accepted format.");
    }
    assert_eq!(app.upstream.hits(), 0, "no upstream request for an invalid sid");
    // The bounds themselves are valid and do reach the upstream.
    for sid in ["a".repeat(30), "F".repeat(40)] {
        app.get(&format!("/avs/v0/avs/{sid}"), &token).await;
    }
    assert_eq!(app.upstream.hits(), 2);
}

#[tokio::test]
async fn invalid_search_parameters_are_400_without_an_upstream_request() {
    let app = TestApp::start().await;
    let token = owner_token();
    for query in [
        "",
        "stationNo=500",
        "appointmentIen=1",
        "stationNo=&appointmentIen=1",
        "stationNo=500&appointmentIen=",
        "stationNo=50a&appointmentIen=1",
        "stationNo=500&appointmentIen=1%0A",
        "stationNo=%0A500&appointmentIen=1",
        "stationNo=-500&appointmentIen=1",
        "stationNo=500&appointmentIen=123456789012345678901",
        "stationNo=%EF%BC%95&appointmentIen=1", // a full-width digit
    ] {
        let r = app.get(&format!("/avs/v0/avs/search?{query}"), &token).await;
        r.assert_error(
            400,
            "Invalid parameters",
            "Station number and Appointment IEN must be present and valid.",
        );
    }
    assert_eq!(app.upstream.hits(), 0);
    app.get(
        "/avs/v0/avs/search?stationNo=12345678901234567890&appointmentIen=1",
        &token,
    )
    .await;
    assert_eq!(app.upstream.hits(), 1, "20 digits is valid");
}

#[tokio::test]
async fn authentication_and_gate_come_before_validation() {
    let app = TestApp::builder()
        .toggles("[features.avs_enabled]\nboolean = false\n")
        .start()
        .await;
    app.get_anonymous("/avs/v0/avs/bad")
        .await
        .assert_error(401, "Not authorized", "Not authorized");
    app.get("/avs/v0/avs/bad", &owner_token()).await.assert_error(
        404,
        "Not found",
        "There are no routes matching your request",
    );
    app.get("/avs/v0/avs/", &owner_token()).await.assert_error(
        404,
        "Not found",
        "There are no routes matching your request",
    );
    assert_eq!(app.upstream.hits(), 0);
}

/// The summary route is served past the router when its sid needs no decoding, and through it
/// when it does (`http::Api`): both ways answer alike, for every outcome. (That both count under
/// the route's template is shown on the binary's own metrics, which no other test moves:
/// `binary::the_summary_route_counts_under_its_template_both_ways`.)
#[tokio::test]
async fn the_summary_route_answers_alike_past_the_router_and_through_it() {
    let app = TestApp::start().await;
    let (mine, theirs, missing) = (
        "0123456789ABCDEF0123456789ABCDEF",
        "1123456789ABCDEF0123456789ABCDEF",
        "2123456789ABCDEF0123456789ABCDEF",
    );
    for (sid, icn) in [(mine, DEV_ICN), (theirs, OTHER_ICN)] {
        app.upstream
            .summary(&serde_json::json!({"sid": sid, "data": {"patientInfo": {"icn": icn}}}));
    }
    let token = owner_token();
    let short = "A".repeat(29);
    for (sid, status) in [(mine, 200), (theirs, 403), (missing, 404), (short.as_str(), 400)] {
        let past = app.get(&format!("/avs/v0/avs/{sid}"), &token).await;
        // The same sid with its first character percent-encoded: only the router decodes it.
        let encoded = format!("%{:02X}{}", sid.as_bytes()[0], &sid[1..]);
        let through = app.get(&format!("/avs/v0/avs/{encoded}"), &token).await;
        assert_eq!(past.status, status, "{sid}");
        assert_eq!(
            (through.status, &through.bytes),
            (past.status, &past.bytes),
            "{sid}"
        );
        let headers = |r: &TestResponse| {
            let mut h = r.headers.clone();
            h.remove("x-request-id");
            format!("{h:?}")
        };
        assert_eq!(headers(&through), headers(&past), "{sid}");
    }
}
