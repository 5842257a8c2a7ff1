//! The VistA source's one entry point to summaries and appointment lookups: cache, fetch, check
//! shape, render, and check ownership.
//!
//! A summary never changes once generated, so it is fetched once and kept as its finished
//! response bytes plus its owner: a hit does no JSON work, and ownership is still checked here
//! on every request (only an owned summary leaves this module). Concurrent misses for one key make one upstream request (the others
//! wait for its result, error included). Upstream 404s and empty searches are kept for the
//! shorter negative TTL; other errors are never kept. An expired copy is kept a while longer
//! and served if a refresh fails (stale-if-error).

use std::sync::Arc;

use moka::sync::Cache;
use serde_json::Value;
// tokio's clock: the same as std's in production, and one a test can move forward
// (moka's own clock cannot be), so freshness and stale-if-error are judged on it.
use tokio::time::Instant;

use super::SummaryError;
use super::client::VistaClient;
use super::entry::{Entry, Key, Lifetimes, Outcome, SearchHit};
use super::summary::{DocumentState, Summary};
use crate::clinical::{BreakerState, RequestContext, UpstreamError};
use crate::config::CacheConfig;
use crate::domain::{AppointmentIen, OwnerIcn, Sid, StationNo, render, same_patient};
use crate::encoding::Encoded;
use crate::flights::Flights;
use crate::hot::{Hot, Read};

/// Summaries rendered at once: one per core of the pod's two.
const SUMMARY_RENDERS: usize = 2;

pub struct Summaries {
    upstream: VistaClient,
    cache: SummaryCache,
    lifetimes: Lifetimes,
    /// Loads in flight, one per key: later arrivals wait for the same result.
    flights: Flights<Key, Result<Entry, UpstreamError>>,
    /// One brotli-best compression at a time (see `compress_better`).
    best_compression: Arc<tokio::sync::Semaphore>,
    /// Summaries rendered at once, off the async workers (`render_off_the_workers`).
    summary_renders: Arc<tokio::sync::Semaphore>,
    outcomes: crate::telemetry::Handles<&'static str, metrics::Counter>,
    pub(super) documents: DocumentState,
    /// The summaries moka holds, read on a hit without moka's bookkeeping (`crate::hot`).
    hot: Arc<Hot<Sid, (Arc<Summary>, Instant)>>,
}

impl Summaries {
    pub fn new(upstream: VistaClient, config: &CacheConfig) -> Summaries {
        let lifetimes = Lifetimes {
            ttl: config.ttl,
            negative_ttl: config.negative_ttl,
            stale_if_error: config.stale_if_error,
        };
        let hot: Arc<Hot<Sid, (Arc<Summary>, Instant)>> = Arc::new(Hot::new(|a, b| Arc::ptr_eq(&a.0, &b.0)));
        let gone = hot.clone();
        let cache = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|key: &Key, entry: &Entry| entry.weight(key))
            .expire_after(lifetimes)
            // Called once moka has let the entry go (evicted, expired, replaced).
            .eviction_listener(move |key: Arc<Key>, entry: Entry, cause| {
                if let (Key::Summary(sid), Outcome::Summary(summary)) = (&*key, &entry.outcome) {
                    gone.forget(sid, &(summary.clone(), entry.fetched));
                }
                metrics::counter!("avs_cache_evictions_total", "cause" => format!("{cause:?}")).increment(1);
            })
            // foldhash, seeded per process, as the token cache: SipHash of the key was a tenth
            // of a hit's lookup (callgrind).
            .build_with_hasher(foldhash::fast::RandomState::default());
        Summaries {
            upstream,
            cache,
            lifetimes,
            flights: Flights::default(),
            best_compression: Arc::new(tokio::sync::Semaphore::new(1)),
            summary_renders: Arc::new(tokio::sync::Semaphore::new(SUMMARY_RENDERS)),
            outcomes: crate::telemetry::Handles::default(),
            documents: DocumentState::new(config.render_wait),
            hot,
        }
    }

    /// Counts a lookup as a hit, miss or stale serve.
    fn count_outcome(&self, outcome: &'static str) {
        self.outcomes.with(
            outcome,
            |outcome| metrics::counter!("avs_cache_requests_total", "outcome" => outcome),
            |lookups| lookups.increment(1),
        );
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.upstream.breaker_state()
    }

    /// (entries, weighted bytes) once pending maintenance has run.
    pub async fn cache_usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }

    /// The summaries in the hot map (each one moka holds too): for tests.
    pub fn hot_summaries(&self) -> usize {
        self.hot.len()
    }

    /// The rendered summary for `sid`, when `caller` (the caller's ICN) owns it.
    #[tracing::instrument(name = "summaries.summary", skip_all)]
    pub async fn summary(
        &self,
        sid: &Sid,
        caller: Option<&OwnerIcn>,
        ctx: &RequestContext,
    ) -> Result<Arc<Summary>, SummaryError> {
        let key = Key::Summary(sid.clone());
        let outcome = self
            .lookup(key, || async {
                match self.upstream.summary(sid, ctx).await {
                    Ok(doc) => self.render_off_the_workers(doc, sid).await.map(Outcome::Summary),
                    Err(UpstreamError::NotFound) => Ok(Outcome::NotFound),
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(SummaryError::Upstream)?;
        match outcome {
            Outcome::Summary(summary) if same_patient(caller, summary.owner.as_ref()) => Ok(summary),
            Outcome::Summary(_) => Err(SummaryError::NotYourSummary),
            _ => Err(SummaryError::NotFound(sid.clone())),
        }
    }

    /// The sid of the appointment's summary, if it has one and `caller` owns it. Upstream 404
    /// means none.
    #[tracing::instrument(name = "summaries.search", skip_all)]
    pub async fn search(
        &self,
        station: &StationNo,
        ien: &AppointmentIen,
        caller: Option<&OwnerIcn>,
        ctx: &RequestContext,
    ) -> Result<Option<Sid>, SummaryError> {
        let key = Key::Search(station.as_str().to_owned(), ien.as_str().to_owned());
        let outcome = self
            .lookup(key, || async {
                match self.upstream.search(station, ien, ctx).await {
                    Ok(rows) => first_hit(rows).map(Outcome::Search).map_err(|reason| {
                        tracing::warn!(reason, "upstream search answer has the wrong shape");
                        UpstreamError::BadGateway(reason.to_owned())
                    }),
                    Err(UpstreamError::NotFound) => Ok(Outcome::Search(SearchHit::None)),
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(SummaryError::Upstream)?;
        match outcome {
            Outcome::Search(SearchHit::Found { sid, owner }) if same_patient(caller, owner.as_ref()) => {
                Ok(Some(sid))
            }
            Outcome::Search(SearchHit::Found { .. }) => Err(SummaryError::NotYourAppointment),
            _ => Ok(None),
        }
    }

    #[tracing::instrument(name = "cache.lookup", skip_all, fields(cache.kind = key.kind(), cache.outcome))]
    async fn lookup<F, Fut>(&self, key: Key, load: F) -> Result<Outcome, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Outcome, UpstreamError>>,
    {
        let held = || self.cache.get(&key);
        let cached = match &key {
            Key::Summary(sid) => {
                let fresh = |(_, fetched): &(Arc<Summary>, Instant)| self.lifetimes.fresh_answer(*fetched);
                let promote = |entry: &Entry| match &entry.outcome {
                    Outcome::Summary(summary) => Some((summary.clone(), entry.fetched)),
                    _ => None,
                };
                match self.hot.read(sid, fresh, held, promote, Sid::clone) {
                    Read::Hot((summary, _)) => {
                        self.note_hit();
                        return Ok(Outcome::Summary(summary));
                    }
                    Read::Held(cached) => cached,
                }
            }
            _ => held(),
        };
        if let Some(entry) = &cached
            && self.lifetimes.fresh(entry)
        {
            self.note_hit();
            return Ok(entry.outcome.clone());
        }
        self.count_outcome("miss");
        crate::telemetry::note(|n| n.cache = Some("miss"));
        record_outcome("miss");
        // Boxed: the load (the upstream call) is a large future, and every hit would otherwise
        // carry its size and move it from layer to layer.
        match Box::pin(self.load_once(&key, load)).await {
            Ok(entry) => Ok(entry.outcome),
            Err(e) => match cached {
                Some(entry) if e.is_failure() && self.lifetimes.servable_stale(&entry) => {
                    self.count_outcome("stale");
                    crate::telemetry::note(|n| n.cache = Some("stale"));
                    tracing::warn!(
                        reason = e.kind().as_str(),
                        "upstream failed; serving the expired copy"
                    );
                    Ok(entry.outcome)
                }
                _ => Err(e),
            },
        }
    }

    fn note_hit(&self) {
        self.count_outcome("hit");
        crate::telemetry::note(|n| n.cache = Some("hit"));
        record_outcome("hit");
    }

    /// One load per key at a time; everyone waiting gets its result, error included. If the
    /// loading request is cancelled, a waiter takes over the load.
    async fn load_once<F, Fut>(&self, key: &Key, load: F) -> Result<Entry, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Outcome, UpstreamError>>,
    {
        self.flights
            .run(key, || async {
                // A load that finished between our cache check and joining the flight.
                if let Some(entry) = self.cache.get(key)
                    && self.lifetimes.fresh(&entry)
                {
                    return Ok(entry);
                }
                let entry = load().await.map(|outcome| Entry {
                    outcome,
                    fetched: Instant::now(),
                })?;
                self.cache.insert(key.clone(), entry.clone());
                metrics::gauge!("avs_cache_weighted_bytes").set(self.cache.weighted_size() as f64);
                if let Outcome::Summary(summary) = &entry.outcome {
                    self.compress_better(key.clone(), summary.clone(), entry.fetched);
                }
                Ok(entry)
            })
            .await
    }

    /// Replaces a just-cached summary's brotli form with brotli's best, from a blocking thread
    /// (tens of ms of CPU, never on a request's path). Skipped if the entry went meanwhile.
    /// At most one runs at a time: under a storm of misses the fast forms simply stay.
    fn compress_better(&self, key: Key, summary: Arc<Summary>, fetched: Instant) {
        let Ok(turn) = self.best_compression.clone().try_acquire_owned() else {
            return;
        };
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let Some(body) = summary.body.best() else { return };
            let still_cached = cache.get(&key).is_some_and(
                |entry| matches!(&entry.outcome, Outcome::Summary(cached) if Arc::ptr_eq(cached, &summary)),
            );
            if still_cached {
                let better = Summary {
                    body,
                    owner: summary.owner.clone(),
                    forms: summary.forms.clone(),
                };
                cache.insert(
                    key,
                    Entry {
                        outcome: Outcome::Summary(Arc::new(better)),
                        fetched,
                    },
                );
            }
        });
    }

    /// Renders a fetched summary (sanitising its HTML, rendering, compressing, sealing) on a
    /// blocking thread, at most [`SUMMARY_RENDERS`] at once: a large or hostile summary costs
    /// CPU, and on an async worker it held up every request that worker serves (two summaries
    /// with deeply nested HTML left `/healthz` unanswered for 40 s, #36).
    async fn render_off_the_workers(&self, doc: Value, sid: &Sid) -> Result<Arc<Summary>, UpstreamError> {
        let turn = self
            .summary_renders
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| UpstreamError::BadGateway("no render turn".to_owned()))?;
        let sid = sid.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            render_summary(doc, &sid)
        })
        .await
        .map_err(|_| UpstreamError::BadGateway("the summary's render failed".to_owned()))?
    }

    /// The cache itself, for work that outlives a request (a render keeping its document).
    pub(super) fn cache_handle(&self) -> SummaryCache {
        self.cache.clone()
    }

    /// Loads in flight now (for tests and the leak check).
    pub fn loads_in_flight(&self) -> usize {
        self.flights.in_flight()
    }
}

/// The summary cache: moka's, keyed by sid or appointment.
pub(super) type SummaryCache = Cache<Key, Entry, foldhash::fast::RandomState>;

/// Re-inserts the summary's entry, if it is still this summary's, so that its weight counts
/// the documents rendered since it was cached.
pub(super) fn reweigh(cache: &SummaryCache, sid: &Sid, summary: &Arc<Summary>) {
    let key = Key::Summary(sid.clone());
    if let Some(entry) = cache.get(&key)
        && matches!(&entry.outcome, Outcome::Summary(cached) if Arc::ptr_eq(&cached.forms, &summary.forms))
    {
        cache.insert(key, entry);
    }
}

fn render_summary(doc: Value, sid: &Sid) -> Result<Arc<Summary>, UpstreamError> {
    let rendered = render(doc, sid).map_err(|e| {
        tracing::warn!(reason = %e, "upstream summary has the wrong shape");
        UpstreamError::BadGateway(e.to_string())
    })?;
    if rendered.unknown_keys > 0 {
        // Schema drift: the upstream sends sections the contract does not know.
        metrics::counter!("avs_upstream_unknown_keys_total").increment(rendered.unknown_keys as u64);
        tracing::info!(
            unknown_keys = rendered.unknown_keys,
            "upstream summary has unknown keys"
        );
    }
    Ok(Arc::new(Summary {
        // Sealed when large (`crate::sealed`): a hit's body then leaves with `sendfile`.
        body: Encoded::new(crate::sealed::keep(&rendered.body)),
        owner: rendered.owner,
        forms: Arc::default(),
    }))
}

/// The first row of a search answer; every row must be an object.
fn first_hit(rows: Value) -> Result<SearchHit, &'static str> {
    let Value::Array(rows) = rows else {
        return Err("search answer is not an array");
    };
    if rows.iter().any(|r| !r.is_object()) {
        return Err("search rows are not objects");
    }
    let Some(first) = rows.first() else {
        return Ok(SearchHit::None);
    };
    let sid = first
        .get("sid")
        .and_then(Value::as_str)
        .and_then(Sid::parse)
        .ok_or("search row has no valid sid")?;
    let owner = match first.get("icn") {
        None | Some(Value::Null) => None,
        Some(Value::String(icn)) => OwnerIcn::from_icn(Some(icn)),
        Some(_) => return Err("search row icn is not a string"),
    };
    Ok(SearchHit::Found { sid, owner })
}

/// Notes the outcome on the lookup's span. Finding the current span costs a lookup in the
/// subscriber's registry on every hit, so only when spans at this level are recorded at all.
fn record_outcome(outcome: &'static str) {
    if tracing::enabled!(tracing::Level::INFO) {
        tracing::Span::current().record("cache.outcome", outcome);
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
