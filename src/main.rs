//! The `avs-api` binary: command line → configuration → telemetry → serve.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::ExitCode;

use avs_api::config::{Config, Environment};
use avs_api::http::descriptors::Budget;
use avs_api::identity::{DevToken, dev_token};
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
    /// Print a JWT signed with the development key (refused in production).
    DevToken {
        #[arg(long)]
        icn: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long, default_value = "dev-user")]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
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
        Command::DevToken { icn, email, sub, ttl } => {
            if config.env == Environment::Production {
                eprintln!("AVS_ENV: dev-token is refused in production");
                return ExitCode::from(EXIT_CONFIG);
            }
            let token = dev_token(&DevToken {
                sub: &sub,
                icn: Some(&icn),
                email: email.as_deref(),
                ttl_secs: ttl,
                issuer: config.auth.issuer.as_deref(),
                audience: config.auth.audience.as_deref(),
            });
            match token {
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
            let runtime = match tokio::runtime::Runtime::new() {
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
