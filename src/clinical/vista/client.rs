//! The VistA source's client: `GET /avs/{sid}` and `GET /avs-by-appointment/{station}/{ien}`,
//! each one guarded call (`clinical::call`) through the shared transport.

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;
use url::Url;

use crate::clinical::call::{
    self, Call, Guard, GuardSettings, RequestContext, UpstreamError, answered, key_of,
};
use crate::clinical::{BreakerState, HttpClient, read_limited};
use crate::config::{TransportConfig, VistaSettings};
use crate::domain::{AppointmentIen, Sid, StationNo, mended_json};

const SUMMARY: Call = Call {
    name: "summary",
    method: "GET",
    template: "/avs/{sid}",
};
const SEARCH: Call = Call {
    name: "search",
    method: "GET",
    template: "/avs-by-appointment/{stationNo}/{appointmentIen}",
};

pub struct VistaClient {
    client: HttpClient,
    base: Url,
    token: Option<HeaderValue>,
    max_body_bytes: usize,
    guard: Guard,
}

impl VistaClient {
    /// Builds the client. `base` is the configured URL or the embedded fixture upstream's.
    pub fn new(
        transport: &TransportConfig,
        settings: &VistaSettings,
        base: Url,
    ) -> Result<VistaClient, String> {
        let token = match &settings.token {
            Some(t) => {
                let mut v = HeaderValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| "AVS_UPSTREAM_TOKEN: not a valid header value".to_owned())?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(VistaClient {
            client: HttpClient::new(transport, settings.timeout)?,
            token,
            max_body_bytes: transport.max_body_bytes,
            guard: Guard::new(GuardSettings::clinical("vista", &base, transport)),
            base,
        })
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.guard.breaker_state()
    }

    /// `GET /avs/{sid}`: the summary document, or `NotFound`.
    #[tracing::instrument(name = "upstream.summary", skip_all)]
    pub async fn summary(&self, sid: &Sid, ctx: &RequestContext) -> Result<Value, UpstreamError> {
        self.get_json(SUMMARY, &["avs", sid.as_str()], ctx).await
    }

    /// `GET /avs-by-appointment/{station}/{ien}`: the array of `{sid, icn, …}` rows.
    #[tracing::instrument(name = "upstream.search", skip_all)]
    pub async fn search(
        &self,
        station: &StationNo,
        ien: &AppointmentIen,
        ctx: &RequestContext,
    ) -> Result<Value, UpstreamError> {
        self.get_json(
            SEARCH,
            &["avs-by-appointment", station.as_str(), ien.as_str()],
            ctx,
        )
        .await
    }

    fn url(&self, segments: &[&str]) -> Url {
        call::url(&self.base, segments)
    }

    async fn get_json(
        &self,
        call: Call,
        segments: &[&str],
        ctx: &RequestContext,
    ) -> Result<Value, UpstreamError> {
        self.guard
            .call(call, key_of(segments), || async {
                let body = self.fetch(segments, ctx).await?;
                // A large summary is parsed off the async workers, as it is rendered (a 1 MB
                // document is tens of milliseconds of CPU).
                if body.len() > PARSE_INLINE_BYTES {
                    return tokio::task::spawn_blocking(move || parse(&body))
                        .await
                        .map_err(|_| UpstreamError::BadGateway("the answer could not be read".to_owned()))?;
                }
                parse(&body)
            })
            .await
    }

    async fn fetch(&self, segments: &[&str], ctx: &RequestContext) -> Result<Bytes, UpstreamError> {
        let mut headers = HeaderMap::new();
        if let Some(token) = &self.token {
            headers.insert(AUTHORIZATION, token.clone());
        }
        if let Some(id) = &ctx.request_id {
            headers.insert("x-request-id", id.clone());
        }
        crate::telemetry::inject_current(&mut headers);
        let response = self
            .client
            .send_idempotent(self.client.get(self.url(segments)).headers(headers))
            .await?;
        answered(response.status());
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(UpstreamError::NotFound),
            status if status.is_server_error() => return Err(UpstreamError::ServerError(status.as_u16())),
            status => return Err(UpstreamError::BadGateway(format!("status {}", status.as_u16()))),
        }
        read_limited(response, self.max_body_bytes).await
    }
}

/// Answers up to this size are parsed where they arrive; larger ones on a blocking thread.
const PARSE_INLINE_BYTES: usize = 64 * 1024;

/// The upstream's JSON. A stray byte or half a surrogate pair is read as U+FFFD, not a 502 for
/// the whole summary (#36); anything else that is not JSON stays an error.
fn parse(body: &[u8]) -> Result<Value, UpstreamError> {
    serde_json::from_slice(body)
        .or_else(|e| match mended_json(body) {
            Some(mended) => serde_json::from_slice(&mended),
            None => Err(e),
        })
        .map_err(|e| {
            UpstreamError::BadGateway(format!("invalid JSON at line {} column {}", e.line(), e.column()))
        })
}
