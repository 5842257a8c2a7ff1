//! The fleet: PostgreSQL, three replicas of the real binary, nginx with `deploy/nginx/nginx.conf`
//! and a stub upstream, all on loopback. One upstream call per summary across the fleet, a
//! replica killed under load, a gate change in force everywhere at one stage boundary, unique
//! users counted once across replicas, the links share, and bounded stages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::*;

const ADMIN: &str = "an-admin-token-of-at-least-32-characters";

/// Debian's nginx running the deploy configuration in front of the replicas.
fn deploy_nginx(replicas: &[&Server]) -> Option<Nginx> {
    let deploy = std::fs::read_to_string(repo("deploy/nginx/nginx.conf")).unwrap();
    // The deploy file as it is, but for its replicas and its listen address.
    Nginx::start("the fleet test", |addr| {
        let mut config = String::new();
        let mut servers = replicas.iter();
        let mut wrote_replicas = false;
        for line in deploy.lines() {
            if line.trim_end().ends_with("# replica") {
                if !wrote_replicas {
                    for replica in servers.by_ref() {
                        config.push_str(&format!(
                            "        server {} max_fails=1 fail_timeout=5s;\n",
                            replica.addr
                        ));
                    }
                    wrote_replicas = true;
                }
            } else if line.trim_end().ends_with("# listen") {
                config.push_str(&format!("        listen {addr};\n"));
            } else {
                config.push_str(line);
                config.push('\n');
            }
        }
        assert!(wrote_replicas, "the deploy file marks its replicas");
        config
    })
}

fn sid(n: usize) -> String {
    format!("{:032X}", 0x000F_1EE7_0000_u64 + n as u64)
}

fn user(n: usize) -> String {
    dev_token(DEV_ICN, Some(&format!("fleet.user.{n}@example.com")))
}

async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.map_or(0, |r| r.status().as_u16())
}

/// An admin write; a widening one forced past the rollout guard with a reason, as an engineer
/// would (these tests are of the fleet's stages, not of the guard: `rollout_guard.rs` is).
async fn admin_post(server: &Server, path: &str, form: &str) -> u16 {
    let widening = ["/boolean", "/percentage_of_actors", "/percentage_of_time"]
        .iter()
        .any(|gate| path.ends_with(gate));
    let path = if widening {
        format!("{path}?force=true&reason=fleet-test")
    } else {
        path.to_owned()
    };
    status_of(
        client()
            .post(format!("http://{}{path}", server.admin_addr))
            .bearer_auth(ADMIN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned()),
    )
    .await
}

async fn report(server: &Server) -> Value {
    let response = client()
        .get(format!("http://{}/admin/rollout", server.admin_addr))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn toggle<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["toggles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["toggle"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report}"))
}

fn current_stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    toggle(report, name)["stages"].as_array().unwrap().last().unwrap()
}

/// Three replicas of the binary on one toggle store, refreshing and flushing every second.
async fn replicas(toggles: &str, extra: &[(&str, &str)]) -> Vec<Server> {
    let mut replicas = Vec::new();
    for n in 1..=3 {
        let instance = format!("replica-{n}");
        let mut env = vec![
            ("AVS_ENV", "test"),
            ("AVS_TOGGLES", toggles),
            ("AVS_TOGGLES_REFRESH_SECS", "1"),
            ("AVS_ROLLOUT_FLUSH_SECS", "1"),
            ("AVS_ADMIN_TOKEN", ADMIN),
            ("AVS_INSTANCE", &instance),
        ];
        env.extend_from_slice(extra);
        replicas.push(serve(&env).await);
    }
    replicas
}

/// A rollout over a PostgreSQL toggle store of its own database, as start-up builds it (the
/// fleet's tables made first), keeping `max_stages`.
async fn fleet_rollout(
    pg: &Postgres,
    database: &str,
    max_stages: usize,
) -> (Arc<avs_api::toggles::Toggles>, avs_api::rollout::Rollout) {
    use avs_api::rollout::{Rollout, RolloutSettings, fleet::Store};
    use avs_api::toggles::{SourceConfig, Toggles};
    let url = pg.database(database, None).await;
    let source = SourceConfig::Postgres {
        url: url.clone(),
        read_only: false,
    };
    let toggles = Toggles::start(&source, Duration::from_secs(3600)).await.unwrap();
    let store = Store::new(&url).unwrap();
    store.seed().await.unwrap();
    let settings = RolloutSettings {
        max_stages,
        // The timer's period at its floor, so a test can see it run.
        flush: Duration::from_secs(1),
        ..RolloutSettings::default()
    };
    let rollout = Rollout::new(toggles.clone(), settings, Some(store));
    (toggles, rollout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_nginx_act_as_one() {
    let Some(pg) = Postgres::start().await else { return };
    let upstream = FakeUpstream::start().await;
    let stampede = sid(0);
    upstream.script(
        &format!("/avs/{stampede}"),
        Scripted::json(&json!({"sid": stampede, "data": {"patientInfo": {"icn": DEV_ICN}}}))
            .delayed(Duration::from_millis(500)),
    );
    for n in 1..=100 {
        upstream.script(
            &format!("/avs/{}", sid(n)),
            Scripted::json(&json!({"sid": sid(n), "data": {"patientInfo": {"icn": DEV_ICN}}})),
        );
    }
    // 5 of the 20 appointments the links users ask about have a summary of theirs.
    for n in 0..20 {
        let rows = if n < 5 {
            json!([{"sid": sid(200 + n), "icn": DEV_ICN}])
        } else {
            json!([])
        };
        upstream.script(
            &format!("/avs-by-appointment/500/{}", 7000 + n),
            Scripted::json(&rows),
        );
    }
    let url = upstream.url();
    let mut replicas = replicas(
        &pg.url,
        &[("AVS_UPSTREAM_URL", &url), ("AVS_PROXY_URL", "direct")],
    )
    .await;
    let [r1, r2, r3] = &mut replicas[..] else {
        unreachable!()
    };
    for feature in ["avs_enabled", "va_online_scheduling_after_visit_summary"] {
        assert_eq!(
            admin_post(r1, &format!("/flipper/api/features/{feature}/boolean"), "").await,
            200
        );
    }
    let Some(nginx) = deploy_nginx(&[r1, r2, r3]) else {
        return;
    };
    let nginx = Arc::new(nginx);
    // Every replica follows the store within its refresh period.
    let on_everywhere = Instant::now() + Duration::from_secs(5);
    for server in [&*r1, &*r2, &*r3] {
        loop {
            let status = status_of(
                client()
                    .get(format!(
                        "http://{}/avs/v0/avs/search?stationNo=1&appointmentIen=1",
                        server.addr
                    ))
                    .bearer_auth(user(0)),
            )
            .await;
            if status == 200 {
                break;
            }
            assert!(
                Instant::now() < on_everywhere,
                "avs_enabled not in force on {}",
                server.addr
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // 300 concurrent cold requests for one sid, from 300 users: one upstream request.
    let tokens: Arc<Vec<String>> = Arc::new((0..300).map(user).collect());
    let mut cold = JoinSet::new();
    for n in 0..300 {
        let (nginx, tokens, stampede) = (nginx.clone(), tokens.clone(), stampede.clone());
        cold.spawn(async move {
            status_of(
                client()
                    .get(nginx.url(&format!("/avs/v0/avs/{stampede}")))
                    .bearer_auth(&tokens[n]),
            )
            .await
        });
    }
    while let Some(status) = cold.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let calls = |path: String| upstream.seen().iter().filter(|(p, _)| *p == path).count();
    assert_eq!(
        calls(format!("/avs/{stampede}")),
        1,
        "one upstream call for the stampede; nginx said: {}",
        nginx.errors()
    );

    // 100 distinct sids, 5 times each: 100 upstream requests.
    for _round in 0..5 {
        let mut batch = JoinSet::new();
        for n in 1..=100 {
            let (nginx, token) = (nginx.clone(), tokens[n].clone());
            batch.spawn(async move {
                status_of(
                    client()
                        .get(nginx.url(&format!("/avs/v0/avs/{}", sid(n))))
                        .bearer_auth(token),
                )
                .await
            });
        }
        while let Some(status) = batch.join_next().await {
            assert_eq!(status.unwrap(), 200);
        }
    }
    let summary_calls: usize = (1..=100).map(|n| calls(format!("/avs/{}", sid(n)))).sum();
    assert_eq!(
        summary_calls, 100,
        "one upstream call per summary across the fleet"
    );

    // A gate change through one replica's admin API: in force everywhere, one stage boundary.
    assert_eq!(
        admin_post(
            r2,
            "/flipper/api/features/avs_enabled/actors",
            "flipper_id=tester@example.com"
        )
        .await,
        200
    );
    // In force on every replica within its refresh period...
    let deadline = Instant::now() + Duration::from_secs(3);
    for server in [&*r1, &*r2, &*r3] {
        loop {
            let feature = client()
                .get(format!(
                    "http://{}/flipper/api/features/avs_enabled",
                    server.admin_addr
                ))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap();
            let feature: Value = serde_json::from_slice(&feature.bytes().await.unwrap()).unwrap();
            if feature["gates"][1]["value"] == json!(["tester@example.com"]) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the change is not in force on {}",
                server.addr
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // ...and every replica's report shows the new stage from one boundary.
    let deadline = Instant::now() + Duration::from_secs(5);
    let boundary = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reports = [report(r1).await, report(r2).await, report(r3).await];
        let stages: Vec<&Value> = reports.iter().map(|r| current_stage(r, "avs_enabled")).collect();
        let settled = stages
            .iter()
            .all(|s| s["setting"] == "fully on (boolean), 1 named actor(s)")
            && stages
                .iter()
                .all(|s| s["startedAt"] == stages[0]["startedAt"] && s["stage"] == stages[0]["stage"]);
        if settled {
            break stages[0]["startedAt"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "replicas disagree on the new stage: {stages:#?}"
        );
    };
    assert!(boundary.is_string());

    // 50 users, each on all three replicas: the fleet counts 50, and the rows sum to the totals.
    let mut spread = JoinSet::new();
    for n in 1000..1050 {
        for server in [&*r1, &*r2, &*r3] {
            let (addr, token) = (server.addr.clone(), user(n));
            spread.spawn(async move {
                status_of(
                    client()
                        .get(format!("http://{addr}/avs/v0/avs/{}", sid(1)))
                        .bearer_auth(token),
                )
                .await
            });
        }
    }
    while let Some(status) = spread.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }

    // The links share: 20 users each ask about one appointment; 5 of them have a summary.
    for n in 0..20 {
        let body = json!({"appointments": [{"stationNo": "500", "appointmentIen": (7000 + n).to_string()}]});
        let response = client()
            .post(nginx.url("/avs/v0/avs/links"))
            .bearer_auth(user(2000 + n))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Every replica has flushed its figures: awaited, not slept on.
    within(Duration::from_secs(10), async || {
        current_stage(&report(r3).await, "avs_enabled")["uniqueActors"]["total"] == 70
    })
    .await;
    let fleet = report(r3).await;
    assert_eq!(fleet["scope"], "fleet");
    let stage = current_stage(&fleet, "avs_enabled");
    assert_eq!(
        stage["uniqueActors"]["total"], 70,
        "50 spread users and 20 links users, once each: {stage}"
    );
    let instances = stage["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "{stage}");
    let summed: HashMap<&str, u64> = ["requests", "allowed", "denied"]
        .into_iter()
        .map(|field| (field, instances.iter().map(|i| i[field].as_u64().unwrap()).sum()))
        .collect();
    for (field, sum) in summed {
        assert_eq!(
            stage[field].as_u64().unwrap(),
            sum,
            "{field}: instance rows sum to the total"
        );
    }
    for instance in instances {
        assert!(
            instance["uniqueActors"]["total"].as_u64().unwrap() >= 50,
            "each replica saw the 50: {instance}"
        );
    }
    assert_eq!(stage["links"]["asked"], 20, "{stage}");
    assert_eq!(stage["links"]["shown"], 5, "{stage}");
    assert_eq!(stage["links"]["share"], 0.25);
    let links = current_stage(&fleet, "va_online_scheduling_after_visit_summary");
    assert!(
        links["upstream"]["calls"].as_u64().unwrap() >= 20,
        "the links toggle's stage shows its lookups' upstream calls: {links}"
    );
    let md = client()
        .get(format!("http://{}/admin/rollout.md", r1.admin_addr))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text_lossy()
        .await;
    assert!(md.contains("the fleet"), "{md}");
    assert!(md.contains("**Number of unique users**: 70"), "{md}");
    assert!(md.contains("shown to 5 at least once (25.0 %)"), "{md}");
    assert!(md.contains("**Ready to remove?** No"), "{md}");

    // One replica killed under load: nothing fails.
    let stop_at = Instant::now() + Duration::from_secs(3);
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut load = JoinSet::new();
    for worker in 0..8 {
        let (nginx, tokens, answered) = (nginx.clone(), tokens.clone(), answered.clone());
        load.spawn(async move {
            let mut failed = Vec::new();
            let mut n = worker;
            while Instant::now() < stop_at {
                let status = status_of(
                    client()
                        .get(nginx.url(&format!("/avs/v0/avs/{}", sid(1 + n % 100))))
                        .bearer_auth(&tokens[n % 300]),
                )
                .await;
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if status != 200 {
                    failed.push(status);
                }
                n += 8;
            }
            failed
        });
    }
    // Killed once the load is well under way on every replica.
    within(Duration::from_secs(5), async || {
        answered.load(std::sync::atomic::Ordering::Relaxed) >= 200
    })
    .await;
    r2.child.start_kill().unwrap();
    let mut failed = Vec::new();
    while let Some(worker) = load.join_next().await {
        failed.extend(worker.unwrap());
    }
    assert!(
        failed.is_empty(),
        "requests failed when a replica died: {failed:?}"
    );
}

trait TextLossy {
    async fn text_lossy(self) -> String;
}

impl TextLossy for reqwest::Response {
    async fn text_lossy(self) -> String {
        String::from_utf8_lossy(&self.bytes().await.unwrap_or_default()).into_owned()
    }
}

#[tokio::test]
async fn a_thousand_gate_changes_leave_memory_and_tables_bounded() {
    use avs_api::telemetry::Notes;
    use avs_api::toggles::{Change, Percentage};
    let Some(pg) = Postgres::start().await else { return };
    let (toggles, rollout) = fleet_rollout(&pg, "bounded", 50).await;
    for change in 0..1_000 {
        let pct = Percentage::Integer(1 + change % 99);
        toggles
            .apply("avs_enabled", Change::PercentageOfActors(pct))
            .await
            .unwrap();
        let notes = Notes {
            actor: Some(change as u64),
            gates: [("avs_enabled", true)].into_iter().collect(),
            ..Notes::default()
        };
        rollout.record(&notes, 200, Duration::from_millis(3));
        if change % 100 == 99 {
            rollout.flush().await.unwrap();
            rollout.retain().await.unwrap();
        }
    }
    assert!(
        rollout.stages_held() <= 50,
        "{} stages in memory",
        rollout.stages_held()
    );
    let (stages, figures) = rollout.fleet().unwrap().rows().await.unwrap();
    assert!(
        (40..=50).contains(&stages) && figures <= 50,
        "{stages} stage rows, {figures} figure rows"
    );
    let report = serde_json::to_value(rollout.report().await).unwrap();
    assert_eq!(report["scope"], "fleet");
    let stages = toggle(&report, "avs_enabled")["stages"].as_array().unwrap();
    assert!(stages.len() <= 50, "{} stages reported", stages.len());
    let last = stages.last().unwrap();
    assert_eq!(last["setting"], "10 % of actors", "{last}"); // change 999: 1 + 999 % 99
    assert_eq!(
        last["requests"], 1,
        "the last stage's one request was flushed: {last}"
    );
}

#[tokio::test]
async fn a_stages_gates_are_keyed_alike_from_flippers_rows_and_from_a_loaded_feature() {
    use avs_api::rollout::{fleet::GATES_NOW, gates_key};
    use avs_api::toggles::{Change, Percentage, SourceConfig, Toggles};
    let Some(pg) = Postgres::start().await else { return };
    let source = SourceConfig::Postgres {
        url: pg.url.clone(),
        read_only: false,
    };
    let toggles = Toggles::start(&source, Duration::from_secs(3600)).await.unwrap();
    let client = pg.client().await.unwrap();
    let changes = [
        Change::AddFeature,
        Change::EnableBoolean,
        Change::AddActor("zeta@example.com".to_owned()),
        Change::AddActor("Älpha@example.com".to_owned()),
        Change::AddActor("alpha@example.com".to_owned()),
        Change::PercentageOfActors(Percentage::Decimal(12.5)),
        Change::PercentageOfTime(Percentage::Integer(3)),
        Change::DisableBoolean,
        Change::PercentageOfActors(Percentage::Integer(100)),
    ];
    for change in changes {
        toggles.apply("avs_enabled", change.clone()).await.unwrap();
        let feature = toggles.snapshot().features["avs_enabled"].clone();
        let row = client
            .query_one(
                &format!("SELECT (gates)::jsonb = $2::text::jsonb, gates::text FROM ({GATES_NOW}) g"),
                &[&"avs_enabled", &gates_key(&feature)],
            )
            .await
            .unwrap();
        let (same, sql): (bool, String) = (row.get(0), row.get(1));
        assert!(
            same,
            "after {change:?}: SQL {sql} vs Rust {}",
            gates_key(&feature)
        );
    }
}

/// A toggle's stages as a report lists them: (stage, setting, startedAt).
fn stage_list(report: &Value, name: &str) -> Vec<(u64, String, String)> {
    toggle(report, name)["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_u64().unwrap(),
                s["setting"].as_str().unwrap().to_owned(),
                s["startedAt"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits until every replica's report lists the same stages for `name`, ending with `last`;
/// returns how long that took.
async fn settled(replicas: &[Server], name: &str, last: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let mut lists = Vec::new();
        for replica in replicas {
            lists.push(stage_list(&report(replica).await, name));
        }
        let agreed = lists.iter().all(|l| l == &lists[0]);
        if agreed && lists[0].last().is_some_and(|(_, setting, _)| setting == last) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "not settled within {limit:?}: {:?}",
            lists
                .iter()
                .map(|l| (l.len(), l.last().cloned()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_list_one_stage_history_after_a_thousand_rapid_changes() {
    let Some(pg) = Postgres::start().await else { return };
    let url = pg.database("one_history", None).await;
    let replicas = replicas(&url, &[]).await;
    let feature = "/flipper/api/features/avs_enabled";
    assert_eq!(
        admin_post(&replicas[0], &format!("{feature}/boolean"), "").await,
        200
    );
    // 1,000 changes through one replica's admin API, 8 at a time, while every replica serves.
    let writer = Arc::new(replicas[0].admin_addr.clone());
    let eight = Arc::new(tokio::sync::Semaphore::new(8));
    let mut changes = JoinSet::new();
    for n in 0..1000 {
        let (writer, eight) = (writer.clone(), eight.clone());
        changes.spawn(async move {
            let _turn = eight.acquire().await.unwrap();
            status_of(
                client()
                    .post(format!("http://{writer}{feature}/percentage_of_actors"))
                    .bearer_auth(ADMIN)
                    .header("content-type", "application/x-www-form-urlencoded")
                    // Every value its own, so every change is a new setting.
                    .body(format!("percentage={}", f64::from(n + 1) / 10.0)),
            )
            .await
        });
    }
    while let Some(status) = changes.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    // The last change written decides the setting; read it back from the store.
    let last: Value = serde_json::from_slice(
        &client()
            .get(format!("http://{}{feature}", replicas[0].admin_addr))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let pct = last["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "percentage_of_actors")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let expected = format!("fully on (boolean), {pct} % of actors");
    let took = settled(&replicas, "avs_enabled", &expected, Duration::from_secs(4)).await;
    eprintln!("1,000 admin changes: the three replicas agreed {took:?} after the last");
    let listed = stage_list(&report(&replicas[1]).await, "avs_enabled");
    assert_eq!(listed.len(), 50, "the last AVS_ROLLOUT_MAX_STAGES stages");

    // Every stage is one change: numbered without gaps, each differing from the one before.
    let rows = {
        let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        db.query(
            "SELECT seq, gates::jsonb = lag(gates::jsonb) OVER (ORDER BY seq) FROM avs_rollout_stages
             WHERE toggle = 'avs_enabled' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
    };
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(
        rows.iter().all(|r| r.get::<_, Option<bool>>(1) != Some(true)),
        "a stage repeated"
    );
    assert_eq!(
        *seqs.last().unwrap(),
        1001,
        "the enable and 1,000 percentage changes, once each"
    );

    // A change Flipper itself writes, from another process: every replica lists it too.
    if crate::flipper::flipper_available() {
        crate::flipper::flipper(
            &url,
            "apply",
            &json!([{"feature": "avs_enabled", "op": "add_actor", "value": "tester@example.com"}]),
        );
        let expected = format!("fully on (boolean), 1 named actor(s), {pct} % of actors");
        let took = settled(&replicas, "avs_enabled", &expected, Duration::from_secs(4)).await;
        eprintln!("a change written by Flipper: the three replicas agreed {took:?} after it");
    }
}

#[tokio::test]
async fn reading_the_report_deletes_nothing_and_retention_runs_on_its_timer() {
    use avs_api::toggles::{Change, Percentage};
    let Some(pg) = Postgres::start().await else { return };
    let (toggles, rollout) = fleet_rollout(&pg, "retention_timer", 5).await;
    for pct in 1..=20 {
        toggles
            .apply(
                "avs_enabled",
                Change::PercentageOfActors(Percentage::Integer(pct)),
            )
            .await
            .unwrap();
    }
    let (stages, _) = rollout.fleet().unwrap().rows().await.unwrap();
    assert_eq!(stages, 20, "each change recorded as it committed");
    for _ in 0..3 {
        let report = serde_json::to_value(rollout.report().await).unwrap();
        assert_eq!(
            toggle(&report, "avs_enabled")["stages"].as_array().unwrap().len(),
            5
        );
    }
    let (stages, _) = rollout.fleet().unwrap().rows().await.unwrap();
    assert_eq!(stages, 20, "reading the report is a read: no retention DELETE");
    // The flush timer, as the service starts it, applies retention on its own.
    let rollout = Arc::new(rollout);
    rollout.keep_flushing();
    let fleet = rollout.fleet().unwrap();
    within(Duration::from_secs(10), async || {
        fleet.rows().await.unwrap().0 == 5
    })
    .await;
    let (stages, _) = fleet.rows().await.unwrap();
    assert_eq!(stages, 5, "the timer's retention keeps AVS_ROLLOUT_MAX_STAGES");
}
