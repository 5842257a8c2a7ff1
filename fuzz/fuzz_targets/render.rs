#![no_main]
//! Rendering: any JSON document from the upstream renders to 31 attributes or is refused.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let sid = avs_api::domain::Sid::parse("0123456789ABCDEF0123456789ABCDEF").unwrap();
    if let Ok(rendered) = avs_api::domain::render(doc, &sid) {
        let body: serde_json::Value = serde_json::from_slice(&rendered.body).unwrap();
        assert_eq!(body["data"]["attributes"].as_object().unwrap().len(), 31);
    }
});
