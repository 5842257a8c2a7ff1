//! `check-config`: every setting with its value or default, secrets redacted.

use std::fmt::Write as _;

use url::Url;

use super::settings::{SETTINGS, Setting, Shown};
use super::{Config, SourceConfig};

/// One line per entry of the settings table, in its order, then what was derived.
pub(super) fn describe(config: &Config) -> String {
    let mut out = String::new();
    for setting in SETTINGS {
        let value = match (config.raw.get(setting.name), setting.default) {
            (Some(raw), _) => shown(setting, raw),
            (None, Some(default)) => format!("{} (default)", shown(setting, default)),
            (None, None) => "unset".to_owned(),
        };
        let _ = writeln!(out, "{} = {value}", setting.name);
    }
    let _ = writeln!(out, "# identity: {}", config.auth.identity.describe());
    let _ = writeln!(out, "# toggles: {}", describe_toggles(&config.toggles.source));
    let plan = &config.rollout.plan;
    let _ = writeln!(out, "# rollout plan: {}", plan.source);
    let toggles = std::iter::once(("every toggle", &plan.default))
        .chain(plan.toggles.iter().map(|(name, own)| (name.as_str(), own)));
    for (who, stages) in toggles {
        let _ = writeln!(out, "#   {who}: {}", stages.describe());
    }
    out
}

/// A value as `check-config` may print it.
fn shown(setting: &Setting, raw: &str) -> String {
    match setting.shown {
        Shown::Plain => raw.to_owned(),
        Shown::Secret => "[redacted]".to_owned(),
        Shown::Url => match Url::parse(raw) {
            Ok(url) => redact_url(&url),
            Err(_) => raw.to_owned(),
        },
    }
}

fn describe_toggles(source: &SourceConfig) -> String {
    match source {
        SourceConfig::File(p) => format!("file:{}", p.display()),
        SourceConfig::Postgres { url, read_only } => {
            let url = Url::parse(url).map_or("postgres://[unparsable]".into(), |u| redact_url(&u));
            if *read_only {
                format!("{url} (read-only)")
            } else {
                url
            }
        }
        SourceConfig::Memory => "memory".to_owned(),
    }
}

fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("[redacted]"));
    }
    url.to_string()
}
