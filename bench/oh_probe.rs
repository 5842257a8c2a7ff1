//! In-process Oracle Health measurements for bench/oh.sh: 64 concurrent cold downloads of a
//! 10 MiB document (peak resident memory against the document budget, upstream bytes calls),
//! and four documents at 0.5 s upstream latency in one compatibility answer. Prints `name value`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use avs_api::config::{Config, Vars};
use avs_api::identity::{DevToken, dev_token};
use avs_api::{AppState, Upstreams, app};
use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use bytes::Bytes;
use serde_json::json;
use tower::ServiceExt;

const ICN: &str = "1012345678V123456";

struct Uhd {
    bytes_calls: AtomicUsize,
    delay: Duration,
    metadata: Bytes,
    /// The bytes Bundle of each document, built once (base64 inside JSON).
    documents: std::collections::HashMap<String, Bytes>,
}

async fn uhd(docs: &[(&str, usize)], delay: Duration) -> (Arc<Uhd>, String) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut entry = Vec::new();
    let mut documents = std::collections::HashMap::new();
    for (id, size) in docs {
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.resize(*size, b'x');
        entry.push(
            json!({"resource": {"resourceType": "Encounter", "id": format!("e-{id}"),
            "appointment": [{"reference": "Appointment/A-1"}]}}),
        );
        entry.push(json!({"resource": {"resourceType": "DocumentReference", "id": id, "date": "2026-11-30",
            "subject": {"reference": "Patient/p"}, "context": {"encounter": [{"reference": format!("Encounter/e-{id}")}]},
            "content": [{"attachment": {"contentType": "application/pdf", "url": format!("x/Binary/XR-{id}")}}]}}));
        let bundle = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "DocumentReference", "id": id, "subject": {"reference": "Patient/p"},
                "content": [{"attachment": {"contentType": "application/pdf", "url": format!("x/Binary/XR-{id}")}}]}},
            {"resource": {"resourceType": "Binary", "id": format!("XR-{id}"), "contentType": "application/pdf", "data": b64.encode(&pdf)}}]});
        documents.insert((*id).to_owned(), Bytes::from(bundle.to_string()));
    }
    let state = Arc::new(Uhd {
        bytes_calls: AtomicUsize::new(0),
        delay,
        metadata: Bytes::from(json!({"resourceType": "Bundle", "entry": entry}).to_string()),
        documents,
    });
    let json = |b: Bytes| ([("content-type", "application/json")], b);
    let s1 = state.clone();
    let s2 = state.clone();
    let router = axum::Router::new()
        .route(
            "/login",
            axum::routing::post(|| async { ([("authorization", "Bearer bench")], "{}") }),
        )
        .route(
            "/avs/oracle-health",
            axum::routing::get(move || {
                let s = s1.clone();
                async move { json(s.metadata.clone()) }
            }),
        )
        .route(
            "/document-reference/oracle-health/{id}",
            axum::routing::get(move |axum::extract::Path(id): axum::extract::Path<String>| {
                let s = s2.clone();
                async move {
                    s.bytes_calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(s.delay).await;
                    json(s.documents[&id].clone())
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (state, url)
}

async fn service(uhd_url: &str, budget: u64) -> (avs_api::Api, AppState) {
    let dir = std::env::temp_dir().join(format!("avs-oh-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toggles = dir.join("toggles.toml");
    std::fs::write(
        &toggles,
        "[features.va_online_scheduling_add_OH_avs]\nboolean = true\n",
    )
    .unwrap();
    let vars: Vars = [
        ("AVS_ENV", "test".to_owned()),
        // The probes hold claims tokens (`dev_token`); SiS needs a vets-api to ask.
        ("AVS_IDENTITY", "claims".to_owned()),
        ("AVS_UPSTREAM_URL", uhd_url.to_owned()),
        ("AVS_OH_UPSTREAM_URL", uhd_url.to_owned()),
        ("AVS_OH_LOGIN_URL", format!("{uhd_url}login")),
        ("AVS_PROXY_URL", "direct".to_owned()),
        ("AVS_TOGGLES", format!("file:{}", toggles.display())),
        ("AVS_OH_DOC_CACHE_MAX_BYTES", budget.to_string()),
        ("AVS_MAX_IN_FLIGHT_PER_CALLER", "1000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_vars(&vars).unwrap();
    let state = AppState::new(&config, Upstreams::resolve(&config, None).unwrap())
        .await
        .unwrap();
    (app(state.clone()), state)
}

fn token() -> String {
    dev_token(&DevToken {
        sub: "bench",
        icn: Some(ICN),
        email: None,
        ttl_secs: 3600,
        issuer: None,
        audience: None,
    })
    .unwrap()
}

async fn get(router: &avs_api::Api, uri: &str, token: &str) -> (u16, usize) {
    let request = Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, body.len())
}

/// Resident memory now and its peak since the last reset, in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::main]
async fn main() {
    let token = token();
    // 64 concurrent cold downloads of one 10 MiB document.
    let budget: u64 = 64 << 20;
    let (uhd_state, url) = uhd(&[("big", 10 << 20)], Duration::from_millis(100)).await;
    let (router, _state) = service(&url, budget).await;
    get(&router, "/avs/v0/oh/summaries", &token).await; // the index, and the login
    // Reset the peak to the resident memory now (the stub's prepared bundle included).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (before, _) = rss();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (router, token) = (router.clone(), token.clone());
        tasks.spawn(async move { get(&router, "/avs/v0/oh/documents/big", &token).await });
    }
    let answers = tasks.join_all().await;
    let (after, peak) = rss();
    assert!(
        answers.iter().all(|(s, n)| *s == 200 && *n == 10 << 20),
        "{answers:?}"
    );
    println!(
        "oh_cold_64x10MiB_ms {:.0}",
        started.elapsed().as_secs_f64() * 1000.0
    );
    println!(
        "oh_cold_64x10MiB_bytes_calls {}",
        uhd_state.bytes_calls.load(Ordering::SeqCst)
    );
    println!("oh_cold_64x10MiB_rss_before_mib {before:.1}");
    println!("oh_cold_64x10MiB_rss_peak_mib {peak:.1}");
    println!("oh_cold_64x10MiB_rss_after_mib {after:.1}");
    println!(
        "oh_cold_64x10MiB_peak_growth_mib {:.1} (budget {} MiB + 64 MiB allowed)",
        peak - before,
        budget >> 20
    );

    // Four documents at 0.5 s upstream latency each, in one compatibility answer.
    let (_, url) = uhd(
        &[("c1", 300_000), ("c2", 300_000), ("c3", 300_000), ("c4", 300_000)],
        Duration::from_millis(500),
    )
    .await;
    let (router, _state) = service(&url, budget).await;
    get(&router, "/avs/v0/oh/summaries", &token).await;
    let started = Instant::now();
    let (status, _) = get(
        &router,
        "/avs/v0/oh/appointments/A-1/binaries?doc_ids=c1,c2,c3,c4",
        &token,
    )
    .await;
    assert_eq!(status, 200);
    println!(
        "oh_compat_4_docs_at_500ms_ms {:.0}",
        started.elapsed().as_secs_f64() * 1000.0
    );
}
