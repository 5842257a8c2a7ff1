//! One PostgreSQL connection, opened on demand and re-opened after a failure, with every round
//! trip bounded. The toggle store and the fleet's rollout report each hold one: a handful of
//! queries every few seconds, not a pool.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

/// Bounds every database round trip, so a hung database never holds a refresh or a write.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Database {
    config: tokio_postgres::Config,
    /// Run once on every new connection (creating tables), if any.
    schema: Option<&'static str>,
    client: Mutex<Option<Client>>,
}

impl Database {
    /// `what` names the setting the URL came from, for error messages.
    pub fn new(url: &str, schema: Option<&'static str>, what: &str) -> Result<Database, String> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{what}: {e}"))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        // Timestamps are written and read in UTC, whatever the server's or role's time zone.
        config.options("-c statement_timeout=4000 -c TimeZone=UTC");
        config.application_name("avs-api");
        Ok(Database {
            config,
            schema,
            client: Mutex::new(None),
        })
    }

    pub async fn with_client<T>(
        &self,
        work: impl AsyncFnOnce(&mut Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, String> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, self.config.connect(NoTls))
                .await
                .map_err(|_| "database connect timed out".to_owned())?
                .map_err(|e| format!("database connect failed: {e}"))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "database connection ended");
                }
            });
            if let Some(schema) = self.schema {
                client
                    .batch_execute(schema)
                    .await
                    .map_err(|e| format!("creating tables: {e}"))?;
            }
            *guard = Some(client);
        }
        let Some(client) = guard.as_mut() else {
            return Err("no database connection".to_owned());
        };
        match tokio::time::timeout(QUERY_TIMEOUT, work(client)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                *guard = None;
                let reason = e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |db| db.message().to_owned());
                Err(format!("database query failed: {reason}"))
            }
            Err(_) => {
                *guard = None;
                Err("database query timed out".to_owned())
            }
        }
    }
}
