//! What the VistA summary cache holds: its keys and entries, what each weighs against the byte
//! budget, and how long moka keeps it.

use std::sync::Arc;
use std::time::Duration;

use moka::Expiry;
// tokio's clock (see `service.rs`).
use tokio::time::Instant;

use super::summary::Summary;
use crate::domain::{OwnerIcn, Sid};

/// The first summary upstream knows for an appointment.
#[derive(Clone, Debug)]
pub(super) enum SearchHit {
    None,
    Found { sid: Sid, owner: Option<OwnerIcn> },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(super) enum Key {
    /// The sid's one canonical spelling (see [`Sid`]), the very one sent upstream.
    Summary(Sid),
    Search(String, String),
}

#[derive(Clone, Debug)]
pub(super) enum Outcome {
    Summary(Arc<Summary>),
    Search(SearchHit),
    /// Upstream 404: kept for the negative TTL only.
    NotFound,
}

#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) outcome: Outcome,
    pub(super) fetched: Instant,
}

impl Key {
    /// Heap bytes the key holds.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            // Inline, but in moka's node: more than the `String` the overhead was measured with.
            Key::Summary(_) => std::mem::size_of::<Sid>(),
            Key::Search(station, ien) => station.capacity() + ien.capacity(),
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Key::Summary(_) => "summary",
            Key::Search(..) => "search",
        }
    }
}

impl Entry {
    pub(super) fn negative(&self) -> bool {
        matches!(self.outcome, Outcome::NotFound | Outcome::Search(SearchHit::None))
    }

    /// Bytes held, for the byte budget: the body, the key, and what moka and this entry hold
    /// besides (measured: a negative entry with a 32-character sid grew RSS by ~540 bytes, of
    /// which 256 were counted before).
    pub(super) fn weight(&self, key: &Key) -> u32 {
        let body = match &self.outcome {
            Outcome::Summary(s) => s.body.len() + s.forms.bytes() + std::mem::size_of::<Summary>(),
            _ => 0,
        };
        u32::try_from(body + key.heap_bytes() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
    }
}

/// How long moka keeps each entry: negative ones for their TTL, others for TTL plus the
/// stale-if-error window (freshness within that is judged by `fetched`).
#[derive(Clone, Copy)]
pub(super) struct Lifetimes {
    pub(super) ttl: Duration,
    pub(super) negative_ttl: Duration,
    pub(super) stale_if_error: Duration,
}

impl Lifetimes {
    pub(super) fn keep(&self, entry: &Entry) -> Duration {
        if entry.negative() {
            self.negative_ttl
        } else {
            self.ttl + self.stale_if_error
        }
    }

    pub(super) fn fresh(&self, entry: &Entry) -> bool {
        if entry.negative() {
            entry.fetched.elapsed() < self.negative_ttl
        } else {
            self.fresh_answer(entry.fetched)
        }
    }

    /// Whether an answer (not a negative entry) fetched then is fresh: the hot map's rule too.
    pub(super) fn fresh_answer(&self, fetched: Instant) -> bool {
        fetched.elapsed() < self.ttl
    }

    pub(super) fn servable_stale(&self, entry: &Entry) -> bool {
        !entry.negative() && entry.fetched.elapsed() < self.ttl + self.stale_if_error
    }
}

impl Expiry<Key, Entry> for Lifetimes {
    fn expire_after_create(&self, _: &Key, entry: &Entry, _: std::time::Instant) -> Option<Duration> {
        Some(self.keep(entry))
    }

    fn expire_after_update(
        &self,
        _: &Key,
        entry: &Entry,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.keep(entry))
    }
}

/// Per entry, beyond the body and the key: moka's node, its deques and timer wheel, the
/// entry itself and allocator rounding (measured with 12,000 negative entries).
pub(super) const ENTRY_OVERHEAD: usize = 512;
