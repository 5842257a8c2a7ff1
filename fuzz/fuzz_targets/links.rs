#![no_main]
//! The links body: any bytes are 1-100 appointments or a refusal in the error shape.
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    match avs_api::http::vista::link_items(&headers, Ok(bytes::Bytes::copy_from_slice(data))) {
        Ok(items) => assert!((1..=100).contains(&items.len())),
        Err(error) => assert!(error.into_response().status().is_client_error()),
    }
});
