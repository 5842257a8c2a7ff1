use super::*;
use crate::config::RolloutPlan;
use crate::rollout::evidence::{clean_needed, e_fail};

const DAY: u64 = 86_400;

fn plan() -> StagePlan {
    RolloutPlan::built_in().default
}

fn ten_percent() -> Judged {
    Judged {
        percentage_of_actors: Some(10.0),
        ..Judged::default()
    }
}

/// Figures of `n` allowed requests, `x` of them 5xx, from `users` users, all views served.
fn figures(n: u64, x: u64, users: u64) -> Figures {
    let mut f = Figures {
        allowed: n,
        requests: n,
        ..Figures::default()
    };
    f.guards.allowed = n;
    f.guards.server_errors = x;
    f.guards.views = n;
    f.guards.view_failures = x;
    f.guards.served_views = n - x;
    for u in 0..users {
        f.allowed_actors.add(u.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    f
}

fn judge_at(gates: Judged, f: &Figures, record: &StageRecord, days: u64) -> Verdict {
    judge(
        &Stage {
            toggle: "avs_enabled",
            number: 2,
            gates,
            setting: "10 % of actors".into(),
            started: 1_000,
            until: 1_000 + days * DAY,
            figures: f,
            record,
        },
        &plan(),
        "test",
    )
}

fn guard<'a>(v: &'a Verdict, name: &str) -> &'a GuardReport {
    v.guards.iter().find(|g| g.name == name).unwrap()
}

#[test]
fn gates_map_to_plan_stages() {
    let p = plan();
    let actors = Judged {
        actors: 1,
        ..Judged::default()
    };
    assert_eq!(Position::of(&actors, &p), Position::At(0));
    assert_eq!(Position::of(&ten_percent(), &p), Position::At(1));
    let on = Judged {
        fully_on: true,
        ..Judged::default()
    };
    assert_eq!(Position::of(&on, &p), Position::At(3));
    let twenty = Judged {
        percentage_of_actors: Some(20.0),
        actors: 3,
        ..Judged::default()
    };
    assert_eq!(Position::of(&twenty, &p), Position::OffPlan);
    assert_eq!(
        Position::OffPlan.next(&twenty, &p),
        Some(2),
        "the first wider stage"
    );
    assert_eq!(Position::of(&Judged::default(), &p), Position::Off);
    assert_eq!(Position::Off.next(&Judged::default(), &p), Some(0));
    assert_eq!(Position::At(3).next(&on, &p), None);
}

#[test]
fn a_clean_stage_passes_once_evidence_duration_and_users_are_all_there() {
    let record = StageRecord::default();
    // E_pass of server_errors reaches 20 at 1,759 clean requests (the spec's known value).
    let short = judge_at(ten_percent(), &figures(1_758, 0, 30), &record, 15);
    assert_eq!(short.verdict, Outcome::Inconclusive);
    let needs = guard(&short, "server_errors").needs.as_ref().unwrap();
    assert_eq!(needs.clean_requests, Some(1));
    assert_eq!(
        needs.clean_requests,
        clean_needed(0.0025, 1_758, 0, 20.0),
        "the formula's count"
    );
    assert!(short.reasons[0].starts_with("server_errors needs 1 more clean requests"));
    let passed = judge_at(ten_percent(), &figures(1_759, 0, 30), &record, 15);
    assert_eq!(passed.verdict, Outcome::Pass, "{:?}", passed.reasons);
    assert!(passed.next.allowed && passed.next.setting.as_deref() == Some("50 %"));
    let early = judge_at(ten_percent(), &figures(1_759, 0, 30), &record, 13);
    assert_eq!(early.verdict, Outcome::Inconclusive);
    assert_eq!(early.stage.min_duration_left_secs, DAY);
    assert!(early.reasons.iter().any(|r| r.contains("minimum duration")));
    let few = judge_at(ten_percent(), &figures(1_759, 0, 20), &record, 15);
    assert_eq!(few.verdict, Outcome::Inconclusive);
    assert!(few.reasons.iter().any(|r| r.contains("more allowed users")));
}

#[test]
fn errors_at_four_times_the_threshold_hold_and_the_hold_is_kept() {
    let record = StageRecord::default();
    let v = judge_at(ten_percent(), &figures(3_000, 30, 40), &record, 1);
    assert_eq!(v.verdict, Outcome::Hold);
    assert_eq!(guard(&v, "server_errors").state, GuardState::Failed);
    assert!(v.reasons[0].starts_with("server_errors failed: 30 of 3000"));
    let hold = v.new_hold(5_000).unwrap();
    assert_eq!(hold.guards[0].name, "server_errors");
    // Many clean requests later the evidence against it fades; the recorded hold does not.
    let kept = StageRecord {
        held: Some(hold),
        ..StageRecord::default()
    };
    let later = judge_at(ten_percent(), &figures(300_000, 30, 40), &kept, 30);
    assert!(guard(&later, "server_errors").e_fail.unwrap() < 1.0);
    assert_eq!(later.verdict, Outcome::Hold);
    assert!(later.new_hold(6_000).is_none(), "recorded once");
    assert!(!later.next.allowed);
}

#[test]
fn an_open_breaker_holds_and_slow_views_hold() {
    let record = StageRecord::default();
    let mut f = figures(500, 0, 40);
    f.guards.breaker_open = 1;
    let v = judge_at(ten_percent(), &f, &record, 1);
    assert_eq!(v.verdict, Outcome::Hold);
    assert_eq!(guard(&v, "upstream").state, GuardState::Failed);
    let mut f = figures(500, 0, 40);
    f.guards.slow_views = 100;
    let v = judge_at(ten_percent(), &f, &record, 1);
    assert_eq!(v.verdict, Outcome::Hold);
    assert_eq!(guard(&v, "slow_views").state, GuardState::Failed);
    assert_eq!(guard(&v, "server_errors").state, GuardState::Open);
}

#[test]
fn phase_one_and_off_plan_pass_only_by_sign_off() {
    let actors = Judged {
        actors: 1,
        ..Judged::default()
    };
    let unsigned = judge_at(actors, &figures(100_000, 0, 40), &StageRecord::default(), 30);
    assert_eq!(unsigned.verdict, Outcome::Inconclusive);
    assert!(unsigned.reasons[0].contains("passes only by sign-off"));
    let signed = StageRecord {
        signed_off: Some(SignOff {
            at: rfc3339(2_000),
            reason: "moderated test done".into(),
        }),
        ..StageRecord::default()
    };
    let v = judge_at(actors, &figures(3, 0, 1), &signed, 0);
    assert_eq!(v.verdict, Outcome::Pass);
    assert!(v.signed_off && v.next.allowed);
    assert_eq!(v.next.setting.as_deref(), Some("10 %"));
    // A sign-off never lifts a hold.
    let mut f = figures(3_000, 30, 40);
    f.guards.server_errors = 30;
    assert_eq!(judge_at(ten_percent(), &f, &signed, 1).verdict, Outcome::Hold);
}

#[test]
fn the_links_toggle_has_one_proportion_guard() {
    let f = figures(3_000, 0, 40);
    let v = judge(
        &Stage {
            toggle: LINKS_ENABLED,
            number: 1,
            gates: ten_percent(),
            setting: "10 %".into(),
            started: 0,
            until: 0,
            figures: &f,
            record: &StageRecord::default(),
        },
        &plan(),
        "test",
    );
    assert!(!guard(&v, "view_failures").applies && !guard(&v, "slow_views").applies);
    assert_eq!(guard(&v, "server_errors").state, GuardState::Passed);
}

/// The spec's null run: 20 seeds, each 20,000 requests with every guard's failures at half
/// its threshold: never a hold. The failing condition is read after every request, the whole
/// verdict after every hundredth (it also counts what each open guard still needs).
#[test]
fn a_null_run_never_holds() {
    let record = StageRecord::default();
    for seed in 0..20 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut f = figures(0, 0, 40);
        for _ in 0..20_000 {
            f.allowed += 1;
            f.guards.allowed += 1;
            let failed = rng.f64() < 0.00125;
            f.guards.server_errors += u64::from(failed);
            f.guards.views += 1;
            f.guards.view_failures += u64::from(rng.f64() < 0.005);
            f.guards.served_views = f.guards.views - f.guards.view_failures;
            f.guards.slow_views += u64::from(rng.f64() < 0.025);
            let g = &f.guards;
            for (p0, n, x) in [
                (0.0025, g.allowed, g.server_errors),
                (0.01, g.views, g.view_failures),
                (0.05, g.served_views, g.slow_views),
            ] {
                assert!(e_fail(p0, n, x) < 3.0 / 0.05, "seed {seed} at {n}: {x} failures");
            }
            if f.allowed.is_multiple_of(100) {
                let v = judge_at(ten_percent(), &f, &record, 1);
                assert_ne!(v.verdict, Outcome::Hold, "seed {seed}: {:?}", v.reasons);
            }
        }
    }
}
