//! The rollout page: each feature's state and gates, the release plan's stages as buttons, and
//! one prominent Disable (rollback). Plain HTML forms, no JavaScript, no external assets.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, ORIGIN, REFERRER_POLICY, X_FRAME_OPTIONS};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{AdminState, secret_matches};
use crate::http::ApiError;
use crate::rollout::verdict::Verdict;
use crate::toggles::{Change, Percentage};

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/flipper", get(index))
        .route("/flipper/admin.css", get(stylesheet))
        .route("/flipper/features", post(add_feature))
        .route("/flipper/features/{name}", get(feature_page))
        .route("/flipper/features/{name}/{action}", post(act))
}

fn path_segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A page, rendered by its askama template (which escapes every value), with the headers every
/// admin page carries.
fn html(page: impl Template) -> Response {
    let Ok(page) = page.render() else {
        return ApiError::Internal.into_response();
    };
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CSP),
        ),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // `same-origin`, not `no-referrer`: with the latter, browsers post forms with `Origin: null`.
        (REFERRER_POLICY, HeaderValue::from_static("same-origin")),
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    (headers, page).into_response()
}

async fn stylesheet() -> Response {
    const CSS: &str = "body{font:16px/1.4 system-ui,sans-serif;margin:0;color:#1b1b1b}\
        header{background:#112e51;padding:.6em 1em}header a{color:#fff;text-decoration:none;font-weight:bold}\
        main{padding:1em 2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}\
        td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
        .state{font-weight:bold;padding:.1em .5em;border-radius:.3em}.on{background:#c7efcf}\
        .conditional{background:#fff1d2}.off{background:#eee}\
        form{display:inline-block;margin:.2em .4em .2em 0}button{font-size:1em;padding:.4em .9em;cursor:pointer}\
        .stage button{background:#005ea2;color:#fff;border:0;border-radius:.25em}\
        .rollback button{background:#b50909;color:#fff;border:0;border-radius:.25em;font-size:1.3em;\
        font-weight:bold;padding:.6em 1.4em}section{margin:1.2em 0}\
        .pass{background:#c7efcf}.hold{background:#f4c7c3}.inconclusive{background:#fff1d2}\
        button:disabled{background:#aaa;cursor:not-allowed}";
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        CSS,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "admin/index.html")]
struct IndexPage<'a> {
    features: Vec<FeatureRow<'a>>,
    csrf: &'a str,
}

struct FeatureRow<'a> {
    name: &'a str,
    href: String,
    state: &'static str,
}

async fn index(State(state): State<AdminState>) -> Response {
    let snapshot = state.toggles.snapshot();
    let mut features: Vec<FeatureRow<'_>> = snapshot
        .features
        .iter()
        .map(|(name, f)| FeatureRow {
            name,
            href: path_segment(name),
            state: f.state().as_str(),
        })
        .collect();
    features.sort_by_key(|f| f.name);
    html(IndexPage {
        features,
        csrf: &state.csrf,
    })
}

#[derive(Template)]
#[template(path = "admin/feature.html")]
struct FeaturePage<'a> {
    name: &'a str,
    /// The feature's page, percent-encoded: its forms post to `{base}/{action}`.
    base: String,
    state: &'static str,
    boolean: bool,
    actors: Vec<&'a str>,
    percentage_of_actors: String,
    percentage_of_time: String,
    /// The current stage's verdict, shown first; its next-stage button is live only on `pass`.
    verdict: Option<Verdict>,
    csrf: &'a str,
    /// The rollout report's section, rendered (and escaped) by its own template.
    report: String,
}

async fn feature_page(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    let snapshot = state.toggles.snapshot();
    let Some(feature) = snapshot.features.get(&name) else {
        return ApiError::NoRoute.into_response();
    };
    let pct = |p: Option<Percentage>| p.map_or("—".to_owned(), |p| format!("{p} %"));
    let (report, verdict) = match &state.rollout {
        Some(rollout) => (
            rollout.report().await.page_section(&name),
            rollout.verdict(&name).await.ok().flatten(),
        ),
        None => (String::new(), None),
    };
    html(FeaturePage {
        name: &name,
        base: format!("/flipper/features/{}", path_segment(&name)),
        state: feature.state().as_str(),
        boolean: feature.boolean,
        actors: feature.actors.iter().map(String::as_str).collect(),
        percentage_of_actors: pct(feature.percentage_of_actors),
        percentage_of_time: pct(feature.percentage_of_time),
        verdict,
        csrf: &state.csrf,
        report,
    })
}

#[derive(Deserialize)]
struct PageForm {
    csrf: Option<String>,
    name: Option<String>,
    percentage: Option<String>,
    flipper_id: Option<String>,
    /// `true` with a `reason`: a widening over the rollout guard, recorded with its stage.
    force: Option<String>,
    reason: Option<String>,
}

/// The form, if it came from this page: readable, with the anti-forgery token, and a same-origin
/// `Origin` when the browser sends one.
fn genuine(
    state: &AdminState,
    headers: &HeaderMap,
    form: Result<Form<PageForm>, FormRejection>,
) -> Result<PageForm, ApiError> {
    let Ok(Form(form)) = form else {
        return Err(ApiError::ForgedForm);
    };
    if came_from_this_page(state, headers, &form) {
        Ok(form)
    } else {
        Err(ApiError::ForgedForm)
    }
}

fn came_from_this_page(state: &AdminState, headers: &HeaderMap, form: &PageForm) -> bool {
    let token_ok = form
        .csrf
        .as_deref()
        .is_some_and(|t| secret_matches(t, &state.csrf));
    let origin_ok = match (headers.get(ORIGIN), headers.get(HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let origin = origin.to_str().unwrap_or("");
            let host = host.to_str().unwrap_or("-");
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }
        (Some(_), None) => false,
    };
    token_ok && origin_ok
}

async fn add_feature(
    State(state): State<AdminState>,
    headers: HeaderMap,
    form: Result<Form<PageForm>, FormRejection>,
) -> Response {
    let form = match genuine(&state, &headers, form) {
        Ok(form) => form,
        Err(forged) => return forged.into_response(),
    };
    let Some(name) = form.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) else {
        return Redirect::to("/flipper").into_response();
    };
    match state.toggles.apply(name, Change::AddFeature).await {
        Ok(()) => Redirect::to(&format!("/flipper/features/{}", path_segment(name))).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn act(
    State(state): State<AdminState>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<PageForm>, FormRejection>,
) -> Response {
    let form = match genuine(&state, &headers, form) {
        Ok(form) => form,
        Err(forged) => return forged.into_response(),
    };
    let back = Redirect::to(&format!("/flipper/features/{}", path_segment(&name))).into_response();
    let actor = form
        .flipper_id
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    let change = match action.as_str() {
        "percentage" => match super::api::percentage(form.percentage.as_deref()) {
            Ok(p) => Change::PercentageOfActors(p),
            Err(e) => return e.into_response(),
        },
        "actors" => match actor {
            Some(id) => Change::AddActor(id),
            None => return back,
        },
        "remove-actor" => match actor {
            Some(id) => Change::RemoveActor(id),
            None => return back,
        },
        "disable" => Change::DisableBoolean,
        "enable" => Change::EnableBoolean,
        "sign-off" => {
            let reason = match super::rollout::reason(form.reason.as_deref()) {
                Ok(reason) => reason,
                Err(bad) => return bad.into_response(),
            };
            let signed = super::rollout::signed_off(&state, &name, &reason).await;
            return if signed.status().is_success() {
                back
            } else {
                signed
            };
        }
        _ => return ApiError::NoRoute.into_response(),
    };
    let mut given = std::collections::HashMap::new();
    if let Some(force) = &form.force {
        given.insert("force".to_owned(), force.clone());
    }
    if let Some(reason) = &form.reason {
        given.insert("reason".to_owned(), reason.clone());
    }
    let force = match super::rollout::force(&given) {
        Ok(force) => force,
        Err(bad) => return bad.into_response(),
    };
    match super::rollout::guarded_write(&state, &name, change, force).await {
        Ok(()) => back,
        Err(refused) => refused,
    }
}
