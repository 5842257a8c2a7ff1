//! The rollout report: what each stage of the release plan did, per toggle, from this instance.
//!
//! A stage starts whenever a toggle's gates change. Each request that passed a gate is counted
//! in the current stage of that toggle: unique actors (a HyperLogLog of keyed actor hashes, no
//! ids), requests allowed and denied, errors by type, latency, and the upstream's error rate.

mod hll;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::telemetry::Notes;
use crate::toggles::{Feature, Toggles};
pub use hll::Hll;

/// Latency samples kept per stage (reservoir sampling past it).
const LATENCY_SAMPLES: usize = 20_000;
/// Per-minute points kept per toggle for the chart.
const TIMELINE_MINUTES: usize = 24 * 60;

#[derive(Debug, Default)]
struct Stage {
    feature: Feature,
    started: u64,
    allowed_actors: Hll,
    denied_actors: Hll,
    requests: u64,
    allowed: u64,
    denied: u64,
    errors: BTreeMap<String, u64>,
    latencies_ms: Vec<f32>,
    seen_latencies: u64,
    upstream_calls: u64,
    upstream_failures: u64,
}

#[derive(Debug, Default)]
struct ToggleHistory {
    stages: Vec<Stage>,
    /// Unix minute → (requests, errors).
    timeline: BTreeMap<u64, (u64, u64)>,
}

pub struct Rollout {
    toggles: Arc<Toggles>,
    history: Mutex<HashMap<&'static str, ToggleHistory>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The kind of error a request ended in, for "Types of errors logged"; `None` for success or a
/// gate denial (counted apart).
fn error_type(notes: &Notes, status: u16, denied: bool) -> Option<String> {
    if let Some(kind) = notes.upstream_error {
        let name = match kind {
            "timeout" => "upstream_timeout",
            "unavailable" => "upstream_outage",
            "bad_gateway" => "upstream_bad_gateway",
            "circuit_open" => "breaker_open",
            "saturated" => "upstream_saturated",
            _ => "upstream_not_found",
        };
        if name != "upstream_not_found" {
            return Some(name.to_owned());
        }
    }
    match status {
        400..=599 if !denied => Some(status.to_string()),
        _ => None,
    }
}

impl Rollout {
    pub fn new(toggles: Arc<Toggles>) -> Rollout {
        Rollout {
            toggles,
            history: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, ToggleHistory>> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The toggle's current stage, opening a new one if its gates changed since.
    fn current<'a>(&self, history: &'a mut ToggleHistory, name: &str) -> &'a mut Stage {
        let snapshot = self.toggles.snapshot();
        let off = Feature::default();
        let feature = snapshot.features.get(name).unwrap_or(&off);
        // Compared in place: cloning the gates on every request would cost more than the count.
        if history.stages.last().is_none_or(|s| &s.feature != feature) {
            let started = self.toggles.changed_at(name).unwrap_or_else(now_secs);
            history.stages.push(Stage {
                feature: feature.clone(),
                started,
                ..Stage::default()
            });
        }
        let last = history.stages.len() - 1;
        &mut history.stages[last]
    }

    /// Counts one finished request in the current stage of every toggle it passed.
    pub fn record(&self, notes: &Notes, status: u16, latency: Duration) {
        if notes.gates.is_empty() {
            return;
        }
        let mut all = self.lock();
        let minute = now_secs() / 60;
        for (name, open) in &notes.gates {
            let history = all.entry(name).or_default();
            let error = error_type(notes, status, !open);
            let point = history.timeline.entry(minute).or_default();
            point.0 += 1;
            point.1 += u64::from(error.is_some());
            while history.timeline.len() > TIMELINE_MINUTES {
                history.timeline.pop_first();
            }
            let stage = self.current(history, name);
            stage.requests += 1;
            if *open {
                stage.allowed += 1;
            } else {
                stage.denied += 1;
            }
            if let Some(actor) = notes.actor {
                if *open {
                    stage.allowed_actors.add(actor)
                } else {
                    stage.denied_actors.add(actor)
                }
            }
            if let Some(error) = error {
                *stage.errors.entry(error).or_default() += 1;
            }
            stage.upstream_calls += u64::from(notes.upstream_calls);
            stage.upstream_failures += u64::from(notes.upstream_failures);
            stage.seen_latencies += 1;
            let ms = latency.as_secs_f32() * 1000.0;
            if stage.latencies_ms.len() < LATENCY_SAMPLES {
                stage.latencies_ms.push(ms);
            } else {
                let slot = fastrand::u64(..stage.seen_latencies) as usize;
                if slot < LATENCY_SAMPLES {
                    stage.latencies_ms[slot] = ms;
                }
            }
        }
    }

    /// The report as JSON: per toggle, its stages, oldest first.
    pub fn report(&self) -> Value {
        let mut all = self.lock();
        let names: Vec<String> = self.toggles.snapshot().features.keys().cloned().collect();
        for name in names {
            // Every toggle gets a current stage, even before its first request.
            if let Some(known) = [crate::toggles::AVS_ENABLED, crate::toggles::LINKS_ENABLED]
                .into_iter()
                .find(|k| *k == name)
            {
                let history = all.entry(known).or_default();
                self.current(history, known);
            }
        }
        let mut toggles: Vec<(&&str, &ToggleHistory)> = all.iter().collect();
        toggles.sort_by_key(|(name, _)| **name);
        let toggles: Vec<Value> = toggles
            .into_iter()
            .map(|(name, history)| {
                let stages: Vec<Value> =
                    history.stages.iter().enumerate().map(|(i, s)| stage_json(i + 1, s)).collect();
                let timeline: Vec<Value> = history
                    .timeline
                    .iter()
                    .map(|(minute, (requests, errors))| json!({"minute": minute * 60, "requests": requests, "errors": errors}))
                    .collect();
                json!({"toggle": name, "stages": stages, "timeline": timeline})
            })
            .collect();
        json!({"generatedAt": rfc3339(now_secs()), "scope": "this instance", "toggles": toggles})
    }

    /// The report in Markdown, following the release plan's Results bullets.
    pub fn markdown(&self) -> String {
        markdown(&self.report())
    }
}

fn percentile(samples: &[f32], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f32::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    Some(f64::from(sorted[index]))
}

/// A stage's gate setting in words: "percentage_of_actors 10 %, actors 1".
pub fn describe(f: &Feature) -> String {
    let mut parts = Vec::new();
    if f.boolean {
        parts.push("fully on (boolean)".to_owned());
    }
    if !f.actors.is_empty() {
        parts.push(format!("{} named actor(s)", f.actors.len()));
    }
    if let Some(p) = f.percentage_of_actors.filter(|p| p.is_positive()) {
        parts.push(format!("{p} % of actors"));
    }
    if let Some(p) = f.percentage_of_time.filter(|p| p.is_positive()) {
        parts.push(format!("{p} % of time"));
    }
    if parts.is_empty() {
        "off".to_owned()
    } else {
        parts.join(", ")
    }
}

fn stage_json(number: usize, s: &Stage) -> Value {
    let mut unique = s.allowed_actors.clone();
    unique.merge(&s.denied_actors);
    let rate = if s.upstream_calls == 0 {
        0.0
    } else {
        s.upstream_failures as f64 / s.upstream_calls as f64
    };
    json!({
        "stage": number,
        "setting": describe(&s.feature),
        "startedAt": rfc3339(s.started),
        "uniqueActors": {"total": unique.count(), "allowed": s.allowed_actors.count(), "denied": s.denied_actors.count()},
        "requests": s.requests,
        "allowed": s.allowed,
        "denied": s.denied,
        "errors": s.errors,
        "latencyMs": {"p50": percentile(&s.latencies_ms, 0.5), "p95": percentile(&s.latencies_ms, 0.95)},
        "upstream": {"calls": s.upstream_calls, "failures": s.upstream_failures, "errorRate": rate},
    })
}

fn markdown(report: &Value) -> String {
    let mut md = format!(
        "# AVS rollout report\n\nGenerated {} for this instance (add the replicas' `/metrics` for the fleet).\n",
        report["generatedAt"].as_str().unwrap_or("")
    );
    for toggle in report["toggles"].as_array().into_iter().flatten() {
        let _ = write!(md, "\n## {}\n", toggle["toggle"].as_str().unwrap_or(""));
        for s in toggle["stages"].as_array().into_iter().flatten() {
            let ms = |q: &str| {
                s["latencyMs"][q]
                    .as_f64()
                    .map_or("n/a".to_owned(), |v| format!("{v:.1} ms"))
            };
            let calls = s["upstream"]["calls"].as_u64().unwrap_or(0);
            let failures = s["upstream"]["failures"].as_u64().unwrap_or(0);
            let rate = s["upstream"]["errorRate"].as_f64().unwrap_or(0.0) * 100.0;
            let affected = if failures == 0 {
                format!("No: the clinical source answered all {calls} calls.")
            } else if rate < 1.0 {
                format!("No: upstream error rate {rate:.2} % ({failures} of {calls} calls).")
            } else {
                format!(
                    "Yes: upstream error rate {rate:.2} % ({failures} of {calls} calls); check its dashboards."
                )
            };
            let errors: Vec<String> = s["errors"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(kind, n)| format!("{kind} × {n}"))
                .collect();
            let _ = write!(
                md,
                "\n### Stage {n}: {setting} (since {since})\n\n\
                 - **Number of unique users**: {total} ({allowed_u} allowed, {denied_u} denied)\n\
                 - **Metrics at this stage**: {requests} requests ({allowed} allowed, {denied} denied); \
                 latency p50 {p50}, p95 {p95}; {calls} upstream calls\n\
                 - **Was any downstream service affected by the change?** {affected}\n\
                 - **Types of errors logged**: {errors}\n",
                n = s["stage"],
                setting = s["setting"].as_str().unwrap_or(""),
                since = s["startedAt"].as_str().unwrap_or(""),
                total = s["uniqueActors"]["total"],
                allowed_u = s["uniqueActors"]["allowed"],
                denied_u = s["uniqueActors"]["denied"],
                requests = s["requests"],
                allowed = s["allowed"],
                denied = s["denied"],
                p50 = ms("p50"),
                p95 = ms("p95"),
                errors = if errors.is_empty() {
                    "none".to_owned()
                } else {
                    errors.join(", ")
                },
            );
        }
    }
    md
}

/// Unix seconds as `YYYY-MM-DDThh:mm:ssZ` (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_478_400), "2026-11-24T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
