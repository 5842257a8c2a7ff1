//! The Prometheus rules from the plan (#38): `avs-api rollout-rules` prints what
//! `deploy/prometheus/` holds, `promtool check rules` accepts it, and `promtool test rules`
//! passes the file's cases (a 5xx burst at 20x the budget pages fast, at 10x slow; one error
//! in a quiet hour pages nothing; a held stage pages).

use crate::support::*;

#[tokio::test]
async fn the_rules_are_the_commands_output_and_promtool_passes_them() {
    let (code, printed, stderr) = run(&["rollout-rules"], &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let kept = std::fs::read_to_string(repo("deploy/prometheus/avs-rollout.rules.yml")).unwrap();
    assert_eq!(
        printed, kept,
        "deploy/prometheus/avs-rollout.rules.yml is `avs-api rollout-rules`' output: run it again"
    );
    let Some(promtool) = required(&["/usr/bin/promtool"], "prometheus (promtool)") else {
        return;
    };
    let dir = temp_dir();
    let rules = dir.path().join("printed.rules.yml");
    std::fs::write(&rules, &printed).unwrap();
    let check = std::process::Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let test = std::process::Command::new(&promtool)
        .args(["test", "rules"])
        .arg(repo("deploy/prometheus/avs-rollout.test.yml"))
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    // A plan with a tighter budget prints tighter thresholds, from the same table.
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "[guards]\nserver_errors_percent = 0.1\n[[stage]]\nname = \"All\"\npercent = 100\nmin_duration = \"1h\"\n",
    )
    .unwrap();
    let plan_var = format!("file:{}", plan.display());
    let (code, tighter, stderr) = run(&["rollout-rules"], &[("AVS_ROLLOUT_PLAN", &plan_var)]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(tighter.contains("ratio_rate1h > 0.0144"), "{tighter}");
    let (code, _, stderr) = run(
        &["check-config"],
        &[("AVS_ROLLOUT_PLAN", "file:/nonexistent/plan.toml")],
    )
    .await;
    assert_eq!(code, 2);
    assert!(stderr.contains("AVS_ROLLOUT_PLAN"), "{stderr}");
}
