//! A summary as the VistA service caches it, and the parts of it that rendering shares: the
//! types below `service.rs`, `documents.rs` and `entry.rs`, so each of them imports from here
//! and none from another in a circle.

use std::sync::{Arc, OnceLock};

use super::SummaryError;
use crate::domain::Document;
use crate::domain::OwnerIcn;
use crate::encoding::Encoded;

/// A summary as cached: its response body in every coding, compressed once when it was
/// rendered, and its owner, checked against the caller on every request.
#[derive(Debug)]
pub struct Summary {
    pub body: Encoded,
    pub owner: Option<OwnerIcn>,
    /// Its PDF and text, once rendered (`documents.rs`); shared by every copy of the entry.
    pub forms: Arc<Forms>,
}

/// Renders in flight at most: one per core keeps the async workers' cores free enough.
pub(super) const RENDERS: usize = 2;
/// Text forms made at once, apart from the PDFs' turns.
const TEXT_RENDERS: usize = 4;

/// The two document forms of a summary.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Form {
    Pdf,
    Text,
}

/// A rendered document and the name it is saved under (no sid in it).
#[derive(Debug)]
pub struct Rendered {
    pub document: Document,
    pub file_name: String,
}

/// What a render came to, kept with the summary either way: a render that failed is not tried
/// again on every request (each retry typeset the whole summary again, #36).
pub type Kept = Result<Arc<Rendered>, SummaryError>;

/// A summary's rendered forms, shared by every copy of its cache entry.
#[derive(Debug, Default)]
pub struct Forms {
    pdf: OnceLock<Kept>,
    text: OnceLock<Kept>,
}

impl Forms {
    pub(super) fn slot(&self, form: Form) -> &OnceLock<Kept> {
        match form {
            Form::Pdf => &self.pdf,
            Form::Text => &self.text,
        }
    }

    pub fn get(&self, form: Form) -> Option<Kept> {
        self.slot(form).get().cloned()
    }

    /// Bytes held, for the cache's budget.
    pub fn bytes(&self) -> usize {
        [&self.pdf, &self.text]
            .iter()
            .filter_map(|slot| slot.get()?.as_ref().ok())
            .map(|r| r.document.weight() + r.file_name.len() + std::mem::size_of::<Rendered>())
            .sum()
    }
}

impl Form {
    pub fn label(self) -> &'static str {
        match self {
            Form::Pdf => "pdf",
            Form::Text => "txt",
        }
    }
}

/// What renders one form of a summary from its JSON:API body.
pub(super) type Renderer = fn(Form, &[u8]) -> Result<Rendered, SummaryError>;

/// What the service keeps for rendering: the turns, the flights, the count.
pub(super) struct DocumentState {
    pub(super) wait: std::time::Duration,
    /// PDFs typeset at once.
    pub(super) pdf_turns: Arc<tokio::sync::Semaphore>,
    /// Text forms made at once: about a millisecond each, so never behind a PDF (#36).
    pub(super) text_turns: Arc<tokio::sync::Semaphore>,
    pub(super) flights: crate::flights::Flights<(String, Form), Kept>,
    /// Renders finished, well or not.
    pub(super) rendered: Arc<std::sync::atomic::AtomicU64>,
    /// What renders a form in place of `documents::render`: only a test's typesetter that fails.
    pub(super) render: Option<Renderer>,
}

impl DocumentState {
    /// `wait`: how long a request waits for a render turn (`AVS_RENDER_WAIT_MS`).
    pub(super) fn new(wait: std::time::Duration) -> DocumentState {
        DocumentState {
            wait,
            pdf_turns: Arc::new(tokio::sync::Semaphore::new(RENDERS)),
            text_turns: Arc::new(tokio::sync::Semaphore::new(TEXT_RENDERS)),
            flights: crate::flights::Flights::default(),
            rendered: Arc::default(),
            render: None,
        }
    }

    pub(super) fn turns(&self, form: Form) -> &Arc<tokio::sync::Semaphore> {
        match form {
            Form::Pdf => &self.pdf_turns,
            Form::Text => &self.text_turns,
        }
    }
}
