//! The summaries that measure what one render can cost (#36): the shipped full fixture and the
//! ~1 MB one, and the full one made large in one dimension at a time. Shared by
//! `bench/render.rs` and `bench/memory.sh` (through the binary) and by the memory test
//! (`tests/api/render_bounds.rs`), so the bench prints the figures of what the test holds.

use serde_json::{Value, json};

/// The full fixture's sid, and the ~1 MB one's (`clinical::fixture::LARGE_SID`).
pub const FULL_SID: &str = "9A7AF40B2BC2471EA116891839113252";

/// (name, sid) of every case; `case(name)` builds it.
pub const CASES: [(&str, &str); 5] = [
    ("full", FULL_SID),
    ("large_1mb", "E1B2C3D4E5F60718293A4B5C6D7E8F90"),
    ("labs_10k", "C0000000000000000000000000010000"),
    ("providers_10k", "C0000000000000000000000000020000"),
    ("field_5mb", "C0000000000000000000000000050000"),
];

/// The summary `name` as the upstream answers it, from the shipped full one (`full`).
pub fn case(name: &str, full: &Value, large: &Value) -> Value {
    let sid = CASES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .unwrap_or(FULL_SID);
    let mut doc = match name {
        "large_1mb" => large.clone(),
        _ => full.clone(),
    };
    doc["sid"] = json!(sid);
    let data = &mut doc["data"];
    match name {
        "labs_10k" => {
            let values: Vec<Value> = (0..10_000)
                .map(|n| json!({"_t": "LabValue", "test": format!("TEST {n}"), "result": format!("{}.{}", n % 97, n % 10), "units": "mg/dL", "flag": if n % 7 == 0 { "H" } else { "" }, "refRange": "1.0 - 9.9"}))
                .collect();
            data["labResults"] = json!([{"_t": "LabTest", "specimen": "BLOOD", "collectionDatetime": "July 10 2023 06:46", "performingLab": "SYNTHETIC LAB", "orderingProvider": "DOCTOR, SYNTHETIC", "values": values}]);
        }
        "providers_10k" => {
            data["providers"] = json!(
                (0..10_000)
                    .map(|n| format!("DOCTOR,SYNTHETIC {n}"))
                    .collect::<Vec<_>>()
            );
        }
        "field_5mb" => {
            // Words, as a pasted note is: five megabytes in one field.
            let words = "Take one tablet by mouth every morning with food and water. ";
            data["patientInstructions"] = json!(words.repeat(5_000_000 / words.len()));
        }
        _ => {}
    }
    doc
}
