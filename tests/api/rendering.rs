//! Rendering: order, camelCase at depth, defaults, meta and patientInfo, drift, no ICN, HTML.

use serde_json::{Value, json};

use crate::support::*;

const SID: &str = "0123456789abcdef0123456789abcdef";

async fn render(doc: Value) -> (Value, bytes::Bytes) {
    let app = TestApp::start().await;
    app.upstream.summary(&doc);
    let sid = doc["sid"].as_str().unwrap();
    let r = app.get(&format!("/avs/v0/avs/{sid}"), &owner_token()).await;
    assert_eq!(r.status, 200, "{}", r.json);
    (r.json["data"]["attributes"].clone(), r.bytes)
}

#[tokio::test]
async fn attributes_are_the_31_keys_in_contract_order() {
    let (attrs, _) = render(fixture("full")).await;
    let keys: Vec<&str> = attrs.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, avs_api::domain::ATTRIBUTES);
    assert_eq!(keys.len(), 31);
}

#[tokio::test]
async fn keys_are_camel_case_at_every_depth_and_values_untouched() {
    let doc = json!({
        "sid": SID,
        "generatedDate": "2024-01-02T03:04:05Z",
        "appointmentIens": ["1"],
        "data": {
            "header": {"station_no": "500", "time_zone": "US/Eastern", "page_header": "<div>A</div>"},
            "patient_info": {"icn": DEV_ICN, "smoking_status": "NEVER"},
            "clinics_visited": [{"_t": "ClinicVisited", "clinic_ien": "5", "nested_list": [{"deep_key": "snake_value"}]}],
            "discrete_data": {"pulse_ox": [{"_t": "DiscreteItem", "fm_date": 3230101.08}]},
            "radiology_reports_1_yr": "text_with_underscores",
            "primaryCareTeam": "already camel",
        }
    });
    let (a, _) = render(doc).await;
    assert_eq!(
        a["clinicsVisited"],
        json!([{"T": "ClinicVisited", "clinicIen": "5", "nestedList": [{"deepKey": "snake_value"}]}])
    );
    assert_eq!(
        a["discreteData"],
        json!({"pulseOx": [{"T": "DiscreteItem", "fmDate": 3230101.08}]})
    );
    assert_eq!(a["radiologyReports1Yr"], "text_with_underscores");
    assert_eq!(a["primaryCareTeam"], "already camel");
    assert_eq!(
        a["meta"],
        json!({"generatedDate": "2024-01-02T03:04:05Z", "stationNo": "500", "pageHeader": "A", "timeZone": "US/Eastern"})
    );
    assert_eq!(a["patientInfo"], json!({"smokingStatus": "NEVER"}));
    assert_eq!(a["id"], SID, "the sid as sent, lowercase kept");
}

#[tokio::test]
async fn absent_attributes_get_their_defaults() {
    let (a, _) = render(json!({"sid": SID, "data": {"patientInfo": {"icn": DEV_ICN}}})).await;
    for list in [
        "appointmentIens",
        "clinicsVisited",
        "providers",
        "reasonForVisit",
        "diagnoses",
        "vitals",
        "procedures",
        "immunizations",
        "appointments",
        "pharmacyTerms",
        "primaryCareProviders",
        "primaryCareTeamMembers",
        "problems",
        "clinicalReminders",
        "clinicalServices",
        "clinicMedications",
        "vaMedications",
        "nonvaMedications",
        "labResults",
    ] {
        assert_eq!(a[list], json!([]), "{list}");
    }
    // #27: VA.gov's page heads any array with "New orders from this appointment".
    assert_eq!(a["orders"], Value::Null, "absent orders are null");
    for scalar in [
        "patientInstructions",
        "patientEducation",
        "primaryCareTeam",
        "allergiesReactions",
        "medChangesSummary",
        "radiologyReports1Yr",
        "discreteData",
        "moreHelpAndInformation",
    ] {
        assert_eq!(a[scalar], Value::Null, "{scalar}");
    }
    assert_eq!(
        a["meta"],
        json!({"generatedDate": null, "stationNo": null, "pageHeader": null, "timeZone": null})
    );
    assert_eq!(a["patientInfo"], json!({"smokingStatus": ""}));
    // null lists are [] too: the frontend iterates them without a check.
    let (a, _) =
        render(json!({"sid": SID, "data": {"patientInfo": {"icn": DEV_ICN}, "clinicsVisited": null}})).await;
    assert_eq!(a["clinicsVisited"], json!([]));
}

#[tokio::test]
async fn unknown_keys_are_dropped_and_the_icn_never_leaves() {
    let mut doc = fixture("full");
    doc["data"]["futureSection"] = json!({"icn": DEV_ICN});
    doc["data"]["patientInfo"]["name"] = json!("Test,Patient");
    doc["data"]["patientInfo"]["ssn"] = json!("000-00-0000");
    let (a, bytes) = render(doc).await;
    assert!(a.get("futureSection").is_none() && a.get("header").is_none());
    let body = String::from_utf8_lossy(&bytes);
    for secret in [DEV_ICN, "1012345678", "000-00-0000", "Test,Patient"] {
        assert!(!body.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
async fn hostile_html_is_sanitised_in_all_three_fields() {
    let (a, bytes) = render(fixture("hostile")).await;
    let body = String::from_utf8_lossy(&bytes).to_lowercase();
    for gone in [
        "<script",
        "alert(",
        "onerror",
        "onclick",
        "onmouseover",
        "javascript:",
        "<iframe",
        "<style",
        "<img",
        "display:none",
    ] {
        assert!(!body.contains(gone), "{gone} survived");
    }
    let instructions = a["patientInstructions"].as_str().unwrap();
    for kept in [
        "<p>",
        "<b>one</b>",
        "<br>",
        "<ul><li>Rest</li></ul>",
        "<a href=\"https://www.va.gov/\">VA</a>",
    ] {
        assert!(instructions.contains(kept), "{kept} lost from {instructions}");
    }
    let help = a["moreHelpAndInformation"].as_str().unwrap();
    assert!(
        help.contains("<div>Help <strong>here</strong></div>") && help.contains("<ol><li>Call</li></ol>"),
        "{help}"
    );
    // Plain text (#27): VA.gov prints it as text, so `&amp;` showed literally.
    assert_eq!(a["meta"]["pageHeader"], "After Visit Summary\nTest & Hostile");
}

#[tokio::test]
async fn the_large_fixture_renders() {
    // The embedded fixture upstream's ~1 MB document, through the same client code.
    let data = avs_api::clinical::fixture::FixtureData::shipped().unwrap();
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", upstream.local_addr().unwrap());
    let router = avs_api::clinical::fixture::router(std::sync::Arc::new(data));
    tokio::spawn(async move { axum::serve(upstream, router).await.unwrap() });
    let app = TestApp::builder()
        .envs(&[("AVS_UPSTREAM_URL", &url)])
        .start()
        .await;
    let sid = avs_api::clinical::fixture::LARGE_SID;
    let r = app.get(&format!("/avs/v0/avs/{sid}"), &owner_token()).await;
    assert_eq!(r.status, 200);
    assert!(r.bytes.len() > 900_000, "{}", r.bytes.len());
    assert!(
        r.json["data"]["attributes"]["labResults"]
            .as_array()
            .unwrap()
            .len()
            > 100
    );
}
