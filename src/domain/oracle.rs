//! Oracle Health summaries, pure: ids, dates, the metadata Bundle read into documents with their
//! appointments and VA.gov's `avsPdf` item, and a document's bytes taken out of the bytes Bundle
//! in the spec's order and checked. No I/O here (oracle-health.md is the contract).

use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use time::Date;

/// A document (DocumentReference) id: `^[0-9A-Za-z-]{1,64}$`, so it needs no escaping anywhere.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(String);

/// An OH appointment id, same alphabet.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApptId(String);

fn valid_id(raw: &str) -> bool {
    (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl DocId {
    pub fn parse(raw: &str) -> Option<DocId> {
        valid_id(raw).then(|| DocId(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ApptId {
    pub fn parse(raw: &str) -> Option<ApptId> {
        valid_id(raw).then(|| ApptId(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A real calendar date written `YYYY-MM-DD` (no other spelling).
pub fn parse_date(raw: &str) -> Option<Date> {
    let b = raw.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        raw.get(r)
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
    };
    let month = time::Month::try_from(digits(5..7)? as u8).ok()?;
    Date::from_calendar_date(digits(0..4)? as i32, month, digits(8..10)? as u8).ok()
}

/// `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// A FHIR `date` or `dateTime` as its UTC calendar date.
fn utc_date(raw: &str) -> Option<Date> {
    if raw.len() == 10 {
        return parse_date(raw);
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC).date())
}

pub use super::document::DocKind;

/// One item of VA.gov's `avsPdf` array: exactly the Ruby API's keys, so the appointments
/// service copies it unchanged.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AvsPdfItem {
    pub id: String,
    pub appt_id: String,
    pub name: String,
    pub note_type: &'static str,
    pub loinc_codes: Vec<String>,
    pub content_type: &'static str,
    /// Always null here: the bytes are at `/avs/v0/oh/documents/{id}`.
    pub binary: Option<String>,
}

/// A document as the metadata call describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedDoc {
    pub id: DocId,
    pub appointments: Vec<ApptId>,
    /// `subject.reference`, which the bytes call must repeat.
    pub subject: Option<String>,
    pub date: Date,
    pub kind: DocKind,
    pub name: String,
    pub note_type: &'static str,
    pub loinc_codes: Vec<String>,
}

impl IndexedDoc {
    /// Its item under one of its appointments.
    pub fn item(&self, appt: &ApptId) -> AvsPdfItem {
        AvsPdfItem {
            id: self.id.0.clone(),
            appt_id: appt.0.clone(),
            name: self.name.clone(),
            note_type: self.note_type,
            loinc_codes: self.loinc_codes.clone(),
            content_type: self.kind.content_type(),
            binary: None,
        }
    }
}

/// Why an upstream answer can't be used (502); the reason is for the log, and holds no PHI.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Unusable(pub &'static str);

/// The note type VA.gov names for the first LOINC code it knows.
fn note_type(codes: &[String]) -> &'static str {
    codes
        .iter()
        .find_map(|code| match code.as_str() {
            "96345-4" => Some("ambulatory_patient_summary"),
            "68834-1" => Some("primary_care_note"),
            "18842-5" => Some("discharge_summary"),
            "96339-7" => Some("inpatient_patient_summary"),
            "78583-2" => Some("pharmacology_discharge_instructions"),
            _ => None,
        })
        .unwrap_or("other")
}

fn resources<'a>(bundle: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .filter(move |r| r["resourceType"] == kind)
}

/// A Bundle, and no error in it: an `OperationOutcome` with severity `error` or `fatal` is an
/// upstream failure; `information` and `warning` are not.
fn check_bundle(bundle: &Value) -> Result<(), Unusable> {
    if bundle["resourceType"] != "Bundle" {
        return Err(Unusable("not a FHIR Bundle"));
    }
    let failed = resources(bundle, "OperationOutcome")
        .flat_map(|o| o["issue"].as_array().into_iter().flatten())
        .any(|issue| matches!(issue["severity"].as_str(), Some("error" | "fatal")));
    if failed {
        return Err(Unusable("OperationOutcome with an error"));
    }
    Ok(())
}

/// The id after `prefix/` in a FHIR reference, if it is one.
fn referenced<'a>(reference: &'a Value, prefix: &str) -> Option<&'a str> {
    reference["reference"]
        .as_str()?
        .strip_prefix(prefix)?
        .strip_prefix('/')
}

/// The metadata Bundle read into documents: each usable DocumentReference (with an id and PDF
/// or plain-text content) with every appointment its encounters link to (many-to-many).
pub fn read_metadata(bundle: &Value) -> Result<Vec<IndexedDoc>, Unusable> {
    check_bundle(bundle)?;
    // Encounter id → (appointments, period start).
    let encounters: HashMap<&str, (Vec<ApptId>, Option<&str>)> = resources(bundle, "Encounter")
        .filter_map(|e| {
            let id = e["id"].as_str()?;
            let appointments = e["appointment"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| referenced(a, "Appointment").and_then(ApptId::parse))
                .collect();
            Some((id, (appointments, e["period"]["start"].as_str())))
        })
        .collect();
    let docs = resources(bundle, "DocumentReference")
        .filter_map(|d| {
            let id = d["id"].as_str().and_then(DocId::parse)?;
            let kind = d["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["attachment"]["contentType"].as_str().and_then(DocKind::of))
                .min_by_key(|k| *k != DocKind::Pdf)?;
            let linked: Vec<&(Vec<ApptId>, Option<&str>)> = d["context"]["encounter"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| referenced(r, "Encounter"))
                .filter_map(|id| encounters.get(id))
                .collect();
            let mut appointments: Vec<ApptId> = Vec::new();
            for (appts, _) in &linked {
                for a in appts {
                    if !appointments.contains(a) {
                        appointments.push(a.clone());
                    }
                }
            }
            let date = d["context"]["period"]["start"]
                .as_str()
                .and_then(utc_date)
                .or_else(|| linked.iter().find_map(|(_, start)| start.and_then(utc_date)))
                .or_else(|| d["date"].as_str().and_then(utc_date))?;
            let codings = d["type"]["coding"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let loinc_codes: Vec<String> = codings
                .iter()
                .filter_map(|c| c["code"].as_str().map(str::to_owned))
                .collect();
            let name = d["type"]["text"]
                .as_str()
                .or_else(|| codings.first().and_then(|c| c["display"].as_str()))
                .unwrap_or("After Visit Summary")
                .to_owned();
            Some(IndexedDoc {
                id,
                appointments,
                subject: d["subject"]["reference"].as_str().map(str::to_owned),
                date,
                kind,
                name,
                note_type: note_type(&loinc_codes),
                loinc_codes,
            })
        })
        .collect();
    Ok(docs)
}

/// A document's bytes, decoded and checked.
#[derive(Clone, Debug)]
pub struct DocumentBytes {
    pub kind: DocKind,
    pub bytes: Bytes,
    /// The bytes call's `subject.reference`.
    pub subject: Option<String>,
}

/// What the bytes call answered about `id`.
#[derive(Debug, PartialEq, Eq)]
pub enum BytesAnswer {
    /// No such document in the Bundle.
    Absent,
    /// The document has no PDF or plain-text content (only XML or HTML renditions, say).
    NoUsableContent,
    Unusable(Unusable),
}

/// Takes the document's bytes out of the bytes Bundle, in the spec's order: a `contained`
/// Binary of an allowed type; else `content[].attachment.data`; else the sibling Binary that a
/// PDF or plain-text attachment's `url` names by its last segment. Then checks them: strict
/// base64, at most `max_bytes` decoded, a PDF starting with `%PDF-`.
pub fn read_bytes(bundle: &Value, id: &DocId, max_bytes: usize) -> Result<DocumentBytes, BytesAnswer> {
    check_bundle(bundle).map_err(BytesAnswer::Unusable)?;
    let doc = resources(bundle, "DocumentReference")
        .find(|d| d["id"].as_str() == Some(id.as_str()))
        .ok_or(BytesAnswer::Absent)?;
    let typed = |v: &Value, field: &str| v[field].as_str().and_then(DocKind::of);
    let attachments: Vec<&Value> = doc["content"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["attachment"])
        .collect();
    let contained = doc["contained"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["resourceType"] == "Binary")
        .find_map(|b| Some((typed(b, "contentType")?, b["data"].as_str()?)));
    let inline = || {
        attachments
            .iter()
            .find_map(|a| Some((typed(a, "contentType")?, a["data"].as_str()?)))
    };
    let sibling = || {
        attachments.iter().find_map(|a| {
            let kind = typed(a, "contentType")?;
            let binary_id = a["url"].as_str()?.rsplit('/').next()?;
            let binary = resources(bundle, "Binary").find(|b| b["id"].as_str() == Some(binary_id))?;
            Some((kind, binary["data"].as_str()?))
        })
    };
    let (kind, data) = contained
        .or_else(inline)
        .or_else(sibling)
        .ok_or(BytesAnswer::NoUsableContent)?;
    // Checked before decoding, so an oversized document is never held decoded.
    if data.len() / 4 * 3 > max_bytes + 2 {
        return Err(BytesAnswer::Unusable(Unusable("document over the size limit")));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| BytesAnswer::Unusable(Unusable("content is not valid base64")))?;
    if bytes.len() > max_bytes {
        return Err(BytesAnswer::Unusable(Unusable("document over the size limit")));
    }
    if bytes.is_empty() {
        return Err(BytesAnswer::NoUsableContent);
    }
    if kind == DocKind::Pdf && !bytes.starts_with(b"%PDF-") {
        return Err(BytesAnswer::Unusable(Unusable(
            "a PDF that does not start with %PDF-",
        )));
    }
    Ok(DocumentBytes {
        kind,
        bytes: Bytes::from(bytes),
        subject: doc["subject"]["reference"].as_str().map(str::to_owned),
    })
}

#[cfg(test)]
#[path = "oracle_tests.rs"]
mod tests;
