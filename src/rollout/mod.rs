//! The rollout report: what each stage of the release plan did, per toggle.
//!
//! A stage starts whenever a toggle's gates change. Each request that passed a gate is counted
//! in the current stage of that toggle (`figures`: unique actors as sketches of keyed hashes,
//! never ids; requests allowed and denied; errors by type; a latency histogram; upstream calls;
//! the links share). With the file source the report is this instance's. With PostgreSQL it is
//! the fleet's (`fleet`): each replica writes its figures every `AVS_ROLLOUT_FLUSH_SECS`, stage
//! boundaries are recorded once in the database, and any replica's report merges them all.
//! Stages are bounded in memory and in the tables (`AVS_ROLLOUT_MAX_STAGES`, and
//! `AVS_ROLLOUT_RETENTION_DAYS`).

mod figures;
pub mod fleet;
mod hll;
pub mod report;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::telemetry::Notes;
use crate::toggles::{AVS_ENABLED, Feature, LINKS_ENABLED, Toggles};
pub use figures::Figures;
pub use hll::Hll;
use report::{Cleanup, InstanceRow, Point, Report, StageFigures, StageReport, ToggleReport};

/// Per-minute points kept per toggle for the chart.
const TIMELINE_MINUTES: usize = 24 * 60;

/// How the report is kept and judged (settings).
#[derive(Clone, Debug)]
pub struct RolloutSettings {
    /// This replica's name in the fleet report.
    pub instance: String,
    pub flush: Duration,
    pub max_stages: usize,
    pub retention_days: u64,
    /// A toggle fully on for this long, with no rollback since, may be removed...
    pub cleanup_days: u64,
    /// ...if its stage's error rate is under this.
    pub cleanup_max_error_percent: f64,
}

impl Default for RolloutSettings {
    fn default() -> RolloutSettings {
        RolloutSettings {
            instance: "local".to_owned(),
            flush: Duration::from_secs(5),
            max_stages: 50,
            retention_days: 90,
            cleanup_days: 14,
            cleanup_max_error_percent: 1.0,
        }
    }
}

/// One stage as this instance counted it.
#[derive(Debug)]
struct LocalStage {
    gates: Feature,
    /// Its number and start in the fleet's table, once resolved (fleet mode).
    seq: Option<i64>,
    /// Unix seconds: when the gates changed here, or the fleet's boundary once resolved.
    started: u64,
    figures: Figures,
    /// Counted since its last write to the fleet's table.
    dirty: bool,
}

#[derive(Debug, Default)]
struct ToggleHistory {
    stages: VecDeque<LocalStage>,
    /// Stages ever opened here, so numbers go on when old ones are dropped.
    opened: usize,
    /// Unix minute → (requests, errors).
    timeline: BTreeMap<u64, (u64, u64)>,
}

pub struct Rollout {
    toggles: Arc<Toggles>,
    history: Mutex<HashMap<&'static str, ToggleHistory>>,
    settings: RolloutSettings,
    fleet: Option<fleet::Store>,
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

/// A stage to write to the fleet's table: toggle, index here, its number there (if resolved),
/// gates key, setting, and its figures (if counted since the last write).
type Pending = (&'static str, usize, Option<i64>, String, String, Option<Figures>);

/// The toggles every report shows, whether or not they have been asked yet.
const KNOWN: [&str; 2] = [AVS_ENABLED, LINKS_ENABLED];

/// A stage's gates as stored in the fleet's table: enough to tell two settings apart and to
/// judge the stage, without the actor ids themselves (their count and a digest).
fn gates_key(f: &Feature) -> String {
    let digest = foldhash::fast::FixedState::with_seed(0).hash_one(&f.actors);
    json!({
        "boolean": f.boolean,
        "actors": f.actors.len(),
        "actorsDigest": format!("{digest:016x}"),
        "percentageOfActors": f.percentage_of_actors.map(|p| p.to_string()),
        "percentageOfTime": f.percentage_of_time.map(|p| p.to_string()),
        "groups": f.groups.len(),
    })
    .to_string()
}

/// What the report needs to know of a stage's gates.
#[derive(Clone, Copy, Debug, Default)]
struct Judged {
    fully_on: bool,
    percentage_of_actors: Option<f64>,
}

impl Judged {
    fn of(f: &Feature) -> Judged {
        Judged {
            fully_on: f.boolean || f.percentage_of_actors.is_some_and(|p| p.at_least_100()),
            percentage_of_actors: f.percentage_of_actors.map(|p| p.as_f64()).filter(|p| *p > 0.0),
        }
    }

    fn of_key(key: &str) -> Judged {
        let v: serde_json::Value = serde_json::from_str(key).unwrap_or_default();
        let pct = v["percentageOfActors"]
            .as_str()
            .and_then(|p| p.parse::<f64>().ok());
        Judged {
            fully_on: v["boolean"].as_bool().unwrap_or(false) || pct.is_some_and(|p| p >= 100.0),
            percentage_of_actors: pct.filter(|p| *p > 0.0),
        }
    }
}

impl Rollout {
    pub fn new(toggles: Arc<Toggles>, settings: RolloutSettings, fleet: Option<fleet::Store>) -> Rollout {
        Rollout {
            toggles,
            history: Mutex::new(HashMap::new()),
            settings,
            fleet,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, ToggleHistory>> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The toggle's current stage, opening a new one if its gates changed since; old stages
    /// beyond the limit are dropped (their figures stay in the fleet's table until retention).
    fn current<'a>(&self, history: &'a mut ToggleHistory, name: &str) -> &'a mut LocalStage {
        let snapshot = self.toggles.snapshot();
        let off = Feature::default();
        let feature = snapshot.features.get(name).unwrap_or(&off);
        // Compared in place: cloning the gates on every request would cost more than the count.
        if history.stages.back().is_none_or(|s| &s.gates != feature) {
            let started = self.toggles.changed_at(name).unwrap_or_else(now_secs);
            history.opened += 1;
            history.stages.push_back(LocalStage {
                gates: feature.clone(),
                seq: None,
                started,
                figures: Figures::default(),
                dirty: true,
            });
            let oldest_kept = now_secs().saturating_sub(self.settings.retention_days * 86_400);
            while history.stages.len() > self.settings.max_stages.max(1)
                || history.stages.len() > 1 && history.stages.front().is_some_and(|s| s.started < oldest_kept)
            {
                history.stages.pop_front();
            }
        }
        let Some(last) = history.stages.back_mut() else {
            unreachable!("a stage was just pushed")
        };
        last
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

    /// Opens a current stage for every known toggle, so each shows even before its first
    /// request.
    fn open_known(&self) {
        let mut all = self.lock();
        let snapshot = self.toggles.snapshot();
        for name in KNOWN.into_iter().filter(|k| snapshot.features.contains_key(*k)) {
            let history = all.entry(name).or_default();
            self.current(history, name);
        }
    }

    /// Writes this replica's figures to the fleet's table, recording new stage boundaries
    /// first and applying retention. Does nothing with the file source.
    pub async fn flush(&self) -> Result<(), String> {
        let Some(store) = &self.fleet else { return Ok(()) };
        self.open_known();
        // What to resolve and write, taken under the lock; the database is asked without it.
        let pending: Vec<Pending> = {
            let all = self.lock();
            all.iter()
                .flat_map(|(name, h)| {
                    h.stages
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.dirty || s.seq.is_none())
                        .map(|(i, s)| {
                            (
                                *name,
                                i,
                                s.seq,
                                gates_key(&s.gates),
                                describe(&s.gates),
                                s.dirty.then(|| s.figures.clone()),
                            )
                        })
                })
                .collect()
        };
        for (name, index, seq, gates, setting, figures) in pending {
            let (seq, started) = match seq {
                Some(seq) => (seq, None),
                None => {
                    let stage = store.stage_for(name, &gates, &setting).await?;
                    (stage.seq, Some(stage.started))
                }
            };
            if let Some(figures) = &figures {
                store.save(name, seq, &self.settings.instance, figures).await?;
            }
            let mut all = self.lock();
            if let Some(stage) = all.get_mut(name).and_then(|h| h.stages.get_mut(index)) {
                if let Some(started) = started {
                    stage.seq = Some(seq);
                    stage.started = started;
                }
                if figures.as_ref() == Some(&stage.figures) {
                    stage.dirty = false;
                }
            }
        }
        store
            .retain(
                self.settings.max_stages as i64,
                self.settings.retention_days as i64,
            )
            .await?;
        Ok(())
    }

    /// Flushes every `AVS_ROLLOUT_FLUSH_SECS` until the last reference goes (fleet mode only).
    pub fn keep_flushing(self: &Arc<Self>) {
        if self.fleet.is_none() {
            return;
        }
        let rollout = Arc::downgrade(self);
        let period = self.settings.flush;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(rollout) = rollout.upgrade() else { return };
                if let Err(problem) = rollout.flush().await {
                    tracing::warn!(%problem, "rollout figures not written; retrying");
                }
            }
        });
    }

    /// The report: the fleet's through PostgreSQL, else this instance's.
    pub async fn report(&self) -> Report {
        if self.fleet.is_some() {
            match self.fleet_report().await {
                Ok(report) => return report,
                Err(problem) => tracing::warn!(%problem, "fleet report unavailable; showing this instance"),
            }
        }
        self.local_report()
    }

    /// The report in Markdown, following the release plan's Results bullets.
    pub async fn markdown(&self) -> String {
        self.report().await.markdown()
    }

    fn timeline(&self, name: &str) -> Vec<Point> {
        self.lock().get(name).map_or_else(Vec::new, |h| {
            h.timeline
                .iter()
                .map(|(minute, (requests, errors))| Point {
                    minute: minute * 60,
                    requests: *requests,
                    errors: *errors,
                })
                .collect()
        })
    }

    fn local_report(&self) -> Report {
        self.open_known();
        let all = self.lock();
        let mut names: Vec<&&str> = all.keys().collect();
        names.sort();
        let toggles = names
            .into_iter()
            .map(|name| {
                let h = &all[*name];
                let first = h.opened + 1 - h.stages.len();
                let stages: Vec<(StageReport, Judged, u64)> = h
                    .stages
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let judged = Judged::of(&s.gates);
                        let figures = || {
                            StageFigures::from_figures(
                                &s.figures,
                                report::expected_links(judged.percentage_of_actors),
                            )
                        };
                        let report = StageReport {
                            stage: first + i,
                            setting: describe(&s.gates),
                            started_at: rfc3339(s.started),
                            figures: figures(),
                            instances: vec![InstanceRow {
                                instance: self.settings.instance.clone(),
                                live: true,
                                last_report: rfc3339(now_secs()),
                                figures: figures(),
                            }],
                        };
                        (report, judged, s.started)
                    })
                    .collect();
                self.toggle_report(name, stages, Vec::new())
            })
            .collect::<Vec<_>>();
        drop(all);
        let toggles = toggles
            .into_iter()
            .map(|mut t| {
                t.timeline = self.timeline(&t.toggle);
                t
            })
            .collect();
        Report {
            generated_at: rfc3339(now_secs()),
            scope: "this instance",
            toggles,
        }
    }

    async fn fleet_report(&self) -> Result<Report, String> {
        let Some(store) = &self.fleet else {
            return Err("no fleet store".to_owned());
        };
        // This replica's freshest figures first.
        self.flush().await?;
        let live_within = self.settings.flush.as_secs().max(1) * 3;
        let mut toggles = Vec::new();
        for name in store.toggles().await? {
            let (stages, rows) = store.history(&name, self.settings.max_stages as i64).await?;
            let stages = stages
                .iter()
                .map(|stage| {
                    let judged = Judged::of_key(&stage.gates);
                    let expected = report::expected_links(judged.percentage_of_actors);
                    let mine: Vec<&fleet::StoredFigures> =
                        rows.iter().filter(|r| r.seq == stage.seq).collect();
                    let mut merged = Figures::default();
                    mine.iter().for_each(|r| merged.merge(&r.figures));
                    let report = StageReport {
                        stage: stage.seq as usize,
                        setting: stage.setting.clone(),
                        started_at: rfc3339(stage.started),
                        figures: StageFigures::from_figures(&merged, expected),
                        instances: mine
                            .iter()
                            .map(|r| InstanceRow {
                                instance: r.instance.clone(),
                                live: r.age_secs <= live_within,
                                last_report: rfc3339(now_secs().saturating_sub(r.age_secs)),
                                figures: StageFigures::from_figures(&r.figures, expected),
                            })
                            .collect(),
                    };
                    (report, judged, stage.started)
                })
                .collect();
            let timeline = self.timeline(&name);
            toggles.push(self.toggle_report(&name, stages, timeline));
        }
        Ok(Report {
            generated_at: rfc3339(now_secs()),
            scope: "fleet",
            toggles,
        })
    }

    fn toggle_report(
        &self,
        name: &str,
        stages: Vec<(StageReport, Judged, u64)>,
        timeline: Vec<Point>,
    ) -> ToggleReport {
        let cleanup = self.cleanup(name, stages.last());
        ToggleReport {
            toggle: name.to_owned(),
            stages: stages.into_iter().map(|(s, _, _)| s).collect(),
            timeline,
            cleanup,
        }
    }

    /// The plan's question 5: fully on for everyone for `cleanup_days`, no rollback since (a
    /// rollback would have started a later stage), error rate under the threshold.
    fn cleanup(&self, name: &str, current: Option<&(StageReport, Judged, u64)>) -> Cleanup {
        let gate_points = report::GATE_POINTS
            .iter()
            .find(|(toggle, _)| *toggle == name)
            .map_or_else(Vec::new, |(_, points)| points.to_vec());
        let Some((stage, judged, started)) = current else {
            return Cleanup {
                ready: false,
                verdict: "no stage yet".to_owned(),
                fully_on_since: None,
                gate_points,
            };
        };
        if !judged.fully_on {
            return Cleanup {
                ready: false,
                verdict: "not fully on for everyone".to_owned(),
                fully_on_since: None,
                gate_points,
            };
        }
        let days_on = now_secs().saturating_sub(*started) / 86_400;
        let f = &stage.figures;
        let error_percent = if f.requests == 0 {
            0.0
        } else {
            f.errors_total() as f64 * 100.0 / f.requests as f64
        };
        let (ready, verdict) = if days_on < self.settings.cleanup_days {
            (
                false,
                format!(
                    "fully on for {days_on} of the {} days asked, with no rollback since",
                    self.settings.cleanup_days
                ),
            )
        } else if error_percent >= self.settings.cleanup_max_error_percent {
            (
                false,
                format!(
                    "fully on for {days_on} days, but its error rate is {error_percent:.2} % (at most {} % asked)",
                    self.settings.cleanup_max_error_percent
                ),
            )
        } else {
            (
                true,
                format!(
                    "fully on for {days_on} days with no rollback since, error rate {error_percent:.2} %"
                ),
            )
        };
        Cleanup {
            ready,
            verdict,
            fully_on_since: Some(stage.started_at.clone()),
            gate_points,
        }
    }

    /// Stages held in memory across toggles (for the retention test).
    pub fn stages_held(&self) -> usize {
        self.lock().values().map(|h| h.stages.len()).sum()
    }

    /// The fleet store, when the report is the fleet's.
    pub fn fleet(&self) -> Option<&fleet::Store> {
        self.fleet.as_ref()
    }
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

/// Unix seconds as `YYYY-MM-DDThh:mm:ssZ`.
pub fn rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs.min(i64::MAX as u64) as i64)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
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
