//! A circuit breaker that measures the upstream, not a caller.
//!
//! It opens only when, over a rolling window, the upstream has had enough calls
//! (`min_calls`), enough of them failed (`failure_percent`: timeouts, connection failures,
//! 5xx; a 404 or a malformed document is an answer, not ill health), **and** the failures are
//! spread over enough distinct keys (`min_keys` sids or appointments). One caller asking for a
//! handful of sids that the upstream fails on therefore never opens it for everyone; an outage,
//! which fails every key, does. While open it answers at once without touching the network;
//! after the cool-down one probe is let through (half-open), whose success closes it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock: the same as std's in production, and one a test can move forward.
use tokio::time::Instant;

use crate::config::BreakerPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// How one call went, as the breaker judges the upstream's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The upstream answered (a 404 and a malformed document included).
    Answered,
    /// Timeout, connection failure or 5xx.
    Failed,
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// The window is kept as this many slices, each `window / SLICES` long.
const SLICES: usize = 6;

#[derive(Debug, Default, Clone)]
struct Slice {
    /// Which slice of time (since the breaker was made) this holds.
    epoch: u64,
    calls: u32,
    failures: u32,
    /// Distinct failing keys, at most `min_keys` of them (enough to decide).
    failing_keys: Vec<u64>,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    slices: [Slice; SLICES],
}

pub struct Breaker {
    policy: BreakerPolicy,
    source: &'static str,
    born: Instant,
    state: Mutex<State>,
}

/// Permission to make one upstream call; report how it went with [`Permit::record`]. Dropped
/// unreported (the request was cancelled), a half-open probe slot is handed back.
#[must_use]
pub struct Permit {
    breaker: Arc<Breaker>,
    reported: bool,
}

impl Permit {
    /// `key` names what was asked for (a hash of the sid or appointment).
    pub fn record(mut self, health: Health, key: u64) {
        self.reported = true;
        self.breaker.record(health, key);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported {
            let mut state = self.breaker.lock();
            if let Phase::HalfOpen { probing: true } = state.phase {
                state.phase = Phase::HalfOpen { probing: false };
            }
        }
    }
}

impl Breaker {
    /// A breaker for one clinical source; `source` labels its gauge (`vista`, `oracle`), so an
    /// open breaker of one source never shows as the other's.
    pub fn new(policy: BreakerPolicy, source: &'static str) -> Breaker {
        // Published closed from the start, so a dashboard and an alert see each source's series
        // before its first call (absent reads as "no data", not as "closed").
        metrics::gauge!("avs_upstream_breaker_open", "source" => source).set(0.0);
        Breaker {
            policy,
            source,
            born: Instant::now(),
            state: Mutex::new(State {
                phase: Phase::Closed,
                slices: Default::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn epoch(&self) -> u64 {
        let slice = (self.policy.window / SLICES as u32).max(Duration::from_millis(1));
        (self.born.elapsed().as_nanos() / slice.as_nanos()) as u64
    }

    /// A permit, or how long until a probe may be tried.
    pub fn permit(self: &Arc<Self>) -> Result<Permit, Duration> {
        let permit = Permit {
            breaker: self.clone(),
            reported: false,
        };
        let mut state = self.lock();
        match state.phase {
            Phase::Closed => Ok(permit),
            Phase::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                state.phase = Phase::HalfOpen { probing: true };
                tracing::info!("upstream circuit half-open: probing");
                Ok(permit)
            }
            // One probe at a time; others wait for its verdict as if open.
            Phase::HalfOpen { probing: true } => Err(Duration::from_secs(1)),
            Phase::HalfOpen { probing: false } => {
                state.phase = Phase::HalfOpen { probing: true };
                Ok(permit)
            }
        }
    }

    fn record(&self, health: Health, key: u64) {
        let epoch = self.epoch();
        let mut state = self.lock();
        match (&state.phase, health) {
            (Phase::HalfOpen { .. }, Health::Answered) => {
                tracing::info!("upstream circuit closed");
                state.phase = Phase::Closed;
                state.slices = Default::default();
            }
            (Phase::HalfOpen { .. }, Health::Failed) => self.open(&mut state),
            (Phase::Open { .. }, _) => {}
            (Phase::Closed, health) => {
                let slice = &mut state.slices[epoch as usize % SLICES];
                if slice.epoch != epoch {
                    *slice = Slice {
                        epoch,
                        ..Slice::default()
                    };
                }
                slice.calls += 1;
                if health == Health::Failed {
                    slice.failures += 1;
                    if slice.failing_keys.len() < self.policy.min_keys && !slice.failing_keys.contains(&key) {
                        slice.failing_keys.push(key);
                    }
                    if self.unhealthy(&state.slices, epoch) {
                        self.open(&mut state);
                    }
                }
            }
        }
        metrics::gauge!("avs_upstream_breaker_open", "source" => self.source)
            .set(f64::from(u8::from(matches!(state.phase, Phase::Open { .. }))));
    }

    /// Whether the window's calls say the upstream itself is failing.
    fn unhealthy(&self, slices: &[Slice; SLICES], epoch: u64) -> bool {
        let live = slices
            .iter()
            .filter(|s| s.epoch + (SLICES as u64) > epoch && s.epoch <= epoch);
        let (mut calls, mut failures) = (0u64, 0u64);
        let mut keys: Vec<u64> = Vec::new();
        for slice in live {
            calls += u64::from(slice.calls);
            failures += u64::from(slice.failures);
            for key in &slice.failing_keys {
                if keys.len() < self.policy.min_keys && !keys.contains(key) {
                    keys.push(*key);
                }
            }
        }
        calls >= u64::from(self.policy.min_calls)
            && failures * 100 >= calls * u64::from(self.policy.failure_percent)
            && keys.len() >= self.policy.min_keys
    }

    fn open(&self, state: &mut State) {
        // The request whose failure opened it counts for the `upstream` guard of its stage.
        crate::telemetry::note(|n| n.breaker_open = true);
        tracing::warn!(
            cooldown_secs = self.policy.cooldown.as_secs(),
            "upstream circuit open"
        );
        state.phase = Phase::Open {
            until: Instant::now() + self.policy.cooldown,
        };
        state.slices = Default::default();
    }

    pub fn state(&self) -> BreakerState {
        match self.lock().phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } if Instant::now() < until => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(cooldown_ms: u64) -> BreakerPolicy {
        BreakerPolicy {
            window: Duration::from_secs(30),
            min_calls: 20,
            failure_percent: 50,
            min_keys: 10,
            cooldown: Duration::from_millis(cooldown_ms),
        }
    }

    #[test]
    fn a_few_failing_keys_never_open_it_however_often_they_fail() {
        let b = Arc::new(Breaker::new(policy(50), "test"));
        for round in 0..40 {
            b.permit().unwrap().record(Health::Failed, round % 5);
        }
        assert_eq!(b.state(), BreakerState::Closed, "5 keys failing 40 times");
    }

    #[test]
    fn failures_among_healthy_traffic_never_open_it() {
        let b = Arc::new(Breaker::new(policy(50), "test"));
        for n in 0..200u64 {
            let health = if n % 4 == 0 {
                Health::Failed
            } else {
                Health::Answered
            };
            b.permit().unwrap().record(health, n);
        }
        assert_eq!(b.state(), BreakerState::Closed, "25 % failures over many keys");
    }

    #[test]
    fn an_outage_opens_it_then_it_half_opens_and_closes() {
        let b = Arc::new(Breaker::new(policy(50), "test"));
        for n in 0..19u64 {
            b.permit().unwrap().record(Health::Failed, n);
        }
        assert_eq!(b.state(), BreakerState::Closed, "below the minimum volume");
        b.permit().unwrap().record(Health::Failed, 19);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.permit().is_err());
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.permit().unwrap();
        assert!(b.permit().is_err(), "one probe at a time");
        probe.record(Health::Failed, 1);
        assert_eq!(b.state(), BreakerState::Open, "a failed probe opens again");
        std::thread::sleep(Duration::from_millis(60));
        drop(b.permit().unwrap()); // a cancelled probe hands its slot back
        b.permit().unwrap().record(Health::Answered, 1);
        assert_eq!(b.state(), BreakerState::Closed);
        b.permit().unwrap().record(Health::Failed, 1);
        assert_eq!(b.state(), BreakerState::Closed, "the window starts afresh");
    }

    #[test]
    fn old_failures_leave_the_window() {
        let b = Arc::new(Breaker::new(
            BreakerPolicy {
                window: Duration::from_millis(60),
                ..policy(50)
            },
            "test",
        ));
        for n in 0..15u64 {
            b.permit().unwrap().record(Health::Failed, n);
        }
        std::thread::sleep(Duration::from_millis(80));
        for n in 15..25u64 {
            b.permit().unwrap().record(Health::Failed, n);
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "15 old + 10 new is not 20 in one window"
        );
    }
}
