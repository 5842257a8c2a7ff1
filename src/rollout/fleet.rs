//! The fleet's rollout report, through the PostgreSQL that holds the toggles.
//!
//! - `avs_rollout_stages`: one row per stage of a toggle, written once, by the first replica to
//!   see the gate change in the store. Its `started_at` is the stage boundary for every replica.
//! - `avs_rollout_figures`: one row per (toggle, stage, instance), each replica's own figures
//!   for that stage in mergeable form (counters, error counts, a fixed-bucket histogram, and
//!   HyperLogLog sketches), rewritten by its replica every `AVS_ROLLOUT_FLUSH_SECS`.
//! - `avs_rollout_key`: the seed of the keyed actor hash, shared so that one user's hash is the
//!   same on every replica and the sketches merge (a user seen by three replicas counts once).
//!   The figures hold keyed hashes (a small stage's sketch is its set of hashes), never actor
//!   ids; whoever can read both this table and the figures could test a guessed email against
//!   them, so the report tables are as sensitive as the toggle tables (which hold actor ids).

use super::figures::Figures;
use crate::database::Database;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS avs_rollout_key (
    id int PRIMARY KEY,
    seed bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS avs_rollout_stages (
    toggle varchar NOT NULL,
    seq bigint NOT NULL,
    gates text NOT NULL,
    setting text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (toggle, seq)
);
CREATE TABLE IF NOT EXISTS avs_rollout_figures (
    toggle varchar NOT NULL,
    seq bigint NOT NULL,
    instance varchar NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    figures text NOT NULL,
    PRIMARY KEY (toggle, seq, instance),
    FOREIGN KEY (toggle, seq) REFERENCES avs_rollout_stages (toggle, seq) ON DELETE CASCADE
);
";

/// A stage as stored.
#[derive(Clone, Debug)]
pub struct StoredStage {
    pub seq: i64,
    pub gates: String,
    pub setting: String,
    /// Unix seconds.
    pub started: u64,
}

/// One replica's figures for one stage.
#[derive(Debug)]
pub struct StoredFigures {
    pub seq: i64,
    pub instance: String,
    /// Seconds since its replica last wrote it.
    pub age_secs: u64,
    pub figures: Figures,
}

pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(url: &str) -> Result<Store, String> {
        Ok(Store {
            db: Database::new(url, Some(SCHEMA), "AVS_TOGGLES")?,
        })
    }

    /// The fleet's actor-hash seed, made by the first replica that asks.
    pub async fn seed(&self) -> Result<u64, String> {
        let candidate = fastrand::i64(..);
        self.db
            .with_client(async |c| {
                c.execute(
                    "INSERT INTO avs_rollout_key (id, seed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                    &[&candidate],
                )
                .await?;
                let row = c
                    .query_one("SELECT seed FROM avs_rollout_key WHERE id = 1", &[])
                    .await?;
                Ok(row.get::<_, i64>(0) as u64)
            })
            .await
    }

    /// The stage in force for `toggle` with these gates: the latest stored one when its gates
    /// are these, else a new one starting now. Replicas that notice one change at different
    /// moments agree on its row: the first insert wins, the others read it back.
    pub async fn stage_for(&self, toggle: &str, gates: &str, setting: &str) -> Result<StoredStage, String> {
        self.db
            .with_client(async |c| {
                c.execute(
                    "INSERT INTO avs_rollout_stages (toggle, seq, gates, setting)
                     SELECT $1::varchar, COALESCE(MAX(seq), 0) + 1, $2::text, $3::text
                     FROM avs_rollout_stages WHERE toggle = $1::varchar
                     HAVING (SELECT gates FROM avs_rollout_stages WHERE toggle = $1::varchar
                             ORDER BY seq DESC LIMIT 1) IS DISTINCT FROM $2::text
                     ON CONFLICT (toggle, seq) DO NOTHING",
                    &[&toggle, &gates, &setting],
                )
                .await?;
                let row = c
                    .query_one(
                        "SELECT seq, gates, setting, EXTRACT(EPOCH FROM started_at)::bigint
                         FROM avs_rollout_stages WHERE toggle = $1 ORDER BY seq DESC LIMIT 1",
                        &[&toggle],
                    )
                    .await?;
                Ok(stored_stage(&row))
            })
            .await
    }

    /// Writes this replica's figures for a stage.
    pub async fn save(
        &self,
        toggle: &str,
        seq: i64,
        instance: &str,
        figures: &Figures,
    ) -> Result<(), String> {
        let json = serde_json::to_string(figures).map_err(|e| e.to_string())?;
        self.db
            .with_client(async |c| {
                c.execute(
                    "INSERT INTO avs_rollout_figures (toggle, seq, instance, figures) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (toggle, seq, instance) DO UPDATE SET figures = $4, updated_at = now()",
                    &[&toggle, &seq, &instance, &json],
                )
                .await
                .map(drop)
            })
            .await
    }

    /// The toggles with stages.
    pub async fn toggles(&self) -> Result<Vec<String>, String> {
        self.db
            .with_client(async |c| {
                let rows = c
                    .query(
                        "SELECT DISTINCT toggle FROM avs_rollout_stages ORDER BY toggle",
                        &[],
                    )
                    .await?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
            .await
    }

    /// A toggle's last `limit` stages, oldest first, and every replica's figures for them.
    pub async fn history(
        &self,
        toggle: &str,
        limit: i64,
    ) -> Result<(Vec<StoredStage>, Vec<StoredFigures>), String> {
        self.db
            .with_client(async |c| {
                let stages = c
                    .query(
                        "SELECT seq, gates, setting, EXTRACT(EPOCH FROM started_at)::bigint FROM
                         (SELECT * FROM avs_rollout_stages WHERE toggle = $1 ORDER BY seq DESC LIMIT $2) s
                         ORDER BY seq",
                        &[&toggle, &limit],
                    )
                    .await?;
                let stages: Vec<StoredStage> = stages.iter().map(stored_stage).collect();
                let first = stages.first().map_or(i64::MAX, |s| s.seq);
                let rows = c
                    .query(
                        "SELECT seq, instance, EXTRACT(EPOCH FROM now() - updated_at)::bigint, figures
                         FROM avs_rollout_figures WHERE toggle = $1 AND seq >= $2 ORDER BY seq, instance",
                        &[&toggle, &first],
                    )
                    .await?;
                let figures = rows
                    .iter()
                    .filter_map(|r| {
                        let json: &str = r.get(3);
                        Some(StoredFigures {
                            seq: r.get(0),
                            instance: r.get(1),
                            age_secs: r.get::<_, i64>(2).max(0) as u64,
                            figures: serde_json::from_str(json).ok()?,
                        })
                    })
                    .collect();
                Ok((stages, figures))
            })
            .await
    }

    /// Keeps each toggle's last `max_stages` stages, none older than `days` (but always the
    /// current one); figures go with their stage.
    pub async fn retain(&self, max_stages: i64, days: i64) -> Result<u64, String> {
        self.db
            .with_client(async |c| {
                c.execute(
                    "DELETE FROM avs_rollout_stages s USING
                       (SELECT toggle, MAX(seq) AS last FROM avs_rollout_stages GROUP BY toggle) m
                     WHERE s.toggle = m.toggle AND s.seq < m.last
                       AND (s.seq <= m.last - $1 OR s.started_at < now() - make_interval(days => $2::int))",
                    &[&max_stages, &(days as i32)],
                )
                .await
            })
            .await
    }

    /// Rows held (stages, figures), for the retention test.
    pub async fn rows(&self) -> Result<(i64, i64), String> {
        self.db
            .with_client(async |c| {
                let row = c
                    .query_one(
                        "SELECT (SELECT COUNT(*) FROM avs_rollout_stages), (SELECT COUNT(*) FROM avs_rollout_figures)",
                        &[],
                    )
                    .await?;
                Ok((row.get(0), row.get(1)))
            })
            .await
    }
}

fn stored_stage(row: &tokio_postgres::Row) -> StoredStage {
    StoredStage {
        seq: row.get(0),
        gates: row.get(1),
        setting: row.get(2),
        started: row.get::<_, i64>(3).max(0) as u64,
    }
}
