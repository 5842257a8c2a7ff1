//! The fleet's rollout report, through the PostgreSQL that holds the toggles.
//!
//! - `avs_rollout_stages`: one row per stage of a toggle: per change of its gates as they stand
//!   in Flipper's tables. A stage is recorded from those tables, never from what one replica
//!   happens to have loaded: in the transaction of a change made through any replica's admin
//!   API, and by every replica's flush (a change Flipper itself wrote), each under one advisory
//!   lock and only when the gates differ from the latest stage's. So a change is written once,
//!   in commit order, and a replica that loaded an older state never appends it again (#20:
//!   1,000 rapid changes had left three replicas listing 50, 5 and 4 stages). Its `started_at`
//!   is the stage boundary for every replica.
//! - `avs_rollout_figures`: one row per (toggle, stage, instance), each replica's own figures
//!   for that stage in mergeable form (counters, error counts, a fixed-bucket histogram, and
//!   HyperLogLog sketches), rewritten by its replica every `AVS_ROLLOUT_FLUSH_SECS`.
//!   Its `record` holds what the rollout guard recorded of the stage (`verdict::StageRecord`:
//!   held, signed off, forced, unguarded, rolled back), each key written once.
//! - `avs_rollout_key`: the seed of the keyed actor hash, shared so that one user's hash is the
//!   same on every replica and the sketches merge (a user seen by three replicas counts once).
//!   The figures hold keyed hashes (a small stage's sketch is its set of hashes), never actor
//!   ids; whoever can read both this table and the figures could test a guessed email against
//!   them, so the report tables are as sensitive as the toggle tables (which hold actor ids).

use super::figures::Figures;
use super::verdict::StageRecord;
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
ALTER TABLE avs_rollout_stages ADD COLUMN IF NOT EXISTS record jsonb NOT NULL DEFAULT '{}';
";

/// A toggle's gates as its stage history keys them, computed from Flipper's rows: what
/// [`super::gates_key`] computes from a loaded feature, compared as `jsonb`. Actor ids are
/// only counted and digested (MD5 of the ids in byte order, one per line), never stored.
macro_rules! gates_now {
    () => {
        "SELECT jsonb_build_object(
    'boolean', COALESCE(bool_or(key = 'boolean' AND value IN ('true', '1')), false),
    'actors', count(*) FILTER (WHERE key = 'actors'),
    'actorsDigest', md5(COALESCE(string_agg(COALESCE(value, ''), E'\\n' ORDER BY COALESCE(value, '') COLLATE \"C\")
                        FILTER (WHERE key = 'actors'), '')),
    'percentageOfActors', max(value) FILTER (WHERE key = 'percentage_of_actors'),
    'percentageOfTime', max(value) FILTER (WHERE key = 'percentage_of_time'),
    'groups', count(*) FILTER (WHERE key = 'groups')) AS gates
FROM flipper_gates WHERE feature_key = $1::varchar"
    };
}

/// Toggle `$1`'s gates now, as [`gates_now`] keys them (for the test that holds the two keys
/// together).
pub const GATES_NOW: &str = gates_now!();

/// One recorder of toggle `$1`'s stages at a time (held to the end of the transaction), so two
/// never number a stage alike and each sees the other's.
const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('avs_rollout_stages'), hashtext($1::text))";

/// What records toggle `$1`'s gates as a stage, in a change's transaction or a flush's.
pub const RECORD: &[&str] = &[LOCK, RECORD_STAGE];

/// The next stage of toggle `$1`, from its gates now, when they differ from its latest stage's.
/// `setting` is derived from `gates` when read.
const RECORD_STAGE: &str = concat!(
    "WITH current AS (",
    gates_now!(),
    ")
INSERT INTO avs_rollout_stages (toggle, seq, gates, setting)
SELECT $1::varchar, COALESCE((SELECT MAX(seq) FROM avs_rollout_stages WHERE toggle = $1::varchar), 0) + 1,
       current.gates::text, ''
FROM current
WHERE current.gates IS DISTINCT FROM
      (SELECT gates::jsonb FROM avs_rollout_stages WHERE toggle = $1::varchar ORDER BY seq DESC LIMIT 1)"
);

/// A stage as stored.
#[derive(Clone, Debug)]
pub struct StoredStage {
    pub seq: i64,
    pub gates: String,
    pub setting: String,
    /// Unix seconds.
    pub started: u64,
    pub record: StageRecord,
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

    /// Records `toggle`'s gates, as they stand in Flipper's tables now, as its next stage,
    /// unless they are its latest stage's. Returns whether a stage was added.
    pub async fn record_stage(&self, toggle: &str) -> Result<bool, String> {
        self.db
            .with_client(async |c| {
                let tx = c.transaction().await?;
                let mut added = 0;
                for statement in RECORD {
                    added = tx.execute(*statement, &[&toggle]).await?;
                }
                tx.commit().await?;
                Ok(added > 0)
            })
            .await
    }

    /// The latest stage of `toggle` whose gates are `gates` (a replica's loaded state), if
    /// one was recorded.
    pub async fn stage_matching(&self, toggle: &str, gates: &str) -> Result<Option<StoredStage>, String> {
        self.db
            .with_client(async |c| {
                let row = c
                    .query_opt(
                        "SELECT seq, gates, setting, EXTRACT(EPOCH FROM started_at)::bigint, record::text
                         FROM avs_rollout_stages WHERE toggle = $1 AND gates::jsonb = $2::text::jsonb
                         ORDER BY seq DESC LIMIT 1",
                        &[&toggle, &gates],
                    )
                    .await?;
                Ok(row.as_ref().map(stored_stage))
            })
            .await
    }

    /// Sets `key` of stage `seq`'s record to `value`; with `once`, only if it has none, in one
    /// conditional write, so across a fleet exactly one replica's write takes. Returns whether
    /// this one did.
    pub async fn mark(
        &self,
        toggle: &str,
        seq: i64,
        key: &str,
        value: &serde_json::Value,
        once: bool,
    ) -> Result<bool, String> {
        let value = value.to_string();
        self.db
            .with_client(async |c| {
                let updated = c
                    .execute(
                        "UPDATE avs_rollout_stages SET record = jsonb_set(record, ARRAY[$3::text], $4::text::jsonb)
                         WHERE toggle = $1::varchar AND seq = $2::bigint AND (NOT $5::bool OR NOT record ? $3::text)",
                        &[&toggle, &seq, &key, &value, &once],
                    )
                    .await?;
                Ok(updated == 1)
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
                // A stage retention removed takes no figures (rather than failing the flush).
                c.execute(
                    "INSERT INTO avs_rollout_figures (toggle, seq, instance, figures)
                     SELECT $1::varchar, $2::bigint, $3::varchar, $4::text WHERE EXISTS
                       (SELECT 1 FROM avs_rollout_stages WHERE toggle = $1::varchar AND seq = $2::bigint)
                     ON CONFLICT (toggle, seq, instance) DO UPDATE SET figures = $4::text, updated_at = now()",
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
                        "SELECT seq, gates, setting, EXTRACT(EPOCH FROM started_at)::bigint, record::text FROM
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
        record: serde_json::from_str(row.get(4)).unwrap_or_default(),
    }
}
