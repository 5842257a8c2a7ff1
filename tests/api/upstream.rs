//! The upstream client: forward proxy, headers, body limit, outcome mapping.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn summary_uri() -> String {
    format!("/avs/v0/avs/{FULL_SID}")
}

#[tokio::test]
async fn every_upstream_call_goes_through_the_configured_proxy() {
    let proxy = RecordingProxy::start().await;
    let upstream = FakeUpstream::start().await;
    upstream.summary(&fixture("full"));
    let app = TestApp::builder()
        .upstream(upstream.clone())
        .envs(&[("AVS_PROXY_URL", &proxy.url())])
        .start()
        .await;
    assert_eq!(app.get(&summary_uri(), &owner_token()).await.status, 200);
    app.get(
        "/avs/v0/avs/search?stationNo=500&appointmentIen=1000",
        &owner_token(),
    )
    .await;
    assert_eq!(
        proxy.relayed(),
        vec![
            format!("GET http://{}/avs/{FULL_SID} HTTP/1.1", upstream.addr),
            format!(
                "GET http://{}/avs-by-appointment/500/1000 HTTP/1.1",
                upstream.addr
            ),
        ]
    );
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn no_proxy_hosts_bypass_the_proxy() {
    let proxy = RecordingProxy::start().await;
    let upstream = FakeUpstream::start().await;
    upstream.summary(&fixture("full"));
    let app = TestApp::builder()
        .upstream(upstream.clone())
        .envs(&[
            ("AVS_PROXY_URL", proxy.url().as_str()),
            ("AVS_NO_PROXY", "127.0.0.1"),
        ])
        .start()
        .await;
    assert_eq!(app.get(&summary_uri(), &owner_token()).await.status, 200);
    assert!(proxy.relayed().is_empty());
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn a_refused_proxy_is_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::builder()
        .envs(&[("AVS_PROXY_URL", &proxy)])
        .start()
        .await;
    app.get(&summary_uri(), &owner_token()).await.assert_error(
        503,
        "Service unavailable",
        "Backend Service Outage",
    );
    assert_eq!(app.upstream.hits(), 0);
}

#[tokio::test]
async fn upstream_requests_carry_the_documented_headers() {
    let app = TestApp::builder()
        .envs(&[("AVS_UPSTREAM_TOKEN", "upstream-secret")])
        .start()
        .await;
    app.upstream.summary(&fixture("full"));
    let request = get(&summary_uri())
        .header("authorization", format!("Bearer {}", owner_token()))
        .header("x-request-id", "req-42")
        .body(Body::empty())
        .unwrap();
    let r = app.send(request).await;
    assert_eq!(r.headers["x-request-id"], "req-42");
    let seen = app.upstream.seen();
    let (path, headers) = &seen[0];
    assert_eq!(path, &format!("/avs/{FULL_SID}"));
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(
        headers["user-agent"],
        concat!("avs-api/", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(headers["authorization"], "Bearer upstream-secret");
    assert_eq!(headers["x-request-id"], "req-42");
}

#[tokio::test]
async fn oversized_bodies_are_502_with_or_without_content_length() {
    let app = TestApp::builder()
        .envs(&[("AVS_UPSTREAM_MAX_BODY_BYTES", "1000")])
        .start()
        .await;
    app.upstream.summary(&fixture("full"));
    app.get(&summary_uri(), &owner_token()).await.assert_error(
        502,
        "Bad gateway",
        "The clinical source returned an invalid response",
    );

    // A chunked answer with no Content-Length is cut off at the limit too.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let chunk = "x".repeat(600);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
                len = chunk.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    let app = TestApp::builder()
        .envs(&[
            ("AVS_UPSTREAM_MAX_BODY_BYTES", "1000"),
            ("AVS_UPSTREAM_URL", &url),
        ])
        .start()
        .await;
    app.get(&summary_uri(), &owner_token()).await.assert_error(
        502,
        "Bad gateway",
        "The clinical source returned an invalid response",
    );
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_is_kept() {
    let upstream = FakeUpstream::start().await;
    upstream.script(
        &format!("/clinical/v1/avs/{FULL_SID}"),
        Scripted::json(&fixture("full")),
    );
    let base = format!("http://{}/clinical/v1", upstream.addr);
    let app = TestApp::builder()
        .upstream(upstream)
        .envs(&[("AVS_UPSTREAM_URL", &base)])
        .start()
        .await;
    assert_eq!(app.get(&summary_uri(), &owner_token()).await.status, 200);
}

#[tokio::test]
async fn a_get_a_kept_connection_drops_unanswered_is_sent_once_more_on_a_fresh_one() {
    // An upstream that keeps its first connection open after one answer, then closes it on
    // the next request without a byte: what a forward proxy does to a connection it dropped.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        let body = fixture("full").to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        while let Ok((mut socket, _)) = listener.accept().await {
            let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut answered = 0;
                while socket.read(&mut buf).await.unwrap_or(0) > 0 {
                    if first && answered == 1 {
                        return; // the second request on the kept connection: dropped unanswered
                    }
                    let _ = socket.write_all(answer.as_bytes()).await;
                    answered += 1;
                }
            });
        }
    });
    // The real binary: its metrics are its own, so the retry counted is this one.
    let server = serve(&[
        ("AVS_ENV", "test"),
        ("AVS_UPSTREAM_URL", &url),
        ("AVS_PROXY_URL", "direct"),
    ])
    .await;
    let token = dev_token(DEV_ICN, None);
    let other = fixture("full")["sid"].as_str().unwrap().to_ascii_lowercase();
    for sid in [FULL_SID.to_owned(), other] {
        let answer = client()
            .get(format!("http://{}/avs/v0/avs/{sid}", server.addr))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "not a 503 for {sid}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "the retry opened a fresh connection"
    );
    assert_eq!(
        series(&server, "avs_upstream_retries_total").await,
        1.0,
        "the retry is counted, once"
    );
}

/// Every clinical call, VistA's and Oracle Health's login, metadata and document alike, goes
/// through the forward proxy, and vets-api's (the keys and each session's user) never does:
/// told apart by the `Via` header tinyproxy adds to what it relays, request by request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_clinical_call_goes_through_the_proxy_and_vets_api_never_does() {
    let Some(proxy) = Tinyproxy::start().await else {
        return;
    };
    const OWNER: &str = "5d1e7c0a-0000-4000-8000-0000000000c1";
    let sis = FakeSis::start().await;
    sis.user(OWNER, Some("owner@example.com"), Some(DEV_ICN));
    let upstream = FakeUpstream::start().await;
    upstream.summary(&fixture("full"));
    upstream.uhd_login("uhd-token-1");
    upstream.uhd_metadata(
        DEV_ICN,
        &metadata(&[Doc("d-1", "A-1", &day(-1), "application/pdf", &[])], SUBJECT),
    );
    upstream.script(
        &doc_path("d-1"),
        Scripted::json(&bytes_bundle("d-1", "application/pdf", &pdf(500), SUBJECT)),
    );
    let mut env = sis.env();
    env.push(("AVS_PROXY_URL", proxy.url()));
    let app = TestApp::builder()
        .toggles(&format!("{TOGGLES_ON}{OH_ON}"))
        .upstream(upstream.clone())
        .envs(&env)
        .start()
        .await;
    let token = sis_token(SisKey::Current, &sis_user_claims(OWNER, "s-proxy"));
    for uri in [
        format!("/avs/v0/avs/{FULL_SID}"),
        "/avs/v0/oh/summaries".to_owned(),
        "/avs/v0/oh/documents/d-1".to_owned(),
    ] {
        let r = app.get(&uri, &token).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.json);
    }
    let seen = upstream.requests();
    for prefix in [
        format!("/avs/{FULL_SID}"),
        LOGIN.to_owned(),
        METADATA.to_owned(),
        doc_path("d-1"),
    ] {
        assert!(
            seen.iter().any(|r| r.uri.starts_with(&prefix)),
            "{prefix} was called"
        );
    }
    for request in &seen {
        assert!(via_tinyproxy(&request.headers), "{} came direct", request.uri);
    }
    let (keys, users) = (sis.jwks_requests(), sis.user_requests());
    assert!(!keys.is_empty() && !users.is_empty());
    for headers in keys.iter().chain(&users) {
        assert!(
            !via_tinyproxy(headers),
            "a vets-api call went through the proxy: {headers:?}"
        );
    }
}
