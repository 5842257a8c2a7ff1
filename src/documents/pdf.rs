//! The summary as a tagged PDF/UA-1, typeset by Typst.
//!
//! The model goes to Typst as JSON (a virtual `data.json` the one template reads), never
//! spliced into markup. The exporter holds the document to PDF/UA-1 (`PdfStandard::Ua_1`): a
//! document that breaks it (no title, say) is refused at render time, not shipped. The font is
//! Lato with fallbacks (`glyphs.rs`, `assets/fonts/`), embedded and subset; a character none of
//! them draws is shown by a substitute. Rendering is CPU work: callers run it on a
//! blocking thread, bounded (`clinical::vista::documents`).

use std::sync::LazyLock;

use serde::Serialize;
use typst::diag::{FileError, FileResult, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Smart};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_layout::PagedDocument;
use typst_pdf::{PdfOptions, PdfStandard, PdfStandards};

use super::SummaryDocument;
use super::glyphs::{FONTS, drawable};

const TEMPLATE: &str = include_str!("template.typ");

/// Why a PDF was not made: the stage that failed and how many diagnostics it gave, which is
/// all that is ever shown or logged. Typst's own messages can quote the summary (a glyph, a
/// word), so they stay inside, for tests (#36).
#[derive(Debug, Clone, thiserror::Error)]
#[error("typesetting failed at {stage} ({diagnostics} diagnostic(s))")]
pub struct PdfError {
    stage: &'static str,
    diagnostics: usize,
    messages: String,
}

impl PdfError {
    fn at(stage: &'static str, diagnostics: &[SourceDiagnostic]) -> PdfError {
        PdfError {
            stage,
            diagnostics: diagnostics.len(),
            messages: messages(diagnostics),
        }
    }

    /// Typst's messages, which may quote the summary: never to be logged.
    pub fn messages(&self) -> &str {
        &self.messages
    }
}

/// What never changes between renders: the standard library, the fonts, the file ids.
struct Shared {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
    main: FileId,
    data: FileId,
}

static SHARED: LazyLock<Shared> = LazyLock::new(|| {
    let fonts: Vec<Font> = FONTS
        .iter()
        .flat_map(|bytes| Font::iter(Bytes::new(*bytes)))
        .collect();
    let file = |name: &str| {
        let path = VirtualPath::new(name).unwrap_or_else(|_| unreachable!("a fixed file name"));
        RootedPath::new(VirtualRoot::Project, path).intern()
    };
    Shared {
        library: LazyHash::new(Library::builder().build()),
        book: LazyHash::new(FontBook::from_fonts(&fonts)),
        fonts,
        main: file("main.typ"),
        data: file("data.json"),
    }
});

/// One render: the template and this summary's data.
struct SummaryWorld {
    main: Source,
    data: Bytes,
}

impl World for SummaryWorld {
    fn library(&self) -> &LazyHash<Library> {
        &SHARED.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &SHARED.book
    }

    fn main(&self) -> FileId {
        SHARED.main
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        match id == SHARED.main {
            true => Ok(self.main.clone()),
            false => Err(FileError::AccessDenied),
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        match id == SHARED.data {
            true => Ok(self.data.clone()),
            false => Err(FileError::AccessDenied),
        }
    }

    fn font(&self, index: usize) -> Option<Font> {
        SHARED.fonts.get(index).cloned()
    }

    /// No date from the clock: the same summary always makes the same document.
    fn today(&self, _: Option<typst::foundations::Duration>) -> Option<Datetime> {
        None
    }
}

#[derive(Serialize)]
struct Data<'a> {
    full_title: String,
    doc: &'a SummaryDocument,
}

/// The tagged PDF/UA-1 of the summary.
pub fn render_pdf(doc: &SummaryDocument) -> Result<Vec<u8>, PdfError> {
    render_with(TEMPLATE, doc)
}

fn messages(diagnostics: &[SourceDiagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A run of this many characters with no break opportunity gets one every [`BREAK_EVERY`].
const LONGEST_RUN: usize = 24;
const BREAK_EVERY: usize = 16;

/// Whether one of the embedded fonts draws `c`.
fn drawn(c: char) -> bool {
    SHARED.fonts.iter().any(|f| f.info().coverage.contains(c as u32))
}

/// Every string of the data made typesettable: a substitute for each character no font draws
/// (`glyphs.rs`), and a zero-width space inside each long run of characters that offers no line
/// break (an id, a long number, a word pasted without spaces): Typst breaks lines only where
/// Unicode allows, and such a run ran off the page or over the next table cell (#36). Links'
/// addresses get no breaks: they are where a link goes.
fn typesettable(value: &mut serde_json::Value, breaks: bool) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(drawable) = drawable(s, drawn) {
                *s = drawable;
            }
            if breaks && s.chars().count() > LONGEST_RUN {
                *s = with_breaks(s);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| typesettable(v, breaks)),
        Value::Object(fields) => fields
            .iter_mut()
            .for_each(|(key, v)| typesettable(v, breaks && key.as_str() != "link")),
        _ => {}
    }
}

fn with_breaks(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut run = 0;
    for c in text.chars() {
        // White space and hyphens are break opportunities already.
        if c.is_whitespace() || c == '-' || c == '\u{200B}' {
            run = 0;
        } else {
            run += 1;
            if run > BREAK_EVERY {
                out.push('\u{200B}');
                run = 1;
            }
        }
        out.push(c);
    }
    out
}

fn render_with(template: &str, doc: &SummaryDocument) -> Result<Vec<u8>, PdfError> {
    let mut data = serde_json::to_value(Data {
        full_title: doc.full_title(),
        doc,
    })
    .map_err(|_| PdfError::at("data", &[]))?;
    typesettable(&mut data, true);
    let data = serde_json::to_vec(&data).map_err(|_| PdfError::at("data", &[]))?;
    let world = SummaryWorld {
        main: Source::new(SHARED.main, template.to_owned()),
        data: Bytes::new(data),
    };
    let compiled = typst::compile::<PagedDocument>(&world).output;
    let result = compiled
        .map_err(|d| PdfError::at("layout", &d))
        .and_then(|paged| {
            let standards =
                PdfStandards::new(&[PdfStandard::Ua_1]).map_err(|_| PdfError::at("standards", &[]))?;
            let options = PdfOptions {
                ident: Smart::Auto,
                standards,
                tagged: true,
                ..PdfOptions::default()
            };
            typst_pdf::pdf(&paged, &options).map_err(|d| PdfError::at("export", &d))
        });
    // Typst memoizes every layout it has done, globally: kept, the last renders' memory stayed
    // with the process (4 GB for 90 s after a large summary with `evict(4)`, #36), so nothing is
    // kept past a render.
    typst::comemo::evict(0);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{Block, Group, Section};

    fn small() -> SummaryDocument {
        SummaryDocument {
            title: crate::documents::TITLE.to_owned(),
            visit_date: Some("January 1, 2023".to_owned()),
            header: vec!["Ward #1 [east] *wing* & clinic".to_owned()],
            sections: vec![Section {
                heading: "Your appointment on January 1, 2023".to_owned(),
                groups: vec![Group {
                    heading: Some("Providers".to_owned()),
                    blocks: vec![Block::list(["DOCTOR,GREAT B".to_owned()]).unwrap()],
                }],
            }],
            ..SummaryDocument::default()
        }
    }

    /// (That markup in its strings is shown as text is read back from the PDF by poppler in
    /// `tests/api/documents.rs`.)
    #[test]
    fn long_runs_get_break_opportunities_and_links_keep_their_address() {
        assert_eq!(with_breaks("short words stay"), "short words stay");
        let long = "A".repeat(40);
        let broken = with_breaks(&long);
        assert_eq!(broken.replace('\u{200B}', ""), long);
        assert!(
            broken
                .split('\u{200B}')
                .all(|part| part.chars().count() <= BREAK_EVERY)
        );
        let mut data =
            serde_json::json!({"text": long, "link": long, "spans": [{"text": long, "link": long}]});
        typesettable(&mut data, true);
        assert_eq!(data["link"], long.as_str());
        assert_eq!(data["spans"][0]["link"], long.as_str());
        assert_ne!(data["spans"][0]["text"], long.as_str());
    }

    /// Every script and symbol VA data holds gets a PDF (the blocks, read back by poppler and
    /// checked for PDF/UA, are in `tests/api/documents.rs`).
    #[test]
    fn no_character_costs_a_summary_its_pdf() {
        let mut doc = small();
        doc.header = vec![
            "Ελληνικά Кириллица עברית العربية 中文 日本語 한국어".to_owned(),
            "\u{1F600} \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} \u{2764}\u{FE0F} \u{1FAE0} ☐ ☑ ✔ ➢ ℞ \u{F0B7}".to_owned(),
            "\u{0}\u{1}\u{1B}\r\u{7F}\u{85}\u{FFFE}\u{FFFF}\u{FDD0}\u{AD}\u{200E}\u{FEFF}\u{E0041}".to_owned(),
        ];
        let pdf = render_pdf(&doc).unwrap_or_else(|e| panic!("{e}: {}", e.messages()));
        assert!(pdf.starts_with(b"%PDF-"));
        if let Ok(dir) = std::env::var("AVS_KEEP_PDF") {
            std::fs::write(format!("{dir}/scripts.pdf"), &pdf).unwrap();
        }
    }

    #[test]
    fn a_summary_is_a_pdf() {
        let pdf = render_pdf(&small()).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pdf.len() < 150_000, "{}", pdf.len());
    }

    /// PDF/UA-1 is really checked: the same document without its title is refused.
    #[test]
    fn pdf_ua_refuses_a_document_without_a_title() {
        let untitled = TEMPLATE.replace("#set document(title: data.full_title, ", "#set document(");
        assert_ne!(untitled, TEMPLATE, "the template sets the title");
        let refused = render_with(&untitled, &small()).unwrap_err();
        assert!(refused.messages().to_lowercase().contains("title"), "{refused}");
        // What is shown or logged names the stage, never a message that could quote data.
        assert_eq!(
            refused.to_string(),
            "typesetting failed at export (1 diagnostic(s))"
        );
    }
}
