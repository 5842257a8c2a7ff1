#![no_main]
//! Oracle Health: any JSON from UHD gives documents with valid ids, bytes within the limit (a
//! PDF with its magic), or a refusal; never a panic.
use libfuzzer_sys::fuzz_target;

use avs_api::domain::oracle::{DocId, DocKind, read_bytes, read_metadata};

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(docs) = read_metadata(&bundle) {
        for doc in docs {
            assert!(DocId::parse(doc.id.as_str()).is_some());
        }
    }
    let id = DocId::parse("d-1").unwrap();
    if let Ok(doc) = read_bytes(&bundle, &id, 1 << 16) {
        assert!(doc.bytes.len() <= 1 << 16);
        if doc.kind == DocKind::Pdf {
            assert!(doc.bytes.starts_with(b"%PDF-"));
        }
    }
});
