//! Fleet sync: this replica's figures written to the fleet's tables, stage boundaries resolved
//! there once, on a timer.

use std::sync::Arc;

use super::{Figures, Rollout, describe, gates_key};

/// A stage to write to the fleet's table, taken under the lock and written without it.
struct PendingStage {
    toggle: &'static str,
    /// Its index in this replica's history.
    index: usize,
    /// Its number in the fleet's table, once resolved.
    seq: Option<i64>,
    gates: String,
    setting: String,
    /// Its figures, if counted since the last write.
    figures: Option<Figures>,
}

impl Rollout {
    /// Writes this replica's figures to the fleet's table, recording new stage boundaries
    /// first and applying retention. Does nothing with the file source.
    pub async fn flush(&self) -> Result<(), String> {
        let Some(store) = &self.fleet else { return Ok(()) };
        self.open_known();
        // What to resolve and write, taken under the lock; the database is asked without it.
        let pending: Vec<PendingStage> = {
            let all = self.lock();
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
                            setting: describe(&s.gates),
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
            setting,
            figures,
        } in pending
        {
            let (seq, started) = match seq {
                Some(seq) => (seq, None),
                None => {
                    let stage = store.stage_for(name, &gates, &setting).await?;
                    (stage.seq, Some(stage.started))
                }
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
        store
            .retain(
                self.settings.max_stages as i64,
                self.settings.retention_days as i64,
            )
            .await?;
        Ok(())
    }

    /// Flushes every `AVS_ROLLOUT_FLUSH_SECS` until the last reference goes (fleet mode only).
    pub fn keep_flushing(self: &Arc<Self>) {
        if self.fleet.is_none() {
            return;
        }
        let rollout = Arc::downgrade(self);
        let period = self.settings.flush;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(rollout) = rollout.upgrade() else { return };
                if let Err(problem) = rollout.flush().await {
                    tracing::warn!(%problem, "rollout figures not written; retrying");
                }
            }
        });
    }
}
