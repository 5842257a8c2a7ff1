//! Configuration: the only module that reads the environment, and the owner of every settings
//! type (feature modules import theirs from here, never the other way round).
//!
//! Values come from an optional TOML file (`--config`, keys are the variable names without the
//! `AVS_` prefix, in lowercase: `upstream_url = "https://…"`), overridden by the environment.
//! `settings.rs` declares every setting once; each section below parses its own with the
//! primitives of `parser.rs`, and every problem is reported, one line each.

mod cache;
mod callers;
mod describe;
mod file;
mod keys;
mod listeners;
mod oracle;
mod parser;
mod plan;
mod rollout;
mod settings;
mod telemetry;
mod toggles;
mod transport;
mod vista;

use std::collections::BTreeMap;
use std::path::Path;

pub use cache::CacheConfig;
pub use callers::{
    AuthConfig, ClaimsSettings, DEV_SERVICE_ACCOUNT, DEV_SERVICE_AUDIENCE, IdentitySettings, SisKeys,
    SisSettings,
};
pub use keys::{DEV_KID, KeySet, KeySource};
#[allow(unused_imports)] // the identity module's tests read the key texts
pub(crate) use keys::{DEV_PUBLIC_PEM, DEV_SIS_JWKS, VerifyKey, jwks_keys, pem_keys};
pub use listeners::{ConnectionLimits, ListenerSettings};
pub use oracle::{OhSettings, OhSource};
use parser::Parser;
pub use plan::{Guards, PlanStage, RolloutPlan, StageGates, StagePlan};
pub use rollout::RolloutSettings;
pub use settings::{SETTINGS, Setting, Shown};
pub use telemetry::{LogFormat, TelemetrySettings};
pub use toggles::{DEV_TOGGLES, SourceConfig, ToggleSettings};
pub use transport::{BreakerPolicy, ProxySetting, TransportConfig};
pub use vista::VistaSettings;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }

    fn parse(p: &mut Parser<'_>) -> Environment {
        match p.raw("AVS_ENV").unwrap_or_default() {
            "development" => Environment::Development,
            "test" => Environment::Test,
            "production" => Environment::Production,
            other => {
                p.problem(
                    "AVS_ENV",
                    format!("{other:?} is not development, test or production"),
                );
                Environment::Production // judge the rest by the strictest rules
            }
        }
    }
}

/// The whole configuration, one field per section of the settings table.
#[derive(Clone, Debug)]
pub struct Config {
    pub env: Environment,
    pub listeners: ListenerSettings,
    /// The VistA source.
    pub vista: VistaSettings,
    /// The Oracle Health source.
    pub oracle: OhSettings,
    /// What every source's calls share: proxy, CA, pool, bounds, breaker policy.
    pub transport: TransportConfig,
    pub auth: AuthConfig,
    pub toggles: ToggleSettings,
    pub rollout: RolloutSettings,
    pub cache: CacheConfig,
    pub telemetry: TelemetrySettings,
    /// The values as given (file layered under the environment), for `check-config`.
    raw: Vars,
}

/// Raw values by variable name, before validation.
pub type Vars = BTreeMap<String, String>;

/// The problems found, one line each, every line naming its variable.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

impl Config {
    /// Reads the process environment (and the `--config` file under it) and validates.
    pub fn from_env(config_file: Option<&Path>) -> Result<Config, ConfigErrors> {
        let env = std::env::vars().filter(|(k, _)| is_known(k));
        let mut vars = match config_file {
            Some(path) => file::read_file_layer(path).map_err(|e| ConfigErrors(vec![e]))?,
            None => Vars::new(),
        };
        vars.extend(env);
        Config::from_vars(&vars)
    }

    /// Validates raw values. Tests build their configuration through this too.
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigErrors> {
        let mut p = Parser::new(vars);
        match Config::parse(&mut p) {
            Some(config) if p.problems.is_empty() => Ok(config),
            _ => Err(ConfigErrors(p.problems)),
        }
    }

    /// Every section in the settings table's order, then the checks that span sections.
    fn parse(p: &mut Parser<'_>) -> Option<Config> {
        let env = Environment::parse(p);
        let production = env == Environment::Production;
        let listeners = ListenerSettings::parse(p);
        let vista = VistaSettings::parse(p, production);
        let transport = TransportConfig::parse(p, production);
        let oracle = OhSettings::parse(p, production);
        let auth = AuthConfig::parse(p, production);
        let toggles = ToggleSettings::parse(p, production);
        let rollout = RolloutSettings::parse(p);
        let cache = CacheConfig::parse(p);
        let telemetry = TelemetrySettings::parse(p, production);
        if let Some(auth) = &auth {
            fail_closed(p, env, &listeners, &vista, &oracle, auth);
        }
        if rollout.auto_rollback && matches!(toggles.source, SourceConfig::Postgres { read_only: true, .. }) {
            p.problem(
                "AVS_ROLLOUT_AUTO_ROLLBACK",
                "cannot narrow a toggle with AVS_TOGGLES_READ_ONLY=true: a hold would be recorded and nothing done",
            );
        }
        if listeners.request_timeout <= vista.timeout {
            p.problem(
                "AVS_REQUEST_TIMEOUT_MS",
                "must be above AVS_UPSTREAM_TIMEOUT_MS so an upstream timeout is answered, not cut off",
            );
        }
        if listeners.request_timeout <= oracle.timeout {
            p.problem(
                "AVS_OH_TIMEOUT_MS",
                "must be below AVS_REQUEST_TIMEOUT_MS so an upstream timeout is answered, not cut off",
            );
        }
        Some(Config {
            env,
            listeners,
            vista,
            oracle,
            transport,
            auth: auth?,
            toggles,
            rollout,
            cache,
            telemetry,
            raw: p.vars().clone(),
        })
    }

    /// Every setting with its value (or its default), secrets redacted, for `check-config`:
    /// one line per entry of the settings table, in its order.
    pub fn describe(&self) -> String {
        describe::describe(self)
    }
}

/// The development identity (the embedded Sign-in Service stand-in, the development keys) is
/// the default only beside the embedded fixture sources, on loopback. Anything else needs
/// `AVS_ENV` said explicitly: an unset `AVS_ENV` is development, but does not count as saying
/// so (`identity.md`, "The development keys never verify outside development").
fn fail_closed(
    p: &mut Parser<'_>,
    env: Environment,
    listeners: &ListenerSettings,
    vista: &VistaSettings,
    oracle: &OhSettings,
    auth: &AuthConfig,
) {
    let said = p.given("AVS_ENV") && matches!(env, Environment::Development | Environment::Test);
    if said || env == Environment::Production || !auth.identity.is_development() {
        return; // production has its own refusals, which name the missing identity settings
    }
    let fix = "set the identity settings (AVS_SIS_JWKS_URL and AVS_SIS_USER_URL, or AVS_IDENTITY=claims with its keys), or AVS_ENV=development explicitly";
    if vista.url.is_some() {
        p.problem(
            "AVS_UPSTREAM_URL",
            format!("a real clinical source beside the development identity (the embedded Sign-in Service stand-in or the development keys): {fix}"),
        );
    }
    if matches!(oracle.source, OhSource::Url { .. }) {
        p.problem(
            "AVS_OH_UPSTREAM_URL",
            format!("a real clinical source beside the development identity (the embedded Sign-in Service stand-in or the development keys): {fix}"),
        );
    }
    if !listeners.listen.ip().is_loopback() {
        p.problem(
            "AVS_LISTEN",
            format!("{} is not loopback, and the development identity (the embedded Sign-in Service stand-in or the development keys) would answer on it: {fix}", listeners.listen),
        );
    }
}

fn is_known(name: &str) -> bool {
    settings::setting(name).is_some()
}

#[cfg(test)]
mod tests;
