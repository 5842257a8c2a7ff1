//! "My medications" and "My VA supplies" as VA.gov's page selects, labels and shows them
//! (vets-website `YourHealthInformation` and `utils/medications`), each medication a heading
//! and its fields, one per line: fourteen fields read badly as table columns (#36).
//!
//! - My medications: the VA list, then the non-VA list, keeping what the patient takes
//!   (`patientTaking: true`) or what this summary's station prescribed (`stationNo` =
//!   `meta.stationNo`), and only drugs (`prescriptionType: "drug"`).
//! - My VA supplies: both lists' supplies (`prescriptionType: "supply"`), taken or not.
//! - An entry of neither type is in neither, as on the page.
//! - An entry is VA or non-VA by the list it came from, not by its `source` field (which an
//!   entry may lack or contradict).

use serde_json::Value;

use super::{Block, Group};

/// A field as the page prints it: a string, or a number as digits; empty is absent.
fn shown(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum List {
    Va,
    NonVa,
}

/// The two groups, when they have entries.
pub(super) fn groups(a: &Value) -> [Option<Group>; 2] {
    let station = a["meta"]["stationNo"].as_str();
    let entries: Vec<(List, &Value)> = [("vaMedications", List::Va), ("nonvaMedications", List::NonVa)]
        .into_iter()
        .flat_map(|(field, list)| {
            a[field]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(move |m| (list, m))
        })
        .collect();
    let of_type = |kind: &str| {
        let kind = kind.to_owned();
        entries
            .iter()
            .filter(move |(_, m)| m["prescriptionType"].as_str() == Some(kind.as_str()))
    };
    let taken = |m: &Value| {
        m["patientTaking"] == Value::Bool(true) || (station.is_some() && m["stationNo"].as_str() == station)
    };
    let medications = of_type("drug")
        .filter(|(_, m)| taken(m))
        .flat_map(|(list, m)| entry(*list, m))
        .collect();
    let supplies = of_type("supply").flat_map(|(list, m)| entry(*list, m)).collect();
    [
        group("My medications", medications),
        group("My VA supplies", supplies),
    ]
}

fn group(heading: &str, blocks: Vec<Block>) -> Option<Group> {
    (!blocks.is_empty()).then(|| Group {
        heading: Some(heading.to_owned()),
        blocks,
    })
}

/// One medication: its name as a heading, then its lines in the page's order.
fn entry(list: List, m: &Value) -> Vec<Block> {
    let field = |name: &str| shown(&m[name]);
    let labelled = |label: &str, name: &str| field(name).map(|v| format!("{label}: {v}"));
    let name = field("name").unwrap_or_else(|| "Medication".to_owned());
    let lines: Vec<Option<String>> = match list {
        List::Va => vec![
            field("sig"),
            labelled("Reason for use", "indication"),
            labelled("Description", "description"),
            labelled("Rx #", "rxNumber"),
            // The page prints "Notes:" even when there are none; an empty line says nothing.
            labelled("Notes", "comment"),
            labelled("Facility", "stationName"),
            field("facilityPhone").map(|p| format!("Main phone: {p} (TTY: 711)")),
            labelled("Ordering Provider", "orderingProvider"),
            labelled("Status", "status"),
            // The page prints "null" for a missing quantity; here the line is left out.
            field("quantity")
                .zip(field("daysSupply"))
                .map(|(q, d)| format!("Quantity: {q} for {d} days")),
            labelled("Refills remaining", "refillsRemaining"),
            labelled("Expires", "dateExpires"),
            labelled("Last filled", "dateLastFilled").or_else(|| labelled("Last filled", "dateLastReleased")),
        ],
        List::NonVa => vec![
            field("sig"),
            labelled("Notes", "comment"),
            Some("Facility: NON-VA".to_owned()),
            {
                let by: Vec<String> = [field("documentingFacility"), field("documentor")]
                    .into_iter()
                    .flatten()
                    .collect();
                (!by.is_empty()).then(|| format!("Documenting Facility & Provider: {}", by.join(", ")))
            },
            labelled("Status", "status"),
        ],
    };
    let lines: Vec<String> = lines.into_iter().flatten().collect();
    let mut blocks = vec![Block::Label { text: name }];
    if !lines.is_empty() {
        blocks.push(Block::Lines { lines });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(group: &Option<Group>) -> Vec<String> {
        group
            .iter()
            .flat_map(|g| &g.blocks)
            .filter_map(|b| match b {
                Block::Label { text } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    /// Each of the page's rules, by a summary built to hit it.
    #[test]
    fn selected_and_labelled_as_the_page_does() {
        let a = json!({
            "meta": {"stationNo": "500"},
            "vaMedications": [
                {"name": "TAKEN ELSEWHERE", "prescriptionType": "drug", "patientTaking": true, "stationNo": "530"},
                {"name": "THIS STATION", "prescriptionType": "drug", "patientTaking": false, "stationNo": "500", "rxNumber": "501103", "quantity": 90, "daysSupply": 90, "refillsRemaining": 0, "dateLastReleased": "Sep 28, 2023", "facilityPhone": "555-999-9999"},
                {"name": "HIDDEN OTHER STATION", "prescriptionType": "drug", "patientTaking": false, "stationNo": "530"},
                {"name": "NO TYPE", "prescriptionType": null, "patientTaking": true, "stationNo": "500"},
                {"name": "A SUPPLY NOT TAKEN", "prescriptionType": "supply", "patientTaking": false, "stationNo": "530"},
            ],
            "nonvaMedications": [
                {"name": "NON-VA WITHOUT SOURCE", "prescriptionType": "drug", "patientTaking": true, "documentor": "PROVIDER,THREE", "documentingFacility": "CAMP MASTER", "status": "Active"},
                {"name": "SAYS VA", "source": "VA", "prescriptionType": "drug", "stationNo": "500"},
            ],
        });
        let [meds, supplies] = groups(&a);
        assert_eq!(
            names(&meds),
            [
                "TAKEN ELSEWHERE",
                "THIS STATION",
                "NON-VA WITHOUT SOURCE",
                "SAYS VA"
            ]
        );
        assert_eq!(names(&supplies), ["A SUPPLY NOT TAKEN"]);
        let lines = |n: usize| match &meds.as_ref().unwrap().blocks[n] {
            Block::Lines { lines } => lines.clone(),
            _ => vec![],
        };
        assert_eq!(
            lines(2),
            [
                "Rx #: 501103",
                "Main phone: 555-999-9999 (TTY: 711)",
                "Quantity: 90 for 90 days",
                "Refills remaining: 0",
                "Last filled: Sep 28, 2023"
            ]
        );
        assert_eq!(
            lines(4),
            [
                "Facility: NON-VA",
                "Documenting Facility & Provider: CAMP MASTER, PROVIDER,THREE",
                "Status: Active"
            ]
        );
        // By its list, whatever its `source` says.
        assert_eq!(lines(6), ["Facility: NON-VA"]);
    }
}
