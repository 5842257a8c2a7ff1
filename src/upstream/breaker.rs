//! A circuit breaker around the upstream: after consecutive failures it opens and answers at
//! once without touching the network; after a cool-down one probe is let through (half-open);
//! the probe's success closes it, its failure opens it again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
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
    pub fn record(mut self, success: bool) {
        self.reported = true;
        self.breaker.record(success);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported {
            let mut state = self.breaker.lock();
            if let State::HalfOpen { probing: true } = *state {
                *state = State::HalfOpen { probing: false };
            }
        }
    }
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A permit, or how long until a probe may be tried.
    pub fn permit(self: &Arc<Self>) -> Result<Permit, Duration> {
        let permit = Permit {
            breaker: self.clone(),
            reported: false,
        };
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(permit),
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                *state = State::HalfOpen { probing: true };
                tracing::info!("upstream circuit half-open: probing");
                Ok(permit)
            }
            // One probe at a time; others wait for its verdict as if open.
            State::HalfOpen { probing: true } => Err(Duration::from_secs(1)),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(permit)
            }
        }
    }

    fn record(&self, success: bool) {
        let mut state = self.lock();
        let next = match (&*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (State::Open { until }, false) => State::Open { until: *until },
            (_, false) => {
                tracing::warn!(cooldown_secs = self.cooldown.as_secs(), "upstream circuit open");
                State::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
        };
        if matches!(*state, State::HalfOpen { .. } | State::Open { .. })
            && matches!(next, State::Closed { .. })
        {
            tracing::info!("upstream circuit closed");
        }
        *state = next;
        metrics::gauge!("avs_upstream_breaker_open")
            .set(f64::from(u8::from(matches!(*state, State::Open { .. }))));
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_half_opens_and_closes() {
        let b = Arc::new(Breaker::new(3, Duration::from_millis(50)));
        for _ in 0..2 {
            b.permit().unwrap().record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.permit().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.permit().is_err());
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.permit().unwrap();
        assert!(b.permit().is_err(), "one probe at a time");
        probe.record(false);
        assert_eq!(b.state(), BreakerState::Open, "a failed probe opens again");
        std::thread::sleep(Duration::from_millis(60));
        drop(b.permit().unwrap()); // a cancelled probe hands its slot back
        let probe = b.permit().unwrap();
        probe.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        b.permit().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Closed, "failures count from zero again");
    }
}
