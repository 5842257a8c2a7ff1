//! The rollout page driven in headless Chromium (Debian's chromium + chromium-driver) through
//! plain WebDriver HTTP calls: press "10 %", then "Disable", and watch the API follow.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::support::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find(program: &str) -> Option<String> {
    ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"]
        .iter()
        .map(|dir| format!("{dir}/{program}"))
        .find(|p| std::path::Path::new(p).exists())
}

/// chromedriver and chromium; a test without them fails under CI and elsewhere skips, saying so.
fn browser() -> Option<(String, String)> {
    match (find("chromedriver"), find("chromium")) {
        (Some(driver), Some(chromium)) => Some((driver, chromium)),
        _ => {
            skip(
                "the browser tests",
                "install Debian's chromium and chromium-driver",
            );
            None
        }
    }
}

struct Driver {
    process: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: TempDir,
}

impl Driver {
    async fn start(chromedriver: &str, chromium: &str) -> Driver {
        Driver::start_with(chromedriver, chromium, &[]).await
    }

    /// With extra Chromium arguments (host names mapped to loopback).
    async fn start_with(chromedriver: &str, chromium: &str, extra: &[String]) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = temp_dir();
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--window-size=1100,900",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra.iter().cloned());
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": args,
        }}}});
        let mut driver = Driver {
            process,
            base,
            session: String::new(),
            http,
            profile,
        };
        let created = driver.call("POST", "/session", caps).await;
        driver.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        driver
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
        };
        let response = request.send().await.unwrap();
        let value: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        value["value"].clone()
    }

    async fn session(&self, method: &str, path: &str, body: Value) -> Value {
        let value = self
            .call(method, &format!("/session/{}{path}", self.session), body)
            .await;
        assert!(value.get("error").is_none(), "{method} {path}: {value}");
        value
    }

    async fn cdp(&self, cmd: &str, params: Value) {
        self.session("POST", "/goog/cdp/execute", json!({"cmd": cmd, "params": params}))
            .await;
    }

    async fn open(&self, url: &str) {
        self.session("POST", "/url", json!({"url": url})).await;
    }

    /// The content type of the document the browser shows.
    async fn content_type(&self) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            json!({"script": "return document.contentType", "args": []}),
        )
        .await
    }

    async fn click(&self, xpath: &str) {
        let element = self
            .session("POST", "/element", json!({"using": "xpath", "value": xpath}))
            .await;
        let id = element[ELEMENT].as_str().unwrap().to_owned();
        self.session("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Types `text` into the element at `xpath`.
    async fn type_into(&self, xpath: &str, text: &str) {
        let element = self
            .session("POST", "/element", json!({"using": "xpath", "value": xpath}))
            .await;
        let id = element[ELEMENT].as_str().unwrap().to_owned();
        self.session("POST", &format!("/element/{id}/value"), json!({"text": text}))
            .await;
    }

    async fn text(&self, xpath: &str) -> Option<String> {
        let path = format!("/session/{}", self.session);
        let element = self
            .call(
                "POST",
                &format!("{path}/element"),
                json!({"using": "xpath", "value": xpath}),
            )
            .await;
        let id = element[ELEMENT].as_str()?.to_owned();
        let text = self
            .call("GET", &format!("{path}/element/{id}/text"), Value::Null)
            .await;
        text.as_str().map(str::to_owned)
    }

    /// A click on a form button returns before the post and its redirect finish: wait for the
    /// page that follows to show `expected`.
    async fn wait_for_text(&self, xpath: &str, expected: &str) {
        let started = Instant::now();
        loop {
            let text = self.text(xpath).await;
            if text.as_deref() == Some(expected) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{xpath} is {text:?}, not {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let png = self.session("GET", "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = repo("target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// Chromium's processes for `profile` (each command line names it).
fn browser_processes(profile: &std::path::Path) -> Vec<String> {
    let named = format!("--user-data-dir={}", profile.display());
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.split(|b| *b == 0).any(|arg| arg == named.as_bytes()))
        })
        .map(|pid| pid.to_string())
        .collect()
}

impl Drop for Driver {
    /// Stops chromedriver, then the browser it started: killed with it, chromium lives on and
    /// writes into its profile after the profile is removed (each run left an
    /// `avs-api-test-*` directory in /tmp). The profile goes only once no process names it.
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let started = Instant::now();
        loop {
            let left = browser_processes(self.profile.path());
            if left.is_empty() || started.elapsed() > Duration::from_secs(10) {
                break;
            }
            let _ = Command::new("kill").arg("-KILL").args(&left).status();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_page_drives_the_gate_in_a_real_browser() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let app = TestApp::builder()
        .toggles("[features.avs_enabled]\nboolean = false\n")
        .start()
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = listener.local_addr().unwrap();
    let admin = app.admin();
    tokio::spawn(async move { axum::serve(listener, admin).await.unwrap() });

    let search = "/avs/v0/avs/search?stationNo=500&appointmentIen=1";
    let below = rs256(&claims("User;15", Some(DEV_ICN), None)); // bucket 4246
    let above = rs256(&claims("User;1", Some(DEV_ICN), None)); // bucket 46802
    assert_eq!(app.get(search, &below).await.status, 404);

    let driver = Driver::start(&chromedriver, &chromium).await;
    // The admin's credentials on every request the page makes, form posts included.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_TOKEN}"));
    driver.cdp("Network.enable", json!({})).await;
    driver
        .cdp(
            "Network.setExtraHTTPHeaders",
            json!({"headers": {"Authorization": format!("Basic {basic}")}}),
        )
        .await;
    driver
        .open(&format!("http://{admin_addr}/flipper/features/avs_enabled"))
        .await;
    driver.wait_for_text("//*[@id='state']", "off").await;

    // Phase I: a named tester (the plan's first stage: the next from off).
    driver
        .type_into(
            "//input[@name='flipper_id' and @placeholder]",
            "tester@example.com",
        )
        .await;
    driver.click("//button[normalize-space()='Add tester']").await;
    driver.wait_for_text("//*[@id='state']", "conditional").await;
    driver
        .wait_for_text("//*[@id='verdict-state']", "inconclusive")
        .await;
    // The moderated test proves function, not rates: the next stage waits for a sign-off.
    let disabled = "//button[@id='next-stage' and @disabled]";
    assert_eq!(driver.text(disabled).await.as_deref(), Some("Next stage: 10 %"));
    driver.screenshot("admin-avs_enabled-phase-one.png").await;
    driver
        .type_into(
            "//form[@id='sign-off']//input[@name='reason']",
            "moderated test passed",
        )
        .await;
    driver.click("//form[@id='sign-off']//button").await;
    driver.wait_for_text("//*[@id='verdict-state']", "pass").await;
    assert_eq!(driver.text(disabled).await, None, "live on pass");
    driver.click("//button[@id='next-stage']").await;
    driver
        .wait_for_text("//table[@id='gates']//tr[3]/td", "10 %")
        .await;
    assert_eq!(
        app.get(search, &below).await.status,
        200,
        "bucket 4246 is in at 10 %"
    );
    assert_eq!(
        app.get(search, &above).await.status,
        404,
        "bucket 46802 stays out"
    );
    // Stage A has not earned 50 %: its button is disabled, and a write of it anyway is 409.
    driver
        .wait_for_text("//*[@id='verdict-state']", "inconclusive")
        .await;
    assert_eq!(driver.text(disabled).await.as_deref(), Some("Next stage: 50 %"));
    let (status, refused) = admin_guarded(
        &app.admin(),
        axum::http::Method::POST,
        "/flipper/api/features/avs_enabled/percentage_of_actors",
        Some(ADMIN_TOKEN),
        Some(("application/json", r#"{"percentage":"50"}"#.to_owned())),
    )
    .await;
    assert_eq!(
        (status.as_u16(), refused["code"].as_u64()),
        (409, Some(101)),
        "{refused}"
    );
    let shot = driver.screenshot("admin-avs_enabled-10-percent.png").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);

    driver.click("//button[@id='disable']").await;
    driver.wait_for_text("//*[@id='state']", "off").await;
    assert_eq!(app.get(search, &below).await.status, 404, "rolled back");
    assert_eq!(app.get(search, &above).await.status, 404);
    driver.screenshot("admin-avs_enabled-disabled.png").await;
    driver
        .call("DELETE", &format!("/session/{}", driver.session), Value::Null)
        .await;
}

/// An Oracle Health document opened inline in Chromium with the auth cookie (a PDF viewer runs:
/// no sandbox header stops it), and VA.gov web's own flow on the compatibility route: base64
/// from JSON, decoded into a Blob that holds the very bytes of the raw route.
/// #27: a VistA summary's PDF opens inline in the browser by the page's cookie, and
/// `?download=1` saves it under its file name (no sid in it), byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vista_summary_pdf_opens_inline_by_cookie_and_downloads_under_its_name() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let upstream = FakeUpstream::start().await;
    upstream.summary(&crate::contract::upstream_from_frontend_fixture(
        &read_json("tests/peer/frontend-fixture.json"),
        DEV_ICN,
    ));
    let toggles = format!("{TOGGLES_ON}[features.avs_pdf_enabled]\nboolean = true\n");
    let app = Listening::start(upstream, &toggles, &[]).await;
    let driver = Driver::start(&chromedriver, &chromium).await;
    let downloads = temp_dir();
    driver
        .session(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Browser.setDownloadBehavior", "params": {
                "behavior": "allow", "downloadPath": downloads.path().display().to_string()}}),
        )
        .await;
    driver.open(&app.url("/healthz")).await;
    driver
        .session(
            "POST",
            "/cookie",
            json!({"cookie": {"name": "vagov_access_token", "value": owner_token(), "path": "/"}}),
        )
        .await;
    let path = format!("/avs/v0/avs/{FULL_SID}/pdf");
    driver.open(&app.url(&path)).await;
    assert_eq!(
        driver.content_type().await,
        "application/pdf",
        "the browser shows the PDF inline"
    );
    driver.screenshot("vista-summary-inline.png").await;
    // A download does not navigate: the page stays, and the file arrives in the folder.
    driver.open(&app.url("/healthz")).await;
    driver
        .session(
            "POST",
            "/execute/sync",
            json!({"script": "const a = document.createElement('a'); a.href = arguments[0]; document.body.appendChild(a); a.click();", "args": [format!("{path}?download=1")]}),
        )
        .await;
    let saved = downloads.path().join("VA-after-visit-summary-2023-01-01.pdf");
    let started = Instant::now();
    while !saved.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no download in {:?}",
            std::fs::read_dir(downloads.path()).unwrap().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let direct = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(app.url(&path))
        .bearer_auth(owner_token())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // The file is complete once Chromium renames it from its partial name.
    assert_eq!(std::fs::read(&saved).unwrap(), direct.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oracle_health_pdf_opens_inline_and_the_compat_flow_yields_the_same_bytes() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    // The embedded fixture upstream serves the development patient's Oracle Health summaries.
    let upstream = FakeUpstream::start().await;
    let toggles = format!("{TOGGLES_ON}{OH_ON}");
    let app = Listening::start(upstream, &toggles, &[]).await;
    let token = owner_token();
    let doc = "15249638962"; // the long one, several pages
    let driver = Driver::start(&chromedriver, &chromium).await;
    driver.open(&app.url("/healthz")).await;
    driver
        .session(
            "POST",
            "/cookie",
            json!({"cookie": {"name": "vagov_access_token", "value": token, "path": "/"}}),
        )
        .await;
    driver
        .open(&app.url(&format!("/avs/v0/oh/documents/{doc}")))
        .await;
    assert_eq!(
        driver.content_type().await,
        "application/pdf",
        "the browser shows the PDF inline"
    );
    driver.screenshot("oh-document-inline.png").await;

    driver.open(&app.url("/healthz")).await;
    let script = r#"
        const done = arguments[arguments.length - 1];
        const doc = arguments[0];
        (async () => {
            const raw = new Uint8Array(await (await fetch(`/avs/v0/oh/documents/${doc}`)).arrayBuffer());
            const answer = await (await fetch(`/avs/v0/oh/appointments/4818609/binaries?doc_ids=${doc}`)).json();
            // VA.gov web: atob, a byte array, a Blob of type application/pdf, an object URL.
            const text = atob(answer.data[0].attributes.binary);
            const bytes = new Uint8Array(text.length);
            for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
            const blob = new Blob([bytes], { type: 'application/pdf' });
            const url = URL.createObjectURL(blob);
            const back = new Uint8Array(await (await fetch(url)).arrayBuffer());
            done({ rawLength: raw.length, blobLength: back.length, type: blob.type,
                   same: back.length === raw.length && back.every((v, i) => v === raw[i]),
                   magic: String.fromCharCode(...back.slice(0, 5)) });
        })().catch(e => done({ error: String(e) }));
    "#;
    let result = driver
        .session("POST", "/execute/async", json!({"script": script, "args": [doc]}))
        .await;
    let shipped = std::fs::read(repo("fixtures/oracle/long-summary.pdf")).unwrap();
    assert_eq!(result["rawLength"], shipped.len(), "{result}");
    assert_eq!(result["same"], true, "{result}");
    assert_eq!(
        (result["type"].as_str(), result["magic"].as_str()),
        (Some("application/pdf"), Some("%PDF-"))
    );
    driver
        .call("DELETE", &format!("/session/{}", driver.session), Value::Null)
        .await;
}

/// VA.gov as it is built: the page on one origin (`www.va.test`) calls the API on another
/// (`api.va.test`), same site, with `credentials: 'include'` and vets-website's headers, the
/// SiS token in a cookie on their shared parent domain. With an expired token the API answers
/// vets-api's 403, and the page refreshes the session and retries once, as its code does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vagov_page_on_another_origin_renders_a_summary_and_refreshes_an_expired_session() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    const OWNER: &str = "5d1e7c0a-0000-4000-8000-0000000000aa";
    const OTHERS_SID: &str = "F1B2C3D4E5F60718293A4B5C6D7E8F90";
    let sis = FakeSis::start().await;
    sis.user(OWNER, Some("Page.User@Example.com"), Some(DEV_ICN));
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_port = page_listener.local_addr().unwrap().port();
    let origin = format!("http://www.va.test:{page_port}");
    let mut env: Vec<(&str, String)> = sis.env();
    env.push(("AVS_CORS_ORIGINS", origin.clone()));
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let upstream = FakeUpstream::start().await;
    upstream.summary(&fixture("full"));
    upstream.summary(&fixture("someone-else"));
    let api = Listening::start(upstream, TOGGLES_ON, &extra).await;
    let api_base = format!("http://api.va.test:{}", api.addr.port());

    // The page's origin: the page (with an expired token in the shared cookie) and the session
    // refresh (a fresh token), as vets-api's /v0/sign_in/refresh sets it.
    let refreshes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let expired = {
        let mut c = sis_user_claims(OWNER, "page-session");
        c["exp"] = json!(now() - 60);
        sis_token(SisKey::Current, &c)
    };
    let fresh = sis_token(SisKey::Current, &sis_user_claims(OWNER, "page-session"));
    let page = format!(
        r#"<!doctype html><html lang="en"><head><title>AVS</title></head><body><main id="out">loading</main>
<p id="other">loading</p><p id="anonymous">loading</p>
<script>
const api = {api_base:?};
const headers = {{ 'X-Key-Inflection': 'camel', 'Source-App-Name': 'avs', 'X-CSRF-Token': 'null', 'Content-Type': 'application/json' }};
async function apiRequest(path, retried) {{
  const response = await fetch(api + path, {{ credentials: 'include', headers }});
  const body = await response.json();
  // vets-website: refresh the session and retry once, only on this exact answer.
  if (response.status === 403 && body.errors === 'Access token has expired' && !retried) {{
    await fetch('/v0/sign_in/refresh', {{ method: 'POST', credentials: 'include' }});
    return apiRequest(path, true);
  }}
  return {{ status: response.status, body, requestId: response.headers.get('X-Request-Id') }};
}}
apiRequest('/avs/v0/avs/{FULL_SID}', false).then(r => {{
  const a = r.body.data.attributes;
  document.getElementById('out').textContent = 'status ' + r.status + ' | ' + a.clinicsVisited[0].clinic + ' | ' + (r.requestId ? 'id' : 'no id');
}}).catch(e => {{ document.getElementById('out').textContent = 'failed: ' + e; }}).then(() => {{
  // With the refreshed session in the cookie (or none sent at all).
  view('/avs/v0/avs/{OTHERS_SID}', 'include').then(show('other'), e => show('other')('failed: ' + e));
  view('/avs/v0/avs/{FULL_SID}', 'omit').then(show('anonymous'), e => show('anonymous')('failed: ' + e));
}});
// vets-website's apiRequest sends every 401 to sign in again ("session expired"); the AVS page
// picks its view from errors[0].status, whatever the HTTP status.
async function view(path, credentials) {{
  const response = await fetch(api + path, {{ credentials, headers }});
  const body = await response.json();
  if (response.status === 401) return 'session expired: sign in again';
  if (body.errors && body.errors[0].status === 'unauthorized') return "We can't give you access (" + response.status + ')';
  return 'status ' + response.status;
}}
function show(id) {{ return (text) => {{ document.getElementById(id).textContent = text; }}; }}
</script></body></html>"#
    );
    let counted = refreshes.clone();
    let page_app = axum::Router::new()
        .route(
            "/page",
            axum::routing::get(move || {
                let cookie = format!("vagov_access_token={expired}; Domain=va.test; Path=/");
                let page = page.clone();
                async move {
                    (
                        [("set-cookie", cookie), ("content-type", "text/html".to_owned())],
                        page,
                    )
                }
            }),
        )
        .route(
            "/v0/sign_in/refresh",
            axum::routing::post(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let cookie = format!("vagov_access_token={fresh}; Domain=va.test; Path=/");
                async move { [("set-cookie", cookie)] }
            }),
        );
    tokio::spawn(async move { axum::serve(page_listener, page_app).await.unwrap() });

    let rules = "--host-resolver-rules=MAP www.va.test 127.0.0.1, MAP api.va.test 127.0.0.1".to_owned();
    let driver = Driver::start_with(&chromedriver, &chromium, &[rules]).await;
    driver.open(&format!("{origin}/page")).await;
    let clinic = fixture("full")["data"]["clinicsVisited"][0]["clinic"]
        .as_str()
        .unwrap()
        .to_owned();
    driver
        .wait_for_text("//main[@id='out']", &format!("status 200 | {clinic} | id"))
        .await;
    // Another patient's summary: the page's own "no access" view, not a sign-in loop (403
    // `unauthorized`, #35); no token at all is still 401, which the page reads as expired.
    driver
        .wait_for_text("//p[@id='other']", "We can't give you access (403)")
        .await;
    driver
        .wait_for_text("//p[@id='anonymous']", "session expired: sign in again")
        .await;
    assert_eq!(
        refreshes.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "refreshed once"
    );
    assert_eq!(sis.user_calls(), 1, "the refreshed session was looked up once");
    driver
        .call("DELETE", &format!("/session/{}", driver.session), Value::Null)
        .await;
}
