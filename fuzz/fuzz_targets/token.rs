#![no_main]
//! Token verification: any text is a caller or a refusal.
use std::sync::OnceLock;

use avs_api::identity::{KeySet, KeySource, ClaimsVerifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static ClaimsVerifier {
    static VERIFIER: OnceLock<ClaimsVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| ClaimsVerifier::new(KeySet::load(&KeySource::Development).unwrap(), None, None))
}

fuzz_target!(|data: &str| {
    let _ = verifier().verify(data);
});
