//! One upstream call per summary: the cache, coalescing, stale-if-error, the breaker, shedding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::*;

fn summary_with(sid: &str, icn: &str, padding: usize) -> Value {
    json!({"sid": sid, "data": {"patientInfo": {"icn": icn}, "radiologyReports1Yr": "x".repeat(padding)}})
}

fn sid(n: usize) -> String {
    format!("{n:032X}")
}

async fn concurrent(app: &Arc<TestApp>, n: usize, uri: &str, token: &str) -> Vec<(u16, Value)> {
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (app, uri, token) = (app.clone(), uri.to_owned(), token.to_owned());
        tasks.spawn(async move {
            let r = app.get(&uri, &token).await;
            (r.status.as_u16(), r.json)
        });
    }
    tasks.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_stampede_makes_one_upstream_request() {
    // One caller here stands for many: lift the per-caller cap.
    let app = Arc::new(
        TestApp::builder()
            .envs(&[("AVS_MAX_IN_FLIGHT_PER_CALLER", "1000")])
            .start()
            .await,
    );
    let doc = fixture("full");
    app.upstream.script(
        &format!("/avs/{FULL_SID}"),
        Scripted::json(&doc).delayed(Duration::from_millis(300)),
    );
    let answers = concurrent(&app, 500, &format!("/avs/v0/avs/{FULL_SID}"), &owner_token()).await;
    assert_eq!(
        app.upstream.hits(),
        1,
        "500 concurrent misses, one upstream request"
    );
    assert!(answers.iter().all(|(status, _)| *status == 200));
    assert!(answers.windows(2).all(|w| w[0].1 == w[1].1), "all the same body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stampede_makes_one_request_and_everyone_gets_the_same_error() {
    let app = Arc::new(
        TestApp::builder()
            .envs(&[("AVS_MAX_IN_FLIGHT_PER_CALLER", "1000")])
            .start()
            .await,
    );
    app.upstream.script(
        &format!("/avs/{FULL_SID}"),
        Scripted::status(500, "").delayed(Duration::from_millis(300)),
    );
    let answers = concurrent(&app, 200, &format!("/avs/v0/avs/{FULL_SID}"), &owner_token()).await;
    assert_eq!(app.upstream.hits(), 1);
    assert!(
        answers
            .iter()
            .all(|(status, body)| *status == 502 && body["errors"][0]["status"] == "bad_gateway")
    );
}

#[tokio::test]
async fn ownership_is_checked_on_cache_hits() {
    let app = TestApp::start().await;
    app.upstream.summary(&fixture("full"));
    let uri = format!("/avs/v0/avs/{FULL_SID}");
    // A miss, a hit through moka, then hits from the hot map (`clinical/vista/hot.rs`).
    for _ in 0..3 {
        assert_eq!(app.get(&uri, &owner_token()).await.status, 200);
    }
    assert_eq!(app.state.summaries.hot_summaries(), 1);
    let stranger = rs256(&claims("u-2", Some(OTHER_ICN), None));
    app.get(&uri, &stranger)
        .await
        .assert_not_yours("User may not view this AVS.");
    assert_eq!(app.upstream.hits(), 1, "the 401 came from the cache");
}

#[tokio::test]
async fn upstream_404_is_cached_for_the_negative_ttl_only_and_other_errors_not_at_all() {
    let app = TestApp::builder()
        .envs(&[("AVS_CACHE_NEGATIVE_TTL_SECS", "1")])
        .start()
        .await;
    let uri = format!("/avs/v0/avs/{FULL_SID}");
    for _ in 0..3 {
        assert_eq!(app.get(&uri, &owner_token()).await.status, 404);
    }
    assert_eq!(app.upstream.hits(), 1, "404 cached");
    advance(Duration::from_millis(1300)).await;
    assert_eq!(app.get(&uri, &owner_token()).await.status, 404);
    assert_eq!(app.upstream.hits(), 2, "and no longer than the negative TTL");

    let other = sid(7);
    app.upstream
        .script(&format!("/avs/{other}"), Scripted::status(500, ""));
    for _ in 0..3 {
        assert_eq!(
            app.get(&format!("/avs/v0/avs/{other}"), &owner_token())
                .await
                .status,
            502
        );
    }
    assert_eq!(app.upstream.hits(), 5, "errors other than 404 are not cached");
}

#[tokio::test]
async fn empty_searches_are_cached_for_the_negative_ttl_and_hits_for_the_ttl() {
    let app = TestApp::builder()
        .envs(&[("AVS_CACHE_NEGATIVE_TTL_SECS", "1")])
        .start()
        .await;
    app.upstream.script(
        "/avs-by-appointment/500/1",
        Scripted::json(&json!([{"sid": FULL_SID, "icn": DEV_ICN}])),
    );
    app.upstream
        .script("/avs-by-appointment/500/2", Scripted::json(&json!([])));
    for _ in 0..3 {
        app.get(
            "/avs/v0/avs/search?stationNo=500&appointmentIen=1",
            &owner_token(),
        )
        .await;
        app.get(
            "/avs/v0/avs/search?stationNo=500&appointmentIen=2",
            &owner_token(),
        )
        .await;
    }
    assert_eq!(app.upstream.hits(), 2);
    advance(Duration::from_millis(1300)).await;
    app.get(
        "/avs/v0/avs/search?stationNo=500&appointmentIen=1",
        &owner_token(),
    )
    .await;
    app.get(
        "/avs/v0/avs/search?stationNo=500&appointmentIen=2",
        &owner_token(),
    )
    .await;
    assert_eq!(app.upstream.hits(), 3, "only the empty search expired");
}

#[tokio::test]
async fn the_byte_budget_holds() {
    let budget = 200_000u64;
    let app = TestApp::builder()
        .envs(&[("AVS_CACHE_MAX_BYTES", &budget.to_string())])
        .start()
        .await;
    for n in 0..20 {
        app.upstream.summary(&summary_with(&sid(n), DEV_ICN, 30_000));
        // A miss, then a hit through moka (it enters the hot map), then a hit from that map.
        for _ in 0..3 {
            let answer = app.get(&format!("/avs/v0/avs/{}", sid(n)), &owner_token()).await;
            assert_eq!(answer.status, 200);
        }
        let (entries, weighted) = app.state.summaries.cache_usage().await;
        assert!(
            weighted <= budget,
            "weighted size {weighted} over the budget {budget}"
        );
        // What moka lets go leaves the hot map too: it holds nothing outside the budget.
        let hot = app.state.summaries.hot_summaries() as u64;
        assert!(
            (1..=entries).contains(&hot),
            "{hot} hot summaries, {entries} cached"
        );
    }
    let (entries, weighted) = app.state.summaries.cache_usage().await;
    assert!(
        (3..20).contains(&entries),
        "filling past the budget evicts: {entries} entries, {weighted} bytes"
    );
    assert_eq!(
        app.upstream.hits(),
        20,
        "every hit after the first request was a hit"
    );
}

#[tokio::test]
async fn stale_if_error_serves_an_expired_copy_within_the_limit_only() {
    let app = TestApp::builder()
        .envs(&[
            ("AVS_CACHE_TTL_SECS", "1"),
            ("AVS_CACHE_STALE_IF_ERROR_SECS", "2"),
        ])
        .start()
        .await;
    let uri = format!("/avs/v0/avs/{FULL_SID}");
    app.upstream.summary(&fixture("full"));
    let fresh = app.get(&uri, &owner_token()).await;
    assert_eq!(fresh.status, 200);
    app.upstream
        .script(&format!("/avs/{FULL_SID}"), Scripted::status(503, ""));
    advance(Duration::from_millis(1200)).await;
    let stale = app.get(&uri, &owner_token()).await;
    assert_eq!(stale.status, 200, "expired, the upstream failing: the stale copy");
    assert_eq!(stale.bytes, fresh.bytes);
    assert_eq!(app.upstream.hits(), 2, "a refresh was tried");
    advance(Duration::from_millis(2200)).await;
    app.get(&uri, &owner_token()).await.assert_error(
        502,
        "Bad gateway",
        "The clinical source returned an invalid response",
    );
}

#[tokio::test]
async fn the_breaker_opens_answers_fast_half_opens_and_closes() {
    let app = TestApp::builder()
        .envs(&[
            ("AVS_BREAKER_MIN_CALLS", "3"),
            ("AVS_BREAKER_MIN_KEYS", "3"),
            ("AVS_BREAKER_COOLDOWN_SECS", "1"),
        ])
        .start()
        .await;
    for n in 0..3 {
        app.upstream
            .script(&format!("/avs/{}", sid(n)), Scripted::status(500, ""));
        assert_eq!(
            app.get(&format!("/avs/v0/avs/{}", sid(n)), &owner_token())
                .await
                .status,
            502
        );
    }
    let hits = app.upstream.hits();
    app.upstream.summary(&summary_with(&sid(10), DEV_ICN, 10));
    // While open, every answer is immediate; judged on the fastest of five, so a test thread
    // preempted once under a loaded CI machine can't fail it.
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let open = app.get(&format!("/avs/v0/avs/{}", sid(10)), &owner_token()).await;
        fastest = fastest.min(started.elapsed());
        open.assert_error(503, "Service unavailable", "Backend Service Outage");
        assert!(open.headers.contains_key("retry-after"));
    }
    assert!(
        fastest < Duration::from_millis(10),
        "open answers at once: {fastest:?}"
    );
    assert_eq!(app.upstream.hits(), hits, "no network call while open");
    // An upstream outage is a detail of readiness, never a reason to pull the replica.
    let ready = app.get_anonymous("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json["checks"]["upstream"], "open");

    advance(Duration::from_millis(1100)).await;
    assert_eq!(
        app.get(&format!("/avs/v0/avs/{}", sid(10)), &owner_token())
            .await
            .status,
        200,
        "the half-open probe"
    );
    app.upstream.summary(&summary_with(&sid(11), DEV_ICN, 10));
    assert_eq!(
        app.get(&format!("/avs/v0/avs/{}", sid(11)), &owner_token())
            .await
            .status,
        200,
        "closed again"
    );
    assert_eq!(app.get_anonymous("/readyz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_service_sheds_with_503_and_retry_after() {
    let app = Arc::new(
        TestApp::builder()
            .envs(&[
                ("AVS_MAX_IN_FLIGHT", "4"),
                ("AVS_MAX_IN_FLIGHT_PER_CALLER", "100"),
            ])
            .start()
            .await,
    );
    for n in 0..12 {
        app.upstream.script(
            &format!("/avs/{}", sid(n)),
            Scripted::json(&summary_with(&sid(n), DEV_ICN, 10)).delayed(Duration::from_millis(500)),
        );
    }
    let mut tasks = JoinSet::new();
    for n in 0..12 {
        let app = app.clone();
        tasks.spawn(async move {
            let r = app.get(&format!("/avs/v0/avs/{}", sid(n)), &owner_token()).await;
            (r.status.as_u16(), r.headers.get("retry-after").cloned(), r.json)
        });
    }
    let answers = tasks.join_all().await;
    let served = answers.iter().filter(|(s, _, _)| *s == 200).count();
    let shed: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 503).collect();
    assert_eq!(served + shed.len(), 12);
    assert!(
        served >= 4 && !shed.is_empty(),
        "served {served}, shed {}",
        shed.len()
    );
    for (_, retry_after, body) in shed {
        assert_eq!(retry_after.as_ref().unwrap(), "1");
        assert_eq!(body["errors"][0]["detail"], "The service is busy; retry shortly");
    }
}

#[tokio::test]
async fn verified_tokens_are_cached_until_their_exp() {
    let app = TestApp::start().await;
    let uri = "/avs/v0/avs/search?stationNo=500&appointmentIen=1";
    let token = owner_token();
    let before = app.state.identity.signature_checks();
    for _ in 0..5 {
        assert_eq!(app.get(uri, &token).await.status, 200);
    }
    assert_eq!(
        app.state.identity.signature_checks() - before,
        1,
        "hits cost no signature check"
    );

    // A token expiring in 1 s is re-verified after that (and still passes within the leeway).
    let mut short = claims("owner-1", Some(DEV_ICN), None);
    short["exp"] = json!(now() + 1);
    let short = rs256(&short);
    let before = app.state.identity.signature_checks();
    app.get(uri, &short).await;
    app.get(uri, &short).await;
    assert_eq!(app.state.identity.signature_checks() - before, 1);
    // Wall-clock seconds (`exp`), so no clock to move: asked until it is re-verified.
    within(Duration::from_secs(3), async || {
        app.get(uri, &short).await;
        app.state.identity.signature_checks() - before == 2
    })
    .await;
}
