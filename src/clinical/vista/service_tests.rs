//! The VistA service's unit tests.
use super::*;
use serde_json::json;

#[test]
fn a_negative_entry_weighs_what_it_holds() {
    let key = Key::Summary(Sid::parse("9A7AF40B2BC2471EA116891839113252").unwrap());
    let entry = Entry {
        outcome: Outcome::NotFound,
        fetched: Instant::now(),
    };
    assert!(entry.weight(&key) >= 540, "{}", entry.weight(&key));
}

#[test]
fn search_rows() {
    assert!(matches!(first_hit(json!([])), Ok(SearchHit::None)));
    let hit =
        first_hit(json!([{"sid": "9A7AF40B2BC2471EA116891839113252", "icn": "1V123456"}, {"sid": "x"}]))
            .unwrap();
    assert!(matches!(hit, SearchHit::Found { owner: Some(_), .. }));
    assert!(first_hit(json!({})).is_err());
    assert!(first_hit(json!([1])).is_err());
    assert!(first_hit(json!([{"sid": "nothex"}])).is_err());
    assert!(first_hit(json!([{"sid": "9A7AF40B2BC2471EA116891839113252", "icn": 5}])).is_err());
}
