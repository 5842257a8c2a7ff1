#![no_main]
//! Token verification: any text is a caller or a refusal.
use std::sync::OnceLock;

use avs_api::identity::{KeySet, KeySource, Verifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| Verifier::new(KeySet::load(&KeySource::Development).unwrap(), None, None))
}

fuzz_target!(|data: &str| {
    let _ = verifier().verify(data);
});
