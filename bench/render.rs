//! Render times and memory of the VistA summary documents (not a test). Every case of
//! `bench/cases.rs` is typeset as a tagged PDF (and as text) in a process of its own, so each
//! peak resident memory (`VmHWM`) is that render's alone: the median time of several renders,
//! the PDF's size and whether it was abridged, and the process's peak are printed. Run by
//! `bench/documents.sh`; `render CASE` runs one case.

use std::time::Instant;

use avs_api::clinical::fixture::{FixtureData, LARGE_SID};
use avs_api::documents::{Bounds, PDF_BOUNDS, SummaryDocument, render_pdf, render_text};
use avs_api::domain::{Sid, render};

#[path = "cases.rs"]
mod cases;

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// The process's peak resident memory so far, in MB (`VmHWM`).
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// One case; `bounds` None: the model as it is (the cost the bounds are measured against).
fn one(name: &str, bounds: Option<Bounds>) {
    let data = FixtureData::shipped().expect("the shipped fixtures");
    let parse = |sid| -> serde_json::Value {
        serde_json::from_slice(data.summary(sid).expect("shipped")).expect("JSON")
    };
    let doc = cases::case(name, &parse(cases::FULL_SID), &parse(LARGE_SID));
    let sid = Sid::parse(doc["sid"].as_str().expect("a sid")).expect("a sid");
    let rendered = render(doc, &sid).expect("renders");
    drop(data);
    let body: serde_json::Value = serde_json::from_slice(&rendered.body).expect("JSON:API");
    let before = peak_mb();
    let rounds = if rendered.body.len() > 500_000 { 3 } else { 7 };
    let (mut pdf_ms, mut text_ms, mut size, mut text_size) = (Vec::new(), Vec::new(), 0, 0);
    let mut abridged = false;
    for _ in 0..rounds {
        let started = Instant::now();
        let mut model = SummaryDocument::from_attributes(&body["data"]["attributes"]);
        abridged = bounds.is_some_and(|b| model.abridge(b));
        let pdf = render_pdf(&model).expect("a PDF");
        pdf_ms.push(started.elapsed().as_secs_f64() * 1e3);
        size = pdf.len();
        let started = Instant::now();
        text_size = render_text(&SummaryDocument::from_attributes(&body["data"]["attributes"])).len();
        text_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "render_{name}{} summary_json_bytes {} pdf_ms {:.1} pdf_bytes {size} abridged {abridged} text_ms {:.2} text_bytes {text_size} peak_rss_mb {:.0} (before rendering {before:.0})",
        if bounds.is_none() { "_unbounded" } else { "" },
        rendered.body.len(),
        median(pdf_ms),
        median(text_ms),
        peak_mb(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("list") {
        for (name, sid) in cases::CASES {
            println!("{name} {sid}");
        }
        return;
    }
    // `render dump DIR`: each case as the upstream answers it, at DIR/avs/<sid> (bench/memory.sh).
    if args.first().map(String::as_str) == Some("dump") {
        let dir = std::path::Path::new(args.get(1).expect("a directory")).join("avs");
        std::fs::create_dir_all(&dir).expect("a directory");
        let data = FixtureData::shipped().expect("the shipped fixtures");
        let parse = |sid| -> serde_json::Value {
            serde_json::from_slice(data.summary(sid).expect("shipped")).expect("JSON")
        };
        let (full, large) = (parse(cases::FULL_SID), parse(LARGE_SID));
        for (name, sid) in cases::CASES {
            std::fs::write(dir.join(sid), cases::case(name, &full, &large).to_string()).expect("written");
        }
        return;
    }
    let unbounded = args.iter().any(|a| a == "--unbounded");
    // BOUNDS=field,items,rows,total tries other bounds without a rebuild.
    let bounds = (!unbounded).then(|| match std::env::var("BOUNDS") {
        Ok(b) => {
            let n: Vec<usize> = b.split(',').map(|x| x.parse().expect("a number")).collect();
            Bounds {
                field_chars: n[0],
                list_items: n[1],
                table_rows: n[2],
                total_chars: n[3],
            }
        }
        Err(_) => PDF_BOUNDS,
    });
    if let Some(name) = args.iter().find(|a| !a.starts_with("--")) {
        return one(name, bounds);
    }
    // Each case in a process of its own: a peak is one render's.
    let me = std::env::current_exe().expect("this program");
    for (name, _) in cases::CASES {
        let mut command = std::process::Command::new(&me);
        command.arg(name);
        if unbounded {
            command.arg("--unbounded");
        }
        assert!(command.status().expect("runs").success(), "{name}");
    }
}
