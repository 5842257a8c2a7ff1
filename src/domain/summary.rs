//! Rendering an upstream summary document into the public JSON:API body.
//!
//! Pure: no I/O, no configuration. The result is the finished response bytes plus the owner
//! of the summary, which is all a request needs (and all a cache needs to hold).

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::casing::{camelize, camelize_map};
use super::html::{page_header_text, sanitize};
use super::ids::{OwnerIcn, Sid};

/// The 31 attributes, in the order the contract fixes.
pub const ATTRIBUTES: [&str; 31] = [
    "id",
    "appointmentIens",
    "meta",
    "clinicsVisited",
    "providers",
    "reasonForVisit",
    "diagnoses",
    "vitals",
    "orders",
    "procedures",
    "immunizations",
    "appointments",
    "patientInfo",
    "patientInstructions",
    "patientEducation",
    "pharmacyTerms",
    "primaryCareProviders",
    "primaryCareTeam",
    "primaryCareTeamMembers",
    "problems",
    "clinicalReminders",
    "clinicalServices",
    "allergiesReactions",
    "clinicMedications",
    "vaMedications",
    "nonvaMedications",
    "medChangesSummary",
    "labResults",
    "radiologyReports1Yr",
    "discreteData",
    "moreHelpAndInformation",
];

/// Attributes that are lists: absent (or null) upstream, they are `[]`, because the frontend
/// iterates them without a null check. Not `orders`: absent, it is `null` (see `render`).
const LIST_ATTRIBUTES: [&str; 19] = [
    "appointmentIens",
    "clinicsVisited",
    "providers",
    "reasonForVisit",
    "diagnoses",
    "vitals",
    "procedures",
    "immunizations",
    "appointments",
    "pharmacyTerms",
    "primaryCareProviders",
    "primaryCareTeamMembers",
    "problems",
    "clinicalReminders",
    "clinicalServices",
    "clinicMedications",
    "vaMedications",
    "nonvaMedications",
    "labResults",
];

/// HTML the frontend injects into the page; sanitised with the allowlist.
const HTML_ATTRIBUTES: [&str; 2] = ["patientInstructions", "moreHelpAndInformation"];

/// Keys of `data` consumed to build other attributes; not schema drift.
const CONSUMED_KEYS: [&str; 2] = ["header", "patientInfo"];

/// A summary ready to serve: the response body and whose it is.
#[derive(Clone, Debug)]
pub struct RenderedSummary {
    pub body: Bytes,
    pub owner: Option<OwnerIcn>,
    /// Keys of `data` that the contract does not know; counted as schema drift.
    pub unknown_keys: usize,
}

/// Why an upstream document could not be rendered. Never carries document content.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("document is not a JSON object")]
    NotAnObject,
    #[error("`data` is missing or not an object")]
    NoData,
    #[error("`{0}` has the wrong type")]
    WrongType(&'static str),
    #[error("the document is for another sid")]
    OtherSid,
}

/// Renders an upstream document fetched for `requested`.
pub fn render(doc: Value, requested: &Sid) -> Result<RenderedSummary, ShapeError> {
    let Value::Object(mut doc) = doc else {
        return Err(ShapeError::NotAnObject);
    };
    let sid = match doc.remove("sid") {
        None | Some(Value::Null) => requested.as_str().to_owned(),
        Some(Value::String(s)) if requested.same_summary(&s) => s,
        Some(Value::String(_)) => return Err(ShapeError::OtherSid),
        Some(_) => return Err(ShapeError::WrongType("sid")),
    };
    let Some(Value::Object(data)) = doc.remove("data") else {
        return Err(ShapeError::NoData);
    };
    let mut data = camelize_map(data);

    let header = take_object(&mut data, "header")?;
    let patient = take_object(&mut data, "patientInfo")?;
    let owner = OwnerIcn::from_icn(optional_str(&patient, "icn", "patientInfo.icn")?);
    let smoking = optional_str(&patient, "smokingStatus", "patientInfo.smokingStatus")?;
    let page_header = optional_str(&header, "pageHeader", "header.pageHeader")?.map(page_header_text);

    let meta = json!({
        "generatedDate": doc.remove("generatedDate").unwrap_or(Value::Null),
        "stationNo": header.get("stationNo").cloned().unwrap_or(Value::Null),
        "pageHeader": page_header,
        "timeZone": header.get("timeZone").cloned().unwrap_or(Value::Null),
    });
    let appointment_iens = camelize(doc.remove("appointmentIens").unwrap_or(Value::Null));

    let mut attributes = Map::with_capacity(ATTRIBUTES.len());
    for name in ATTRIBUTES {
        let value = match name {
            "id" => Value::String(sid.clone()),
            "appointmentIens" => list(appointment_iens.clone(), name)?,
            "meta" => meta.clone(),
            "patientInfo" => json!({ "smokingStatus": smoking.unwrap_or("") }),
            // VA.gov's page shows "New orders from this appointment" over any array, an empty
            // one too, and hides it only for a missing value (seen with the page's own code).
            "orders" => match data.remove(name) {
                None | Some(Value::Null) => Value::Null,
                Some(value) => list(value, name)?,
            },
            _ => {
                let value = data.remove(name).unwrap_or(Value::Null);
                if LIST_ATTRIBUTES.contains(&name) {
                    list(value, name)?
                } else if HTML_ATTRIBUTES.contains(&name) {
                    html(value, name)?
                } else {
                    value
                }
            }
        };
        attributes.insert(name.to_owned(), value);
    }
    let unknown_keys = data
        .keys()
        .filter(|k| !CONSUMED_KEYS.contains(&k.as_str()))
        .count();

    let body = json!({
        "data": { "id": sid, "type": "afterVisitSummary", "attributes": attributes }
    });
    // Serialising a Value with string keys cannot fail.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    Ok(RenderedSummary {
        body: Bytes::from(body),
        owner,
        unknown_keys,
    })
}

fn take_object(data: &mut Map<String, Value>, key: &'static str) -> Result<Map<String, Value>, ShapeError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(ShapeError::WrongType(key)),
    }
}

fn optional_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<Option<&'a str>, ShapeError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ShapeError::WrongType(name)),
    }
}

fn list(value: Value, name: &'static str) -> Result<Value, ShapeError> {
    match value {
        Value::Null => Ok(Value::Array(Vec::new())),
        Value::Array(_) => Ok(value),
        _ => Err(ShapeError::WrongType(name)),
    }
}

fn html(value: Value, name: &'static str) -> Result<Value, ShapeError> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::String(s) => Ok(Value::String(sanitize(&s))),
        _ => Err(ShapeError::WrongType(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid() -> Sid {
        Sid::parse("0123456789ABCDEF0123456789ABCDEF").unwrap()
    }

    fn attributes(rendered: &RenderedSummary) -> Map<String, Value> {
        let v: Value = serde_json::from_slice(&rendered.body).unwrap();
        v["data"]["attributes"].as_object().unwrap().clone()
    }

    #[test]
    fn minimal_document_gets_every_attribute_in_order_with_defaults() {
        let r = render(json!({"data": {}}), &sid()).unwrap();
        let attrs = attributes(&r);
        assert_eq!(attrs.keys().map(String::as_str).collect::<Vec<_>>(), ATTRIBUTES);
        assert_eq!(attrs["clinicsVisited"], json!([]));
        assert_eq!(attrs["appointmentIens"], json!([]));
        assert_eq!(attrs["primaryCareTeam"], Value::Null);
        assert_eq!(attrs["allergiesReactions"], Value::Null);
        assert_eq!(attrs["patientInfo"], json!({"smokingStatus": ""}));
        assert_eq!(attrs["id"], json!(sid().as_str()));
        assert!(r.owner.is_none());
    }

    #[test]
    fn wrong_shapes_are_refused() {
        assert_eq!(render(json!([]), &sid()).unwrap_err(), ShapeError::NotAnObject);
        assert_eq!(
            render(json!({"sid": "x"}), &sid()).unwrap_err(),
            ShapeError::OtherSid
        );
        assert_eq!(
            render(json!({"data": 1}), &sid()).unwrap_err(),
            ShapeError::NoData
        );
        assert_eq!(
            render(json!({"data": {"vitals": {}}}), &sid()).unwrap_err(),
            ShapeError::WrongType("vitals")
        );
        assert_eq!(
            render(json!({"data": {"patientInfo": {"icn": 5}}}), &sid()).unwrap_err(),
            ShapeError::WrongType("patientInfo.icn")
        );
    }

    #[test]
    fn unknown_keys_are_dropped_and_counted() {
        let r = render(
            json!({"data": {"header": {}, "new_section": [1], "other": 2}}),
            &sid(),
        )
        .unwrap();
        assert_eq!(r.unknown_keys, 2);
        let attrs = attributes(&r);
        assert!(!attrs.contains_key("newSection") && !attrs.contains_key("header"));
    }
}
