//! Per-caller fairness: one caller holds at most `max` requests in flight, so no single
//! client can take the slots everyone else needs. Past it: 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Requests in flight by caller (the keyed hash of the actor id; never the id).
pub struct CallerLimit {
    max: usize,
    /// Keyed by a keyed hash already: foldhash, not SipHash, on every request.
    in_flight: Mutex<HashMap<u64, usize, foldhash::fast::FixedState>>,
}

/// One of a caller's in-flight slots, given back when the request ends or is cancelled.
#[derive(Debug)]
pub struct CallerSlot {
    limit: Arc<CallerLimit>,
    caller: u64,
}

impl std::fmt::Debug for CallerLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerLimit").field("max", &self.max).finish()
    }
}

impl CallerLimit {
    pub fn new(max: usize) -> CallerLimit {
        CallerLimit {
            max: max.max(1),
            in_flight: Mutex::new(HashMap::default()),
        }
    }

    /// A slot for `caller`, or `None` when it already holds `max`.
    pub fn take(self: &Arc<Self>, caller: u64) -> Option<CallerSlot> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let held = in_flight.entry(caller).or_insert(0);
        if *held >= self.max {
            return None;
        }
        *held += 1;
        Some(CallerSlot {
            limit: self.clone(),
            caller,
        })
    }

    /// Callers with a request in flight (the map holds no one else).
    pub fn callers_in_flight(&self) -> usize {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for CallerSlot {
    fn drop(&mut self) {
        let mut in_flight = self.limit.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = in_flight.get_mut(&self.caller) {
            *held -= 1;
            if *held == 0 {
                in_flight.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_holds_at_most_max_and_others_are_unaffected() {
        let limit = Arc::new(CallerLimit::new(2));
        let a1 = limit.take(1).unwrap();
        let _a2 = limit.take(1).unwrap();
        assert!(limit.take(1).is_none());
        assert!(limit.take(2).is_some(), "another caller is served");
        drop(a1);
        assert!(limit.take(1).is_some(), "a slot comes back when its request ends");
        assert_eq!(
            limit.callers_in_flight(),
            1,
            "callers with nothing in flight leave the map"
        );
    }
}
