//! The release plan as configuration (`docs/spec/rollout-guard.md`): `AVS_ROLLOUT_PLAN` =
//! `file:<path>` (TOML) or unset, the release plan itself built in, with VA's own thresholds
//! as the guards' defaults. Read once at start; every problem is named (exit 2).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// What a stage must show, from VA's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Guards {
    /// vets-api's SLO: under 0.25 % of requests answered ≥ 500.
    pub server_errors_percent: f64,
    /// The AVS key result: 99 % success viewing a summary.
    pub view_failures_percent: f64,
    /// p95 under...
    pub slow_views_percent: f64,
    /// ...vets-api's latency SLO.
    pub slow_view_ms: u64,
    /// The evidence needed: an e-value of 1/alpha.
    pub alpha: f64,
    /// Distinct allowed users before a stage can pass.
    pub min_users: u64,
}

impl Default for Guards {
    fn default() -> Guards {
        Guards {
            server_errors_percent: 0.25,
            view_failures_percent: 1.0,
            slow_views_percent: 5.0,
            slow_view_ms: 750,
            alpha: 0.05,
            min_users: 30,
        }
    }
}

/// What a plan stage opens.
#[derive(Clone, Debug, PartialEq)]
pub enum StageGates {
    /// The moderated test: actors only.
    Actors,
    /// A percentage of actors (100: everyone).
    Percent(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlanStage {
    pub name: String,
    pub gates: StageGates,
    pub min_duration: Duration,
}

impl PlanStage {
    /// "10 %", "actors".
    pub fn setting(&self) -> String {
        match self.gates {
            StageGates::Actors => "actors".to_owned(),
            StageGates::Percent(p) => format!("{p} %"),
        }
    }
}

/// The guards and stages one toggle follows.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePlan {
    pub guards: Guards,
    pub stages: Vec<PlanStage>,
}

impl StagePlan {
    /// One line: the stages, then the guards (`check-config`, the rollout page).
    pub fn describe(&self) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| format!("{} {} for {}s", s.name, s.setting(), s.min_duration.as_secs()))
            .collect();
        let g = &self.guards;
        format!(
            "{}; guards: server errors ≤ {} %, view failures ≤ {} %, views over {} ms ≤ {} %, alpha {}, at least {} users",
            stages.join(", "),
            g.server_errors_percent,
            g.view_failures_percent,
            g.slow_view_ms,
            g.slow_views_percent,
            g.alpha,
            g.min_users
        )
    }
}

/// The plan: its source, the stages every toggle follows, and any toggle's own.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutPlan {
    pub source: String,
    pub default: StagePlan,
    pub toggles: BTreeMap<String, StagePlan>,
}

/// The release plan itself (`docs/release-plan.md`): Phase I for a day, then 10, 50, 100 %.
const BUILT_IN: &str = r#"
[[stage]]
name = "Phase I"
actors = true
min_duration = "1d"
[[stage]]
name = "Stage A"
percent = 10
min_duration = "14d"
[[stage]]
name = "Stage B"
percent = 50
min_duration = "14d"
[[stage]]
name = "Stage E"
percent = 100
min_duration = "14d"
"#;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGuards {
    server_errors_percent: Option<f64>,
    view_failures_percent: Option<f64>,
    slow_views_percent: Option<f64>,
    slow_view_ms: Option<u64>,
    alpha: Option<f64>,
    min_users: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: String,
    #[serde(default)]
    actors: bool,
    percent: Option<f64>,
    min_duration: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    #[serde(default)]
    guards: Option<RawGuards>,
    #[serde(default)]
    stage: Vec<RawStage>,
    #[serde(default)]
    toggle: BTreeMap<String, RawPlan>,
}

impl RolloutPlan {
    pub fn built_in() -> RolloutPlan {
        match RolloutPlan::parse(BUILT_IN, "the release plan, built in") {
            Ok(plan) => plan,
            Err(problems) => unreachable!("the built-in plan is valid: {problems:?}"),
        }
    }

    /// The plan from TOML; every problem found, each a sentence.
    pub fn parse(text: &str, source: &str) -> Result<RolloutPlan, Vec<String>> {
        let raw: RawPlan = toml::from_str(text).map_err(|e| vec![format!("not a plan: {}", e.message())])?;
        let mut problems = Vec::new();
        let default = stage_plan(&raw, None, "", &mut problems);
        let toggles = raw
            .toggle
            .iter()
            .map(|(name, own)| {
                let base = &default.guards;
                (
                    name.clone(),
                    stage_plan(own, Some(base), &format!("toggle.{name}: "), &mut problems),
                )
            })
            .collect();
        match problems.is_empty() {
            true => Ok(RolloutPlan {
                source: source.to_owned(),
                default,
                toggles,
            }),
            false => Err(problems),
        }
    }

    /// The stages and guards `toggle` follows.
    pub fn for_toggle(&self, toggle: &str) -> &StagePlan {
        self.toggles.get(toggle).unwrap_or(&self.default)
    }
}

/// "30s", "14d": an integer and one unit.
fn duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let unit = raw.chars().last()?;
    let n: u64 = raw[..raw.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

fn stage_plan(raw: &RawPlan, base: Option<&Guards>, at: &str, problems: &mut Vec<String>) -> StagePlan {
    let base = base.cloned().unwrap_or_default();
    let g = raw.guards.as_ref();
    let pick = |f: fn(&RawGuards) -> Option<f64>, d: f64| g.and_then(f).unwrap_or(d);
    let guards = Guards {
        server_errors_percent: pick(|g| g.server_errors_percent, base.server_errors_percent),
        view_failures_percent: pick(|g| g.view_failures_percent, base.view_failures_percent),
        slow_views_percent: pick(|g| g.slow_views_percent, base.slow_views_percent),
        slow_view_ms: g.and_then(|g| g.slow_view_ms).unwrap_or(base.slow_view_ms),
        alpha: pick(|g| g.alpha, base.alpha),
        min_users: g.and_then(|g| g.min_users).unwrap_or(base.min_users),
    };
    for (name, v) in [
        ("server_errors_percent", guards.server_errors_percent),
        ("view_failures_percent", guards.view_failures_percent),
        ("slow_views_percent", guards.slow_views_percent),
    ] {
        if !(v > 0.0 && v <= 10.0) {
            problems.push(format!("{at}guards.{name} = {v}: a percent in (0, 10]"));
        }
    }
    if !(guards.alpha > 0.0 && guards.alpha < 0.5) {
        problems.push(format!("{at}guards.alpha = {}: in (0, 0.5)", guards.alpha));
    }
    if guards.slow_view_ms == 0 {
        problems.push(format!("{at}guards.slow_view_ms: more than 0"));
    }
    let mut stages = Vec::new();
    for (i, s) in raw.stage.iter().enumerate() {
        let gates = match (s.actors, s.percent) {
            (true, None) => StageGates::Actors,
            (false, Some(p)) => StageGates::Percent(p),
            _ => {
                problems.push(format!(
                    "{at}stage {} ({}): either `actors = true` or a `percent`",
                    i + 1,
                    s.name
                ));
                continue;
            }
        };
        let Some(min_duration) = duration(&s.min_duration) else {
            problems.push(format!(
                "{at}stage {} ({}): min_duration {:?} is not an integer and one of s, m, h, d",
                i + 1,
                s.name,
                s.min_duration
            ));
            continue;
        };
        stages.push(PlanStage {
            name: s.name.clone(),
            gates,
            min_duration,
        });
    }
    if raw.stage.is_empty() {
        problems.push(format!(
            "{at}no stage: a plan has at least one, the last at 100 percent"
        ));
    }
    let percents: Vec<f64> = stages
        .iter()
        .filter_map(|s| match s.gates {
            StageGates::Percent(p) => Some(p),
            StageGates::Actors => None,
        })
        .collect();
    if percents.iter().any(|p| !(*p > 0.0 && *p <= 100.0)) {
        problems.push(format!("{at}each stage's percent is in (0, 100]"));
    }
    if percents.windows(2).any(|w| w[1] <= w[0]) {
        problems.push(format!("{at}stage percentages must strictly increase"));
    }
    let actors: Vec<usize> = stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.gates == StageGates::Actors)
        .map(|(i, _)| i)
        .collect();
    if actors.len() > 1 || actors.first().is_some_and(|i| *i != 0) {
        problems.push(format!("{at}at most one `actors` stage, and first"));
    }
    if !stages.is_empty() && stages.last().map(|s| &s.gates) != Some(&StageGates::Percent(100.0)) {
        problems.push(format!("{at}the last stage is 100 percent"));
    }
    StagePlan { guards, stages }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_plan_is_the_release_plan() {
        let plan = RolloutPlan::built_in();
        let names: Vec<(&str, String)> = plan
            .default
            .stages
            .iter()
            .map(|s| (s.name.as_str(), s.setting()))
            .collect();
        assert_eq!(
            names,
            [
                ("Phase I", "actors".into()),
                ("Stage A", "10 %".into()),
                ("Stage B", "50 %".into()),
                ("Stage E", "100 %".into())
            ]
        );
        assert_eq!(plan.default.guards, Guards::default());
        assert_eq!(plan.default.stages[0].min_duration, Duration::from_secs(86_400));
    }

    #[test]
    fn every_problem_is_named() {
        let bad = r#"
            [guards]
            server_errors_percent = 20
            alpha = 0.7
            [[stage]]
            name = "A"
            percent = 50
            min_duration = "1d"
            [[stage]]
            name = "B"
            percent = 40
            min_duration = "2w"
            [[stage]]
            name = "C"
            percent = 30
            min_duration = "1d"
            [[stage]]
            name = "T"
            actors = true
            min_duration = "1d"
        "#;
        let problems = RolloutPlan::parse(bad, "test").unwrap_err();
        let all = problems.join("\n");
        for needle in [
            "server_errors_percent",
            "alpha",
            "min_duration \"2w\"",
            "strictly increase",
            "actors",
            "last stage is 100",
        ] {
            assert!(all.contains(needle), "{needle}: {all}");
        }
    }

    #[test]
    fn a_toggle_may_have_its_own_stages_and_guards() {
        let text = r#"
            [[stage]]
            name = "All"
            percent = 100
            min_duration = "30s"
            [toggle.avs_pdf_enabled.guards]
            slow_view_ms = 2000
            [[toggle.avs_pdf_enabled.stage]]
            name = "Half"
            percent = 50
            min_duration = "5s"
            [[toggle.avs_pdf_enabled.stage]]
            name = "All"
            percent = 100
            min_duration = "5s"
        "#;
        let plan = RolloutPlan::parse(text, "test").unwrap();
        assert_eq!(plan.for_toggle("avs_enabled").stages.len(), 1);
        let pdf = plan.for_toggle("avs_pdf_enabled");
        assert_eq!(pdf.stages.len(), 2);
        assert_eq!(pdf.guards.slow_view_ms, 2000);
        assert_eq!(pdf.guards.server_errors_percent, 0.25);
    }
}
