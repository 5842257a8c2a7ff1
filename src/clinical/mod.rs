//! The clinical sources, side by side with the same shape over shared parts.
//!
//! - `call.rs`: **the** guarded call every outbound HTTP call goes through (slot, breaker,
//!   metrics, span, the request's notes, the log line, each once), labelled by source.
//! - `http_client.rs`: the transport (proxy, CA, timeouts, the one retry of a dropped connection,
//!   bodies read to a limit). `breaker.rs`: the breaker a guard holds. `fixture.rs`: the embedded
//!   fixture upstream of the development default.
//! - `vista/` and `oracle/`: one folder per source, the same file names where they do the same
//!   job: `client.rs` (the source's calls, each one guarded call) and `service.rs` (the cache,
//!   single flight, the shape checks, and **the ownership check**: only the caller's own
//!   results leave a service). VistA also has `links.rs` (which appointments have a summary).
//!
//! # What a source brings (adding a third, e.g. Medical Records notes)
//!
//! 1. `config/<source>.rs`: where it is and its own deadline (one section; the proxy, CA, pool
//!    and breaker policy are `config/transport.rs`'s), declared in `config/settings.rs`.
//! 2. `clinical/<source>/client.rs`: a `Guard` labelled with the source's name
//!    (`GuardSettings { source, .. }`), one `Call` constant per kind of call (its metric label
//!    and URL template), and per call a closure that sends through `HttpClient` and maps the
//!    answer to `UpstreamError`. Nothing else: the guard counts, times, traces and logs.
//! 3. `clinical/<source>/service.rs`: the cache and single flight, parsing through `domain/`
//!    (pure, with property tests), the ownership check, and the source's error enum.
//! 4. `http/<source>.rs`: the handlers (extract, gate, call the service, map the result); the
//!    error enum maps to `ApiError` in `http/error.rs`, the routes join `http::routes`, and
//!    documents use `http/documents.rs`.
//! 5. `app.rs`: the service in `Shared`, its breaker in `/readyz`; `toggles/`: its toggle and
//!    gate points; `openapi.yaml`, `docs/` and the fixture upstream (`fixture.rs`); in the tests,
//!    a harness in `tests/api/support/` beside `upstream.rs`.

mod breaker;
pub mod call;
pub mod fixture;
mod http_client;
pub mod oracle;
pub mod vista;

pub use breaker::{Breaker, BreakerState, Health};
pub use call::{RequestContext, UpstreamError};
pub(crate) use http_client::{HttpClient, read_limited};
