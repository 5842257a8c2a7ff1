//! The embedded fixture upstream: the development default's clinical source.
//!
//! It serves the synthetic documents in `fixtures/` over real HTTP on a loopback port, so the
//! service reaches it through exactly the client code it uses for the real upstream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::Value;

/// Synthetic documents only: invented names and ICNs.
const SUMMARIES: [&str; 6] = [
    include_str!("../../fixtures/summaries/full.json"),
    include_str!("../../fixtures/summaries/minimal.json"),
    include_str!("../../fixtures/summaries/icn-short.json"),
    include_str!("../../fixtures/summaries/icn-null.json"),
    include_str!("../../fixtures/summaries/hostile.json"),
    include_str!("../../fixtures/summaries/someone-else.json"),
];
const SEARCH: &str = include_str!("../../fixtures/search.json");

/// The sid of the generated large summary (about 1 MB, the full one with its lab results
/// repeated), for size and speed checks without a megabyte file in the repository.
pub const LARGE_SID: &str = "E1B2C3D4E5F60718293A4B5C6D7E8F90";
const LARGE_TARGET_BYTES: usize = 1024 * 1024;

#[derive(Default)]
pub struct FixtureData {
    /// Keyed by upper-case sid: the upstream treats ids case-insensitively.
    summaries: HashMap<String, Bytes>,
    /// Keyed by `station/ien`.
    searches: HashMap<String, Bytes>,
}

impl FixtureData {
    /// One shipped summary's upstream document, by sid (for the benchmarks and tests).
    pub fn summary(&self, sid: &str) -> Option<&Bytes> {
        self.summaries.get(&sid.to_ascii_uppercase())
    }

    /// The shipped fixtures. They are compiled in, so a parse failure is a build defect.
    pub fn shipped() -> Result<FixtureData, String> {
        let mut data = FixtureData::default();
        for text in SUMMARIES {
            let doc: Value = serde_json::from_str(text).map_err(|e| format!("fixture summary: {e}"))?;
            data.insert_summary(&doc)?;
        }
        data.insert_summary(&large_document(SUMMARIES[0])?)?;
        let searches: HashMap<String, Value> =
            serde_json::from_str(SEARCH).map_err(|e| format!("fixture search: {e}"))?;
        for (key, rows) in searches {
            data.searches.insert(key, Bytes::from(rows.to_string()));
        }
        Ok(data)
    }

    fn insert_summary(&mut self, doc: &Value) -> Result<(), String> {
        let sid = doc["sid"].as_str().ok_or("fixture summary without sid")?;
        self.summaries
            .insert(sid.to_ascii_uppercase(), Bytes::from(doc.to_string()));
        Ok(())
    }
}

fn large_document(full: &str) -> Result<Value, String> {
    let mut doc: Value = serde_json::from_str(full).map_err(|e| e.to_string())?;
    doc["sid"] = Value::String(LARGE_SID.to_owned());
    let labs = doc["data"]["labResults"].as_array().cloned().unwrap_or_default();
    let per_round = serde_json::to_vec(&labs).map_err(|e| e.to_string())?.len().max(1);
    let base = doc.to_string().len();
    let rounds = LARGE_TARGET_BYTES.saturating_sub(base) / per_round + 1;
    let mut repeated = Vec::with_capacity(labs.len() * rounds);
    for _ in 0..rounds {
        repeated.extend(labs.iter().cloned());
    }
    doc["data"]["labResults"] = Value::Array(repeated);
    Ok(doc)
}

pub fn router(data: Arc<FixtureData>) -> Router {
    Router::new()
        .route("/avs/{sid}", get(summary))
        .route("/avs-by-appointment/{station}/{ien}", get(search))
        .with_state(data)
        .merge(oracle::router())
}

/// The Oracle Health half (UHD): the login and the two data calls under `/oh/`, answering for
/// the development patient from `fixtures/oracle/` (synthetic PDFs written by
/// `fixtures/oracle/make.py`, a plain-text note, and a "PDF" that is not one).
mod oracle {
    use axum::Router;
    use axum::extract::{Path, Query};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use base64::Engine;
    use serde_json::{Value, json};

    /// The development token's patient (README), the only one with OH summaries here.
    const DEV_PATIENT: &str = "1012345678V123456";
    const METADATA: &str = include_str!("../../fixtures/oracle/metadata.json");
    /// id → (content type, bytes, inline in the attachment rather than a sibling Binary).
    const DOCUMENTS: [(&str, &str, &[u8], bool); 4] = [
        (
            "15249638961",
            "application/pdf",
            include_bytes!("../../fixtures/oracle/visit-summary.pdf"),
            false,
        ),
        (
            "15249638962",
            "application/pdf",
            include_bytes!("../../fixtures/oracle/long-summary.pdf"),
            false,
        ),
        (
            "15249638963",
            "text/plain",
            include_bytes!("../../fixtures/oracle/discharge-note.txt"),
            true,
        ),
        (
            "15249638964",
            "application/pdf",
            include_bytes!("../../fixtures/oracle/not-a-pdf.bin"),
            false,
        ),
    ];

    pub fn router() -> Router {
        Router::new()
            .route("/oh/login", post(login))
            .route("/oh/avs/oracle-health", get(metadata))
            .route("/oh/document-reference/oracle-health/{id}", get(document))
    }

    async fn login() -> Response {
        (
            [(header::AUTHORIZATION, "Bearer fixture-uhd-token")],
            axum::Json(json!({"status": "ok"})),
        )
            .into_response()
    }

    fn authorized(headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .is_some_and(|v| v == "Bearer fixture-uhd-token")
    }

    async fn metadata(
        headers: HeaderMap,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> Response {
        if !authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        if q.get("patientId").map(String::as_str) == Some(DEV_PATIENT) {
            ([(header::CONTENT_TYPE, "application/json")], METADATA).into_response()
        } else {
            axum::Json(json!({"resourceType": "Bundle", "type": "searchset", "entry": []})).into_response()
        }
    }

    async fn document(headers: HeaderMap, Path(id): Path<String>) -> Response {
        if !authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let Some((_, content_type, bytes, inline)) = DOCUMENTS.iter().find(|d| d.0 == id) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut attachment =
            json!({"contentType": content_type, "url": format!("https://uhd.example/Binary/XR-{id}")});
        let mut entries = Vec::new();
        if *inline {
            attachment["data"] = Value::String(data);
        } else {
            entries.push(
                json!({"resource": {"resourceType": "Binary", "id": format!("XR-{id}"),
                                             "contentType": content_type, "data": data}}),
            );
        }
        let doc = json!({"resourceType": "DocumentReference", "id": id,
            "subject": {"reference": "Patient/dev-oh-1"},
            "content": [{"attachment": {"contentType": "application/xml", "url": format!("https://uhd.example/Binary/XML-{id}")}},
                        {"attachment": attachment}]});
        entries.insert(0, json!({"resource": doc}));
        axum::Json(json!({"resourceType": "Bundle", "type": "collection", "entry": entries})).into_response()
    }
}

async fn summary(State(data): State<Arc<FixtureData>>, Path(sid): Path<String>) -> Response {
    match data.summaries.get(&sid.to_ascii_uppercase()) {
        Some(body) => json(body.clone()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn search(
    State(data): State<Arc<FixtureData>>,
    Path((station, ien)): Path<(String, String)>,
) -> Response {
    let body = data
        .searches
        .get(&format!("{station}/{ien}"))
        .cloned()
        .unwrap_or_else(|| Bytes::from_static(b"[]"));
    json(body)
}

fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Starts the fixture upstream on a loopback port, with `beside` (the Sign-in Service stand-in)
/// on the same server, and returns its address.
pub async fn spawn(beside: Router) -> std::io::Result<SocketAddr> {
    let data = FixtureData::shipped().map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let app = router(Arc::new(data)).merge(beside);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "fixture upstream stopped");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_fixtures_load_and_the_large_one_is_about_a_megabyte() {
        let data = FixtureData::shipped().unwrap();
        assert_eq!(data.summaries.len(), 7);
        let large = data.summaries[LARGE_SID].len();
        assert!((1_000_000..1_300_000).contains(&large), "{large}");
        assert_eq!(&data.searches["500/1000"][..], b"[]");
    }
}
