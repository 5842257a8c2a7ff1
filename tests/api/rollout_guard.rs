//! #38, the rollout guard, through the real binary under generated traffic: a test plan of
//! seconds-long stages, a stand-in upstream that answers 500 or slowly for chosen summaries,
//! and the verdict read where automation reads it (`/admin/rollout/{toggle}/verdict`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::*;
use avs_api::rollout::evidence::{clean_needed, e_fail};

const ADMIN: &str = "an-admin-token-of-at-least-32-characters";
const CLEAN_SID: &str = "0000000000000000000000000000C1EA";

/// The release plan's shape with stages of seconds: Stage A must last `stage_a`.
fn plan(stage_a: &str) -> String {
    format!(
        r#"
[guards]
min_users = 30
[[stage]]
name = "Phase I"
actors = true
min_duration = "1s"
[[stage]]
name = "Stage A"
percent = 10
min_duration = "{stage_a}"
[[stage]]
name = "Stage B"
percent = 50
min_duration = "1s"
[[stage]]
name = "Stage E"
percent = 100
min_duration = "1s"
"#
    )
}

/// The first `n` users `avs_enabled` at 10 % lets in, as dev tokens (their e-mail is their
/// Flipper id).
fn allowed_users(n: usize) -> Vec<Arc<str>> {
    (0..)
        .map(|i| format!("guard.user.{i}@example.com"))
        .filter(|email| {
            avs_api::toggles::bucket("avs_enabled", &avs_api::domain::ActorId::new(email.clone())) < 10_000
        })
        .take(n)
        .map(|email| Arc::from(dev_token(DEV_ICN, Some(&email)).as_str()))
        .collect()
}

fn summary(sid: &str) -> Value {
    json!({"sid": sid, "data": {"patientInfo": {"icn": DEV_ICN}}})
}

struct Guarded {
    server: Server,
    upstream: FakeUpstream,
    users: Vec<Arc<str>>,
    _dir: tempfile::TempDir,
}

/// The binary at 10 % of actors for `avs_enabled` under the test plan, with `extra` settings.
async fn guarded(stage_a: &str, extra: &[(&str, &str)]) -> Guarded {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, plan(stage_a)).unwrap();
    let toggles = dir.path().join("toggles.toml");
    std::fs::write(&toggles, "[features.avs_enabled]\npercentage_of_actors = 10\n").unwrap();
    let upstream = FakeUpstream::start().await;
    upstream.summary(&summary(CLEAN_SID));
    let (plan_env, toggles_env, url) = (
        format!("file:{}", plan_path.display()),
        format!("file:{}", toggles.display()),
        upstream.url(),
    );
    let mut env = vec![
        ("AVS_ENV", "test"),
        ("AVS_ADMIN_TOKEN", ADMIN),
        ("AVS_ROLLOUT_PLAN", plan_env.as_str()),
        ("AVS_TOGGLES", toggles_env.as_str()),
        ("AVS_UPSTREAM_URL", url.as_str()),
        ("AVS_PROXY_URL", "direct"),
        ("AVS_ROLLOUT_FLUSH_SECS", "1"),
    ];
    env.extend_from_slice(extra);
    let server = serve(&env).await;
    Guarded {
        server,
        upstream,
        users: allowed_users(40),
        _dir: dir,
    }
}

impl Guarded {
    /// `count` views of `sid(i)`, each by the next user, 8 at a time; their statuses.
    async fn views(&self, count: usize, sid: impl Fn(usize) -> String) -> Vec<u16> {
        let mut statuses = Vec::with_capacity(count);
        let mut tasks = JoinSet::new();
        for i in 0..count {
            if tasks.len() == 8 {
                statuses.push(tasks.join_next().await.unwrap().unwrap());
            }
            let url = format!("http://{}/avs/v0/avs/{}", self.server.addr, sid(i));
            let user = self.users[i % self.users.len()].clone();
            tasks.spawn(async move {
                client()
                    .get(url)
                    .bearer_auth(&*user)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16())
            });
        }
        while let Some(status) = tasks.join_next().await {
            statuses.push(status.unwrap());
        }
        statuses
    }

    async fn clean(&self, count: usize) {
        let statuses = self.views(count, |_| CLEAN_SID.to_owned()).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }

    async fn verdict(&self) -> Value {
        let response = client()
            .get(format!(
                "http://{}/admin/rollout/avs_enabled/verdict",
                self.server.admin_addr
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    /// The verdict as a webhook gate asks it (`?require=pass`).
    async fn verdict_requiring_pass(&self) -> reqwest::Response {
        client()
            .get(format!(
                "http://{}/admin/rollout/avs_enabled/verdict?require=pass",
                self.server.admin_addr
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
    }

    async fn admin_post(&self, path: &str, body: &str) -> (u16, Value) {
        let response = client()
            .post(format!("http://{}{path}", self.server.admin_addr))
            .bearer_auth(ADMIN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null),
        )
    }
}

fn guard<'a>(verdict: &'a Value, name: &str) -> &'a Value {
    verdict["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap()
}

/// Every open guard's `needs.cleanRequests` is the formula's count, from its own `n`.
fn assert_needs_match_the_formula(verdict: &Value) {
    for g in verdict["guards"].as_array().unwrap() {
        if g["applies"] != true || g["state"] != "open" {
            continue;
        }
        let p0 = g["thresholdPercent"].as_f64().unwrap() / 100.0;
        let (n, x) = (g["n"].as_u64().unwrap(), g["failures"].as_u64().unwrap());
        assert_eq!(
            g["needs"]["cleanRequests"].as_u64(),
            clean_needed(p0, n, x, 20.0),
            "{g}"
        );
    }
}

/// Clean traffic to 10 % of 40 users: `inconclusive` while the stage is younger than its plan's
/// minimum and until `E_pass` of every guard reaches 20 (1,759 clean requests for
/// `server_errors`), `pass` at the request that brings it there; on the way each count of
/// clean requests still needed is the formula's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_traffic_passes_exactly_when_the_evidence_and_the_duration_are_there() {
    let stage = guarded("3s", &[]).await;
    let v = stage.verdict().await;
    assert_eq!(v["verdict"], "inconclusive");
    assert!(v["stage"]["minDurationLeftSecs"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().ends_with("left of its minimum duration")),
        "{v}"
    );
    let mut sent = 0;
    for batch in [300, 300, 300, 300, 300, 258] {
        stage.clean(batch).await;
        sent += batch;
        let v = stage.verdict().await;
        assert_eq!(v["verdict"], "inconclusive", "{v}");
        assert_eq!(guard(&v, "server_errors")["n"], sent);
        assert_needs_match_the_formula(&v);
    }
    // The minimum has passed (the traffic takes longer here; if not, it is awaited, and the
    // verdict stays inconclusive all the while)...
    within(Duration::from_secs(5), async || {
        let v = stage.verdict().await;
        assert_eq!(v["verdict"], "inconclusive", "{v}");
        v["stage"]["minDurationLeftSecs"] == 0
    })
    .await;
    // ...and the evidence is one clean request short: exactly one is needed.
    let v = stage.verdict().await;
    assert_eq!(guard(&v, "server_errors")["needs"]["cleanRequests"], 1, "{v}");
    assert!(guard(&v, "server_errors")["ePass"].as_f64().unwrap() < 20.0);
    assert_eq!(guard(&v, "view_failures")["state"], "passed");
    assert_eq!(guard(&v, "slow_views")["state"], "passed");
    assert_eq!(
        v["reasons"],
        json!(["server_errors needs 1 more clean requests (about 1 s)"])
    );
    stage.clean(1).await;
    let v = stage.verdict().await;
    assert_eq!(guard(&v, "server_errors")["state"], "passed", "{v}");
    assert!(guard(&v, "server_errors")["ePass"].as_f64().unwrap() >= 20.0);
    assert_eq!(v["users"]["allowed"], 40);
    assert_eq!(v["verdict"], "pass", "{v}");
    let v = stage.verdict().await;
    assert_eq!(
        v["next"],
        json!({"setting": "50 %", "percent": 50.0, "allowed": true})
    );
    assert_eq!(
        reading(&stage.server, "avs_rollout_verdict{toggle=\"avs_enabled\"}").await,
        Some(0.0)
    );
    // With a pass, the next stage goes through, unforced; a skip past it does not.
    let feature = "/flipper/api/features/avs_enabled/percentage_of_actors";
    let (status, body) = stage.admin_post(feature, "percentage=100").await;
    assert_eq!((status, body["code"].as_u64()), (409, Some(102)), "{body}");
    assert_eq!(body["message"], "50 % is the next stage of the plan, not 100");
    assert_eq!(stage.admin_post(feature, "percentage=50").await.0, 200);
}

/// 5xx at 1 % of requests (the upstream answers 500 for one summary) holds the stage by
/// `server_errors`; the hold is kept through 5,000 clean requests after it. While it holds a
/// widening is refused 100, a forced one goes through and is recorded, and narrowing always
/// goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_at_one_percent_hold_the_stage_through_clean_traffic_after() {
    let stage = guarded("1s", &[]).await;
    let failing = "0000000000000000000000000000FA11";
    stage
        .upstream
        .script(&format!("/avs/{failing}"), Scripted::status(500, "{}"));
    let mut held_at = None;
    for round in 0..10 {
        let statuses = stage
            .views(500, |i| {
                if i % 100 == 0 {
                    failing.to_owned()
                } else {
                    CLEAN_SID.to_owned()
                }
            })
            .await;
        assert_eq!(statuses.iter().filter(|s| **s >= 500).count(), 5);
        let v = stage.verdict().await;
        if v["verdict"] == "hold" {
            held_at = Some((round + 1) * 500);
            break;
        }
    }
    let held_at = held_at.expect("1 % of 5xx against 0.25 % holds within 5,000 requests");
    let v = stage.verdict().await;
    let server_errors = guard(&v, "server_errors");
    assert_eq!(server_errors["state"], "failed", "{v}");
    let (n, x) = (
        server_errors["n"].as_u64().unwrap(),
        server_errors["failures"].as_u64().unwrap(),
    );
    assert_eq!(n, held_at as u64);
    // The guard fails at m/α = 60, and had not at the read before.
    assert!(e_fail(0.0025, n, x) >= 60.0 && e_fail(0.0025, n - 500, x - 5) < 60.0);
    assert!(server_errors["failedAt"].is_string());
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("server_errors failed: ")
    );
    stage.clean(5_000).await;
    let later = stage.verdict().await;
    assert_eq!(later["verdict"], "hold", "sticky for the stage: {later}");
    assert_eq!(guard(&later, "server_errors")["state"], "failed");
    assert_eq!(
        guard(&later, "server_errors")["failedAt"],
        server_errors["failedAt"]
    );
    assert!(
        guard(&later, "server_errors")["eFail"].as_f64().unwrap() < 60.0,
        "the evidence faded"
    );
    assert_eq!(
        reading(&stage.server, "avs_rollout_verdict{toggle=\"avs_enabled\"}").await,
        Some(2.0)
    );

    let feature = "/flipper/api/features/avs_enabled/percentage_of_actors";
    let (status, body) = stage.admin_post(feature, "percentage=50").await;
    assert_eq!((status, body["code"].as_u64()), (409, Some(100)), "{body}");
    assert_eq!(body["message"], "Rollout hold: server_errors failed in Stage A");
    assert_eq!(body["more_info"], "/admin/rollout/avs_enabled/verdict");
    assert_eq!(body["verdict"]["verdict"], "hold");
    let (status, body) = stage.admin_post(feature, "percentage=50&force=true").await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (422, Some(103)),
        "a force needs its reason"
    );
    let (status, _) = stage
        .admin_post(
            feature,
            "percentage=50&force=true&reason=incident+42+fixed+upstream",
        )
        .await;
    assert_eq!(status, 200);
    let v = stage.verdict().await;
    assert_eq!(v["stage"]["planStage"], "Stage B");
    assert_eq!(v["record"]["forced"]["over"], "hold");
    assert_eq!(v["record"]["forced"]["reason"], "incident 42 fixed upstream");
    // Narrowing is never refused, whatever the verdict.
    assert_eq!(stage.admin_post(feature, "percentage=10").await.0, 200);
    let report = client()
        .get(format!("http://{}/admin/rollout.md", stage.server.admin_addr))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        report.contains("**hold** (Stage A). Not met: server_errors failed"),
        "{report}"
    );
    assert!(report.contains("Forced over `hold`"), "{report}");
    assert!(report.contains("| server_errors | 0.25 % |"), "{report}");
    // Nothing the guard shows or logs holds an actor id, an e-mail, an ICN or a sid.
    let json = client()
        .get(format!("http://{}/admin/rollout", stage.server.admin_addr))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = metrics_text(&stage.server).await;
    let logs = stage.server.logs.lock().unwrap().join("\n");
    for (what, text) in [
        ("markdown", &report),
        ("json", &json),
        ("metrics", &metrics),
        ("logs", &logs),
    ] {
        for secret in ["guard.user", "@example.com", DEV_ICN, CLEAN_SID, failing] {
            assert!(!text.contains(secret), "{secret} in the {what}");
        }
    }
    // The narrowing's stage is judged at the next flush (every second here), and its gauge set.
    within(Duration::from_secs(5), async || {
        reading(&stage.server, "avs_rollout_stage_percent{toggle=\"avs_enabled\"}").await == Some(10.0)
    })
    .await;
    // Turned off, the toggle has no gauges (so `AvsRolloutHold` stops paging for it).
    assert_eq!(stage.admin_post(feature, "percentage=0").await.0, 200);
    within(Duration::from_secs(5), async || {
        let text = metrics_text(&stage.server).await;
        !text.contains("avs_rollout_verdict{") && !text.contains("avs_rollout_stage_percent{")
    })
    .await;
    assert!(
        metrics_text(&stage.server)
            .await
            .contains("avs_http_requests_total")
    );
}

/// Answers slower than 750 ms to 20 % of views hold the stage by `slow_views`, and only it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_to_a_fifth_of_views_hold_by_slow_views() {
    let stage = guarded("1s", &[]).await;
    let slow = |i: usize| format!("{:032X}", 0x5100_0000_u64 + i as u64);
    for i in 0..20 {
        stage.upstream.script(
            &format!("/avs/{}", slow(i)),
            Scripted::json(&summary(&slow(i))).delayed(Duration::from_millis(800)),
        );
    }
    let statuses = stage
        .views(100, |i| {
            if i % 5 == 0 {
                slow(i / 5)
            } else {
                CLEAN_SID.to_owned()
            }
        })
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let v = stage.verdict().await;
    assert_eq!(v["verdict"], "hold", "{v}");
    assert_eq!(guard(&v, "slow_views")["state"], "failed");
    assert_eq!(guard(&v, "slow_views")["failures"], 20);
    assert_ne!(guard(&v, "server_errors")["state"], "failed");
    assert_ne!(guard(&v, "view_failures")["state"], "failed");
}

/// An upstream outage opens the breaker, and the stage holds by `upstream`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_holds_by_upstream() {
    let stage = guarded("1s", &[]).await;
    stage.upstream.outage(Some(503));
    let statuses = stage
        .views(40, |i| format!("{:032X}", 0xB0_0000_u64 + i as u64))
        .await;
    assert!(statuses.iter().all(|s| *s >= 500), "{statuses:?}");
    let v = stage.verdict().await;
    assert_eq!(v["verdict"], "hold", "{v}");
    let upstream = guard(&v, "upstream");
    assert_eq!(upstream["state"], "failed");
    assert!(upstream["failures"].as_u64().unwrap() >= 1);
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "upstream failed: a breaker was open in the stage"),
        "{v}"
    );
    assert_eq!(
        series(&stage.server, "avs_upstream_breaker_open{source=\"vista\"}").await,
        1.0
    );
}

/// Phase I, one named tester, passes by a sign-off and by nothing else: not its minimum
/// duration, not its traffic. A webhook gate (`?require=pass`) opens exactly then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_one_passes_only_by_sign_off_and_a_hold_is_never_signed_off() {
    let stage = guarded("1s", &[]).await;
    let feature = "/flipper/api/features/avs_enabled";
    // Back to Phase I: a named tester and no percentage.
    assert_eq!(
        stage
            .admin_post(&format!("{feature}/actors"), "flipper_id=tester@example.com")
            .await
            .0,
        200
    );
    let cleared = client()
        .delete(format!(
            "http://{}{feature}/percentage_of_actors",
            stage.server.admin_addr
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let v = stage.verdict().await;
    assert_eq!(v["stage"]["planStage"], "Phase I", "{v}");
    assert_eq!(v["verdict"], "inconclusive");
    assert_eq!(
        v["reasons"][0],
        "Phase I tests with named actors: it passes only by sign-off"
    );
    let (status, body) = stage
        .admin_post(&format!("{feature}/percentage_of_actors"), "percentage=10")
        .await;
    assert_eq!((status, body["code"].as_u64()), (409, Some(101)), "{body}");
    // Its minimum duration passing changes nothing: one tester proves function, not rates.
    within(Duration::from_secs(5), async || {
        let v = stage.verdict().await;
        assert_eq!(v["verdict"], "inconclusive", "{v}");
        v["stage"]["minDurationLeftSecs"] == 0
    })
    .await;
    let (status, _) = stage
        .admin_post("/admin/rollout/avs_enabled/sign-off", "reason=")
        .await;
    assert_eq!(status, 422);
    let (status, signed) = stage
        .admin_post(
            "/admin/rollout/avs_enabled/sign-off",
            "reason=moderated+test+passed",
        )
        .await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["verdict"], "pass");
    assert_eq!(signed["record"]["signedOff"]["reason"], "moderated test passed");
    let gate = stage.verdict_requiring_pass().await;
    assert_eq!(gate.status(), 200, "a webhook gate opens on pass");
    assert_eq!(
        stage
            .admin_post(&format!("{feature}/percentage_of_actors"), "percentage=10")
            .await
            .0,
        200
    );
    let gate = stage.verdict_requiring_pass().await;
    assert_eq!(gate.status(), 409, "Stage A is not proven yet");
    let body: Value = serde_json::from_slice(&gate.bytes().await.unwrap()).unwrap();
    assert_eq!(body["verdict"], "inconclusive");
}

/// Three replicas on one PostgreSQL, each sent a third of the traffic with 5xx spread so that
/// no replica's own figures would hold (7 in 1,000 each: `E_fail` 6.1 against 60) while the
/// fleet's do (21 in 3,000: 778). The fleet holds, once: one replica records it and that one
/// alone makes the automatic rollback's one narrowing write; every replica's report shows
/// the same hold and every verdict endpoint the same stage after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_hold_as_one_and_roll_back_once() {
    let Some(pg) = Postgres::start().await else { return };
    let url = pg.database("guarded_fleet", None).await;
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, plan("1s")).unwrap();
    let plan_env = format!("file:{}", plan_path.display());
    let upstream = FakeUpstream::start().await;
    upstream.summary(&summary(CLEAN_SID));
    let failing = "0000000000000000000000000000FA11";
    upstream.script(&format!("/avs/{failing}"), Scripted::status(500, "{}"));
    let upstream_url = upstream.url();
    let mut replicas = Vec::new();
    for n in 1..=3 {
        let instance = format!("replica-{n}");
        replicas.push(
            serve(&[
                ("AVS_ENV", "test"),
                ("AVS_TOGGLES", &url),
                ("AVS_TOGGLES_REFRESH_SECS", "1"),
                ("AVS_ROLLOUT_FLUSH_SECS", "1"),
                ("AVS_ROLLOUT_AUTO_ROLLBACK", "true"),
                ("AVS_ROLLOUT_PLAN", &plan_env),
                ("AVS_ADMIN_TOKEN", ADMIN),
                ("AVS_INSTANCE", &instance),
                ("AVS_UPSTREAM_URL", &upstream_url),
                ("AVS_PROXY_URL", "direct"),
            ])
            .await,
        );
    }
    let post = async |server: &Server, path: &str, body: &str| {
        client()
            .post(format!("http://{}{path}", server.admin_addr))
            .bearer_auth(ADMIN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    };
    // Stage B, forced there (from off the plan's next stage is Phase I).
    let pct = "/flipper/api/features/avs_enabled/percentage_of_actors";
    assert_eq!(
        post(&replicas[0], pct, "percentage=50&force=true&reason=fleet+test").await,
        200
    );
    let users = allowed_users(40);
    for server in &replicas {
        within(Duration::from_secs(5), async || {
            let url = format!("http://{}/avs/v0/avs/{CLEAN_SID}", server.addr);
            client()
                .get(url)
                .bearer_auth(&*users[0])
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
    }
    // 1,000 requests to each replica, every 143rd answered 502: 7 each.
    let mut tasks = JoinSet::new();
    for (r, server) in replicas.iter().enumerate() {
        let (addr, users) = (server.addr.clone(), users.clone());
        tasks.spawn(async move {
            let mut failed = 0;
            for i in 0..1_000 {
                let sid = if i % 143 == 71 { failing } else { CLEAN_SID };
                let user = &users[(i + r) % users.len()];
                let status = client()
                    .get(format!("http://{addr}/avs/v0/avs/{sid}"))
                    .bearer_auth(&**user)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                failed += u64::from(status >= 500);
            }
            failed
        });
    }
    let failed: Vec<u64> = tasks.join_all().await;
    assert_eq!(failed, vec![7, 7, 7]);
    assert!(e_fail(0.0025, 1_000, 7) < 60.0 && e_fail(0.0025, 3_000, 21) >= 60.0);
    let report_of = async |server: &Server| -> Value {
        let response = client()
            .get(format!("http://{}/admin/rollout", server.admin_addr))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    };
    let stages_of = |report: &Value| -> Vec<Value> {
        report["toggles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["toggle"] == "avs_enabled")
            .map(|t| t["stages"].as_array().unwrap().clone())
            .unwrap_or_default()
    };
    // Held and rolled back: Stage B's verdict is hold, and a stage at 10 % follows it.
    within(Duration::from_secs(15), async || {
        let stages = stages_of(&report_of(&replicas[0]).await);
        stages
            .iter()
            .any(|s| s["verdict"]["record"]["rolledBack"] == "auto")
            && stages.last().is_some_and(|s| s["setting"] == "10 % of actors")
    })
    .await;
    let mut holds = Vec::new();
    for server in &replicas {
        let stages = stages_of(&report_of(server).await);
        let held = stages
            .iter()
            .find(|s| s["verdict"]["verdict"] == "hold")
            .expect("the held stage");
        assert_eq!(held["setting"], "50 % of actors");
        let g = &held["verdict"]["guards"][0];
        assert_eq!(
            (g["name"].as_str(), g["state"].as_str()),
            (Some("server_errors"), Some("failed"))
        );
        // Each replica's own figures in the held stage would not have held it.
        for row in held["instances"].as_array().unwrap() {
            let errors: u64 = row["errors"]
                .as_object()
                .unwrap()
                .values()
                .map(|n| n.as_u64().unwrap())
                .sum();
            let allowed = row["allowed"].as_u64().unwrap();
            assert!(e_fail(0.0025, allowed, errors) < 60.0, "{row}");
        }
        holds.push(held["verdict"]["record"]["held"].clone());
    }
    assert!(
        holds.iter().all(|h| h == &holds[0] && h.is_object()),
        "one recorded hold: {holds:?}"
    );
    // Every replica's verdict endpoint reads the same stage: the one the rollback opened.
    let mut verdicts = Vec::new();
    for server in &replicas {
        let response = client()
            .get(format!(
                "http://{}/admin/rollout/avs_enabled/verdict",
                server.admin_addr
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        verdicts.push((v["stage"]["number"].clone(), v["stage"]["planStage"].clone()));
    }
    assert!(verdicts.iter().all(|v| v == &verdicts[0]), "{verdicts:?}");
    assert_eq!(verdicts[0].1, "Stage A");
    // Exactly one replica recorded the hold, and only it narrowed the toggle.
    let logged = |message: &str| -> usize {
        replicas
            .iter()
            .map(|s| {
                s.logs
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|e| e["message"] == message))
                    .count()
            })
            .sum()
    };
    assert_eq!(logged("rollout hold recorded"), 1);
    assert_eq!(logged("rollout hold: toggle narrowed to the stage before"), 1);
    assert_eq!(logged("toggle change"), 2, "the forced 50 % and the one rollback");

    // A widening made outside the admin API, as VA.gov's Flipper UI writes it to the same
    // tables, cannot be refused: the next flush records its stage unguarded, with the verdict
    // it widened over.
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    db.batch_execute(
        "DELETE FROM flipper_gates WHERE feature_key = 'avs_enabled' AND key = 'percentage_of_actors';
         INSERT INTO flipper_gates (feature_key, key, value, created_at, updated_at)
           VALUES ('avs_enabled', 'percentage_of_actors', '100', now(), now());",
    )
    .await
    .unwrap();
    within(Duration::from_secs(10), async || {
        let stages = stages_of(&report_of(&replicas[1]).await);
        stages.last().is_some_and(|s| {
            s["setting"] == "100 % of actors" && s["verdict"]["record"]["unguarded"]["over"] == "inconclusive"
        })
    })
    .await;
}

/// `deploy/`'s Argo Rollouts and Flagger examples read the route the admin listener serves,
/// through the admin Service, with the verdict's own values.
#[test]
fn the_deploy_examples_read_the_verdict_route_with_its_values() {
    let argo: Value =
        serde_norway::from_str(&std::fs::read_to_string(repo("deploy/argo/analysis-template.yaml")).unwrap())
            .unwrap();
    let metric = &argo["spec"]["metrics"][0];
    assert_eq!(metric["successCondition"], "result.verdict == \"pass\"");
    assert_eq!(metric["failureCondition"], "result.verdict == \"hold\"");
    let url = metric["provider"]["web"]["url"].as_str().unwrap();
    let (service, path) = url
        .strip_prefix("http://")
        .and_then(|u| u.split_once('/'))
        .unwrap();
    assert_eq!(
        service, "avs-api-admin:9090",
        "the admin Service (deploy/k8s/services.yaml)"
    );
    let route = format!("/{}", path.replace("{{args.toggle}}", "{toggle}"));
    assert!(
        avs_api::admin::ROUTES.contains(&("GET", route.as_str())),
        "{route}"
    );
    let flagger: Value =
        serde_norway::from_str(&std::fs::read_to_string(repo("deploy/flagger/canary.yaml")).unwrap())
            .unwrap();
    let hook = &flagger["spec"]["analysis"]["webhooks"][0];
    assert_eq!(hook["type"], "confirm-promotion");
    assert!(
        hook["metadata"]["cmd"]
            .as_str()
            .unwrap()
            .contains("http://avs-api-admin:9090/admin/rollout/avs_enabled/verdict?require=pass")
    );
}
