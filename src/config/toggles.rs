//! Toggles: where they live, how often they are re-read, and who may change them.

use std::path::PathBuf;
use std::time::Duration;

use super::parser::Parser;

/// The development default toggle file; production refuses it.
pub const DEV_TOGGLES: &str = "file:fixtures/toggles.toml";

/// Where toggles live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceConfig {
    File(PathBuf),
    Postgres {
        url: String,
        read_only: bool,
    },
    /// A fixed snapshot, for tests and tools; writes only change memory.
    Memory,
}

#[derive(Clone, Debug)]
pub struct ToggleSettings {
    pub source: SourceConfig,
    /// The PostgreSQL refresh period.
    pub refresh: Duration,
    /// The admin API's bearer token; `None`: the admin API is off.
    pub admin_token: Option<String>,
    /// The links gate's second toggle (`AVS_LINKS_TOGGLE`); `None`: `avs_enabled` alone.
    /// VA.gov deleted `va_online_scheduling_after_visit_summary` from its Flipper after the full
    /// release, and a feature that does not exist is off (`gating.md`).
    pub links_toggle: Option<&'static str>,
}

impl ToggleSettings {
    pub(super) fn parse(p: &mut Parser<'_>, production: bool) -> ToggleSettings {
        let raw = p.raw("AVS_TOGGLES").unwrap_or(DEV_TOGGLES);
        if production && raw == DEV_TOGGLES {
            p.problem(
                "AVS_TOGGLES",
                "production refuses the development toggle file: set file:<path> or postgres://…",
            );
        }
        let read_only = p.flag("AVS_TOGGLES_READ_ONLY");
        let source = if let Some(path) = raw.strip_prefix("file:") {
            SourceConfig::File(PathBuf::from(path))
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            if let Err(e) = raw.parse::<tokio_postgres::Config>() {
                p.problem("AVS_TOGGLES", format!("not a usable postgres URL: {e}"));
            }
            SourceConfig::Postgres {
                url: raw.to_owned(),
                read_only,
            }
        } else {
            p.problem("AVS_TOGGLES", "must be file:<path> or postgres://…");
            SourceConfig::File(PathBuf::from("fixtures/toggles.toml"))
        };
        let refresh = p.positive_secs("AVS_TOGGLES_REFRESH_SECS");
        let admin_token = p.raw("AVS_ADMIN_TOKEN").map(str::to_owned);
        if production && admin_token.as_ref().is_some_and(|t| t.len() < 32) {
            p.problem("AVS_ADMIN_TOKEN", "must be at least 32 characters in production");
        }
        let links_toggle = match p.raw("AVS_LINKS_TOGGLE") {
            None | Some("none") => None,
            Some(name) if !name.is_empty() && name.len() <= 255 => {
                // Leaked once at start-up: toggle names are `&'static str` through the gate,
                // its metrics and the rollout record, which keeps the hot path free of copies.
                Some(&*Box::leak(name.to_owned().into_boxed_str()))
            }
            Some(other) => {
                p.problem(
                    "AVS_LINKS_TOGGLE",
                    format!("{other:?} is not a toggle name or none"),
                );
                None
            }
        };
        ToggleSettings {
            source,
            refresh,
            admin_token,
            links_toggle,
        }
    }
}
