//! The rollout's gauges for `/metrics`: `avs_rollout_verdict{toggle}` (0 pass, 1 inconclusive,
//! 2 hold) and `avs_rollout_stage_percent{toggle}`, set at each verdict, absent when the toggle
//! is off (`rollout-guard.md`), so `AvsRolloutHold` stops paging once a rollback turns it off.
//! Kept here rather than in the `metrics` registry, which cannot remove a series once set.

use super::Rollout;
use super::verdict::Verdict;

impl Rollout {
    /// Keeps the toggle's gauges: its verdict and stage percent while it is on, none once off.
    pub(super) fn publish(&self, v: &Verdict) {
        let mut gauges = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        if v.stage.plan_stage == "off" {
            gauges.remove(&v.toggle);
        } else {
            gauges.insert(v.toggle.clone(), [v.verdict.gauge(), v.stage.percent]);
        }
    }

    /// The gauges in Prometheus' text format, to follow the registry's in `/metrics`.
    pub fn gauges_text(&self) -> String {
        let gauges = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::new();
        if gauges.is_empty() {
            return text;
        }
        for (metric, help, i) in [
            (
                "avs_rollout_verdict",
                "The current stage's verdict by toggle: 0 pass, 1 inconclusive, 2 hold; absent when off",
                0,
            ),
            (
                "avs_rollout_stage_percent",
                "The share of actors the current stage's gates open, by toggle; absent when off",
                1,
            ),
        ] {
            text.push_str(&format!("# HELP {metric} {help}\n# TYPE {metric} gauge\n"));
            for (toggle, g) in gauges.iter() {
                // A toggle's name is the operators' (the plan's), escaped as the format asks.
                let label = toggle
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                text.push_str(&format!("{metric}{{toggle=\"{label}\"}} {}\n", g[i]));
            }
        }
        text
    }
}
