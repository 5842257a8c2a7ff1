//! Summaries in every coding: negotiated from `Accept-Encoding`, marked with `Content-Encoding`
//! and `Vary`, and decoding to the very identity bytes, for every fixture and for the VA.gov
//! frontend's own fixture.

use std::io::Read as _;

use axum::body::Body;
use bytes::Bytes;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::*;

/// `GET uri` with this `Accept-Encoding`: status, headers and the body as sent.
async fn get_encoded(app: &TestApp, uri: &str, accept: Option<&str>) -> (u16, axum::http::HeaderMap, Bytes) {
    let mut request = get(uri).header("authorization", format!("Bearer {}", owner_token()));
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    let response = avs_api::app(app.state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes)
}

fn decode(encoding: Option<&str>, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        Some("br") => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        }
        None => out.extend_from_slice(bytes),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

#[tokio::test]
async fn every_fixture_decodes_to_the_identity_bytes_in_every_coding() {
    let app = TestApp::start().await;
    let mut sids = Vec::new();
    for name in ["full", "minimal", "hostile", "icn-short"] {
        let doc = fixture(name);
        app.upstream.summary(&doc);
        sids.push(doc["sid"].as_str().unwrap().to_owned());
    }
    let frontend = read_json("tests/peer/frontend-fixture.json");
    for sid in &sids {
        let uri = format!("/avs/v0/avs/{sid}");
        let (status, headers, identity) = get_encoded(&app, &uri, None).await;
        assert_eq!(status, 200, "{sid}");
        assert!(headers.get("content-encoding").is_none(), "no header: identity");
        assert_eq!(headers["vary"], "accept-encoding");
        let json: Value = serde_json::from_slice(&identity).unwrap();
        Contract::get().check(&axum::http::Method::GET, &uri, axum::http::StatusCode::OK, &json);
        if sid == FULL_SID {
            assert_eq!(json, frontend, "the frontend's fixture, rendered back");
        }
        for (accept, want) in [
            ("gzip, deflate, br", Some("br")),
            ("gzip, deflate, br, zstd", Some("br")),
            ("gzip, deflate", Some("gzip")),
            ("br;q=0.1, gzip", Some("gzip")),
            ("identity;q=0, gzip", Some("gzip")),
            ("*", Some("br")),
            ("deflate, compress", None),
            ("identity", None),
        ] {
            let (status, headers, bytes) = get_encoded(&app, &uri, Some(accept)).await;
            assert_eq!(status, 200);
            let encoding = headers.get("content-encoding").map(|v| v.to_str().unwrap());
            assert_eq!(encoding, want, "{accept}");
            assert_eq!(headers["vary"], "accept-encoding", "{accept}");
            assert_eq!(
                headers["content-length"].to_str().unwrap(),
                bytes.len().to_string(),
                "{accept}"
            );
            assert_eq!(
                decode(encoding, &bytes),
                identity,
                "{sid} with {accept}: decoded bytes differ"
            );
        }
    }
    let (_, _, full) = get_encoded(&app, &format!("/avs/v0/avs/{FULL_SID}"), None).await;
    let (_, _, gz) = get_encoded(&app, &format!("/avs/v0/avs/{FULL_SID}"), Some("gzip")).await;
    // Brotli's best replaces the fast form off the request's path, within moments of the miss.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let br = loop {
        let (_, _, br) = get_encoded(&app, &format!("/avs/v0/avs/{FULL_SID}"), Some("br")).await;
        if br.len() * 5 <= full.len() || std::time::Instant::now() > deadline {
            break br;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(decode(Some("br"), &br), full);
    assert!(br.len() * 5 <= full.len(), "br: {} of {}", br.len(), full.len());
    assert!(gz.len() * 4 <= full.len(), "gzip: {} of {}", gz.len(), full.len());
}

#[tokio::test]
async fn errors_links_and_searches_stay_uncompressed() {
    let app = TestApp::start().await;
    let (status, headers, bytes) = get_encoded(
        &app,
        "/avs/v0/avs/search?stationNo=500&appointmentIen=1",
        Some("br, gzip"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        serde_json::json!({})
    );
    let (status, headers, _) = get_encoded(&app, "/avs/v0/avs/not-a-sid", Some("br")).await;
    assert_eq!(status, 400);
    assert!(headers.get("content-encoding").is_none());
    // A links answer, asked for compressed, is not compressed either.
    let links = axum::http::Request::builder()
        .method("POST")
        .uri("/avs/v0/avs/links")
        .header("authorization", format!("Bearer {}", owner_token()))
        .header("content-type", "application/json")
        .header("accept-encoding", "br, gzip")
        .body(Body::from(
            r#"{"appointments":[{"stationNo":"500","appointmentIen":"9876543"}]}"#,
        ))
        .unwrap();
    let response = avs_api::app(app.state.clone()).oneshot(links).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-encoding").is_none());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let links: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(links["data"].is_array(), "{links}");
}
