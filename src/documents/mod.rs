//! VistA summaries as documents (`docs/spec/documents.md`): one model of what the VA.gov page
//! shows, in its order and words with every section open, built from the summary's rendered
//! attributes; then the same model as plain text (`text.rs`) and as a tagged PDF/UA-1
//! (`pdf.rs`, typeset by Typst from `template.typ`). Both forms read only this model, so they
//! hold the same strings in the same order, and neither can show what the model leaves out: the
//! ICN never reaches it, nor the sid.
//!
//! Every field is read by its type: a field of the wrong type (a string where the page expects
//! a list) leaves its part out; an empty section is left out.

mod abridge;
mod dates;
mod glyphs;
mod html;
mod medications;
pub mod pdf;
mod sections;
pub mod text;

use serde::Serialize;
use serde_json::Value;

pub use abridge::{Bounds, NOTICE, PDF_BOUNDS};
pub use pdf::{PdfError, render_pdf};
pub use text::render_text;

/// The title of every summary document (the PDF's metadata title too).
pub const TITLE: &str = "After-visit summary";

/// What the page shows, ready to typeset.
#[derive(Debug, Default, Serialize)]
pub struct SummaryDocument {
    pub title: String,
    /// The visit's date, long form ("January 1, 2023"): in the title and the first heading.
    pub visit_date: Option<String>,
    /// The visit's date as `YYYY-MM-DD`, for the file name.
    pub file_date: Option<String>,
    /// The page header's lines.
    pub header: Vec<String>,
    /// "Date and time generated: …".
    pub generated: Option<String>,
    /// Under the title of a PDF cut to its bounds (`abridge.rs`).
    pub notice: Option<String>,
    pub sections: Vec<Section>,
}

/// A level-2 heading and its groups.
#[derive(Debug, Serialize)]
pub struct Section {
    pub heading: String,
    pub groups: Vec<Group>,
}

/// A level-3 heading (or none) and its blocks.
#[derive(Debug, Serialize)]
pub struct Group {
    pub heading: Option<String>,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Block {
    /// A paragraph of runs.
    Para {
        spans: Vec<Span>,
    },
    /// A label over what follows (a bold line, not a heading: headings stop at level 3).
    Label {
        text: String,
    },
    List {
        items: Vec<Vec<Span>>,
    },
    /// One paragraph of lines, as the page's `<p>` with `<br>`s (a medication's fields): in the
    /// PDF one tagged paragraph, where a list of fourteen fields was 84 structure elements.
    Lines {
        lines: Vec<String>,
    },
    /// A table with header cells; `caption` lines come before it.
    Table {
        caption: Vec<String>,
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// A run of text: plain, strong, emphasised, or a link with its address shown.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Span {
    pub text: String,
    pub strong: bool,
    pub emph: bool,
    pub link: Option<String>,
}

impl Span {
    pub fn plain(text: impl Into<String>) -> Span {
        Span {
            text: text.into(),
            ..Span::default()
        }
    }
}

impl Block {
    pub fn para(text: impl Into<String>) -> Block {
        Block::Para {
            spans: vec![Span::plain(text)],
        }
    }

    pub fn list(items: impl IntoIterator<Item = String>) -> Option<Block> {
        let items: Vec<Vec<Span>> = items
            .into_iter()
            .filter(|i| !i.trim().is_empty())
            .map(|i| vec![Span::plain(i)])
            .collect();
        (!items.is_empty()).then_some(Block::List { items })
    }
}

/// A header line that is the page's own title, which the page drops: every variant of
/// `/^\s*After[- ]Visit Summary\s*$/i` (lines come trimmed).
fn is_title(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    lower == "after visit summary" || lower == "after-visit summary"
}

impl SummaryDocument {
    /// The model of a summary, from its JSON:API body's `data.attributes`.
    pub fn from_attributes(attributes: &Value) -> SummaryDocument {
        let meta = &attributes["meta"];
        let visit = dates::visit_date(attributes);
        let header = meta["pageHeader"]
            .as_str()
            .map(|h| {
                h.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !is_title(l))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let generated = meta["generatedDate"]
            .as_str()
            .and_then(|d| dates::generated(d, meta["timeZone"].as_str()))
            .map(|d| format!("Date and time generated: {d}"));
        let sections = [
            sections::appointment(attributes, visit.as_ref().map(|v| v.long.as_str())),
            sections::treatment_plan(attributes),
            sections::health_information(attributes),
            sections::more_information(attributes),
        ]
        .into_iter()
        .filter(|s| !s.groups.is_empty())
        .collect();
        SummaryDocument {
            title: TITLE.to_owned(),
            visit_date: visit.as_ref().map(|v| v.long.clone()),
            file_date: visit.map(|v| v.iso),
            header,
            generated,
            notice: None,
            sections,
        }
    }

    /// The document's file name, without the sid: `VA-after-visit-summary-<visit date>.<ext>`.
    pub fn file_name(&self, extension: &str) -> String {
        match &self.file_date {
            Some(date) => format!("VA-after-visit-summary-{date}.{extension}"),
            None => format!("VA-after-visit-summary.{extension}"),
        }
    }

    /// The metadata title: "After-visit summary, January 1, 2023".
    pub fn full_title(&self) -> String {
        match &self.visit_date {
            Some(date) => format!("{}, {date}", self.title),
            None => self.title.clone(),
        }
    }
}
