//! What one stage did, in mergeable form: counters sum, histograms add bucket by bucket, and
//! sketches merge register by register. One instance's figures are stored as it counted them;
//! the fleet's are the merge of every instance's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Hll;

/// Upper bounds (ms) of the latency histogram's buckets; one more bucket holds the rest.
pub const LATENCY_BOUNDS_MS: [f64; 15] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10_000.0, 30_000.0,
];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Figures {
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub errors: BTreeMap<String, u64>,
    /// Requests per latency bucket (`LATENCY_BOUNDS_MS`, then the rest).
    pub latency_buckets: Vec<u64>,
    pub upstream_calls: u64,
    pub upstream_failures: u64,
    pub allowed_actors: Hll,
    pub denied_actors: Hll,
    /// Callers for whom appointment links were asked, and those shown at least one.
    pub links_asked: Hll,
    pub links_shown: Hll,
    /// The guards' counts (`rollout-guard.md`), over allowed requests only.
    pub guards: GuardCounts,
}

/// What the stage's guards are judged on; each a count of allowed requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GuardCounts {
    /// Allowed requests counted for the guards: the `n` of `server_errors` and `upstream`.
    /// Counted with the rest, not taken from `Figures::allowed` (counted apart, under the
    /// report's lock), so that no guard ever reads more failures than trials.
    pub allowed: u64,
    /// Answered with a status of 500 or more (shed and timeouts included).
    pub server_errors: u64,
    /// The toggle's views answered anything but 400, 401 or 403...
    pub views: u64,
    /// ...and of them, those not answered 2xx or 304.
    pub view_failures: u64,
    /// Views answered 2xx or 304...
    pub served_views: u64,
    /// ...and of them, those whose server time exceeded the plan's `slow_view_ms`.
    pub slow_views: u64,
    /// Requests that met an open breaker or opened one.
    pub breaker_open: u64,
}

impl GuardCounts {
    fn merge(&mut self, other: &GuardCounts) {
        self.allowed += other.allowed;
        self.server_errors += other.server_errors;
        self.views += other.views;
        self.view_failures += other.view_failures;
        self.served_views += other.served_views;
        self.slow_views += other.slow_views;
        self.breaker_open += other.breaker_open;
    }
}

/// A stage's guard counts as requests add to them: atomics, so that counting a request for the
/// guards is a few atomic adds and never waits on the report's lock (`record`). They are
/// drained into the stage's `GuardCounts`, under that lock, whenever the stage is read.
#[derive(Debug, Default)]
pub struct GuardCells {
    allowed: AtomicU64,
    server_errors: AtomicU64,
    views: AtomicU64,
    view_failures: AtomicU64,
    served_views: AtomicU64,
    slow_views: AtomicU64,
    breaker_open: AtomicU64,
}

impl GuardCells {
    /// Adds one request's counts. A count's trials are added before its failures, the latter
    /// with `Release`, so a reader that sees a failure (with `Acquire`) also sees its trial.
    pub fn add(&self, c: &GuardCounts) {
        let add = |cell: &AtomicU64, n: u64, order| {
            // Only what moved: a cached hit adds three (allowed, a view, served).
            if n > 0 {
                cell.fetch_add(n, order);
            }
        };
        add(&self.allowed, c.allowed, Ordering::Relaxed);
        add(&self.views, c.views, Ordering::Relaxed);
        add(&self.served_views, c.served_views, Ordering::Release);
        add(&self.server_errors, c.server_errors, Ordering::Release);
        add(&self.view_failures, c.view_failures, Ordering::Release);
        add(&self.slow_views, c.slow_views, Ordering::Release);
        add(&self.breaker_open, c.breaker_open, Ordering::Release);
    }

    /// Takes what was added since the last take: failures first, then their trials (the
    /// reverse of `add`), so what is taken never holds more failures than trials.
    pub fn take(&self) -> GuardCounts {
        let take = |cell: &AtomicU64| cell.swap(0, Ordering::Acquire);
        let breaker_open = take(&self.breaker_open);
        let slow_views = take(&self.slow_views);
        let view_failures = take(&self.view_failures);
        let server_errors = take(&self.server_errors);
        let served_views = take(&self.served_views);
        GuardCounts {
            breaker_open,
            slow_views,
            view_failures,
            server_errors,
            served_views,
            views: take(&self.views),
            allowed: take(&self.allowed),
        }
    }
}

impl Figures {
    /// Adds what `cells` counted since they were last drained; true if anything was.
    pub fn drain(&mut self, cells: &GuardCells) -> bool {
        let taken = cells.take();
        let moved = taken != GuardCounts::default();
        self.guards.merge(&taken);
        moved
    }

    pub fn add_latency(&mut self, latency: Duration) {
        let ms = latency.as_secs_f64() * 1000.0;
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        if self.latency_buckets.len() <= LATENCY_BOUNDS_MS.len() {
            self.latency_buckets.resize(LATENCY_BOUNDS_MS.len() + 1, 0);
        }
        self.latency_buckets[bucket] += 1;
    }

    /// The latency under which a share `q` of requests finished: its bucket's upper bound.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total as f64 * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, n) in self.latency_buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BOUNDS_MS.get(bucket).copied().unwrap_or(f64::INFINITY));
            }
        }
        None
    }

    pub fn merge(&mut self, other: &Figures) {
        self.requests += other.requests;
        self.allowed += other.allowed;
        self.denied += other.denied;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        if self.latency_buckets.len() < other.latency_buckets.len() {
            self.latency_buckets.resize(other.latency_buckets.len(), 0);
        }
        for (mine, theirs) in self.latency_buckets.iter_mut().zip(&other.latency_buckets) {
            *mine += theirs;
        }
        self.upstream_calls += other.upstream_calls;
        self.upstream_failures += other.upstream_failures;
        self.allowed_actors.merge(&other.allowed_actors);
        self.denied_actors.merge(&other.denied_actors);
        self.links_asked.merge(&other.links_asked);
        self.links_shown.merge(&other.links_shown);
        self.guards.merge(&other.guards);
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_merge_and_latency_quantiles_come_from_buckets() {
        let mut a = Figures::default();
        for ms in [0.3, 3.0, 3.0, 40.0] {
            a.add_latency(Duration::from_secs_f64(ms / 1000.0));
        }
        a.requests = 4;
        a.errors.insert("502".into(), 1);
        let mut b = a.clone();
        b.merge(&a);
        assert_eq!(b.requests, 8);
        assert_eq!(b.errors["502"], 2);
        assert_eq!(b.latency_quantile_ms(0.5), Some(5.0));
        assert_eq!(b.latency_quantile_ms(0.95), Some(50.0));
        let stored: Figures = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(stored, b);
    }
}
