//! The HTTP client every outbound call uses: the forward proxy (or none, declared), the CA file,
//! the connect and whole-call timeouts, no redirects, JSON accepted, bodies read to a limit, and
//! one retry of a GET that a pooled connection dropped before any answer.

use std::error::Error as _;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use reqwest::{Client, ClientBuilder, NoProxy, Proxy, RequestBuilder, Response};

use super::UpstreamError;
use crate::config::{ProxySetting, TransportConfig};

/// The pooled client, and one that never reuses a connection, for the one retry.
///
/// A forward proxy closes idle connections it had kept open; a GET written onto one fails
/// before any response byte. Retried on the pool, it could take another such connection
/// (through tinyproxy, 1-2 of 600 misses still failed that way, #20), so the retry always
/// opens a fresh one. hyper's own `retry_canceled_requests` covers only a connection found
/// closed before the request was written.
#[derive(Clone)]
pub(crate) struct HttpClient {
    pooled: Client,
    fresh: Client,
}

impl HttpClient {
    /// A clinical source's client: through the configured transport.
    pub(crate) fn new(config: &TransportConfig, timeout: Duration) -> Result<HttpClient, String> {
        let built = |b: ClientBuilder| b.build().map_err(|e| format!("upstream client: {e}"));
        Ok(HttpClient {
            pooled: built(builder(config, timeout)?.pool_idle_timeout(config.pool_idle))?,
            fresh: built(builder(config, timeout)?.pool_max_idle_per_host(0))?,
        })
    }

    /// A client that never takes a proxy, configured or from the environment: vets-api is not
    /// behind the clinical sources' forward proxy.
    pub(crate) fn direct(timeout: Duration, ca_file: Option<&std::path::Path>) -> Result<HttpClient, String> {
        let built = |b: ClientBuilder| b.build().map_err(|e| format!("vets-api client: {e}"));
        let base = || {
            with_roots(
                base_builder(timeout, timeout).no_proxy(),
                ca_file,
                "AVS_SIS_CA_FILE",
            )
        };
        Ok(HttpClient {
            pooled: built(base()?.pool_idle_timeout(Duration::from_secs(30)))?,
            fresh: built(base()?.pool_max_idle_per_host(0))?,
        })
    }

    pub(crate) fn get(&self, url: url::Url) -> RequestBuilder {
        self.pooled.get(url)
    }

    pub(crate) fn post(&self, url: url::Url) -> RequestBuilder {
        self.pooled.post(url)
    }

    /// Sends an idempotent request; one its pooled connection dropped before any answer is
    /// sent once more on a fresh connection, and counted.
    pub(crate) async fn send_idempotent(&self, request: RequestBuilder) -> Result<Response, UpstreamError> {
        let request = request.build().map_err(classify)?;
        let retry = request.try_clone();
        match self.pooled.execute(request).await {
            Ok(response) => Ok(response),
            Err(e) if dropped_before_answer(&e) => match retry {
                Some(retry) => {
                    tracing::debug!("upstream connection was closed; sending once more");
                    metrics::counter!("avs_upstream_retries_total").increment(1);
                    self.fresh.execute(retry).await.map_err(classify)
                }
                None => Err(classify(e)),
            },
            Err(e) => Err(classify(e)),
        }
    }
}

/// What every client is: its name, JSON accepted, its timeouts, no redirects.
fn base_builder(connect_timeout: Duration, timeout: Duration) -> ClientBuilder {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    Client::builder()
        .user_agent(concat!("avs-api/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
}

/// Everything but the pool: both clients of a clinical source are built alike.
fn builder(config: &TransportConfig, timeout: Duration) -> Result<ClientBuilder, String> {
    let builder = base_builder(config.connect_timeout, timeout);
    // Always an explicit choice: reqwest would otherwise honour HTTP(S)_PROXY from the
    // environment, and a missing forward proxy must never be papered over by one.
    let builder = match &config.proxy {
        ProxySetting::Unset | ProxySetting::Direct => builder.no_proxy(),
        ProxySetting::Via(url) => {
            // reqwest takes `user:pass@` credentials from the proxy URL itself.
            let proxy = Proxy::all(url.as_str())
                .map_err(|e| format!("AVS_PROXY_URL: {e}"))?
                .no_proxy(config.no_proxy.as_deref().and_then(NoProxy::from_string));
            builder.no_proxy().proxy(proxy)
        }
    };
    with_roots(builder, config.ca_file.as_deref(), "AVS_UPSTREAM_CA_FILE")
}

/// The builder trusting the roots in `ca_file` (PEM) besides the system's, when given.
fn with_roots(
    builder: ClientBuilder,
    ca_file: Option<&std::path::Path>,
    setting: &str,
) -> Result<ClientBuilder, String> {
    let Some(path) = ca_file else { return Ok(builder) };
    let pem = std::fs::read(path).map_err(|e| format!("{setting}: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{setting}: {e}"))?;
    Ok(builder.tls_certs_merge(certs))
}

/// A request that failed on its connection before a whole answer came, other than by
/// connecting or timing out: the peer closed or reset a connection the pool had kept. What
/// reqwest reports as a request error carries hyper's cause; a connection closed before a
/// message completed, a canceled dispatch, or a reset or broken pipe is this.
fn dropped_before_answer(e: &reqwest::Error) -> bool {
    if !e.is_request() || e.is_connect() || e.is_timeout() {
        return false;
    }
    let mut cause = e.source();
    while let Some(inner) = cause {
        if let Some(hyper) = inner.downcast_ref::<hyper::Error>()
            && (hyper.is_incomplete_message() || hyper.is_canceled())
        {
            return true;
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        cause = inner.source();
    }
    false
}

/// Reads a body chunk by chunk, so one without Content-Length is cut off at the limit too.
pub(crate) async fn read_limited(mut response: Response, limit: usize) -> Result<Bytes, UpstreamError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(UpstreamError::BadGateway(format!("body over {limit} bytes")));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > limit {
            return Err(UpstreamError::BadGateway(format!("body over {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub(crate) fn classify(e: reqwest::Error) -> UpstreamError {
    // A connect timeout means unreachable, not slow: check connect first.
    if e.is_connect() {
        UpstreamError::Unavailable("connect failed".to_owned())
    } else if e.is_timeout() {
        UpstreamError::Timeout
    } else if e.is_body() || e.is_decode() {
        UpstreamError::BadGateway("body could not be read".to_owned())
    } else {
        UpstreamError::Unavailable("request failed".to_owned())
    }
}
