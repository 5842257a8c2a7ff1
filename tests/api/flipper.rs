//! Held to the real Flipper: Debian's `ruby-flipper` (0.25) with its ActiveRecord adapter, on
//! the same throwaway PostgreSQL (`tests/flipper/flipper.rb`). Flipper writes and the service
//! reads; the service's admin API writes and Flipper reads; and one sequence of operations
//! done by each side leaves identical rows.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use avs_api::domain::ActorId;
use avs_api::toggles::{AVS_ENABLED, bucket};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

/// Whether Ruby, Flipper, its ActiveRecord adapter and pg are here (a failure under CI).
pub(crate) fn flipper_available() -> bool {
    let ok = Command::new("ruby")
        .args([
            "-e",
            "require 'active_record'; require 'flipper/adapters/active_record'; require 'pg'",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(
            "the real Flipper",
            "install Debian's ruby ruby-flipper ruby-activerecord ruby-pg",
        );
    }
    ok
}

/// One `ruby flipper.rb serve` per database, kept for the test run: loading Ruby and
/// ActiveRecord cost 0.7 s a command when each command was a process of its own. It ends when
/// the test process does (its stdin closes).
struct Session {
    /// Kept so the process is the session's (it exits on its own when stdin closes).
    _process: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Session {
    fn start(database: &str) -> Session {
        let mut child = Command::new("ruby")
            .arg(repo("tests/flipper/flipper.rb"))
            .arg("serve")
            .env("DATABASE_URL", database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Session {
            stdin: child.stdin.take().unwrap(),
            stdout: std::io::BufReader::new(child.stdout.take().unwrap()),
            _process: child,
        }
    }
}

/// Runs a command of the Ruby side on `database`.
pub(crate) fn flipper(database: &str, command: &str, input: &Value) -> Value {
    use std::collections::HashMap;
    use std::io::BufRead as _;
    use std::sync::OnceLock;
    static SESSIONS: OnceLock<Mutex<HashMap<String, Arc<Mutex<Session>>>>> = OnceLock::new();
    let session = SESSIONS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(database.to_owned())
        .or_insert_with(|| Arc::new(Mutex::new(Session::start(database))))
        .clone();
    let mut session = session.lock().unwrap();
    writeln!(session.stdin, "{}", json!({"command": command, "input": input})).unwrap();
    let mut answer = String::new();
    session.stdout.read_line(&mut answer).unwrap();
    assert!(
        !answer.is_empty(),
        "flipper.rb {command} ended (its error is above)"
    );
    serde_json::from_str(&answer).unwrap()
}

/// `ruby ARGS` with `input` as JSON on stdin; its stdout read as JSON.
pub(crate) fn ruby_json(args: &[&str], env: &[(&str, &str)], input: &Value) -> Value {
    let mut child = Command::new("ruby")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ruby {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The service on `url` (creating Flipper's tables).
async fn service_on(url: &str) -> TestApp {
    TestApp::builder()
        .toggles("")
        .envs(&[("AVS_TOGGLES", url), ("AVS_ADMIN_TOKEN", ADMIN_TOKEN)])
        .start()
        .await
}

/// Callers as VA.gov sees them: emails in upper case and beyond ASCII, an empty email, account
/// ids alone.
fn callers() -> Vec<(String, Option<String>)> {
    let mut callers: Vec<(String, Option<String>)> = (0..3000)
        .map(|n| {
            let email = match n % 6 {
                0 => Some(format!("User.{n}@Example.COM")),
                1 => Some(format!("ΟΔΥΣΣΕΥΣ{n}@EXAMPLE.COM")),
                2 => Some(format!("İSTANBUL.{n}@EXAMPLE.ORG")),
                3 => Some(format!("ÄRZTIN.ẞ{n}@EXAMPLE.DE")),
                4 => None,
                _ => Some(format!("plain{n}@example.com")),
            };
            (format!("acct-{n:05}"), email)
        })
        .collect();
    callers.push(("acct-empty".into(), Some(String::new())));
    callers.push((
        "ΟΔΥΣΣΕΥΣ1@EXAMPLE.COM".into(),
        Some("ΟΔΥΣΣΕΥΣ1@EXAMPLE.COM".into()),
    ));
    callers
}

/// Actors whose buckets sit at the very edge of `pct`: just in, on, and just out.
fn edge_callers(feature: &str, pct: f64) -> Vec<(String, Option<String>)> {
    let edge = (pct * 1000.0) as u32;
    let wanted = [edge.saturating_sub(1), edge, edge + 1];
    let mut found = Vec::new();
    for n in 0..5_000_000u32 {
        let id = format!("edge-{n}");
        if wanted.contains(&bucket(feature, &ActorId::new(id.clone()))) {
            found.push((id, None));
            if found.len() == wanted.len() * 2 {
                break;
            }
        }
    }
    found
}

/// Both sides' decisions for `callers`, and both sides' actor ids.
async fn decisions(
    app: &TestApp,
    url: &str,
    feature: &str,
    callers: &[(String, Option<String>)],
) -> (Value, Value) {
    app.state.toggles.refresh_now().await;
    let input: Vec<Value> = callers
        .iter()
        .map(|(sub, email)| json!({"sub": sub, "email": email}))
        .collect();
    let ruby = flipper(url, "enabled", &json!({"feature": feature, "callers": input}));
    let actors: Vec<ActorId> = callers
        .iter()
        .map(|(sub, email)| ActorId::from_claims(sub, email.as_deref()))
        .collect();
    let ours = json!({
        "actors": actors.iter().map(ActorId::as_str).collect::<Vec<_>>(),
        "enabled": actors.iter().map(|a| app.state.toggles.is_enabled(feature, Some(a))).collect::<Vec<_>>(),
    });
    (ruby, ours)
}

fn disagreements(ruby: &Value, ours: &Value) -> Vec<String> {
    let mut out = Vec::new();
    // An empty or short answer from either side is a disagreement, never a pass.
    let (theirs, mine) = (ruby["actors"].as_array(), ours["actors"].as_array());
    let counts = (theirs.map_or(0, Vec::len), mine.map_or(0, Vec::len));
    let enabled = (
        ruby["enabled"].as_array().map_or(0, Vec::len),
        ours["enabled"].as_array().map_or(0, Vec::len),
    );
    if counts.0 == 0 || counts != (counts.1, counts.0) || enabled != counts {
        out.push(format!(
            "actors Ruby {} / service {}, decisions Ruby {} / service {}",
            counts.0, counts.1, enabled.0, enabled.1
        ));
        return out;
    }
    for (i, (theirs, mine)) in ruby["actors"]
        .as_array()
        .unwrap()
        .iter()
        .zip(ours["actors"].as_array().unwrap())
        .enumerate()
    {
        if theirs != mine {
            out.push(format!("actor {i}: Ruby {theirs}, service {mine}"));
        }
        if ruby["enabled"][i] != ours["enabled"][i] {
            out.push(format!(
                "{mine}: Ruby {}, service {}",
                ruby["enabled"][i], ours["enabled"][i]
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipper_writes_and_the_service_reads_the_same() {
    if !flipper_available() {
        return;
    }
    let Some(pg) = Postgres::start().await else { return };
    let url = pg.database("flipper_writes", None).await;
    let app = service_on(&url).await;
    let mut everyone = callers();
    for pct in ["10", "33.333", "2.007", "0.0001", "0.00001", "50"] {
        flipper(
            &url,
            "apply",
            &json!([{"feature": AVS_ENABLED, "op": "percentage", "value": pct}]),
        );
        let mut asked = everyone.clone();
        asked.extend(edge_callers(AVS_ENABLED, pct.parse().unwrap()));
        let (ruby, ours) = decisions(&app, &url, AVS_ENABLED, &asked).await;
        let wrong = disagreements(&ruby, &ours);
        assert!(
            wrong.is_empty(),
            "at {pct} %: {} disagreements: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        let on = ours["enabled"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| **e == json!(true))
            .count();
        assert!(pct != "10" || (200..400).contains(&on), "about 10 % on: {on}");
    }
    // Named actors, boolean, and a rollback.
    everyone.truncate(200);
    for ops in [
        json!([{"feature": AVS_ENABLED, "op": "add_actor", "value": "οδυσσευσ1@example.com"}]),
        json!([{"feature": AVS_ENABLED, "op": "disable"}]),
        json!([{"feature": AVS_ENABLED, "op": "enable"}]),
    ] {
        flipper(&url, "apply", &ops);
        let (ruby, ours) = decisions(&app, &url, AVS_ENABLED, &everyone).await;
        assert!(disagreements(&ruby, &ours).is_empty(), "{ops}");
    }
    // A gate row whose feature has no row of its own: Flipper says enabled, so does the service.
    let client = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(client.1);
    client
        .0
        .execute(
            "INSERT INTO flipper_gates (feature_key, key, value, created_at, updated_at)
             VALUES ('orphan_feature', 'boolean', 'true', now(), now())",
            &[],
        )
        .await
        .unwrap();
    let (ruby, ours) = decisions(&app, &url, "orphan_feature", &everyone[..3]).await;
    assert_eq!(ruby["enabled"], json!([true, true, true]));
    assert!(disagreements(&ruby, &ours).is_empty(), "orphan gate row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_writes_and_flipper_reads_the_same() {
    if !flipper_available() {
        return;
    }
    let Some(pg) = Postgres::start().await else { return };
    let url = pg.database("service_writes", None).await;
    let app = service_on(&url).await;
    let admin_app = app.admin();
    let path = |gate: &str| format!("/flipper/api/features/{AVS_ENABLED}/{gate}");
    let form = |body: &str| Some(("application/x-www-form-urlencoded", body.to_owned()));
    let everyone = callers();
    for (pct, flipper_reads, ruby_type) in [
        ("0.00001", json!(1.0e-05), "Float"),
        ("33.333", json!(33.333), "Float"),
        ("2.007", json!(2.007), "Float"),
        ("10", json!(10), "Integer"),
        ("10.0", json!(10), "Integer"),
    ] {
        let (status, _) = admin(
            &admin_app,
            Method::POST,
            &path("percentage_of_actors"),
            Some(ADMIN_TOKEN),
            form(&format!("percentage={pct}")),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let gates = flipper(&url, "gates", &json!({"feature": AVS_ENABLED}));
        assert_eq!(
            gates["percentage_of_actors"]["value"], flipper_reads,
            "{pct}: {gates}"
        );
        assert_eq!(gates["percentage_of_actors"]["type"], ruby_type, "{pct}");
        let (ruby, ours) = decisions(&app, &url, AVS_ENABLED, &everyone).await;
        let wrong = disagreements(&ruby, &ours);
        assert!(wrong.is_empty(), "at {pct} %: {:?}", &wrong[..wrong.len().min(5)]);
    }
    let (status, _) = admin(
        &admin_app,
        Method::POST,
        &path("actors"),
        Some(ADMIN_TOKEN),
        form("flipper_id=tester@example.com"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let gates = flipper(&url, "gates", &json!({"feature": AVS_ENABLED}));
    assert_eq!(gates["actors"]["value"], json!(["tester@example.com"]));
    assert_eq!(gates["boolean"]["type"], "FalseClass");
    let (status, _) = admin(
        &admin_app,
        Method::POST,
        &path("boolean"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let gates = flipper(&url, "gates", &json!({"feature": AVS_ENABLED}));
    assert_eq!(gates["boolean"]["value"], json!(true), "{gates}");
    assert_eq!(
        gates["percentage_of_actors"]["value"],
        json!(0),
        "enabling clears the others: {gates}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sequence_of_operations_leaves_identical_rows_on_either_side() {
    if !flipper_available() {
        return;
    }
    let Some(pg) = Postgres::start().await else { return };
    // The service's database is set to a time zone far from UTC: rows are still written in UTC.
    let theirs = pg.database("rows_flipper", None).await;
    let ours = pg.database("rows_service", Some("Pacific/Kiritimati")).await;
    let flipper_side = service_on(&theirs).await; // creates the tables Flipper writes to
    drop(flipper_side);
    let app = service_on(&ours).await;
    let admin_app = app.admin();
    let ops = [
        ("add", "", "POST", "/flipper/api/features", "name=avs_enabled"),
        (
            "add_actor",
            "tester@example.com",
            "POST",
            "actors",
            "flipper_id=tester@example.com",
        ),
        (
            "percentage",
            "10",
            "POST",
            "percentage_of_actors",
            "percentage=10",
        ),
        (
            "percentage",
            "0.00001",
            "POST",
            "percentage_of_actors",
            "percentage=0.00001",
        ),
        (
            "percentage",
            "33.333",
            "POST",
            "percentage_of_actors",
            "percentage=33.333",
        ),
        ("time", "5", "POST", "percentage_of_time", "percentage=5"),
        (
            "add_actor",
            "other@example.com",
            "POST",
            "actors",
            "flipper_id=other@example.com",
        ),
        (
            "remove_actor",
            "tester@example.com",
            "DELETE",
            "actors",
            "flipper_id=tester@example.com",
        ),
        ("clear_percentage", "", "DELETE", "percentage_of_actors", ""),
        ("enable", "", "POST", "boolean", ""),
        ("disable", "", "DELETE", "boolean", ""),
        (
            "percentage",
            "50",
            "POST",
            "percentage_of_actors",
            "percentage=50",
        ),
    ];
    let rows = |url: String| async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let features: Vec<String> = client
            .query("SELECT key FROM flipper_features ORDER BY key", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let gates: Vec<(String, String, Option<String>)> = client
            .query(
                "SELECT feature_key, key, value FROM flipper_gates ORDER BY 1, 2, 3",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        // Written in UTC: within a few minutes of the server's clock read in UTC.
        let utc: bool = client
            .query_one(
                "SELECT COALESCE(bool_and(abs(extract(epoch FROM (created_at - (now() AT TIME ZONE 'UTC')))) < 300), true)
                 FROM (SELECT created_at FROM flipper_gates UNION ALL SELECT created_at FROM flipper_features) t",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (features, gates, utc)
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    for (op, value, method, gate, body) in ops {
        flipper(
            &theirs,
            "apply",
            &json!([{"feature": AVS_ENABLED, "op": op, "value": value}]),
        );
        let uri = if gate.starts_with('/') {
            gate.to_owned()
        } else {
            format!("/flipper/api/features/{AVS_ENABLED}/{gate}")
        };
        let method = if method == "POST" {
            Method::POST
        } else {
            Method::DELETE
        };
        let body = (!body.is_empty()).then(|| ("application/x-www-form-urlencoded", body.to_owned()));
        let (status, answer) = admin(&admin_app, method, &uri, Some(ADMIN_TOKEN), body).await;
        assert!(status.is_success(), "{op}: {status} {answer}");
        let (a, b) = (rows(theirs.clone()).await, rows(ours.clone()).await);
        assert_eq!(
            (&a.0, &a.1),
            (&b.0, &b.1),
            "after {op} {value}: Flipper's rows, then the service's"
        );
        assert!(b.2, "the service wrote local time into created_at after {op}");
        seen.lock().unwrap().push(op);
    }
    assert_eq!(seen.lock().unwrap().len(), 12);
}
