//! The Oracle Health parsing held to oracle-health.md.

use super::*;
use serde_json::json;

#[test]
fn ids_and_dates() {
    assert!(DocId::parse("15249638961").is_some());
    assert!(DocId::parse("a-B-9").is_some());
    for bad in ["", "a/b", "..", "a%2Fb", "é", &"x".repeat(65)] {
        assert!(DocId::parse(bad).is_none(), "{bad}");
    }
    assert!(parse_date("2024-02-29").is_some());
    for bad in [
        "2025-02-29",
        "2025-13-01",
        "2025-1-01",
        "20250101",
        "2025-01-01T00:00:00Z",
        "+025-01-01",
    ] {
        assert!(parse_date(bad).is_none(), "{bad}");
    }
    assert_eq!(
        utc_date("2026-03-01T23:30:00-05:00").map(format_date).as_deref(),
        Some("2026-03-02")
    );
}

fn metadata() -> Value {
    json!({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Encounter", "id": "e1", "period": {"start": "2026-03-02T10:00:00Z"},
            "appointment": [{"reference": "Appointment/A1"}, {"reference": "Appointment/A2"}]}},
        {"resource": {"resourceType": "DocumentReference", "id": "d1", "subject": {"reference": "Patient/p1"},
            "type": {"coding": [{"code": "4189669", "display": "Visit summary"}, {"code": "96345-4"}]},
            "context": {"encounter": [{"reference": "Encounter/e1"}]},
            "content": [{"attachment": {"contentType": "application/xml", "url": "Binary/XML-d1"}},
                        {"attachment": {"contentType": "application/pdf", "url": "Binary/XR-d1"}}]}},
        {"resource": {"resourceType": "DocumentReference", "id": "d2", "date": "2026-01-05",
            "content": [{"attachment": {"contentType": "text/html"}}]}},
        {"resource": {"resourceType": "DocumentReference",
            "content": [{"attachment": {"contentType": "application/pdf"}}], "date": "2026-01-05"}},
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning"}]}}
    ]})
}

#[test]
fn metadata_links_documents_to_every_appointment_and_leaves_out_unusable_ones() {
    let docs = read_metadata(&metadata()).unwrap();
    assert_eq!(docs.len(), 1, "no usable content, or no id: left out");
    let d = &docs[0];
    assert_eq!(
        d.appointments,
        vec![ApptId::parse("A1").unwrap(), ApptId::parse("A2").unwrap()]
    );
    assert_eq!(format_date(d.date), "2026-03-02", "the encounter's start");
    assert_eq!(
        (d.note_type, d.name.as_str()),
        ("ambulatory_patient_summary", "Visit summary")
    );
    assert_eq!(d.kind, DocKind::Pdf);
    let item = serde_json::to_value(d.item(&d.appointments[1])).unwrap();
    assert_eq!(
        item,
        json!({"id": "d1", "apptId": "A2", "name": "Visit summary", "noteType": "ambulatory_patient_summary",
               "loincCodes": ["4189669", "96345-4"], "contentType": "application/pdf", "binary": null})
    );
    let mut failed = metadata();
    failed["entry"][4]["resource"]["issue"][0]["severity"] = json!("fatal");
    assert!(read_metadata(&failed).is_err());
    assert!(read_metadata(&json!({"resourceType": "OperationOutcome"})).is_err());
}

fn bytes_bundle(doc: Value, binaries: Vec<Value>) -> Value {
    let mut entry = vec![json!({"resource": doc})];
    entry.extend(binaries.into_iter().map(|b| json!({"resource": b})));
    json!({"resourceType": "Bundle", "entry": entry})
}

#[test]
fn bytes_come_in_the_spec_order_and_are_checked() {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let id = DocId::parse("d1").unwrap();
    let sibling = bytes_bundle(
        json!({"resourceType": "DocumentReference", "id": "d1", "subject": {"reference": "Patient/p1"},
               "content": [{"attachment": {"contentType": "application/xml", "url": "x/Binary/XML-d1"}},
                           {"attachment": {"contentType": "application/pdf", "url": "x/Binary/XR-d1"}}]}),
        vec![
            json!({"resourceType": "Binary", "id": "XML-d1", "data": b64(b"<xml/>")}),
            json!({"resourceType": "Binary", "id": "XR-d1", "data": b64(b"%PDF-1.4 sibling")}),
        ],
    );
    let got = read_bytes(&sibling, &id, 1000).unwrap();
    assert_eq!(&got.bytes[..], b"%PDF-1.4 sibling");
    assert_eq!(got.subject.as_deref(), Some("Patient/p1"));
    let mut inline = sibling.clone();
    inline["entry"][0]["resource"]["content"][1]["attachment"]["data"] = json!(b64(b"%PDF-1.4 inline"));
    assert_eq!(
        &read_bytes(&inline, &id, 1000).unwrap().bytes[..],
        b"%PDF-1.4 inline"
    );
    let mut contained = inline.clone();
    contained["entry"][0]["resource"]["contained"] =
        json!([{"resourceType": "Binary", "contentType": "text/plain", "data": b64(b"plain")}]);
    let got = read_bytes(&contained, &id, 1000).unwrap();
    assert_eq!((got.kind, &got.bytes[..]), (DocKind::Text, &b"plain"[..]));

    let mut bad_magic = sibling.clone();
    bad_magic["entry"][2]["resource"]["data"] = json!(b64(b"GIF89a"));
    assert!(matches!(
        read_bytes(&bad_magic, &id, 1000),
        Err(BytesAnswer::Unusable(_))
    ));
    let mut bad_b64 = sibling.clone();
    bad_b64["entry"][2]["resource"]["data"] = json!("JVBER i0=");
    assert!(matches!(
        read_bytes(&bad_b64, &id, 1000),
        Err(BytesAnswer::Unusable(_))
    ));
    assert!(matches!(
        read_bytes(&sibling, &id, 10),
        Err(BytesAnswer::Unusable(_))
    ));
    assert_eq!(
        read_bytes(&sibling, &DocId::parse("other").unwrap(), 1000).unwrap_err(),
        BytesAnswer::Absent
    );
}
