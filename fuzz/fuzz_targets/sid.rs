#![no_main]
//! The sid parser: any text is a canonical sid or refused.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    if let Some(sid) = avs_api::domain::Sid::parse(data) {
        assert_eq!(sid.as_str(), data.to_ascii_uppercase());
    }
});
