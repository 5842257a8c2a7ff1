//! Render times of the VistA summary documents (not a test): the full fixture and the ~1 MB one,
//! each typeset as a tagged PDF and as text several times; the median and the sizes are printed.
//! Run by `bench/documents.sh`.

use std::time::Instant;

use avs_api::clinical::fixture::{FixtureData, LARGE_SID};
use avs_api::documents::{SummaryDocument, render_pdf, render_text};
use avs_api::domain::{Sid, render};

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

fn main() {
    let data = FixtureData::shipped().expect("the shipped fixtures");
    for (name, sid) in [("full", "9A7AF40B2BC2471EA116891839113252"), ("large", LARGE_SID)] {
        let doc: serde_json::Value =
            serde_json::from_slice(data.summary(sid).expect("shipped")).expect("JSON");
        let sid = Sid::parse(sid).expect("a sid");
        let rendered = render(doc, &sid).expect("renders");
        let body: serde_json::Value = serde_json::from_slice(&rendered.body).expect("JSON:API");
        let (mut pdf_ms, mut text_ms, mut size, mut text_size) = (Vec::new(), Vec::new(), 0, 0);
        for _ in 0..7 {
            let started = Instant::now();
            let model = SummaryDocument::from_attributes(&body["data"]["attributes"]);
            size = render_pdf(&model).expect("a PDF").len();
            pdf_ms.push(started.elapsed().as_secs_f64() * 1e3);
            let started = Instant::now();
            text_size = render_text(&SummaryDocument::from_attributes(&body["data"]["attributes"])).len();
            text_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "render_{name} summary_json_bytes {} pdf_ms {:.1} pdf_bytes {size} text_ms {:.2} text_bytes {text_size}",
            rendered.body.len(),
            median(pdf_ms),
            median(text_ms)
        );
    }
}
