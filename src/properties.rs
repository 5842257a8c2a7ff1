//! Property tests of every parser of untrusted input: whatever arrives, each answers with a
//! value or a refusal (rendered in the one error shape where a client sees it), never a panic.
//! Case counts are bounded so `cargo test` stays fast; `fuzz/` runs the same parsers unbounded.

use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::domain::oracle::{ApptId, DocId, DocKind, parse_date, read_bytes, read_metadata};
use crate::domain::{Sid, render};
use crate::http::vista::{link_items, search_params};
use crate::identity::{ClaimsVerifier, KeySet, KeySource};
use crate::toggles::parse_toml;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// Any JSON value, a few levels deep, with the summary's own keys likely.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("sid".to_owned()),
        Just("data".to_owned()),
        Just("header".to_owned()),
        Just("patientInfo".to_owned()),
        Just("icn".to_owned()),
        Just("pageHeader".to_owned()),
        Just("patient_instructions".to_owned()),
        Just("_t".to_owned()),
        Just("vitals".to_owned()),
        "[a-zA-Z_]{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        "<[a-z]{1,6}( on[a-z]+=\"[^\"]{0,10}\")?>[^<]{0,20}</[a-z]{1,6}>".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Any JSON value shaped like a FHIR Bundle: Oracle Health's keys and resource types likely,
/// and base64 of a PDF, of text and of nothing in the leaves.
fn fhir_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("resourceType".to_owned()),
        Just("entry".to_owned()),
        Just("resource".to_owned()),
        Just("id".to_owned()),
        Just("content".to_owned()),
        Just("attachment".to_owned()),
        Just("contentType".to_owned()),
        Just("data".to_owned()),
        Just("contained".to_owned()),
        Just("context".to_owned()),
        Just("encounter".to_owned()),
        Just("reference".to_owned()),
        Just("appointment".to_owned()),
        Just("period".to_owned()),
        Just("start".to_owned()),
        Just("subject".to_owned()),
        Just("type".to_owned()),
        Just("url".to_owned()),
        "[a-zA-Z]{0,10}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("Bundle"),
            Just("DocumentReference"),
            Just("Encounter"),
            Just("Binary"),
            Just("application/pdf"),
            Just("text/plain"),
            Just("text/html"),
            Just("Encounter/e-1"),
            Just("Appointment/A-1"),
            Just("d-1"),
            Just("2026-11-30T12:00:00Z"),
            Just("JVBERi0xLjQK"),
            Just("aGVsbG8="),
            Just("not base64!"),
            Just(""),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..7)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The error shape every refusal is rendered in (`api.md`): a 4xx or 5xx whose body is
/// `{"errors": [{"title", "detail", "code", "status"}]}`, `code` its status and `status` a
/// symbolic name.
fn is_error_shape(error: crate::http::ApiError) -> bool {
    let response = error.into_response();
    let status = response.status();
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return false;
    };
    let Ok(body) = runtime.block_on(axum::body::to_bytes(response.into_body(), 64 * 1024)) else {
        return false;
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return false;
    };
    let Some([error]) = body["errors"].as_array().map(Vec::as_slice) else {
        return false;
    };
    let text = |key: &str| error[key].as_str().is_some_and(|s| !s.is_empty());
    (status.is_client_error() || status.is_server_error())
        && error.as_object().is_some_and(|o| o.len() == 4)
        && text("title")
        && text("detail")
        && error["code"] == status.as_str()
        && error["status"]
            .as_str()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sid(raw in prop_oneof![".{0,50}", "[0-9a-fA-F]{28,42}", "[0-9a-fA-F]{30,40}[\n\r ]?"]) {
        let valid = (30..=40).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_hexdigit());
        match Sid::parse(raw.clone()) {
            Some(sid) => {
                prop_assert!(valid);
                prop_assert_eq!(sid.as_str(), raw.as_str());
            }
            None => prop_assert!(!valid),
        }
    }

    #[test]
    fn search_parameters(query in prop_oneof![
        ".{0,60}",
        "stationNo=[0-9a-z%]{0,22}&appointmentIen=[0-9%]{0,22}(&[a-zA-Z]{1,10}=[^&]{0,5}){0,3}",
    ]) {
        if let Some((station, ien)) = search_params(Some(&query)) {
            for id in [station.as_str(), ien.as_str()] {
                prop_assert!((1..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }

    #[test]
    fn links_body(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from),
        json_value().prop_map(|v| Bytes::from(json!({"appointments": v}).to_string())),
        prop::collection::vec(("[0-9]{0,22}", "[0-9a]{0,22}"), 0..110).prop_map(|items| {
            let items: Vec<Value> = items.into_iter().map(|(s, i)| json!({"stationNo": s, "appointmentIen": i})).collect();
            Bytes::from(json!({"appointments": items}).to_string())
        }),
    ]) {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        match link_items(&headers, Ok(body)) {
            Ok(items) => prop_assert!((1..=100).contains(&items.len())),
            Err(error) => prop_assert!(is_error_shape(error)),
        }
    }

    #[test]
    fn toggle_file(text in prop_oneof![
        ".{0,200}",
        "(\\[features\\.[a-z_]{1,10}\\]\n((boolean = (true|false|1|\"x\"))|(percentage_of_actors = (-?[0-9]{1,4}(\\.[0-9]{1,6})?|\"[^\"]{0,6}\"|1e-5))|(actors = \\[(\"[^\"\n]{0,10}\",? ?){0,3}\\])|(groups = \\[\"[a-z]{0,5}\"\\]))\n){0,6}",
    ]) {
        if let Ok(snapshot) = parse_toml(&text) {
            for feature in snapshot.features.values() {
                for pct in [feature.percentage_of_actors, feature.percentage_of_time].into_iter().flatten() {
                    prop_assert!(pct.in_range());
                }
            }
        }
    }

    #[test]
    fn rendering_any_upstream_document(doc in json_value(), data in json_value()) {
        let sid = Sid::parse("0123456789ABCDEF0123456789ABCDEF").unwrap_or_else(|| unreachable!());
        for doc in [doc.clone(), json!({"sid": sid.as_str(), "data": data}), json!({"data": doc})] {
            if let Ok(rendered) = render(doc, &sid) {
                let body: Value = serde_json::from_slice(&rendered.body).unwrap_or(Value::Null);
                let attributes = body["data"]["attributes"].as_object().cloned().unwrap_or_default();
                prop_assert_eq!(attributes.len(), 31);
                // Nothing of patientInfo but the smoking status ever leaves (the ICN stays here).
                prop_assert_eq!(attributes["patientInfo"].as_object().map(|p| p.len()), Some(1));
            }
        }
    }
}

proptest! {
    // Each case signs a token (RSA): fewer cases.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn token_claims(claims in json_value(), header_extra in json_value(), garbage in ".{0,80}") {
        let keys = KeySet::load(&KeySource::Development).unwrap_or_else(|e| panic!("{e}"));
        let verifier = ClaimsVerifier::new(keys, None, None);
        // Arbitrary text is refused.
        prop_assert!(verifier.verify(&garbage).is_err());
        // Correctly signed arbitrary claims: a caller only with a string `sub`, never a panic.
        let mut claims = match claims {
            Value::Object(map) => Value::Object(map),
            other => json!({"sub": other}),
        };
        claims["exp"] = json!(jsonwebtoken::get_current_timestamp() + 60);
        let sub_is_text = claims["sub"].as_str().is_some_and(|s| !s.is_empty());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../fixtures/dev-keys/dev-rs256.key.pem"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(crate::identity::DEV_KID.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap_or_else(|e| panic!("{e}"));
        let verified = verifier.verify(&token);
        if verified.is_ok() {
            prop_assert!(sub_is_text);
        }
        // A header with arbitrary extra members: verified or refused, never a panic.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut head: Value = serde_json::from_slice(&b64.decode(&parts[0]).unwrap_or_default()).unwrap_or(Value::Null);
        head["x"] = header_extra;
        parts[0] = b64.encode(head.to_string());
        let _ = verifier.verify(&parts.join("."));
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn oracle_ids_and_dates(raw in prop_oneof![".{0,70}", "[A-Za-z0-9-]{0,70}", "[0-9]{4}-[0-9]{2}-[0-9]{2}"]) {
        let valid = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        prop_assert_eq!(DocId::parse(&raw).is_some(), valid);
        prop_assert_eq!(ApptId::parse(&raw).map(|a| a.as_str().to_owned()), valid.then(|| raw.clone()));
        if let Some(date) = parse_date(&raw) {
            prop_assert_eq!(crate::domain::oracle::format_date(date), raw);
        }
    }

    #[test]
    fn oracle_metadata_of_any_bundle(bundle in fhir_value(), entries in prop::collection::vec(fhir_value(), 0..4)) {
        let wrapped = json!({"resourceType": "Bundle", "entry": entries.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()});
        for bundle in [bundle, wrapped] {
            // A list of documents, each with a valid id, or a refusal: never a panic.
            if let Ok(docs) = read_metadata(&bundle) {
                for doc in docs {
                    prop_assert!(DocId::parse(doc.id.as_str()).is_some());
                }
            }
        }
    }

    #[test]
    fn oracle_bytes_of_any_bundle(bundle in fhir_value(), resource in fhir_value(), max in 0usize..64) {
        let id = DocId::parse("d-1").unwrap_or_else(|| unreachable!());
        let wrapped = json!({"resourceType": "Bundle", "entry": [{"resource": resource}]});
        for bundle in [bundle, wrapped] {
            // Bytes within the limit, a PDF always starting with its magic, or a refusal.
            if let Ok(doc) = read_bytes(&bundle, &id, max) {
                prop_assert!(doc.bytes.len() <= max);
                if doc.kind == DocKind::Pdf {
                    prop_assert!(doc.bytes.starts_with(b"%PDF-"));
                }
            }
        }
    }
}
