//! Serving a document (an Oracle Health PDF or text, and the VistA summary's documents): the
//! headers, the validator, ranges, and the body.

use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RANGE, REFERRER_POLICY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::error::ApiError;
use crate::domain::{DocKind, Document};

/// Decoded bytes in one `avs_binaries` answer; items past it get the retrieval error.
const BINARIES_MAX_BYTES: usize = 20 * 1024 * 1024;
const EMPTY: &str = "Retrieved empty AVS binary";
const FAILED: &str = "Error retrieving AVS binary";

/// One item of VA.gov's `avs_binaries` answer, as found.
pub(super) enum Binary<'a> {
    /// The document, whose base64 form was made with it.
    Found(&'a Document),
    /// Absent, not the caller's, or without content: the apps show "no summary".
    Empty,
    /// The retrieval failed: the apps show an error.
    Failed,
}

/// VA.gov's `avs_binaries` answer: one item per id, in request order, each its base64 bytes
/// or one of the two strings the apps tell apart; always 200. Each document's base64 form was
/// made with it (and sealed, when large: `crate::sealed`), so the answer is the small JSON
/// between the items plus those forms as they are: nothing encoded, escaped or copied per
/// request (the base64 text needs no JSON escaping).
pub(super) fn binaries(items: Vec<(&str, Binary<'_>)>) -> Response {
    let mut total = 0usize;
    let mut parts = Parts::default();
    let mut text = String::from("{\"data\":[");
    let last = items.len().saturating_sub(1);
    for (n, (id, found)) in items.into_iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        // Ids are validated (hex digits, or letters, digits and hyphens); written as JSON anyway.
        let id = serde_json::Value::from(id).to_string();
        text.push_str(&format!(
            "{{\"id\":{id},\"type\":\"avs_binary\",\"attributes\":{{\"docId\":{id},"
        ));
        match found {
            Binary::Found(doc) if total + doc.bytes.len() <= BINARIES_MAX_BYTES => {
                total += doc.bytes.len();
                text.push_str("\"binary\":\"");
                parts.push(Bytes::from(std::mem::take(&mut text)));
                if n == last {
                    // The answer ends with the document's own slice (`BINARIES_CLOSING`).
                    parts.push(doc.base64_closed().clone());
                    return binaries_answer(parts);
                }
                parts.push(doc.base64());
                text.push_str("\"}}");
            }
            Binary::Empty => text.push_str(&format!("\"error\":\"{EMPTY}\"}}}}")),
            Binary::Found(_) | Binary::Failed => text.push_str(&format!("\"error\":\"{FAILED}\"}}}}")),
        }
    }
    text.push_str("]}");
    parts.push(Bytes::from(text));
    binaries_answer(parts)
}

fn binaries_answer(parts: Parts) -> Response {
    ([(CONTENT_TYPE, "application/json")], Body::new(parts)).into_response()
}

/// A body of several buffers sent as they are, with its length known up front (hyper writes
/// `Content-Length` and hands each buffer to the socket in one vectored write).
#[derive(Default)]
struct Parts {
    buffers: VecDeque<Bytes>,
    len: u64,
}

impl Parts {
    fn push(&mut self, buffer: Bytes) {
        self.len += buffer.len() as u64;
        self.buffers.push_back(buffer);
    }
}

impl http_body::Body for Parts {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.buffers.pop_front();
        if let Some(buffer) = &next {
            self.len -= buffer.len() as u64;
        }
        Poll::Ready(next.map(|buffer| Ok(Frame::data(buffer))))
    }

    fn is_end_stream(&self) -> bool {
        self.buffers.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// A document's answer: whole, one range of it (206/416), or 304 for a matching validator;
/// inline, or an attachment named `file_name`; never cached by anyone, never sniffed.
pub(super) fn serve(doc: &Document, file_name: &str, download: bool, request: &HeaderMap) -> Response {
    let len = doc.bytes.len();
    let mut headers = HeaderMap::new();
    let disposition = if download { "attachment" } else { "inline" };
    let filename = format!("{disposition}; filename=\"{file_name}\"");
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(doc.kind.header()));
    if let Ok(v) = HeaderValue::try_from(filename) {
        headers.insert(CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::try_from(doc.etag.as_str()) {
        headers.insert(ETAG, v);
    }
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-site"),
    );
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if doc.kind == DocKind::Text {
        // Not on a PDF: browsers' PDF viewers refuse to run in a sandboxed document; the checked
        // `%PDF-` magic and nosniff keep a PDF from being read as anything else.
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'"),
        );
    }
    let matches = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim() == "*"
                || v.split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == doc.etag)
        });
    if matches {
        // No body, so nothing to type or name: the validators and caching rules only.
        headers.remove(CONTENT_TYPE);
        headers.remove(CONTENT_DISPOSITION);
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    match request
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| byte_range(r, len))
    {
        Some(Some(Ok((first, last)))) => {
            if let Ok(v) = HeaderValue::try_from(format!("bytes {first}-{last}/{len}")) {
                headers.insert(CONTENT_RANGE, v);
            }
            headers.insert(CONTENT_LENGTH, HeaderValue::from(last - first + 1));
            (
                StatusCode::PARTIAL_CONTENT,
                headers,
                doc.bytes.slice(first..=last),
            )
                .into_response()
        }
        Some(Some(Err(()))) => ApiError::RangeNotSatisfiable(len).into_response(),
        // No Range, or one this service does not honour (several ranges, another unit): the
        // whole document, as RFC 9110 allows.
        _ => {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
            (StatusCode::OK, headers, doc.bytes.clone()).into_response()
        }
    }
}

/// A single `bytes=` range over `len` bytes: `None` when not one this service serves (ignored),
/// `Err` when unsatisfiable (416).
fn byte_range(header: &str, len: usize) -> Option<Result<(usize, usize), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| -> Option<usize> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some(match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix)? {
            0 => Err(()),
            _ if len == 0 => Err(()),
            n => Ok((len.saturating_sub(n), len - 1)),
        },
        (first, "") => match number(first)? {
            f if f < len => Ok((f, len - 1)),
            _ => Err(()),
        },
        (first, last) => {
            let (f, l) = (number(first)?, number(last)?);
            if f > l {
                return None;
            }
            if f >= len {
                Err(())
            } else {
                Ok((f, l.min(len - 1)))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{Binary, binaries, byte_range};
    use crate::domain::{DocKind, Document};

    /// The answer is valid JSON whether a found item is last (its slice closes the answer) or not.
    #[tokio::test]
    async fn a_binaries_answer_closes_after_its_last_item_found_or_not() {
        let doc = Document::new(DocKind::Text, b"hello", bytes::Bytes::copy_from_slice);
        let item = |id: &str, binary: &str| serde_json::json!({"id": id, "type": "avs_binary", "attributes": {"docId": id, "binary": binary}});
        let empty = serde_json::json!({"id": "b", "type": "avs_binary",
            "attributes": {"docId": "b", "error": "Retrieved empty AVS binary"}});
        for (items, expected) in [
            (vec![("a", Binary::Found(&doc))], vec![item("a", "aGVsbG8=")]),
            (
                vec![("a", Binary::Found(&doc)), ("b", Binary::Empty)],
                vec![item("a", "aGVsbG8="), empty.clone()],
            ),
            (
                vec![("b", Binary::Empty), ("a", Binary::Found(&doc))],
                vec![empty.clone(), item("a", "aGVsbG8=")],
            ),
        ] {
            let answer = binaries(items);
            let body = axum::body::to_bytes(answer.into_body(), usize::MAX)
                .await
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(json, serde_json::json!({ "data": expected }));
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(byte_range("bytes=90-200", 100), Some(Ok((90, 99))));
        assert_eq!(byte_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(byte_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(byte_range("bytes=-200", 100), Some(Ok((0, 99))));
        assert_eq!(byte_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(byte_range("bytes=-0", 100), Some(Err(())));
        assert_eq!(byte_range("bytes=0-1,5-6", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
        assert_eq!(byte_range("bytes=5-1", 100), None);
    }
}
