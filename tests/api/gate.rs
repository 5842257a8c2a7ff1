//! The `avs_enabled` gate for the caller's actor, with Flipper's buckets.

use crate::support::*;

fn search_uri() -> &'static str {
    "/avs/v0/avs/search?stationNo=500&appointmentIen=1000"
}

#[tokio::test]
async fn toggle_off_is_404_on_every_avs_route_with_no_upstream_call() {
    for toggles in [
        "[features.avs_enabled]\nboolean = false\n",
        "",
        "[features.other]\nboolean = true\n",
    ] {
        let app = TestApp::builder().toggles(toggles).start().await;
        app.upstream.summary(&fixture("full"));
        for uri in [format!("/avs/v0/avs/{FULL_SID}"), search_uri().to_owned()] {
            app.get(&uri, &owner_token()).await.assert_error(
                404,
                "Not found",
                "There are no routes matching your request",
            );
        }
        assert_eq!(app.upstream.hits(), 0, "toggles: {toggles:?}");
    }
}

#[tokio::test]
async fn ten_percent_lets_user_15_in_and_keeps_user_1_out() {
    let app = TestApp::builder()
        .toggles("[features.avs_enabled]\npercentage_of_actors = 10\n")
        .start()
        .await;
    // No email claim, so the actor id is `sub`: bucket 4246 (in) and 46802 (out).
    let user_15 = rs256(&claims("User;15", Some(DEV_ICN), None));
    let user_1 = rs256(&claims("User;1", Some(DEV_ICN), None));
    assert_eq!(app.get(search_uri(), &user_15).await.status, 200);
    assert_eq!(app.get(search_uri(), &user_1).await.status, 404);
    assert_eq!(app.upstream.hits(), 1);
}

#[tokio::test]
async fn the_actor_is_the_lowercased_email_when_present() {
    // Bucket 45493: out at 10 %, in at 50 %, whatever the sub.
    let token = rs256(&claims(
        "User;15",
        Some(DEV_ICN),
        Some("VETS.GOV.USER+1@GMAIL.COM"),
    ));
    let ten = TestApp::builder()
        .toggles("[features.avs_enabled]\npercentage_of_actors = 10\n")
        .start()
        .await;
    assert_eq!(ten.get(search_uri(), &token).await.status, 404);
    let fifty = TestApp::builder()
        .toggles("[features.avs_enabled]\npercentage_of_actors = 50\n")
        .start()
        .await;
    assert_eq!(fifty.get(search_uri(), &token).await.status, 200);
}

#[tokio::test]
async fn a_named_tester_and_the_decimal_edge() {
    let app = TestApp::builder()
        .toggles("[features.avs_enabled]\nactors = [\"tester@example.com\"]\npercentage_of_actors = 2.007\n")
        .start()
        .await;
    let tester = rs256(&claims("t-1", Some(DEV_ICN), Some("Tester@Example.com")));
    let edge = rs256(&claims("User;19008", Some(DEV_ICN), None)); // bucket 2007: in at 2.007 %
    let outside = rs256(&claims("User;42", Some(DEV_ICN), None));
    assert_eq!(app.get(search_uri(), &tester).await.status, 200);
    assert_eq!(app.get(search_uri(), &edge).await.status, 200);
    assert_eq!(app.get(search_uri(), &outside).await.status, 404);
}
