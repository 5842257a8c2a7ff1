//! A document as served: its kind, its bytes, and a strong validator of them. Oracle Health's
//! documents and the VistA summary's PDF and text are all this.

use bytes::Bytes;

/// What a document holds; nothing else is ever served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    Pdf,
    Text,
}

impl DocKind {
    pub(crate) fn of(content_type: &str) -> Option<DocKind> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/pdf" => Some(DocKind::Pdf),
            "text/plain" => Some(DocKind::Text),
            _ => None,
        }
    }

    /// The type VA.gov's item names.
    pub fn content_type(self) -> &'static str {
        match self {
            DocKind::Pdf => "application/pdf",
            DocKind::Text => "text/plain",
        }
    }

    /// The `Content-Type` the document is served with.
    pub fn header(self) -> &'static str {
        match self {
            DocKind::Pdf => "application/pdf",
            DocKind::Text => "text/plain; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            DocKind::Pdf => "pdf",
            DocKind::Text => "txt",
        }
    }
}

/// A document ready to serve; it never changes once made.
#[derive(Debug)]
pub struct Document {
    pub kind: DocKind,
    pub bytes: Bytes,
    /// A strong validator of the bytes.
    pub etag: String,
    /// The bytes in standard base64, for VA.gov's `avs_binaries` answer: encoded once with the
    /// document, not on every request (it was 9x the raw route's CPU per request, #28); then
    /// [`BINARIES_CLOSING`], so an answer whose last item this is ends in the same sealed file
    /// (see [`Document::base64`]).
    base64_closed: Bytes,
}

/// The JSON that closes an `avs_binaries` answer after its last item's base64 text (the string,
/// the attributes, the item, the list, the answer). Kept after each document's base64 form: an
/// answer then ends with the document's own slice, not a separate write of five bytes, which
/// went out as a segment of its own (the socket has `TCP_NODELAY`).
pub const BINARIES_CLOSING: &[u8] = b"\"}}]}";

impl Document {
    /// The document of `bytes`, its bytes and base64 form stored by `keep` (the caches pass
    /// the `sealed` module's `keep`, which puts large ones where the kernel sends them without a copy).
    pub fn new(kind: DocKind, bytes: &[u8], keep: impl Fn(&[u8]) -> Bytes) -> Document {
        use base64::Engine;
        let mut base64 = base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes();
        base64.extend_from_slice(BINARIES_CLOSING);
        Document {
            kind,
            etag: etag(bytes),
            bytes: keep(bytes),
            base64_closed: keep(&base64),
        }
    }

    /// The bytes in standard base64.
    pub fn base64(&self) -> Bytes {
        self.base64_closed
            .slice(..self.base64_closed.len() - BINARIES_CLOSING.len())
    }

    /// [`Document::base64`] followed by [`BINARIES_CLOSING`].
    pub fn base64_closed(&self) -> &Bytes {
        &self.base64_closed
    }

    /// What the document holds in memory, for a cache's byte budget.
    pub fn weight(&self) -> usize {
        self.bytes.len() + self.base64_closed.len() + self.etag.len() + std::mem::size_of::<Document>()
    }
}

/// A strong ETag: a 128-bit keyed-free hash of the bytes (two fixed-seed foldhash passes).
fn etag(bytes: &[u8]) -> String {
    use std::hash::BuildHasher;
    let a = foldhash::quality::FixedState::with_seed(0x0a75_0d0c).hash_one(bytes);
    let b = foldhash::quality::FixedState::with_seed(0x5eed_f00d).hash_one(bytes);
    format!("\"{a:016x}{b:016x}-{}\"", bytes.len())
}
