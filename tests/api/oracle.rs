//! Oracle Health summaries through the HTTP API against a UHD stub that speaks the spec's
//! shapes (oracle-health.md): the list, one appointment, the document (bytes, validators,
//! ranges), the compatibility route, ownership and its index, the login, content checks, bad
//! input, and upstream failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::*;

/// The owner's three documents: two for appointment A-1 (yesterday, a week ago), one text
/// document for A-2 (a month ago); and the stub's login.
async fn oh_app(extra: &[(&str, &str)]) -> TestApp {
    let app = TestApp::builder()
        .toggles(&format!("{TOGGLES_ON}{OH_ON}"))
        .envs(extra)
        .start()
        .await;
    let up = &app.upstream;
    up.uhd_login("uhd-token-1");
    up.uhd_metadata(
        DEV_ICN,
        &metadata(
            &[
                Doc(
                    "d-new",
                    "A-1",
                    &day(-1),
                    "application/pdf",
                    &["4189669", "96345-4"],
                ),
                Doc("d-old", "A-1", &day(-7), "application/pdf", &["68834-1"]),
                Doc("d-text", "A-2", &day(-30), "text/plain", &["18842-5"]),
            ],
            SUBJECT,
        ),
    );
    up.uhd_metadata(
        OTHER_ICN,
        &metadata(
            &[Doc("d-theirs", "B-1", &day(-2), "application/pdf", &[])],
            "Patient/other",
        ),
    );
    up.script(
        &doc_path("d-new"),
        Scripted::json(&bytes_bundle("d-new", "application/pdf", &pdf(5000), SUBJECT)),
    );
    up.script(
        &doc_path("d-old"),
        Scripted::json(&bytes_bundle("d-old", "application/pdf", &pdf(300), SUBJECT)),
    );
    up.script(
        &doc_path("d-text"),
        Scripted::json(&bytes_bundle("d-text", "text/plain", b"take care", SUBJECT)),
    );
    up.script(
        &doc_path("d-theirs"),
        Scripted::json(&bytes_bundle(
            "d-theirs",
            "application/pdf",
            &pdf(100),
            "Patient/other",
        )),
    );
    app
}

fn stranger_token() -> String {
    rs256(&claims("u-2", Some(OTHER_ICN), None))
}

async fn send_with(app: &TestApp, uri: &str, headers: &[(&str, &str)]) -> TestResponse {
    let mut request = get(uri).header("authorization", format!("Bearer {}", owner_token()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn the_list_has_every_document_grouped_by_appointment_newest_first() {
    let app = oh_app(&[]).await;
    let r = app.get("/avs/v0/oh/summaries?unknown=1", &owner_token()).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let data = r.json["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], "A-1");
    assert_eq!(
        data[0]["attributes"]["date"],
        day(-1),
        "the newest document's date"
    );
    let items = data[0]["attributes"]["avsPdf"].as_array().unwrap();
    assert_eq!(
        items.len(),
        2,
        "every document of the appointment, not only the first"
    );
    assert_eq!(
        items[0],
        json!({"id": "d-new", "apptId": "A-1", "name": "After Visit Summary", "noteType": "ambulatory_patient_summary",
               "loincCodes": ["4189669", "96345-4"], "contentType": "application/pdf", "binary": null})
    );
    assert_eq!(items[1]["noteType"], "primary_care_note");
    assert_eq!(data[1]["attributes"]["avsPdf"][0]["contentType"], "text/plain");
    assert_eq!(r.json["meta"]["count"], 2);
    assert_eq!(r.json["meta"]["endDate"], day(0));
    // The date filter applies to the index, inclusive; nothing more is asked upstream.
    let week = app
        .get(
            &format!("/avs/v0/oh/summaries?startDate={}&endDate={}", day(-7), day(-1)),
            &owner_token(),
        )
        .await;
    assert_eq!(week.json["meta"]["count"], 1);
    assert_eq!(
        week.json["data"][0]["attributes"]["avsPdf"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(app.upstream.calls(METADATA), 1, "one metadata call, cached");
    assert_eq!(app.upstream.calls(LOGIN), 1);
}

#[tokio::test]
async fn one_appointment_and_an_unknown_one() {
    let app = oh_app(&[]).await;
    let r = app.get("/avs/v0/oh/appointments/A-2", &owner_token()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["data"]["type"], "avs_oh_appointment");
    assert_eq!(r.json["data"]["attributes"]["avsPdf"][0]["id"], "d-text");
    app.get("/avs/v0/oh/appointments/B-1", &owner_token())
        .await
        .assert_error(404, "Not found", "No Oracle Health summary found");
}

#[tokio::test]
async fn the_document_is_its_bytes_with_validators_ranges_and_safe_headers() {
    let app = oh_app(&[]).await;
    let uri = "/avs/v0/oh/documents/d-new";
    let r = send_with(&app, uri, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.bytes[..], &pdf(5000)[..]);
    let h = &r.headers;
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["content-length"], "5000");
    assert_eq!(
        h["content-disposition"],
        "inline; filename=\"after-visit-summary-d-new.pdf\""
    );
    assert_eq!(h["cache-control"], "private, no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cross-origin-resource-policy"], "same-site");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["accept-ranges"], "bytes");
    assert!(
        !h.contains_key("content-security-policy"),
        "a PDF viewer refuses a sandbox"
    );
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"'), "strong: {etag}");

    let download = send_with(&app, &format!("{uri}?download=1"), &[]).await;
    assert_eq!(
        download.headers["content-disposition"],
        "attachment; filename=\"after-visit-summary-d-new.pdf\""
    );
    let unchanged = send_with(&app, uri, &[("if-none-match", &etag)]).await;
    assert_eq!((unchanged.status.as_u16(), unchanged.bytes.len()), (304, 0));
    let part = send_with(&app, uri, &[("range", "bytes=0-4")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(&part.bytes[..], b"%PDF-");
    assert_eq!(part.headers["content-range"], "bytes 0-4/5000");
    assert_eq!(part.headers["content-length"], "5");
    let past = send_with(&app, uri, &[("range", "bytes=9000-")]).await;
    past.assert_error(
        416,
        "Range not satisfiable",
        "The requested range is not within the document",
    );
    assert_eq!(past.headers["content-range"], "bytes */5000");
    let head = app
        .send(
            axum::http::Request::head(uri)
                .header("authorization", format!("Bearer {}", owner_token()))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!((head.status.as_u16(), head.bytes.len()), (200, 0));
    assert_eq!(head.headers["content-length"], "5000");

    let text = send_with(&app, "/avs/v0/oh/documents/d-text", &[]).await;
    assert_eq!(&text.bytes[..], b"take care");
    assert_eq!(text.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        text.headers["content-security-policy"],
        "sandbox; default-src 'none'"
    );
    assert!(
        text.headers["content-disposition"]
            .to_str()
            .unwrap()
            .ends_with(".txt\"")
    );
    assert_eq!(
        app.upstream.calls("/oh/document-reference"),
        2,
        "cached documents: one bytes call each"
    );
}

#[tokio::test]
async fn another_patients_document_is_404_and_guessing_costs_at_most_one_refresh() {
    let app = oh_app(&[("AVS_OH_INDEX_REFRESH_MIN_SECS", "30")]).await;
    let theirs = app.get("/avs/v0/oh/documents/d-theirs", &owner_token()).await;
    theirs.assert_error(404, "Not found", "No Oracle Health summary found");
    for n in 0..20 {
        let r = app
            .get(&format!("/avs/v0/oh/documents/guess-{n}"), &owner_token())
            .await;
        assert_eq!(r.status, 404);
    }
    assert_eq!(
        app.upstream.calls(METADATA),
        1,
        "the index just loaded is fresh: no refresh for 30 s"
    );
    assert_eq!(
        app.upstream.calls("/oh/document-reference"),
        0,
        "no bytes call for anything not owned"
    );
    let compat = app
        .get(
            "/avs/v0/oh/appointments/B-1/binaries?doc_ids=d-theirs",
            &owner_token(),
        )
        .await;
    assert_eq!(
        compat.json["data"][0]["attributes"]["error"],
        "Retrieved empty AVS binary"
    );
    // Its owner gets it.
    assert_eq!(
        app.get("/avs/v0/oh/documents/d-theirs", &stranger_token())
            .await
            .status,
        200
    );
}

/// The spec serves a decoded document only after the index check, on every request: once the
/// owner's document is cached (its bytes fetched once), another patient is refused it in every
/// way of asking, raw, `HEAD`, `Range` and the compatibility route, and nothing more is fetched.
#[tokio::test]
async fn a_cached_document_is_refused_to_another_patient_in_every_form() {
    let app = oh_app(&[]).await;
    let raw = "/avs/v0/oh/documents/d-new";
    assert_eq!(app.get(raw, &owner_token()).await.status, 200);
    let fetched = app.upstream.calls(&doc_path("d-new"));
    assert_eq!(fetched, 1);
    let stranger = stranger_token();
    let with = |method: &str, range: Option<&str>| {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(raw)
            .header("authorization", format!("Bearer {stranger}"));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.body(Body::empty()).unwrap()
    };
    for (what, request) in [
        ("GET", with("GET", None)),
        ("HEAD", with("HEAD", None)),
        ("Range", with("GET", Some("bytes=0-99"))),
        ("download", {
            let mut r = with("GET", None);
            *r.uri_mut() = format!("{raw}?download=1").parse().unwrap();
            r
        }),
    ] {
        // A HEAD's 404 has the error's headers and no body to hold to the contract.
        let r = if what == "HEAD" {
            app.send_raw(request).await
        } else {
            app.send(request).await
        };
        assert_eq!(r.status, 404, "{what} of another patient's cached document");
        assert!(!r.bytes.starts_with(b"%PDF"), "{what}: no byte of it");
    }
    for appt in ["A-1", "B-1"] {
        let compat = app
            .get(
                &format!("/avs/v0/oh/appointments/{appt}/binaries?doc_ids=d-new"),
                &stranger,
            )
            .await;
        assert_eq!(compat.status, 200, "{}", compat.json);
        let item = &compat.json["data"][0]["attributes"];
        assert_eq!(item["error"], "Retrieved empty AVS binary", "{appt}: {item}");
        assert!(item["binary"].is_null(), "{appt}: {item}");
    }
    // The owner's hit is still served from the cache.
    assert_eq!(app.get(raw, &owner_token()).await.status, 200);
    assert_eq!(
        app.upstream.calls(&doc_path("d-new")),
        fetched,
        "nothing more was fetched"
    );
}

#[tokio::test]
async fn a_document_written_after_the_index_is_found_after_one_refresh() {
    let app = oh_app(&[("AVS_OH_INDEX_REFRESH_MIN_SECS", "30")]).await;
    assert_eq!(app.get("/avs/v0/oh/summaries", &owner_token()).await.status, 200);
    app.upstream.script(
        &format!("{METADATA}#patientId={DEV_ICN}"),
        Scripted::json(&metadata(
            &[Doc("d-fresh", "A-9", &day(0), "application/pdf", &[])],
            SUBJECT,
        )),
    );
    app.upstream.script(
        &doc_path("d-fresh"),
        Scripted::json(&bytes_bundle("d-fresh", "application/pdf", &pdf(50), SUBJECT)),
    );
    // Within the refresh period: not yet.
    assert_eq!(
        app.get("/avs/v0/oh/documents/d-fresh", &owner_token())
            .await
            .status,
        404
    );
    advance(Duration::from_secs(31)).await;
    assert_eq!(
        app.get("/avs/v0/oh/documents/d-fresh", &owner_token())
            .await
            .status,
        200
    );
    assert_eq!(app.upstream.calls(METADATA), 2);
}

#[tokio::test]
async fn a_subject_that_differs_from_the_index_is_404() {
    let app = oh_app(&[]).await;
    app.upstream.script(
        &doc_path("d-old"),
        Scripted::json(&bytes_bundle(
            "d-old",
            "application/pdf",
            &pdf(300),
            "Patient/someone-else",
        )),
    );
    app.get("/avs/v0/oh/documents/d-old", &owner_token())
        .await
        .assert_error(404, "Not found", "No Oracle Health summary found");
}

#[tokio::test]
async fn unusable_content_is_502_and_oversize_too() {
    let app = oh_app(&[("AVS_OH_MAX_DOCUMENT_BYTES", "1000")]).await;
    let up = &app.upstream;
    up.script(
        &doc_path("d-old"),
        Scripted::json(&bytes_bundle("d-old", "application/pdf", b"GIF89a....", SUBJECT)),
    );
    let mut bad_base64 = bytes_bundle("d-text", "text/plain", b"x", SUBJECT);
    bad_base64["entry"][2]["resource"]["data"] = json!("not base64!");
    up.script(&doc_path("d-text"), Scripted::json(&bad_base64));
    for id in ["d-new", "d-old", "d-text"] {
        app.get(&format!("/avs/v0/oh/documents/{id}"), &owner_token())
            .await
            .assert_error(
                502,
                "Bad gateway",
                "The clinical source returned an invalid response",
            );
    }
    // Only an XML rendition: no usable content (502 here, "empty" for the old clients).
    let mut xml_only = bytes_bundle("d-new", "application/pdf", b"%PDF-", SUBJECT);
    xml_only["entry"][0]["resource"]["content"] =
        json!([{"attachment": {"contentType": "application/xml", "url": "x/Binary/XML-d-new"}}]);
    up.script(&doc_path("d-new"), Scripted::json(&xml_only));
    let app2 = oh_app(&[]).await;
    app2.upstream
        .script(&doc_path("d-new"), Scripted::json(&xml_only));
    assert_eq!(
        app2.get("/avs/v0/oh/documents/d-new", &owner_token())
            .await
            .status,
        502
    );
    let compat = app2
        .get(
            "/avs/v0/oh/appointments/A-1/binaries?doc_ids=d-new",
            &owner_token(),
        )
        .await;
    assert_eq!(
        compat.json["data"][0]["attributes"]["error"],
        "Retrieved empty AVS binary"
    );
}

#[tokio::test]
async fn the_compatibility_route_answers_as_vagov_reads_it() {
    let app = oh_app(&[]).await;
    app.upstream.script(&doc_path("d-old"), Scripted::status(500, ""));
    let r = app
        .get(
            "/avs/v0/oh/appointments/A-1/binaries?doc_ids=d-new,d-new,nope,d-old,d-text",
            &owner_token(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json,
        json!({"data": [
            {"id": "d-new", "type": "avs_binary", "attributes": {"docId": "d-new", "binary": b64(&pdf(5000))}},
            {"id": "nope", "type": "avs_binary", "attributes": {"docId": "nope", "error": "Retrieved empty AVS binary"}},
            {"id": "d-old", "type": "avs_binary", "attributes": {"docId": "d-old", "error": "Error retrieving AVS binary"}},
            {"id": "d-text", "type": "avs_binary", "attributes": {"docId": "d-text", "binary": b64(b"take care")}},
        ]})
    );
    let alias = app
        .get(
            "/avs/v0/oh/appointments/any-appt/binaries?docIds=d-text",
            &owner_token(),
        )
        .await;
    assert_eq!(alias.json["data"][0]["attributes"]["binary"], b64(b"take care"));
}

#[tokio::test]
async fn a_failed_index_fails_every_compat_item_with_200_and_the_list_with_502() {
    let app = oh_app(&[]).await;
    app.upstream.script(
        &format!("{METADATA}#patientId={DEV_ICN}"),
        Scripted::status(500, ""),
    );
    let r = app
        .get(
            "/avs/v0/oh/appointments/A-1/binaries?doc_ids=d-new,d-old",
            &owner_token(),
        )
        .await;
    assert_eq!(r.status, 200);
    for item in r.json["data"].as_array().unwrap() {
        assert_eq!(item["attributes"]["error"], "Error retrieving AVS binary");
    }
    app.get("/avs/v0/oh/summaries", &owner_token())
        .await
        .assert_error(
            502,
            "Bad gateway",
            "The clinical source returned an invalid response",
        );
    // An OperationOutcome error is a failure, not "no summaries".
    app.upstream.script(
        &format!("{METADATA}#patientId={DEV_ICN}"),
        Scripted::json(
            &json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error"}]}}]}),
        ),
    );
    assert_eq!(app.get("/avs/v0/oh/summaries", &owner_token()).await.status, 502);
}

#[tokio::test]
async fn a_slow_upstream_is_504_and_an_unreachable_one_503() {
    let app = oh_app(&[("AVS_OH_TIMEOUT_MS", "200")]).await;
    app.upstream.script(
        &format!("{METADATA}#patientId={DEV_ICN}"),
        Scripted::json(&metadata(&[], SUBJECT)).delayed(Duration::from_millis(600)),
    );
    app.get("/avs/v0/oh/summaries", &owner_token())
        .await
        .assert_error(
            504,
            "Gateway timeout",
            "Did not receive a timely response from an upstream server",
        );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nowhere = format!("http://{closed}/");
    let login = format!("http://{closed}/login");
    let gone = TestApp::builder()
        .toggles(OH_ON)
        .envs(&[("AVS_OH_UPSTREAM_URL", &nowhere), ("AVS_OH_LOGIN_URL", &login)])
        .start()
        .await;
    gone.get("/avs/v0/oh/summaries", &owner_token())
        .await
        .assert_error(503, "Service unavailable", "Backend Service Outage");
}

#[tokio::test]
async fn one_login_serves_every_call_and_a_401_renews_it_once() {
    let app = oh_app(&[("AVS_OH_API_KEY", "key-for-tests")]).await;
    // The stub refuses the first token on data calls; the second login gets another.
    app.upstream
        .script_once(
            LOGIN,
            Scripted::json(&json!({})).header("authorization", "Bearer uhd-token-1"),
        )
        .script(
            LOGIN,
            Scripted::json(&json!({})).header("x-amzn-remapped-authorization", "Bearer uhd-token-2"),
        );
    app.upstream.script(
        &format!("{METADATA}#auth=Bearer uhd-token-1"),
        Scripted::status(401, ""),
    );
    assert_eq!(app.get("/avs/v0/oh/summaries", &owner_token()).await.status, 200);
    assert_eq!(app.upstream.calls(LOGIN), 2, "renewed once after the 401");
    for _ in 0..5 {
        app.get("/avs/v0/oh/documents/d-new", &owner_token()).await;
        app.get("/avs/v0/oh/documents/d-old", &owner_token()).await;
    }
    assert_eq!(app.upstream.calls(LOGIN), 2, "the token is kept");
    let requests = app.upstream.requests();
    let login = requests.iter().find(|r| r.uri == LOGIN).unwrap();
    assert_eq!(login.method, "POST");
    let body: Value = serde_json::from_slice(&login.body).unwrap();
    assert_eq!(body["subject"], "avs-api");
    assert_eq!(body["userType"], "SYSTEM");
    assert_eq!(body["appId"], 1000);
    for data in requests
        .iter()
        .filter(|r| r.uri.starts_with("/oh/document-reference"))
    {
        assert_eq!(
            data.uri,
            "/oh/document-reference/oracle-health/d-new?includeBinary=true".replace(
                "d-new",
                data.uri.rsplit('/').next().unwrap().split('?').next().unwrap(),
            )
        );
        assert_eq!(data.headers["x-api-key"], "key-for-tests");
        assert_eq!(data.headers["x-mhv-client-application"], "VAGOV");
        assert_eq!(data.headers["accept"], "application/json");
        assert!(data.headers.contains_key("x-request-id"));
    }
    let metadata_call = requests.iter().rfind(|r| r.uri.starts_with(METADATA)).unwrap();
    assert!(
        metadata_call.uri.contains(&format!("startDate={}", day(-730))),
        "{}",
        metadata_call.uri
    );
    assert!(metadata_call.uri.contains(&format!("endDate={}", day(0))));
    // A 401 after a fresh login is not retried again.
    app.upstream.script(
        &format!("{METADATA}#patientId={OTHER_ICN}"),
        Scripted::status(401, ""),
    );
    assert_eq!(
        app.get("/avs/v0/oh/summaries", &stranger_token()).await.status,
        502
    );
    assert_eq!(app.upstream.calls(LOGIN), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_make_one_metadata_and_one_bytes_call() {
    let app = Arc::new(oh_app(&[("AVS_MAX_IN_FLIGHT_PER_CALLER", "100")]).await);
    app.upstream.script(
        &doc_path("d-new"),
        Scripted::json(&bytes_bundle("d-new", "application/pdf", &pdf(5000), SUBJECT))
            .delayed(Duration::from_millis(200)),
    );
    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let app = app.clone();
        tasks.spawn(async move {
            app.get("/avs/v0/oh/documents/d-new", &owner_token())
                .await
                .status
                .as_u16()
        });
    }
    assert!(tasks.join_all().await.iter().all(|s| *s == 200));
    assert_eq!(app.upstream.calls(METADATA), 1);
    assert_eq!(app.upstream.calls("/oh/document-reference"), 1);
    assert_eq!(app.upstream.calls(LOGIN), 1, "one login at a time, shared");
}

#[tokio::test]
async fn the_compat_route_fetches_concurrently_and_caps_the_answer() {
    let app = oh_app(&[]).await;
    let ids = ["c1", "c2", "c3", "c4"];
    let meta = metadata(
        &[
            Doc("c1", "A-5", &day(-3), "application/pdf", &[]),
            Doc("c2", "A-5", &day(-3), "application/pdf", &[]),
            Doc("c3", "A-5", &day(-3), "application/pdf", &[]),
            Doc("c4", "A-5", &day(-3), "application/pdf", &[]),
        ],
        SUBJECT,
    );
    app.upstream
        .script(&format!("{METADATA}#patientId={DEV_ICN}"), Scripted::json(&meta));
    for id in ids {
        app.upstream.script(
            &doc_path(id),
            Scripted::json(&bytes_bundle(id, "application/pdf", &pdf(1000), SUBJECT))
                .delayed(Duration::from_millis(500)),
        );
    }
    let started = Instant::now();
    let r = app
        .get(
            "/avs/v0/oh/appointments/A-5/binaries?doc_ids=c1,c2,c3,c4",
            &owner_token(),
        )
        .await;
    let took = started.elapsed();
    assert!(
        r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["attributes"]["binary"].is_string())
    );
    assert!(
        took < Duration::from_millis(950),
        "four at 0.5 s each, all at once: {took:?}"
    );
    // Five: at most four at a time, so the fifth starts when one of the four is done.
    let five = oh_app(&[]).await;
    let ids = ["c1", "c2", "c3", "c4", "c5"];
    let date = day(-3);
    let docs: Vec<Doc> = ids
        .iter()
        .map(|id| Doc(id, "A-5", &date, "application/pdf", &[]))
        .collect();
    five.upstream.script(
        &format!("{METADATA}#patientId={DEV_ICN}"),
        Scripted::json(&metadata(&docs, SUBJECT)),
    );
    for id in ids {
        five.upstream.script(
            &doc_path(id),
            Scripted::json(&bytes_bundle(id, "application/pdf", &pdf(1000), SUBJECT))
                .delayed(Duration::from_millis(500)),
        );
    }
    assert_eq!(five.get("/avs/v0/oh/summaries", &owner_token()).await.status, 200);
    let started = Instant::now();
    let r = five
        .get(
            "/avs/v0/oh/appointments/A-5/binaries?doc_ids=c1,c2,c3,c4,c5",
            &owner_token(),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(r.json["data"].as_array().unwrap().len(), 5);
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_millis(1450),
        "five at 0.5 s each, four at a time: two rounds, {took:?}"
    );

    // Three documents of 8 MiB: the third would pass 20 MiB in one answer.
    let big = oh_app(&[]).await;
    let eight = pdf(8 << 20);
    big.upstream.script(
        &format!("{METADATA}#patientId={DEV_ICN}"),
        Scripted::json(&metadata(
            &[
                Doc("b1", "A-6", &day(-3), "application/pdf", &[]),
                Doc("b2", "A-6", &day(-3), "application/pdf", &[]),
                Doc("b3", "A-6", &day(-3), "application/pdf", &[]),
            ],
            SUBJECT,
        )),
    );
    for id in ["b1", "b2", "b3"] {
        big.upstream.script(
            &doc_path(id),
            Scripted::json(&bytes_bundle(id, "application/pdf", &eight, SUBJECT)),
        );
    }
    let r = big
        .get(
            "/avs/v0/oh/appointments/A-6/binaries?doc_ids=b1,b2,b3",
            &owner_token(),
        )
        .await;
    let errors: Vec<&Value> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["attributes"]["error"])
        .collect();
    assert_eq!(
        errors,
        [&Value::Null, &Value::Null, &json!("Error retrieving AVS binary")]
    );
}

/// What Schemathesis sent (#25): a schema-valid `startDate` after the default `endDate` (today).
/// A reversed window holds nothing: an empty list, as the contract now says, not a 400.
#[tokio::test]
async fn a_window_that_ends_before_it_starts_is_an_empty_list() {
    let app = oh_app(&[]).await;
    for uri in [
        "/avs/v0/oh/summaries?startDate=9426-07-12",
        "/avs/v0/oh/summaries?startDate=2026-03-02&endDate=2026-03-01",
    ] {
        let r = app.get(uri, &owner_token()).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.json);
        assert_eq!(r.json["data"], json!([]));
        assert_eq!(r.json["meta"]["count"], 0);
    }
    assert_eq!(
        app.upstream.calls("/oh/"),
        0,
        "a window that holds nothing is answered without asking upstream"
    );
}

/// What Schemathesis sent (#35): dates further apart than 731 days, a cross-field rule the
/// schema cannot state. Served as the window's most recent 731 days, which `meta` names.
#[tokio::test]
async fn a_window_over_731_days_serves_its_most_recent_731() {
    let app = oh_app(&[]).await;
    let token = owner_token();
    let wide = format!("/avs/v0/oh/summaries?startDate=2019-01-01&endDate={}", day(0));
    let r = app.get(&wide, &token).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["meta"]["startDate"], day(-731));
    assert_eq!(r.json["meta"]["endDate"], day(0));
    let served = format!("/avs/v0/oh/summaries?startDate={}&endDate={}", day(-731), day(0));
    assert_eq!(
        app.get(&served, &token).await.json,
        r.json,
        "the same as asking for it"
    );
    let far = app
        .get(
            "/avs/v0/oh/summaries?startDate=2026-12-04&endDate=2845-02-11",
            &token,
        )
        .await;
    assert_eq!(far.status, 200, "{}", far.json);
    assert_eq!(far.json["meta"]["startDate"], "2843-02-11");
    assert_eq!(far.json["meta"]["endDate"], "2845-02-11");
}

#[tokio::test]
async fn bad_input_is_400_no_icn_is_403_and_neither_reaches_upstream() {
    let app = oh_app(&[]).await;
    let token = owner_token();
    for uri in [
        "/avs/v0/oh/summaries?startDate=2025-02-29",
        "/avs/v0/oh/summaries?startDate=2025-1-01",
        "/avs/v0/oh/summaries?endDate=2026-01-01&endDate=2026-01-02",
        "/avs/v0/oh/documents/a%2Fb",
        "/avs/v0/oh/documents/..%2F..%2Fetc",
        "/avs/v0/oh/documents/a.pdf",
        &format!("/avs/v0/oh/documents/{}", "x".repeat(65)),
        "/avs/v0/oh/appointments/a_b",
        "/avs/v0/oh/appointments/A-1/binaries",
        "/avs/v0/oh/appointments/A-1/binaries?doc_ids=",
        "/avs/v0/oh/appointments/A-1/binaries?doc_ids=a,b,c,d,e,f",
        "/avs/v0/oh/appointments/A-1/binaries?doc_ids=a/b",
        "/avs/v0/oh/appointments/A-1/binaries?doc_ids=a&docIds=b",
    ] {
        let r = app.get(uri, &token).await;
        assert_eq!(r.status, 400, "{uri}: {}", r.json);
        assert_eq!(r.error()["title"], "Invalid parameters");
    }
    // Five distinct ids after removing duplicates are fine: only then does it count.
    let no_icn = rs256(&claims("u-3", None, Some("no-icn@example.com")));
    for uri in [
        "/avs/v0/oh/summaries",
        "/avs/v0/oh/documents/d-new",
        "/avs/v0/oh/appointments/A-1/binaries?doc_ids=d-new",
    ] {
        app.get(uri, &no_icn).await.assert_error(
            403,
            "Forbidden",
            "The caller has no patient identity, so owns no summary",
        );
    }
    assert_eq!(app.upstream.hits(), 0, "no upstream call, the login included");
}

#[tokio::test]
async fn gated_off_or_off_is_404_and_unauthenticated_401_with_no_upstream_call() {
    let app = TestApp::start().await; // avs_enabled on, the OH toggle not
    for uri in [
        "/avs/v0/oh/summaries",
        "/avs/v0/oh/documents/d-new",
        "/avs/v0/oh/appointments/A-1",
    ] {
        app.get(uri, &owner_token()).await.assert_error(
            404,
            "Not found",
            "There are no routes matching your request",
        );
        app.get_anonymous(uri)
            .await
            .assert_error(401, "Not authorized", "Not authorized");
    }
    let off = TestApp::builder()
        .toggles(OH_ON)
        .envs(&[("AVS_OH_UPSTREAM_URL", "off")])
        .start()
        .await;
    assert_eq!(off.get("/avs/v0/oh/summaries", &owner_token()).await.status, 404);
    assert_eq!(app.upstream.hits() + off.upstream.hits(), 0);
}

/// The Oracle Health toggle's current stage in the rollout report.
async fn oh_stage(app: &TestApp) -> Value {
    let report = serde_json::to_value(app.state.rollout.report().await).unwrap();
    let toggle = report["toggles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["toggle"] == "va_online_scheduling_add_OH_avs")
        .unwrap_or_else(|| panic!("{report}"));
    toggle["stages"].as_array().unwrap().last().unwrap().clone()
}

#[tokio::test]
async fn the_rollout_report_counts_the_oh_toggle() {
    let app = oh_app(&[]).await;
    app.get("/avs/v0/oh/summaries", &owner_token()).await;
    let theirs = app.get("/avs/v0/oh/documents/d-new", &stranger_token()).await;
    assert_eq!(theirs.status, 404, "another patient's document: {}", theirs.json);
    let stage = oh_stage(&app).await;
    assert_eq!(stage["requests"], 2, "{stage}");
    assert_eq!(stage["uniqueActors"]["allowed"], 2, "{stage}");
    assert_eq!(
        stage["upstream"]["calls"], 2,
        "a metadata call per patient: {stage}"
    );
}

/// #26: the Oracle Health breaker keyed every metadata call by its path alone, so an outage of
/// that call could never reach `AVS_BREAKER_MIN_KEYS` distinct failing keys, and never open.
/// Keyed by patient, it opens; and its gauge is its own series, apart from VistA's.
#[tokio::test]
async fn a_metadata_outage_opens_the_oracle_breaker_and_its_gauge_is_its_own() {
    let app = oh_app(&[("AVS_BREAKER_MIN_CALLS", "10"), ("AVS_BREAKER_MIN_KEYS", "10")]).await;
    app.upstream.script(METADATA, Scripted::status(500, "{}"));
    let patient = |i: usize| {
        rs256(&claims(
            &format!("p-{i}"),
            Some(&format!("10{i:08}V123456")),
            None,
        ))
    };
    let mut open_at = None;
    for i in 0..30 {
        let r = app.get("/avs/v0/oh/summaries", &patient(i)).await;
        if r.status == 503 && r.headers.contains_key("retry-after") {
            open_at = Some(i);
            break;
        }
        assert_eq!(r.status, 502, "patient {i}: {}", r.json);
    }
    let open_at = open_at.expect("the breaker opened on a metadata outage");
    assert!(open_at >= 10, "not before 10 failing patients: {open_at}");
    let calls = app.upstream.calls(METADATA);
    for i in 100..105 {
        assert_eq!(app.get("/avs/v0/oh/summaries", &patient(i)).await.status, 503);
    }
    assert_eq!(app.upstream.calls(METADATA), calls, "open: no call");
    // The report counts calls as VistA's are counted: the refused ones were never made.
    let upstream = &oh_stage(&app).await["upstream"];
    assert_eq!(upstream["calls"], calls, "{upstream}");
    assert_eq!(upstream["failures"], calls, "{upstream}");
    // Its state is its own, apart from VistA's: this app's readiness says so (the gauges of
    // the process are shared with every other in-process test; `fail_closed` shows both
    // series on a binary of its own).
    app.upstream.summary(&fixture("full"));
    assert_eq!(
        app.get(&format!("/avs/v0/avs/{FULL_SID}"), &owner_token())
            .await
            .status,
        200
    );
    let ready = app.get_anonymous("/readyz").await;
    assert_eq!(ready.json["checks"]["oracle"], "open", "{}", ready.json);
    assert_eq!(ready.json["checks"]["upstream"], "closed", "{}", ready.json);
}

/// Documents loading share the byte budget (`AVS_OH_DOC_CACHE_MAX_BYTES`, at least one
/// document's worth): with room for one load at a time, three at once each wait their turn up
/// to the Oracle Health timeout; the one still waiting past it is answered 503 with
/// `Retry-After`, without an upstream call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_past_the_byte_budget_wait_then_answer_503() {
    let app = Arc::new(
        oh_app(&[
            ("AVS_OH_MAX_DOCUMENT_BYTES", "10240"),
            ("AVS_OH_DOC_CACHE_MAX_BYTES", "10240"),
            ("AVS_OH_TIMEOUT_MS", "700"),
        ])
        .await,
    );
    let slow = Duration::from_millis(450);
    for (id, content) in [("d-new", pdf(5000)), ("d-old", pdf(300))] {
        app.upstream.script(
            &doc_path(id),
            Scripted::json(&bytes_bundle(id, "application/pdf", &content, SUBJECT)).delayed(slow),
        );
    }
    app.upstream.script(
        &doc_path("d-text"),
        Scripted::json(&bytes_bundle("d-text", "text/plain", b"take care", SUBJECT)).delayed(slow),
    );
    // The index first, so the three loads start together.
    assert_eq!(app.get("/avs/v0/oh/summaries", &owner_token()).await.status, 200);
    let mut loads = tokio::task::JoinSet::new();
    for id in ["d-new", "d-old", "d-text"] {
        let app = app.clone();
        loads.spawn(async move {
            let started = std::time::Instant::now();
            let r = app
                .get(&format!("/avs/v0/oh/documents/{id}"), &owner_token())
                .await;
            (
                r.status.as_u16(),
                r.headers.get("retry-after").cloned(),
                started.elapsed(),
            )
        });
    }
    let answers = by_status(loads).await;
    let statuses: Vec<u16> = answers.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(statuses, [200, 200, 503], "{answers:?}");
    let (_, retry_after, waited) = &answers[2];
    assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
    assert!(
        *waited >= Duration::from_millis(650),
        "it waited its turn first: {waited:?}"
    );
    let fetched = ["d-new", "d-old", "d-text"]
        .iter()
        .filter(|id| app.upstream.calls(&doc_path(id)) > 0)
        .count();
    assert_eq!(fetched, 2, "the shed one was never asked for");
}
