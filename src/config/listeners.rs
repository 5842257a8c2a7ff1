//! Listeners and what one client may hold: addresses, connection deadlines and cap, the
//! request deadline, load shedding, the per-caller share, shutdown and the links batch.

use std::net::SocketAddr;
use std::time::Duration;

use super::parser::Parser;

/// What one client connection may hold, per listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
}

#[derive(Clone, Debug)]
pub struct ListenerSettings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// The runtime's worker threads; `None`: one per CPU the process may use (tokio's default,
    /// which reads the cgroup's CPU quota). Set it to the CPUs a container is given when the
    /// quota is not visible, or to 1 beside a one-worker peer in the benchmarks.
    pub worker_threads: Option<usize>,
    pub connections: ConnectionLimits,
    /// The whole-request deadline; always above the upstream timeout.
    pub request_timeout: Duration,
    /// Requests in flight at most; past it the service sheds load with 503 + Retry-After.
    pub max_in_flight: usize,
    /// Requests one caller may have in flight; past it 429.
    pub max_in_flight_per_caller: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// The whole links batch answers by then; below the request timeout.
    pub links_deadline: Duration,
    /// Link lookups in flight across the service.
    pub links_concurrency: usize,
}

impl ListenerSettings {
    pub(super) fn parse(p: &mut Parser<'_>) -> ListenerSettings {
        let listen = p.address("AVS_LISTEN");
        let admin_listen = p.address("AVS_ADMIN_LISTEN");
        let worker_threads = p
            .given("AVS_WORKER_THREADS")
            .then(|| p.count("AVS_WORKER_THREADS"));
        let connections = ConnectionLimits {
            header_timeout: p.millis("AVS_HEADER_TIMEOUT_MS"),
            idle_timeout: p.positive_secs("AVS_IDLE_TIMEOUT_SECS"),
            body_timeout: p.millis("AVS_BODY_TIMEOUT_MS"),
            max_connections: p.count("AVS_MAX_CONNECTIONS"),
            max_header_bytes: p.count("AVS_MAX_HEADER_BYTES"),
            max_headers: p.count("AVS_MAX_HEADERS"),
            max_uri_bytes: p.count("AVS_MAX_URI_BYTES"),
        };
        let request_timeout = p.millis("AVS_REQUEST_TIMEOUT_MS");
        let max_in_flight = p.count("AVS_MAX_IN_FLIGHT");
        let max_in_flight_per_caller = p.count("AVS_MAX_IN_FLIGHT_PER_CALLER");
        let shutdown_grace = p.secs("AVS_SHUTDOWN_GRACE_SECS");
        let links_deadline = p.millis("AVS_LINKS_DEADLINE_MS");
        if links_deadline >= request_timeout {
            p.problem(
                "AVS_LINKS_DEADLINE_MS",
                "must be below AVS_REQUEST_TIMEOUT_MS so a slow batch still answers 200",
            );
        }
        ListenerSettings {
            listen,
            admin_listen,
            worker_threads,
            connections,
            request_timeout,
            max_in_flight,
            max_in_flight_per_caller,
            shutdown_grace,
            links_deadline,
            links_concurrency: p.count("AVS_LINKS_CONCURRENCY"),
        }
    }
}
