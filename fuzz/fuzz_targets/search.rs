#![no_main]
//! The search query: any query string is two digit ids or refused.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    if let Some((station, ien)) = avs_api::http::vista::search_params(Some(data)) {
        assert!(station.as_str().bytes().all(|b| b.is_ascii_digit()));
        assert!(ien.as_str().bytes().all(|b| b.is_ascii_digit()));
    }
});
