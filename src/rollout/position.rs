//! Where a toggle's gates stand in its plan (`rollout-guard.md`: "a toggle's current plan
//! stage"), and which plan stage comes next.

use crate::config::{StageGates, StagePlan};
use crate::toggles::Feature;

/// What the plan needs to know of a stage's gates.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Judged {
    pub fully_on: bool,
    pub percentage_of_actors: Option<f64>,
    pub actors: u64,
}

impl Judged {
    pub fn of(f: &Feature) -> Judged {
        Judged {
            fully_on: f.boolean || f.percentage_of_actors.is_some_and(|p| p.at_least_100()),
            percentage_of_actors: f.percentage_of_actors.map(|p| p.as_f64()).filter(|p| *p > 0.0),
            actors: f.actors.len() as u64,
        }
    }

    /// From the stored gates (`super::gates_key`).
    pub fn of_key(key: &str) -> Judged {
        let v: serde_json::Value = serde_json::from_str(key).unwrap_or_default();
        let pct = v["percentageOfActors"]
            .as_str()
            .and_then(|p| p.parse::<f64>().ok());
        Judged {
            fully_on: v["boolean"].as_bool().unwrap_or(false) || pct.is_some_and(|p| p >= 100.0),
            percentage_of_actors: pct.filter(|p| *p > 0.0),
            actors: v["actors"].as_u64().unwrap_or(0),
        }
    }

    /// The share of actors these gates open, for comparing two settings (actors alone: 0).
    pub fn reach(&self) -> f64 {
        if self.fully_on {
            100.0
        } else {
            self.percentage_of_actors.unwrap_or(0.0)
        }
    }
}

/// Where a toggle's gates stand in its plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Position {
    /// No gate open: nothing to judge.
    Off,
    /// A percentage the plan has no stage for.
    OffPlan,
    /// The plan's stage at this index.
    At(usize),
}

impl Position {
    /// `boolean` on or ≥ 100 → the 100 stage; a percentage → the stage with it; actors alone →
    /// the actors stage. A percentage of time is not a plan setting and is not judged.
    pub fn of(gates: &Judged, plan: &StagePlan) -> Position {
        let at = |wanted: StageGates| {
            plan.stages
                .iter()
                .position(|s| s.gates == wanted)
                .map_or(Position::OffPlan, Position::At)
        };
        if gates.fully_on {
            at(StageGates::Percent(100.0))
        } else if let Some(p) = gates.percentage_of_actors {
            at(StageGates::Percent(p))
        } else if gates.actors > 0 {
            at(StageGates::Actors)
        } else {
            Position::Off
        }
    }

    /// The plan stage after this position: the first for `Off`, the first wider one off plan.
    pub fn next(self, gates: &Judged, plan: &StagePlan) -> Option<usize> {
        match self {
            Position::Off => (!plan.stages.is_empty()).then_some(0),
            Position::At(i) => (i + 1 < plan.stages.len()).then_some(i + 1),
            Position::OffPlan => plan.stages.iter().position(|s| match s.gates {
                StageGates::Percent(p) => p > gates.reach(),
                StageGates::Actors => false,
            }),
        }
    }
}
