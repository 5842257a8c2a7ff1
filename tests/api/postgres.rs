//! The Postgres toggle source against a real PostgreSQL server (`support::postgres`).

use std::time::{Duration, Instant};

use avs_api::domain::ActorId;
use avs_api::toggles::{SourceConfig, SourceHealth, Toggles};
use axum::http::Method;

use crate::support::*;

fn actor(id: &str) -> ActorId {
    ActorId::new(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_as_flipper_writes_them_are_evaluated_and_followed() {
    let Some(pg) = Postgres::start().await else { return };
    let source = SourceConfig::Postgres {
        url: pg.url.clone(),
        read_only: false,
    };
    let toggles = Toggles::start(&source, Duration::from_secs(1)).await.unwrap();
    assert!(
        matches!(toggles.health(), SourceHealth::Loaded { .. }),
        "tables created, empty store loaded"
    );

    // What Flipper's ActiveRecord adapter writes for: add feature, 10 %, one actor.
    let db = pg.client().await.unwrap();
    db.batch_execute(
        "INSERT INTO flipper_features (key, created_at, updated_at) VALUES ('avs_enabled', now(), now());
         INSERT INTO flipper_gates (feature_key, key, value, created_at, updated_at) VALUES
           ('avs_enabled', 'percentage_of_actors', '10', now(), now()),
           ('avs_enabled', 'actors', 'tester@example.com', now(), now());",
    )
    .await
    .unwrap();
    within(Duration::from_secs(3), async || {
        toggles.is_enabled("avs_enabled", Some(&actor("User;15")))
    })
    .await;
    assert!(!toggles.is_enabled("avs_enabled", Some(&actor("User;1"))));
    assert!(toggles.is_enabled("avs_enabled", Some(&actor("tester@example.com"))));

    // Flipper replaces a percentage by deleting and inserting its row.
    db.batch_execute(
        "DELETE FROM flipper_gates WHERE feature_key = 'avs_enabled' AND key = 'percentage_of_actors';
         INSERT INTO flipper_gates (feature_key, key, value, created_at, updated_at)
           VALUES ('avs_enabled', 'percentage_of_actors', '46.803', now(), now());",
    )
    .await
    .unwrap();
    let changed = Instant::now();
    within(Duration::from_secs(3), async || {
        toggles.is_enabled("avs_enabled", Some(&actor("User;1")))
    })
    .await;
    assert!(
        changed.elapsed() <= Duration::from_millis(2500),
        "in force within the 1 s refresh period (+ slack)"
    );

    // The service's own writes follow Flipper's row rules.
    toggles
        .apply("avs_enabled", avs_api::toggles::Change::EnableBoolean)
        .await
        .unwrap();
    let rows = db
        .query(
            "SELECT key, value FROM flipper_gates WHERE feature_key = 'avs_enabled'",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        vec![("boolean".to_owned(), Some("true".to_owned()))],
        "enable deletes the other gates"
    );
    toggles
        .apply("avs_enabled", avs_api::toggles::Change::DisableBoolean)
        .await
        .unwrap();
    let count: i64 = db
        .query_one("SELECT count(*) FROM flipper_gates", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "disable deletes every gate row");
    assert!(!toggles.is_enabled("avs_enabled", Some(&actor("tester@example.com"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_keeps_the_last_state_and_requests_are_answered() {
    let Some(mut pg) = Postgres::own().await else {
        return;
    };
    let url = pg.url.clone();
    let app = TestApp::builder()
        .envs(&[("AVS_TOGGLES", url.as_str()), ("AVS_TOGGLES_REFRESH_SECS", "1")])
        .start()
        .await;
    app.state
        .toggles
        .apply(
            "avs_enabled",
            avs_api::toggles::Change::PercentageOfActors(avs_api::toggles::Percentage::Integer(10)),
        )
        .await
        .unwrap();
    let search = "/avs/v0/avs/search?stationNo=500&appointmentIen=1";
    let user_15 = rs256(&claims("User;15", Some(DEV_ICN), None));
    let user_1 = rs256(&claims("User;1", Some(DEV_ICN), None));
    assert_eq!(app.get(search, &user_15).await.status, 200);
    assert_eq!(app.get(search, &user_1).await.status, 404);

    pg.stop();
    within(Duration::from_secs(8), async || {
        matches!(app.state.toggles.health(), SourceHealth::Stale { .. })
    })
    .await;
    assert_eq!(
        app.get(search, &user_15).await.status,
        200,
        "the last state stays in force"
    );
    assert_eq!(app.get(search, &user_1).await.status, 404);
    let ready = app.get_anonymous("/readyz").await;
    assert_eq!(ready.status, 200);
    assert!(
        ready.json["checks"]["toggles"]
            .as_str()
            .unwrap()
            .starts_with("stale")
    );
}

#[tokio::test]
async fn a_database_never_reached_fails_closed_and_is_not_ready() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let app = TestApp::builder().envs(&[("AVS_TOGGLES", &url)]).start().await;
    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.status, 503);
    assert!(
        r.error()["detail"]
            .as_str()
            .unwrap()
            .starts_with("Not ready: toggles")
    );
    app.get(&format!("/avs/v0/avs/{FULL_SID}"), &owner_token())
        .await
        .assert_error(404, "Not found", "There are no routes matching your request");
    assert_eq!(app.upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_store() {
    let Some(pg) = Postgres::start().await else { return };
    let extra = [
        ("AVS_TOGGLES", pg.url.as_str()),
        ("AVS_TOGGLES_REFRESH_SECS", "1"),
    ];
    let a = TestApp::builder().envs(&extra).start().await;
    let b = TestApp::builder().envs(&extra).start().await;
    let admin_a = a.admin();
    let search = "/avs/v0/avs/search?stationNo=500&appointmentIen=1";
    let user_15 = rs256(&claims("User;15", Some(DEV_ICN), None));
    assert_eq!(b.get(search, &user_15).await.status, 404);

    let (status, _) = admin(
        &admin_a,
        Method::POST,
        "/flipper/api/features/avs_enabled/percentage_of_actors",
        Some(ADMIN_TOKEN),
        Some(("application/json", r#"{"percentage":"10"}"#.to_owned())),
    )
    .await;
    assert_eq!(status, 200);
    let set = Instant::now();
    within(Duration::from_secs(3), async || {
        b.get(search, &user_15).await.status == 200
    })
    .await;
    assert!(
        set.elapsed() <= Duration::from_millis(2500),
        "in force on B within the refresh period (+ slack)"
    );
    assert_eq!(
        b.get(search, &rs256(&claims("User;1", Some(DEV_ICN), None)))
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_is_not_created_or_written() {
    let Some(pg) = Postgres::start().await else { return };
    let source = SourceConfig::Postgres {
        url: pg.url.clone(),
        read_only: true,
    };
    let toggles = Toggles::start(&source, Duration::from_secs(1)).await.unwrap();
    assert!(
        matches!(toggles.health(), SourceHealth::NeverLoaded { .. }),
        "no tables were created"
    );
    let write = toggles
        .apply("avs_enabled", avs_api::toggles::Change::EnableBoolean)
        .await;
    assert!(matches!(write, Err(avs_api::toggles::WriteError::ReadOnly)));
}
