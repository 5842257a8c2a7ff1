//! The real executable: configuration refusals, check-config, the embedded default, and the
//! environment's proxy variables being ignored.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A production configuration that passes, to take one setting away at a time.
fn production(toggles: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("AVS_ENV", "production".into()),
        ("AVS_IDENTITY", "claims".into()),
        ("AVS_UPSTREAM_URL", "https://clinical.example/".into()),
        ("AVS_PROXY_URL", "http://proxy.example:3128".into()),
        (
            "AVS_JWKS_FILE",
            repo("tests/keys/jwks.json").display().to_string(),
        ),
        ("AVS_TOGGLES", format!("file:{}", toggles.display())),
        ("AVS_UPSTREAM_TOKEN", "upstream-secret-value".into()),
        ("AVS_OH_UPSTREAM_URL", "https://uhd.example/".into()),
        ("AVS_OH_LOGIN_URL", "https://uhd.example/login".into()),
        ("AVS_OH_APP_TOKEN", "uhd-app-secret-value".into()),
    ]
}

fn without<'a>(vars: &'a [(&'static str, String)], name: &str) -> Vec<(&'a str, &'a str)> {
    vars.iter()
        .filter(|(k, _)| *k != name)
        .map(|(k, v)| (*k, v.as_str()))
        .collect()
}

fn with<'a>(vars: &'a [(&'static str, String)], name: &'a str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut v = without(vars, name);
    v.push((name, value));
    v
}

#[tokio::test]
async fn production_refusals_exit_2_naming_the_variable() {
    let dir = temp_dir();
    let toggles = dir.path().join("toggles.toml");
    std::fs::write(&toggles, TOGGLES_ON).unwrap();
    let ok = production(&toggles);
    let (code, stdout, _) = run(&["check-config"], &without(&ok, "")).await;
    assert_eq!(code, 0, "the base production configuration must pass");
    assert!(
        !stdout.contains("upstream-secret-value")
            && !stdout.contains("uhd-app-secret-value")
            && stdout.contains("[redacted]"),
        "{stdout}"
    );
    // The rollout plan and its source, as the guard will judge by it.
    assert!(
        stdout.contains("# rollout plan: the release plan, built in")
            && stdout.contains("Phase I actors for 86400s, Stage A 10 % for 1209600s")
            && stdout
                .contains("guards: server errors ≤ 0.25 %, view failures ≤ 1 %, views over 750 ms ≤ 5 %"),
        "{stdout}"
    );
    // An automatic rollback that could not write is refused, not left to fail at a hold.
    let mut read_only: Vec<(&str, &str)> = with(&ok, "AVS_TOGGLES", "postgres://avs@127.0.0.1:1/avs");
    read_only.extend([
        ("AVS_TOGGLES_READ_ONLY", "true"),
        ("AVS_ROLLOUT_AUTO_ROLLBACK", "true"),
    ]);
    let (code, _, stderr) = run(&["check-config"], &read_only).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("AVS_ROLLOUT_AUTO_ROLLBACK: ")),
        "{stderr}"
    );

    let dev_pem = repo("fixtures/dev-keys/dev-rs256.pub.pem").display().to_string();
    let dev_jwks = repo("fixtures/dev-keys/dev-jwks.json").display().to_string();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (without(&ok, "AVS_PROXY_URL"), "AVS_PROXY_URL"),
        (without(&ok, "AVS_UPSTREAM_URL"), "AVS_UPSTREAM_URL"),
        (
            with(&ok, "AVS_UPSTREAM_URL", "http://clinical.example/"),
            "AVS_UPSTREAM_URL",
        ),
        (without(&ok, "AVS_JWKS_FILE"), "AVS_JWT_PUBLIC_KEY_FILE"),
        (
            with(&ok, "AVS_JWT_PUBLIC_KEY_FILE", &dev_pem)
                .into_iter()
                .filter(|(k, _)| *k != "AVS_JWKS_FILE")
                .collect(),
            "AVS_JWT_PUBLIC_KEY_FILE",
        ),
        (with(&ok, "AVS_JWKS_FILE", &dev_jwks), "AVS_JWKS_FILE"),
        (without(&ok, "AVS_TOGGLES"), "AVS_TOGGLES"),
        (without(&ok, "AVS_OH_UPSTREAM_URL"), "AVS_OH_UPSTREAM_URL"),
        (
            with(&ok, "AVS_OH_UPSTREAM_URL", "http://uhd.example/"),
            "AVS_OH_UPSTREAM_URL",
        ),
        (without(&ok, "AVS_OH_LOGIN_URL"), "AVS_OH_LOGIN_URL"),
        (without(&ok, "AVS_OH_APP_TOKEN"), "AVS_OH_APP_TOKEN"),
        (
            with(&ok, "AVS_TOGGLES", "file:fixtures/toggles.toml"),
            "AVS_TOGGLES",
        ),
    ];
    for (env, variable) in cases {
        for args in [&["check-config"][..], &["serve"][..]] {
            let (code, stdout, stderr) = run(args, &env).await;
            assert_eq!(code, 2, "{args:?} without a valid {variable}: {stdout}{stderr}");
            assert!(
                stderr.lines().any(|l| l.starts_with(&format!("{variable}: "))),
                "{variable} not named: {stderr}"
            );
        }
    }
    let (code, _, stderr) = run(&["dev-token", "--icn", DEV_ICN], &without(&ok, "")).await;
    assert_eq!(code, 2, "dev-token is refused in production: {stderr}");
}

#[tokio::test]
async fn bad_values_exit_2_with_one_line_each_and_config_file_layers_under_env() {
    let (code, _, stderr) = run(
        &["check-config"],
        &[("AVS_LISTEN", "nowhere"), ("AVS_UPSTREAM_TIMEOUT_MS", "x")],
    )
    .await;
    assert_eq!(code, 2);
    assert_eq!(stderr.lines().count(), 2, "{stderr}");

    let dir = temp_dir();
    let file = dir.path().join("avs.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:8181\"\nupstream_timeout_ms = 3000\n").unwrap();
    let file = file.display().to_string();
    let (code, stdout, _) = run(
        &["--config", &file, "check-config"],
        &[("AVS_LISTEN", "127.0.0.1:8282")],
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains("AVS_LISTEN = 127.0.0.1:8282"),
        "env overrides the file: {stdout}"
    );
    assert!(
        stdout.contains("AVS_UPSTREAM_TIMEOUT_MS = 3000"),
        "the file applies: {stdout}"
    );
    std::fs::write(dir.path().join("bad.toml"), "no_such_setting = 1\n").unwrap();
    let bad = dir.path().join("bad.toml").display().to_string();
    assert_eq!(run(&["--config", &bad, "check-config"], &[]).await.0, 2);
}

/// `GET path` on a running binary; the answer is held to openapi.yaml like every other.
async fn get_json(server: &Server, path: &str, token: &str) -> (u16, Value) {
    let response = client()
        .get(format!("http://{}{path}", server.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let path_only = path.split('?').next().unwrap();
    Contract::get().check(&axum::http::Method::GET, path_only, status, &body);
    (status.as_u16(), body)
}

#[tokio::test]
async fn the_embedded_default_serves_the_full_fixture_summary_with_a_dev_token() {
    // The embedded default as `cargo run` has it: SiS tokens, the user from the stand-in.
    let server = serve(&[("AVS_IDENTITY", "sis")]).await;
    // The README's steps: mint a token with the binary, then ask for the full fixture summary.
    let (code, token, _) = run(&["dev-token", "--icn", DEV_ICN], &[]).await;
    assert_eq!(code, 0);
    let (status, body) = get_json(&server, &format!("/avs/v0/avs/{FULL_SID}"), token.trim()).await;
    assert_eq!(status, 200);
    assert_eq!(body, read_json("tests/peer/frontend-fixture.json"));
    let search = "/avs/v0/avs/search?stationNo=500&appointmentIen=9876543";
    let (status, body) = get_json(&server, search, token.trim()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["path"],
        format!("/my-health/medical-records/summaries-and-notes/visit-summary/{FULL_SID}")
    );
}

/// The README's SiS flow through the binary: the cookie as the page sends it, a service token as
/// the appointments service sends it, the old key of a rotation, an expired token; and no log
/// line holds a token, an e-mail, an ICN or an account uuid.
#[tokio::test]
async fn the_embedded_default_speaks_sis_by_cookie_and_service_token_and_logs_no_identity() {
    let mut server = serve(&[("AVS_IDENTITY", "sis"), ("RUST_LOG", "debug")]).await;
    let url = format!("http://{}/avs/v0/avs/{FULL_SID}", server.addr);
    let mint = |args: &'static [&'static str]| async move {
        let (code, token, stderr) = run(args, &[]).await;
        assert_eq!(code, 0, "{stderr}");
        token.trim().to_owned()
    };
    let user = mint(&["dev-token", "--icn", DEV_ICN]).await;
    let by_cookie = client()
        .get(&url)
        .header("cookie", format!("vagov_access_token={user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);
    let old = mint(&["dev-token", "--icn", DEV_ICN, "--old-key"]).await;
    assert_eq!(
        get_json(&server, &format!("/avs/v0/avs/{FULL_SID}"), &old)
            .await
            .0,
        200
    );
    let other = mint(&["dev-token", "--icn", OTHER_ICN]).await;
    assert_eq!(
        get_json(&server, &format!("/avs/v0/avs/{FULL_SID}"), &other)
            .await
            .0,
        403
    );
    let service = mint(&[
        "dev-token",
        "--icn",
        DEV_ICN,
        "--service",
        "--scope",
        "/avs/v0/avs/links",
    ])
    .await;
    let links = client()
        .post(format!("http://{}/avs/v0/avs/links", server.addr))
        .bearer_auth(&service)
        .header("content-type", "application/json")
        .body(r#"{"appointments":[{"stationNo":"500","appointmentIen":"9876543"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(links.status(), 200);
    assert_eq!(
        get_json(&server, &format!("/avs/v0/avs/{FULL_SID}"), &service)
            .await
            .0,
        403
    );
    // Signed with the development key (the stand-in's current one), a minute past its exp.
    let dev_patient = avs_api::identity::fixture_users()[0].uuid.clone();
    let mut claims = sis_user_claims(&dev_patient, "expired-session");
    claims["exp"] = serde_json::json!(now() - 60);
    let expired = sis_token(SisKey::Old, &claims);
    let answer = client().get(&url).bearer_auth(&expired).send().await.unwrap();
    assert_eq!(answer.status(), 403);
    assert_eq!(
        answer.text().await.unwrap(),
        r#"{"errors":"Access token has expired"}"#
    );

    // The whole log, once the process has drained and exited.
    assert_eq!(server.stop().await.code(), Some(0));
    let logs = server.logs.lock().unwrap().join("\n");
    let users = avs_api::identity::fixture_users();
    let mut secrets: Vec<String> = vec![user, old, other, service, expired];
    for u in &users {
        secrets.push(u.uuid.clone());
        secrets.extend(u.email.iter().flat_map(|e| [e.clone(), e.to_lowercase()]));
        secrets.extend(u.icn.iter().flat_map(|icn| [icn.clone(), icn[..10].to_owned()]));
    }
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a log line holds {secret:?}");
    }
    assert!(logs.contains("\"actor\""), "the actor is logged, as its hash");
}

#[tokio::test]
async fn proxy_variables_in_the_environment_change_nothing() {
    let env_proxy = RecordingProxy::start().await;
    let configured = RecordingProxy::start().await;
    let upstream = FakeUpstream::start().await;
    upstream.summary(&fixture("full"));
    let url = upstream.url();
    let env_url = env_proxy.url();
    let configured_url = configured.url();
    let env_proxies = [
        ("HTTP_PROXY", env_url.as_str()),
        ("http_proxy", env_url.as_str()),
        ("HTTPS_PROXY", env_url.as_str()),
        ("ALL_PROXY", env_url.as_str()),
        ("AVS_ENV", "test"),
        ("AVS_UPSTREAM_URL", url.as_str()),
    ];
    let token = dev_token(DEV_ICN, None);

    for (proxy_setting, expect_configured) in [("direct", 0), (configured_url.as_str(), 1)] {
        let mut env = env_proxies.to_vec();
        env.push(("AVS_PROXY_URL", proxy_setting));
        let server = serve(&env).await;
        let (status, _) = get_json(&server, &format!("/avs/v0/avs/{FULL_SID}"), &token).await;
        assert_eq!(status, 200, "AVS_PROXY_URL={proxy_setting}");
        assert_eq!(
            configured.relayed().len(),
            expect_configured,
            "AVS_PROXY_URL={proxy_setting}"
        );
    }
    assert!(
        env_proxy.relayed().is_empty(),
        "the environment's proxy was used: {:?}",
        env_proxy.relayed()
    );
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let upstream = FakeUpstream::start().await;
    upstream.script(
        &format!("/avs/{FULL_SID}"),
        Scripted::json(&fixture("full")).delayed(Duration::from_millis(1500)),
    );
    let url = upstream.url();
    let mut server = serve(&[
        ("AVS_ENV", "test"),
        ("AVS_UPSTREAM_URL", &url),
        ("AVS_PROXY_URL", "direct"),
    ])
    .await;
    let token = dev_token(DEV_ICN, None);
    let addr = server.addr.clone();
    let in_flight = tokio::spawn(async move {
        let response = client()
            .get(format!("http://{addr}/avs/v0/avs/{FULL_SID}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    });
    within(Duration::from_secs(5), async || upstream.hits() == 1).await; // in flight now
    terminate(&server);
    assert_eq!(in_flight.await.unwrap(), 200, "the slow request completed");
    let status = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "exit 0 after SIGTERM");
}

#[tokio::test]
async fn the_admin_listener_serves_metrics_and_the_rollout_report() {
    let token = "an-admin-token-of-at-least-32-characters";
    let server = serve(&[("AVS_ADMIN_TOKEN", token)]).await;
    let dev = dev_token(DEV_ICN, None);
    let (status, _) = get_json(&server, &format!("/avs/v0/avs/{FULL_SID}"), &dev).await;
    assert_eq!(status, 200);
    // Another patient's summary is 403 `unauthorized` (VA.gov's page shows its no-access view
    // from it; a 401 would send the veteran to sign in again); no token is still 401.
    let (status, body) = get_json(&server, "/avs/v0/avs/F1B2C3D4E5F60718293A4B5C6D7E8F90", &dev).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0]["status"], "unauthorized");
    assert_eq!(body["errors"][0]["detail"], "User may not view this AVS.");
    let anonymous = client()
        .get(format!("http://{}/avs/v0/avs/{FULL_SID}", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let admin = |path: &str| format!("http://{}{path}", server.admin_addr);
    let metrics = client().get(admin("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap_or_default();
    assert!(text.contains("avs_http_requests_total"), "{text}");
    let report = client()
        .get(admin("/admin/rollout.md"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    let md = String::from_utf8(report.bytes().await.unwrap().to_vec()).unwrap();
    assert!(
        md.contains("## avs_enabled") && md.contains("**Number of unique users**: 1"),
        "{md}"
    );
    let refused = client().get(admin("/admin/rollout")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
}

/// What the README shows a newcomer: the development patient's Oracle Health summaries listed,
/// and one saved as a PDF, from the embedded default; the OH upstream calls in the metrics and
/// the OH toggle in the report.
#[tokio::test]
async fn the_embedded_default_serves_oracle_health_summaries_and_counts_them() {
    let token = "an-admin-token-of-at-least-32-characters";
    let server = serve(&[("AVS_ADMIN_TOKEN", token)]).await;
    let dev = dev_token(DEV_ICN, None);
    let (status, list) = get_json(&server, "/avs/v0/oh/summaries", &dev).await;
    assert_eq!(status, 200, "{list}");
    let first = &list["data"][0]["attributes"]["avsPdf"][0];
    assert_eq!(first["contentType"], "application/pdf", "{list}");
    let id = first["id"].as_str().unwrap();
    let pdf = client()
        .get(format!(
            "http://{}/avs/v0/oh/documents/{id}?download=1",
            server.addr
        ))
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert!(
        pdf.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let bytes = pdf.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-1.4") && bytes.ends_with(b"%%EOF\n"));
    let shipped = std::fs::read(repo("fixtures/oracle/visit-summary.pdf")).unwrap();
    let long = std::fs::read(repo("fixtures/oracle/long-summary.pdf")).unwrap();
    assert!(bytes[..] == shipped[..] || bytes[..] == long[..]);
    // The fixture that is not a PDF is refused, not served.
    let (status, _) = get_json(&server, "/avs/v0/oh/documents/15249638964", &dev).await;
    assert_eq!(status, 502);

    let admin = |path: &str| format!("http://{}{path}", server.admin_addr);
    let text = metrics_text(&server).await;
    for line in [
        r#"avs_upstream_requests_total{source="oracle",call="metadata",outcome="ok"} 1"#,
        r#"avs_upstream_requests_total{source="oracle",call="login",outcome="ok"} 1"#,
        r#"avs_upstream_requests_total{source="oracle",call="document",outcome="ok"} 2"#,
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    let md = client()
        .get(admin("/admin/rollout.md"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.contains("## va_online_scheduling_add_OH_avs"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_soft_limit_of_1024_open_files_1100_half_sent_requests_leave_it_serving() {
    let mut server = serve_limited(&[("AVS_IDENTITY", "sis")], Some(1024)).await;
    let caps: Value = server
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["message"] == "connection caps")
        .expect("the effective caps are logged");
    assert!(
        caps["open_files"].as_u64().unwrap() > 1024,
        "the soft limit was raised to the hard one ({}): {caps}",
        rlimit_hard()
    );
    let mut held = Vec::new();
    for _ in 0..1100 {
        let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /healthz HTTP/1.1\r\nX: ")
            .await
            .unwrap();
        held.push(stream);
    }
    let health = client()
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        200,
        "/healthz answers past 1,024 open connections"
    );
    let (_, token, _) = run(&["dev-token", "--icn", DEV_ICN], &[]).await;
    let (status, _) = get_json(&server, &format!("/avs/v0/avs/{FULL_SID}"), token.trim()).await;
    assert_eq!(status, 200, "and so does a real request");

    // SIGTERM with nothing in flight: the half-sent requests are closed at once, not after the
    // header timeout, and the process exits 0 well within 3 s.
    let started = std::time::Instant::now();
    terminate(&server);
    let status = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    assert_eq!(status.code(), Some(0));
    eprintln!("1,100 half-sent requests open: exit {took:?} after SIGTERM");
}

/// Out of room, the oldest connection still sending its head makes way (#35): with the soft
/// open-file limit lowered to 1,024 while the service runs and 1,100 half-sent requests open,
/// and with the connection cap reached, a client that sends its request at once is served
/// within 1 s (before: after the header timeout, about 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_room_the_oldest_half_sent_head_makes_way_for_a_real_client() {
    let Some(prlimit) = required(&["/usr/bin/prlimit"], "prlimit (util-linux)") else {
        return;
    };
    async fn half_sent(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
        let mut held = Vec::new();
        for _ in 0..n {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /healthz HTTP/1.1\r\nX: ")
                .await
                .unwrap();
            held.push(stream);
        }
        held
    }
    async fn served_within_a_second(server: &Server, what: &str) {
        let started = std::time::Instant::now();
        let health = client()
            .get(format!("http://{}/healthz", server.addr))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(health.status(), 200, "{what}");
        assert!(took < Duration::from_secs(1), "{what}: /healthz took {took:?}");
        eprintln!("{what}: /healthz in {took:?}");
    }

    let server = serve(&[("AVS_IDENTITY", "sis")]).await;
    let pid = server.child.id().unwrap().to_string();
    let lowered = std::process::Command::new(&prlimit)
        .args(["--pid", &pid, "--nofile=1024:"])
        .status()
        .unwrap();
    assert!(
        lowered.success(),
        "prlimit lowers the soft limit of the running service"
    );
    let _held = half_sent(&server.addr, 1100).await;
    served_within_a_second(&server, "descriptors exhausted").await;
    drop(server);

    let server = serve(&[("AVS_IDENTITY", "sis"), ("AVS_MAX_CONNECTIONS", "50")]).await;
    let _held = half_sent(&server.addr, 60).await;
    served_within_a_second(&server, "connection cap reached").await;
    assert!(series(&server, "avs_connections_closed_for_room_total").await >= 1.0);
}

/// Past the router and through it (a percent-encoded sid), the summary route's answers count
/// under its template, each once.
#[tokio::test]
async fn the_summary_route_counts_under_its_template_both_ways() {
    let server = serve(&[]).await;
    let dev = dev_token(DEV_ICN, None);
    let theirs = "F1B2C3D4E5F60718293A4B5C6D7E8F90";
    for path in [
        format!("/avs/v0/avs/{theirs}"),
        format!("/avs/v0/avs/%46{}", &theirs[1..]),
    ] {
        assert_eq!(get_json(&server, &path, &dev).await.0, 403, "{path}");
    }
    let counted = r#"avs_http_requests_total{route="/avs/v0/avs/{sid}",status="403"}"#;
    assert_eq!(series(&server, counted).await, 2.0, "both under the template");
}

/// A cached document and a summary's identity JSON leave by `sendfile`, counted in bytes on
/// this process's own metrics (the in-process socket test holds the bytes themselves).
#[tokio::test]
async fn cached_documents_and_summaries_are_sent_from_their_sealed_files() {
    let server = serve(&[]).await;
    let dev = dev_token(DEV_ICN, None);
    let sent = "avs_document_bytes_sent_from_files_total";
    let fetch = |path: String| {
        let request = client()
            .get(format!("http://{}{path}", server.addr))
            .bearer_auth(&dev);
        async move {
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), 200, "{path}");
            answer.bytes().await.unwrap()
        }
    };
    let pdf = fetch(format!("/avs/v0/avs/{FULL_SID}/pdf")).await;
    let before = series(&server, sent).await;
    let again = fetch(format!("/avs/v0/avs/{FULL_SID}/pdf")).await;
    assert_eq!(again, pdf);
    let by_file = series(&server, sent).await - before;
    assert!(
        by_file >= (pdf.len() - 16 * 1024) as f64 && by_file <= pdf.len() as f64,
        "the cached PDF ({} bytes) left by sendfile but for a short tail: {by_file}",
        pdf.len()
    );
    let _ = fetch(format!("/avs/v0/avs/{FULL_SID}")).await; // the miss: rendered, sealed
    let before = series(&server, sent).await;
    let summary = fetch(format!("/avs/v0/avs/{FULL_SID}")).await;
    let by_file = series(&server, sent).await - before;
    assert!(
        summary.len() > 20 * 1024 && by_file >= (summary.len() - 16 * 1024) as f64,
        "the summary ({} bytes) left by sendfile: {by_file}",
        summary.len()
    );
}

#[tokio::test]
async fn check_config_says_how_many_connections_the_open_file_limit_allows() {
    let (code, out, _) = run(&["check-config"], &[]).await;
    assert_eq!(code, 0);
    assert!(out.contains("# connections: at most 10000 public"), "{out}");
    // Under a hard limit of 1,024, the cap is what the limit leaves after the reserve.
    let out = tokio::process::Command::new("sh")
        .args(["-c", "ulimit -n 1024 && exec \"$0\" check-config", BIN])
        .current_dir(repo(""))
        .env_clear()
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains(
            "# connections: at most 768 public (AVS_MAX_CONNECTIONS is lowered by the open-file limit 1024"
        ),
        "{out}"
    );
}

fn rlimit_hard() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default()
        .to_owned()
}

fn terminate(server: &Server) {
    let pid = server.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}
