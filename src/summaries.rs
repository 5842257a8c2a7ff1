//! The one entry point to summaries and appointment lookups: fetch, check shape, render.
//!
//! Handlers go through here and nowhere else, so caching (rendered bytes plus owner, keyed by
//! sid) slots in behind these two functions without touching the edge.

use std::sync::Arc;

use serde_json::Value;

use crate::domain::{AppointmentIen, OwnerIcn, RenderedSummary, Sid, StationNo, render};
use crate::upstream::{RequestContext, UpstreamClient, UpstreamError};

/// The first summary upstream knows for an appointment.
#[derive(Clone, Debug)]
pub enum SearchHit {
    None,
    Found { sid: Sid, owner: Option<OwnerIcn> },
}

pub struct Summaries {
    upstream: UpstreamClient,
}

impl Summaries {
    pub fn new(upstream: UpstreamClient) -> Summaries {
        Summaries { upstream }
    }

    /// The rendered summary for `sid`; ownership is the caller's to check.
    #[tracing::instrument(name = "summaries.summary", skip_all)]
    pub async fn summary(
        &self,
        sid: &Sid,
        ctx: &RequestContext,
    ) -> Result<Arc<RenderedSummary>, UpstreamError> {
        let doc = self.upstream.summary(sid, ctx).await?;
        let rendered = render(doc, sid).map_err(|e| {
            tracing::warn!(reason = %e, "upstream summary has the wrong shape");
            UpstreamError::BadGateway(e.to_string())
        })?;
        if rendered.unknown_keys > 0 {
            // Schema drift: the upstream sends sections the contract does not know.
            metrics::counter!("avs_upstream_unknown_keys_total").increment(rendered.unknown_keys as u64);
            tracing::info!(
                unknown_keys = rendered.unknown_keys,
                "upstream summary has unknown keys"
            );
        }
        Ok(Arc::new(rendered))
    }

    /// The summary for an appointment, if any. Upstream 404 means none.
    #[tracing::instrument(name = "summaries.search", skip_all)]
    pub async fn search(
        &self,
        station: &StationNo,
        ien: &AppointmentIen,
        ctx: &RequestContext,
    ) -> Result<SearchHit, UpstreamError> {
        let rows = match self.upstream.search(station, ien, ctx).await {
            Ok(rows) => rows,
            Err(UpstreamError::NotFound) => return Ok(SearchHit::None),
            Err(e) => return Err(e),
        };
        first_hit(rows).map_err(|reason| {
            tracing::warn!(reason, "upstream search answer has the wrong shape");
            UpstreamError::BadGateway(reason.to_owned())
        })
    }
}

/// The first row of a search answer; every row must be an object.
fn first_hit(rows: Value) -> Result<SearchHit, &'static str> {
    let Value::Array(rows) = rows else {
        return Err("search answer is not an array");
    };
    if rows.iter().any(|r| !r.is_object()) {
        return Err("search rows are not objects");
    }
    let Some(first) = rows.first() else {
        return Ok(SearchHit::None);
    };
    let sid = first
        .get("sid")
        .and_then(Value::as_str)
        .and_then(Sid::parse)
        .ok_or("search row has no valid sid")?;
    let owner = match first.get("icn") {
        None | Some(Value::Null) => None,
        Some(Value::String(icn)) => OwnerIcn::from_icn(Some(icn)),
        Some(_) => return Err("search row icn is not a string"),
    };
    Ok(SearchHit::Found { sid, owner })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_rows() {
        assert!(matches!(first_hit(json!([])), Ok(SearchHit::None)));
        let hit =
            first_hit(json!([{"sid": "9A7AF40B2BC2471EA116891839113252", "icn": "1V123456"}, {"sid": "x"}]))
                .unwrap();
        assert!(matches!(hit, SearchHit::Found { owner: Some(_), .. }));
        assert!(first_hit(json!({})).is_err());
        assert!(first_hit(json!([1])).is_err());
        assert!(first_hit(json!([{"sid": "nothex"}])).is_err());
        assert!(first_hit(json!([{"sid": "9A7AF40B2BC2471EA116891839113252", "icn": 5}])).is_err());
    }
}
