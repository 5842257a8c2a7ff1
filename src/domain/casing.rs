//! camelCase for every key at every depth, the way the Ruby API's serializer named them.

use serde_json::{Map, Value};

/// `snake_case` → `snakeCase`; a leading underscore marker such as `_t` becomes `T` (Rails'
/// `camelize(:lower)` treats the underscore as a word break); keys without an underscore,
/// already camelCase, are unchanged.
pub fn camel_key(key: &str) -> String {
    if !key.contains('_') {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len());
    for (i, part) in key.split('_').enumerate() {
        if i == 0 {
            out.push_str(part);
            continue;
        }
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// Re-keys a JSON value in camelCase at every depth. Values are never changed.
/// When two keys collide after re-keying, the first one in document order wins.
pub fn camelize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(camelize_map(map)),
        Value::Array(items) => Value::Array(items.into_iter().map(camelize).collect()),
        other => other,
    }
}

pub fn camelize_map(map: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        let key = camel_key(&key);
        if !out.contains_key(&key) {
            out.insert(key, camelize(value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_camel_cased_at_every_depth() {
        assert_eq!(camel_key("_t"), "T");
        assert_eq!(camel_key("fm_date_last_released"), "fmDateLastReleased");
        assert_eq!(camel_key("radiology_reports_1_yr"), "radiologyReports1Yr");
        assert_eq!(camel_key("clinicIen"), "clinicIen");
        assert_eq!(camel_key("T"), "T");
        let v = camelize(json!({"a_b": [{"_t": "X", "c_d": {"e_f": "g_h"}}]}));
        assert_eq!(v, json!({"aB": [{"T": "X", "cD": {"eF": "g_h"}}]}));
    }

    #[test]
    fn first_key_wins_on_collision() {
        let v = camelize(json!({"fm_date": 1, "fmDate": 2}));
        assert_eq!(v, json!({"fmDate": 1}));
    }
}
