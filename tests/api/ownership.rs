//! The ICN rule, on the summary and on the search.

use serde_json::{Value, json};

use crate::support::*;

const SID: &str = "0123456789ABCDEF0123456789ABCDEF";

fn doc_with_icn(icn: Option<Value>) -> Value {
    let mut patient = json!({"smokingStatus": "NEVER SMOKER"});
    if let Some(icn) = icn {
        patient["icn"] = icn;
    }
    json!({"sid": SID, "data": {"patientInfo": patient}})
}

async fn show_status(doc_icn: Option<Value>, caller_icn: Option<&str>) -> u16 {
    let app = TestApp::start().await;
    app.upstream.summary(&doc_with_icn(doc_icn));
    let token = rs256(&claims("u-1", caller_icn, None));
    app.get(&format!("/avs/v0/avs/{SID}"), &token)
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn summary_icn_rule() {
    let cases: [(Option<Value>, Option<&str>, u16, &str); 9] = [
        (
            Some(json!("1234567890V123456")),
            Some("1234567890V123456"),
            200,
            "same, with checksum",
        ),
        (
            Some(json!("1234567890")),
            Some("1234567890V123456"),
            200,
            "document without checksum",
        ),
        (
            Some(json!("1234567890V123456")),
            Some("1234567890"),
            200,
            "caller without checksum",
        ),
        (
            Some(json!("1234567890V999999")),
            Some("1234567890V123456"),
            200,
            "different checksum",
        ),
        (
            Some(Value::Null),
            Some("1234567890V123456"),
            403,
            "null in the document",
        ),
        (None, Some("1234567890V123456"), 403, "absent from the document"),
        (Some(json!("1234567890V123456")), None, 403, "caller without icn"),
        (
            Some(json!("9999999999V123456")),
            Some("1234567890V123456"),
            403,
            "someone else's",
        ),
        (
            Some(json!("1234567890v123456")),
            Some("1234567890"),
            403,
            "lowercase v is no checksum",
        ),
    ];
    for (doc, caller, expected, case) in cases {
        assert_eq!(show_status(doc, caller).await, expected, "{case}");
    }
}

#[tokio::test]
async fn the_recorded_icn_null_and_short_documents() {
    // Shapes of the upstream recordings: icn_null has no sid at all; icn_short lacks a checksum.
    let app = TestApp::start().await;
    app.upstream.script(
        &format!("/avs/{FULL_SID}"),
        Scripted::json(
            &json!({"data": {"header": {"timeZone": "US/Pacific"}, "patientInfo": {"icn": null}}}),
        ),
    );
    app.get(&format!("/avs/v0/avs/{FULL_SID}"), &owner_token())
        .await
        .assert_not_yours("User may not view this AVS.");

    let app = TestApp::start().await;
    app.upstream.summary(&fixture("icn-short"));
    let sid = fixture("icn-short")["sid"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/avs/v0/avs/{sid}"), &owner_token())
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn search_icn_rule() {
    let app = TestApp::start().await;
    let rows = |icn: Value| Scripted::json(&json!([{"sid": FULL_SID, "icn": icn, "station": "500"}]));
    app.upstream
        .script("/avs-by-appointment/500/1", rows(json!("1012345678")))
        .script("/avs-by-appointment/500/2", rows(json!("1012345678V000001")))
        .script("/avs-by-appointment/500/3", rows(Value::Null))
        .script("/avs-by-appointment/500/4", rows(json!(OTHER_ICN)))
        .script("/avs-by-appointment/500/5", Scripted::json(&json!([])))
        .script(
            "/avs-by-appointment/500/6",
            Scripted::json(&json!([{"sid": FULL_SID, "icn": DEV_ICN}, {"sid": "A1B2C3D4E5F60718293A4B5C6D7E8F90", "icn": OTHER_ICN}])),
        );
    let token = owner_token();
    let path =
        json!({"path": format!("/my-health/medical-records/summaries-and-notes/visit-summary/{FULL_SID}")});
    let search = |ien: u32| format!("/avs/v0/avs/search?stationNo=500&appointmentIen={ien}");
    assert_eq!(app.get(&search(1), &token).await.json, path, "short icn matches");
    assert_eq!(
        app.get(&search(2), &token).await.json,
        path,
        "other checksum matches"
    );
    app.get(&search(3), &token)
        .await
        .assert_not_yours("User may not view the AVS for this appointment.");
    app.get(&search(4), &token)
        .await
        .assert_not_yours("User may not view the AVS for this appointment.");
    let empty = app.get(&search(5), &token).await;
    assert_eq!((empty.status.as_u16(), empty.json.clone()), (200, json!({})));
    assert_eq!(
        app.get(&search(6), &token).await.json,
        path,
        "the first row decides"
    );
    let no_icn_caller = rs256(&claims("u-2", None, None));
    app.get(&search(1), &no_icn_caller)
        .await
        .assert_not_yours("User may not view the AVS for this appointment.");
}

#[tokio::test]
async fn search_rows_of_the_wrong_shape_are_502() {
    let app = TestApp::start().await;
    app.upstream
        .script(
            "/avs-by-appointment/500/1",
            Scripted::json(&json!({"sid": FULL_SID})),
        )
        .script("/avs-by-appointment/500/2", Scripted::json(&json!(["x"])))
        .script(
            "/avs-by-appointment/500/3",
            Scripted::json(&json!([{"sid": "zz", "icn": DEV_ICN}])),
        );
    for ien in 1..=3 {
        app.get(
            &format!("/avs/v0/avs/search?stationNo=500&appointmentIen={ien}"),
            &owner_token(),
        )
        .await
        .assert_error(
            502,
            "Bad gateway",
            "The clinical source returned an invalid response",
        );
    }
    // An upstream 404 on the search means no summary.
    let r = app
        .get(
            "/avs/v0/avs/search?stationNo=500&appointmentIen=404",
            &owner_token(),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.json.clone()), (200, json!({})));
}
