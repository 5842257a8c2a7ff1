//! The test harness, one concern a file: the app under test (`app`), a scripted upstream
//! (`upstream`), forward proxies (`proxy`), tokens (`tokens`), the contract every answer is
//! held to (`contract`), the real binary (`binary`), PostgreSQL (`postgres`), the admin API
//! (`admin`) and waiting on a condition (`wait`). Test files only test.

#![allow(dead_code, unused_imports)] // each test module uses its own share

mod admin;
mod app;
mod binary;
mod contract;
mod nginx;
mod oracle;
mod postgres;
mod proxy;
mod sis;
mod tokens;
mod upstream;
mod wait;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use axum::http::Method;
use serde_json::Value;

pub use admin::*;
pub use app::*;
pub use binary::*;
pub use contract::*;
pub use nginx::*;
pub use oracle::*;
pub use postgres::*;
pub use proxy::*;
pub use sis::*;
pub use tempfile::TempDir;
pub use tokens::*;
pub use upstream::*;
pub use wait::*;

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub fn read_json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo(path)).unwrap()).unwrap()
}

/// Fixture ICNs and sids (all synthetic).
pub const DEV_ICN: &str = "1012345678V123456";
pub const OTHER_ICN: &str = "1099999999V999999";
pub const FULL_SID: &str = "9A7AF40B2BC2471EA116891839113252";

pub fn get(uri: &str) -> axum::http::request::Builder {
    axum::http::Request::builder().method(Method::GET).uri(uri)
}

/// A temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("avs-api-test-")
        .tempdir()
        .unwrap()
}

/// The first of `candidates` that exists. A missing program fails the test under CI
/// (`CI=true`; `.ci/run` installs them all), and elsewhere skips it, saying so.
pub fn required(candidates: &[&str], what: &str) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        skip(what, &format!("none of {candidates:?} is installed"));
    }
    found
}

/// What every test without its program does: under CI (`CI=true`, which `.ci/run` sets) it
/// fails; elsewhere it says SKIPPED and adds a line to `target/tests-skipped.txt`, which
/// `.ci/run` counts and prints after the run (zero under CI).
pub fn skip(what: &str, how: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} is required under CI (.ci/run installs it): {how}"
    );
    eprintln!("SKIPPED: {what}: {how}");
    use std::io::Write;
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(repo("target/tests-skipped.txt"))
    {
        let _ = writeln!(file, "{what}: {how}");
    }
}

/// The shipped fixture summaries, loaded once.
pub fn fixture(name: &str) -> Value {
    static CACHE: OnceLock<Mutex<HashMap<String, Value>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    cache
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_insert_with(|| read_json(&format!("fixtures/summaries/{name}.json")))
        .clone()
}

/// The sum of a metric's series in this process's recorder (every in-process app shares it;
/// the first call installs it, so call it before the requests it is to count).
pub fn metric_sum(name: &str) -> f64 {
    let text = avs_api::telemetry::metrics().unwrap().render();
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}
