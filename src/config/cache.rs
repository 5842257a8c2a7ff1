//! The summary cache: its byte budget, how long answers live, and how long a document waits to
//! be rendered into it.

use std::time::Duration;

use super::parser::Parser;

#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub max_bytes: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub stale_if_error: Duration,
    /// How long a document request waits for a render turn before 503.
    pub render_wait: Duration,
}

impl CacheConfig {
    pub(super) fn parse(p: &mut Parser<'_>) -> CacheConfig {
        CacheConfig {
            max_bytes: p.bytes("AVS_CACHE_MAX_BYTES"),
            ttl: p.secs("AVS_CACHE_TTL_SECS"),
            negative_ttl: p.secs("AVS_CACHE_NEGATIVE_TTL_SECS"),
            stale_if_error: p.secs("AVS_CACHE_STALE_IF_ERROR_SECS"),
            render_wait: p.millis("AVS_RENDER_WAIT_MS"),
        }
    }
}
