use super::*;

fn report(setting: &str) -> Report {
    let f = Figures {
        requests: 3,
        errors: [("<script>".to_owned(), 1)].into(),
        ..Figures::default()
    };
    Report {
        generated_at: "2026-11-29T00:00:00Z".into(),
        scope: "fleet",
        toggles: vec![ToggleReport {
            toggle: "avs_enabled".into(),
            stages: vec![StageReport {
                stage: 1,
                setting: setting.into(),
                started_at: "2026-11-28T00:00:00Z".into(),
                figures: StageFigures::from_figures(
                    &f,
                    Some(Expected {
                        low: 0.02,
                        high: 0.03,
                    }),
                ),
                instances: vec![],
                verdict: crate::rollout::verdict::judge(
                    &crate::rollout::verdict::Stage {
                        toggle: "avs_enabled",
                        number: 1,
                        gates: Default::default(),
                        setting: setting.into(),
                        started: 0,
                        until: 0,
                        figures: &f,
                        record: &Default::default(),
                    },
                    &crate::config::RolloutPlan::built_in().default,
                    "test",
                ),
            }],
            timeline: vec![Point {
                minute: 60,
                requests: 3,
                errors: 1,
            }],
            cleanup: Cleanup {
                ready: false,
                verdict: "not fully on".into(),
                fully_on_since: None,
                gate_points: vec![],
            },
        }],
    }
}

#[test]
fn the_page_escapes_and_the_markdown_does_not() {
    let r = report("10 % of actors <b>");
    let html = r.page_section("avs_enabled");
    assert!(
        html.contains("10 % of actors &#60;b&#62;") || html.contains("10 % of actors &lt;b&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    let md = r.markdown();
    assert!(
        md.contains("## avs_enabled") && md.contains("<script> × 1"),
        "{md}"
    );
    assert!(md.contains("the plan expected 2–3 %"), "{md}");
}
