//! Feature toggles: an in-memory snapshot, swapped whole, that requests read without I/O.
//!
//! This is the gate point. Loading comes from a source (today the TOML file, read at start-up);
//! live reload, Postgres and the admin API plug in here by swapping the snapshot.

mod file;
mod gate;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::domain::ActorId;
pub use file::parse_toml;
pub use gate::{Feature, Percentage, bucket};

/// The toggle that opens the AVS API to a caller.
pub const AVS_ENABLED: &str = "avs_enabled";
/// The toggle that offers appointment links to a caller.
pub const LINKS_ENABLED: &str = "va_online_scheduling_after_visit_summary";

/// All features at one moment. A feature that does not exist is off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub features: HashMap<String, Feature>,
}

/// How the toggle source is doing, for `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceHealth {
    Loaded,
    /// Nothing was ever loaded: every feature is off (fail closed).
    NeverLoaded {
        problem: String,
    },
}

pub struct Toggles {
    snapshot: ArcSwap<Snapshot>,
    health: ArcSwap<SourceHealth>,
}

impl Toggles {
    pub fn new(snapshot: Snapshot) -> Toggles {
        Toggles {
            snapshot: ArcSwap::from_pointee(snapshot),
            health: ArcSwap::from_pointee(SourceHealth::Loaded),
        }
    }

    /// A source that failed before its first load: every feature off until one succeeds.
    pub fn failed_closed(problem: String) -> Toggles {
        Toggles {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            health: ArcSwap::from_pointee(SourceHealth::NeverLoaded { problem }),
        }
    }

    /// Loads the file source once.
    pub fn from_file(path: &std::path::Path) -> Toggles {
        match file::load(path) {
            Ok(snapshot) => Toggles::new(snapshot),
            Err(problem) => {
                tracing::error!(path = %path.display(), %problem, "toggle file could not be loaded; every feature is off");
                Toggles::failed_closed(problem)
            }
        }
    }

    pub fn replace(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
        self.health.store(Arc::new(SourceHealth::Loaded));
    }

    pub fn health(&self) -> SourceHealth {
        SourceHealth::clone(&self.health.load())
    }

    /// Whether `feature` is on for `actor`. Never does I/O and never blocks.
    pub fn is_enabled(&self, feature: &str, actor: Option<&ActorId>) -> bool {
        self.snapshot
            .load()
            .features
            .get(feature)
            .is_some_and(|f| f.is_enabled(feature, actor, fastrand::f64))
    }
}
