//! The Postgres source: the tables Flipper's ActiveRecord adapter uses, so this service reads
//! the very toggles VA.gov's Flipper UI edits, and replicas share one store.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::{Change, Feature, Percentage, Snapshot};

/// Bounds every database round trip, so a hung database never holds a refresh or a write.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Flipper's migration, in PostgreSQL: same columns, same unique indexes.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS flipper_features (
    id bigserial PRIMARY KEY,
    key varchar NOT NULL,
    created_at timestamp(6) NOT NULL,
    updated_at timestamp(6) NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS index_flipper_features_on_key ON flipper_features (key);
CREATE TABLE IF NOT EXISTS flipper_gates (
    id bigserial PRIMARY KEY,
    feature_key varchar NOT NULL,
    key varchar NOT NULL,
    value text,
    created_at timestamp(6) NOT NULL,
    updated_at timestamp(6) NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS index_flipper_gates_on_feature_key_and_key_and_value
    ON flipper_gates (feature_key, key, value);
";

/// One connection, re-opened on demand: toggles need a handful of queries every few seconds,
/// not a pool.
pub struct PostgresSource {
    config: tokio_postgres::Config,
    read_only: bool,
    client: Mutex<Option<Client>>,
}

impl PostgresSource {
    pub fn new(url: &str, read_only: bool) -> Result<PostgresSource, String> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("AVS_TOGGLES: {e}"))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.options("-c statement_timeout=4000");
        config.application_name("avs-api");
        Ok(PostgresSource {
            config,
            read_only,
            client: Mutex::new(None),
        })
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    async fn with_client<T>(
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
                    tracing::warn!(error = %e, "toggle database connection ended");
                }
            });
            if !self.read_only {
                client
                    .batch_execute(SCHEMA)
                    .await
                    .map_err(|e| format!("creating Flipper's tables: {e}"))?;
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
                Err(format!("database query failed: {e}"))
            }
            Err(_) => {
                *guard = None;
                Err("database query timed out".to_owned())
            }
        }
    }

    pub async fn load(&self) -> Result<Snapshot, String> {
        let (features, gates) = self
            .with_client(async |c| {
                let features = c.query("SELECT key FROM flipper_features", &[]).await?;
                let gates = c
                    .query("SELECT feature_key, key, value FROM flipper_gates", &[])
                    .await?;
                Ok((features, gates))
            })
            .await?;
        let mut snapshot: HashMap<String, Feature> = features
            .iter()
            .map(|row| (row.get::<_, String>(0), Feature::default()))
            .collect();
        for row in gates {
            let (feature, gate, value): (String, String, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            let Some(f) = snapshot.get_mut(&feature) else {
                continue;
            };
            let value = value.unwrap_or_default();
            match gate.as_str() {
                "boolean" => f.boolean = value == "true",
                "actors" => {
                    f.actors.insert(value);
                }
                "groups" => {
                    f.groups.insert(value);
                }
                "percentage_of_actors" => f.percentage_of_actors = Percentage::parse(&value),
                "percentage_of_time" => f.percentage_of_time = Percentage::parse(&value),
                other => {
                    tracing::warn!(feature = %feature, gate = %other, "unsupported Flipper gate ignored")
                }
            }
        }
        Ok(Snapshot { features: snapshot })
    }

    /// Writes rows the way Flipper's ActiveRecord adapter does, in one transaction.
    pub async fn apply(&self, feature: &str, change: &Change) -> Result<(), String> {
        if self.read_only {
            return Err("the toggle store is read-only".to_owned());
        }
        let feature = feature.to_owned();
        let change = change.clone();
        self.with_client(async move |c| {
            let tx = c.transaction().await?;
            tx.execute(
                "INSERT INTO flipper_features (key, created_at, updated_at) VALUES ($1, now(), now())
                 ON CONFLICT (key) DO NOTHING",
                &[&feature],
            )
            .await?;
            let insert = "INSERT INTO flipper_gates (feature_key, key, value, created_at, updated_at)
                          VALUES ($1, $2, $3, now(), now()) ON CONFLICT DO NOTHING";
            let clear_gate = "DELETE FROM flipper_gates WHERE feature_key = $1 AND key = $2";
            match &change {
                Change::AddFeature => {}
                Change::EnableBoolean => {
                    tx.execute("DELETE FROM flipper_gates WHERE feature_key = $1", &[&feature])
                        .await?;
                    tx.execute(insert, &[&feature, &"boolean", &"true"]).await?;
                }
                Change::DisableBoolean => {
                    tx.execute("DELETE FROM flipper_gates WHERE feature_key = $1", &[&feature])
                        .await?;
                }
                Change::PercentageOfActors(p) | Change::PercentageOfTime(p) => {
                    let gate = match change {
                        Change::PercentageOfTime(_) => "percentage_of_time",
                        _ => "percentage_of_actors",
                    };
                    tx.execute(clear_gate, &[&feature, &gate]).await?;
                    tx.execute(insert, &[&feature, &gate, &p.to_string()]).await?;
                }
                Change::AddActor(id) => {
                    tx.execute(insert, &[&feature, &"actors", id]).await?;
                }
                Change::RemoveActor(id) => {
                    tx.execute(
                        "DELETE FROM flipper_gates WHERE feature_key = $1 AND key = 'actors' AND value = $2",
                        &[&feature, id],
                    )
                    .await?;
                }
            }
            tx.commit().await
        })
        .await
    }
}
