//! Recording: each finished request counted in the current stage of every toggle it passed.

use std::time::Duration;

use super::figures::{GuardCells, GuardCounts};
use super::{GuardIndex, Rollout, TIMELINE_MINUTES, now_secs};
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

/// What an allowed request adds to the guards of toggle `name` (`rollout-guard.md`).
fn guard_counts(notes: &Notes, name: &str, status: u16, latency: Duration, slow_ms: u64) -> GuardCounts {
    let mut g = GuardCounts {
        allowed: 1,
        server_errors: u64::from(status >= 500),
        breaker_open: u64::from(
            notes.breaker_open || notes.upstream_error == Some(UpstreamErrorKind::CircuitOpen),
        ),
        ..GuardCounts::default()
    };
    // A view refused for its input or its caller is the caller's, not the service's.
    if notes.view_of == Some(name) && !matches!(status, 400 | 401 | 403) {
        g.views = 1;
        if (200..300).contains(&status) || status == 304 {
            g.served_views = 1;
            // Exactly, not a histogram bucket: the plan's threshold need not be a bound.
            g.slow_views = u64::from(latency > Duration::from_millis(slow_ms));
        } else {
            g.view_failures = 1;
        }
    }
    g
}

impl Rollout {
    /// Counts one finished request in the current stage of every toggle it passed: for the
    /// guards, then for the report.
    pub fn record(&self, notes: &Notes, status: u16, latency: Duration) {
        if notes.gates.is_empty() {
            return;
        }
        self.count_for_guards(notes, status, latency);
        self.count_for_report(notes, status, latency);
    }

    /// The guards' counts: a few atomic adds to the current stage's cells, found through the
    /// index without the report's lock. The lock is taken only when the toggles have moved on
    /// since the index was built (once per change, by the first request to see it).
    fn count_for_guards(&self, notes: &Notes, status: u16, latency: Duration) {
        let generation = self.toggles.generation();
        for (name, _) in notes.gates.iter().filter(|(_, open)| *open) {
            let slow_ms = self.settings.plan.for_toggle(name).guards.slow_view_ms;
            let counts = guard_counts(notes, name, status, latency, slow_ms);
            match self.guard_index.load().cells(name, generation) {
                Some(cells) => cells.add(&counts),
                None => self.index_guards(name).add(&counts),
            }
        }
    }

    /// Rebuilds the guards' index from each toggle's current stage; returns `name`'s cells.
    fn index_guards(&self, name: &'static str) -> std::sync::Arc<GuardCells> {
        let mut all = self.lock();
        let cells = self.current(all.entry(name).or_default(), name).cells.clone();
        let generation = all.get(name).map_or(0, |h| h.checked);
        // Only the toggles checked against the same generation; the others are checked (and
        // indexed) by their own next request.
        let index = GuardIndex {
            generation,
            cells: all
                .iter()
                .filter(|(_, h)| h.checked == generation)
                .filter_map(|(n, h)| Some((*n, h.stages.back()?.cells.clone())))
                .collect(),
        };
        self.guard_index.store(std::sync::Arc::new(index));
        cells
    }

    /// The report's figures, under its lock: the timeline, actors' sketches, errors by type,
    /// the latency histogram.
    fn count_for_report(&self, notes: &Notes, status: u16, latency: Duration) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc;

    use super::*;
    use crate::config::RolloutSettings;
    use crate::toggles::{AVS_ENABLED, Feature, Snapshot, Toggles};

    fn view() -> Notes {
        let mut notes = Notes {
            actor: Some(7),
            view_of: Some(AVS_ENABLED),
            ..Notes::default()
        };
        notes.gates.push((AVS_ENABLED, true));
        notes
    }

    /// The guards' counts go on while the report's lock is held elsewhere (so they are not
    /// behind it), and what they counted is in the stage's figures once it is read.
    #[test]
    fn counting_for_the_guards_does_not_wait_on_the_report_lock() {
        let mut snapshot = Snapshot::default();
        let on = Feature {
            boolean: true,
            ..Feature::default()
        };
        snapshot.features.insert(AVS_ENABLED.to_owned(), on);
        let rollout = Arc::new(Rollout::new(
            Toggles::fixed(snapshot),
            RolloutSettings::default(),
            None,
        ));
        // The first request builds the index (under the lock, once for this generation).
        rollout.record(&view(), 200, Duration::from_millis(3));
        let held = rollout.lock();
        let (done, counted) = mpsc::channel();
        let counter = Arc::clone(&rollout);
        let worker = std::thread::spawn(move || {
            for (status, ms) in [(200, 3), (200, 900), (503, 3), (404, 3)] {
                counter.count_for_guards(&view(), status, Duration::from_millis(ms));
            }
            done.send(()).ok();
        });
        counted
            .recv_timeout(Duration::from_secs(10))
            .expect("the guards' counts waited on the report's lock");
        drop(held);
        worker.join().unwrap();
        let all = rollout.settled();
        let g = all[AVS_ENABLED].stages.back().unwrap().figures.guards;
        assert_eq!(
            g,
            GuardCounts {
                allowed: 5,
                server_errors: 1,
                views: 5,
                view_failures: 2,
                served_views: 3,
                slow_views: 1,
                breaker_open: 0,
            }
        );
        // Drained once: a second read adds nothing.
        drop(all);
        assert_eq!(
            rollout.settled()[AVS_ENABLED]
                .stages
                .back()
                .unwrap()
                .figures
                .guards,
            g
        );
    }
}
