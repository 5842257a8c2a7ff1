//! A stage's verdict (`docs/spec/rollout-guard.md`): the plan's guards over the stage's
//! figures, as e-values, so it may be read at any moment; `pass`, `hold` (sticky: recorded
//! once with the stage) or `inconclusive` with what is missing. Pure: the figures, the stage's
//! record and the plan in, the verdict out.

use serde::Serialize;

use super::evidence::{clean_needed, e_fail, e_pass};
use super::figures::Figures;
pub use super::position::{Judged, Position};
use super::rfc3339;
pub use super::stage_record::*;
use crate::config::{StageGates, StagePlan};
use crate::toggles::LINKS_ENABLED;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Hold,
    Inconclusive,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Hold => "hold",
            Outcome::Inconclusive => "inconclusive",
        }
    }

    /// `avs_rollout_verdict`'s value.
    pub fn gauge(self) -> f64 {
        match self {
            Outcome::Pass => 0.0,
            Outcome::Inconclusive => 1.0,
            Outcome::Hold => 2.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardState {
    Passed,
    Failed,
    Open,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Needs {
    pub clean_requests: Option<u64>,
    /// At the stage's observed rate of the guard's trials; None before any.
    pub eta_secs: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardReport {
    pub name: &'static str,
    pub applies: bool,
    pub threshold_percent: Option<f64>,
    pub n: u64,
    pub failures: u64,
    pub e_fail: Option<f64>,
    pub e_pass: Option<f64>,
    pub state: GuardState,
    pub failed_at: Option<String>,
    pub needs: Option<Needs>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageInfo {
    pub number: usize,
    pub setting: String,
    /// The plan stage's name, `off plan` or `off`.
    pub plan_stage: String,
    pub started_at: String,
    pub min_duration_left_secs: u64,
    /// The share of actors its gates open (`avs_rollout_stage_percent`; actors alone: 0).
    pub percent: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Users {
    pub allowed: u64,
    pub min: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Next {
    /// The next plan stage's setting ("10 %"), if there is one.
    pub setting: Option<String>,
    /// Its percentage of actors (None: the actors stage, or no next stage).
    pub percent: Option<f64>,
    /// Whether a widening to it would go through now (without `force`).
    pub allowed: bool,
}

/// `GET /admin/rollout/{toggle}/verdict`'s body, and each stage's in the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub toggle: String,
    pub stage: StageInfo,
    pub verdict: Outcome,
    pub reasons: Vec<String>,
    pub users: Users,
    pub guards: Vec<GuardReport>,
    pub signed_off: bool,
    pub next: Next,
    pub record: StageRecord,
    /// The guards' plan: where it came from.
    pub plan: String,
}

/// One stage to judge.
pub struct Stage<'a> {
    pub toggle: &'a str,
    pub number: usize,
    pub gates: Judged,
    pub setting: String,
    /// Unix seconds.
    pub started: u64,
    /// Now, or the next stage's start for a stage that has ended.
    pub until: u64,
    pub figures: &'a Figures,
    pub record: &'a StageRecord,
}

/// Whether `toggle`'s routes have views (the links toggle has none).
pub fn has_views(toggle: &str) -> bool {
    toggle != LINKS_ENABLED
}

/// The proportion guards that apply to `toggle`: `m` in `E_fail ≥ m/α`.
fn proportion_guards(toggle: &str) -> u64 {
    if has_views(toggle) { 3 } else { 1 }
}

/// "3 days", "2 h", "40 s".
fn human(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3_600 => format!("{} h", s / 3_600),
        s if s >= 120 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Judges one stage against `plan` (the toggle's own, `source` its origin).
pub fn judge(stage: &Stage<'_>, plan: &StagePlan, source: &str) -> Verdict {
    let guards = &plan.guards;
    let position = Position::of(&stage.gates, plan);
    let f = stage.figures;
    let g = &f.guards;
    let elapsed = stage.until.saturating_sub(stage.started);
    let m = proportion_guards(stage.toggle);
    let views = has_views(stage.toggle);
    let held = stage.record.held.as_ref();
    let proportion = |name: &'static str, applies: bool, percent: f64, n: u64, x: u64| {
        let p0 = percent / 100.0;
        if !applies {
            return GuardReport {
                name,
                applies,
                threshold_percent: Some(percent),
                n,
                failures: x,
                e_fail: None,
                e_pass: None,
                state: GuardState::Open,
                failed_at: None,
                needs: None,
            };
        }
        let (ef, ep) = (e_fail(p0, n, x), e_pass(p0, n, x));
        let recorded = held.filter(|h| h.guards.iter().any(|fg| fg.name == name));
        let failed = recorded.is_some() || ef >= m as f64 / guards.alpha;
        let state = if failed {
            GuardState::Failed
        } else if ep >= 1.0 / guards.alpha {
            GuardState::Passed
        } else {
            GuardState::Open
        };
        let needs = (state == GuardState::Open).then(|| {
            let clean = clean_needed(p0, n, x, 1.0 / guards.alpha);
            let eta = clean
                .zip((n > 0 && elapsed > 0).then_some(n as f64 / elapsed as f64))
                .map(|(c, rate)| (c as f64 / rate).ceil() as u64);
            Needs {
                clean_requests: clean,
                eta_secs: eta,
            }
        });
        GuardReport {
            name,
            applies,
            threshold_percent: Some(percent),
            n,
            failures: x,
            e_fail: Some(ef),
            e_pass: Some(ep),
            state,
            failed_at: recorded.map(|h| h.at.clone()),
            needs,
        }
    };
    let mut reports = vec![
        proportion(
            "server_errors",
            true,
            guards.server_errors_percent,
            g.allowed,
            g.server_errors,
        ),
        proportion(
            "view_failures",
            views,
            guards.view_failures_percent,
            g.views,
            g.view_failures,
        ),
        proportion(
            "slow_views",
            views,
            guards.slow_views_percent,
            g.served_views,
            g.slow_views,
        ),
    ];
    let upstream_failed =
        g.breaker_open > 0 || held.is_some_and(|h| h.guards.iter().any(|fg| fg.name == "upstream"));
    reports.push(GuardReport {
        name: "upstream",
        applies: true,
        threshold_percent: None,
        n: g.allowed,
        failures: g.breaker_open,
        e_fail: None,
        e_pass: None,
        state: if upstream_failed {
            GuardState::Failed
        } else {
            GuardState::Passed
        },
        failed_at: held
            .filter(|h| h.guards.iter().any(|fg| fg.name == "upstream"))
            .map(|h| h.at.clone()),
        needs: None,
    });
    let applying: Vec<&GuardReport> = reports.iter().filter(|r| r.applies).collect();
    let failed: Vec<&str> = applying
        .iter()
        .filter(|r| r.state == GuardState::Failed)
        .map(|r| r.name)
        .collect();
    let open: Vec<&&GuardReport> = applying.iter().filter(|r| r.state == GuardState::Open).collect();
    let min_duration = match position {
        Position::At(i) => plan.stages[i].min_duration.as_secs(),
        Position::Off | Position::OffPlan => 0,
    };
    let min_left = min_duration.saturating_sub(elapsed);
    let users = f.allowed_actors.count();
    let plan_stage = match position {
        Position::At(i) => plan.stages[i].name.clone(),
        Position::OffPlan => "off plan".to_owned(),
        Position::Off => "off".to_owned(),
    };
    let signed_off = stage.record.signed_off.is_some();
    let mut reasons = Vec::new();
    let outcome = if !failed.is_empty() {
        for r in applying.iter().filter(|r| r.state == GuardState::Failed) {
            reasons.push(match r.e_fail {
                Some(e) => format!(
                    "{} failed: {} of {} above {} % (E_fail {e:.3} ≥ {})",
                    r.name,
                    r.failures,
                    r.n,
                    r.threshold_percent.unwrap_or_default(),
                    m as f64 / guards.alpha
                ),
                None => format!("{} failed: a breaker was open in the stage", r.name),
            });
        }
        Outcome::Hold
    } else if signed_off {
        reasons.push("signed off".to_owned());
        Outcome::Pass
    } else {
        match position {
            Position::Off => reasons.push("the toggle is off: no stage to judge".to_owned()),
            Position::OffPlan => reasons.push(format!(
                "{} is not a stage of the plan: it passes only by sign-off",
                stage.setting
            )),
            Position::At(i) if plan.stages[i].gates == StageGates::Actors => reasons.push(format!(
                "{} tests with named actors: it passes only by sign-off",
                plan.stages[i].name
            )),
            Position::At(_) => {
                for r in &open {
                    let needs = r.needs.as_ref();
                    let clean = needs.and_then(|n| n.clean_requests);
                    let eta = needs.and_then(|n| n.eta_secs);
                    reasons.push(match (clean, eta) {
                        (Some(c), Some(eta)) => {
                            format!("{} needs {c} more clean requests (about {})", r.name, human(eta))
                        }
                        (Some(c), None) => format!("{} needs {c} more clean requests", r.name),
                        (None, _) => format!("{} cannot pass at its failures so far", r.name),
                    });
                }
                if min_left > 0 {
                    reasons.push(format!("{} left of its minimum duration", human(min_left)));
                }
                if users < guards.min_users {
                    reasons.push(format!(
                        "{} more allowed users needed ({users} of {})",
                        guards.min_users - users,
                        guards.min_users
                    ));
                }
            }
        }
        if reasons.is_empty() {
            reasons.push("every guard passed, over its minimum duration and users".to_owned());
            Outcome::Pass
        } else {
            Outcome::Inconclusive
        }
    };
    let next = position.next(&stage.gates, plan);
    Verdict {
        toggle: stage.toggle.to_owned(),
        stage: StageInfo {
            number: stage.number,
            setting: stage.setting.clone(),
            plan_stage,
            started_at: rfc3339(stage.started),
            min_duration_left_secs: min_left,
            percent: stage.gates.reach(),
        },
        verdict: outcome,
        reasons,
        users: Users {
            allowed: users,
            min: guards.min_users,
        },
        guards: reports,
        signed_off,
        next: Next {
            setting: next.map(|i| plan.stages[i].setting()),
            percent: next.and_then(|i| match plan.stages[i].gates {
                StageGates::Percent(p) => Some(p),
                StageGates::Actors => None,
            }),
            allowed: next.is_some() && (outcome == Outcome::Pass || position == Position::Off),
        },
        record: stage.record.clone(),
        plan: source.to_owned(),
    }
}

impl GuardReport {
    pub fn state_text(&self) -> &'static str {
        match self.state {
            GuardState::Passed => "passed",
            GuardState::Failed => "failed",
            GuardState::Open => "open",
        }
    }
}

impl Verdict {
    /// The guards that apply and failed.
    pub fn failed_guards(&self) -> impl Iterator<Item = &GuardReport> {
        self.guards
            .iter()
            .filter(|g| g.applies && g.state == GuardState::Failed)
    }

    /// The hold to record, when this verdict holds and none is recorded yet.
    pub fn new_hold(&self, now: u64) -> Option<Hold> {
        if self.verdict != Outcome::Hold || self.record.held.is_some() {
            return None;
        }
        Some(Hold {
            at: rfc3339(now),
            guards: self
                .failed_guards()
                .map(|g| FailedGuard {
                    name: g.name.to_owned(),
                    n: g.n,
                    failures: g.failures,
                    e_fail: g.e_fail,
                })
                .collect(),
        })
    }

    /// One plain sentence for the release plan's Results: met, not met (which), or not yet.
    pub fn sentence(&self) -> String {
        match self.verdict {
            Outcome::Pass if self.signed_off => "Met: signed off by the rollout engineer.".to_owned(),
            Outcome::Pass => {
                "Met: every guard passed, over the stage's minimum duration and users.".to_owned()
            }
            Outcome::Hold => format!("Not met: {}.", self.reasons.join("; ")),
            Outcome::Inconclusive => format!("Not yet: {}.", self.reasons.join("; ")),
        }
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
