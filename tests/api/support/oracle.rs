//! The Oracle Health harness: UHD's shapes (`docs/spec/oracle-health.md`) as the fake upstream
//! serves them under `/oh/`, beside the VistA helpers of `upstream.rs`. A test scripts a login,
//! a patient's metadata Bundle and each document's bytes Bundle, then asks the API.

use base64::Engine;
use serde_json::{Value, json};

use super::upstream::{FakeUpstream, Scripted};

pub const OH_ON: &str = "[features.va_online_scheduling_add_OH_avs]\nboolean = true\n";
pub const SUBJECT: &str = "Patient/oh-owner";
pub const METADATA: &str = "/oh/avs/oracle-health";
pub const LOGIN: &str = "/oh/login";

pub fn doc_path(id: &str) -> String {
    format!("/oh/document-reference/oracle-health/{id}")
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A small real-looking PDF of `n` bytes.
pub fn pdf(n: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.resize(n.max(10), b'x');
    bytes
}

/// A document of the metadata Bundle: id, its appointment, date, content type, LOINC codes.
pub struct Doc<'a>(
    pub &'a str,
    pub &'a str,
    pub &'a str,
    pub &'a str,
    pub &'a [&'a str],
);

pub fn metadata(docs: &[Doc<'_>], subject: &str) -> Value {
    let mut entry = Vec::new();
    for Doc(id, appt, date, content_type, codes) in docs {
        entry.push(
            json!({"resource": {"resourceType": "Encounter", "id": format!("enc-{id}"),
            "appointment": [{"reference": format!("Appointment/{appt}")}]}}),
        );
        entry.push(json!({"resource": {"resourceType": "DocumentReference", "id": id,
            "subject": {"reference": subject}, "date": date,
            "type": {"coding": codes.iter().map(|c| json!({"code": c})).collect::<Vec<_>>()},
            "context": {"encounter": [{"reference": format!("Encounter/enc-{id}")}]},
            "content": [{"attachment": {"contentType": "application/xml", "url": format!("x/Binary/XML-{id}")}},
                        {"attachment": {"contentType": content_type, "url": format!("x/Binary/XR-{id}")}}]}}));
    }
    json!({"resourceType": "Bundle", "entry": entry})
}

pub fn bytes_bundle(id: &str, content_type: &str, bytes: &[u8], subject: &str) -> Value {
    json!({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "DocumentReference", "id": id, "subject": {"reference": subject},
            "content": [{"attachment": {"contentType": "application/xml", "url": format!("x/Binary/XML-{id}")}},
                        {"attachment": {"contentType": content_type, "url": format!("x/Binary/XR-{id}")}}]}},
        {"resource": {"resourceType": "Binary", "id": format!("XML-{id}"), "contentType": "application/xml", "data": b64(b"<x/>")}},
        {"resource": {"resourceType": "Binary", "id": format!("XR-{id}"), "contentType": content_type, "data": b64(bytes)}}
    ]})
}

/// Today's date as `YYYY-MM-DD` (UTC), moved by `days`.
pub fn day(days: i64) -> String {
    let d = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

impl FakeUpstream {
    /// UHD's login answers with this token.
    pub fn uhd_login(&self, token: &str) -> &FakeUpstream {
        self.script(
            LOGIN,
            Scripted::json(&json!({})).header("authorization", &format!("Bearer {token}")),
        )
    }

    /// The metadata call for the patient with `icn` answers `bundle`.
    pub fn uhd_metadata(&self, icn: &str, bundle: &Value) -> &FakeUpstream {
        self.script(&format!("{METADATA}#patientId={icn}"), Scripted::json(bundle))
    }
}
