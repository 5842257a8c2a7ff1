//! Logs, metrics and per-request notes. Structured fields only; never an ICN, email, token, sid
//! or summary content.

use std::cell::RefCell;
use std::collections::HashMap as StdHashMap;
use std::hash::Hash;
use std::sync::OnceLock;
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{Counter, Histogram};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Where traces go: OTLP over HTTP (protobuf) to `endpoint` (`/v1/traces` is appended).
pub struct Otlp<'a> {
    pub endpoint: &'a str,
    pub service_name: &'a str,
}

/// Flushes exported spans when the process stops.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "trace export did not flush");
        }
    }
}

/// Installs the global log subscriber and, when configured, the OTLP trace pipeline. Call once,
/// from the binary, before its async runtime starts (the exporter's blocking client runs on its
/// own thread, so a collector that is down never slows a request).
pub fn init(filter: &str, format: LogFormat, otlp: Option<Otlp<'_>>) -> TelemetryGuard {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    // Dependencies' own trace-level output can carry request URIs (with sids): capped at info.
    let filter = EnvFilter::try_new(format!("{filter},{DEPENDENCY_CAPS}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{DEPENDENCY_CAPS}")));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(true).boxed(),
        LogFormat::Pretty => fmt.compact().boxed(),
    };
    let provider = otlp.and_then(|o| match tracer_provider(&o) {
        Ok(provider) => Some(provider),
        Err(e) => {
            eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT: traces disabled: {e}");
            None
        }
    });
    let traces = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(p.tracer("avs-api"))
    });
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(traces)
        .init();
    TelemetryGuard { provider }
}

const DEPENDENCY_CAPS: &str = "hyper=info,hyper_util=info,reqwest=info,h2=info,rustls=info,tokio_postgres=info,\
                               opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn,opentelemetry_http=warn";

fn tracer_provider(otlp: &Otlp<'_>) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    // The exporter's own client, never reading proxy variables from the environment.
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        // Given in code, the endpoint is used verbatim: add the signal path ourselves.
        .with_endpoint(format!("{}/v1/traces", otlp.endpoint.trim_end_matches('/')))
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let batch = opentelemetry_sdk::trace::BatchConfigBuilder::default()
        .with_scheduled_delay(std::time::Duration::from_secs(1))
        .with_max_queue_size(8192)
        .build();
    let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name(otlp.service_name.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

/// Reads a W3C `traceparent` from inbound headers: the request's span continues that trace.
pub fn remote_context(headers: &axum::http::HeaderMap) -> opentelemetry::Context {
    struct Extract<'a>(&'a axum::http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Extract<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&Extract(headers)))
}

/// Writes the current span's `traceparent` into outbound headers.
pub fn inject_current(headers: &mut reqwest::header::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    struct Inject<'a>(&'a mut reqwest::header::HeaderMap);
    impl opentelemetry::propagation::Injector for Inject<'_> {
        fn set(&mut self, key: &str, value: String) {
            let name = reqwest::header::HeaderName::from_bytes(key.as_bytes());
            let value = reqwest::header::HeaderValue::from_str(&value);
            if let (Ok(name), Ok(value)) = (name, value) {
                self.0.insert(name, value);
            }
        }
    }
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut Inject(headers)));
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
        "1 while a clinical source's circuit is open, by source (vista, oracle)"
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

/// The maps read on every request: foldhash, not SipHash (the keys are ours, not a caller's).
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::FixedState>;

/// Metric handles registered once per label set and then kept. The `counter!` family hashes
/// its key into the recorder's registry on every call (and allocates, with owned labels), which
/// showed in the profile of a cache hit. Label sets are few (routes, statuses, toggles), so a
/// new one copies the map; reads take no lock that the worker threads would contend on.
pub struct Handles<K, H>(ArcSwap<HashMap<K, H>>);

impl<K, H> Default for Handles<K, H> {
    fn default() -> Self {
        Handles(ArcSwap::from_pointee(HashMap::default()))
    }
}

impl<K: Copy + Eq + Hash, H: Clone> Handles<K, H> {
    /// Runs `f` on the handle for `key`, registering it with `register` the first time.
    pub fn with(&self, key: K, register: impl FnOnce(K) -> H, f: impl FnOnce(&H)) {
        if let Some(handle) = self.0.load().get(&key) {
            return f(handle);
        }
        let handle = register(key);
        self.0.rcu(|handles| {
            let mut handles = HashMap::clone(handles);
            handles.entry(key).or_insert_with(|| handle.clone());
            handles
        });
        f(&handle);
    }
}

/// The per-request metrics, by route template and status.
#[derive(Default)]
pub struct RequestMetrics(ArcSwap<HashMap<String, RouteMetrics>>);

#[derive(Clone)]
struct RouteMetrics {
    duration: Histogram,
    requests: Vec<(u16, Counter)>,
}

impl RequestMetrics {
    pub fn record(&self, route: &str, status: u16, latency: Duration) {
        let seconds = latency.as_secs_f64();
        if let Some(metrics) = self.0.load().get(route)
            && let Some((_, requests)) = metrics.requests.iter().find(|(s, _)| *s == status)
        {
            requests.increment(1);
            metrics.duration.record(seconds);
            return;
        }
        let duration = metrics::histogram!("avs_http_request_duration_seconds", "route" => route.to_owned());
        let labels = [("route", route.to_owned()), ("status", status.to_string())];
        let requests = metrics::counter!("avs_http_requests_total", &labels);
        self.0.rcu(|routes| {
            let mut routes = HashMap::clone(routes);
            let metrics = routes.entry(route.to_owned()).or_insert_with(|| RouteMetrics {
                duration: duration.clone(),
                requests: Vec::new(),
            });
            if !metrics.requests.iter().any(|(s, _)| *s == status) {
                metrics.requests.push((status, requests.clone()));
            }
            routes
        });
        requests.increment(1);
        duration.record(seconds);
    }
}

/// How an upstream call failed: the one vocabulary the upstream client notes, the metrics
/// label, the request line and the rollout report's error types all use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    NotFound,
    BadGateway,
    Unavailable,
    Timeout,
    CircuitOpen,
    Saturated,
}

impl UpstreamErrorKind {
    /// The label in metrics and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::NotFound => "not_found",
            UpstreamErrorKind::BadGateway => "bad_gateway",
            UpstreamErrorKind::Unavailable => "unavailable",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::CircuitOpen => "circuit_open",
            UpstreamErrorKind::Saturated => "saturated",
        }
    }
}

/// What happened while serving one request, noted by the code that knew it and read back by
/// the request's log line, metrics and the rollout report.
#[derive(Debug, Default)]
pub struct Notes {
    /// Keyed hash of the actor id (never the id).
    pub actor: Option<u64>,
    /// Inline: a request passes one or two gates, and a `Vec` would allocate for each.
    pub gates: smallvec::SmallVec<[(&'static str, bool); 4]>,
    pub cache: Option<&'static str>,
    pub upstream_calls: u32,
    pub upstream_failures: u32,
    pub upstream_error: Option<UpstreamErrorKind>,
    /// A links request: whether at least one link was shown.
    pub links_shown: Option<bool>,
    /// The toggle this request is a view of (`rollout-guard.md`: its summary, document or
    /// text), for the `view_failures` and `slow_views` guards.
    pub view_of: Option<&'static str>,
    /// A breaker was open when this request asked, or this request's failure opened it.
    pub breaker_open: bool,
}

impl Notes {
    /// Adds what a lookup run in its own task noted about the upstream.
    pub fn absorb_upstream(&mut self, other: &Notes) {
        self.upstream_calls += other.upstream_calls;
        self.upstream_failures += other.upstream_failures;
        if other.upstream_error.is_some() {
            self.upstream_error = other.upstream_error;
        }
        self.breaker_open |= other.breaker_open;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn kept_handles_count_each_label_set_apart() {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let requests = RequestMetrics::default();
            for _ in 0..3 {
                requests.record("/a/{sid}", 200, Duration::from_millis(1));
            }
            requests.record("/a/{sid}", 404, Duration::from_millis(1));
            requests.record("/b", 200, Duration::from_millis(1));
            let gates: Handles<(&'static str, bool), Counter> = Handles::default();
            for open in [true, true, false] {
                gates.with(
                    ("t", open),
                    |(t, open)| metrics::counter!("gate_total", "toggle" => t, "open" => open.to_string()),
                    |c| c.increment(1),
                );
            }
        });
        let text = handle.render();
        let count = |prefix: &str| {
            line(&text, prefix)
                .and_then(|l| l.rsplit(' ').next())
                .unwrap_or("absent")
        };
        assert_eq!(
            count(r#"avs_http_requests_total{route="/a/{sid}",status="200"}"#),
            "3",
            "{text}"
        );
        assert_eq!(
            count(r#"avs_http_requests_total{route="/a/{sid}",status="404"}"#),
            "1",
            "{text}"
        );
        assert_eq!(
            count(r#"avs_http_requests_total{route="/b",status="200"}"#),
            "1",
            "{text}"
        );
        assert_eq!(
            count(r#"avs_http_request_duration_seconds_count{route="/a/{sid}"}"#),
            "4",
            "{text}"
        );
        assert_eq!(count(r#"gate_total{toggle="t",open="true"}"#), "2", "{text}");
        assert_eq!(count(r#"gate_total{toggle="t",open="false"}"#), "1", "{text}");
    }
}
