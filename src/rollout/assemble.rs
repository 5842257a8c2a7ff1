//! Report assembly: this replica's stages, or the fleet's merged from PostgreSQL, judged for
//! the plan's questions (links share, clean-up) and shaped as the typed report.

use super::report::{self, Cleanup, InstanceRow, Point, Report, StageFigures, StageReport, ToggleReport};
use super::verdict::Judged;
use super::{Rollout, describe, describe_key, fleet, now_secs, rfc3339};

/// A stage's report with what it is judged on: its gates and when it began (Unix seconds).
struct JudgedStage {
    report: StageReport,
    judged: Judged,
    started: u64,
}

impl Rollout {
    /// The report: the fleet's through PostgreSQL, else this instance's.
    pub async fn report(&self) -> Report {
        if self.fleet.is_some() {
            match self.fleet_report().await {
                Ok(report) => return report,
                Err(problem) => tracing::warn!(%problem, "fleet report unavailable; showing this instance"),
            }
        }
        self.local_report()
    }

    /// The report in Markdown, following the release plan's Results bullets.
    pub async fn markdown(&self) -> String {
        self.report().await.markdown()
    }

    fn timeline(&self, name: &str) -> Vec<Point> {
        self.lock().get(name).map_or_else(Vec::new, |h| {
            h.timeline
                .iter()
                .map(|(minute, (requests, errors))| Point {
                    minute: minute * 60,
                    requests: *requests,
                    errors: *errors,
                })
                .collect()
        })
    }

    fn local_report(&self) -> Report {
        self.open_known();
        let all = self.settled();
        let mut names: Vec<&&str> = all.keys().collect();
        names.sort();
        let toggles = names
            .into_iter()
            .map(|name| {
                let h = &all[*name];
                let first = h.opened + 1 - h.stages.len();
                let now = now_secs();
                let stages: Vec<JudgedStage> = h
                    .stages
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let judged = Judged::of(&s.gates);
                        let until = h.stages.get(i + 1).map_or(now, |next| next.started);
                        let verdict = self.judge_local(name, first + i, s, until);
                        let figures = || {
                            StageFigures::from_figures(
                                &s.figures,
                                report::expected_links(judged.percentage_of_actors),
                            )
                        };
                        let report = StageReport {
                            stage: first + i,
                            setting: describe(&s.gates),
                            started_at: rfc3339(s.started),
                            figures: figures(),
                            instances: vec![InstanceRow {
                                instance: self.settings.instance.clone(),
                                live: true,
                                last_report: rfc3339(now_secs()),
                                figures: figures(),
                            }],
                            verdict,
                        };
                        JudgedStage {
                            report,
                            judged,
                            started: s.started,
                        }
                    })
                    .collect();
                self.toggle_report(name, stages, Vec::new())
            })
            .collect::<Vec<_>>();
        drop(all);
        let toggles = toggles
            .into_iter()
            .map(|mut t| {
                t.timeline = self.timeline(&t.toggle);
                t
            })
            .collect();
        Report {
            generated_at: rfc3339(now_secs()),
            scope: "this instance",
            toggles,
        }
    }

    async fn fleet_report(&self) -> Result<Report, String> {
        let Some(store) = &self.fleet else {
            return Err("no fleet store".to_owned());
        };
        // A read only: every replica (this one too) writes its figures every flush period.
        let live_within = self.settings.flush.as_secs().max(1) * 3;
        let mut toggles = Vec::new();
        for name in store.toggles().await? {
            let (stages, rows) = store.history(&name, self.settings.max_stages as i64).await?;
            let now = now_secs();
            let stages = stages
                .iter()
                .enumerate()
                .map(|(i, stage)| {
                    let judged = Judged::of_key(&stage.gates);
                    let expected = report::expected_links(judged.percentage_of_actors);
                    let mine: Vec<&fleet::StoredFigures> =
                        rows.iter().filter(|r| r.seq == stage.seq).collect();
                    let merged = super::guard::merged(&rows, stage.seq);
                    let until = stages.get(i + 1).map_or(now, |next| next.started);
                    let verdict = self.judge_stored(&name, stage, &merged, &stage.record, until);
                    let report = StageReport {
                        stage: stage.seq as usize,
                        setting: describe_key(&stage.gates),
                        started_at: rfc3339(stage.started),
                        figures: StageFigures::from_figures(&merged, expected),
                        instances: mine
                            .iter()
                            .map(|r| InstanceRow {
                                instance: r.instance.clone(),
                                live: r.age_secs <= live_within,
                                last_report: rfc3339(now_secs().saturating_sub(r.age_secs)),
                                figures: StageFigures::from_figures(&r.figures, expected),
                            })
                            .collect(),
                        verdict,
                    };
                    JudgedStage {
                        report,
                        judged,
                        started: stage.started,
                    }
                })
                .collect();
            let timeline = self.timeline(&name);
            toggles.push(self.toggle_report(&name, stages, timeline));
        }
        Ok(Report {
            generated_at: rfc3339(now_secs()),
            scope: "fleet",
            toggles,
        })
    }

    fn toggle_report(&self, name: &str, stages: Vec<JudgedStage>, timeline: Vec<Point>) -> ToggleReport {
        let cleanup = self.cleanup(name, stages.last());
        ToggleReport {
            toggle: name.to_owned(),
            stages: stages.into_iter().map(|s| s.report).collect(),
            timeline,
            cleanup,
        }
    }

    /// The plan's question 5: fully on for everyone for `cleanup_days`, no rollback since (a
    /// rollback would have started a later stage), error rate under the threshold.
    fn cleanup(&self, name: &str, current: Option<&JudgedStage>) -> Cleanup {
        let gate_points = report::GATE_POINTS
            .iter()
            .find(|(toggle, _)| *toggle == name)
            .map_or_else(Vec::new, |(_, points)| points.to_vec());
        let Some(JudgedStage {
            report: stage,
            judged,
            started,
        }) = current
        else {
            return Cleanup {
                ready: false,
                verdict: "no stage yet".to_owned(),
                fully_on_since: None,
                gate_points,
            };
        };
        if !judged.fully_on {
            return Cleanup {
                ready: false,
                verdict: "not fully on for everyone".to_owned(),
                fully_on_since: None,
                gate_points,
            };
        }
        let days_on = now_secs().saturating_sub(*started) / 86_400;
        let f = &stage.figures;
        let error_percent = if f.requests == 0 {
            0.0
        } else {
            f.errors_total() as f64 * 100.0 / f.requests as f64
        };
        let (ready, verdict) = if days_on < self.settings.cleanup_days {
            (
                false,
                format!(
                    "fully on for {days_on} of the {} days asked, with no rollback since",
                    self.settings.cleanup_days
                ),
            )
        } else if error_percent >= self.settings.cleanup_max_error_percent {
            (
                false,
                format!(
                    "fully on for {days_on} days, but its error rate is {error_percent:.2} % (at most {} % asked)",
                    self.settings.cleanup_max_error_percent
                ),
            )
        } else {
            (
                true,
                format!(
                    "fully on for {days_on} days with no rollback since, error rate {error_percent:.2} %"
                ),
            )
        };
        Cleanup {
            ready,
            verdict: removal_step(name, ready, verdict),
            fully_on_since: Some(stage.started_at.clone()),
            gate_points,
        }
    }
}

/// The links toggle is read through a setting (`AVS_LINKS_TOGGLE`): removing it from the code
/// is setting that to `none`, which must come before the feature leaves the store (a feature
/// that does not exist is off, and every links batch would answer `linksEnabled: false`).
fn removal_step(name: &str, ready: bool, verdict: String) -> String {
    if name == crate::toggles::LINKS_ENABLED && ready {
        format!(
            "{verdict}; remove it from the code first: set AVS_LINKS_TOGGLE=none, then delete the feature from the store"
        )
    } else {
        verdict
    }
}

#[cfg(test)]
mod removal_tests {
    #[test]
    fn the_links_toggles_verdict_names_its_setting_when_ready() {
        let links = crate::toggles::LINKS_ENABLED;
        assert!(super::removal_step(links, true, "ok".into()).contains("AVS_LINKS_TOGGLE=none"));
        assert_eq!(super::removal_step(links, false, "not yet".into()), "not yet");
        assert_eq!(super::removal_step("avs_enabled", true, "ok".into()), "ok");
    }
}
