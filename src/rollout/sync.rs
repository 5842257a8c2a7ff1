//! Fleet sync: stages recorded from the toggle store and this replica's figures written to
//! the fleet's tables, on a timer; retention on the same timer, so reading the report only
//! reads.

use std::sync::Arc;

use super::{Figures, Rollout, gates_key};

/// A stage to write to the fleet's table, taken under the lock and written without it.
struct PendingStage {
    toggle: &'static str,
    /// Its index in this replica's history.
    index: usize,
    /// Its number in the fleet's table, once resolved.
    seq: Option<i64>,
    gates: String,
    /// Its figures, if counted since the last write.
    figures: Option<Figures>,
}

impl Rollout {
    /// Records each toggle's gates as they stand in the store as a stage (when they changed),
    /// then writes this replica's figures for the stages it counted. Does nothing with the file
    /// source.
    pub async fn flush(&self) -> Result<(), String> {
        let Some(store) = &self.fleet else { return Ok(()) };
        self.open_known();
        let names: Vec<&'static str> = self.lock().keys().copied().collect();
        for name in names {
            // A stage added here is a change made outside this service's admin API (its own
            // writes record theirs in the change's transaction).
            if store.record_stage(name).await? {
                self.check_unguarded(name).await?;
            }
        }
        // What to resolve and write, taken under the lock; the database is asked without it.
        let pending: Vec<PendingStage> = {
            let all = self.settled();
            all.iter()
                .flat_map(|(name, h)| {
                    h.stages
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.dirty || s.seq.is_none())
                        .map(|(index, s)| PendingStage {
                            toggle: name,
                            index,
                            seq: s.seq,
                            gates: gates_key(&s.gates),
                            figures: s.dirty.then(|| s.figures.clone()),
                        })
                })
                .collect()
        };
        for PendingStage {
            toggle: name,
            index,
            seq,
            gates,
            figures,
        } in pending
        {
            let (seq, started) = match seq {
                Some(seq) => (seq, None),
                // The stage recorded for the gates this replica counted under. None: a state
                // the store held too briefly to be recorded; its figures wait, unwritten.
                None => match store.stage_matching(name, &gates).await? {
                    Some(stage) => (stage.seq, Some(stage.started)),
                    None => continue,
                },
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
        Ok(())
    }

    /// Keeps each toggle's last `AVS_ROLLOUT_MAX_STAGES` stages, none older than the retention.
    pub async fn retain(&self) -> Result<u64, String> {
        let Some(store) = &self.fleet else { return Ok(0) };
        store
            .retain(
                self.settings.max_stages as i64,
                self.settings.retention_days as i64,
            )
            .await
    }

    /// Flushes, applies retention and judges every toggle's stage, at once and then every
    /// `AVS_ROLLOUT_FLUSH_SECS` until the last reference goes (with the file source, only
    /// the judging: a hold is recorded, and the gauges kept, whether or not anyone reads).
    pub fn keep_flushing(self: &Arc<Self>) {
        let rollout = Arc::downgrade(self);
        let period = self.settings.flush;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(rollout) = rollout.upgrade() else { return };
                if let Err(problem) = rollout.flush().await {
                    tracing::warn!(%problem, "rollout figures not written; retrying");
                }
                if let Err(problem) = rollout.retain().await {
                    tracing::warn!(%problem, "rollout retention not applied; retrying");
                }
                rollout.judge_all().await;
            }
        });
    }
}
