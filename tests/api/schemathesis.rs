//! Held to a real contract tester: Schemathesis (from PyPI, in the venv `.ci/run` makes at
//! `target/test-venv`) runs against the real binary for both documents, the public API's and
//! the admin listener's: every check, every phase, positive and negative data, bounded by
//! `tests/schemathesis/schemathesis.toml`. And a document with one deliberately wrong status
//! makes it fail, so a green run means something.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::*;

const ADMIN: &str = "an-admin-token-of-at-least-32-characters";

/// The `st` command, or why there is none (a failure under CI).
fn schemathesis() -> Option<PathBuf> {
    let st = repo("target/test-venv/bin/st");
    if st.exists() {
        return Some(st);
    }
    skip(
        "Schemathesis",
        "python3 -m venv target/test-venv && target/test-venv/bin/pip install schemathesis==4.32.5",
    );
    None
}

/// `st run SCHEMA --url BASE` with these extra arguments: whether it passed, and what it said.
fn run(st: &PathBuf, schema: &str, base: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new(st)
        .arg("--config-file")
        .arg(repo("tests/schemathesis/schemathesis.toml"))
        .args(["run", schema, "--url", base, "--checks", "all", "--no-color"])
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(400)..].join("\n")
}

async fn document(url: &str) -> Value {
    serde_json::from_slice(&client().get(url).send().await.unwrap().bytes().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_in_either_document_and_catches_a_wrong_status() {
    let Some(st) = schemathesis() else { return };
    // The embedded default, but for a copy of its toggle file: the admin runs write to it.
    let dir = temp_dir();
    let toggles = dir.path().join("toggles.toml");
    std::fs::copy(repo("fixtures/toggles.toml"), &toggles).unwrap();
    let toggles = format!("file:{}", toggles.display());
    let server = serve(&[("AVS_ADMIN_TOKEN", ADMIN), ("AVS_TOGGLES", &toggles)]).await;
    let (public, admin) = (
        format!("http://{}", server.addr),
        format!("http://{}", server.admin_addr),
    );
    let public_doc = format!("{public}/avs/v0/apidocs");
    let admin_doc = format!("{admin}/admin/openapi.json");
    let owner = dev_token(DEV_ICN, Some("owner@example.com"));
    let other = dev_token(OTHER_ICN, Some("other@example.com"));
    let as_owner = format!("Authorization: Bearer {owner}");
    let as_other = format!("Authorization: Bearer {other}");
    let by_cookie = format!("Cookie: vagov_access_token={owner}");
    let admin_basic = format!("x:{ADMIN}");
    let admin_bearer = format!("Authorization: Bearer {ADMIN}");
    // The public runs first, while avs_enabled is as the fixture has it; the admin runs then
    // change the toggles (in the copy) as they please.
    let runs: Vec<(&str, &str, &str, Vec<&str>)> = vec![
        (
            "public API as the owner",
            &public_doc,
            &public,
            vec!["-H", &as_owner],
        ),
        ("public API without credentials", &public_doc, &public, vec![]),
        (
            "public API as another patient",
            &public_doc,
            &public,
            vec!["-H", &as_other],
        ),
        (
            "public API by cookie",
            &public_doc,
            &public,
            vec!["-H", &by_cookie],
        ),
        (
            "admin API with the Bearer token",
            &admin_doc,
            &admin,
            vec!["-H", &admin_bearer],
        ),
        (
            "admin API with HTTP Basic",
            &admin_doc,
            &admin,
            vec!["--auth", &admin_basic],
        ),
        ("admin API without credentials", &admin_doc, &admin, vec![]),
    ];
    for (what, schema, base, extra) in runs {
        let (passed, said) = run(&st, schema, base, &extra);
        assert!(passed, "Schemathesis, {what}:\n{}", tail(&said));
        assert!(said.contains(" passed"), "{what}: no test ran:\n{}", tail(&said));
    }

    // One wrong status in each document, and the tester says so.
    for (doc_url, base, path, extra) in [
        (&public_doc, &public, "/healthz", vec![]),
        (
            &admin_doc,
            &admin,
            "/admin/health",
            vec!["-H", admin_bearer.as_str()],
        ),
    ] {
        let mut doc = document(doc_url).await;
        let responses = doc["paths"][path]["get"]["responses"].as_object_mut().unwrap();
        let ok = responses.remove("200").unwrap();
        responses.insert("201".into(), ok);
        let file = dir.path().join(format!("wrong-{}.json", path.replace('/', "_")));
        std::fs::write(&file, doc.to_string()).unwrap();
        let (passed, said) = run(&st, file.to_str().unwrap(), base, &extra);
        assert!(
            !passed,
            "a wrong status for GET {path} went unnoticed:\n{}",
            tail(&said)
        );
        assert!(said.contains("GET ") && said.contains(path), "{}", tail(&said));
    }
}
