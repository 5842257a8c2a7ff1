//! Feature toggles: an in-memory snapshot, swapped whole, that requests read without I/O.
//!
//! A source (the TOML file, or Flipper's Postgres tables) fills the snapshot at start-up and
//! keeps it fresh from a background task; admin writes go to the source and then swap the
//! snapshot at once. When a refresh fails the last good snapshot stays in force; when nothing
//! was ever loaded every feature is off (fail closed).

mod change;
mod file;
mod gate;
mod postgres;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

pub use crate::config::SourceConfig;
use crate::domain::ActorId;
pub use change::Change;
use file::FileSource;
pub use file::{parse_toml, render_toml};
pub use gate::{Feature, FeatureState, Percentage, bucket};
use postgres::PostgresSource;

/// The toggle that opens the AVS API to a caller.
pub const AVS_ENABLED: &str = "avs_enabled";
/// The toggle that offers appointment links to a caller.
pub const LINKS_ENABLED: &str = "va_online_scheduling_after_visit_summary";
/// The toggle that opens the Oracle Health summaries to a caller (VA.gov's name for it; not
/// `avs_enabled`, so the VistA rollout never takes OH summaries away).
pub const OH_AVS: &str = "va_online_scheduling_add_OH_avs";
/// The toggle that offers a VistA summary as a PDF and as text (`documents.md`), after
/// `avs_enabled`: rolled out on its own, so the documents can be turned off alone.
pub const AVS_PDF: &str = "avs_pdf_enabled";

/// The file is re-read this often: a change is in force well within 2 s, however it was made
/// (in place, by rename, deleted and recreated), with no platform file-watching API to trust.
const FILE_POLL: Duration = Duration::from_millis(500);

/// Logs a Flipper group once per name, whichever source holds it: groups are Ruby code and
/// never open here, and a refresh every few seconds must not repeat the warning.
fn note_group(feature: &str, group: &str) {
    static LOGGED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    if !logged.iter().any(|g| g == group) {
        tracing::warn!(feature, group, "Flipper groups are Ruby code and never open here");
        logged.push(group.to_owned());
    }
}

/// All features at one moment. A feature that does not exist is off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub features: Features,
}

/// Features by name. Looked up twice on every request (the gate, the rollout's stage), so
/// foldhash rather than SipHash: the names are the operators', not a caller's.
pub type Features = HashMap<String, Feature, foldhash::fast::FixedState>;

/// How the toggle source is doing, for `/readyz` and the admin page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceHealth {
    Loaded {
        at: SystemTime,
    },
    /// The last refresh failed; the snapshot loaded `at` stays in force.
    Stale {
        problem: String,
        at: SystemTime,
    },
    /// Nothing was ever loaded: every feature is off until a load succeeds.
    NeverLoaded {
        problem: String,
    },
}

enum Source {
    File(FileSource),
    Postgres(Box<PostgresSource>),
    Memory,
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the toggle store is read-only")]
    ReadOnly,
    #[error("the toggle store failed: {0}")]
    Store(String),
}

pub struct Toggles {
    snapshot: ArcSwap<Snapshot>,
    /// Bumped after every new snapshot: a reader that saw this number has nothing new to
    /// compare (the rollout's per-request stage check).
    generation: std::sync::atomic::AtomicU64,
    health: ArcSwap<SourceHealth>,
    source: Source,
    /// The file bytes last loaded, so the poll only re-parses on change.
    last_file: std::sync::Mutex<Option<Result<Vec<u8>, String>>>,
    /// When each feature's gates last changed (Unix seconds), for the rollout report's stages.
    changed_at: std::sync::Mutex<HashMap<String, u64>>,
    /// Serialises writes so two admin changes never interleave read-modify-write.
    writes: tokio::sync::Mutex<()>,
    refresh: Duration,
}

impl Toggles {
    fn with_source(source: Source, refresh: Duration) -> Toggles {
        Toggles {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            generation: std::sync::atomic::AtomicU64::new(0),
            health: ArcSwap::from_pointee(SourceHealth::NeverLoaded {
                problem: "not loaded yet".into(),
            }),
            source,
            last_file: std::sync::Mutex::new(None),
            changed_at: std::sync::Mutex::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
            refresh,
        }
    }

    /// Toggles fixed in memory (no source, no refresh).
    pub fn fixed(snapshot: Snapshot) -> Arc<Toggles> {
        let t = Toggles::with_source(Source::Memory, Duration::MAX);
        t.swap(snapshot);
        Arc::new(t)
    }

    /// Loads once, then keeps the snapshot fresh from a background task that ends when the
    /// last `Arc` is dropped.
    pub async fn start(config: &SourceConfig, refresh: Duration) -> Result<Arc<Toggles>, String> {
        let (source, period) = match config {
            SourceConfig::File(path) => (Source::File(FileSource { path: path.clone() }), FILE_POLL),
            SourceConfig::Postgres { url, read_only } => (
                Source::Postgres(Box::new(PostgresSource::new(url, *read_only)?)),
                refresh,
            ),
            SourceConfig::Memory => (Source::Memory, Duration::MAX),
        };
        let toggles = Arc::new(Toggles::with_source(source, period));
        toggles.refresh_now().await;
        if period != Duration::MAX {
            tokio::spawn(keep_fresh(Arc::downgrade(&toggles), period));
        }
        Ok(toggles)
    }

    fn swap(&self, snapshot: Snapshot) {
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        {
            let previous = self.snapshot.load();
            let mut changed = self.changed_at.lock().unwrap_or_else(|e| e.into_inner());
            for (name, feature) in &snapshot.features {
                if previous.features.get(name) != Some(feature) {
                    changed.insert(name.clone(), now);
                }
            }
        }
        metrics::gauge!("avs_toggle_source_last_load_timestamp_seconds").set(now as f64);
        self.snapshot.store(Arc::new(snapshot));
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        self.health.store(Arc::new(SourceHealth::Loaded {
            at: SystemTime::now(),
        }));
        metrics::gauge!("avs_toggle_source_healthy").set(1.0);
    }

    fn failed(&self, problem: String) {
        let health = match &**self.health.load() {
            SourceHealth::Loaded { at } | SourceHealth::Stale { at, .. } => SourceHealth::Stale {
                problem: problem.clone(),
                at: *at,
            },
            SourceHealth::NeverLoaded { .. } => SourceHealth::NeverLoaded {
                problem: problem.clone(),
            },
        };
        tracing::error!(%problem, "toggle source failed; the last good state stays in force");
        metrics::counter!("avs_toggle_source_errors_total").increment(1);
        metrics::gauge!("avs_toggle_source_healthy").set(0.0);
        self.health.store(Arc::new(health));
    }

    /// Reads the source and swaps the snapshot, or records why it could not.
    pub async fn refresh_now(&self) {
        match &self.source {
            Source::Memory => {}
            Source::Postgres(pg) => match pg.load().await {
                Ok(snapshot) => self.swap(snapshot),
                Err(problem) => self.failed(problem),
            },
            Source::File(file) => {
                let read = file.read();
                {
                    let mut last = self.last_file.lock().unwrap_or_else(|e| e.into_inner());
                    if last.as_ref() == Some(&read) {
                        return;
                    }
                    *last = Some(read.clone());
                }
                match read.and_then(|bytes| FileSource::parse(&bytes)) {
                    Ok(snapshot) => {
                        tracing::info!(features = snapshot.features.len(), "toggle file loaded");
                        self.swap(snapshot)
                    }
                    Err(problem) => self.failed(problem),
                }
            }
        }
    }

    pub fn health(&self) -> SourceHealth {
        SourceHealth::clone(&self.health.load())
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Which snapshot is in force, as a number that grows with each new one.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Runs `statements` (the feature's name as `$1`) in the transaction of every change
    /// written to a PostgreSQL store; nothing with other sources.
    pub fn log_changes_with(&self, statements: &'static [&'static str]) {
        if let Source::Postgres(pg) = &self.source {
            pg.log_changes_with(statements);
        }
    }

    /// When `feature`'s gates last changed in this process (Unix seconds).
    pub fn changed_at(&self, feature: &str) -> Option<u64> {
        self.changed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(feature)
            .copied()
    }

    pub fn refresh_period(&self) -> Duration {
        self.refresh
    }

    /// Whether `feature` is on for `actor`. Never does I/O and never blocks.
    pub fn is_enabled(&self, feature: &str, actor: Option<&ActorId>) -> bool {
        self.snapshot
            .load()
            .features
            .get(feature)
            .is_some_and(|f| f.is_enabled(feature, actor, fastrand::f64))
    }

    /// Applies an admin write to the source, then puts it in force here at once.
    pub async fn apply(&self, feature: &str, change: Change) -> Result<(), WriteError> {
        let _serial = self.writes.lock().await;
        tracing::info!(feature, change = %change.describe(), "toggle change");
        match &self.source {
            Source::Postgres(pg) => {
                if pg.read_only() {
                    return Err(WriteError::ReadOnly);
                }
                pg.apply(feature, &change).await.map_err(WriteError::Store)?;
                self.refresh_now().await;
            }
            Source::File(file) => {
                // The file as it is now, not the snapshot: a hand edit made since the last poll
                // is newer than what is in force, and a write built on the snapshot would
                // silently undo it (before: 5 of 5 edits lost to a write within the poll).
                let mut next = if file.path.exists() {
                    let on_disk = file.read().map_err(WriteError::Store)?;
                    FileSource::parse(&on_disk).map_err(|problem| {
                        WriteError::Store(format!("the toggle file was edited and {problem}; fix it first"))
                    })?
                } else {
                    Snapshot::clone(&self.snapshot.load())
                };
                change.apply(next.features.entry(feature.to_owned()).or_default());
                let text = render_toml(&next);
                file.write(&text).map_err(WriteError::Store)?;
                *self.last_file.lock().unwrap_or_else(|e| e.into_inner()) = Some(Ok(text.into_bytes()));
                self.swap(next);
            }
            Source::Memory => {
                let mut next = Snapshot::clone(&self.snapshot.load());
                change.apply(next.features.entry(feature.to_owned()).or_default());
                self.swap(next);
            }
        }
        Ok(())
    }
}

async fn keep_fresh(toggles: Weak<Toggles>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(toggles) = toggles.upgrade() else { return };
        toggles.refresh_now().await;
    }
}

#[cfg(test)]
mod group_tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Captures what the log writes, for counting lines.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_group_is_logged_once_per_name_however_often_it_is_read() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                // Every source reads groups through `note_group`: the file here, PostgreSQL too.
                super::parse_toml("[features.a]\ngroups = [\"staff-only-7f3a\"]\n[features.b]\ngroups = [\"staff-only-7f3a\"]\n").unwrap();
            }
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("staff-only-7f3a").count(), 1, "{text}");
    }
}
