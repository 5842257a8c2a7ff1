//! Start-up: one builder that binds both listeners and builds the state, used by the binary
//! and by the tests that drive the real listeners.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use url::Url;

use crate::app::{AppState, StartupError, Upstreams};
use crate::config::{Config, ConnectionLimits, Environment};
use crate::http::descriptors::Budget;
use crate::{admin, clinical, http, identity};

/// The service, bound and built, not yet serving.
pub struct Application {
    state: AppState,
    public: TcpListener,
    admin: TcpListener,
    admin_token: Option<String>,
    metrics: Option<PrometheusHandle>,
    limits: ConnectionLimits,
    admin_limits: ConnectionLimits,
    grace: Duration,
}

impl Application {
    /// Builds the state (starting the embedded fixture upstream when no upstream is
    /// configured) and binds both listeners. Nothing is served until [`Application::run_until`].
    pub async fn build(config: &Config) -> Result<Application, StartupError> {
        let fixture = if Upstreams::need_fixture(config) {
            // The Sign-in Service stand-in answers on the same loopback server (development only).
            let addr = clinical::fixture::spawn(identity::standin::router())
                .await
                .map_err(|e| StartupError::FixtureUpstream(e.to_string()))?;
            tracing::info!(%addr, "embedded fixture upstream (development only) serving fixtures/");
            Some(
                Url::parse(&format!("http://{addr}/"))
                    .map_err(|e| StartupError::FixtureUpstream(e.to_string()))?,
            )
        } else {
            None
        };
        let state = AppState::new(config, Upstreams::resolve(config, fixture.as_ref())?).await?;
        let limits = config.listeners.connections;
        let budget = Budget::raise(limits.max_connections);
        crate::sealed::allow(budget.sealed);
        tracing::info!(
            open_files = budget.open_files,
            public = budget.public,
            admin = budget.admin,
            sealed_documents = budget.sealed,
            limited_by_open_files = budget.limited,
            "connection caps"
        );
        Ok(Application {
            state,
            public: bind(config.listeners.listen, "AVS_LISTEN").await?,
            admin: bind(config.listeners.admin_listen, "AVS_ADMIN_LISTEN").await?,
            admin_token: config.toggles.admin_token.clone(),
            metrics: None,
            limits: ConnectionLimits {
                max_connections: budget.public,
                ..limits
            },
            admin_limits: ConnectionLimits {
                max_connections: budget.admin,
                ..limits
            },
            grace: config.listeners.shutdown_grace,
        })
    }

    /// Serves the process's metrics on the admin listener.
    pub fn with_metrics(mut self, handle: Option<PrometheusHandle>) -> Application {
        self.metrics = handle;
        self
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves both listeners until `stop` completes; then requests in flight get the shutdown
    /// grace to finish, and connections without one (idle, or a head still arriving) close at
    /// once.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            stop.await;
            let _ = stopping.send(true);
        });
        let admin_router = admin::router(
            admin::AdminState::new(self.state.toggles.clone(), self.admin_token.clone())
                .with_rollout(self.state.rollout.clone())
                .with_metrics(self.metrics.clone()),
        );
        let admin = tokio::spawn(http::server::serve(
            self.admin,
            admin_router,
            self.admin_limits,
            stopped.clone(),
            self.grace,
            "admin",
        ));
        http::server::serve(
            self.public,
            http::app(self.state),
            self.limits,
            stopped,
            self.grace,
            "public",
        )
        .await;
        admin.abort();
        tracing::info!("avs-api stopped");
        Ok(())
    }
}

/// Runs the service until SIGINT or SIGTERM: the public API on `AVS_LISTEN`, the admin API and
/// page on `AVS_ADMIN_LISTEN`.
pub async fn serve(config: Config) -> Result<(), StartupError> {
    let metrics = crate::telemetry::metrics();
    if let Some(handle) = metrics.clone() {
        // The recorder keeps every histogram sample until it is folded into buckets, which a
        // scrape or this upkeep does: without it, a service nobody scrapes grows ~20 bytes per
        // request (measured: 12 MiB after 660k hits).
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let application = Application::build(&config).await?.with_metrics(metrics);
    let addr = application.public_addr();
    tracing::info!(%addr, env = config.env.as_str(), "avs-api listening");
    tracing::info!(addr = %application.admin_addr(), enabled = config.toggles.admin_token.is_some(), "avs-api admin listening");
    if config.env != Environment::Production {
        // No ICN or sid here, not even the fixtures': the README names them.
        tracing::info!(
            "get a development token: avs-api dev-token --icn <a fixture patient's ICN, see the README>, \
             then GET http://{addr}/avs/v0/avs/<sid> with Authorization: Bearer <token>"
        );
    }
    application.run_until(shutdown_signal()).await
}

async fn bind(addr: SocketAddr, variable: &'static str) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind {
            variable,
            addr,
            source,
        })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing requests in flight");
}
