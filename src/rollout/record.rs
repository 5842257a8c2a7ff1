//! Recording: each finished request counted in the current stage of every toggle it passed.

use std::time::Duration;

use super::figures::GuardCounts;
use super::{Rollout, TIMELINE_MINUTES, now_secs};
use crate::telemetry::{Notes, UpstreamErrorKind};

/// The kind of error a request ended in, for "Types of errors logged"; `None` for success or a
/// gate denial (counted apart). An upstream 404 is an answer, so its status names it.
fn error_type(notes: &Notes, status: u16, denied: bool) -> Option<String> {
    let upstream = match notes.upstream_error {
        Some(UpstreamErrorKind::Timeout) => Some("upstream_timeout"),
        Some(UpstreamErrorKind::Unavailable) => Some("upstream_outage"),
        Some(UpstreamErrorKind::BadGateway) => Some("upstream_bad_gateway"),
        Some(UpstreamErrorKind::CircuitOpen) => Some("breaker_open"),
        Some(UpstreamErrorKind::Saturated) => Some("upstream_saturated"),
        Some(UpstreamErrorKind::NotFound) | None => None,
    };
    if let Some(name) = upstream {
        return Some(name.to_owned());
    }
    match status {
        400..=599 if !denied => Some(status.to_string()),
        _ => None,
    }
}

/// Counts an allowed request for the guards of toggle `name` (`rollout-guard.md`): a few adds.
fn count_for_guards(
    g: &mut GuardCounts,
    notes: &Notes,
    name: &str,
    status: u16,
    latency: Duration,
    slow_ms: u64,
) {
    g.server_errors += u64::from(status >= 500);
    g.breaker_open +=
        u64::from(notes.breaker_open || notes.upstream_error == Some(UpstreamErrorKind::CircuitOpen));
    // A view refused for its input or its caller is the caller's, not the service's.
    if notes.view_of == Some(name) && !matches!(status, 400 | 401 | 403) {
        g.views += 1;
        if (200..300).contains(&status) || status == 304 {
            g.served_views += 1;
            // Exactly, not a histogram bucket: the plan's threshold need not be a bound.
            g.slow_views += u64::from(latency > Duration::from_millis(slow_ms));
        } else {
            g.view_failures += 1;
        }
    }
}

impl Rollout {
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
            stage.dirty = true;
            let f = &mut stage.figures;
            f.requests += 1;
            if *open {
                f.allowed += 1;
                let slow_ms = self.settings.plan.for_toggle(name).guards.slow_view_ms;
                count_for_guards(&mut f.guards, notes, name, status, latency, slow_ms);
            } else {
                f.denied += 1;
            }
            if let Some(actor) = notes.actor {
                if *open {
                    f.allowed_actors.add(actor)
                } else {
                    f.denied_actors.add(actor)
                }
                if let Some(shown) = notes.links_shown {
                    f.links_asked.add(actor);
                    if shown {
                        f.links_shown.add(actor);
                    }
                }
            }
            if let Some(error) = error {
                *f.errors.entry(error).or_default() += 1;
            }
            f.upstream_calls += u64::from(notes.upstream_calls);
            f.upstream_failures += u64::from(notes.upstream_failures);
            f.add_latency(latency);
        }
    }
}
