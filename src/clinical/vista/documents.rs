//! A VistA summary's documents (`docs/spec/documents.md`): its PDF and its text, each rendered
//! once, on the first request for it, and kept with the summary's cache entry.
//!
//! A render is single flight per (sid, form), runs on a blocking thread (Typst is CPU work: a
//! full summary costs tens of milliseconds), and at most `RENDERS` run at once; a request that
//! cannot get a turn within `AVS_RENDER_WAIT_MS` is answered 503 with `Retry-After`. The rendered bytes
//! live in the summary's entry (every copy of it shares them), which is re-weighed so they count
//! in the cache's byte budget; an evicted summary takes its documents with it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::SummaryError;
use super::service::Summaries;
use super::summary::{Form, Kept, Rendered, Summary};
use crate::documents::{PDF_BOUNDS, SummaryDocument, render_pdf, render_text};
use crate::domain::{DocKind, Document, Sid};

/// Renders one form from the summary's own answer (its JSON:API body).
fn render(form: Form, body: &[u8]) -> Result<Rendered, SummaryError> {
    let parsed: serde_json::Value = serde_json::from_slice(body).map_err(|_| SummaryError::RenderFailed)?;
    let mut model = SummaryDocument::from_attributes(&parsed["data"]["attributes"]);
    let (kind, bytes) = match form {
        Form::Pdf => {
            // Bounded before Typst starts: the text form is whole, the PDF says if it is not.
            if model.abridge(PDF_BOUNDS) {
                tracing::info!("summary PDF abridged to its bounds");
            }
            let pdf = render_pdf(&model).map_err(|e| {
                tracing::error!(reason = %e, "summary PDF not rendered");
                SummaryError::RenderFailed
            })?;
            (DocKind::Pdf, pdf)
        }
        Form::Text => (DocKind::Text, render_text(&model).into_bytes()),
    };
    Ok(Rendered {
        file_name: model.file_name(kind.extension()),
        document: Document::new(kind, &bytes, crate::sealed::keep),
    })
}

impl Summaries {
    /// The document in `form` of a summary the caller owns (from [`Summaries::summary`], which
    /// checked): rendered once, then served from memory.
    #[tracing::instrument(name = "summaries.document", skip_all, fields(document.form = form.label()))]
    pub async fn document(&self, sid: &Sid, summary: &Arc<Summary>, form: Form) -> Kept {
        if let Some(kept) = summary.forms.get(form) {
            return kept;
        }
        let key = (sid.as_str().to_owned(), form);
        self.documents
            .flights
            .run(&key, || self.render_once(sid, summary, form))
            .await
    }

    async fn render_once(&self, sid: &Sid, summary: &Arc<Summary>, form: Form) -> Kept {
        if let Some(kept) = summary.forms.get(form) {
            return kept;
        }
        let turns = self.documents.turns(form).clone();
        let Ok(Ok(turn)) = tokio::time::timeout(self.documents.wait, turns.acquire_owned()).await else {
            metrics::counter!("avs_documents_shed_total").increment(1);
            return Err(SummaryError::Busy); // not kept: a turn may be free on the next request
        };
        let body = summary.body.get(crate::encoding::Coding::Identity).clone();
        let (summary, sid, cache) = (summary.clone(), sid.clone(), self.cache_handle());
        let rendered = self.documents.rendered.clone();
        let render = self.documents.render.unwrap_or(render);
        // The whole render, keeping its outcome with the summary, runs to its end whether or
        // not anyone still waits for it: a request that gave up (its deadline) leaves the work
        // done once for the next, instead of thrown away with its turn spent (#36).
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            // A panic in the typesetter is a failed render like any other, kept as one.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| render(form, &body)))
                .unwrap_or(Err(SummaryError::RenderFailed))
                .map(Arc::new);
            drop(turn);
            let elapsed = started.elapsed();
            metrics::histogram!("avs_document_render_seconds", "form" => form.label())
                .record(elapsed.as_secs_f64());
            tracing::info!(
                form = form.label(),
                elapsed_ms = elapsed.as_millis() as u64,
                bytes = outcome.as_ref().map_or(0, |r| r.document.bytes.len()),
                ok = outcome.is_ok(),
                "summary document rendered"
            );
            rendered.fetch_add(1, Ordering::Relaxed);
            let kept = summary.forms.slot(form).get_or_init(|| outcome).clone();
            super::service::reweigh(&cache, &sid, &summary);
            kept
        })
        .await
        .map_err(|_| SummaryError::RenderFailed)?
    }

    /// Documents rendered so far (for tests and the benchmark).
    pub fn documents_rendered(&self) -> u64 {
        self.documents.rendered.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::vista::VistaClient;

    /// No summary fails to render any more (#36), but a typesetter can still fail or panic: its
    /// failure is kept with the summary, as a success is, and never tried again per request.
    #[tokio::test]
    async fn a_failing_render_is_attempted_once_not_per_request() {
        let config = crate::config::Config::from_vars(&Default::default()).unwrap();
        let base = "http://127.0.0.1:9/".parse().unwrap();
        let client = VistaClient::new(&config.transport, &config.vista, base).unwrap();
        let mut summaries = Summaries::new(client, &config.cache);
        summaries.documents.render = Some(|_, _| panic!("a typesetting bug"));
        let summary = Arc::new(Summary {
            body: crate::encoding::Encoded::new(bytes::Bytes::from_static(b"{}")),
            owner: None,
            forms: Arc::default(),
        });
        let sid = Sid::parse("9A7AF40B2BC2471EA116891839113252").unwrap();
        for _ in 0..3 {
            let kept = summaries.document(&sid, &summary, Form::Pdf).await;
            assert!(matches!(kept, Err(SummaryError::RenderFailed)), "{kept:?}");
        }
        assert_eq!(summaries.documents_rendered(), 1, "rendered once, failed, kept");
        assert!(summary.forms.get(Form::Pdf).is_some_and(|k| k.is_err()));
    }
}
