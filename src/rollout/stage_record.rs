//! What the rollout guard records with a stage beside its figures: a hold (sticky), a sign-off,
//! a forced or unguarded widening, an automatic rollback. Stored as one JSON object per stage
//! (the fleet's `avs_rollout_stages.record`), each key written at most once.

use serde::{Deserialize, Serialize};

/// A guard that failed, as recorded at the moment it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedGuard {
    pub name: String,
    pub n: u64,
    pub failures: u64,
    pub e_fail: Option<f64>,
}

/// A hold: when, and the guards that failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub at: String,
    pub guards: Vec<FailedGuard>,
}

/// A write that went through over the verdict (`force`, or from outside the admin API).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Over {
    pub at: String,
    /// The verdict it went over (`hold`, `inconclusive`, or `pass` for a skipped stage).
    pub over: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An engineer's sign-off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignOff {
    pub at: String,
    pub reason: String,
}

/// What is recorded with a stage, beside its figures: each at most once.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StageRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Hold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_off: Option<SignOff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced: Option<Over>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unguarded: Option<Over>,
    /// "auto": the service narrowed the toggle when this stage held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

/// The fields of [`StageRecord`], as stored (one key each in the stage row's `record`).
pub const HELD: &str = "held";
pub const SIGNED_OFF: &str = "signedOff";
pub const FORCED: &str = "forced";
pub const UNGUARDED: &str = "unguarded";
pub const ROLLED_BACK: &str = "rolledBack";
