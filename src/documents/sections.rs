//! The four sections of the page, each group in the page's order, every field read by its type.

use serde_json::Value;

use super::dates::{long_date, problem_date, visit_time};
use super::html::blocks_of;
use super::{Block, Group, Section, Span};

fn text(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A group when it has blocks.
fn group(heading: &str, blocks: Vec<Option<Block>>) -> Option<Group> {
    let blocks: Vec<Block> = blocks.into_iter().flatten().collect();
    (!blocks.is_empty()).then(|| Group {
        heading: Some(heading.to_owned()),
        blocks,
    })
}

/// The strings of a list field, each item's `field` (or the item itself when it is a string).
fn strings(v: &Value, field: Option<&str>) -> Vec<String> {
    items(v)
        .iter()
        .filter_map(|i| match field {
            Some(f) => text(&i[f]),
            None => text(i),
        })
        .map(str::to_owned)
        .collect()
}

/// "a — b — c" of the non-empty parts.
fn joined(parts: &[Option<&str>]) -> String {
    parts.iter().flatten().copied().collect::<Vec<_>>().join(" — ")
}

pub(super) fn appointment(a: &Value, visit: Option<&str>) -> Section {
    let tz = a["meta"]["timeZone"].as_str();
    let clinics: Vec<String> = items(&a["clinicsVisited"])
        .iter()
        .map(|c| {
            let time = text(&c["time"]).map(|t| visit_time(text(&c["date"]), t, tz));
            joined(&[time.as_deref(), text(&c["site"]), text(&c["clinic"])])
        })
        .collect();
    let vitals = items(&a["vitals"]).iter().filter_map(|v| {
        let value = text(&v["value"])?;
        let qualifiers = text(&v["qualifiers"])
            .map(|q| format!(" ({q})"))
            .unwrap_or_default();
        Some(format!(
            "{} / Result: {value}{qualifiers}",
            text(&v["type"]).unwrap_or("Vital")
        ))
    });
    let medications = items(&a["clinicMedications"])
        .iter()
        .filter_map(|m| {
            Some(vec![
                text(&m["name"])?.to_owned(),
                text(&m["sig"]).unwrap_or("").to_owned(),
                text(&m["status"]).unwrap_or("").to_owned(),
            ])
        })
        .collect::<Vec<_>>();
    let groups = [
        group("Clinics visited", vec![Block::list(clinics)]),
        group("Providers", vec![Block::list(strings(&a["providers"], None))]),
        group(
            "Reason for visit",
            vec![Block::list(strings(&a["reasonForVisit"], Some("diagnosis")))],
        ),
        group(
            "Diagnoses",
            vec![Block::list(strings(&a["diagnoses"], Some("diagnosis")))],
        ),
        group("Vitals as of this appointment", vec![Block::list(vitals)]),
        group(
            "Procedures",
            vec![Block::list(strings(&a["procedures"], Some("name")))],
        ),
        group(
            "Medications ordered, administered, or prescribed in clinic",
            vec![table(&[], &["Medication", "Instructions", "Status"], medications)],
        ),
    ];
    Section {
        heading: match visit {
            Some(date) => format!("Your appointment on {date}"),
            None => "Your appointment".to_owned(),
        },
        groups: groups.into_iter().flatten().collect(),
    }
}

fn table(caption: &[String], head: &[&str], rows: Vec<Vec<String>>) -> Option<Block> {
    (!rows.is_empty()).then(|| Block::Table {
        caption: caption.to_vec(),
        head: head.iter().map(|h| (*h).to_owned()).collect(),
        rows,
    })
}

pub(super) fn treatment_plan(a: &Value) -> Section {
    // New orders by type, in the page's order; anything else is an "Other Orders".
    const TYPES: [&str; 5] = [
        "Consultations",
        "Imaging",
        "Lab Tests",
        "Medications",
        "Other Orders",
    ];
    let orders = items(&a["orders"]);
    let mut order_blocks = Vec::new();
    for kind in TYPES {
        let of_kind = orders.iter().filter(|o| {
            let t = text(&o["type"]).unwrap_or("Other Orders");
            t == kind || (kind == "Other Orders" && !TYPES.contains(&t))
        });
        let lines: Vec<String> = of_kind
            .filter_map(|o| {
                let order = text(&o["text"])?;
                Some(match (kind, text(&o["date"])) {
                    ("Lab Tests", Some(date)) => format!("{order} — {date}"),
                    _ => order.to_owned(),
                })
            })
            .collect();
        if let Some(list) = Block::list(lines) {
            order_blocks.push(Some(Block::Label {
                text: kind.to_owned(),
            }));
            order_blocks.push(Some(list));
        }
    }
    let reminders = items(&a["clinicalReminders"]).iter().filter_map(|r| {
        Some(joined(&[
            text(&r["name"]),
            text(&r["whenDue"]),
            text(&r["frequency"]),
        ]))
        .filter(|s| !s.is_empty())
    });
    let changes = &a["medChangesSummary"];
    let mut change_blocks = Vec::new();
    for (field, label) in [
        ("newMedications", "New medications"),
        ("discontinuedMeds", "Discontinued medications"),
        ("changedMedications", "Changed medications"),
    ] {
        if let Some(list) = Block::list(strings(&changes[field], None)) {
            change_blocks.push(Some(Block::Label {
                text: label.to_owned(),
            }));
            change_blocks.push(Some(list));
        }
    }
    let terms: Vec<Option<Block>> = items(&a["pharmacyTerms"])
        .iter()
        .filter_map(|t| {
            let term = text(&t["term"])?;
            let term = match text(&t["aka"]) {
                Some(aka) => format!("{term} {aka}"),
                None => term.to_owned(),
            };
            let said: Vec<&str> = [text(&t["explanation"]), text(&t["patientActions"])]
                .into_iter()
                .flatten()
                .collect();
            Some(Some(Block::Para {
                spans: vec![
                    Span {
                        text: term,
                        strong: true,
                        ..Span::default()
                    },
                    Span::plain(format!(": {}", said.join(" "))),
                ],
            }))
        })
        .collect();
    let groups = [
        group("New orders from this appointment", order_blocks),
        group("Health reminders", vec![Block::list(reminders)]),
        group(
            "Other instructions",
            blocks_of(a["patientInstructions"].as_str())
                .into_iter()
                .map(Some)
                .collect(),
        ),
        group("Medication changes", change_blocks),
        group("What the medication terms mean", terms),
    ];
    Section {
        heading: "Your treatment plan".to_owned(),
        groups: groups.into_iter().flatten().collect(),
    }
}

/// "None noted" for what an allergy leaves empty.
fn noted(v: Option<&str>) -> String {
    v.unwrap_or("None noted").to_owned()
}

pub(super) fn health_information(a: &Value) -> Section {
    let mut care = Vec::new();
    if let Some(provider) = items(&a["primaryCareProviders"]).first().and_then(text) {
        care.push(Some(Block::para(format!("Primary care provider: {provider}"))));
    }
    if let Some(team) = text(&a["primaryCareTeam"]) {
        care.push(Some(Block::para(format!("Primary care team: {team}"))));
    }
    care.push(Block::list(
        items(&a["primaryCareTeamMembers"]).iter().filter_map(|m| {
            let name = text(&m["name"])?;
            Some(match text(&m["title"]) {
                Some(title) => format!("{name} - {title}"),
                None => name.to_owned(),
            })
        }),
    ));
    let mut appointments = Vec::new();
    for (kind, label) in [
        ("Scheduled", "Scheduled appointments"),
        ("Recall", "Recall appointments"),
    ] {
        let of_kind = items(&a["appointments"])
            .iter()
            .filter(|x| text(&x["type"]).unwrap_or("Scheduled") == kind)
            .map(|x| {
                // As the page: the long date, the location (and where it physically is),
                // and the clinic's site.
                let date = text(&x["datetime"]).map(|d| long_date(d).unwrap_or_else(|| d.to_owned()));
                let location = text(&x["location"]).map(|l| match text(&x["physicalLocation"]) {
                    Some(p) => format!("{l} ({p})"),
                    None => l.to_owned(),
                });
                let site = text(&x["site"]).map(|s| format!("Clinic location: {s}"));
                joined(&[date.as_deref(), location.as_deref(), site.as_deref()])
            });
        if let Some(list) = Block::list(of_kind) {
            appointments.push(Some(Block::Label {
                text: label.to_owned(),
            }));
            appointments.push(Some(list));
        }
    }
    // The page's name (its trailing " (…)" removed) and "Last updated" in words.
    let problems = items(&a["problems"]).iter().filter_map(|p| {
        let d = text(&p["description"])?;
        let name = match d.rfind(" (") {
            Some(at) if d.ends_with(')') => &d[..at],
            _ => d,
        };
        let updated = text(&p["lastUpdated"]).and_then(problem_date);
        Some(match updated {
            Some(u) => format!("{name} — Last updated: {u}"),
            None => name.to_owned(),
        })
    });
    let immunizations = items(&a["immunizations"])
        .iter()
        .map(|i| joined(&[text(&i["name"]), text(&i["date"]), text(&i["facility"])]));
    let allergies: Vec<Vec<String>> = items(&a["allergiesReactions"]["allergies"])
        .iter()
        .filter_map(|x| {
            let reactions = strings(&x["reactions"], None).join(", ");
            Some(vec![
                text(&x["allergen"])?.to_owned(),
                noted((!reactions.is_empty()).then_some(reactions.as_str())),
                noted(text(&x["type"])),
                noted(text(&x["severity"])),
                noted(text(&x["site"])),
                noted(text(&x["verifiedDate"])),
            ])
        })
        .collect();
    let labs: Vec<Option<Block>> = items(&a["labResults"])
        .iter()
        .map(|lab| {
            let caption: Vec<String> = [
                ("Specimen", "specimen"),
                ("Ordering provider", "orderingProvider"),
                ("Collected", "collectionDatetime"),
                ("Performing lab", "performingLab"),
            ]
            .iter()
            .filter_map(|(label, field)| text(&lab[*field]).map(|v| format!("{label}: {v}")))
            .collect();
            let rows = items(&lab["values"])
                .iter()
                .filter_map(|v| {
                    Some(
                        ["test", "result", "units", "refRange", "flag"]
                            .map(|f| text(&v[f]).unwrap_or("").to_owned())
                            .to_vec(),
                    )
                    .filter(|row| !row[0].is_empty())
                })
                .collect();
            table(
                &caption,
                &["Test", "Result", "Units", "Reference range", "Flag"],
                rows,
            )
        })
        .collect();
    let groups = [
        group("Primary care provider and team", care),
        group("Appointments", appointments),
        group("Problems", vec![Block::list(problems)]),
        group(
            "Smoking status",
            vec![text(&a["patientInfo"]["smokingStatus"]).map(Block::para)],
        ),
        group("Immunizations", vec![Block::list(immunizations)]),
        group(
            "Allergies and adverse drug reactions",
            vec![table(
                &[],
                &[
                    "Allergy",
                    "Reaction",
                    "Allergy type",
                    "Severity",
                    "Site",
                    "Verified",
                ],
                allergies,
            )],
        ),
        group("Lab results", labs),
    ];
    Section {
        heading: "Your health information".to_owned(),
        groups: groups
            .into_iter()
            .chain(super::medications::groups(a))
            .flatten()
            .collect(),
    }
}

pub(super) fn more_information(a: &Value) -> Section {
    let services = items(&a["clinicalServices"]).iter().map(|s| {
        joined(&[
            text(&s["name"]),
            text(&s["location"]),
            text(&s["hours"]),
            text(&s["phone"]),
            text(&s["comment"]),
        ])
    });
    // The page names the first clinic visited's site in the heading.
    let heading = match text(&a["clinicsVisited"][0]["site"]) {
        Some(site) => format!("Clinical services ({site})"),
        None => "Clinical services".to_owned(),
    };
    let groups = [
        group(&heading, vec![Block::list(services)]),
        group(
            "More help and information",
            blocks_of(a["moreHelpAndInformation"].as_str())
                .into_iter()
                .map(Some)
                .collect(),
        ),
    ];
    Section {
        heading: "More information".to_owned(),
        groups: groups.into_iter().flatten().collect(),
    }
}
