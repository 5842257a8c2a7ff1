//! The Postgres source: the tables Flipper's ActiveRecord adapter uses, so this service reads
//! the very toggles VA.gov's Flipper UI edits, and replicas share one store.

use super::{Change, Feature, Percentage, Snapshot};
use crate::database::Database;

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

/// The toggle tables through one reconnecting connection.
pub struct PostgresSource {
    db: Database,
    read_only: bool,
    /// Statements run in each change's own transaction, with the feature's name as `$1`,
    /// after its rows are written: the rollout records the change as a stage there, so a
    /// change is recorded once, by whoever made it, in commit order.
    change_log: std::sync::OnceLock<&'static [&'static str]>,
}

impl PostgresSource {
    pub fn new(url: &str, read_only: bool) -> Result<PostgresSource, String> {
        // Read-only: never create Flipper's tables.
        let schema = (!read_only).then_some(SCHEMA);
        Ok(PostgresSource {
            db: Database::new(url, schema, "AVS_TOGGLES")?,
            read_only,
            change_log: std::sync::OnceLock::new(),
        })
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Runs `statements` in every later change's transaction (see `change_log`); once.
    pub fn log_changes_with(&self, statements: &'static [&'static str]) {
        let _ = self.change_log.set(statements);
    }

    async fn with_client<T>(
        &self,
        work: impl AsyncFnOnce(&mut tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, String> {
        self.db.with_client(work).await
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
        let mut snapshot: super::Features = features
            .iter()
            .map(|row| (row.get::<_, String>(0), Feature::default()))
            .collect();
        for row in gates {
            let (feature, gate, value): (String, String, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            // A gate row whose feature has no row of its own still counts, as in Flipper.
            let f = snapshot.entry(feature.clone()).or_default();
            let value = value.unwrap_or_default();
            match gate.as_str() {
                // Flipper's `Typecast.to_boolean`: "true" or "1".
                "boolean" => f.boolean = value == "true" || value == "1",
                "actors" => {
                    f.actors.insert(value);
                }
                "groups" => {
                    super::note_group(&feature, &value);
                    f.groups.insert(value);
                }
                "percentage_of_actors" => f.percentage_of_actors = Some(Percentage::read_stored(&value)),
                "percentage_of_time" => f.percentage_of_time = Some(Percentage::read_stored(&value)),
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
        let change_log = self.change_log.get().copied().unwrap_or_default();
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
                Change::NarrowTo(p) => {
                    for gate in ["boolean", "percentage_of_time", "percentage_of_actors"] {
                        tx.execute(clear_gate, &[&feature, &gate]).await?;
                    }
                    tx.execute(insert, &[&feature, &"percentage_of_actors", &p.to_string()])
                        .await?;
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
            for statement in change_log {
                tx.execute(*statement, &[&feature]).await?;
            }
            tx.commit().await
        })
        .await
    }
}
