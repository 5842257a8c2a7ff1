//! The transport every clinical source shares: the forward proxy, the CA, the connect timeout,
//! the pool, how much a source may answer, how many calls are in flight, and when a source's
//! breaker opens. Where each source is, and its own deadline, are in its own section
//! (`vista.rs`, `oracle.rs`).

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::parser::Parser;

/// How upstream calls reach the clinical source. There is no "whatever the environment says".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxySetting {
    /// Not configured: direct, allowed outside production only.
    Unset,
    /// `AVS_PROXY_URL=direct`: the environment needs no proxy, declared on purpose.
    Direct,
    Via(Url),
}

#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub proxy: ProxySetting,
    pub no_proxy: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub max_body_bytes: usize,
    /// Calls in flight at most, per source.
    pub concurrency: usize,
    /// Idle pooled connections are closed after this: below the forward proxy's own idle
    /// timeout, so a connection the proxy already closed is rarely picked.
    pub pool_idle: Duration,
    pub breaker: BreakerPolicy,
}

/// When the upstream circuit opens: judged on the upstream's health over a rolling window,
/// never on what one caller asks for (see the README's "Circuit breaker").
#[derive(Clone, Copy, Debug)]
pub struct BreakerPolicy {
    pub window: Duration,
    pub min_calls: u32,
    pub failure_percent: u32,
    pub min_keys: usize,
    pub cooldown: Duration,
}

impl TransportConfig {
    pub(super) fn parse(p: &mut Parser<'_>, production: bool) -> TransportConfig {
        let proxy = match p.raw("AVS_PROXY_URL") {
            None => {
                if production {
                    p.problem("AVS_PROXY_URL", "is required in production: set the forward proxy (http://host:port), or `direct` to declare that this environment needs none");
                }
                ProxySetting::Unset
            }
            Some("direct") => ProxySetting::Direct,
            Some(raw) => match Url::parse(raw) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                    ProxySetting::Via(url)
                }
                _ => {
                    p.problem("AVS_PROXY_URL", "is not an http://host:port URL or `direct`");
                    ProxySetting::Unset
                }
            },
        };
        let ca_file = p.readable_file("AVS_UPSTREAM_CA_FILE");
        TransportConfig {
            proxy,
            no_proxy: p.raw("AVS_NO_PROXY").map(str::to_owned),
            ca_file,
            connect_timeout: p.millis("AVS_UPSTREAM_CONNECT_TIMEOUT_MS"),
            max_body_bytes: p.bytes("AVS_UPSTREAM_MAX_BODY_BYTES") as usize,
            concurrency: p.count("AVS_UPSTREAM_CONCURRENCY"),
            pool_idle: p.secs("AVS_UPSTREAM_POOL_IDLE_SECS"),
            breaker: BreakerPolicy::parse(p),
        }
    }
}

impl BreakerPolicy {
    fn parse(p: &mut Parser<'_>) -> BreakerPolicy {
        let failure_percent: u32 = p
            .parsed("AVS_BREAKER_FAILURE_PERCENT", "a whole number of percent")
            .unwrap_or(50);
        if !(1..=100).contains(&failure_percent) {
            p.problem("AVS_BREAKER_FAILURE_PERCENT", "must be 1 to 100");
        }
        BreakerPolicy {
            window: p.positive_secs("AVS_BREAKER_WINDOW_SECS"),
            min_calls: p.count("AVS_BREAKER_MIN_CALLS") as u32,
            failure_percent,
            min_keys: p.count("AVS_BREAKER_MIN_KEYS"),
            cooldown: p.secs("AVS_BREAKER_COOLDOWN_SECS"),
        }
    }
}
