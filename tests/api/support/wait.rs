//! Waiting on a condition with a deadline, polling: never a fixed sleep where a condition can
//! be asked.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Waits until `check` holds, polling every 20 ms, up to `limit`; how long it took.
pub async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Every task's answer once all are done, ordered by status (the first field): concurrent
/// requests finish in any order.
pub async fn by_status<S: Ord + Copy + 'static, A: 'static, B: 'static>(
    mut tasks: tokio::task::JoinSet<(S, A, B)>,
) -> Vec<(S, A, B)> {
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    answers.sort_by_key(|(status, _, _)| *status);
    answers
}

/// Waits until something accepts connections on the loopback `port`.
pub async fn listening(port: u16, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Moves this runtime's clock forward by `d` at once: the summary cache's freshness and the
/// breaker's cooldown read tokio's clock, so a test of a TTL need not wait it out. The clock
/// runs on from there (the runtime must be the current-thread one `#[tokio::test]` makes).
pub async fn advance(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}
