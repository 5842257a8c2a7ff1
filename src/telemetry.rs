//! Logs, metrics and per-request notes. Structured fields only; never an ICN, email, token, sid
//! or summary content.

use std::cell::RefCell;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber. Call once, from the binary.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

/// Latency buckets (seconds) for every histogram: loopback hits to a slow upstream.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's Prometheus recorder (the `metrics` facade allows one per process), installed on
/// first use; `None` if another recorder was installed first.
pub fn metrics() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(&BUCKETS).ok()?;
            let handle = builder.install_recorder().ok()?;
            describe_metrics();
            Some(handle)
        })
        .clone()
}

fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("avs_http_requests_total", "Requests by route template and status");
    describe_histogram!(
        "avs_http_request_duration_seconds",
        "Request latency by route template"
    );
    describe_counter!(
        "avs_upstream_requests_total",
        "Upstream calls by call and outcome"
    );
    describe_histogram!("avs_upstream_request_duration_seconds", "Upstream call latency");
    describe_counter!(
        "avs_cache_requests_total",
        "Cache lookups by outcome (hit, miss, stale)"
    );
    describe_counter!("avs_cache_evictions_total", "Cache evictions by cause");
    describe_gauge!("avs_cache_weighted_bytes", "Bytes held by the summary cache");
    describe_counter!("avs_gate_decisions_total", "Gate decisions by toggle and result");
    describe_gauge!(
        "avs_upstream_breaker_open",
        "1 while the upstream circuit is open"
    );
    describe_gauge!(
        "avs_toggle_source_healthy",
        "1 when the last toggle refresh succeeded"
    );
    describe_gauge!(
        "avs_toggle_source_last_load_timestamp_seconds",
        "Unix time of the last good toggle load"
    );
    describe_counter!(
        "avs_upstream_unknown_keys_total",
        "Unknown keys in upstream summaries (schema drift)"
    );
    describe_counter!(
        "avs_requests_shed_total",
        "Requests shed because the service was saturated"
    );
}

/// What happened while serving one request, noted by the code that knew it and read back by
/// the request's log line, metrics and the rollout report.
#[derive(Debug, Default, Clone)]
pub struct Notes {
    /// Keyed hash of the actor id (never the id).
    pub actor: Option<u64>,
    pub gates: Vec<(&'static str, bool)>,
    pub cache: Option<&'static str>,
    pub upstream_calls: u32,
    pub upstream_failures: u32,
    pub upstream_error: Option<&'static str>,
}

tokio::task_local! {
    static NOTES: RefCell<Notes>;
}

/// Runs a request with a fresh set of notes and returns them with its output.
pub async fn with_notes<F: Future>(request: F) -> (F::Output, Notes) {
    NOTES
        .scope(RefCell::new(Notes::default()), async {
            let output = request.await;
            (output, NOTES.with(|n| n.take()))
        })
        .await
}

/// Adds to the current request's notes; does nothing outside a request (or in a spawned task).
pub fn note(f: impl FnOnce(&mut Notes)) {
    let _ = NOTES.try_with(|n| f(&mut n.borrow_mut()));
}
