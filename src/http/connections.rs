//! The connections one listener holds: each one's clock (what it is doing, kept in atomics that
//! the reader and the service update), and the roster of them all.
//!
//! When the listener is out of room (its cap reached, or `accept` failing for lack of file
//! descriptors) the roster closes the connection whose head has been arriving longest: idle
//! half-sent requests then cannot keep a client that sends its request at once waiting for
//! their header timeout (measured at 5 s with 1,100 of them under a soft limit of 1,024, #35).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::ConnectionLimits;

/// How long the listener waits for a connection it asked to close to be gone.
const CLOSE_WAIT: Duration = Duration::from_millis(50);

/// What a connection is doing, kept in atomics that the reader and the service update.
pub(super) struct ConnectionClock {
    born: Instant,
    /// Told to close (the listener is out of room and this head is the oldest unfinished).
    closing: Notify,
    /// Requests being served (head read, response not yet produced).
    pub(super) busy: AtomicUsize,
    /// When the head now arriving began (ms since born, +1; 0: none).
    pub(super) head_started: AtomicU64,
    /// Last bytes in or out (ms since born).
    pub(super) last_traffic: AtomicU64,
}

impl ConnectionClock {
    fn new() -> ConnectionClock {
        ConnectionClock {
            born: Instant::now(),
            closing: Notify::new(),
            busy: AtomicUsize::new(0),
            // A new connection owes its first head within the header timeout.
            head_started: AtomicU64::new(1),
            last_traffic: AtomicU64::new(0),
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.born + Duration::from_millis(ms)
    }

    pub(super) fn traffic(&self, read: bool) {
        let now = self.now_ms();
        self.last_traffic.store(now, Ordering::Relaxed);
        if read && self.busy.load(Ordering::Relaxed) == 0 {
            // The first bytes of a head start its clock; later ones do not reset it.
            let _ = self
                .head_started
                .compare_exchange(0, now + 1, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// When this connection is to be closed unless something changes.
    pub(super) fn deadline(&self, limits: &ConnectionLimits) -> Instant {
        if self.busy.load(Ordering::Relaxed) > 0 {
            // A request in flight has the request deadline and the body timeout; look again.
            return Instant::now() + limits.header_timeout;
        }
        match self.head_started.load(Ordering::Relaxed) {
            0 => self.at(self.last_traffic.load(Ordering::Relaxed)) + limits.idle_timeout,
            started => self.at(started - 1) + limits.header_timeout,
        }
    }

    /// When the head still arriving on it began; `None` once it has a request or sits idle.
    fn unfinished_since(&self) -> Option<Instant> {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return None;
        }
        match self.head_started.load(Ordering::Relaxed) {
            0 => None,
            started => Some(self.at(started - 1)),
        }
    }

    /// Resolves when the listener asks this connection to close.
    pub(super) async fn closing(&self) {
        self.closing.notified().await;
    }
}

/// Every open connection of one listener, by a number of its own.
#[derive(Default)]
pub(super) struct Roster {
    open: Mutex<HashMap<u64, Arc<ConnectionClock>>>,
    next: AtomicU64,
    /// Told whenever a connection leaves the roster (its socket is closed by then).
    left: Notify,
}

/// A connection's place on the roster, given up when the connection is done.
pub(super) struct Place {
    roster: Arc<Roster>,
    id: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.roster.lock().remove(&self.id);
        self.roster.left.notify_waiters();
    }
}

impl Roster {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnectionClock>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection's clock, and its place (hold it until the socket is closed).
    pub(super) fn join(self: &Arc<Self>) -> (Arc<ConnectionClock>, Place) {
        let clock = Arc::new(ConnectionClock::new());
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, clock.clone());
        (
            clock,
            Place {
                roster: self.clone(),
                id,
            },
        )
    }

    /// Closes the connection whose unfinished head is the oldest, and waits (briefly) until it
    /// is gone; `false` when every connection has finished its head (nothing to close).
    pub(super) async fn close_oldest_unfinished(&self) -> bool {
        let left = self.left.notified();
        tokio::pin!(left);
        left.as_mut().enable();
        let oldest = self
            .lock()
            .values()
            .filter_map(|clock| Some((clock.unfinished_since()?, clock.clone())))
            .min_by_key(|(since, _)| *since)
            .map(|(_, clock)| clock);
        let Some(oldest) = oldest else { return false };
        oldest.closing.notify_one();
        metrics::counter!("avs_connections_closed_for_room_total").increment(1);
        let _ = tokio::time::timeout(CLOSE_WAIT, left).await;
        true
    }
}
