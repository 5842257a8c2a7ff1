//! Toggles: Flipper's buckets against an independently computed table, and the live file source.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use avs_api::domain::ActorId;
use avs_api::toggles::{Feature, Percentage, SourceConfig, SourceHealth, Toggles, bucket};
use serde_json::Value;

use crate::support::*;

#[test]
fn buckets_match_the_independently_computed_table() {
    let rows = read_json("tests/data/buckets.json");
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 30);
    for row in rows {
        let feature = row["feature"].as_str().unwrap();
        let actor = ActorId::new(row["actor"].as_str().unwrap());
        let pct = row["percentage"].as_str().unwrap();
        assert_eq!(
            u64::from(bucket(feature, &actor)),
            row["bucket"].as_u64().unwrap(),
            "{row}"
        );
        let gate = Feature {
            percentage_of_actors: Percentage::parse(pct),
            ..Feature::default()
        };
        let enabled = gate.is_enabled(feature, Some(&actor), || 0.0);
        assert_eq!(Value::Bool(enabled), row["enabled"], "{row}");
    }
}

const ON: &str = "[features.avs_enabled]\nboolean = true\n";
const OFF: &str = "[features.avs_enabled]\nboolean = false\n";

fn tester() -> ActorId {
    ActorId::new("tester@example.com")
}

async fn file_toggles(path: &Path) -> Arc<Toggles> {
    Toggles::start(&SourceConfig::File(path.to_owned()), Duration::from_secs(5))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_file_change_is_in_force_within_2_seconds() {
    let dir = temp_dir();
    let path = dir.path().join("toggles.toml");
    std::fs::write(&path, OFF).unwrap();
    let toggles = file_toggles(&path).await;
    assert!(!toggles.is_enabled("avs_enabled", Some(&tester())));
    std::fs::write(&path, ON).unwrap(); // in place
    within(Duration::from_secs(2), async || {
        toggles.is_enabled("avs_enabled", Some(&tester()))
    })
    .await;
    // Replaced by rename, as editors and the admin API do.
    let temp = dir.path().join("toggles.toml.new");
    std::fs::write(&temp, format!("{OFF}actors = [\"tester@example.com\"]\n")).unwrap();
    std::fs::rename(&temp, &path).unwrap();
    within(Duration::from_secs(2), async || {
        toggles.snapshot().features["avs_enabled"]
            .actors
            .contains("tester@example.com")
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_file_keeps_the_previous_state_and_says_so() {
    let dir = temp_dir();
    let path = dir.path().join("toggles.toml");
    std::fs::write(&path, ON).unwrap();
    let toggles = file_toggles(&path).await;
    std::fs::write(&path, "[features.avs_enabled\nboolean = ").unwrap();
    within(Duration::from_secs(2), async || {
        matches!(toggles.health(), SourceHealth::Stale { .. })
    })
    .await;
    assert!(
        toggles.is_enabled("avs_enabled", Some(&tester())),
        "the last good state stays in force"
    );
    // Fixing the file recovers.
    std::fs::write(&path, OFF).unwrap();
    within(Duration::from_secs(2), async || {
        !toggles.is_enabled("avs_enabled", Some(&tester()))
    })
    .await;
    assert!(matches!(toggles.health(), SourceHealth::Loaded { .. }));
}

#[tokio::test]
async fn a_deleted_and_recreated_file_is_picked_up() {
    let dir = temp_dir();
    let path = dir.path().join("toggles.toml");
    std::fs::write(&path, OFF).unwrap();
    let toggles = file_toggles(&path).await;
    std::fs::remove_file(&path).unwrap();
    within(Duration::from_secs(2), async || {
        matches!(toggles.health(), SourceHealth::Stale { .. })
    })
    .await;
    std::fs::write(&path, ON).unwrap();
    within(Duration::from_secs(2), async || {
        toggles.is_enabled("avs_enabled", Some(&tester()))
    })
    .await;
}

#[tokio::test]
async fn the_api_follows_the_file_and_readyz_reports_a_stale_file() {
    let upstream = FakeUpstream::start().await;
    let app = TestApp::builder().upstream(upstream).toggles(OFF).start().await;
    let uri = "/avs/v0/avs/search?stationNo=500&appointmentIen=1";
    assert_eq!(app.get(uri, &owner_token()).await.status, 404);
    std::fs::write(app.toggles_path(), ON).unwrap();
    within(Duration::from_secs(2), async || {
        app.get(uri, &owner_token()).await.status == 200
    })
    .await;
    std::fs::write(app.toggles_path(), "garbage [").unwrap();
    within(Duration::from_secs(3), async || {
        let ready = app.get_anonymous("/readyz").await;
        assert_eq!(ready.status, 200, "the last good state serves");
        ready.json["checks"]["toggles"]
            .as_str()
            .unwrap()
            .starts_with("stale")
    })
    .await;
    assert_eq!(app.get(uri, &owner_token()).await.status, 200);
}

#[tokio::test]
async fn a_file_that_never_loaded_fails_closed() {
    let dir = temp_dir();
    let toggles = file_toggles(&dir.path().join("missing.toml")).await;
    assert!(matches!(toggles.health(), SourceHealth::NeverLoaded { .. }));
    assert!(!toggles.is_enabled("avs_enabled", Some(&tester())));
}

/// The embedded default's toggle file is as shipped: a test that drove the admin API against
/// the development default would otherwise rewrite it in the repository.
#[test]
fn the_development_toggle_file_is_as_shipped() {
    let text = std::fs::read_to_string(repo("fixtures/toggles.toml")).unwrap();
    let snapshot = avs_api::toggles::parse_toml(&text).unwrap();
    let mut names: Vec<&String> = snapshot.features.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "avs_enabled",
            "avs_pdf_enabled",
            "va_online_scheduling_add_OH_avs",
            "va_online_scheduling_after_visit_summary"
        ]
    );
    assert!(
        snapshot
            .features
            .values()
            .all(|f| f.boolean && f.actors.is_empty())
    );
    assert!(
        text.starts_with("# Development toggles"),
        "rewritten by a test:\n{text}"
    );
}
