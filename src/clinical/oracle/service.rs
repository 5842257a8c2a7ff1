//! The one entry point to Oracle Health summaries: the per-patient ownership index and the
//! decoded documents, each cached and loaded once however many ask, and every document served
//! only after the index says it is the caller's.
//!
//! The index is one metadata call over the lookback window, kept `AVS_OH_INDEX_TTL_SECS`. A
//! document not in it triggers at most one refresh per `AVS_OH_INDEX_REFRESH_MIN_SECS` per
//! patient before the answer is 404: a summary written a minute ago is found, and guessing ids
//! never costs an upstream call per guess. Decoded documents are cached in memory only, within a
//! byte budget; documents loading are bounded by the same budget (past it, callers wait, then
//! 503), so many large PDFs at once cannot exhaust memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use time::{Date, OffsetDateTime};

use super::client::OracleClient;
use crate::clinical::{BreakerState, RequestContext, UpstreamError};
use crate::config::OhSettings;
use crate::domain::Document;
use crate::domain::PatientIcn;
use crate::domain::oracle::{BytesAnswer, DocId, IndexedDoc, read_bytes, read_metadata};
use crate::flights::Flights;
use crate::telemetry;

/// A patient's documents, by id, as one metadata call listed them.
#[derive(Debug)]
pub struct Index {
    pub docs: HashMap<DocId, IndexedDoc>,
}

/// Why a document is not served.
#[derive(Clone, Debug)]
pub enum DocError {
    /// Not the caller's, not there, or no usable content: all look the same.
    NotFound,
    /// The upstream's content can't be used (magic, base64, size): 502.
    Unusable,
    /// The document has no PDF or plain-text content: 502 here, "empty" on the compat route.
    NoUsableContent,
    /// Too many large documents loading at once: 503.
    Busy,
    Upstream(UpstreamError),
}

impl From<UpstreamError> for DocError {
    fn from(e: UpstreamError) -> DocError {
        match e {
            UpstreamError::NotFound => DocError::NotFound,
            e => DocError::Upstream(e),
        }
    }
}

/// Loading budget unit: permits are KiB of decoded document.
const KIB: usize = 1024;

pub struct OracleSummaries {
    client: OracleClient,
    lookback: Duration,
    refresh_min: Duration,
    max_document_bytes: usize,
    indexes: Cache<PatientIcn, Arc<Index>>,
    index_flights: Flights<PatientIcn, Result<Arc<Index>, UpstreamError>>,
    /// When each patient's index was last loaded (tokio's clock, so a test can move it; the
    /// cache's own lifetime only bounds memory).
    refreshed: Cache<PatientIcn, tokio::time::Instant>,
    documents: Option<Cache<DocId, Arc<Document>>>,
    document_flights: Flights<DocId, Result<Arc<Document>, DocError>>,
    loading: Arc<tokio::sync::Semaphore>,
    loading_wait: Duration,
}

impl OracleSummaries {
    pub fn new(client: OracleClient, settings: &OhSettings) -> OracleSummaries {
        let documents = (settings.doc_cache_max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(settings.doc_cache_max_bytes)
                .weigher(|_: &DocId, d: &Arc<Document>| u32::try_from(d.weight() + 256).unwrap_or(u32::MAX))
                .time_to_live(settings.index_ttl)
                .build()
        });
        let budget = (settings.doc_cache_max_bytes as usize).max(settings.max_document_bytes);
        OracleSummaries {
            client,
            lookback: Duration::from_secs(u64::from(settings.lookback_days) * 86_400),
            refresh_min: settings.index_refresh_min,
            max_document_bytes: settings.max_document_bytes,
            // Bounded in patients: an index is a few KB.
            indexes: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(settings.index_ttl)
                .build(),
            index_flights: Flights::default(),
            refreshed: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(settings.index_refresh_min.max(Duration::from_millis(1)))
                .build(),
            documents,
            document_flights: Flights::default(),
            loading: Arc::new(tokio::sync::Semaphore::new(budget.div_ceil(KIB).max(1))),
            loading_wait: settings.timeout,
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.client.breaker_state()
    }

    /// Today, UTC, and the first day of the lookback window.
    pub fn window(&self) -> (Date, Date) {
        let today = OffsetDateTime::now_utc().date();
        let start = today
            .checked_sub(time::Duration::try_from(self.lookback).unwrap_or(time::Duration::ZERO))
            .unwrap_or(today);
        (start, today)
    }

    /// The patient's index, from the cache or one metadata call however many ask.
    #[tracing::instrument(name = "oh.index", skip_all)]
    pub async fn index(
        &self,
        patient: &PatientIcn,
        ctx: &RequestContext,
    ) -> Result<Arc<Index>, UpstreamError> {
        if let Some(index) = self.indexes.get(patient) {
            telemetry::note(|n| n.cache = Some("hit"));
            return Ok(index);
        }
        telemetry::note(|n| n.cache = Some("miss"));
        self.load_index(patient, ctx).await
    }

    async fn load_index(
        &self,
        patient: &PatientIcn,
        ctx: &RequestContext,
    ) -> Result<Arc<Index>, UpstreamError> {
        self.index_flights
            .run(patient, || async {
                let (start, end) = self.window();
                let bundle = self.client.metadata(patient, start, end, ctx).await?;
                let docs = read_metadata(&bundle).map_err(|e| {
                    tracing::warn!(reason = %e, "oracle health metadata unusable");
                    UpstreamError::BadGateway(e.to_string())
                })?;
                let index = Arc::new(Index {
                    docs: docs.into_iter().map(|d| (d.id.clone(), d)).collect(),
                });
                self.indexes.insert(patient.clone(), index.clone());
                self.refreshed
                    .insert(patient.clone(), tokio::time::Instant::now());
                Ok(index)
            })
            .await
    }

    /// The document as the caller's index lists it, refreshing the index at most once per
    /// `refresh_min` when it is not there.
    async fn owned(
        &self,
        patient: &PatientIcn,
        id: &DocId,
        ctx: &RequestContext,
    ) -> Result<IndexedDoc, DocError> {
        let index = self.index(patient, ctx).await?;
        if let Some(doc) = index.docs.get(id) {
            return Ok(doc.clone());
        }
        let recently = self
            .refreshed
            .get(patient)
            .is_some_and(|at| at.elapsed() < self.refresh_min);
        if !recently {
            self.indexes.invalidate(patient);
            let index = self.load_index(patient, ctx).await?;
            if let Some(doc) = index.docs.get(id) {
                return Ok(doc.clone());
            }
        }
        Err(DocError::NotFound)
    }

    /// The caller's document, decoded: after the ownership check, from the cache or one bytes
    /// call however many ask; its subject must be the one the index gave.
    #[tracing::instrument(name = "oh.document", skip_all)]
    pub async fn document(
        &self,
        patient: &PatientIcn,
        id: &DocId,
        ctx: &RequestContext,
    ) -> Result<Arc<Document>, DocError> {
        let indexed = self.owned(patient, id, ctx).await?;
        if let Some(doc) = self.documents.as_ref().and_then(|c| c.get(id)) {
            return Ok(doc);
        }
        let loaded = self
            .document_flights
            .run(id, || async {
                let reserve = u32::try_from(self.max_document_bytes.div_ceil(KIB)).unwrap_or(u32::MAX);
                let Ok(Ok(_reserved)) =
                    tokio::time::timeout(self.loading_wait, self.loading.acquire_many(reserve)).await
                else {
                    metrics::counter!("avs_oh_documents_shed_total").increment(1);
                    return Err(DocError::Busy);
                };
                let bundle = self.client.document(id, ctx).await?;
                let bytes = match read_bytes(&bundle, id, self.max_document_bytes) {
                    Ok(bytes) => bytes,
                    Err(BytesAnswer::Absent) => return Err(DocError::NotFound),
                    Err(BytesAnswer::NoUsableContent) => {
                        tracing::warn!("oracle health document has no PDF or plain-text content");
                        return Err(DocError::NoUsableContent);
                    }
                    Err(BytesAnswer::Unusable(e)) => {
                        tracing::warn!(reason = %e, "oracle health document unusable");
                        return Err(DocError::Unusable);
                    }
                };
                if bytes.subject != indexed.subject {
                    tracing::warn!("oracle health document's subject is not the one its index gave");
                    return Err(DocError::NotFound);
                }
                let document = Arc::new(Document::new(bytes.kind, &bytes.bytes, crate::sealed::keep));
                if let Some(cache) = &self.documents {
                    cache.insert(id.clone(), document.clone());
                }
                Ok(document)
            })
            .await;
        if loaded.is_ok() {
            telemetry::note(|n| n.cache = Some("miss"));
        }
        loaded
    }

    /// Documents loading now (for tests).
    pub fn documents_loading(&self) -> usize {
        self.document_flights.in_flight()
    }
}
