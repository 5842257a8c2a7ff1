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
//!
//! This file holds the stages; `record` counts requests into them, `sync` writes them to the
//! fleet's tables, `assemble` builds the report, and `report` is its typed shape.

mod assemble;
pub mod evidence;
mod figures;
pub mod fleet;
mod gauges;
pub mod guard;
mod hll;
mod position;
mod record;
pub mod report;
pub mod rules;
mod stage_record;
mod sync;
pub mod verdict;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde_json::json;

pub use crate::config::RolloutSettings;
use crate::toggles::{AVS_ENABLED, AVS_PDF, Feature, LINKS_ENABLED, OH_AVS, Toggles};
pub use figures::Figures;
use figures::GuardCells;
pub use hll::Hll;

/// Per-minute points kept per toggle for the chart.
const TIMELINE_MINUTES: usize = 24 * 60;

/// One stage as this instance counted it.
#[derive(Debug)]
struct LocalStage {
    gates: Feature,
    /// Its number and start in the fleet's table, once resolved (fleet mode).
    seq: Option<i64>,
    /// Unix seconds: when the gates changed here, or the fleet's boundary once resolved.
    started: u64,
    figures: Figures,
    /// Its guards' counts as requests add them, drained into `figures` when it is read.
    cells: Arc<GuardCells>,
    /// Counted since its last write to the fleet's table.
    dirty: bool,
    /// What the guard recorded of it (file source; the fleet's is in its table).
    record: verdict::StageRecord,
}

#[derive(Debug, Default)]
struct ToggleHistory {
    stages: VecDeque<LocalStage>,
    /// Stages ever opened here, so numbers go on when old ones are dropped.
    opened: usize,
    /// The toggles' generation the last stage was checked against (0: never).
    checked: u64,
    /// Unix minute → (requests, errors).
    timeline: BTreeMap<u64, (u64, u64)>,
}

/// Each toggle's history; looked up on every request, so foldhash rather than SipHash.
type Histories = HashMap<&'static str, ToggleHistory, foldhash::fast::FixedState>;

/// Where each toggle's current stage counts its guards, as of one toggles generation: read
/// on every request without the report's lock, rebuilt under it once the toggles move on.
#[derive(Debug, Default)]
struct GuardIndex {
    generation: u64,
    cells: smallvec::SmallVec<[(&'static str, Arc<GuardCells>); 4]>,
}

impl GuardIndex {
    /// The cells of `name`'s current stage, if this index is of `generation`.
    fn cells(&self, name: &str, generation: u64) -> Option<&GuardCells> {
        if self.generation != generation || generation == 0 {
            return None;
        }
        self.cells.iter().find(|(n, _)| *n == name).map(|(_, c)| &**c)
    }
}

pub struct Rollout {
    toggles: Arc<Toggles>,
    history: Mutex<Histories>,
    guard_index: ArcSwap<GuardIndex>,
    /// Each judged toggle's gauges (verdict, stage percent); a toggle turned off has none.
    gauges: Mutex<BTreeMap<String, [f64; 2]>>,
    settings: RolloutSettings,
    fleet: Option<fleet::Store>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The toggles every report shows, whether or not they have been asked yet.
const KNOWN: [&str; 4] = [AVS_ENABLED, LINKS_ENABLED, OH_AVS, AVS_PDF];

/// A stage's gates as stored in the fleet's table: enough to tell two settings apart and to
/// judge and describe the stage, without the actor ids themselves (their count and a digest).
/// `fleet::GATES_NOW` computes the same from Flipper's rows (a test holds the two together).
pub fn gates_key(f: &Feature) -> String {
    use md5::Digest as _;
    let actors: Vec<&str> = f.actors.iter().map(String::as_str).collect();
    let digest = md5::Md5::digest(actors.join("\n").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    json!({
        "boolean": f.boolean,
        "actors": f.actors.len(),
        "actorsDigest": hex,
        "percentageOfActors": f.percentage_of_actors.map(|p| p.to_string()),
        "percentageOfTime": f.percentage_of_time.map(|p| p.to_string()),
        "groups": f.groups.len(),
    })
    .to_string()
}

impl Rollout {
    pub fn new(toggles: Arc<Toggles>, settings: RolloutSettings, fleet: Option<fleet::Store>) -> Rollout {
        if fleet.is_some() {
            // Each change written through this process is recorded as a stage as it commits
            // (start-up has made the fleet's tables: `Store::seed` ran first).
            toggles.log_changes_with(fleet::RECORD);
        }
        Rollout {
            toggles,
            history: Mutex::new(Histories::default()),
            guard_index: ArcSwap::default(),
            gauges: Mutex::default(),
            settings,
            fleet,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histories> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock, with every stage's guard counts drained into its figures: for reading them.
    fn settled(&self) -> std::sync::MutexGuard<'_, Histories> {
        let mut all = self.lock();
        for stage in all.values_mut().flat_map(|h| h.stages.iter_mut()) {
            if stage.figures.drain(&stage.cells) {
                stage.dirty = true;
            }
        }
        all
    }

    /// The toggle's current stage, opening a new one if its gates changed since; old stages
    /// beyond the limit are dropped (their figures stay in the fleet's table until retention).
    fn current<'a>(&self, history: &'a mut ToggleHistory, name: &str) -> &'a mut LocalStage {
        // The same snapshot as last time: the same stage, without comparing the gates again.
        let generation = self.toggles.generation();
        if history.checked == generation && generation != 0 && !history.stages.is_empty() {
            let Some(last) = history.stages.back_mut() else {
                unreachable!("not empty")
            };
            return last;
        }
        history.checked = generation;
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
                cells: Arc::default(),
                dirty: true,
                record: verdict::StageRecord::default(),
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

    /// Stages held in memory across toggles (for the retention test).
    pub fn stages_held(&self) -> usize {
        self.lock().values().map(|h| h.stages.len()).sum()
    }

    /// The fleet store, when the report is the fleet's.
    pub fn fleet(&self) -> Option<&fleet::Store> {
        self.fleet.as_ref()
    }
}

/// A stage's gate setting in words: "fully on (boolean), 1 named actor(s)".
pub fn describe(f: &Feature) -> String {
    describe_key(&gates_key(f))
}

/// The words for a stage from its stored gates (see [`gates_key`]).
pub fn describe_key(gates: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(gates).unwrap_or_default();
    let positive = |field: &str| {
        v[field]
            .as_str()
            .filter(|p| p.parse::<f64>().is_ok_and(|p| p > 0.0))
            .map(str::to_owned)
    };
    let mut parts = Vec::new();
    if v["boolean"].as_bool() == Some(true) {
        parts.push("fully on (boolean)".to_owned());
    }
    if let Some(actors) = v["actors"].as_u64().filter(|n| *n > 0) {
        parts.push(format!("{actors} named actor(s)"));
    }
    if let Some(p) = positive("percentageOfActors") {
        parts.push(format!("{p} % of actors"));
    }
    if let Some(p) = positive("percentageOfTime") {
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
