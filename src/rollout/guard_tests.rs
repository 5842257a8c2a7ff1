use super::*;
use crate::config::RolloutPlan;
use crate::rollout::verdict::StageRecord;

fn feature(percent: Option<u32>, actors: &[&str], boolean: bool) -> Feature {
    Feature {
        boolean,
        percentage_of_actors: percent.map(|p| Percentage::Integer(p.into())),
        actors: actors.iter().map(|a| a.to_string()).collect(),
        ..Feature::default()
    }
}

/// The verdict of a stage with these gates and figures (`x` 5xx in `n`, `users` users).
fn verdict_of(gates: &Feature, n: u64, x: u64, users: u64, days: u64, record: &StageRecord) -> Verdict {
    let mut f = Figures {
        allowed: n,
        ..Figures::default()
    };
    f.guards.allowed = n;
    f.guards.server_errors = x;
    f.guards.views = n;
    f.guards.served_views = n;
    for u in 0..users {
        f.allowed_actors.add(u.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    judge(
        &Stage {
            toggle: "avs_enabled",
            number: 1,
            gates: Judged::of(gates),
            setting: describe(gates),
            started: 0,
            until: days * 86_400,
            figures: &f,
            record,
        },
        &RolloutPlan::built_in().default,
        "test",
    )
}

#[test]
fn widening_needs_a_pass_and_the_next_stage_narrowing_never_waits() {
    let plan = RolloutPlan::built_in().default;
    let none = StageRecord::default();
    let ten = feature(Some(10), &["tester"], false);
    let fifty = feature(Some(50), &["tester"], false);
    let hundred = feature(None, &[], true);
    let held = verdict_of(&ten, 3_000, 30, 40, 1, &none);
    let err = promotion(&ten, &fifty, &held, &plan).unwrap_err();
    assert_eq!(err.code, 100);
    assert_eq!(err.message, "Rollout hold: server_errors failed in Stage A");
    let young = verdict_of(&ten, 100, 0, 40, 1, &none);
    let err = promotion(&ten, &fifty, &young, &plan).unwrap_err();
    assert_eq!(err.code, 101);
    assert!(err.message.starts_with("Stage A is not yet proven: "));
    let passed = verdict_of(&ten, 5_000, 0, 40, 15, &none);
    assert_eq!(passed.verdict, Outcome::Pass);
    assert!(promotion(&ten, &fifty, &passed, &plan).is_ok());
    let err = promotion(&ten, &hundred, &passed, &plan).unwrap_err();
    assert_eq!(err.code, 102);
    assert_eq!(err.message, "50 % is the next stage of the plan, not 100");
    // Narrowing, and actors, go through whatever the verdict.
    for after in [
        feature(Some(5), &["tester"], false),
        feature(None, &[], false),
        feature(Some(10), &[], false),
    ] {
        assert!(promotion(&ten, &after, &held, &plan).is_ok());
    }
    assert!(
        promotion(
            &ten,
            &feature(Some(10), &["tester", "another"], false),
            &held,
            &plan
        )
        .is_ok()
    );
}

#[test]
fn from_off_the_first_stage_is_the_next_and_phase_one_needs_its_sign_off() {
    let plan = RolloutPlan::built_in().default;
    let none = StageRecord::default();
    let off = Feature::default();
    let v = verdict_of(&off, 0, 0, 0, 0, &none);
    assert_eq!(
        promotion(&off, &feature(Some(10), &[], false), &v, &plan)
            .unwrap_err()
            .code,
        102
    );
    let phase_one = feature(None, &["tester"], false);
    assert!(promotion(&off, &phase_one, &v, &plan).is_ok());
    let unsigned = verdict_of(&phase_one, 10, 0, 1, 3, &none);
    assert_eq!(
        promotion(
            &phase_one,
            &feature(Some(10), &["tester"], false),
            &unsigned,
            &plan
        )
        .unwrap_err()
        .code,
        101
    );
    let signed = StageRecord {
        signed_off: Some(verdict::SignOff {
            at: rfc3339(0),
            reason: "moderated test passed".into(),
        }),
        ..StageRecord::default()
    };
    let v = verdict_of(&phase_one, 10, 0, 1, 3, &signed);
    assert!(promotion(&phase_one, &feature(Some(10), &["tester"], false), &v, &plan).is_ok());
}

#[test]
fn a_hold_rolls_back_to_the_stage_before() {
    let plan = RolloutPlan::built_in().default;
    let at = |f: &Feature| stage_before(&Judged::of(f), &plan);
    assert_eq!(
        at(&feature(Some(50), &[], false)),
        Change::NarrowTo(Percentage::Integer(10))
    );
    assert_eq!(
        at(&feature(None, &[], true)),
        Change::NarrowTo(Percentage::Integer(50))
    );
    assert_eq!(
        at(&feature(Some(10), &["t"], false)),
        Change::NarrowTo(Percentage::Integer(0))
    );
    assert_eq!(at(&feature(None, &["t"], false)), Change::DisableBoolean);
}
