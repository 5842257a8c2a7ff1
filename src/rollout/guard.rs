//! The rollout guard at run time (`docs/spec/rollout-guard.md`): each toggle's current stage
//! judged (on every read, and at every flush), a hold recorded once across the fleet, the
//! gauges, the promotion guard's decision, sign-offs, forced and unguarded widenings, and the
//! automatic rollback.

use serde_json::json;

use super::fleet::{StoredFigures, StoredStage};
use super::verdict::{self, Judged, Outcome, Over, Position, SignOff, Stage, Verdict, judge};
use super::{Figures, KNOWN, LocalStage, Rollout, describe, describe_key, now_secs, rfc3339};
use crate::config::{StageGates, StagePlan};
use crate::toggles::{Change, Feature, Percentage};

/// Why a widening is refused: Flipper's error shape with this service's codes 100–102.
#[derive(Debug)]
pub struct Refusal {
    pub code: u16,
    pub message: String,
    pub verdict: Box<Verdict>,
}

/// Whether `after` opens the toggle to more callers than `before`.
pub fn widens(before: &Feature, after: &Feature) -> bool {
    let time = |f: &Feature| f.percentage_of_time.map_or(0.0, |p| p.as_f64());
    Judged::of(after).reach() > Judged::of(before).reach() || time(after) > time(before)
}

/// The promotion guard: a widening goes through only when the current stage passes (or the
/// toggle is off) and by no more than the next plan stage's setting.
pub fn promotion(before: &Feature, after: &Feature, v: &Verdict, plan: &StagePlan) -> Result<(), Refusal> {
    if !widens(before, after) {
        return Ok(());
    }
    let refuse = |code, message| {
        Err(Refusal {
            code,
            message,
            verdict: Box::new(v.clone()),
        })
    };
    let from = Judged::of(before);
    let position = Position::of(&from, plan);
    match v.verdict {
        _ if position == Position::Off => {}
        Outcome::Hold => {
            let failed: Vec<&str> = v.failed_guards().map(|g| g.name).collect();
            return refuse(
                100,
                format!(
                    "Rollout hold: {} failed in {}",
                    failed.join(", "),
                    v.stage.plan_stage
                ),
            );
        }
        Outcome::Inconclusive => {
            return refuse(
                101,
                format!(
                    "{} is not yet proven: {}",
                    v.stage.plan_stage,
                    v.reasons.join("; ")
                ),
            );
        }
        Outcome::Pass => {}
    }
    let next = position.next(&from, plan).map(|i| &plan.stages[i]);
    let target = Judged::of(after).reach();
    let within = match next.map(|s| &s.gates) {
        Some(StageGates::Percent(p)) => target <= *p,
        Some(StageGates::Actors) => target == 0.0,
        None => false,
    };
    if within {
        return Ok(());
    }
    let wanted = if Judged::of(after).fully_on {
        "100".to_owned()
    } else {
        target.to_string()
    };
    match next {
        Some(next) => refuse(
            102,
            format!("{} is the next stage of the plan, not {wanted}", next.setting()),
        ),
        None => refuse(102, format!("the plan has no stage after {}", v.stage.plan_stage)),
    }
}

/// The gates of the plan stage before `reach` (the automatic rollback's target).
fn stage_before(gates: &Judged, plan: &StagePlan) -> Change {
    let below = plan
        .stages
        .iter()
        .filter_map(|s| match s.gates {
            StageGates::Percent(p) if p < gates.reach() => Some(p),
            _ => None,
        })
        .fold(None, |top: Option<f64>, p| Some(top.map_or(p, |t| t.max(p))));
    let has_actors = plan.stages.iter().any(|s| s.gates == StageGates::Actors);
    match below {
        Some(p) => Change::NarrowTo(Percentage::parse(&p.to_string()).unwrap_or(Percentage::Integer(0))),
        None if has_actors && gates.reach() > 0.0 => Change::NarrowTo(Percentage::Integer(0)),
        None => Change::DisableBoolean,
    }
}

/// Every replica's figures for stage `seq`, merged.
pub(super) fn merged(rows: &[StoredFigures], seq: i64) -> Figures {
    let mut all = Figures::default();
    rows.iter()
        .filter(|r| r.seq == seq)
        .for_each(|r| all.merge(&r.figures));
    all
}

impl Rollout {
    /// The toggle's name as the report keys it, if it is one this service reports.
    fn known(&self, toggle: &str) -> Option<&'static str> {
        KNOWN
            .into_iter()
            .find(|k| *k == toggle)
            .or_else(|| self.lock().keys().copied().find(|k| *k == toggle))
    }

    /// A stage of the fleet's table judged over `figures` (every replica's, merged) as it
    /// stood at `until`, with `record`.
    pub(super) fn judge_stored(
        &self,
        name: &str,
        stage: &StoredStage,
        figures: &Figures,
        record: &verdict::StageRecord,
        until: u64,
    ) -> Verdict {
        let input = Stage {
            toggle: name,
            number: stage.seq as usize,
            gates: Judged::of_key(&stage.gates),
            setting: describe_key(&stage.gates),
            started: stage.started,
            until,
            figures,
            record,
        };
        judge(&input, self.plan_of(name), &self.settings.plan.source)
    }

    /// One of this instance's stages, number `number`, judged as it stood at `until`.
    pub(super) fn judge_local(&self, name: &str, number: usize, stage: &LocalStage, until: u64) -> Verdict {
        let input = Stage {
            toggle: name,
            number,
            gates: Judged::of(&stage.gates),
            setting: describe(&stage.gates),
            started: stage.started,
            until,
            figures: &stage.figures,
            record: &stage.record,
        };
        judge(&input, self.plan_of(name), &self.settings.plan.source)
    }

    /// The stages and guards `toggle` follows.
    pub fn plan_of(&self, toggle: &str) -> &StagePlan {
        self.settings.plan.for_toggle(toggle)
    }

    /// The verdict of `toggle`'s current stage (None: not a toggle this service reports).
    /// Records a hold the first time it holds (once across the fleet: a conditional write),
    /// and then, if asked, rolls the toggle back.
    pub async fn verdict(&self, toggle: &str) -> Result<Option<Verdict>, String> {
        let Some(name) = self.known(toggle) else {
            return Ok(None);
        };
        let now = now_secs();
        let (v, recorded) = match &self.fleet {
            Some(store) => {
                let (stages, rows) = store.history(name, 1).await?;
                let Some(stage) = stages.last() else {
                    return Ok(Some(self.local_verdict(name, now).0));
                };
                let merged = merged(&rows, stage.seq);
                let judged = |record| self.judge_stored(name, stage, &merged, record, now);
                let v = judged(&stage.record);
                match v.new_hold(now) {
                    Some(hold) => {
                        let value = serde_json::to_value(&hold).unwrap_or_default();
                        let mine = store.mark(name, stage.seq, verdict::HELD, &value, true).await?;
                        let mut record = stage.record.clone();
                        record.held = Some(hold);
                        (judged(&record), mine.then_some(stage.seq))
                    }
                    None => (v, None),
                }
            }
            None => self.local_verdict(name, now),
        };
        self.publish(&v);
        if let Some(seq) = recorded {
            self.after_hold(name, seq, &v).await;
        }
        Ok(Some(v))
    }

    /// This instance's verdict; records a new hold in its stage.
    fn local_verdict(&self, name: &'static str, now: u64) -> (Verdict, Option<i64>) {
        let mut all = self.settled();
        if !all.contains_key(name) && !self.toggles.snapshot().features.contains_key(name) {
            // Not in the store and never asked: off, judged without opening a stage for it.
            let off = Stage {
                toggle: name,
                number: 0,
                gates: Judged::default(),
                setting: describe(&Feature::default()),
                started: now,
                until: now,
                figures: &Figures::default(),
                record: &verdict::StageRecord::default(),
            };
            return (judge(&off, self.plan_of(name), &self.settings.plan.source), None);
        }
        let history = all.entry(name).or_default();
        let number = history.opened.max(1);
        let stage = self.current(history, name);
        let v = self.judge_local(name, number, stage, now);
        match v.new_hold(now) {
            Some(hold) => {
                stage.record.held = Some(hold);
                (self.judge_local(name, number, stage, now), Some(number as i64))
            }
            None => (v, None),
        }
    }

    /// Judges every toggle's current stage (each flush), so a hold is recorded, and the
    /// gauges kept, without anyone reading.
    pub async fn judge_all(&self) {
        let names: Vec<&'static str> = {
            let all = self.lock();
            KNOWN.into_iter().chain(all.keys().copied()).collect()
        };
        let mut seen = Vec::new();
        for name in names {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            if let Err(problem) = self.verdict(name).await {
                tracing::warn!(%problem, toggle = name, "rollout verdict not evaluated; retrying");
            }
        }
    }

    /// What this replica does once it has recorded a hold: say so, and roll back if asked.
    async fn after_hold(&self, name: &'static str, seq: i64, v: &Verdict) {
        let failed: Vec<&str> = v.failed_guards().map(|g| g.name).collect();
        tracing::warn!(toggle = name, guards = ?failed, "rollout hold recorded");
        if !self.settings.auto_rollback {
            return;
        }
        let gates = self
            .toggles
            .snapshot()
            .features
            .get(name)
            .cloned()
            .unwrap_or_default();
        let change = stage_before(&Judged::of(&gates), self.plan_of(name));
        if let Err(problem) = self
            .mark_stage(name, Some(seq), verdict::ROLLED_BACK, &json!("auto"))
            .await
        {
            tracing::warn!(%problem, toggle = name, "rollback not recorded");
        }
        match self.toggles.apply(name, change).await {
            Ok(()) => tracing::warn!(toggle = name, "rollout hold: toggle narrowed to the stage before"),
            Err(problem) => {
                tracing::error!(%problem, toggle = name, "rollout hold: automatic rollback failed")
            }
        }
    }

    /// Sets `key` of a stage's record: stage `seq`, or the current one (None).
    async fn mark_stage(
        &self,
        name: &'static str,
        seq: Option<i64>,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), String> {
        if let Some(store) = &self.fleet {
            let seq = match seq {
                Some(seq) => seq,
                None => match store.history(name, 1).await?.0.last() {
                    Some(stage) => stage.seq,
                    None => return Err("no stage recorded yet".to_owned()),
                },
            };
            store.mark(name, seq, key, value, false).await?;
            return Ok(());
        }
        let mut all = self.lock();
        let history = all.entry(name).or_default();
        let stage = self.current(history, name);
        let mut record = serde_json::to_value(&stage.record).unwrap_or_default();
        record[key] = value.clone();
        stage.record = serde_json::from_value(record).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// An engineer signs the current stage off (`reason`): its verdict passes unless it holds.
    pub async fn sign_off(
        &self,
        toggle: &str,
        reason: &str,
    ) -> Result<Option<Result<Verdict, Refusal>>, String> {
        let Some(v) = self.verdict(toggle).await? else {
            return Ok(None);
        };
        if v.verdict == Outcome::Hold {
            return Ok(Some(Err(Refusal {
                code: 100,
                message: format!("Rollout hold: {} cannot be signed off", v.stage.plan_stage),
                verdict: Box::new(v),
            })));
        }
        let Some(name) = self.known(toggle) else {
            return Ok(None);
        };
        let signed = SignOff {
            at: rfc3339(now_secs()),
            reason: reason.to_owned(),
        };
        let value = serde_json::to_value(&signed).map_err(|e| e.to_string())?;
        self.mark_stage(name, None, verdict::SIGNED_OFF, &value).await?;
        tracing::info!(toggle = name, "rollout stage signed off");
        Ok(self.verdict(toggle).await?.map(Ok))
    }

    /// Records, on the stage a forced write opened, what it went over.
    pub async fn forced(&self, toggle: &str, reason: &str, over: &Verdict) -> Result<(), String> {
        let Some(name) = self.known(toggle) else {
            return Ok(());
        };
        let value = serde_json::to_value(Over {
            at: rfc3339(now_secs()),
            over: over.verdict.as_str().to_owned(),
            reason: Some(reason.to_owned()),
        })
        .map_err(|e| e.to_string())?;
        tracing::warn!(
            toggle = name,
            over = over.verdict.as_str(),
            "rollout widening forced over the guard"
        );
        self.mark_stage(name, None, verdict::FORCED, &value).await
    }

    /// A stage the flush found (a change made outside this service, as VA.gov's Flipper UI
    /// does, which nothing here can refuse): when it widened, it is recorded unguarded with
    /// the verdict it widened over.
    pub(super) async fn check_unguarded(&self, name: &'static str) -> Result<(), String> {
        let Some(store) = &self.fleet else { return Ok(()) };
        let (stages, rows) = store.history(name, 2).await?;
        let [before, after] = stages.as_slice() else {
            return Ok(());
        };
        let (was, now) = (Judged::of_key(&before.gates), Judged::of_key(&after.gates));
        if now.reach() <= was.reach() {
            return Ok(());
        }
        let v = self.judge_stored(
            name,
            before,
            &merged(&rows, before.seq),
            &before.record,
            after.started,
        );
        let value = serde_json::to_value(Over {
            at: rfc3339(after.started),
            over: v.verdict.as_str().to_owned(),
            reason: None,
        })
        .map_err(|e| e.to_string())?;
        tracing::warn!(
            toggle = name,
            over = v.verdict.as_str(),
            "toggle widened outside the admin API"
        );
        store
            .mark(name, after.seq, verdict::UNGUARDED, &value, true)
            .await
            .map(drop)
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
