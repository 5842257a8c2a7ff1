//! The rollout report as one set of types: serialised to JSON (camelCase), and rendered to
//! Markdown and to the admin page through askama templates (`templates/`), which escape HTML by
//! default. Each stage carries the release plan's Results: unique users, metrics, downstream
//! effect, error types, the links share beside the plan's expectation, and per-replica rows.

use std::collections::BTreeMap;

use askama::Template;
use serde::Serialize;

use super::figures::Figures;
use super::verdict::Verdict;
use crate::toggles::{AVS_ENABLED, AVS_PDF, LINKS_ENABLED, OH_AVS};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub generated_at: String,
    /// `fleet` (every replica, through the shared PostgreSQL) or `this instance`.
    pub scope: &'static str,
    pub toggles: Vec<ToggleReport>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToggleReport {
    pub toggle: String,
    pub stages: Vec<StageReport>,
    /// Requests and errors per minute, from this instance.
    pub timeline: Vec<Point>,
    pub cleanup: Cleanup,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Unix seconds of the minute's start.
    pub minute: u64,
    pub requests: u64,
    pub errors: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageReport {
    pub stage: usize,
    pub setting: String,
    pub started_at: String,
    #[serde(flatten)]
    pub figures: StageFigures,
    /// One row per replica that counted in this stage (one, for the file source).
    pub instances: Vec<InstanceRow>,
    /// The stage judged against the plan: its guards and its record (`rollout-guard.md`).
    pub verdict: Verdict,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRow {
    pub instance: String,
    /// Reported within the last three flush periods.
    pub live: bool,
    pub last_report: String,
    #[serde(flatten)]
    pub figures: StageFigures,
}

/// The fields a stage and each of its instance rows share.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageFigures {
    pub unique_actors: UniqueActors,
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency_ms: Latency,
    pub upstream: Upstream,
    pub links: Links,
}

#[derive(Debug, Serialize)]
pub struct UniqueActors {
    pub total: u64,
    pub allowed: u64,
    pub denied: u64,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Upstream {
    pub calls: u64,
    pub failures: u64,
    pub error_rate: f64,
}

/// The plan's prediction, measured: callers for whom appointment links were asked, and those
/// shown at least one (distinct).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Links {
    pub asked: u64,
    pub shown: u64,
    /// `shown / asked`.
    pub share: Option<f64>,
    /// What the release plan expects at this stage's percentage.
    pub expected: Option<Expected>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Expected {
    pub low: f64,
    pub high: f64,
}

/// Whether a toggle can be removed (the plan's post-launch question 5), and what that takes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cleanup {
    pub ready: bool,
    pub verdict: String,
    pub fully_on_since: Option<String>,
    /// Where this service reads the toggle: what removing it means here.
    pub gate_points: Vec<&'static str>,
}

/// Where each toggle is read in this service.
pub const GATE_POINTS: &[(&str, &[&str])] = &[
    (
        AVS_ENABLED,
        &[
            "src/http/vista.rs: show_summary, show_empty_sid and search (`app.require(AVS_ENABLED)`)",
            "src/http/vista.rs: links (`app.gate(AVS_ENABLED)`)",
            "fixtures/toggles.toml and the toggle stores (the feature's rows)",
        ],
    ),
    (
        LINKS_ENABLED,
        &[
            "src/http/vista.rs: links (`app.links_toggle`, `meta.linksEnabled`)",
            "AVS_LINKS_TOGGLE (src/config/toggles.rs): set it to `none` before the feature leaves the store",
            "fixtures/toggles.toml and the toggle stores (the feature's rows)",
        ],
    ),
    (
        OH_AVS,
        &[
            "src/http/oracle.rs: open (every Oracle Health route: `app.require(OH_AVS)`)",
            "fixtures/toggles.toml and the toggle stores (the feature's rows)",
        ],
    ),
    (
        AVS_PDF,
        &[
            "src/http/vista.rs: document and binaries (`app.require(AVS_PDF)`, after avs_enabled)",
            "src/http/vista.rs: links (`app.gate(AVS_PDF)`, the items' `avsPdf`)",
            "fixtures/toggles.toml and the toggle stores (the feature's rows)",
        ],
    ),
];

/// The release plan: "10 % of logged-in users, which will likely result in an AVS link being
/// shown to 2-3 % of users" (and 10-15 % at 50 %).
pub fn expected_links(percentage_of_actors: Option<f64>) -> Option<Expected> {
    let pct = percentage_of_actors?;
    if (pct - 10.0).abs() < 1e-9 {
        Some(Expected {
            low: 0.02,
            high: 0.03,
        })
    } else if (pct - 50.0).abs() < 1e-9 {
        Some(Expected {
            low: 0.10,
            high: 0.15,
        })
    } else {
        None
    }
}

impl StageFigures {
    pub fn from_figures(f: &Figures, expected: Option<Expected>) -> StageFigures {
        let mut unique = f.allowed_actors.clone();
        unique.merge(&f.denied_actors);
        let (asked, shown) = (f.links_asked.count(), f.links_shown.count());
        StageFigures {
            unique_actors: UniqueActors {
                total: unique.count(),
                allowed: f.allowed_actors.count(),
                denied: f.denied_actors.count(),
            },
            requests: f.requests,
            allowed: f.allowed,
            denied: f.denied,
            errors: f.errors.clone(),
            latency_ms: Latency {
                p50: f.latency_quantile_ms(0.5),
                p95: f.latency_quantile_ms(0.95),
            },
            upstream: Upstream {
                calls: f.upstream_calls,
                failures: f.upstream_failures,
                error_rate: if f.upstream_calls == 0 {
                    0.0
                } else {
                    f.upstream_failures as f64 / f.upstream_calls as f64
                },
            },
            links: Links {
                asked,
                shown,
                share: (asked > 0).then(|| shown as f64 / asked as f64),
                expected,
            },
        }
    }

    // Text for the templates.

    pub fn p50_text(&self) -> String {
        ms_text(self.latency_ms.p50)
    }

    pub fn p95_text(&self) -> String {
        ms_text(self.latency_ms.p95)
    }

    pub fn error_rate_percent(&self) -> String {
        format!("{:.2}", self.upstream.error_rate * 100.0)
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "none".to_owned();
        }
        let kinds: Vec<String> = self
            .errors
            .iter()
            .map(|(kind, n)| format!("{kind} × {n}"))
            .collect();
        kinds.join(", ")
    }

    pub fn affected_text(&self) -> String {
        let (calls, failures) = (self.upstream.calls, self.upstream.failures);
        let rate = self.upstream.error_rate * 100.0;
        if failures == 0 {
            format!("No: the clinical source answered all {calls} calls.")
        } else if rate < 1.0 {
            format!("No: upstream error rate {rate:.2} % ({failures} of {calls} calls).")
        } else {
            format!(
                "Yes: upstream error rate {rate:.2} % ({failures} of {calls} calls); check its dashboards."
            )
        }
    }

    pub fn links_text(&self) -> String {
        let l = &self.links;
        let share = l
            .share
            .map_or("n/a".to_owned(), |s| format!("{:.1} %", s * 100.0));
        let expected = l.expected.map_or("no figure for this stage".to_owned(), |e| {
            format!("{:.0}–{:.0} %", e.low * 100.0, e.high * 100.0)
        });
        format!(
            "asked for {} users, shown to {} at least once ({share}); the plan expected {expected}",
            l.asked, l.shown
        )
    }
}

fn ms_text(ms: Option<f64>) -> String {
    match ms {
        Some(v) if v.is_finite() => format!("≤ {v} ms"),
        Some(_) => "> 30 s".to_owned(),
        None => "n/a".to_owned(),
    }
}

impl Report {
    pub fn scope_text(&self) -> &'static str {
        if self.scope == "fleet" {
            "the fleet (every replica, through the shared PostgreSQL)"
        } else {
            "this instance"
        }
    }

    pub fn markdown(&self) -> String {
        MarkdownReport { report: self }
            .render()
            .unwrap_or_else(|e| format!("the report could not be rendered: {e}\n"))
    }

    /// The report section of one toggle's admin page (HTML, escaped by the template).
    pub fn page_section(&self, toggle: &str) -> String {
        let Some(toggle) = self.toggles.iter().find(|t| t.toggle == toggle) else {
            return String::new();
        };
        PageSection {
            toggle,
            chart: Chart::new(&toggle.timeline),
        }
        .render()
        .unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "rollout.md", escape = "none")]
struct MarkdownReport<'a> {
    report: &'a Report,
}

#[derive(Template)]
#[template(path = "rollout_section.html")]
struct PageSection<'a> {
    toggle: &'a ToggleReport,
    chart: Chart,
}

/// Requests per minute as bars and the error rate as a line, the last hour.
struct Chart {
    bars: Vec<Bar>,
    line: String,
    peak: u64,
}

struct Bar {
    x: String,
    y: String,
    width: String,
    height: String,
}

impl Chart {
    const W: f64 = 600.0;
    const H: f64 = 120.0;

    fn new(points: &[Point]) -> Chart {
        let points = &points[points.len().saturating_sub(60)..];
        let peak = points.iter().map(|p| p.requests).max().unwrap_or(0).max(1);
        let step = Self::W / points.len().max(1) as f64;
        let mut line = Vec::new();
        let bars = points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let height = p.requests as f64 / peak as f64 * (Self::H - 10.0);
                let x = i as f64 * step;
                let rate = if p.requests > 0 {
                    p.errors as f64 / p.requests as f64
                } else {
                    0.0
                };
                line.push(format!(
                    "{:.1},{:.1}",
                    x + step / 2.0,
                    Self::H - rate * (Self::H - 10.0)
                ));
                Bar {
                    x: format!("{x:.1}"),
                    y: format!("{:.1}", Self::H - height),
                    width: format!("{:.1}", (step - 1.0).max(1.0)),
                    height: format!("{height:.1}"),
                }
            })
            .collect();
        Chart {
            bars,
            line: line.join(" "),
            peak,
        }
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
