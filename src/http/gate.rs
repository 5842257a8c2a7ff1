//! The request gate, next to the handlers that call it: a toggle decision for the caller's
//! actor, noted for the request line, metrics and the rollout report.

use super::error::ApiError;
use crate::app::AppState;
use crate::identity::Caller;
use crate::telemetry;

impl AppState {
    /// Whether `feature` is on for the caller.
    pub fn gate(&self, feature: &'static str, caller: &Caller) -> bool {
        let span = tracing::info_span!("gate", toggle = feature, result = tracing::field::Empty);
        let _entered = span.enter();
        let open = self.toggles.is_enabled(feature, Some(&caller.actor));
        span.record("result", open);
        self.gate_metrics.with(
            (feature, open),
            |(feature, open)| {
                let result = if open { "on" } else { "off" };
                metrics::counter!("avs_gate_decisions_total", "toggle" => feature, "result" => result)
            },
            |decisions| decisions.increment(1),
        );
        telemetry::note(|n| n.gates.push((feature, open)));
        open
    }

    /// The gate of a view (`rollout-guard.md`): `require`, and the request counts for the
    /// toggle's view guards from here on, whatever it is answered.
    pub fn require_view(&self, feature: &'static str, caller: &Caller) -> Result<(), ApiError> {
        self.require(feature, caller)?;
        telemetry::note(|n| n.view_of = Some(feature));
        Ok(())
    }

    /// The gate: a feature off for the caller looks exactly like an unknown route.
    pub fn require(&self, feature: &'static str, caller: &Caller) -> Result<(), ApiError> {
        if self.gate(feature, caller) {
            Ok(())
        } else {
            Err(ApiError::NoRoute)
        }
    }
}
