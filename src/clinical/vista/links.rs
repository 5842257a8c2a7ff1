//! Link eligibility for the appointments service: which past appointments have a summary the
//! caller may open. One batch, looked up concurrently (bounded per request and across the
//! service) through the same cache as the search, answered in request order by a deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::SummaryError;
use super::service::Summaries;
use crate::clinical::RequestContext;
use crate::domain::{AppointmentIen, OwnerIcn, Sid, StationNo};

/// Where the VA.gov frontend shows a summary.
pub const SUMMARY_PAGE: &str = "/my-health/medical-records/summaries-and-notes/visit-summary/";
/// Lookups in flight for one batch.
pub const PER_REQUEST_LOOKUPS: usize = 16;
pub const MAX_ITEMS: usize = 100;

/// One appointment's answer: a page to link to, nothing, or a failed lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// The appointment's summary, the caller's own.
    Page(Sid),
    None,
    Failed,
}

/// Looks every appointment up; items not answered by `deadline` are `Failed`.
#[tracing::instrument(name = "links.lookup", skip_all, fields(items = appointments.len()))]
pub async fn lookup(
    summaries: Arc<Summaries>,
    service_slots: Arc<Semaphore>,
    owner: Option<OwnerIcn>,
    appointments: &[(StationNo, AppointmentIen)],
    ctx: RequestContext,
    deadline: Duration,
) -> Vec<Link> {
    let mut links = vec![Link::Failed; appointments.len()];
    let request_slots = Arc::new(Semaphore::new(PER_REQUEST_LOOKUPS));
    let mut tasks = JoinSet::new();
    for (index, (station, ien)) in appointments.iter().cloned().enumerate() {
        let (summaries, ctx, owner) = (summaries.clone(), ctx.clone(), owner.clone());
        let (request_slots, service_slots) = (request_slots.clone(), service_slots.clone());
        // Each lookup runs in a task of its own, outside the request's notes: it keeps notes of
        // its own, which are added to the request's (else the report saw 0 upstream calls).
        tasks.spawn(crate::telemetry::with_notes(async move {
            let (Ok(_mine), Ok(_shared)) = (
                request_slots.acquire_owned().await,
                service_slots.acquire_owned().await,
            ) else {
                return (index, Link::Failed);
            };
            let link = match summaries.search(&station, &ien, owner.as_ref(), &ctx).await {
                Ok(Some(sid)) => Link::Page(sid),
                // Someone else's summary is no link, and no hint either.
                Ok(None) | Err(SummaryError::NotYourAppointment) => Link::None,
                Err(_) => Link::Failed,
            };
            (index, link)
        }));
    }
    let until = tokio::time::Instant::now() + deadline;
    loop {
        match tokio::time::timeout_at(until, tasks.join_next()).await {
            Ok(Some(Ok(((index, link), notes)))) => {
                links[index] = link;
                crate::telemetry::note(|n| n.absorb_upstream(&notes));
            }
            Ok(Some(Err(_))) => {} // a panicked lookup stays Failed
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(unanswered = tasks.len(), "links deadline reached");
                tasks.abort_all();
                break;
            }
        }
    }
    let failed = links.iter().filter(|l| **l == Link::Failed).count();
    if failed > 0 {
        metrics::counter!("avs_links_failed_items_total").increment(failed as u64);
    }
    links
}
