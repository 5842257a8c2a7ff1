//! The rollout report: this replica's name, how often it writes its figures, what is kept, and
//! when a toggle is judged ready to remove.

use std::time::Duration;

use super::parser::Parser;
use super::plan::RolloutPlan;

/// How the report is kept and judged.
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
    /// The stages and guards each toggle follows (`AVS_ROLLOUT_PLAN`).
    pub plan: RolloutPlan,
    /// A hold narrows its toggle to the stage before (`AVS_ROLLOUT_AUTO_ROLLBACK`).
    pub auto_rollback: bool,
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
            plan: RolloutPlan::built_in(),
            auto_rollback: false,
        }
    }
}

impl RolloutSettings {
    pub(super) fn parse(p: &mut Parser<'_>) -> RolloutSettings {
        RolloutSettings {
            instance: p
                .raw("AVS_INSTANCE")
                .map_or_else(|| format!("avs-{:08x}", fastrand::u32(..)), str::to_owned),
            flush: p.secs("AVS_ROLLOUT_FLUSH_SECS").max(Duration::from_secs(1)),
            max_stages: p.count("AVS_ROLLOUT_MAX_STAGES"),
            retention_days: p
                .parsed("AVS_ROLLOUT_RETENTION_DAYS", "a whole number of days")
                .unwrap_or(90),
            cleanup_days: p
                .parsed("AVS_CLEANUP_DAYS", "a whole number of days")
                .unwrap_or(14),
            cleanup_max_error_percent: p
                .parsed("AVS_CLEANUP_MAX_ERROR_PERCENT", "a number of percent")
                .unwrap_or(1.0),
            plan: plan(p),
            auto_rollback: p.flag("AVS_ROLLOUT_AUTO_ROLLBACK"),
        }
    }
}

/// `file:<path>` read now, or the release plan built in.
fn plan(p: &mut Parser<'_>) -> RolloutPlan {
    const NAME: &str = "AVS_ROLLOUT_PLAN";
    let Some(raw) = p.raw(NAME) else {
        return RolloutPlan::built_in();
    };
    let Some(path) = raw.strip_prefix("file:") else {
        p.problem(NAME, "is `file:<path>` of a TOML plan");
        return RolloutPlan::built_in();
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            p.problem(NAME, format!("{path}: {e}"));
            return RolloutPlan::built_in();
        }
    };
    match RolloutPlan::parse(&text, raw) {
        Ok(plan) => plan,
        Err(problems) => {
            for problem in problems {
                p.problem(NAME, problem);
            }
            RolloutPlan::built_in()
        }
    }
}
