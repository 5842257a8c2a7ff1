#![no_main]
//! The toggle file: any text is a snapshot with percentages in range, or a refusal.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    if let Ok(snapshot) = avs_api::toggles::parse_toml(data) {
        for feature in snapshot.features.values() {
            for pct in [feature.percentage_of_actors, feature.percentage_of_time].into_iter().flatten() {
                assert!(pct.in_range());
            }
        }
    }
});
