//! The fleet: PostgreSQL, three replicas of the real binary, nginx with `deploy/nginx/nginx.conf`
//! and a stub upstream, all on loopback. One upstream call per summary across the fleet, a
//! replica killed under load, a gate change in force everywhere at one stage boundary, unique
//! users counted once across replicas, the links share, and bounded stages.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::*;

const ADMIN: &str = "an-admin-token-of-at-least-32-characters";

/// Debian's nginx running the deploy configuration in front of the replicas; stopped on drop.
struct Nginx {
    process: std::process::Child,
    addr: String,
    _dir: TempDir,
}

impl Nginx {
    fn start(replicas: &[&Server]) -> Option<Nginx> {
        let Some(program) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nginx is required under CI (.ci/run installs it)"
            );
            eprintln!("SKIPPED: install Debian's nginx to run the fleet test");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let deploy = std::fs::read_to_string(repo("deploy/nginx/nginx.conf")).unwrap();
        // The deploy file as it is, but for its replicas and its listen address.
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
        let dir = temp_dir();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let process = std::process::Command::new(program)
            .arg("-p")
            .arg(dir.path())
            .args(["-c", "nginx.conf", "-e", "logs/error.log", "-g", "daemon off;"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nginx {
            process,
            addr,
            _dir: dir,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What nginx logged (warnings and up): failed replicas, retries.
    fn errors(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM, so the master takes its workers down with it (SIGKILL would orphan them,
    /// listening on), then SIGKILL if it lingers.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.process.try_wait().is_ok_and(|s| s.is_some()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
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

async fn admin_post(server: &Server, path: &str, form: &str) -> u16 {
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
    let mut replicas = Vec::new();
    for n in 1..=3 {
        let instance = format!("replica-{n}");
        replicas.push(
            serve(&[
                ("AVS_ENV", "test"),
                ("AVS_UPSTREAM_URL", &url),
                ("AVS_PROXY_URL", "direct"),
                ("AVS_TOGGLES", &pg.url),
                ("AVS_TOGGLES_REFRESH_SECS", "1"),
                ("AVS_ROLLOUT_FLUSH_SECS", "1"),
                ("AVS_ADMIN_TOKEN", ADMIN),
                ("AVS_INSTANCE", &instance),
            ])
            .await,
        );
    }
    let [r1, r2, r3] = &mut replicas[..] else {
        unreachable!()
    };
    for feature in ["avs_enabled", "va_online_scheduling_after_visit_summary"] {
        assert_eq!(
            admin_post(r1, &format!("/flipper/api/features/{feature}/boolean"), "").await,
            200
        );
    }
    let Some(nginx) = Nginx::start(&[r1, r2, r3]) else {
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
    tokio::time::sleep(Duration::from_millis(1500)).await; // every replica has flushed
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
    let mut load = JoinSet::new();
    for worker in 0..8 {
        let (nginx, tokens) = (nginx.clone(), tokens.clone());
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
                if status != 200 {
                    failed.push(status);
                }
                n += 8;
            }
            failed
        });
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
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
async fn ten_thousand_gate_changes_leave_memory_and_tables_bounded() {
    use avs_api::rollout::{Rollout, RolloutSettings, fleet::Store};
    use avs_api::telemetry::Notes;
    use avs_api::toggles::{Change, Percentage, Snapshot, Toggles};
    let Some(pg) = Postgres::start().await else { return };
    let toggles = Toggles::fixed(Snapshot::default());
    let settings = RolloutSettings {
        max_stages: 50,
        ..RolloutSettings::default()
    };
    let rollout = Rollout::new(toggles.clone(), settings, Some(Store::new(&pg.url).unwrap()));
    for change in 0..10_000 {
        let pct = Percentage::Integer(1 + change % 99);
        toggles
            .apply("avs_enabled", Change::PercentageOfActors(pct))
            .await
            .unwrap();
        let notes = Notes {
            actor: Some(change as u64),
            gates: vec![("avs_enabled", true)],
            ..Notes::default()
        };
        rollout.record(&notes, 200, Duration::from_millis(3));
        if change % 500 == 499 {
            rollout.flush().await.unwrap();
        }
    }
    assert!(
        rollout.stages_held() <= 50,
        "{} stages in memory",
        rollout.stages_held()
    );
    let (stages, figures) = rollout.fleet().unwrap().rows().await.unwrap();
    assert!(
        stages <= 50 && figures <= 50,
        "{stages} stage rows, {figures} figure rows"
    );
    let report = serde_json::to_value(rollout.report().await).unwrap();
    let kept = toggle(&report, "avs_enabled")["stages"].as_array().unwrap().len();
    assert!(kept <= 50, "{kept} stages reported");
}
