//! The summary cache: its byte budget and how long answers live.

use std::time::Duration;

use super::parser::Parser;

#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub max_bytes: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub stale_if_error: Duration,
}

impl CacheConfig {
    pub(super) fn parse(p: &mut Parser<'_>) -> CacheConfig {
        CacheConfig {
            max_bytes: p.bytes("AVS_CACHE_MAX_BYTES"),
            ttl: p.secs("AVS_CACHE_TTL_SECS"),
            negative_ttl: p.secs("AVS_CACHE_NEGATIVE_TTL_SECS"),
            stale_if_error: p.secs("AVS_CACHE_STALE_IF_ERROR_SECS"),
        }
    }
}
