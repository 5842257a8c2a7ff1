//! The `avs-api` binary: command line → configuration → telemetry → serve.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::ExitCode;

use avs_api::config::{Config, DEV_SERVICE_ACCOUNT, DEV_SERVICE_AUDIENCE, Environment, IdentitySettings};
use avs_api::http::descriptors::Budget;
use avs_api::identity::{DevKey, DevToken, SisToken, dev_sis_token, dev_token, fixture_users};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "avs-api",
    version,
    about = "Serves VA After Visit Summaries to VA.gov"
)]
struct Cli {
    /// A TOML file of settings (variable names without AVS_, lowercase); the environment overrides it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Validate the configuration and print the effective values, secrets redacted.
    CheckConfig,
    /// Print a JWT signed with the development key (refused in production): Sign-in
    /// Service-shaped for a fixture user (`fixtures/users.json`) in `sis` mode, claims-shaped in
    /// `claims` mode.
    DevToken(DevTokenArgs),
    /// Print Prometheus recording rules and burn-rate alerts from the rollout plan
    /// (`deploy/prometheus/avs-rollout.rules.yml` is this output).
    RolloutRules,
}

#[derive(clap::Args)]
struct DevTokenArgs {
    /// The patient: in `sis` mode, picks the fixture user with this ICN.
    #[arg(long)]
    icn: Option<String>,
    /// `sis` mode: the fixture user with this account uuid.
    #[arg(long)]
    user: Option<String>,
    /// `claims` mode: the `email` claim.
    #[arg(long)]
    email: Option<String>,
    /// `claims` mode: the `sub` claim.
    #[arg(long, default_value = "dev-user")]
    sub: String,
    /// Lifetime in seconds (default: 300 in `sis` mode, as SiS access tokens; 3600 in `claims`).
    #[arg(long)]
    ttl: Option<u64>,
    /// `sis` mode: a service-account token (the appointments service, the mobile API).
    #[arg(long)]
    service: bool,
    /// With `--service`: a scope (URL or path) the token covers; repeatable (default `/avs/v0`).
    #[arg(long)]
    scope: Vec<String>,
    /// `sis` mode: sign with the stand-in's old key (a rotation in progress).
    #[arg(long)]
    old_key: bool,
}

/// The token `dev-token` prints, for the configured mode.
fn mint(config: &Config, args: &DevTokenArgs) -> Result<String, String> {
    let sis = match &config.auth.identity {
        IdentitySettings::Claims(claims) => {
            let icn = args.icn.as_deref().ok_or("claims mode: --icn is required")?;
            return dev_token(&DevToken {
                sub: &args.sub,
                icn: Some(icn),
                email: args.email.as_deref(),
                ttl_secs: args.ttl.unwrap_or(3600),
                issuer: claims.issuer.as_deref(),
                audience: claims.audience.as_deref(),
            });
        }
        IdentitySettings::Sis(sis) => sis,
    };
    let users = fixture_users();
    let user = match (&args.user, &args.icn) {
        (Some(uuid), _) => users.iter().find(|u| &u.uuid == uuid),
        (None, Some(icn)) => users.iter().find(|u| u.icn.as_ref() == Some(icn)),
        (None, None) => return Err("sis mode: give --icn or --user (fixtures/users.json)".to_owned()),
    }
    .ok_or("sis mode: no fixture user has that ICN or uuid (fixtures/users.json)")?;
    let scopes = if args.scope.is_empty() {
        vec!["/avs/v0".to_owned()]
    } else {
        args.scope.clone()
    };
    let token = if args.service {
        SisToken::Service {
            user,
            scopes: &scopes,
            audience: sis.service_audience.as_deref().unwrap_or(DEV_SERVICE_AUDIENCE),
            account: sis
                .service_accounts
                .first()
                .map_or(DEV_SERVICE_ACCOUNT, String::as_str),
        }
    } else {
        SisToken::User { user }
    };
    let key = if args.old_key {
        DevKey::Old
    } else {
        DevKey::Current
    };
    dev_sis_token(&token, &sis.issuer, args.ttl.unwrap_or(300), key)
}

/// mimalloc rather than glibc's allocator: a cached hit allocates a few dozen small blocks across
/// the runtime's threads, and glibc's malloc/free were a tenth of the service's CPU under load
/// (perf, 2026-12-02; bench/README.md has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Configuration problems exit with 2, one line each, before anything listens.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env(cli.config.as_deref()) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            print!("{}", config.describe());
            let connections = config.listeners.connections.max_connections;
            println!("# {}", Budget::planned(connections).describe());
            ExitCode::SUCCESS
        }
        Command::RolloutRules => {
            print!(
                "{}",
                avs_api::rollout::rules::prometheus_rules(&config.rollout.plan)
            );
            ExitCode::SUCCESS
        }
        Command::DevToken(args) => {
            if config.env == Environment::Production {
                eprintln!("AVS_ENV: dev-token is refused in production");
                return ExitCode::from(EXIT_CONFIG);
            }
            match mint(&config, &args) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("dev-token: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => {
            let otlp = config
                .telemetry
                .otlp_endpoint
                .as_deref()
                .map(|endpoint| avs_api::telemetry::Otlp {
                    endpoint,
                    service_name: &config.telemetry.service_name,
                });
            let telemetry =
                avs_api::telemetry::init(&config.telemetry.log_filter, config.telemetry.log_format, otlp);
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.enable_all();
            if let Some(threads) = config.listeners.worker_threads {
                runtime.worker_threads(threads);
            }
            let runtime = match runtime.build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("tokio runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let served = runtime.block_on(avs_api::serve(config));
            // Spans still queued are exported before the process exits.
            telemetry.shutdown();
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "avs-api failed");
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
