//! In-process measurements for bench/run.sh: the cold stampede, the miss overhead and resident
//! memory once the cache is full. Prints `name value` lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use avs_api::config::{Config, Vars};
use avs_api::identity::{DevToken, dev_token};
use avs_api::{AppState, app};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::Request;
use axum::response::IntoResponse;
use tower::ServiceExt;

const ICN: &str = "1012345678V123456";

struct Upstream {
    hits: AtomicUsize,
    delay: Duration,
    /// The full fixture document with its sid replaced per request.
    template: String,
}

async fn summary(State(u): State<Arc<Upstream>>, Path(sid): Path<String>) -> impl IntoResponse {
    u.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(u.delay).await;
    (
        [("content-type", "application/json")],
        u.template.replace("9A7AF40B2BC2471EA116891839113252", &sid),
    )
}

async fn upstream(delay: Duration) -> (Arc<Upstream>, String) {
    let template =
        std::fs::read_to_string("fixtures/summaries/full.json").expect("run from the repository root");
    upstream_serving(delay, template).await
}

/// An upstream answering `template` (a document naming the full fixture's sid) for any sid.
async fn upstream_serving(delay: Duration, template: String) -> (Arc<Upstream>, String) {
    let state = Arc::new(Upstream {
        hits: AtomicUsize::new(0),
        delay,
        template,
    });
    let router = axum::Router::new()
        .route("/avs/{sid}", axum::routing::get(summary))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (state, url)
}

async fn service(upstream_url: &str, extra: &[(&str, &str)]) -> (avs_api::Api, AppState) {
    let dir = std::env::temp_dir().join(format!("avs-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toggles = dir.join("toggles.toml");
    std::fs::write(&toggles, "[features.avs_enabled]\nboolean = true\n").unwrap();
    let mut vars: Vars = [
        ("AVS_ENV", "test".to_owned()),
        // The probes hold claims tokens (`dev_token`); SiS needs a vets-api to ask.
        ("AVS_IDENTITY", "claims".to_owned()),
        ("AVS_UPSTREAM_URL", upstream_url.to_owned()),
        ("AVS_PROXY_URL", "direct".to_owned()),
        ("AVS_TOGGLES", format!("file:{}", toggles.display())),
        ("AVS_MAX_IN_FLIGHT", "100000".to_owned()),
        // One token stands for many callers here.
        ("AVS_MAX_IN_FLIGHT_PER_CALLER", "100000".to_owned()),
        ("AVS_UPSTREAM_CONCURRENCY", "256".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let config = Config::from_vars(&vars).unwrap();
    let upstreams = avs_api::Upstreams::resolve(&config, Some(&upstream_url.parse().unwrap())).unwrap();
    let state = AppState::new(&config, upstreams).await.unwrap();
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

/// The service under test (`app`), or the no-logic router it is weighed against.
trait Served:
    tower::Service<Request<Body>, Response = axum::response::Response, Error = std::convert::Infallible> + Clone
{
}
impl<S> Served for S where
    S: tower::Service<Request<Body>, Response = axum::response::Response, Error = std::convert::Infallible>
        + Clone
{
}

async fn get(router: &impl Served, sid: &str, token: &str) -> u16 {
    let request = Request::get(format!("/avs/v0/avs/{sid}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
    status
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Mean time per request of `rounds` sequential in-process requests (no sockets): what the
/// application itself costs, apart from the kernel and the load generator.
async fn in_process_ns(router: &impl Served, sid: &str, token: &str, rounds: u32) -> f64 {
    let started = Instant::now();
    for _ in 0..rounds {
        assert_eq!(get(router, sid, token).await, 200);
    }
    started.elapsed().as_nanos() as f64 / f64::from(rounds)
}

/// Step 4: the cost of a cache hit in process, against a router that answers the same bytes
/// with no logic (as bench/baseline.rs does over sockets); best of five runs each, alternating.
async fn hit_cost(router: &avs_api::Api, sid: &str, token: &str) {
    assert_eq!(get(router, sid, token).await, 200);
    let request = Request::get(format!("/avs/v0/avs/{sid}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let baseline = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response() }
    });
    let (mut service_ns, mut baseline_ns) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        service_ns = service_ns.min(in_process_ns(router, sid, token, 50_000).await);
        baseline_ns = baseline_ns.min(in_process_ns(&baseline, sid, token, 50_000).await);
    }
    println!("hit_in_process_ns {service_ns:.0}");
    println!("baseline_in_process_ns {baseline_ns:.0}");
    println!("hit_overhead_in_process_ns {:.0}", service_ns - baseline_ns);
}

/// Service latency minus upstream latency, medians over `misses` distinct sids.
async fn miss_overhead(name: &str, template: String, misses: u32, token: &str) {
    let (_upstream, url) = upstream_serving(Duration::ZERO, template).await;
    let (router, _) = service(&url, &[]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for n in 0..misses {
        let sid = format!("{n:032X}");
        let started = Instant::now();
        let body = client
            .get(format!("{url}avs/{sid}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(!body.is_empty());
        direct.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        assert_eq!(get(&router, &sid, token).await, 200);
        through.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (direct, through) = (median(direct), median(through));
    println!("miss_{name}_upstream_ms_p50 {direct:.3}");
    println!("miss_{name}_service_ms_p50 {through:.3}");
    println!("miss_{name}_overhead_ms_p50 {:.3}", through - direct);
}

/// An upstream document whose summary renders to about `target` bytes: the full fixture with
/// its lab results and vitals repeated, each copy's values varied so copies do not compress
/// to nothing.
fn document_of_size(target: usize) -> serde_json::Value {
    let text = std::fs::read_to_string("fixtures/summaries/full.json").expect("run from the repository root");
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sid = avs_api::domain::Sid::parse("9A7AF40B2BC2471EA116891839113252").unwrap();
    let labs = doc["data"]["labResults"].as_array().cloned().unwrap_or_default();
    let vitals = doc["data"]["vitals"].as_array().cloned().unwrap_or_default();
    let mut n = 0u64;
    loop {
        let body = avs_api::domain::render(doc.clone(), &sid).unwrap().body;
        if body.len() >= target {
            return doc;
        }
        for item in labs.iter().chain(&vitals) {
            let varied = item
                .to_string()
                .replace('1', &format!("{}", n % 10))
                .replace('7', &format!("{}", (n / 10) % 10));
            let list = if item.get("values").is_some() {
                "labResults"
            } else {
                "vitals"
            };
            doc["data"][list]
                .as_array_mut()
                .unwrap()
                .push(serde_json::from_str(&varied).unwrap());
            n += 1;
        }
    }
}

/// Compressed size and median time of each brotli quality and gzip level, on the full fixture
/// summary and on a ~1 MB one: what chose the levels in src/encoding.rs.
fn levels() {
    use std::io::Write as _;
    let time = |f: &dyn Fn() -> usize, rounds: usize| -> (usize, f64) {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..rounds {
            let started = Instant::now();
            size = f();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        (size, median(times))
    };
    let sid = avs_api::domain::Sid::parse("9A7AF40B2BC2471EA116891839113252").unwrap();
    let rendered = |doc: serde_json::Value| avs_api::domain::render(doc, &sid).unwrap().body;
    for (name, body, rounds) in [
        ("full", rendered(document_of_size(0)), 41),
        ("1mb", rendered(document_of_size(1_000_000)), 5),
    ] {
        println!("levels_{name}_identity_bytes {}", body.len());
        for quality in [3u32, 4, 5, 6, 7, 9, 11] {
            let (size, ms) = time(
                &|| {
                    let mut out = Vec::new();
                    let mut w = brotli::CompressorWriter::new(&mut out, 4096, quality, 22);
                    w.write_all(&body).unwrap();
                    drop(w);
                    out.len()
                },
                rounds,
            );
            println!(
                "levels_{name}_br_q{quality} bytes {size} ratio {:.2} ms {ms:.3}",
                body.len() as f64 / size as f64
            );
        }
        for level in [1u32, 3, 6, 9] {
            let (size, ms) = time(
                &|| {
                    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                    w.write_all(&body).unwrap();
                    w.finish().unwrap().len()
                },
                rounds,
            );
            println!(
                "levels_{name}_gzip_{level} bytes {size} ratio {:.2} ms {ms:.3}",
                body.len() as f64 / size as f64
            );
        }
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("levels") {
        levels();
        return;
    }
    let token = token();
    if std::env::args().nth(1).as_deref() == Some("hits") {
        let (_fast, url) = upstream(Duration::ZERO).await;
        let (router, _) = service(&url, &[]).await;
        hit_cost(&router, "0123456789ABCDEF0123456789ABCDEF", &token).await;
        return;
    }

    // 1. Cold stampede: 1000 concurrent requests for one uncached sid, upstream taking 200 ms.
    let (slow, url) = upstream(Duration::from_millis(200)).await;
    let (router, _) = service(&url, &[]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (router, token) = (router.clone(), token.clone());
        tasks.spawn(async move { get(&router, "0123456789ABCDEF0123456789ABCDEF", &token).await });
    }
    let statuses = tasks.join_all().await;
    println!("stampede_requests 1000");
    println!("stampede_ok {}", statuses.iter().filter(|s| **s == 200).count());
    println!("stampede_upstream_requests {}", slow.hits.load(Ordering::SeqCst));
    hit_cost(&router, "0123456789ABCDEF0123456789ABCDEF", &token).await;

    // 2. Miss overhead: service latency on a miss minus the upstream's own latency, for the
    // full summary and a ~1 MB one (rendering and compressing every coding happen on a miss).
    let full = std::fs::read_to_string("fixtures/summaries/full.json").expect("run from the repository root");
    miss_overhead("full", full, 300, &token).await;
    miss_overhead("1mb", document_of_size(1_000_000).to_string(), 30, &token).await;

    // 3. Resident memory with the cache filled past its byte budget.
    let budget_mib = 64u64;
    let budget = (budget_mib * 1024 * 1024).to_string();
    let (_fill, url) = upstream(Duration::ZERO).await;
    let (router, state) = service(&url, &[("AVS_CACHE_MAX_BYTES", &budget)]).await;
    let before = rss_mib();
    let summaries = 6000u32;
    for n in 0..summaries {
        assert_eq!(
            get(&router, &format!("{:032X}", 1_000_000 + n), &token).await,
            200
        );
    }
    let (entries, weighted) = state.summaries.cache_usage().await;
    println!("fill_summaries {summaries}");
    println!("cache_budget_mib {budget_mib}");
    println!("cache_entries {entries}");
    println!("cache_weighted_mib {:.1}", weighted as f64 / 1048576.0);
    println!("rss_before_fill_mib {before:.1}");
    println!("rss_after_fill_mib {:.1}", rss_mib());
}
