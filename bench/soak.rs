//! The soak's traffic and its flapping upstream (bench/soak.sh runs it; not a test).
//!
//! Serves a synthetic clinical source on `UPSTREAM_ADDR` that goes down (503) for 5 s of every
//! 30, and drives the service at `SERVICE_URL` for `SECS` seconds with mixed traffic from many
//! synthetic patients: hits, misses, searches, links, bad tokens, half-sent requests and slow
//! bodies. Every 200 for a summary is checked against its owner. Prints the counts, and the
//! service's RSS (from `/proc/SERVICE_PID`) at start and end.
//!
//! Usage: soak UPSTREAM_ADDR SERVICE_URL SERVICE_PID SECS

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::io::AsyncWriteExt;

const PATIENTS: u64 = 50;
const SIDS: u64 = 2_000;

fn sid(n: u64) -> String {
    format!("{:032X}", 0x50A4_0000_0000u64 + n)
}

/// Patient p's ICN; sid n belongs to patient n % PATIENTS.
fn icn(p: u64) -> String {
    format!("{:010}V{:06}", 1_000_000_000 + p, p)
}

#[derive(Default)]
struct Upstream {
    down: AtomicBool,
    calls: AtomicU64,
}

async fn summary(State(up): State<Arc<Upstream>>, Path(sid_text): Path<String>) -> Response {
    up.calls.fetch_add(1, Ordering::Relaxed);
    if up.down.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Some(n) = u64::from_str_radix(&sid_text, 16)
        .ok()
        .map(|v| v - 0x50A4_0000_0000)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if n >= SIDS {
        return StatusCode::NOT_FOUND.into_response();
    }
    axum::Json(json!({
        "sid": sid(n),
        "generatedDate": "2024-01-01T00:00:00Z",
        "appointmentIens": [n.to_string()],
        "data": {
            "header": {"stationNo": "500", "timeZone": "US/Pacific", "pageHeader": "<div>After Visit Summary</div>"},
            "patientInfo": {"icn": icn(n % PATIENTS), "smokingStatus": "NEVER SMOKER"},
            "vitals": [{"_t": "VitalSign", "type": "Pulse", "value": "72", "date": "Jan 01, 24", "qualifiers": ""}],
            "patientInstructions": "<p>Drink water.</p>",
        }
    }))
    .into_response()
}

async fn search(State(up): State<Arc<Upstream>>, Path((_, ien)): Path<(String, u64)>) -> Response {
    up.calls.fetch_add(1, Ordering::Relaxed);
    if up.down.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if ien >= SIDS || ien % 3 == 0 {
        return axum::Json(json!([])).into_response();
    }
    axum::Json(json!([{"sid": sid(ien), "icn": icn(ien % PATIENTS)}])).into_response()
}

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    by_status: Mutex<BTreeMap<String, u64>>,
    requests: AtomicU64,
    wrong_owner: AtomicU64,
    unexpected_5xx: AtomicU64,
}

impl Tally {
    fn count(&self, kind: &str, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *self
            .by_status
            .lock()
            .unwrap()
            .entry(format!("{kind} {status}"))
            .or_default() += 1;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, upstream_addr, service, pid, secs] = &args[..] else {
        eprintln!("usage: soak UPSTREAM_ADDR SERVICE_URL SERVICE_PID SECS");
        std::process::exit(2);
    };
    let secs: u64 = secs.parse().unwrap();
    let upstream = Arc::new(Upstream::default());
    let router = axum::Router::new()
        .route("/avs/{sid}", axum::routing::get(summary))
        .route("/avs-by-appointment/{station}/{ien}", axum::routing::get(search))
        .with_state(upstream.clone());
    let listener = tokio::net::TcpListener::bind(upstream_addr).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let tokens: Vec<String> = (0..PATIENTS)
        .map(|p| {
            avs_api::identity::dev_token(&avs_api::identity::DevToken {
                sub: &format!("soak-{p}"),
                icn: Some(&icn(p)),
                email: Some(&format!("soak.patient.{p}@example.com")),
                ttl_secs: secs + 600,
                issuer: None,
                audience: None,
            })
            .unwrap()
        })
        .collect();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    // Sids some request has already been answered 200 for: cached, so never a 5xx after.
    let cached: Arc<Mutex<std::collections::HashSet<u64>>> = Arc::default();

    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    // RSS is sampled through the run; "start" is taken once the first fifth (the warm-up: the
    // cache fills, connections and slow clients reach their steady number) is over.
    let samples: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sampling = (samples.clone(), pid.clone());
    tokio::spawn(async move {
        let every = Duration::from_secs((secs / 10).max(1));
        loop {
            tokio::time::sleep(every).await;
            sampling.0.lock().unwrap().push(rss_kib(&sampling.1));
        }
    });

    // The upstream flaps: down 5 s of every 30.
    let flapping = upstream.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(25)).await;
            flapping.down.store(true, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(5)).await;
            flapping.down.store(false, Ordering::Relaxed);
        }
    });

    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..8u64 {
        let (client, tally, cached, tokens, service) = (
            client.clone(),
            tally.clone(),
            cached.clone(),
            tokens.clone(),
            service.clone(),
        );
        workers.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(worker);
            while Instant::now() < until {
                let patient = rng.u64(0..PATIENTS);
                let token = &tokens[patient as usize];
                match rng.u8(0..10) {
                    // Summaries: mostly the patient's own (hits once fetched, misses before),
                    // one in ten another patient's (401).
                    0..=5 => {
                        let n = if rng.u8(0..10) == 0 {
                            rng.u64(0..SIDS)
                        } else {
                            patient + PATIENTS * rng.u64(0..SIDS / PATIENTS)
                        };
                        let was_cached = cached.lock().unwrap().contains(&n);
                        let Ok(response) = client
                            .get(format!("{service}/avs/v0/avs/{}", sid(n)))
                            .bearer_auth(token)
                            .send()
                            .await
                        else {
                            tally.count("summary", 0);
                            continue;
                        };
                        let status = response.status().as_u16();
                        let body = response.bytes().await.unwrap_or_default();
                        tally.count("summary", status);
                        let owner = n % PATIENTS;
                        if status == 200 {
                            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                            if owner != patient || doc["data"]["id"] != sid(n) {
                                tally.wrong_owner.fetch_add(1, Ordering::Relaxed);
                            }
                            cached.lock().unwrap().insert(n);
                        } else if status >= 500 && (was_cached || status == 500) {
                            tally.unexpected_5xx.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    6 => {
                        let ien = rng.u64(0..SIDS);
                        let status = client
                            .get(format!("{service}/avs/v0/avs/search?stationNo=500&appointmentIen={ien}"))
                            .bearer_auth(token)
                            .send()
                            .await
                            .map_or(0, |r| r.status().as_u16());
                        tally.count("search", status);
                        if status == 500 {
                            tally.unexpected_5xx.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    7 => {
                        let items: Vec<_> = (0..10)
                            .map(|_| json!({"stationNo": "500", "appointmentIen": rng.u64(0..SIDS).to_string()}))
                            .collect();
                        let status = client
                            .post(format!("{service}/avs/v0/avs/links"))
                            .bearer_auth(token)
                            .header("content-type", "application/json")
                            .body(json!({"appointments": items}).to_string())
                            .send()
                            .await
                            .map_or(0, |r| r.status().as_u16());
                        tally.count("links", status);
                        if status >= 500 {
                            tally.unexpected_5xx.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    8 => {
                        let status = client
                            .get(format!("{service}/avs/v0/avs/{}", sid(0)))
                            .bearer_auth(format!("{token}x"))
                            .send()
                            .await
                            .map_or(0, |r| r.status().as_u16());
                        tally.count("bad-token", status);
                    }
                    _ => {
                        // A slow client: a half-sent head, or a body that never finishes.
                        let address = service.trim_start_matches("http://").to_owned();
                        let head = if rng.bool() {
                            "GET /healthz HTTP/1.1\r\nX: ".to_owned()
                        } else {
                            format!(
                                "POST /avs/v0/avs/links HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
                                 content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
                            )
                        };
                        tokio::spawn(async move {
                            if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
                                let _ = stream.write_all(head.as_bytes()).await;
                                tokio::time::sleep(Duration::from_secs(20)).await;
                            }
                        });
                        tally.count("slow-client", 0);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    // Slow clients still open are gone after their 20 s.
    tokio::time::sleep(Duration::from_secs(21)).await;
    let rss_end = rss_kib(pid);
    let samples = samples.lock().unwrap().clone();
    let rss_start = samples.get(1).copied().unwrap_or(rss_end);
    println!("soak_secs {elapsed:.0}");
    println!("requests {}", tally.requests.load(Ordering::Relaxed));
    for (kind, n) in tally.by_status.lock().unwrap().iter() {
        println!("  {kind}: {n}");
    }
    println!("upstream_calls {}", upstream.calls.load(Ordering::Relaxed));
    println!(
        "wrong_owner_answers {}",
        tally.wrong_owner.load(Ordering::Relaxed)
    );
    println!("unexpected_5xx {}", tally.unexpected_5xx.load(Ordering::Relaxed));
    println!("rss_kib_start {rss_start} rss_kib_end {rss_end} (samples every tenth: {samples:?})");
    println!(
        "rss_growth_pct {:.1}",
        (rss_end as f64 - rss_start as f64) * 100.0 / rss_start.max(1) as f64
    );
}
